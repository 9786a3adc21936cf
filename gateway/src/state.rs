//! What every handler shares: one client per service, over whichever transport the mode uses.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use common::bus::ChangeBus;
use common::secret::Digest;
use common::transport::GrpcTransport;
use proto::analytics::v1::analytics_service_client::AnalyticsServiceClient;
use proto::identity::v1::identity_service_client::IdentityServiceClient;
use proto::policy::v1::policy_service_client::PolicyServiceClient;

use crate::cache::{KeyCache, WebsiteLists};
use crate::decisions::Decisions;
use crate::ingest::EventBatcher;

/// Where the gateway reaches each service.
#[derive(Clone)]
pub struct Backends {
    pub identity: GrpcTransport,
    pub policy: GrpcTransport,
    pub analytics: GrpcTransport,
    /// Change notifications from the services. Without them the gateway caches nothing.
    pub changes: Option<Arc<dyn ChangeBus>>,
}

/// Cloned for every request, and more than once (each extractor and middleware that takes
/// `State`), so it is one pointer.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    pub identity: IdentityServiceClient<GrpcTransport>,
    pub policy: PolicyServiceClient<GrpcTransport>,
    /// Authorization decisions on their way to policy, in batches.
    pub decisions: Decisions,
    pub analytics: AnalyticsServiceClient<GrpcTransport>,
    /// Tracker events on their way to analytics, in batches.
    pub events: EventBatcher,
    /// Digest of the operator token; `None` turns the operator API off.
    pub operator_token: Option<Arc<Digest>>,
    pub keys: Option<Arc<KeyCache>>,
    /// Each team's websites, evicted by `Websites` notices; none without a bus.
    pub websites: Option<Arc<WebsiteLists>>,
    /// Trusted header naming the tracker's client address (e.g. `x-forwarded-for`).
    pub client_ip_header: Option<String>,
    /// Trusted header carrying the client's country (e.g. `cf-ipcountry`).
    pub country_header: Option<String>,
    /// The configured external origin (`https://api.example.com`, no trailing slash).
    pub public_url: Option<String>,
    /// Keys answered from the cache whose use was reported to identity this minute.
    pub reported_use: Arc<common::time::OncePerMinute>,
    /// Set once a shutdown signal arrived.
    pub draining: Arc<AtomicBool>,
    /// Requests answered per key, on their way to identity.
    pub usage: Arc<crate::usage::UsageCounter>,
    /// Keys leak reports are signed with; None: reports are refused.
    pub report_keys: Option<crate::report_keys::ReportKeys>,
}

impl AppState {
    pub fn new(
        backends: Backends,
        config: &crate::config::Config,
        report_keys: Option<crate::report_keys::ReportKeys>,
    ) -> Self {
        AppState(Arc::new(Shared {
            keys: backends.changes.as_deref().map(KeyCache::follow),
            websites: backends.changes.as_deref().map(crate::cache::website_lists),
            usage: crate::usage::UsageCounter::spawn(IdentityServiceClient::new(backends.identity.clone())),
            identity: IdentityServiceClient::new(backends.identity),
            decisions: Decisions::spawn(PolicyServiceClient::new(backends.policy.clone())),
            policy: PolicyServiceClient::new(backends.policy),
            events: EventBatcher::spawn(AnalyticsServiceClient::new(backends.analytics.clone())),
            analytics: AnalyticsServiceClient::new(backends.analytics)
                .max_decoding_message_size(proto::analytics::v1::MAX_REPLY_BYTES),
            operator_token: config.operator_token.as_deref().map(|t| Arc::new(Digest::of(t))),
            client_ip_header: config.client_ip_header.clone(),
            country_header: config.country_header.clone(),
            public_url: config.public_url.clone(),
            reported_use: Arc::default(),
            draining: Arc::default(),
            report_keys,
        }))
    }
}
