//! Tracker events leave the gateway in batches (`batches.rs`): one call per batch instead of one
//! per event saves most of the per-event cost of gRPC (encoding buffers, HTTP/2 frames, a task
//! on each side), which at thousands of events per second was most of ingestion's CPU.
//!
//! A batch call is a trace of its own (`ingest.batch`), linked to the request span of every
//! event it carries (up to the SDK's limit of links per span), so an event's trace leads to the
//! batch that stored it.

use common::Result;
use common::transport::GrpcTransport;
use futures::FutureExt as _;
use opentelemetry::trace::{SpanContext, TraceContextExt as _};
use proto::analytics::v1 as anpb;
use proto::analytics::v1::analytics_service_client::AnalyticsServiceClient;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::batches::{Abandoned, Batches, Shape, succeeded};

/// Most events in one call.
const MAX_BATCH: usize = anpb::MAX_INGEST_EVENTS;
/// Largest event, encoded, that the gateway forwards. Real events are a few hundred bytes; the
/// cap admits the largest Plausible takes and keeps a full batch within what analytics decodes,
/// so one sender cannot make a batch, and its neighbours, fail.
pub const MAX_EVENT_BYTES: usize = anpb::MAX_EVENT_BYTES;
/// Four calls in flight, so that analytics always has the next batch at hand while it writes one.
const SHAPE: Shape = Shape {
    to: "event ingestion",
    max_batch: MAX_BATCH,
    in_flight: 4,
    abandoned: Abandoned::Sent,
    timeout: common::transport::CALL_TIMEOUT,
};

/// An event and the span of the request that sent it.
type Tracked = (anpb::TrackedEvent, SpanContext);

/// The sending side of the batching task.
pub struct EventBatcher(Batches<Tracked, bool>);

impl EventBatcher {
    /// Starts the batching task, which stops once the `EventBatcher` is dropped.
    pub fn spawn(analytics: AnalyticsServiceClient<GrpcTransport>) -> EventBatcher {
        EventBatcher(Batches::spawn(
            SHAPE,
            Box::new(move |batch: Vec<Tracked>| {
                let span = tracing::info_span!("ingest.batch", events = batch.len());
                let mut events = Vec::with_capacity(batch.len());
                for (event, origin) in batch {
                    if origin.is_valid() {
                        span.add_link(origin);
                    }
                    events.push(event);
                }
                let mut analytics = analytics.clone();
                async move {
                    let answer = analytics.ingest_events(anpb::IngestEventsRequest { events }).await?;
                    Ok(answer.into_inner().outcomes.into_iter().map(result).collect())
                }
                .instrument(span)
                .boxed()
            }),
        ))
    }

    /// Whether analytics stored the event (false for a bot), once it is durable.
    pub async fn ingest(&self, event: anpb::TrackedEvent) -> Result<bool> {
        let origin = tracing::Span::current().context().span().span_context().clone();
        self.0.ask((event, origin)).await
    }
}

fn result(outcome: anpb::IngestOutcome) -> Result<bool> {
    succeeded(&outcome.error_code, outcome.error_message, None).map(|()| outcome.stored)
}
