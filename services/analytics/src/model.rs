//! Analytics' domain types and the rules for their fields.

use common::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Website {
    pub id: String,
    pub team_id: String,
    pub domain: String,
    pub name: String,
    pub timezone: String,
    pub tracking_code: String,
    pub created_at: i64,
}

/// A goal of a website: a custom event by name, or pageviews of the pages a path matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Goal {
    pub id: String,
    pub website_id: String,
    /// How results name it: the event's name, or `Visit <path>`.
    pub display_name: String,
    pub target: GoalTarget,
    /// A revenue goal's currency (ISO 4217); only event goals have one.
    pub currency: Option<String>,
    pub created_at: i64,
}

/// A revenue goal's currency: three capital letters, for an event goal only.
pub fn validate_currency(currency: Option<&str>, target: &GoalTarget) -> Result<Option<String>> {
    let Some(currency) = currency else { return Ok(None) };
    if !(currency.len() == 3 && currency.bytes().all(|b| b.is_ascii_uppercase())) {
        return Err(Error::validation("currency must be an ISO 4217 code such as EUR"));
    }
    if matches!(target, GoalTarget::Page(_)) {
        return Err(Error::validation("currency: only a custom event goal has revenue"));
    }
    Ok(Some(currency.to_owned()))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GoalTarget {
    /// A custom event's name.
    Event(String),
    /// A page path, `*` standing for any characters (`/blog/*`, `/docs/**`).
    Page(String),
}

impl GoalTarget {
    /// Validates what a goal is of: exactly one of an event name and a page path.
    pub fn new(event_name: Option<&str>, page_path: Option<&str>) -> Result<GoalTarget> {
        match (event_name, page_path) {
            (Some(name), None) => {
                common::text::check_line("event_name", name)?;
                // Counted before trimming, as the API document states it.
                let (length, name) = (name.chars().count(), name.trim());
                if name.is_empty() || length > 120 {
                    return Err(Error::validation("event_name must be 1–120 characters"));
                }
                if matches!(name, "pageview" | "engagement") {
                    return Err(Error::validation(format!(
                        "event_name: {name:?} is not a custom event; use page_path"
                    )));
                }
                Ok(GoalTarget::Event(name.to_owned()))
            }
            (None, Some(path)) => {
                common::text::check_line("page_path", path)?;
                if !path.starts_with('/') || path.chars().count() > 2000 {
                    return Err(Error::validation("page_path must start with / and be at most 2000 characters"));
                }
                Ok(GoalTarget::Page(path.to_owned()))
            }
            _ => Err(Error::validation("event_name: give either event_name or page_path")),
        }
    }

    /// The name results show, as Plausible names goals.
    pub fn display_name(&self) -> String {
        match self {
            GoalTarget::Event(name) => name.clone(),
            GoalTarget::Page(path) => format!("Visit {path}"),
        }
    }
}

/// Accepts a bare host or a URL and keeps the host: lower case, no scheme, port, path or
/// trailing dot. Only ASCII host names (punycode for international ones).
pub fn normalize_domain(input: &str) -> Result<String> {
    common::text::check_line("domain", input)?;
    let invalid = || Error::validation("domain must be a host name such as example.com");
    let mut host = input.trim().to_ascii_lowercase();
    for scheme in ["https://", "http://"] {
        if let Some(rest) = host.strip_prefix(scheme) {
            host = rest.to_owned();
        }
    }
    let host = host.split(['/', '?', '#']).next().unwrap_or_default();
    let host = host.split(':').next().unwrap_or_default().trim_end_matches('.');
    let labels: Vec<&str> = host.split('.').collect();
    let valid_label = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    if host.len() > 253 || labels.len() < 2 || !labels.iter().all(valid_label) {
        return Err(invalid());
    }
    Ok(host.to_owned())
}

/// The same host named the other way, with `www.` or without it (`www.com` itself has no other
/// name): a site may be named either way, and Plausible's tracker names it either way too.
pub fn other_www_name(domain: &str) -> Option<String> {
    match domain.strip_prefix("www.") {
        Some(rest) if rest.contains('.') => Some(rest.to_owned()),
        Some(_) => None,
        None => Some(format!("www.{domain}")),
    }
}

pub fn validate_name(name: &str) -> Result<String> {
    common::text::check_line("name", name)?;
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(Error::validation("name must be 1–100 characters"));
    }
    Ok(name.to_owned())
}

/// An IANA time zone name such as `Europe/Paris`.
pub fn validate_timezone(tz: &str) -> Result<String> {
    tz.parse::<chrono_tz::Tz>()
        .map(|tz| tz.name().to_owned())
        .map_err(|_| Error::validation("timezone must be an IANA time zone such as Europe/Paris"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_normalised() {
        assert_eq!(normalize_domain(" HTTPS://Example.COM:443/path?q#f ").unwrap(), "example.com");
        assert_eq!(normalize_domain("blog.example.co.uk.").unwrap(), "blog.example.co.uk");
        assert_eq!(other_www_name("www.example.com").as_deref(), Some("example.com"));
        assert_eq!(other_www_name("example.com").as_deref(), Some("www.example.com"));
        assert_eq!(other_www_name("www.com"), None);
        for bad in ["", "localhost", "exa mple.com", "-a.com", "a..com", "ex_ample.com", "éxample.com"] {
            assert!(normalize_domain(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn timezones_are_iana_names() {
        assert_eq!(validate_timezone("Europe/Paris").unwrap(), "Europe/Paris");
        assert!(validate_timezone("Mars/Olympus").is_err());
    }
}
