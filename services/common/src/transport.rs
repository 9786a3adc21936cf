//! How a gRPC client reaches a service: over the network in the split mode, or straight into
//! the server's tower service in the all-in-one mode. Client code is the same either way; only
//! the transport differs, so the all-in-one exercises every contract the split mode does. Both
//! carry the caller's trace context (`traceparent`) to the server.

use std::convert::Infallible;
use std::time::Duration;

use http::Uri;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use telemetry::propagation::GrpcTraceLayer;
use tonic::body::Body;
use tower::{BoxError, Layer, ServiceExt, util::BoxCloneSyncService};

pub type GrpcTransport = BoxCloneSyncService<http::Request<Body>, http::Response<Body>, TransportError>;

/// A transport failure. A named type rather than a bare `BoxError`: tonic's
/// `Into<StdError>` bound on a boxed trait object trips a rustc lifetime-generality bug inside
/// async handlers, while a concrete error type converts for every lifetime.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct TransportError(BoxError);

/// A lazily connected HTTP/2 client: the process starts whether or not the service is up yet,
/// a connection is made at the first call (within 1 s, else the call fails) and again after it
/// breaks, and a call answers within 10 s. A call that fails on the way surfaces as a status
/// without a Zenovay code, which callers treat as "may not have completed" (the gateway answers
/// 503). Requests go straight to the HTTP/2 connection: tonic's own channel would first pass
/// each through a buffer and the buffer's task, one more hand-over between tasks (often between
/// threads) per call on the authorized path (README, "Benchmarks").
pub fn remote(url: &str) -> Result<GrpcTransport, RemoteError> {
    let origin: Uri = url.parse()?;
    let (Some(scheme), Some(authority)) = (origin.scheme().cloned(), origin.authority().cloned()) else {
        return Err(RemoteError::NotAnOrigin(url.to_owned()));
    };
    if scheme != http::uri::Scheme::HTTP {
        return Err(RemoteError::NotAnOrigin(url.to_owned()));
    }
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(1)));
    let client = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .timer(TokioTimer::new())
        .http2_keep_alive_interval(Duration::from_secs(30))
        // Kept however long no call comes, as tonic's channel did: a reconnect would cost the
        // first request after a quiet spell.
        .pool_idle_timeout(None)
        .build::<_, Body>(connector);
    let to_origin = move |mut req: http::Request<Body>| {
        let mut parts = req.uri().clone().into_parts();
        parts.scheme = Some(scheme.clone());
        parts.authority = Some(authority.clone());
        // A gRPC path with a valid origin always makes a valid URI.
        if let Ok(uri) = Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
        req
    };
    let service = tower::ServiceBuilder::new()
        .layer(GrpcTraceLayer::CLIENT)
        .map_err(TransportError)
        .timeout(CALL_TIMEOUT)
        .map_request(to_origin)
        .map_response(|response: http::Response<Incoming>| response.map(Body::new))
        .service(client);
    Ok(BoxCloneSyncService::new(service))
}

/// How long a call to another service may take before it fails as unavailable (503): it may or
/// may not have completed.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the checks on every request's way in may take: verifying a key or a session, and an
/// authorization decision. Their services answer from memory or one indexed read, so a check
/// still unanswered after this is stuck, not busy (a stopped process, a lost connection), and
/// the client gets its 503 without waiting out [`CALL_TIMEOUT`], which statistics queries and
/// password hashing under load may legitimately need.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// A check on a request's way in, cut short after [`CHECK_TIMEOUT`]: its service is stuck, and
/// the request is answered as after any call that may not have completed (503).
pub async fn checked<T>(call: impl Future<Output = Result<T, tonic::Status>>) -> Result<T, tonic::Status> {
    tokio::time::timeout(CHECK_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| Err(tonic::Status::deadline_exceeded("no answer within the check timeout")))
}
/// A service address that cannot be called.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("invalid service URL: {0}")]
    Invalid(#[from] http::uri::InvalidUri),
    #[error("a service URL is http:// and a host, as http://127.0.0.1:50051: {0}")]
    NotAnOrigin(String),
}

/// The server's own tower service, called in-process.
pub fn in_process<S>(server: S) -> GrpcTransport
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let traced = GrpcTraceLayer::CLIENT.layer(GrpcTraceLayer::SERVER.layer(server));
    BoxCloneSyncService::new(traced.map_err(|never| match never {}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_check_its_service_never_answers_is_unavailable_after_the_check_timeout() {
        let asked = tokio::time::Instant::now();
        let stuck = std::future::pending::<Result<(), tonic::Status>>();
        let answer = checked(stuck).await.unwrap_err();
        assert_eq!(crate::Error::from(answer).code, crate::ErrorCode::ServiceUnavailable);
        // Virtual time, which only the timers move.
        let waited = asked.elapsed();
        assert!(waited >= CHECK_TIMEOUT && waited < CHECK_TIMEOUT * 2, "{waited:?}");
    }
}
