//! The gRPC edge: proto types in, domain calls, proto types out.

use common::Error;
use common::access::{Grant, Scope, TeamRole};
use futures::FutureExt as _;
use proto::policy::v1 as pb;
use proto::policy::v1::policy_service_server::{PolicyService, PolicyServiceServer};
use telemetry::propagation::Carried;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::plans::{ApiKeyPolicy, Limits, Overrides, Plan, TeamSettings};
use crate::service::{self, Denial, DenyReason, Policy};

type Reply<T> = Result<Response<T>, Status>;

impl Policy {
    pub fn into_grpc(self) -> PolicyServiceServer<Policy> {
        PolicyServiceServer::new(self)
    }
}

fn reason_to_proto(reason: DenyReason) -> pb::DenyReason {
    match reason {
        DenyReason::ApiPaidPlanRequired => pb::DenyReason::ApiPaidPlanRequired,
        DenyReason::InsufficientScope => pb::DenyReason::InsufficientScope,
        DenyReason::Forbidden => pb::DenyReason::Forbidden,
        DenyReason::KeyPolicyForbids => pb::DenyReason::KeyPolicyForbids,
        DenyReason::RateLimitExceeded => pb::DenyReason::RateLimitExceeded,
        DenyReason::MonthlyLimitExceeded => pb::DenyReason::MonthlyLimitExceeded,
        DenyReason::IpNotAllowed => pb::DenyReason::IpNotAllowed,
    }
}

fn decision(denial: Option<Denial>) -> pb::Decision {
    match denial {
        None => pb::Decision { allowed: true, reason: pb::DenyReason::Unspecified as i32, message: String::new() },
        Some(d) => pb::Decision { allowed: false, reason: reason_to_proto(d.reason) as i32, message: d.message },
    }
}

fn limits_to_proto(limits: Limits) -> pb::Limits {
    pb::Limits {
        api_access: limits.api_access,
        requests_per_minute: limits.requests_per_minute,
        requests_per_month: limits.requests_per_month,
        mcp_calls_per_day: limits.mcp_calls_per_day,
    }
}

fn overrides_from_proto(o: Option<pb::LimitOverrides>) -> Overrides {
    let o = o.unwrap_or_default();
    Overrides {
        requests_per_minute: o.requests_per_minute,
        requests_per_month: o.requests_per_month,
        mcp_calls_per_day: o.mcp_calls_per_day,
    }
}

impl Policy {
    fn settings_to_proto(&self, s: TeamSettings) -> pb::TeamSettings {
        let limits = self.limits(&s);
        pb::TeamSettings {
            team_id: s.team_id,
            plan: pb::Plan::from(s.plan) as i32,
            api_key_policy: pb::ApiKeyPolicy::from(s.api_key_policy) as i32,
            limits: Some(limits_to_proto(limits)),
            overrides: Some(pb::LimitOverrides {
                requests_per_minute: s.overrides.requests_per_minute,
                requests_per_month: s.overrides.requests_per_month,
                mcp_calls_per_day: s.overrides.mcp_calls_per_day,
            }),
        }
    }

    /// One request to decide, as `Authorize` asks it.
    fn request(r: pb::AuthorizeRequest) -> common::Result<service::Request> {
        Ok(service::Request {
            key_id: r.key_id,
            grant: Grant::from_proto(r.grant.as_ref())?,
            teams: TeamRole::list_from_proto(&r.teams)?,
            scope: Scope::from_proto(r.required_scope)?,
            resource_team: r.resource_team_id,
            user_id: r.user_id,
            address_refused: r.address_refused,
            takes_nothing: r.takes_nothing,
        })
    }
}

/// A decision, as `Authorize` answers it.
fn response(auth: service::Authorization) -> pb::AuthorizeResponse {
    pb::AuthorizeResponse {
        decision: Some(decision(auth.denial)),
        reachable_team_ids: auth.reachable_team_ids,
        plan: pb::Plan::from(auth.plan) as i32,
        rate_limit: auth.rate.map(|r| pb::RateLimit {
            limit: r.limit,
            remaining: r.remaining,
            reset_at_unix_ms: r.reset_at_ms,
            retry_after_ms: r.retry_after_ms(),
            month_used: r.month_used,
            month_limit: r.month_limit,
            month_reset_at_unix_ms: r.month_reset_at_ms,
            slot: r.slot.unwrap_or_default(),
            degraded: r.degraded,
        }),
        limits: auth.limits.map(limits_to_proto),
        settings_age_ms: u64::try_from(auth.settings_read.elapsed().as_millis()).unwrap_or(u64::MAX),
    }
}

#[tonic::async_trait]
impl PolicyService for Policy {
    async fn get_team_settings(&self, req: Request<pb::GetTeamSettingsRequest>) -> Reply<pb::GetTeamSettingsResponse> {
        let settings = self.settings(&req.into_inner().team_ids).await?;
        Ok(Response::new(pb::GetTeamSettingsResponse {
            teams: settings.into_iter().map(|s| self.settings_to_proto(s)).collect(),
        }))
    }

    async fn set_plan(&self, req: Request<pb::SetPlanRequest>) -> Reply<pb::TeamSettings> {
        let r = req.into_inner();
        let settings =
            Policy::set_plan(self, &r.team_id, Plan::from_proto(r.plan)?, overrides_from_proto(r.overrides)).await?;
        Ok(Response::new(self.settings_to_proto(settings)))
    }

