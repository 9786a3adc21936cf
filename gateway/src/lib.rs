//! The HTTP edge. Per external request it verifies the key with identity, asks policy for the
//! decision, then calls analytics. It owns no data (what it keeps are caches of the services')
//! and never touches a database.

pub mod apikey;
mod auth;
mod batches;
mod cache;
mod config;
mod console;
mod deadline;
mod decisions;
mod envelope;
mod error;
mod filters;
mod flows;
mod health;
mod ingest;
mod metrics;
#[cfg(test)]
mod module_graph;
mod openapi;
mod report_keys;
mod request_log;
mod routes;
mod rules;
mod schema;
mod session;
mod state;
mod time;
mod usage;
mod views;
mod vocabulary;

/// Entry points of the fuzz targets under `fuzz/`.
#[doc(hidden)]
pub mod fuzzing;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::{MatchedPath, OriginalUri};
use axum::http::{Method, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, delete, get, patch, post, put};
use common::ErrorCode;
use common::shutdown::Shutdown;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use opentelemetry::trace::TraceContextExt;
use tokio::net::TcpListener;
use tower::ServiceExt;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{Any, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use tracing_opentelemetry::OpenTelemetrySpanExt;

pub use crate::config::Config;
use crate::error::ApiError;
use crate::health::reachable;
use crate::state::AppState;
pub use crate::state::Backends;

pub struct Gateway {
    listener: TcpListener,
    router: Router,
    draining: Arc<AtomicBool>,
    drain: std::time::Duration,
    header_timeout: std::time::Duration,
    body_timeout: std::time::Duration,
    usage: Arc<usage::UsageCounter>,
}

impl Gateway {
    pub async fn build(config: &Config, backends: Backends) -> std::io::Result<Gateway> {
        let report_keys = match &config.secret_scanning_keys_file {
            Some(path) => Some(report_keys::ReportKeys::load(path)?),
            None => None,
        };
        let state = AppState::new(backends, config, report_keys);
        let listener = TcpListener::bind(config.http_addr).await.map_err(|e| {
            std::io::Error::new(e.kind(), format!("cannot listen on {} (ZENOVAY_HTTP_ADDR): {e}", config.http_addr))
        })?;
        let draining = state.draining.clone();
        let usage = state.usage.clone();
        let router = router(state);
        Ok(Gateway {
            listener,
            router,
            draining,
            drain: config.drain,
            header_timeout: config.header_timeout,
            body_timeout: config.body_timeout,
            usage,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// Serves until `shutdown` fires; drains for the configured time, then stops accepting and
    /// finishes in-flight requests.
    pub async fn run(self, shutdown: Shutdown) -> std::io::Result<()> {
        let (draining, drain) = (self.draining.clone(), self.drain);
        let stop = async move {
            shutdown.wait().await;
            draining.store(true, Ordering::Relaxed);
            tracing::info!(drain_ms = drain.as_millis() as u64, "draining before shutdown");
            tokio::time::sleep(drain).await;
        };
        tokio::pin!(stop);
        // axum::serve cannot bound how long a client takes to send its headers, so connections
        // are served here, with hyper's timer (README, "Configuration"). HTTP/1.1 only: telling
        // HTTP/2 apart reads the first bytes with no time bound, so a connection that sent
        // nothing was held for ever; TLS and HTTP/2 belong to the proxy in front.
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new()).header_read_timeout(self.header_timeout);
        let edge = edge(self.router, self.body_timeout, self.draining);
        let connections = GracefulShutdown::new();
        loop {
            let (tcp, peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: wait rather than spin.
                        tracing::warn!(error = %e, "cannot accept a connection");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                },
                () = &mut stop => break,
            };
            // Small answers must not wait on Nagle's algorithm and the client's delayed ACK.
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "cannot set TCP_NODELAY");
            }
            let service = edge.clone().map_request(move |mut req: axum::http::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                req
            });
            let connection = http.serve_connection(TokioIo::new(tcp), TowerToHyperService::new(service));
            let connection = connections.watch(connection);
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
            });
        }
        drop(self.listener);
        // Every request in flight has its whole body within the body timeout and its calls
        // within theirs; a connection still open past both (a stream a client keeps reading)
        // must not keep the process, and the usage counts with it, from stopping.
        let bound = self.body_timeout + common::transport::CALL_TIMEOUT;
        if tokio::time::timeout(bound, connections.shutdown()).await.is_err() {
            tracing::warn!(bound_ms = bound.as_millis() as u64, "connections still open at shutdown were cut");
        }
        self.usage.flush().await;
        Ok(())
    }
}

