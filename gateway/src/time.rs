//! Time as the API shows it: RFC 3339 in UTC with milliseconds (Plausible's echo aside).

use chrono::{DateTime, SecondsFormat, Utc};

/// Now.
pub fn timestamp() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A stored unix-millisecond time.
pub fn rfc3339(unix_ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(unix_ms).unwrap_or_default().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A unix-millisecond time as Plausible's v2 echoes its period: in the site's time zone, to the
/// second (the millisecond cut off), `Z` for UTC and the offset otherwise
/// (`2026-11-30T00:00:00-08:00`).
pub fn in_zone(unix_ms: i64, timezone: &str) -> String {
    let at = DateTime::<Utc>::from_timestamp_millis(unix_ms.div_euclid(1000) * 1000).unwrap_or_default();
    match timezone.parse::<chrono_tz::Tz>() {
        Ok(zone) if !matches!(timezone, "UTC" | "Etc/UTC") => {
            at.with_timezone(&zone).to_rfc3339_opts(SecondsFormat::Secs, false)
        }
        _ => at.to_rfc3339_opts(SecondsFormat::Secs, true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_period_is_echoed_in_the_sites_zone_to_the_second() {
        let midnight_in_la = 1_764_489_600_000; // 2025-11-30T08:00:00Z
        assert_eq!(in_zone(midnight_in_la, "America/Los_Angeles"), "2025-11-30T00:00:00-08:00");
        assert_eq!(in_zone(midnight_in_la + 999, "UTC"), "2025-11-30T08:00:00Z");
        assert_eq!(in_zone(midnight_in_la, "Europe/London"), "2025-11-30T08:00:00+00:00");
    }
}
