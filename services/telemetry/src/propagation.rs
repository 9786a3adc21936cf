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

/// `/package.Service/Method` → (`package.Service/Method`, `package.Service`, `Method`): the
/// span's name is a slice of the path, so that naming a call allocates nothing.
fn rpc_names(path: &str) -> (&str, &str, &str) {
    let path = path.trim_start_matches('/');
    let (service, method) = path.split_once('/').unwrap_or((path, ""));
    (path, service, method)
}

/// A span named `$name` for a call to `$path`, with the semantic conventions' RPC fields. A
/// span's name is fixed where it is made, so each kind of span needs its own call of this.
/// The constants are recorded for display, which a log line writes unquoted; the names come
/// from the path a caller sent, and a log line quotes and escapes them.
macro_rules! rpc_span {
    ($name:expr, $kind:literal, $path:expr) => {{
        let (name, service, method) = rpc_names($path);
        tracing::info_span!(
            $name,
            otel.name = name,
            otel.kind = %$kind,
            rpc.system = %"grpc",
            rpc.service = service,
            rpc.method = method,
        )
    }};
}

/// Reads a `traceparent` from HTTP headers, for a span about to be made the child of the caller.
pub fn remote_parent(headers: &http::HeaderMap) -> opentelemetry::Context {
    global::get_text_map_propagator(|propagator| propagator.extract(&HeaderExtractor(headers)))
}

/// The tracing name of [`Carried::server_span`]'s spans.
pub(crate) const CARRIED_SERVER_SPAN: &str = "grpc.server.carried";

/// The W3C trace context of a span, carried in a message rather than in headers (one call
/// carrying the work of several requests); both empty when tracing is off.
#[derive(Debug)]
pub struct Carried {
    pub traceparent: String,
    /// The vendors' entries of the caller's context, passed on unchanged.
    pub tracestate: String,
}

impl Carried {
    /// The context of `span`, to carry.
    pub fn of(span: &tracing::Span) -> Carried {
        let mut carrier = std::collections::HashMap::new();
        let context = span.context();
        global::get_text_map_propagator(|propagator| propagator.inject_context(&context, &mut carrier));
        Carried {
            traceparent: carrier.remove("traceparent").unwrap_or_default(),
            tracestate: carrier.remove("tracestate").unwrap_or_default(),
        }
    }

    /// The server span of a call to `path` carried inside another (one decision of
    /// `AuthorizeMany`): traced as if made alone, under a name of its own so that log lines,
    /// which the carrying call's span already frames, skip it (see `telemetry::init`).
    pub fn server_span(path: &str) -> tracing::Span {
        rpc_span!(CARRIED_SERVER_SPAN, "server", path)
    }

    /// Makes `span` a child of this context; a missing or malformed one leaves it where it is.
    pub fn follow(self, span: &tracing::Span) {
        use opentelemetry::trace::TraceContextExt;
        if self.traceparent.is_empty() {
            return;
        }
        let carrier = std::collections::HashMap::from([
            ("traceparent".to_owned(), self.traceparent),
            ("tracestate".to_owned(), self.tracestate),
        ]);
        let parent = global::get_text_map_propagator(|propagator| propagator.extract(&carrier));
        if parent.span().span_context().is_valid() {
            drop(span.set_parent(parent));
        }
    }
}

/// Which end of a call a [`GrpcTraceLayer`] wraps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Client,
    Server,
}

/// Opens a span per gRPC call: on a client it writes the span's `traceparent` into the request,
/// on a server it makes the span a child of the `traceparent` it reads.
#[derive(Clone, Copy, Debug)]
pub struct GrpcTraceLayer(Side);

impl GrpcTraceLayer {
    pub const CLIENT: GrpcTraceLayer = GrpcTraceLayer(Side::Client);
    pub const SERVER: GrpcTraceLayer = GrpcTraceLayer(Side::Server);

    /// The span of this end of a call to `path` (`/package.Service/Method`).
    pub fn span(&self, path: &str) -> tracing::Span {
        match self.0 {
            Side::Client => rpc_span!("grpc.client", "client", path),
            Side::Server => rpc_span!("grpc.server", "server", path),
        }
    }
}

impl<S> tower::Layer<S> for GrpcTraceLayer {
    type Service = GrpcTrace<S>;
    fn layer(&self, inner: S) -> GrpcTrace<S> {
        GrpcTrace { inner, side: self.0 }
    }
}

#[derive(Clone)]
pub struct GrpcTrace<S> {
    inner: S,
    side: Side,
}

impl<S, B> tower::Service<http::Request<B>> for GrpcTrace<S>
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
        let span = GrpcTraceLayer(self.side).span(req.uri().path());
        match self.side {
            Side::Client => {
                let context = span.context();
                global::get_text_map_propagator(|propagator| {
                    propagator.inject_context(&context, &mut HeaderInjector(req.headers_mut()))
                });
            }
            // A missing or malformed traceparent leaves the span a root; that is not an error.
            Side::Server => drop(span.set_parent(remote_parent(req.headers()))),
        }
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
            ("zenovay.identity.v1.IdentityService/VerifyApiKey", "zenovay.identity.v1.IdentityService", "VerifyApiKey")
        );
        assert_eq!(rpc_names("/odd"), ("odd", "odd", ""));
    }
}