async fn not_found(method: Method, OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::new(ErrorCode::NotFound, format!("no route for {method} {}", uri.path()))
}

/// An address nothing answers: for a browser asking for a page outside the APIs, the console's
/// page saying so; otherwise the API's 404.
async fn page_or_not_found(
    axum::extract::State(state): axum::extract::State<AppState>,
    method: Method,
    headers: axum::http::HeaderMap,
    OriginalUri(uri): OriginalUri,
) -> Response {
    let page = matches!(method, Method::GET | Method::HEAD)
        && !uri.path().starts_with("/api/")
        && headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|accept| accept.contains("text/html"));
    if page {
        return console::not_found(&state, &headers).await;
    }
    not_found(method, OriginalUri(uri)).await.into_response()
}

async fn method_not_allowed(method: Method, OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::new(ErrorCode::MethodNotAllowed, format!("{method} is not allowed on {}", uri.path()))
}

fn panicked(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("handler panicked");
    ApiError::new(ErrorCode::Internal, "internal error").into_response()
}

async fn healthz() -> &'static str {
    "ok"
}

/// Ready when every service answers a call that reaches its database, within a second each.
async fn readyz(axum::extract::State(state): axum::extract::State<AppState>) -> Response {
    use proto::{analytics::v1 as anpb, identity::v1 as idpb, policy::v1 as popb};
    if let Some(draining) = health::draining(&state) {
        return draining.into_response();
    }
    let probe = || "readyz-probe".to_owned();
    let (mut identity, mut policy, mut analytics) =
        (state.identity.clone(), state.policy.clone(), state.analytics.clone());
    let (identity, policy, analytics) = tokio::join!(
        reachable(async move { identity.get_team(idpb::GetTeamRequest { team_id: probe() }).await.map(drop) }),
        reachable(async move {
            policy.get_team_settings(popb::GetTeamSettingsRequest { team_ids: vec![probe()] }).await.map(drop)
        }),
        reachable(async move {
            analytics.list_websites(anpb::ListWebsitesRequest { team_ids: vec![probe()] }).await.map(drop)
        }),
    );
    let down: Vec<&str> = [("identity", identity), ("policy", policy), ("analytics", analytics)]
        .into_iter()
        .filter_map(|(name, up)| (!up).then_some(name))
        .collect();
    if down.is_empty() {
        return envelope::ok(serde_json::json!({ "status": "ready" })).into_response();
    }
    // A service that answers but whose database or Redis is down fails the probe as well.
    let message = format!("not ready: {} not answering (the service, or its database)", down.join(", "));
    ApiError::new(ErrorCode::ServiceUnavailable, message).into_response()
}

/// The span of one HTTP request: a child of the caller's `traceparent` when there is one, with its
/// route recorded once routing knows it. Holds the request id and, once verified, the key id; never
/// a header value or a secret (a key sent as part of the path is cut to its hint; a request id
/// holding one was replaced before the span began).
fn request_span(req: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let span = tracing::info_span!(
        "http.server",
        otel.name = %req.method(),
        otel.kind = %"server",
        http.request.method = %req.method(),
        url.path = &*common::secret::redact_secrets(req.uri().path()),
        http.route = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
        request_id = &*common::secret::redact_secrets(
            req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default()
        ),
        trace_id = tracing::field::Empty,
        zenovay.key_id = tracing::field::Empty,
    );
    let _ = span.set_parent(telemetry::propagation::remote_parent(req.headers()));
    let trace_id = span.context().span().span_context().trace_id();
    if trace_id != opentelemetry::trace::TraceId::INVALID {
        span.record("trace_id", trace_id.to_string());
    }
    span
}

/// Records the matched route on the request's span and the request's duration by route.
async fn record_route(matched: Option<MatchedPath>, req: axum::extract::Request, next: middleware::Next) -> Response {
    let route = matched.map(|m| m.as_str().to_owned()).unwrap_or_default();
    // The span is already started, so its name stays the method (as the semantic conventions
    // allow); the route goes into `http.route`.
    tracing::Span::current().record("http.route", tracing::field::display(&route));
    let method = req.method().to_string();
    let started = std::time::Instant::now();
    let response = next.run(req).await;
    let attributes = [
        opentelemetry::KeyValue::new("http.route", route),
        opentelemetry::KeyValue::new("http.request.method", method),
        opentelemetry::KeyValue::new("http.response.status_code", i64::from(response.status().as_u16())),
    ];
    metrics::metrics().requests.record(started.elapsed().as_secs_f64(), &attributes);
    response
}

