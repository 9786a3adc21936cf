//! The gRPC edge: proto types in, domain calls, proto types out.

use proto::analytics::v1 as pb;
use proto::analytics::v1::analytics_service_server::{AnalyticsService, AnalyticsServiceServer};
use tonic::{Request, Response, Status};

use crate::events::Incoming;
use crate::model::{Goal, GoalTarget, Website};
use crate::period::{Asked, Meaning};
use crate::service::{Analytics, QueryRequest, WebsiteChanges};

type Reply<T> = Result<Response<T>, Status>;

impl Analytics {
    pub fn into_grpc(self) -> AnalyticsServiceServer<Analytics> {
        AnalyticsServiceServer::new(self).max_decoding_message_size(pb::MAX_CALL_BYTES)
    }
}

fn website(w: Website) -> pb::Website {
    pb::Website {
        id: w.id,
        team_id: w.team_id,
        domain: w.domain,
        name: w.name,
        timezone: w.timezone,
        tracking_code: w.tracking_code,
        created_at_unix_ms: w.created_at,
    }
}

fn goal(g: Goal) -> pb::Goal {
    let (event_name, page_path) = match g.target {
        GoalTarget::Event(name) => (Some(name), None),
        GoalTarget::Page(path) => (None, Some(path)),
    };
    pb::Goal {
        id: g.id,
        website_id: g.website_id,
        display_name: g.display_name,
        event_name,
        page_path,
        created_at_unix_ms: g.created_at,
        currency: g.currency,
    }
}

#[tonic::async_trait]
impl AnalyticsService for Analytics {
    async fn list_goals(&self, req: Request<pb::ListGoalsRequest>) -> Reply<pb::ListGoalsResponse> {
        let goals = Analytics::list_goals(self, &req.into_inner().website_id).await?;
        Ok(Response::new(pb::ListGoalsResponse { goals: goals.into_iter().map(goal).collect() }))
    }

    async fn create_goal(&self, req: Request<pb::CreateGoalRequest>) -> Reply<pb::Goal> {
        let r = req.into_inner();
        let target = GoalTarget::new(r.event_name.as_deref(), r.page_path.as_deref())?;
        let created = Analytics::create_goal(self, &r.website_id, target, r.currency.as_deref()).await?;
        Ok(Response::new(goal(created)))
    }

    async fn delete_goal(&self, req: Request<pb::DeleteGoalRequest>) -> Reply<pb::DeleteGoalResponse> {
        let r = req.into_inner();
        Analytics::delete_goal(self, &r.website_id, &r.goal_id).await?;
        Ok(Response::new(pb::DeleteGoalResponse {}))
    }

    async fn create_website(&self, req: Request<pb::CreateWebsiteRequest>) -> Reply<pb::Website> {
        let r = req.into_inner();
        let w = Analytics::create_website(self, &r.team_id, &r.domain, &r.name, r.timezone.as_deref()).await?;
        Ok(Response::new(website(w)))
    }

    async fn get_website(&self, req: Request<pb::GetWebsiteRequest>) -> Reply<pb::Website> {
        Ok(Response::new(website(Analytics::find_website(self, &req.into_inner().website_id).await?)))
    }

    async fn list_websites(&self, req: Request<pb::ListWebsitesRequest>) -> Reply<pb::ListWebsitesResponse> {
        let websites = Analytics::list_websites(self, &req.into_inner().team_ids).await?;
        Ok(Response::new(pb::ListWebsitesResponse { websites: websites.into_iter().map(website).collect() }))
    }

    async fn update_website(&self, req: Request<pb::UpdateWebsiteRequest>) -> Reply<pb::Website> {
        let r = req.into_inner();
        let changes = WebsiteChanges { name: r.name, timezone: r.timezone };
        Ok(Response::new(website(Analytics::update_website(self, &r.website_id, changes).await?)))
    }

    async fn delete_website(&self, req: Request<pb::DeleteWebsiteRequest>) -> Reply<pb::DeleteWebsiteResponse> {
        Analytics::delete_website(self, &req.into_inner().website_id).await?;
        Ok(Response::new(pb::DeleteWebsiteResponse {}))
    }

