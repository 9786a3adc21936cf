//! W3C trace context across gRPC: a client layer that opens a client span and writes its
//! `traceparent` into the request headers, and a server layer that reads it and opens the server
//! span as its child. Both wrap plain `http` services, so they fit tonic clients, tonic servers
//! and the in-process transport alike.

use std::task::{Context, Poll};

use opentelemetry::global;
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use tracing::Instrument;
use tracing::instrument::Instrumented;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// `/package.Service/Method` → (`package.Service`, `Method`).
fn rpc_names(path: &str) -> (&str, &str) {
    let path = path.trim_start_matches('/');
    path.split_once('/').unwrap_or((path, ""))
}

/// Reads a `traceparent` from HTTP headers, for a span about to be made the child of the caller.
pub fn remote_parent(headers: &http::HeaderMap) -> opentelemetry::Context {
    global::get_text_map_propagator(|propagator| propagator.extract(&HeaderExtractor(headers)))
}

#[derive(Clone, Copy, Default)]
pub struct GrpcClientLayer;

impl<S> tower::Layer<S> for GrpcClientLayer {
    type Service = GrpcClient<S>;
    fn layer(&self, inner: S) -> GrpcClient<S> {
        GrpcClient { inner }
    }
}

#[derive(Clone)]
pub struct GrpcClient<S> {
    inner: S,
}

impl<S, B> tower::Service<http::Request<B>> for GrpcClient<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Instrumented<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let (service, method) = rpc_names(req.uri().path());
        let span = tracing::info_span!(
            "grpc.client",
            otel.name = format!("{service}/{method}"),
            otel.kind = "client",
            rpc.system = "grpc",
            rpc.service = service,
            rpc.method = method,
        );
        let context = span.context();
        global::get_text_map_propagator(|propagator| {
            propagator.inject_context(&context, &mut HeaderInjector(req.headers_mut()))
        });
        self.inner.call(req).instrument(span)
    }
}

#[derive(Clone, Copy, Default)]
pub struct GrpcServerLayer;

impl<S> tower::Layer<S> for GrpcServerLayer {
    type Service = GrpcServer<S>;
    fn layer(&self, inner: S) -> GrpcServer<S> {
        GrpcServer { inner }
    }
}

#[derive(Clone)]
pub struct GrpcServer<S> {
    inner: S,
}

impl<S, B> tower::Service<http::Request<B>> for GrpcServer<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Instrumented<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let (service, method) = rpc_names(req.uri().path());
        let span = tracing::info_span!(
            "grpc.server",
            otel.name = format!("{service}/{method}"),
            otel.kind = "server",
            rpc.system = "grpc",
            rpc.service = service,
            rpc.method = method,
        );
        // A missing or malformed traceparent leaves the span a root; that is not an error.
        let _ = span.set_parent(remote_parent(req.headers()));
        self.inner.call(req).instrument(span)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpc_paths_split_into_service_and_method() {
        assert_eq!(
            rpc_names("/zenovay.identity.v1.IdentityService/VerifyApiKey"),
            ("zenovay.identity.v1.IdentityService", "VerifyApiKey")
        );
        assert_eq!(rpc_names("/odd"), ("odd", ""));
    }
}
