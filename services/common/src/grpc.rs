//! Serving a service's gRPC routes on a listener bound by its `build()`.

use tokio::net::TcpListener;
use tonic::server::NamedService;
use tonic::service::Routes;
use tonic_health::ServingStatus;

use crate::shutdown::Shutdown;

/// Serves `server` (a generated gRPC server) with gRPC health checking (its service reported
/// SERVING until shutdown) and reflection, until `shutdown` fires; then reports NOT_SERVING and
/// goes on answering for `drain`, so that balancers polling its health stop sending calls first,
/// and lets in-flight calls finish.
pub async fn serve<S>(
    listener: TcpListener,
    server: S,
    drain: std::time::Duration,
    shutdown: Shutdown,
) -> Result<(), tonic::transport::Error>
where
    S: tower::Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
            Error = std::convert::Infallible,
        > + NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let service = S::NAME;
    let routes = Routes::new(server);
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_service_status(service, ServingStatus::Serving).await;
    // The descriptor set holds every service's contract: only this one is listed.
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .with_service_name(service)
        .with_service_name("grpc.health.v1.Health")
        .build_v1()
        .expect("the compiled-in descriptor set is valid");
    let stopped = std::sync::Arc::new(tokio::sync::Notify::new());
    let stopping = {
        let stopped = stopped.clone();
        async move {
            shutdown.wait().await;
            reporter.set_service_status(service, ServingStatus::NotServing).await;
            reporter.set_service_status("", ServingStatus::NotServing).await;
            tokio::time::sleep(drain).await;
            stopped.notify_one();
        }
    };
    // The builder's `tcp_nodelay` applies only to listeners it binds itself: without it here,
    // Nagle's algorithm held the second write of larger answers until the client's delayed
    // acknowledgement, 40 ms later.
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let serving = tonic::transport::Server::builder()
        .layer(telemetry::propagation::GrpcTraceLayer::SERVER)
        .add_routes(routes.add_service(health).add_service(reflection))
        .serve_with_incoming_shutdown(incoming, stopping);
    // A caller gives up on a call after `CALL_TIMEOUT`; a connection still open past that (one
    // that never sent a byte, held by a balancer) must not keep the process from stopping.
    let cut = async {
        stopped.notified().await;
        tokio::time::sleep(crate::transport::CALL_TIMEOUT).await;
    };
    tokio::select! {
        served = serving => served,
        () = cut => {
            tracing::warn!("connections still open at shutdown were cut");
            Ok(())
        }
    }
}

/// Why a service could not start.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Storage(#[from] crate::db::OpenError),
    #[error("cannot listen on {addr}")]
    Listen { addr: std::net::SocketAddr, source: std::io::Error },
    #[error("cannot connect to Redis")]
    Redis(#[from] redis::RedisError),
}
