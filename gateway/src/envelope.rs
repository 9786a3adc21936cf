//! The success envelope (docs/behaviour.md#external-rest-api), Plausible's bare bodies, and JSON
//! bodies, path and query parameters in.

use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use common::ErrorCode;
use serde::Serialize;
use serde::de::DeserializeOwned;
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};
use crate::schema::always_true;
use crate::state::AppState;
use crate::time::timestamp;

/// `{"success": true, "data": …, "timestamp": …}` with a status, and `pagination` for a page of
/// a paged list.
pub struct Envelope<T> {
    status: StatusCode,
    data: T,
    pagination: Option<Pagination>,
}

/// The success envelope.
#[derive(Serialize, ToSchema)]
pub struct Success<T> {
    #[schema(schema_with = always_true)]
    success: bool,
    data: T,
    /// When the answer was made (RFC 3339, UTC).
    #[schema(format = DateTime)]
    timestamp: String,
}

/// The success envelope of a paged list.
#[derive(Serialize, ToSchema)]
pub struct Paged<T> {
    #[schema(schema_with = always_true)]
    success: bool,
    data: T,
    pagination: Pagination,
    /// When the answer was made (RFC 3339, UTC).
    #[schema(format = DateTime)]
    timestamp: String,
}

/// Where this page sits in the whole list.
#[derive(Serialize, ToSchema, Clone, Copy, Debug, PartialEq)]
pub struct Pagination {
    /// From 1.
    #[schema(minimum = 1)]
    pub page: u64,
    pub per_page: u64,
    /// Rows in the whole list.
    pub total: u64,
}

pub fn ok<T: Serialize>(data: T) -> Envelope<T> {
    Envelope { status: StatusCode::OK, data, pagination: None }
}

pub fn paged<T: Serialize>(data: T, pagination: Option<Pagination>) -> Envelope<T> {
    Envelope { status: StatusCode::OK, data, pagination }
}

pub fn created<T: Serialize>(data: T) -> Envelope<T> {
    Envelope { status: StatusCode::CREATED, data, pagination: None }
}

impl<T: Serialize> IntoResponse for Envelope<T> {
    fn into_response(self) -> Response {
        let (success, data, timestamp) = (true, self.data, timestamp());
        match self.pagination {
            Some(pagination) => json(self.status, &Paged { success, data, pagination, timestamp }),
            None => json(self.status, &Success { success, data, timestamp }),
        }
        .unwrap_or_else(IntoResponse::into_response)
    }
}

/// A JSON answer, written into a `Vec` of 2 KiB, which holds a page of a few websites without
/// growing. axum's `Json` writes through a `BytesMut` writer, whose bookkeeping runs for each of
/// the dozen pieces serde writes per field, from 128 bytes that grow as they fill (README,
/// "Benchmarks").
fn json<T: Serialize>(status: StatusCode, body: &T) -> ApiResult<Response> {
    let mut buf = Vec::with_capacity(2048);
    // Only a map with keys JSON cannot hold, or a failing `Serialize`, fails: none of ours.
    serde_json::to_writer(&mut buf, body).map_err(common::Error::internal)?;
    Ok((status, [(axum::http::header::CONTENT_TYPE, JSON)], buf).into_response())
}

const JSON: axum::http::HeaderValue = axum::http::HeaderValue::from_static("application/json");

/// The Plausible drop-in's answer: the bare body, or the error in Plausible's shape.
pub fn plausible<T: Serialize>(result: ApiResult<T>) -> Response {
    match result {
        Ok(body) => json(StatusCode::OK, &body).unwrap_or_else(ApiError::into_plausible_response),
        Err(e) => e.into_plausible_response(),
    }
}

/// A JSON body. Malformed JSON, unknown fields, wrong types and missing fields are a 400
/// `VALIDATION_ERROR` whose message names the field.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let RawBody(bytes) = RawBody::from_request(req, state).await?;
        parse(&bytes).map(Body)
    }
}

/// The body as bytes, for handlers that must authenticate before judging it; a body over the
/// limit is a 413 `PAYLOAD_TOO_LARGE` in the envelope, not axum's plain-text answer.
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(ErrorCode::PayloadTooLarge, "request body is too large")
            } else if timed_out(&rejection) {
                ApiError::new(ErrorCode::RequestTimeout, "the request body did not arrive in time")
            } else {
                ApiError::new(ErrorCode::Validation, "request body could not be read")
            }
        })?;
        Ok(RawBody(bytes))
    }
}

