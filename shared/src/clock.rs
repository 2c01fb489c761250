//! Wall-clock time as the wire formats want it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// RFC 3339 UTC with milliseconds, e.g. `2026-11-27T08:00:00.123Z`.
pub fn rfc3339_ms(timestamp_ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(timestamp_ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
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
    }
}
