//! The `timestamp` processor's layouts: strftime patterns (`%d/%b/%Y:%H:%M:%S %z` of Apache
//! and nginx, syslog's `%b %e %H:%M:%S` without a year), and the names `RFC3339` (also
//! `ISO8601`), `UNIX` (seconds) and `UNIX_MS`. A layout without an offset is read in the
//! processor's time zone; one without a year gets the year of the read time, or the year
//! before when that would put the event more than a day after it was read (a December line
//! read in January).

use chrono::format::{Item, Parsed, StrftimeItems};
use chrono::{DateTime, Datelike, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

use super::simple_layout::SimpleLayout;

/// One accepted layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// RFC 3339 / ISO 8601 (`2026-11-28T10:00:00.123+01:00`; without an offset: the zone's).
    Rfc3339,
    /// Seconds since the epoch, fractions allowed.
    Unix,
    /// Milliseconds since the epoch.
    UnixMs,
    /// A strftime pattern, and whether it has an offset and a year.
    Strftime {
        /// The pattern, parsed once (parsing it per line took a tenth of the processor); for
        /// a pattern without a year, with `%Y ` in front (the read year is put before the text).
        items: Vec<Item<'static>>,
        /// The same, if simple enough to be read without chrono's parser.
        simple: Option<SimpleLayout>,
        /// It has `%z`, `%:z` or `%#z`.
        offset: bool,
        /// It has `%Y`, `%y`, `%G`, `%s` or `%+`.
        year: bool,
    },
}

impl Layout {
    /// Parses a layout; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<Layout, String> {
        match text {
            "RFC3339" | "ISO8601" => return Ok(Layout::Rfc3339),
            "UNIX" => return Ok(Layout::Unix),
            "UNIX_MS" => return Ok(Layout::UnixMs),
            _ => {}
        }
        let items: Vec<Item> = StrftimeItems::new(text).collect();
        if items.contains(&Item::Error) || !text.contains('%') {
            return Err(format!(
                "layout {text:?} is not a strftime pattern (e.g. \"%d/%b/%Y:%H:%M:%S %z\") or one of RFC3339, UNIX, UNIX_MS"
            ));
        }
        let has = |specs: &[&str]| specs.iter().any(|s| text.contains(s));
        let year = has(&["%Y", "%y", "%G", "%s", "%+", "%C"]);
        let pattern = if year {
            text.to_string()
        } else {
            format!("%Y {text}")
        };
        let items = StrftimeItems::new(&pattern)
            .parse_to_owned()
            .map_err(|e| format!("layout {text:?}: {e}"))?;
        Ok(Layout::Strftime {
            simple: SimpleLayout::of(&items),
            items,
            offset: has(&["%z", "%:z", "%#z", "%+"]),
            year,
        })
    }

    /// The instant `text` names (ms since the epoch), with `zone` for a text without offset
    /// and `read_ms` (when the line was read) for a layout without a year.
    pub fn parse_time(&self, text: &str, zone: Tz, read_ms: i64) -> Option<i64> {
        let text = text.trim();
        match self {
            Layout::Unix => {
                let secs: f64 = text.parse().ok()?;
                secs.is_finite().then(|| (secs * 1000.0).round() as i64)
            }
            Layout::UnixMs => text.parse().ok(),
            Layout::Rfc3339 => match DateTime::parse_from_rfc3339(text) {
                Ok(t) => Some(t.timestamp_millis()),
                Err(_) => {
                    let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").ok()?;
                    local(zone, naive)
                }
            },
            Layout::Strftime {
                items,
                simple,
                offset,
                year: true,
            } => parse_with(items, simple.as_ref(), text, *offset, zone),
            Layout::Strftime {
                items,
                simple,
                offset,
                year: false,
            } => {
                let read_year = zone.timestamp_millis_opt(read_ms).single()?.year();
                let at = |year: i32| {
                    parse_with(
                        items,
                        simple.as_ref(),
                        &format!("{year} {text}"),
                        *offset,
                        zone,
                    )
                };
                let t = at(read_year)?;
                const DAY_MS: i64 = 86_400_000;
                if t > read_ms + DAY_MS {
                    at(read_year - 1)
                } else {
                    Some(t)
                }
            }
        }
    }
}

