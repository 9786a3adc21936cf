//! Serving a service's gRPC routes on a listener bound by its `build()`.

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::Routes;

use crate::shutdown::Shutdown;

/// Serves until `shutdown` fires, then lets in-flight calls finish.
pub async fn serve(listener: TcpListener, routes: Routes, shutdown: Shutdown) -> Result<(), tonic::transport::Error> {
    tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .layer(telemetry::propagation::GrpcServerLayer)
        .add_routes(routes)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async move { shutdown.wait().await })
        .await
}

/// Why a service could not start.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Storage(#[from] crate::db::OpenError),
    #[error("cannot listen: {0}")]
    Listen(#[from] std::io::Error),
    #[error("cannot connect to Redis: {0}")]
    Redis(String),
}
