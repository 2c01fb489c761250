//! Wall-clock time as the wire formats want it.

use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// RFC 3339 UTC with milliseconds, e.g. `2026-11-27T08:00:00.123Z`.
pub fn rfc3339_ms(timestamp_ms: i64) -> String {
    Rfc3339::of(timestamp_ms).as_str().to_string()
}

/// An RFC 3339 UTC time with milliseconds, as [`rfc3339_ms`] writes it, without allocating:
/// the transfer writes two of them into every document.
#[derive(Clone, Copy)]
pub struct Rfc3339([u8; 24]);

impl Rfc3339 {
    /// The time `timestamp_ms` milliseconds after the epoch (the epoch if before it).
    pub fn of(timestamp_ms: i64) -> Rfc3339 {
        let ms = timestamp_ms.max(0);
        let days = ms / 86_400_000;
        // Below 86,400,000: divided as a u32, cheaper than as an i64.
        let ms_of_day = (ms % 86_400_000) as u32;
        let mut b = *b"0000-00-00T00:00:00.000Z";
        b[..10].copy_from_slice(&date_of(days));
        two_digits(&mut b[11..13], ms_of_day / 3_600_000);
        two_digits(&mut b[14..16], ms_of_day / 60_000 % 60);
        two_digits(&mut b[17..19], ms_of_day / 1000 % 60);
        b[20] = b'0' + (ms_of_day % 1000 / 100) as u8;
        two_digits(&mut b[21..23], ms_of_day % 100);
        Rfc3339(b)
    }

    /// What [`parse_rfc3339_ms`] reads back from the text of `Rfc3339::of(ms)`, without
    /// writing and reading it for a time from 1970 through 9999 (itself; a time before is
    /// written as the epoch, one after with the last four digits of its year).
    pub fn read_back(ms: i64) -> Option<i64> {
        /// 10000-01-01T00:00:00Z.
        const YEAR_10000_MS: i64 = 253_402_300_800_000;
        match ms {
            0..YEAR_10000_MS => Some(ms),
            i64::MIN..0 => Some(0),
            _ => parse_rfc3339_ms(Rfc3339::of(ms).as_str()),
        }
    }

