//! Statistics (docs/behaviour.md#external-rest-api): the overview and breakdowns of `/analytics`
//! and realtime ([`ours`]), Plausible's v1 (`/stats/*`, [`plausible_v1`]) and v2 (`/query`,
//! [`plausible_v2`]) inside our envelope, and the same without envelope under `/plausible` for
//! existing Plausible clients ([`dropin`]). Each request shape becomes analytics `Query` calls; only
//! the parsing and the result bodies differ.

pub mod dropin;
pub mod ours;
pub mod plausible_v1;
pub mod plausible_v2;

use common::Error;
use proto::analytics::v1 as anpb;
use serde_json::{Map, Value, json};
use utoipa_axum::router::OpenApiRouter;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::vocabulary::PROPS;

/// The statistics operations of the envelope's mount.
pub fn routes() -> OpenApiRouter<AppState> {
    ours::routes().merge(plausible_v1::routes()).merge(plausible_v2::routes())
}

pub(crate) fn invalid(field: &str, message: impl std::fmt::Display) -> ApiError {
    Error::validation(format!("{field}: {message}")).into()
}

/// A metric of a result row: revenue as Plausible's `{short, long, value}` in the row's
/// currency, the rest as [`metric_value`].
pub(crate) fn row_metric(metric: &str, value: f64, currency: &str) -> Value {
    match metric {
        "total_revenue" | "average_revenue" => crate::views::revenue(value, currency),
        _ => metric_value(metric, value),
    }
}

/// Counts are integers; `views_per_visit` and the shares (`conversion_rate`, `percentage`) have
/// decimals. A metric with no value (time on page or scroll depth without engagement) is null,
/// as in Plausible.
pub(crate) fn metric_value(metric: &str, value: f64) -> Value {
    match metric {
        _ if value.is_nan() => Value::Null,
        "total_revenue" | "average_revenue" => json!(value),
        "views_per_visit" | "conversion_rate" | "percentage" => json!(value),
        _ => json!(value as i64),
    }
}

pub(crate) async fn run(state: &AppState, request: anpb::QueryRequest) -> ApiResult<anpb::QueryResponse> {
    Ok(state.analytics.clone().query(request).await?.into_inner())
}

/// [`run`] for a request built from parameters the caller's API names differently from
/// analytics (`names`: analytics' field, the caller's): a 400 names the field the caller sent.
async fn run_named(
    state: &AppState,
    request: anpb::QueryRequest,
    names: &[(&str, &str)],
) -> ApiResult<anpb::QueryResponse> {
    run(state, request).await.map_err(|mut e| {
        if let Some(field) = &mut e.error.field
            && let Some((_, ours)) = names.iter().find(|(theirs, _)| theirs == field)
        {
            *field = (*ours).to_owned();
        }
        e
    })
}

pub(crate) fn query(website_id: &str, period: &str, metrics: &[&str]) -> anpb::QueryRequest {
    anpb::QueryRequest {
        website_id: website_id.to_owned(),
        metrics: metrics.iter().map(|m| (*m).to_owned()).collect(),
        period: period.to_owned(),
        ..Default::default()
    }
}

pub(crate) fn breakdown_of(
    website_id: &str,
    period: &str,
    dimension: &str,
    metrics: &[&str],
    limit: u32,
) -> anpb::QueryRequest {
    anpb::QueryRequest { dimensions: vec![dimension.into()], limit, ..query(website_id, period, metrics) }
}

/// The first value given twice, if any.
fn repeated<T: PartialEq>(values: &[T]) -> Option<&T> {
    values.iter().enumerate().find(|(i, v)| values[..*i].contains(v)).map(|(_, v)| v)
}

/// `visit:source` → `source`, `event:props:plan` → `plan`: how Plausible names a property in
/// result rows.
pub(crate) fn short_name(dimension: &str) -> &str {
    match dimension.strip_prefix(PROPS) {
        Some(name) => name,
        None => dimension.split_once(':').map_or(dimension, |(_, name)| name),
    }
}

/// Plausible's comparison: percentage change, or the difference in points for a rate.
pub(crate) fn change(metric: &str, before: f64, now: f64) -> i64 {
    if metric == "bounce_rate" {
        return (now - before) as i64;
    }
    if before == 0.0 {
        return if now > 0.0 { 100 } else { 0 };
    }
    ((now - before) / before * 100.0).round() as i64
}

/// Rows of a query of at most one dimension as `[{"<name>": value, "<metric>": n, …}]`; with an
/// empty `name`, metrics only (totals).
pub(crate) fn top(answer: &anpb::QueryResponse, name: &str, metrics: &[impl AsRef<str>]) -> Vec<Map<String, Value>> {
    answer
        .rows
        .iter()
        .map(|row| {
            let mut entry = Map::new();
            if !name.is_empty() {
                entry.insert(name.to_owned(), json!(row.dimensions.first().cloned().unwrap_or_default()));
            }
            for (metric, value) in metrics.iter().zip(&row.metrics) {
                entry.insert(metric.as_ref().to_owned(), row_metric(metric.as_ref(), *value, &row.currency));
            }
            entry
        })
        .collect()
}

/// The first row's figures: totals of a query without dimensions.
fn totals(answer: &anpb::QueryResponse) -> Vec<f64> {
    answer.rows.first().map(|r| r.metrics.clone()).unwrap_or_default()
}
