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
    /// Plausible's hash mode.
    #[serde(default)]
    h: bool,
    /// An engagement event's scroll depth, percent.
    #[serde(default)]
    sd: Option<i64>,
    /// An engagement event's engaged time, milliseconds.
    #[serde(default)]
    e: Option<i64>,
}

/// The event of one line for the site named `domain`, with its time (unix ms).
pub fn event(domain: &str, line: &str) -> Result<(i64, Incoming)> {
    let line: Line = serde_json::from_str(line).map_err(|e| Error::validation(format!("event line: {e}")))?;
    let at = DateTime::parse_from_rfc3339(&line.at)
        .map_err(|_| Error::validation("at: must be an RFC 3339 instant"))?
        .timestamp_millis();
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
    };
    Ok((at, incoming))
}

#[cfg(test)]
mod tests {
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
}