/// An object nested in a body, which serde would also fill from an array of its fields in order
/// (as [`parse`] refuses for the whole body), where the OpenAPI document (and Plausible) take an
/// object only. Its fields are read in place, so that a refusal names their path
/// (`pagination.limit`).
struct Object<T>(T);

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for Object<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields<T>(std::marker::PhantomData<T>);
        impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for Fields<T> {
            type Value = T;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }
        deserializer.deserialize_map(Fields(std::marker::PhantomData)).map(Object)
    }
}

/// An object (see [`Object`]), for `#[serde(deserialize_with)]`.
pub fn object<'de, D: serde::Deserializer<'de>, T: serde::Deserialize<'de>>(deserializer: D) -> Result<T, D::Error> {
    <Object<T> as serde::Deserialize>::deserialize(deserializer).map(|Object(value)| value)
}

/// An object (see [`Object`]) or null, for `#[serde(deserialize_with)]`.
pub fn object_or_null<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    Ok(<Option<Object<T>> as serde::Deserialize>::deserialize(deserializer)?.map(|Object(value)| value))
}

/// The body had not arrived in full when the gateway stopped waiting for it
/// (`ZENOVAY_HTTP_BODY_TIMEOUT_MS`).
pub fn timed_out(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(error) = source {
        if error.is::<crate::deadline::TooLate>() {
            return true;
        }
        source = error.source();
    }
    false
}

/// Every body of this API is a JSON object: serde would also fill a struct from an array of its
/// fields in order (`[null, null]`), which no document allows.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'{') {
        return Err(ApiError::new(ErrorCode::Validation, "invalid request body: must be a JSON object"));
    }
    refuse_control_characters(bytes)?;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let mut message = describe(&err.into_inner());
        // serde_json says only "expected value" both of a missing value (`{"a": }`) and of a
        // number or list where a choice of words belongs (`{"plan": 1}`); the second is a type.
        if message == "expected value" && serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok() {
            message = "invalid type, expected a string".to_owned();
        }
        // A field left out is named as the field, as every other refusal of one is.
        if let Some(field) = message.strip_prefix("missing field `").and_then(|rest| rest.strip_suffix('`')) {
            let field = if path == "." { field.to_owned() } else { format!("{path}.{field}") };
            return ApiError::from(common::Error::invalid(field, "is required"));
        }
        // serde_path_to_error knows no path inside a body that ended early (`?`).
        if path == "." || path.contains('?') {
            ApiError::new(ErrorCode::Validation, format!("invalid request body: {message}"))
        } else {
            ApiError::from(common::Error::invalid(path, message))
        }
    })?;
    de.end().map_err(|e| ApiError::new(ErrorCode::Validation, format!("invalid request body: {}", describe(&e))))?;
    Ok(value)
}

/// Refuses a body with a stray control character (`common::text`) in any string or key, naming
/// where it sits, before any handler or store sees it. JSON can carry one only as a `\u00XX`
/// escape (serde_json refuses a raw one), so a body without such an escape, which is every
/// ordinary body, costs one scan; only a body with one is walked.
fn refuse_control_characters(bytes: &[u8]) -> Result<(), ApiError> {
    let escapes = bytes
        .windows(6)
        .any(|w| w.starts_with(b"\\u00") && (matches!(w[4], b'0' | b'1') || w[4..].eq_ignore_ascii_case(b"7f")));
    if !escapes {
        return Ok(());
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return Ok(()); // malformed: the typed parse says why
    };
    match stray_control(&value, &mut String::new()) {
        Some(path) => {
            let path = if path.is_empty() { "body".to_owned() } else { path };
            Err(common::text::refused(&path).into())
        }
        None => Ok(()),
    }
}

/// Where the first string or key holding a stray control character sits, in serde_path_to_error's
/// notation (`filters[0].value`).
fn stray_control(value: &serde_json::Value, path: &mut String) -> Option<String> {
    use serde_json::Value;
    let bad = |text: &str| text.chars().any(common::text::is_stray_control);
    match value {
        Value::String(text) => bad(text).then(|| path.clone()),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
            let len = path.len();
            path.push_str(&format!("[{i}]"));
            let found = stray_control(item, path);
            path.truncate(len);
            found
        }),
        Value::Object(map) => map.iter().find_map(|(key, item)| {
            let len = path.len();
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(key);
            let found = if bad(key) { Some(path.clone()) } else { stray_control(item, path) };
            path.truncate(len);
            found
        }),
        _ => None,
    }
}

