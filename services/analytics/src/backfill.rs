//! Past events from JSON lines, for `zenovay admin import-events`: each line is one event with
//! its own time, as a tracker would have sent it then (README "Events and statistics").

use chrono::DateTime;
use common::{Error, Result};
use serde::Deserialize;

use crate::events::Incoming;

/// One line. `at` is an RFC 3339 instant; `ip` and `user_agent` stand for the sender's.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    at: String,
    name: String,
    url: String,
    #[serde(default)]
    referrer: String,
    #[serde(default)]
    props: Option<serde_json::Value>,
    user_agent: String,
    ip: String,
    #[serde(default)]
    country: String,
    /// Plausible's hash mode: `true` or `1`, as its tracker sends it.
    #[serde(default, deserialize_with = "flag")]
    h: bool,
    /// An engagement event's scroll depth, percent.
    #[serde(default)]
    sd: Option<i64>,
    /// An engagement event's engaged time, milliseconds.
    #[serde(default)]
    e: Option<i64>,
    /// `false` for an event that does not end its visit's bounce, as Plausible's `interactive`.
    #[serde(default = "interaction")]
    interactive: bool,
}

fn interaction() -> bool {
    true
}

fn flag<'de, D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Number(u64),
    }
    match Flag::deserialize(deserializer) {
        Ok(Flag::Bool(flag)) => Ok(flag),
        Ok(Flag::Number(number @ (0 | 1))) => Ok(number == 1),
        _ => Err(serde::de::Error::custom("must be true, false, 1 or 0")),
    }
}

/// The event of one line for the site named `domain`, with its time (unix ms).
pub fn event(domain: &str, line: &str) -> Result<(i64, Incoming)> {
    let line: Line = serde_json::from_str(line).map_err(|e| Error::validation(format!("event line: {e}")))?;
    let at = DateTime::parse_from_rfc3339(&line.at)
        .map_err(|_| Error::validation("at: must be an RFC 3339 instant"))?
        .timestamp_millis();
    // Past events only, as the command promises: a future one would show in today's realtime
    // and statistics before its time. A minute is left for clocks that differ.
    if at > common::time::now_ms() + 60_000 {
        return Err(Error::validation("at: must not be in the future"));
    }
    let incoming = Incoming {
        domain: domain.to_owned(),
        name: line.name,
        url: line.url,
        referrer: line.referrer,
        props_json: line.props.map(|p| p.to_string()).unwrap_or_default(),
        revenue_json: String::new(),
        user_agent: line.user_agent,
        client_ip: line.ip,
        country: line.country,
        hash_mode: line.h,
        scroll_depth: line.sd,
        engagement_ms: line.e,
        non_interactive: !line.interactive,
    };
    Ok((at, incoming))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_line_in_the_future_is_refused() {
        let line = r#"{"at": "2999-01-10T10:00:00Z", "name": "pageview", "url": "https://a.example/", "user_agent": "UA", "ip": "1.2.3.4"}"#;
        let error = super::event("a.example", line).err().expect("refused");
        assert_eq!(error.text(), "at: must not be in the future");
    }

    #[test]
    fn a_line_is_an_event_at_its_time() {
        let line = r#"{"at": "2026-01-10T10:00:00Z", "name": "engagement", "url": "https://a.example/", "user_agent": "UA", "ip": "1.2.3.4", "sd": 40, "e": 1500}"#;
        let (at, event) = super::event("a.example", line).unwrap();
        assert_eq!(at, 1_768_039_200_000);
        assert_eq!(
            (event.scroll_depth, event.engagement_ms, event.domain.as_str()),
            (Some(40), Some(1500), "a.example")
        );
        assert!(super::event("a.example", r#"{"at": "yesterday"}"#).is_err());
    }

    #[test]
    fn hash_mode_is_a_boolean_or_the_trackers_1() {
        let line = |h: &str| {
            format!(
                r#"{{"at": "2026-01-10T10:00:00Z", "name": "pageview", "url": "https://a.example/#/x", "user_agent": "UA", "ip": "1.2.3.4", "h": {h}}}"#
            )
        };
        for (h, hash_mode) in [("true", true), ("1", true), ("false", false), ("0", false)] {
            assert_eq!(super::event("a.example", &line(h)).unwrap().1.hash_mode, hash_mode, "{h}");
        }
        for h in ["2", "\"yes\"", "null"] {
            let refused = super::event("a.example", &line(h)).err().expect(h).to_string();
            assert!(refused.contains("must be true, false, 1 or 0"), "{h}: {refused}");
        }
    }
}