/// Prometheus text exposition of this process's metrics.
async fn prometheus() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], telemetry::prometheus_text())
}

/// What every request passes through, around the routes: a bound on how slowly its body may
/// arrive, its id, its span and log line, a panic turned into a 500, and, while draining, a
/// request to close the connection (so that no client holds an idle connection the closing
/// listener would cut). Layers of the `Router` itself would wrap each route anew, so that axum
/// clones every one of them for every request (README, "Benchmarks").
fn edge(
    router: Router,
    body_timeout: std::time::Duration,
    draining: Arc<AtomicBool>,
) -> impl tower::Service<
    axum::http::Request<hyper::body::Incoming>,
    Response = axum::http::Response<
        impl axum::body::HttpBody<Data = axum::body::Bytes, Error = impl Into<tower::BoxError>> + Send + 'static,
    >,
    Error = std::convert::Infallible,
    Future = impl Send + 'static,
> + Clone
+ Send
+ 'static {
    tower::ServiceBuilder::new()
        .map_request(move |req: axum::http::Request<hyper::body::Incoming>| {
            req.map(|body| axum::body::Body::new(deadline::Deadline::new(body, body_timeout)))
        })
        .map_request(without_secret_request_id)
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        // One line per request, the request log's: not a second at ERROR for each 5xx.
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_response(request_log::log_response)
                .on_failure(()),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .map_response(move |response| close_when_draining(&draining, response))
        .layer(CatchPanicLayer::custom(panicked))
        .service(router)
}

/// A caller's request id that holds a secret (a key pasted into the wrong header) is dropped, so
/// that the request gets an id of its own: the id is echoed in the answer, which proxies log.
fn without_secret_request_id(mut req: axum::http::Request<axum::body::Body>) -> axum::http::Request<axum::body::Body> {
    // One that is not text is dropped too: it could hide one.
    let kept = |id: &axum::http::HeaderValue| id.to_str().is_ok_and(|id| common::secret::redact_secrets(id) == id);
    if req.headers().get("x-request-id").is_some_and(|id| !kept(id)) {
        req.headers_mut().remove("x-request-id");
    }
    req
}

/// Asks the client to close its connection while the gateway drains, whatever the answer.
fn close_when_draining<B>(draining: &AtomicBool, mut response: axum::http::Response<B>) -> axum::http::Response<B> {
    if draining.load(Ordering::Relaxed) {
        response.headers_mut().insert(header::CONNECTION, axum::http::HeaderValue::from_static("close"));
    }
    response
}

/// The external API, `/api/external/v1`: each operation registered with its OpenAPI description,
/// and the document they make published at `/openapi.json`.
fn external_router() -> Router<AppState> {
    use routes::{external, goals, sites_api, stats, teams};
    use utoipa_axum::router::OpenApiRouter;
    use utoipa_axum::routes;

    // The Plausible drop-in answers in Plausible's own error shape everywhere under its mount,
    // unknown routes and methods included.
    let (plausible, plausible_api) = stats::dropin::routes()
        .merge(sites_api::routes())
        // A fallback does not survive two levels of nesting; a catch-all route does.
        .route("/{*rest}", any(stats::dropin::plausible_not_found))
        .split_for_parts();
    let mut plausible =
        OpenApiRouter::from(plausible.method_not_allowed_fallback(stats::dropin::plausible_method_not_allowed));
    *plausible.get_openapi_mut() = plausible_api;

    let (router, api) = OpenApiRouter::with_openapi(<openapi::ApiDoc as utoipa::OpenApi>::openapi())
        .routes(routes!(openapi::serve))
        .merge(external::routes())
        .merge(goals::routes())
        .merge(stats::routes())
        .merge(teams::routes())
        .nest("/plausible", plausible)
        .split_for_parts();
    openapi::publish(api);
    router
}

/// OAuth for MCP clients and `/mcp` itself.
fn oauth_router(state: &AppState) -> Router<AppState> {
    use routes::{mcp, oauth};

    // MCP clients may run in a browser: the OAuth endpoints and /mcp take bearer tokens, never
    // cookies, so any origin may call them.
    let open_cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::HeaderName::from_static("mcp-protocol-version"),
            header::HeaderName::from_static("mcp-session-id"),
        ])
        // A browser client reads the challenge to find the metadata and the scopes to ask for.
        .expose_headers([header::WWW_AUTHENTICATE, header::HeaderName::from_static("mcp-session-id")]);
    let mcp_service = tower::ServiceBuilder::new()
        .layer(middleware::from_fn_with_state(state.clone(), mcp::require_token))
        .service(mcp::service(state.clone()));
    Router::new()
        .route("/.well-known/oauth-protected-resource", get(oauth::protected_resource))
        .route("/.well-known/oauth-protected-resource/mcp", get(oauth::protected_resource))
        .route("/.well-known/oauth-authorization-server", get(oauth::authorization_server))
        .route("/oauth/register", post(oauth::register))
        .route("/oauth/token", post(oauth::token))
        .route_service("/mcp", mcp_service)
        // Set before the CORS layer so that it wraps this fallback too; set after, by the outer
        // router, it would answer preflights (OPTIONS) with 405.
        .method_not_allowed_fallback(method_not_allowed)
        .layer(open_cors)
        // The consent page is a same-site form: no CORS.
        .route("/oauth/authorize", get(oauth::authorize_page).post(oauth::authorize_submit))
}

