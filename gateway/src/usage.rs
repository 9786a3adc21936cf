//! Per-key usage by UTC day and outcome (README, "API keys"): counted in this gateway's memory
//! and added to identity's counts about once a second, so that a request costs no store write
//! of its own. Counts that could not be sent are kept for the next attempt, and sent once more
//! when the gateway stops.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use axum::http::StatusCode;
use common::transport::GrpcTransport;
use proto::identity::v1 as idpb;
use proto::identity::v1::identity_service_client::IdentityServiceClient;

pub const DAY_MS: i64 = 24 * 60 * 60 * 1000;
const FLUSH_EVERY: Duration = Duration::from_secs(1);

type Counts = HashMap<(String, i64, &'static str), i64>;

pub struct UsageCounter {
    counts: Mutex<Counts>,
    identity: IdentityServiceClient<GrpcTransport>,
}

/// The outcome a response counts as.
fn outcome(status: StatusCode) -> &'static str {
    match status.as_u16() {
        429 => "rate_limited",
        400..=499 => "client_error",
        500..=599 => "server_error",
        _ => "success",
    }
}

impl UsageCounter {
    /// A counter that sends its counts every second while it is alive.
    pub fn spawn(identity: IdentityServiceClient<GrpcTransport>) -> Arc<UsageCounter> {
        let counter = Arc::new(UsageCounter { counts: Mutex::default(), identity });
        let weak: Weak<UsageCounter> = Arc::downgrade(&counter);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(FLUSH_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(counter) = weak.upgrade() else { return };
                counter.flush().await;
            }
        });
        counter
    }

    /// Counts one answered request of a key.
    pub fn count(&self, key_id: &str, status: StatusCode) {
        let day = common::time::now_ms().div_euclid(DAY_MS);
        let mut counts = self.counts.lock().expect("usage lock poisoned");
        *counts.entry((key_id.to_owned(), day, outcome(status))).or_default() += 1;
    }

    /// Sends what was counted; on failure keeps it for the next attempt.
    pub async fn flush(&self) {
        let taken = std::mem::take(&mut *self.counts.lock().expect("usage lock poisoned"));
        if taken.is_empty() {
            return;
        }
        let counts = taken
            .iter()
            .map(|((key_id, day, outcome), count)| idpb::KeyUsageCount {
                key_id: key_id.clone(),
                day: *day,
                outcome: (*outcome).to_owned(),
                count: *count,
            })
            .collect();
        if let Err(status) = self.identity.clone().record_key_usage(idpb::RecordKeyUsageRequest { counts }).await {
            tracing::warn!(grpc.code = ?status.code(), "could not record key usage; keeping it for the next attempt");
            let mut counts = self.counts.lock().expect("usage lock poisoned");
            for (key, count) in taken {
                *counts.entry(key).or_default() += count;
            }
        }
    }
}
