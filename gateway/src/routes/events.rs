//! Public event ingestion, `POST /api/event` (docs/behaviour.md#public-tracking): Plausible's Events API body, or the
//! abbreviated form Plausible's browser script sends as `text/plain`. No key.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use common::{Error, ErrorCode};
use proto::analytics::v1 as anpb;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::envelope::{RawBody, ok, parse};
use crate::error::ApiResult;
use crate::state::AppState;

/// Unknown fields are ignored: trackers send more than we use.
#[derive(Deserialize)]
pub struct EventBody {
    /// An integer is taken as its digits, as Plausible takes it (a `404` event).
    #[serde(alias = "n", default, deserialize_with = "text_or_integer")]
    name: Option<String>,
    #[serde(alias = "u")]
    url: Option<String>,
    #[serde(alias = "d")]
    domain: Option<String>,
    tracking_code: Option<String>,
    #[serde(alias = "r")]
    referrer: Option<String>,
    #[serde(alias = "p")]
    props: Option<Value>,
    /// Older scripts send the properties as a JSON string.
    #[serde(alias = "m")]
    meta: Option<Value>,
    #[serde(alias = "$")]
    revenue: Option<Value>,
    /// Plausible's hash mode: `1` (or `true`) when the site routes by the URL's fragment.
    #[serde(alias = "h", alias = "hashMode")]
    hash_mode: Option<Value>,
    /// An `engagement` event's scroll depth, percent.
    #[serde(rename = "sd")]
    scroll_depth: Option<Value>,
    /// An `engagement` event's engaged time, milliseconds.
    #[serde(rename = "e")]
    engagement_ms: Option<Value>,
    /// `false` for an event that is no interaction of the visitor's: it does not end a bounce.
    #[serde(alias = "i")]
    interactive: Option<Value>,
}

fn text_or_integer<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum TextOrInteger {
        Text(String),
        Integer(i64),
    }
    Ok(Option::<TextOrInteger>::deserialize(deserializer)
        .map_err(|_| serde::de::Error::custom("must be a string or an integer"))?
        .map(|name| match name {
            TextOrInteger::Text(text) => text,
            TextOrInteger::Integer(number) => number.to_string(),
        }))
}

/// An integer, or a string holding one, as Plausible reads `sd` and `e`; anything else is as if
/// not sent.
fn integer(value: Option<&Value>) -> Option<i64> {
    match value? {
        Value::Number(n) => n.as_i64(),
        Value::String(text) => text.parse().ok(),
        _ => None,
    }
}

fn required(value: Option<String>, name: &str) -> ApiResult<String> {
    value.filter(|v| !v.is_empty()).ok_or_else(|| Error::validation(format!("{name}: is required")).into())
}

/// An object, or a JSON string holding one; empty for none.
fn object_json(value: Option<Value>, name: &str) -> ApiResult<String> {
    match value {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::Object(map)) => Ok(Value::Object(map).to_string()),
        Some(Value::String(text)) if text.trim_start().starts_with('{') => Ok(text),
        Some(_) => Err(Error::validation(format!("{name}: must be an object")).into()),
    }
}

fn header_value(headers: &HeaderMap, name: Option<&str>) -> Option<String> {
    Some(headers.get(name?)?.to_str().ok()?.trim().to_owned())
}

/// The event a tracker's body describes, without what the request's headers say (user agent,
/// client address, country).
pub(crate) fn tracked_event(body: &[u8]) -> ApiResult<anpb::TrackedEvent> {
    let body: EventBody = parse(body)?;
    // Without a domain or tracking code, Plausible takes the page's host; analytics finds the
    // site by it with or without `www.`.
    let host = || {
        let url = url::Url::parse(body.url.as_deref()?).ok()?;
        Some(url.host_str()?.to_owned())
    };
    let domain = match (body.domain.as_deref().map(str::trim), body.tracking_code.clone()) {
        (Some(domain), _) if !domain.is_empty() => domain.to_owned(),
        (_, Some(code)) if !code.is_empty() => code,
        _ => required(host(), "domain")?,
    };
    let props = match body.props {
        Some(props) => object_json(Some(props), "props")?,
        None => object_json(body.meta, "props")?,
    };
    Ok(anpb::TrackedEvent {
        domain,
        name: required(body.name, "name")?,
        url: required(body.url, "url")?,
        referrer: body.referrer.unwrap_or_default(),
        props_json: props,
        // A revenue that is no object is none, and the event is kept, as Plausible keeps it
        // (analytics judges the object itself).
        revenue_json: object_json(body.revenue, "revenue").unwrap_or_default(),
        hash_mode: matches!(&body.hash_mode, Some(Value::Bool(true)))
            || body.hash_mode.as_ref().and_then(Value::as_u64) == Some(1),
        scroll_depth: integer(body.scroll_depth.as_ref()),
        engagement_ms: integer(body.engagement_ms.as_ref()),
        non_interactive: body.interactive == Some(Value::Bool(false)),
        ..Default::default()
    })
}

pub async fn ingest(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    let event = anpb::TrackedEvent {
        user_agent: headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned(),
        client_ip: crate::session::trusted_address(&headers, state.client_ip_header.as_deref())
            .unwrap_or(peer.ip())
            .to_string(),
        country: header_value(&headers, state.country_header.as_deref()).unwrap_or_default(),
        ..tracked_event(&body)?
    };
    if prost::Message::encoded_len(&event) > crate::ingest::MAX_EVENT_BYTES {
        let limit = crate::ingest::MAX_EVENT_BYTES / 1024;
        return Err(Error::new(ErrorCode::PayloadTooLarge, format!("an event may be at most {limit} KiB")).into());
    }
    let stored = ingest_for_each_domain(&state, event).await?;
    let mut response = ok(json!({ "stored": stored })).into_response();
    *response.status_mut() = StatusCode::ACCEPTED;
    if !stored {
        // How Plausible tells a sender that it dropped the event (a bot's, here).
        response.headers_mut().insert("x-plausible-dropped", http::HeaderValue::from_static("1"));
    }
    response.extensions_mut().insert(crate::request_log::QuietLog);
    Ok(response)
}

/// Stores `event` for each site its `domain` names: Plausible's tracker may name several,
/// comma-separated, to count one page view on several dashboards. Sites not found are passed
/// over as Plausible passes them over; the first refusal is the answer when none took it.
/// Whether the event was stored for any.
async fn ingest_for_each_domain(state: &AppState, event: anpb::TrackedEvent) -> ApiResult<bool> {
    if !event.domain.contains(',') {
        return Ok(state.events.ingest(event).await?);
    }
    let domains: Vec<String> = event.domain.split(',').map(|d| d.trim().to_owned()).collect();
    let (mut stored, mut found, mut first_refusal) = (false, false, None);
    for domain in domains.into_iter().filter(|d| !d.is_empty()) {
        match state.events.ingest(anpb::TrackedEvent { domain, ..event.clone() }).await {
            Ok(this) => (stored, found) = (stored || this, true),
            // An unknown site; a fault of the event itself is refused for every site alike.
            Err(e) if e.code == ErrorCode::Validation => {
                first_refusal.get_or_insert(e);
            }
            Err(e) => return Err(e.into()),
        }
    }
    match first_refusal {
        Some(refusal) if !found => Err(refusal.into()),
        _ => Ok(stored),
    }
}
