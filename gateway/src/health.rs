//! Probes of the services behind the gateway, for readiness (`/readyz`) and Plausible's health
//! check: apart from the crate root so that the routes that probe do not depend on it.

/// Whether a probe call was answered within a second; NOT_FOUND is an answer from a service whose
/// database responded.
pub(crate) async fn reachable(call: impl std::future::Future<Output = Result<(), tonic::Status>>) -> bool {
    match tokio::time::timeout(std::time::Duration::from_secs(1), call).await {
        Ok(Ok(())) => true,
        Ok(Err(status)) => status.code() == tonic::Code::NotFound,
        Err(_) => false,
    }
}

/// A readiness check's answer while the gateway drains before it stops, so that load balancers
/// take it out of rotation; None otherwise.
pub(crate) fn draining(state: &crate::state::AppState) -> Option<crate::error::ApiError> {
    let draining = state.draining.load(std::sync::atomic::Ordering::Relaxed);
    draining.then(|| crate::error::ApiError::new(common::ErrorCode::ServiceUnavailable, "not ready: shutting down"))
}