    /// The text's bytes, ASCII.
    pub fn as_bytes(&self) -> &[u8; 24] {
        &self.0
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits and separators are ever written.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

thread_local! {
    /// The last two dates a thread wrote or read, by day since the epoch: a thread's times
    /// are mostly of a day or two (when lines were read, what they say), and working one out,
    /// with digits written one by one, took 8% of rendering a plain document.
    static DAYS: Cell<[(i64, [u8; 10]); 2]> = const { Cell::new([(-1, [0; 10]); 2]) };
}

/// `YYYY-MM-DD` of `days` (not negative) after the epoch.
fn date_of(days: i64) -> [u8; 10] {
    match DAYS.get() {
        [(day, date), _] | [_, (day, date)] if day == days => date,
        [last, _] => {
            let date = civil_date(days);
            DAYS.set([(days, date), last]);
            date
        }
    }
}

/// The day since the epoch of the date `YYYY-MM-DD` (digits only), if it is one from 1970 on.
fn day_of(date: [u8; 10]) -> Option<i64> {
    let known = DAYS
        .get()
        .into_iter()
        .find(|&(day, known)| day >= 0 && known == date);
    if let Some((day, _)) = known {
        return Some(day);
    }
    let n = |at: usize, width: usize| number(&date[at..at + width]);
    let (year, month, day) = (n(0, 4), n(5, 2), n(8, 2));
    if year < 1970 {
        return None;
    }
    // Days from a civil date: Howard Hinnant's algorithm again, the other way. A month or day
    // out of range gives another date back, and is refused.
    let y = year - i64::from(month <= 2);
    let (era, yoe) = (y / 400, y % 400);
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    (days >= 0 && date_of(days) == date).then_some(days)
}

/// The number written in `digits` (ASCII digits only, few enough not to overflow).
pub(crate) fn number(digits: &[u8]) -> i64 {
    digits
        .iter()
        .fold(0, |n, &d| n * 10 + i64::from(d.wrapping_sub(b'0')))
}

/// `YYYY-MM-DD` of `days` after the epoch: Howard Hinnant's algorithm, for the proleptic
/// Gregorian calendar.
fn civil_date(days: i64) -> [u8; 10] {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut b = *b"0000-00-00";
    // A year past 9999 keeps its last four digits.
    for (at, n) in [(0, year / 100 % 100), (2, year % 100), (5, month), (8, day)] {
        two_digits(&mut b[at..at + 2], n as u32);
    }
    b
}

/// Writes `n` (below 100) as two digits.
fn two_digits(out: &mut [u8], n: u32) {
    out[0] = b'0' + (n / 10) as u8;
    out[1] = b'0' + (n % 10) as u8;
}

impl std::fmt::Debug for Rfc3339 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

impl serde::Serialize for Rfc3339 {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Milliseconds since the epoch of an RFC 3339 time (as [`rfc3339_ms`] writes them).
pub fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    written_ms(text.as_bytes()).or_else(|| by_humantime(text))
}

/// [`parse_rfc3339_ms`] by humantime, which reads every form.
fn by_humantime(text: &str) -> Option<i64> {
    let t = humantime::parse_rfc3339_weak(text.trim_end_matches('Z')).ok()?;
    Some(t.duration_since(UNIX_EPOCH).ok()?.as_millis() as i64)
}

/// The time of `text` if it is written exactly as [`Rfc3339`] writes it, from 1970 on and
/// without a leap second; else `None`, and humantime decides. The transfer reads back the
/// time of each processed document: humantime took 2.5% of rendering one.
fn written_ms(text: &[u8]) -> Option<i64> {
    let text: &[u8; 24] = text.try_into().ok()?;
    let form = b"0000-00-00T00:00:00.000Z";
    let fits = |(&b, &f): (&u8, &u8)| match f {
        b'0' => b.is_ascii_digit(),
        _ => b == f,
    };
    if !text.iter().zip(form).all(fits) {
        return None;
    }
    let (hour, minute, second) = (
        number(&text[11..13]),
        number(&text[14..16]),
        number(&text[17..19]),
    );
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let day = day_of(text[..10].try_into().ok()?)?;
    Some(
        day * 86_400_000
            + hour * 3_600_000
            + minute * 60_000
            + second * 1000
            + number(&text[20..23]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip() {
        assert_eq!(rfc3339_ms(1_795_765_261_318), "2026-11-27T07:41:01.318Z");
        assert_eq!(
            parse_rfc3339_ms("2026-11-27T07:41:01.318Z"),
            Some(1_795_765_261_318)
        );
        assert_eq!(parse_rfc3339_ms("yesterday"), None);
        assert_eq!(rfc3339_ms(-5), "1970-01-01T00:00:00.000Z");
        // A time read back without its text: what is read from its text.
        for ms in [
            -5,
            0,
            1_795_765_261_318,
            253_402_300_799_999,
            253_402_300_800_000,
            10_i64.pow(15),
        ] {
            let text = rfc3339_ms(ms);
            assert_eq!(
                Rfc3339::read_back(ms),
                parse_rfc3339_ms(&text),
                "{ms}: {text}"
            );
        }
        // Written without humantime: the same text as it gives, over leap days and centuries.
        // Each time is followed by one of the same day, one of the next day and one of the
        // first day again: the dates kept from the times before serve the second and last.
        let step = 86_400_000 * 7 + 3_600_000 * 5 + 61_001;
        for start in (0..4_200_000_000_000_i64).step_by(step) {
            for ms in [start, start + 999, start + 86_400_000, start + 1] {
                let t = UNIX_EPOCH + std::time::Duration::from_millis(ms as u64);
                let text = rfc3339_ms(ms);
                assert_eq!(text, humantime::format_rfc3339_millis(t).to_string());
                // Read back without humantime.
                assert_eq!(written_ms(text.as_bytes()), Some(ms), "{text}");
            }
        }
    }

    /// Texts near the form `Rfc3339` writes, one byte changed: what is read without humantime
    /// is what humantime reads, and what is not a valid time is left to it.
    #[test]
    fn times_read_without_humantime() {
        let texts = [
            "2026-11-27T07:41:01.318Z",
            "2024-02-29T23:59:59.999Z",
            "2000-02-28T00:00:00.000Z",
            "1970-01-01T00:00:00.000Z",
        ];
        let (mut read, mut left) = (0, 0);
        for text in texts {
            for at in 0..text.len() {
                for b in b"0123456789-:TZ. x".iter().chain(&[0xc3]) {
                    let mut bytes = text.as_bytes().to_vec();
                    bytes[at] = *b;
                    let Ok(changed) = std::str::from_utf8(&bytes) else {
                        continue;
                    };
                    match written_ms(changed.as_bytes()) {
                        Some(ms) => {
                            assert_eq!(Some(ms), by_humantime(changed), "{changed}");
                            read += 1;
                        }
                        None => left += 1,
                    }
                }
            }
        }
        assert!(read > 500 && left > 500, "read {read}, left {left}");
        for bad in [
            "2026-02-29T00:00:00.000Z",
            "2026-04-31T00:00:00.000Z",
            "2026-13-01T00:00:00.000Z",
            "2026-00-10T00:00:00.000Z",
            "2026-11-00T00:00:00.000Z",
            "2026-11-27T24:00:00.000Z",
            "2026-11-27T23:60:00.000Z",
            "2026-11-27T23:59:60.000Z",
            "1969-12-31T23:59:59.999Z",
            "2026-11-27T07:41:01.318",
            "2026-11-27 07:41:01.318Z",
        ] {
            assert_eq!(written_ms(bad.as_bytes()), None, "{bad}");
        }
        // Left to humantime, read by it.
        assert_eq!(
            parse_rfc3339_ms("2026-11-27 07:41:01.318Z"),
            Some(1_795_765_261_318)
        );
        assert_eq!(parse_rfc3339_ms("2026-02-29T00:00:00.000Z"), None);
    }
}