    async fn ingest_events(&self, req: Request<pb::IngestEventsRequest>) -> Reply<pb::IngestEventsResponse> {
        let events = req.into_inner().events.into_iter().map(incoming).collect();
        let outcomes = self.ingest(events).await.into_iter().map(outcome).collect();
        Ok(Response::new(pb::IngestEventsResponse { outcomes }))
    }

    async fn list_property_keys(
        &self,
        req: Request<pb::ListPropertyKeysRequest>,
    ) -> Reply<pb::ListPropertyKeysResponse> {
        let r = req.into_inner();
        let period = asked(r.period)?;
        let keys = Analytics::property_keys(self, &r.website_id, &period, &r.end_day, &r.event_name).await?;
        Ok(Response::new(pb::ListPropertyKeysResponse { keys }))
    }

    async fn query(&self, req: Request<pb::QueryRequest>) -> Reply<pb::QueryResponse> {
        let r = req.into_inner();
        let meaning = match r.period_meaning() {
            pb::PeriodMeaning::Ours => Meaning::Ours,
            pb::PeriodMeaning::PlausibleV1 => Meaning::PlausibleV1,
            pb::PeriodMeaning::PlausibleV2 => Meaning::PlausibleV2,
        };
        let request = QueryRequest {
            website_id: r.website_id,
            metrics: r.metrics,
            dimensions: r.dimensions,
            ignore_case: r.filters.iter().map(|f| f.ignore_case).collect(),
            filters: r.filters.into_iter().map(|f| (f.operator, f.dimension, f.values)).collect(),
            period: asked(r.period)?,
            end_day: r.end_day,
            meaning,
            order_by: r.order_by.into_iter().map(|o| (o.key, o.descending)).collect(),
            limit: r.limit as usize,
            offset: r.offset as usize,
            fill_time: r.fill_time,
            previous_period: r.previous_period,
        };
        let (answer, (from, to)) = Analytics::query(self, request).await?;
        let response = pb::QueryResponse {
            rows: answer
                .rows
                .into_iter()
                .zip(answer.currencies)
                .map(|((dimensions, metrics), currency)| pb::Row { dimensions, metrics, currency })
                .collect(),
            total_rows: answer.total_rows as u64,
            from_unix_ms: from,
            to_unix_ms: to,
            time_labels: answer.time_labels,
            dimensions: answer.dimensions,
        };
        let size = prost::Message::encoded_len(&response);
        if size > pb::MAX_ANSWER_BYTES {
            let mib = |bytes: usize| bytes.div_ceil(1024 * 1024);
            let text = format!(
                "the answer would be {} MiB, over the {} MiB an answer may be: ask for fewer rows (a smaller limit)",
                mib(size),
                mib(pb::MAX_ANSWER_BYTES)
            );
            return Err(common::Error::invalid("limit", text).into());
        }
        Ok(Response::new(response))
    }
}

/// The contract's period as analytics resolves it.
fn asked(period: Option<pb::Period>) -> common::Result<Asked> {
    use pb::period::Kind;
    Ok(match period.and_then(|p| p.kind) {
        Some(Kind::Named(named)) => Asked::Named(pb::NamedPeriod::try_from(named).unwrap_or_default()),
        Some(Kind::LastDays(n)) => Asked::LastDays(n),
        Some(Kind::LastMonths(n)) => Asked::LastMonths(n),
        Some(Kind::Custom(range)) => Asked::Custom { first_day: range.first_day, last_day: range.last_day },
        Some(Kind::Instants(range)) => Asked::Instants { from: range.from_unix_ms, to: range.to_unix_ms },
        None => return Err(common::Error::invalid("period", "is required")),
    })
}

fn incoming(e: pb::TrackedEvent) -> Incoming {
    Incoming {
        domain: e.domain,
        name: e.name,
        url: e.url,
        referrer: e.referrer,
        props_json: e.props_json,
        revenue_json: e.revenue_json,
        user_agent: e.user_agent,
        client_ip: e.client_ip,
        country: e.country,
        hash_mode: e.hash_mode,
        scroll_depth: e.scroll_depth,
        engagement_ms: e.engagement_ms,
        non_interactive: e.non_interactive,
    }
}

fn outcome(result: common::Result<bool>) -> pb::IngestOutcome {
    match result {
        Ok(stored) => pb::IngestOutcome { stored, ..Default::default() },
        Err(e) => pb::IngestOutcome { stored: false, error_code: e.code.as_str().to_owned(), error_message: e.text() },
    }
}