    async fn set_api_key_policy(&self, req: Request<pb::SetApiKeyPolicyRequest>) -> Reply<pb::TeamSettings> {
        let r = req.into_inner();
        let settings =
            Policy::set_api_key_policy(self, &r.team_id, ApiKeyPolicy::from_proto(r.api_key_policy)?).await?;
        Ok(Response::new(self.settings_to_proto(settings)))
    }

    async fn check_key_creation(&self, req: Request<pb::CheckKeyCreationRequest>) -> Reply<pb::Decision> {
        let r = req.into_inner();
        let grant = Grant::from_proto(r.grant.as_ref())?;
        let teams = TeamRole::list_from_proto(&r.teams)?;
        let denial = Policy::check_key_creation(self, &grant, &teams, r.teams_selected).await?;
        Ok(Response::new(decision(denial)))
    }

    async fn authorize(&self, req: Request<pb::AuthorizeRequest>) -> Reply<pb::AuthorizeResponse> {
        let request = Policy::request(req.into_inner())?;
        Ok(Response::new(response(Policy::authorize(self, request).await?)))
    }

    async fn authorize_many(&self, req: Request<pb::AuthorizeManyRequest>) -> Reply<pb::AuthorizeManyResponse> {
        let calls = req.into_inner().calls;
        if calls.len() > pb::MAX_AUTHORIZE_CALLS {
            return Err(Error::invalid("calls", format_args!("at most {}", pb::MAX_AUTHORIZE_CALLS)).into());
        }
        let decisions = match <[_; 1]>::try_from(calls) {
            // A lone decision is made as `Authorize` makes it, without the gathering below.
            Ok([mut call]) => {
                let span = decision_span(&mut call);
                let decision = async { Policy::authorize(self, requested(call)?).await };
                vec![decision.instrument(span).await]
            }
            // Together, so that their Redis calls leave in one write and come back in one read,
            // and calls of one user's keys (under one monthly limit) take in one script.
            Err(calls) => {
                let prepared = calls.into_iter().map(|mut call| {
                    let span = decision_span(&mut call);
                    let prepared = async { self.prepare(requested(call)?).await };
                    prepared.instrument(span.clone()).map(|prepared| (prepared, span))
                });
                let prepared = futures::future::join_all(prepared).await;
                self.authorize_together(prepared).await
            }
        };
        let outcomes = decisions.into_iter().map(|d| outcome(d.map(response))).collect();
        Ok(Response::new(pb::AuthorizeManyResponse { outcomes }))
    }

    async fn release(&self, req: Request<pb::ReleaseRequest>) -> Reply<pb::ReleaseResponse> {
        let r = req.into_inner();
        Policy::release(self, &r.key_id, &r.user_id, &r.slot).await?;
        Ok(Response::new(pb::ReleaseResponse {}))
    }

    async fn get_usage(&self, req: Request<pb::GetUsageRequest>) -> Reply<pb::GetUsageResponse> {
        let usage = Policy::usage(self, &req.into_inner().user_ids).await?;
        Ok(Response::new(pb::GetUsageResponse {
            users: usage
                .users
                .into_iter()
                .map(|u| pb::UserUsage {
                    user_id: u.user_id,
                    requests_this_month: u.requests_this_month,
                    mcp_calls_today: u.mcp_calls_today,
                })
                .collect(),
            month_reset_at_unix_ms: usage.month_reset_at_ms,
            day_reset_at_unix_ms: usage.day_reset_at_ms,
        }))
    }

    async fn charge_mcp_call(&self, req: Request<pb::ChargeMcpCallRequest>) -> Reply<pb::ChargeMcpCallResponse> {
        let r = req.into_inner();
        let d = Policy::charge_mcp_call(self, &r.user_id, &r.team_id).await?;
        Ok(Response::new(pb::ChargeMcpCallResponse {
            allowed: d.allowed,
            used: d.used,
            limit: d.limit,
            reset_at_unix_ms: d.reset_at_ms,
        }))
    }

    async fn give_back_mcp_call(&self, req: Request<pb::GiveBackMcpCallRequest>) -> Reply<pb::GiveBackMcpCallResponse> {
        let r = req.into_inner();
        Policy::give_back_mcp_call(self, &r.user_id, r.reset_at_unix_ms).await?;
        Ok(Response::new(pb::GiveBackMcpCallResponse {}))
    }
}

/// A decision's own span in `AuthorizeMany`, in the trace its request carries.
fn decision_span(call: &mut pb::AuthorizeCall) -> tracing::Span {
    let span = Carried::server_span(pb::AUTHORIZE_PATH);
    let carried = Carried {
        traceparent: std::mem::take(&mut call.traceparent),
        tracestate: std::mem::take(&mut call.tracestate),
    };
    carried.follow(&span);
    span
}

/// The request an `AuthorizeMany` call asks to decide.
fn requested(call: pb::AuthorizeCall) -> common::Result<service::Request> {
    Policy::request(call.request.ok_or_else(|| Error::invalid("request", "missing"))?)
}

/// A decision, or why it could not be made, as `AuthorizeMany` answers it.
fn outcome(decision: common::Result<pb::AuthorizeResponse>) -> pb::AuthorizeOutcome {
    match decision {
        Ok(response) => pb::AuthorizeOutcome { response: Some(response), ..Default::default() },
        Err(e) => {
            e.log_cause();
            pb::AuthorizeOutcome {
                response: None,
                error_code: e.code.as_str().to_owned(),
                error_message: e.message,
                error_field: e.field,
            }
        }
    }
}
