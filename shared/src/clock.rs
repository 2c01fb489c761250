//! Wall-clock time as the wire formats want it.

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
        let (days, ms_of_day) = (ms / 86_400_000, ms % 86_400_000);
        // Days to a civil date: Howard Hinnant's algorithm, for the proleptic Gregorian calendar.
        let z = days + 719_468;
        let era = z / 146_097;
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        let mut b = *b"0000-00-00T00:00:00.000Z";
        let mut put = |at: usize, width: usize, mut value: i64| {
            for i in (at..at + width).rev() {
                b[i] = b'0' + (value % 10) as u8;
                value /= 10;
            }
        };
        put(0, 4, year);
        put(5, 2, month);
        put(8, 2, day);
        put(11, 2, ms_of_day / 3_600_000);
        put(14, 2, ms_of_day / 60_000 % 60);
        put(17, 2, ms_of_day / 1000 % 60);
        put(20, 3, ms_of_day % 1000);
        Rfc3339(b)
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits and separators are ever written.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
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
        for ms in (0..4_200_000_000_000_i64).step_by(86_400_000 * 7 + 3_600_000 * 5 + 61_001) {
            let t = UNIX_EPOCH + std::time::Duration::from_millis(ms as u64);
            assert_eq!(
                rfc3339_ms(ms),
                humantime::format_rfc3339_millis(t).to_string()
            );
        }
    }
}
