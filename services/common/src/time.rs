//! Time as the stores keep it (unix milliseconds) and as the API shows it (RFC 3339).

use std::time::{SystemTime, UNIX_EPOCH};

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// A wait as a person reads it: whole seconds up to a minute and a half, then whole minutes,
/// rounded up so that one who waits as told is let in.
pub fn wait_in_words(secs: u64) -> String {
    match secs {
        1 => "1 second".to_owned(),
        0..=90 => format!("{secs} seconds"),
        _ => match secs.div_ceil(60) {
            1 => "1 minute".to_owned(),
            minutes => format!("{minutes} minutes"),
        },
    }
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
    fn a_wait_is_said_in_seconds_then_in_whole_minutes_rounded_up() {
        let said = [1, 45, 90, 91, 900, 901].map(wait_in_words);
        assert_eq!(said, ["1 second", "45 seconds", "90 seconds", "2 minutes", "15 minutes", "16 minutes"]);
    }

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
