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
        // The last two dates are kept per thread: a thread's times are mostly of a day or two
        // (when lines were read, what they say), and working one out, with digits written
        // one by one, took 8% of rendering a plain document.
        thread_local! {
            static DAYS: Cell<[(i64, [u8; 10]); 2]> = const { Cell::new([(-1, [0; 10]); 2]) };
        }
        let ms = timestamp_ms.max(0);
        let (days, ms_of_day) = (ms / 86_400_000, ms % 86_400_000);
        let mut b = *b"0000-00-00T00:00:00.000Z";
        let date = match DAYS.get() {
            [(day, date), _] | [_, (day, date)] if day == days => date,
            [last, _] => {
                let date = civil_date(days);
                DAYS.set([(days, date), last]);
                date
            }
        };
        b[..10].copy_from_slice(&date);
        two_digits(&mut b[11..13], ms_of_day / 3_600_000);
        two_digits(&mut b[14..16], ms_of_day / 60_000 % 60);
        two_digits(&mut b[17..19], ms_of_day / 1000 % 60);
        b[20] = b'0' + (ms_of_day % 1000 / 100) as u8;
        two_digits(&mut b[21..23], ms_of_day % 100);
        Rfc3339(b)
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits and separators are ever written.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
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
    two_digits(&mut b[0..2], year / 100 % 100);
    two_digits(&mut b[2..4], year % 100);
    two_digits(&mut b[5..7], month);
    two_digits(&mut b[8..10], day);
    b
}

/// Writes `n` (below 100) as two digits.
fn two_digits(out: &mut [u8], n: i64) {
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
    let t = humantime::parse_rfc3339_weak(text.trim_end_matches('Z')).ok()?;
    Some(t.duration_since(UNIX_EPOCH).ok()?.as_millis() as i64)
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
        // Written without humantime: the same text as it gives, over leap days and centuries.
        // Each time is followed by one of the same day, one of the next day and one of the
        // first day again: the dates kept from the times before serve the second and last.
        let step = 86_400_000 * 7 + 3_600_000 * 5 + 61_001;
        for start in (0..4_200_000_000_000_i64).step_by(step) {
            for ms in [start, start + 999, start + 86_400_000, start + 1] {
                let t = UNIX_EPOCH + std::time::Duration::from_millis(ms as u64);
                assert_eq!(
                    rfc3339_ms(ms),
                    humantime::format_rfc3339_millis(t).to_string()
                );
            }
        }
    }
}