/// The instant `text` names under the parsed pattern `items` (read by `simple` if it can):
/// with its own offset, or a wall-clock time in `zone`. As `DateTime::parse_from_str` and
/// `NaiveDateTime::parse_from_str` read it, without parsing the pattern again.
fn parse_with(
    items: &[Item<'static>],
    simple: Option<&SimpleLayout>,
    text: &str,
    offset: bool,
    zone: Tz,
) -> Option<i64> {
    match simple.and_then(|layout| layout.read(text)) {
        Some(ms) => Some(ms),
        None => by_chrono(items, text, offset, zone),
    }
}

/// [`parse_with`] by chrono's general parser alone (what a simple layout must agree with).
pub(super) fn by_chrono(
    items: &[Item<'static>],
    text: &str,
    offset: bool,
    zone: Tz,
) -> Option<i64> {
    let mut parsed = Parsed::new();
    chrono::format::parse(&mut parsed, text, items.iter()).ok()?;
    if offset {
        Some(parsed.to_datetime().ok()?.timestamp_millis())
    } else {
        local(zone, parsed.to_naive_datetime_with_offset(0).ok()?)
    }
}

/// A wall-clock time in `zone` (the earlier of two in a DST fold), in ms since the epoch.
fn local(zone: Tz, naive: NaiveDateTime) -> Option<i64> {
    zone.from_local_datetime(&naive)
        .earliest()
        .map(|t| t.with_timezone(&Utc).timestamp_millis())
}

/// Parses a time zone name (`UTC`, `Europe/Berlin`).
pub fn parse_zone(name: &str) -> Result<Tz, String> {
    name.parse::<Tz>().map_err(|_| {
        format!("timezone {name:?} is not a time zone name (e.g. \"UTC\", \"Europe/Berlin\")")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{parse_rfc3339_ms, rfc3339_ms};

    fn at(layout: &str, text: &str, zone: &str, read: &str) -> Option<String> {
        let read = parse_rfc3339_ms(read).unwrap();
        Layout::parse(layout)
            .unwrap()
            .parse_time(text, parse_zone(zone).unwrap(), read)
            .map(rfc3339_ms)
    }

    #[test]
    fn layouts() {
        let read = "2026-11-28T12:00:00.000Z";
        let cases = [
            (
                "%d/%b/%Y:%H:%M:%S %z",
                "28/Nov/2026:10:00:01 +0100",
                "UTC",
                "2026-11-28T09:00:01.000Z",
            ),
            (
                "RFC3339",
                "2026-11-28T10:00:00.5+01:00",
                "UTC",
                "2026-11-28T09:00:00.500Z",
            ),
            (
                "RFC3339",
                "2026-11-28T10:00:00",
                "Europe/Berlin",
                "2026-11-28T09:00:00.000Z",
            ),
            ("UNIX", "1795765261.318", "UTC", "2026-11-27T07:41:01.318Z"),
            (
                "UNIX_MS",
                "1795765261318",
                "UTC",
                "2026-11-27T07:41:01.318Z",
            ),
            (
                "%Y-%m-%d %H:%M:%S",
                "2026-07-01 12:00:00",
                "Europe/Berlin",
                "2026-07-01T10:00:00.000Z",
            ),
        ];
        for (layout, text, zone, want) in cases {
            assert_eq!(
                at(layout, text, zone, read).as_deref(),
                Some(want),
                "{layout} {text}"
            );
        }
        assert_eq!(at("%d/%b/%Y:%H:%M:%S %z", "garbage", "UTC", read), None);
    }

    #[test]
    fn syslog_year_is_inferred_across_new_year() {
        let layout = "%b %e %H:%M:%S";
        // Read on Jan 1: a Dec 31 line is from the year before, a Jan 1 line from this one.
        let read = "2027-01-01T00:00:30.000Z";
        assert_eq!(
            at(layout, "Dec 31 23:59:58", "UTC", read).unwrap(),
            "2026-12-31T23:59:58.000Z"
        );
        assert_eq!(
            at(layout, "Jan  1 00:00:02", "UTC", read).unwrap(),
            "2027-01-01T00:00:02.000Z"
        );
    }

    #[test]
    fn bad_layouts_and_zones() {
        assert_eq!(
            Layout::parse("%Q").unwrap_err(),
            "layout \"%Q\" is not a strftime pattern (e.g. \"%d/%b/%Y:%H:%M:%S %z\") or one of RFC3339, UNIX, UNIX_MS"
        );
        assert!(Layout::parse("yyyy-MM-dd").is_err());
        assert_eq!(
            parse_zone("Mars/Olympus").unwrap_err(),
            "timezone \"Mars/Olympus\" is not a time zone name (e.g. \"UTC\", \"Europe/Berlin\")"
        );
    }
}
