//! What the OAuth endpoints share: the scopes, where this server is reached, and an
//! authorization request's parameters with the checks made on them. Both the consent page
//! (`authorize`) and the token endpoint read requests through these.

use axum::http::{HeaderMap, header};

use crate::state::AppState;

/// Tool categories, as OAuth scopes.
pub(super) const SCOPES: [(&str, &str); 3] = [
    ("analytics:read", "Read statistics: list websites, overview, aggregate, timeseries, breakdowns, realtime"),
    ("management:read", "List websites"),
    ("management:write", "Create and update websites"),
];

/// The origin clients reach us at, which metadata documents name: the configured public URL,
/// or else the one this request came in at.
pub(crate) fn origin(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(url) = &state.public_url {
        return url.clone();
    }
    // A host as a URL's authority holds it (name or address, and a port); anything else, which
    // would be written into the metadata and the challenge as sent, is not taken.
    let authority = |h: &&str| !h.is_empty() && h.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).filter(authority).unwrap_or("localhost");
    let https = headers.get("x-forwarded-proto").and_then(|h| h.to_str().ok()) == Some("https");
    format!("{}://{host}", if https { "https" } else { "http" })
}

/// This server's MCP endpoint as a resource (RFC 8707, RFC 9728): what its tokens are for.
pub(crate) fn resource_url(state: &AppState, headers: &HeaderMap) -> String {
    format!("{}/mcp", origin(state, headers))
}

/// Whether a `resource` parameter names `ours`, with or without a trailing slash; scheme and host
/// compare as URLs do (case-insensitively, default port implied).
fn names_this_server(asked: &str, ours: &str) -> bool {
    let canonical = |text: &str| {
        let mut url = url::Url::parse(text).ok()?;
        if url.fragment().is_some() {
            return None;
        }
        let path = url.path().strip_suffix('/').unwrap_or(url.path()).to_owned();
        url.set_path(&path);
        Some(url)
    };
    matches!((canonical(asked), canonical(ours)), (Some(a), Some(b)) if a == b)
}

/// The resource the request's tokens are bound to: `ours` when the client named it, "" when it
/// named none, `None` when it named another server (`invalid_target`).
pub(super) fn bound_resource(p: &AuthorizeParams, ours: &str) -> Option<String> {
    let asked = p.every("resource");
    if asked.iter().all(|r| names_this_server(r, ours)) {
        Some(if asked.is_empty() { String::new() } else { ours.to_owned() })
    } else {
        None
    }
}

/// The first field, if any, holding a control character (a NUL would fail a PostgreSQL write and
/// none has a meaning in these forms). Passwords never reach a database and may hold anything.
pub(super) fn control_field(fields: &[(String, String)]) -> Option<&str> {
    fields
        .iter()
        .find(|(name, value)| {
            name != "password" && (name.chars().any(char::is_control) || value.chars().any(char::is_control))
        })
        .map(|(name, _)| name.as_str())
}

/// The authorization request's parameters, as the client sent them.
#[derive(Default)]
pub(super) struct AuthorizeParams {
    pub(super) all: Vec<(String, String)>,
}

impl AuthorizeParams {
    pub(super) fn parse(text: &str) -> Self {
        AuthorizeParams { all: form_urlencoded::parse(text.as_bytes()).into_owned().collect() }
    }

    pub(super) fn get(&self, name: &str) -> &str {
        self.all.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
    }

    /// The first of `names` the request holds more than once: RFC 6749 §3.1 allows each
    /// parameter once, and which of two values was meant cannot be told.
    pub(super) fn repeated<'a>(&self, names: &[&'a str]) -> Option<&'a str> {
        names.iter().copied().find(|name| self.all.iter().filter(|(k, _)| k == name).count() > 1)
    }

    pub(super) fn every(&self, name: &str) -> Vec<String> {
        self.all.iter().filter(|(k, _)| k == name).map(|(_, v)| v.clone()).collect()
    }

    /// The OAuth parameters only, to carry through the login and consent forms.
    pub(super) fn oauth_query(&self) -> String {
        const OAUTH: [&str; 8] = [
            "response_type",
            "client_id",
            "redirect_uri",
            "code_challenge",
            "code_challenge_method",
            "state",
            "scope",
            "resource",
        ];
        let mut query = form_urlencoded::Serializer::new(String::new());
        for name in OAUTH {
            let value = self.get(name);
            if !value.is_empty() {
                query.append_pair(name, value);
            }
        }
        query.finish()
    }
}