/// The dashboard's API, `/api/v1`, for sessions (the console's among them).
fn dashboard_router(state: &AppState) -> Router<AppState> {
    use routes::{account, goals, keys, oauth, teams, websites};

    Router::new()
        .route("/auth/signup", post(account::signup))
        .route("/auth/login", post(account::login))
        .route("/auth/logout", post(account::logout))
        .route("/me", get(account::me))
        .route("/teams", get(account::list_teams).post(account::create_team))
        .route("/teams/{id}/plan", put(account::set_plan))
        .route("/teams/{id}/members", get(teams::list_members).post(teams::add_member))
        .route("/teams/{id}/members/{user_id}", patch(teams::change_role).delete(teams::remove_member))
        .route("/teams/{id}/api-key-policy", put(teams::put_policy))
        .route("/teams/{id}/audit-log", get(teams::get_audit_log))
        .route("/teams/{id}/usage", get(teams::get_usage))
        .route("/account/api-keys", get(keys::list_keys).post(keys::create_key))
        .route("/account/api-keys/{id}", patch(keys::update_key).delete(keys::revoke_key))
        .route("/account/api-keys/{id}/rotate", post(keys::rotate_key))
        .route("/account/api-keys/{id}/usage", get(keys::key_usage))
        .route("/secret-scanning/reports", post(routes::secret_scanning::reports))
        .route("/account/mcp-connections", get(oauth::list_connections))
        .route("/account/mcp-connections/{id}", delete(oauth::revoke_connection))
        .route("/account/password", put(account::change_password))
        .route("/account/sessions", get(account::list_sessions))
        .route("/account/sessions/{id}", delete(account::revoke_session))
        .route("/websites", get(websites::list).post(websites::create))
        .route("/websites/{id}", patch(websites::update).delete(websites::delete))
        .route("/websites/{id}/stats", get(websites::stats))
        .route("/websites/{id}/realtime", get(websites::realtime))
        .route("/websites/{id}/properties", get(websites::properties))
        .route("/websites/{id}/goals", get(goals::session_list).post(goals::session_create))
        .route("/websites/{id}/goals/{goal_id}", delete(goals::session_delete))
        // Its own, so that an unknown path's 404 carries the headers every answer here does.
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), session::cross_site_guard))
        .layer(middleware::map_response(private_answer))
        .route_layer(middleware::from_fn(record_route))
}

/// The dashboard's answers are one person's: no cache keeps them (an answer that says more, such
/// as a new key's `no-store`, keeps its own), and none is read as anything but what it says it is.
async fn private_answer(mut response: axum::response::Response) -> axum::response::Response {
    let headers = response.headers_mut();
    headers.entry(header::CACHE_CONTROL).or_insert(axum::http::HeaderValue::from_static("no-store"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, axum::http::HeaderValue::from_static("nosniff"));
    response
}

fn router(state: AppState) -> Router {
    use routes::events;

    let dashboard = dashboard_router(&state);

    let external = external_router()
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), auth::rate_limit_headers))
        .route_layer(middleware::from_fn(record_route));

    let oauth = oauth_router(&state);

    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(prometheus))
        // Browsers post from every tracked site. The route's own fallback lets the CORS layer wrap
        // it and answer preflights (a JSON body from a browser asks first); the router's would
        // stand outside the layer and answer them 405.
        .route(
            "/api/event",
            post(events::ingest).fallback(method_not_allowed).layer(
                CorsLayer::new().allow_origin(Any).allow_methods([Method::POST]).allow_headers([header::CONTENT_TYPE]),
            ),
        )
        .route_layer(middleware::from_fn(record_route))
        .merge(oauth)
        .merge(console::router())
        .nest("/api/v1", dashboard)
        .nest("/api/external/v1", external)
        .fallback(page_or_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}