/// serde_json's message without its " at line L column C" suffix: the field name says more.
fn describe(err: &serde_json::Error) -> String {
    if err.is_eof() {
        return "the body must be a complete JSON object".to_owned();
    }
    let text = err.to_string();
    without_value(text.split(" at line ").next().unwrap_or(&text))
}

/// serde quotes the value it refused (`invalid type: integer `12345678`, expected a string`),
/// and a value of the wrong type may be a secret (a password sent as a number): only its kind
/// is named.
fn without_value(message: &str) -> String {
    for lead in ["invalid type: ", "invalid value: "] {
        if let Some((unexpected, expected)) = message.strip_prefix(lead).and_then(|rest| rest.split_once(", expected"))
        {
            let kind: Vec<&str> = unexpected.split(' ').take_while(|word| !word.starts_with(['`', '"'])).collect();
            // `expected struct V2Include` names a type of ours, not what the body should hold.
            let expected = if expected.starts_with(" struct ") { " an object" } else { expected };
            return format!("{lead}{}, expected{expected}", kind.join(" "));
        }
    }
    message.to_owned()
}

/// A query's numbers are parsed by the standard library, whose words (`invalid digit found in
/// string`) describe the parser rather than what the parameter takes.
fn number_words(message: &str) -> &str {
    match message {
        // Every number of a query counts something from 1 (a limit, a page): "-1" is refused as
        // "abc" is.
        "invalid digit found in string" | "cannot parse integer from empty string" => {
            "must be a whole number, 1 or more"
        }
        "number too large to fit in target type" | "number too small to fit in target type" => "out of range",
        other => other,
    }
}

/// Path parameters (ids); one that does not decode (`%FF`) is a 400 `VALIDATION_ERROR` in the
/// envelope rather than axum's plain-text answer.
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send> axum::extract::FromRequestParts<AppState> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &AppState) -> Result<Self, ApiError> {
        let invalid = match axum::extract::RawPathParams::from_request_parts(parts, state).await {
            Ok(raw) => {
                raw.iter().find_map(|(name, value)| common::text::check_line(name, value).err()).map(ApiError::from)
            }
            // Named as the parameter it is about: `Invalid UTF-8 in `id``.
            Err(rejection) => {
                let text = rejection.body_text();
                let name = text.split('`').nth(1).unwrap_or("path").to_owned();
                Some(common::Error::invalid(name, "must be UTF-8 once percent-decoded").into())
            }
        };
        let parsed = match invalid {
            Some(invalid) => Err(invalid),
            None => axum::extract::Path::<T>::from_request_parts(parts, state)
                .await
                .map(|axum::extract::Path(value)| Path(value))
                .map_err(|rejection| ApiError::new(ErrorCode::Validation, format!("path: {}", rejection.body_text()))),
        };
        match parsed {
            Ok(path) => Ok(path),
            Err(invalid) => Err(crate::auth::refused_before_handler(parts, state, invalid).await),
        }
    }
}

/// Query-string parameters, with the same 400 `VALIDATION_ERROR` naming the parameter.
pub struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> axum::extract::FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, ApiError> {
        parse_query(parts.uri.query()).map(Params)
    }
}

/// Query-string parameters; for handlers that must authenticate before judging the query.
pub fn parse_query<T: DeserializeOwned>(query: Option<&str>) -> Result<T, ApiError> {
    let pairs = form_urlencoded::parse(query.unwrap_or_default().as_bytes());
    for (name, value) in pairs {
        common::text::check_line(&name, &name)?;
        common::text::check_line(&name, &value)?;
    }
    let de = serde_urlencoded::Deserializer::new(pairs);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let message = err.into_inner().to_string();
        // A parameter given twice is refused before any field is entered, so the path is "."
        match message.strip_prefix("duplicate field `").and_then(|rest| rest.strip_suffix('`')) {
            Some(name) => ApiError::from(common::Error::invalid(name, "given more than once")),
            None => ApiError::from(common::Error::invalid(path, number_words(&message))),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::without_value;

    #[test]
    fn a_refused_value_is_named_by_its_kind_and_a_type_of_ours_as_an_object() {
        let secret = without_value("invalid type: integer `12345678`, expected a string");
        assert_eq!(secret, "invalid type: integer, expected a string");
        let ours = without_value("invalid type: string \"foobar\", expected struct V2Include");
        assert_eq!(ours, "invalid type: string, expected an object");
    }
}
