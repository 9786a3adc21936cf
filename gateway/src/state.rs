//! What every handler shares: one client per service, over whichever transport the mode uses.

use std::sync::Arc;

use common::secret::Digest;
use common::transport::GrpcTransport;
use proto::analytics::v1::analytics_service_client::AnalyticsServiceClient;
use proto::identity::v1::identity_service_client::IdentityServiceClient;
use proto::policy::v1::policy_service_client::PolicyServiceClient;

/// Where the gateway reaches each service.
#[derive(Clone)]
pub struct Backends {
    pub identity: GrpcTransport,
    pub policy: GrpcTransport,
    pub analytics: GrpcTransport,
}

#[derive(Clone)]
pub struct AppState {
    pub identity: IdentityServiceClient<GrpcTransport>,
    pub policy: PolicyServiceClient<GrpcTransport>,
    pub analytics: AnalyticsServiceClient<GrpcTransport>,
    /// Digest of the operator token; `None` turns the operator API off.
    pub operator_token: Option<Arc<Digest>>,
}

impl AppState {
    pub fn new(backends: Backends, operator_token: Option<&str>) -> Self {
        AppState {
            identity: IdentityServiceClient::new(backends.identity),
            policy: PolicyServiceClient::new(backends.policy),
            analytics: AnalyticsServiceClient::new(backends.analytics),
            operator_token: operator_token.map(|t| Arc::new(Digest::of(t))),
        }
    }
}
