//! Tracker events leave the gateway in batches: every event that arrives while earlier batches
//! are on their way goes out in the next one, a group commit on the client side. One call per
//! batch instead of one per event saves most of the per-event cost of gRPC (encoding buffers,
//! HTTP/2 frames, a task on each side), which at thousands of events per second was most of
//! ingestion's CPU. A lone event goes out at once: batches form only under load.
//!
//! A batch call is a trace of its own (`ingest.batch`), linked to the request span of every
//! event it carries (up to the SDK's limit of links per span), so an event's trace leads to the
//! batch that stored it.

use std::sync::Arc;

use common::transport::GrpcTransport;
use common::{Error, ErrorCode, Result};
use opentelemetry::trace::{SpanContext, TraceContextExt as _};
use proto::analytics::v1 as anpb;
use proto::analytics::v1::analytics_service_client::AnalyticsServiceClient;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// Most events in one call.
const MAX_BATCH: usize = 200;
/// Largest event, encoded, that the gateway forwards. Real events are a few hundred bytes
/// (props are limited to 4 KiB, URLs to 2 KiB); the cap keeps a full batch under the 4 MiB a
/// gRPC server decodes, so one sender cannot make a batch, and its neighbours, fail.
pub const MAX_EVENT_BYTES: usize = 16 * 1024;
const _: () = assert!(MAX_BATCH * (MAX_EVENT_BYTES + 16) < 4 * 1024 * 1024);
/// Calls in flight at once. More than one, so that analytics always has the next batch at hand
/// while it writes one.
const IN_FLIGHT: usize = 4;

/// An event, the span of the request that sent it, and where its outcome goes.
type Pending = (anpb::TrackedEvent, SpanContext, oneshot::Sender<Result<bool>>);

/// The sending side of the batching task.
#[derive(Clone)]
pub struct EventBatcher(mpsc::Sender<Pending>);

impl EventBatcher {
    /// Starts the batching task, which stops once every `EventBatcher` is dropped.
    pub fn spawn(analytics: AnalyticsServiceClient<GrpcTransport>) -> EventBatcher {
        let (tx, rx) = mpsc::channel(8 * MAX_BATCH);
        tokio::spawn(send_batches(analytics, rx));
        EventBatcher(tx)
    }

    /// Whether analytics stored the event (false for a bot), once it is durable.
    pub async fn ingest(&self, event: anpb::TrackedEvent) -> Result<bool> {
        let origin = tracing::Span::current().context().span().span_context().clone();
        let (reply, outcome) = oneshot::channel();
        self.0.send((event, origin, reply)).await.map_err(|_| Error::unavailable("event ingestion"))?;
        outcome.await.map_err(|_| Error::unavailable("event ingestion"))?
    }
}

async fn send_batches(analytics: AnalyticsServiceClient<GrpcTransport>, mut rx: mpsc::Receiver<Pending>) {
    let calls = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        // Waiting for a free call before taking events lets them gather into the next batch.
        let Ok(permit) = calls.clone().acquire_owned().await else { return };
        if rx.recv_many(&mut batch, MAX_BATCH).await == 0 {
            return;
        }
        let span = tracing::info_span!("ingest.batch", events = batch.len());
        let (mut events, mut replies) = (Vec::with_capacity(batch.len()), Vec::with_capacity(batch.len()));
        for (event, origin, reply) in batch.drain(..) {
            if origin.is_valid() {
                span.add_link(origin);
            }
            events.push(event);
            replies.push(reply);
        }
        let mut analytics = analytics.clone();
        let call = async move {
            let _permit = permit;
            let answer = analytics.ingest_events(anpb::IngestEventsRequest { events }).await;
            match answer.map(|a| a.into_inner().outcomes) {
                Ok(outcomes) if outcomes.len() == replies.len() => {
                    for (reply, outcome) in replies.into_iter().zip(outcomes) {
                        drop(reply.send(result(outcome)));
                    }
                }
                Ok(outcomes) => {
                    let e = Error::internal(format!("{} outcomes for {} events", outcomes.len(), replies.len()));
                    replies.into_iter().for_each(|reply| drop(reply.send(Err(e.clone()))));
                }
                Err(status) => {
                    let e = Error::from(status);
                    replies.into_iter().for_each(|reply| drop(reply.send(Err(e.clone()))));
                }
            }
        };
        tokio::spawn(call.instrument(span));
    }
}

fn result(outcome: anpb::IngestOutcome) -> Result<bool> {
    if outcome.error_code.is_empty() {
        return Ok(outcome.stored);
    }
    match ErrorCode::parse(&outcome.error_code) {
        Some(code) => Err(Error::new(code, outcome.error_message)),
        None => Err(Error::internal(format!("unknown error code {}", outcome.error_code))),
    }
}
