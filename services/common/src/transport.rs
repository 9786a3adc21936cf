//! How a gRPC client reaches a service: over the network in the split mode, or straight into
//! the server's tower service in the all-in-one mode. Client code is the same either way; only
//! the transport differs, so the all-in-one exercises every contract the split mode does. Both
//! carry the caller's trace context (`traceparent`) to the server.

use std::convert::Infallible;
use std::time::Duration;

use telemetry::propagation::GrpcTraceLayer;
use tonic::body::Body;
use tonic::transport::Endpoint;
use tower::{BoxError, Layer, ServiceExt, util::BoxCloneSyncService};

pub type GrpcTransport = BoxCloneSyncService<http::Request<Body>, http::Response<Body>, TransportError>;

/// A transport failure. A named type rather than a bare `BoxError`: tonic's
/// `Into<StdError>` bound on a boxed trait object trips a rustc lifetime-generality bug inside
/// async handlers, while a concrete error type converts for every lifetime.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct TransportError(BoxError);

/// A lazily connected channel: the process starts whether or not the service is up yet, and
/// a call to a service that is down fails fast with UNAVAILABLE (the gateway answers 503).
pub fn remote(url: &str) -> Result<GrpcTransport, tonic::transport::Error> {
    let channel = Endpoint::from_shared(url.to_owned())?
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(10))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .connect_lazy();
    let traced = GrpcTraceLayer::CLIENT.layer(channel);
    Ok(BoxCloneSyncService::new(traced.map_err(|e| TransportError(e.into()))))
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
