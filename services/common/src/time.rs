//! Time as the stores keep it (unix milliseconds) and as the API shows it (RFC 3339).

use std::time::{SystemTime, UNIX_EPOCH};

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Which names were seen in the current minute, so that something is done once per name per
/// minute (a key's last use written or reported). It holds one minute's names at most: a
/// process that has seen many keys keeps only those of the last minute.
#[derive(Default)]
pub struct OncePerMinute(std::sync::Mutex<(i64, std::collections::HashSet<String>)>);

impl OncePerMinute {
    /// Whether `name` is seen for the first time in the minute of `now_ms`.
    pub fn first(&self, name: &str, now_ms: i64) -> bool {
        let minute = now_ms.div_euclid(60_000);
        let mut seen = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.0 != minute {
            *seen = (minute, std::collections::HashSet::new());
        }
        if seen.1.contains(name) {
            return false;
        }
        seen.1.insert(name.to_owned());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_first_once_a_minute_and_older_minutes_are_forgotten() {
        let once = OncePerMinute::default();
        assert!(once.first("a", 60_000));
        assert!(!once.first("a", 119_999));
        assert!(once.first("b", 119_999));
        assert!(once.first("a", 120_000));
        assert_eq!(once.0.lock().unwrap().1.len(), 1, "only this minute's names are kept");
    }
}
