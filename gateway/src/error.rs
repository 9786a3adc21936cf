//! The HTTP face of the error table: status, envelope, and the headers some errors carry.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use common::{Error, ErrorCode};
use serde_json::json;

use crate::envelope::timestamp;

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

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = self.error.code;
        let status = StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = json!({
            "success": false,
            "error": { "code": code.as_str(), "message": self.error.text(), "timestamp": timestamp() },
        });
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        if matches!(code, ErrorCode::Unauthorized | ErrorCode::ApiKeyExpired) {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"zenovay\""));
        }
        if let Some(secs) = self.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
