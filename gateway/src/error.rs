//! The HTTP face of the error table: status, body (our envelope, or Plausible's under the
//! drop-in's mount), and the headers some errors carry.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use common::{Error, ErrorCode};
use serde::Serialize;
use utoipa::ToSchema;

use crate::schema::{ErrorCodeName, always_false};
use crate::time::timestamp;

/// Every error a handler returns. Wraps the shared [`Error`] so that gRPC errors from the
/// services convert with `?`.
#[derive(Debug)]
pub struct ApiError {
    pub error: Error,
    /// Seconds until a retry may succeed, for 429.
    pub retry_after_secs: Option<u64>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError { error: Error::new(code, message), retry_after_secs: None }
    }

    fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.error.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The message to show. It may quote what the client sent (a path, a field, an id), and a
    /// key sent in the wrong place is cut to its hint there (docs/behaviour.md#api-keys).
    fn message(&self) -> String {
        common::secret::redact_secrets(&self.error.text()).into_owned()
    }

    /// `WWW-Authenticate` and `Retry-After`, whichever body the error is rendered in.
    fn add_headers(&self, response: &mut Response) {
        let headers = response.headers_mut();
        if matches!(self.error.code, ErrorCode::Unauthorized | ErrorCode::ApiKeyExpired) {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"zenovay\""));
        }
        if let Some(secs) = self.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
    }

    /// The error in Plausible's body, `{"error": "…"}`, with the same status and headers.
    pub fn into_plausible_response(self) -> Response {
        self.error.log_cause();
        let mut response = (self.status(), Json(PlausibleError { error: self.message() })).into_response();
        self.add_headers(&mut response);
        response
    }
}

/// A validation error naming the request's `field` as the caller spelled it.
pub fn invalid(field: &str, message: impl std::fmt::Display) -> ApiError {
    Error::invalid(field, message).into()
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        ApiError { error, retry_after_secs: None }
    }
}

impl From<tonic::Status> for ApiError {
    fn from(status: tonic::Status) -> Self {
        Error::from(status).into()
    }
}

/// The error envelope.
#[derive(Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorEnvelope {
    #[schema(schema_with = always_false)]
    success: bool,
    error: ErrorBody,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    #[schema(value_type = ErrorCodeName)]
    code: &'static str,
    /// Safe to show; names the field for a `VALIDATION_ERROR`.
    message: String,
    #[schema(format = DateTime)]
    timestamp: String,
}

/// Plausible's error body, under `/plausible`.
#[derive(Serialize, ToSchema)]
pub struct PlausibleError {
    error: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.error.log_cause();
        let body = ErrorEnvelope {
            success: false,
            error: ErrorBody { code: self.error.code.as_str(), message: self.message(), timestamp: timestamp() },
        };
        let mut response = (self.status(), Json(body)).into_response();
        self.add_headers(&mut response);
        response
    }
}
