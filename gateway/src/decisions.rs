//! Authorization decisions leave the gateway in batches (`batches.rs`), as tracker events do:
//! under load one `AuthorizeMany` call with policy, and in policy one write to Redis, carry
//! several decisions. Each decision is still made exactly as `Authorize` makes it; those of one
//! user's keys under one monthly limit in a call take from their windows and month in one
//! atomic script, as they would one after another.
//!
//! A decision is traced as a part of its own request: its client span here and its server span
//! in policy are those of an `Authorize` call, joined by the trace context (`traceparent` and
//! `tracestate`) each decision carries. The batch call is a trace of its own (`policy.batch`).

use common::Result;
use common::transport::GrpcTransport;
use futures::FutureExt as _;
use proto::policy::v1 as popb;
use proto::policy::v1::policy_service_client::PolicyServiceClient;
use telemetry::propagation::{Carried, GrpcTraceLayer};
use tracing::Instrument as _;

use crate::batches::{Abandoned, Batches, Shape, succeeded};

/// One call in flight: the next batch gathers while policy answers it, so batches are as large
/// as the load makes them and each decision costs both ends least; two or four in flight split
/// the same decisions into smaller calls (README, "The authorized request"). The price: a call
/// answers once all of its decisions are made, so one slow decision (a Redis call at its
/// timeout, a settings read) delays its batch and the one gathering behind it. Policy takes up
/// to 256 decisions in a call; 64 bounds what one slow decision holds up, and is twice what the
/// benchmark's 32 connections ever gather.
const SHAPE: Shape = Shape {
    to: "authorization",
    max_batch: 64,
    in_flight: 1,
    abandoned: Abandoned::Dropped,
    timeout: common::transport::CHECK_TIMEOUT,
};
const _: () = assert!(SHAPE.max_batch <= popb::MAX_AUTHORIZE_CALLS);

/// The sending side of the batching task.
pub struct Decisions(Batches<popb::AuthorizeCall, popb::AuthorizeResponse>);

impl Decisions {
    /// Starts the batching task, which stops once the `Decisions` is dropped.
    pub fn spawn(policy: PolicyServiceClient<GrpcTransport>) -> Decisions {
        Decisions(Batches::spawn(
            SHAPE,
            Box::new(move |calls: Vec<popb::AuthorizeCall>| {
                let span = tracing::info_span!(telemetry::POLICY_BATCH_SPAN, decisions = calls.len());
                let mut policy = policy.clone();
                async move {
                    let answer = policy.authorize_many(popb::AuthorizeManyRequest { calls }).await?;
                    Ok(answer.into_inner().outcomes.into_iter().map(result).collect())
                }
                .instrument(span)
                .boxed()
            }),
        ))
    }

    /// Policy's decision for one request, as `Authorize` answers it.
    pub async fn authorize(&self, request: popb::AuthorizeRequest) -> Result<popb::AuthorizeResponse> {
        let span = GrpcTraceLayer::CLIENT.span(popb::AUTHORIZE_PATH);
        let Carried { traceparent, tracestate } = Carried::of(&span);
        let call = popb::AuthorizeCall { request: Some(request), traceparent, tracestate };
        self.0.ask(call).instrument(span).await
    }
}

fn result(outcome: popb::AuthorizeOutcome) -> Result<popb::AuthorizeResponse> {
    succeeded(&outcome.error_code, outcome.error_message, outcome.error_field)?;
    outcome.response.ok_or_else(|| common::Error::internal("policy returned no decision"))
}
