//! Public event ingestion and the metrics computed from events (SPEC §5, §6).
//!
//! Metric definitions, over the events of the period:
//! - `visitors`: distinct visitor hashes;
//! - `visits`: sequences of one visitor's events with no gap over 30 minutes;
//! - `pageviews`: `pageview` events; `events`: all events;
//! - `views_per_visit`: pageviews ÷ visits (two decimals);
//! - `bounce_rate`: percentage of visits with at most one pageview (rounded);
//! - `visit_duration`: mean seconds from a visit's first to its last event (rounded).

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use common::secret::{random_token, to_hex};
use common::time::now_ms;
use common::{Error, Result};
use sha2::{Digest, Sha256};

use crate::model::normalize_domain;
use crate::service::Analytics;
use crate::store::{NewEvent, VisitTotals};

pub const METRICS: [&str; 7] =
    ["visitors", "visits", "pageviews", "views_per_visit", "bounce_rate", "visit_duration", "events"];

/// An event as received, before validation.
pub struct Incoming {
    pub domain: String,
    pub name: String,
    pub url: String,
    pub referrer: String,
    pub props_json: String,
    pub revenue_json: String,
    pub user_agent: String,
    pub client_ip: String,
    pub country: String,
}

fn field(name: &str, message: &str) -> Error {
    Error::validation(format!("{name}: {message}"))
}

fn props(json: &str) -> Result<String> {
    if json.is_empty() {
        return Ok("{}".into());
    }
    match serde_json::from_str::<serde_json::Value>(json) {
        Ok(serde_json::Value::Object(map)) if map.len() <= 30 && json.len() <= 4096 => Ok(json.to_owned()),
        _ => Err(field("props", "must be a JSON object of at most 30 properties")),
    }
}

fn revenue(json: &str) -> Result<(Option<String>, Option<String>)> {
    if json.is_empty() {
        return Ok((None, None));
    }
    let value: serde_json::Value = serde_json::from_str(json).map_err(|_| field("revenue", "must be an object"))?;
    let amount = match &value["amount"] {
        serde_json::Value::String(s) if s.parse::<f64>().is_ok() => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        _ => return Err(field("revenue", "amount must be a number")),
    };
    let currency = value["currency"].as_str().filter(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()));
    let currency = currency.ok_or_else(|| field("revenue", "currency must be an ISO 4217 code such as EUR"))?;
    Ok((Some(amount), Some(currency.to_owned())))
}

impl Analytics {
    /// Validates and stores one event; returns false for a bot, which is not stored.
    pub async fn ingest(&self, event: Incoming) -> Result<bool> {
        let received = std::time::Instant::now();
        let name = event.name.trim();
        if name.is_empty() || name.chars().count() > 120 {
            return Err(field("name", "must be 1–120 characters"));
        }
        let url = url::Url::parse(&event.url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && event.url.len() <= 2048)
            .ok_or_else(|| field("url", "must be an absolute http(s) URL"))?;
        let props = props(&event.props_json)?;
        let (revenue_amount, revenue_currency) = revenue(&event.revenue_json)?;
        let website = match self.store.website_by_tracking_code(&event.domain).await? {
            Some(website) => website,
            None => {
                let domain = normalize_domain(&event.domain).map_err(|_| field("domain", "is not a site's domain"))?;
                self.store
                    .website_by_domain(&domain)
                    .await?
                    .ok_or_else(|| field("domain", "no site has this domain"))?
            }
        };
        if event.user_agent.is_empty() || self.bots.is_bot(&event.user_agent) {
            return Ok(false);
        }
        let now = now_ms();
        let salt = self.salt_of(now).await?;
        let mut hash = Sha256::new();
        for part in [&salt, &website.id, &event.client_ip, &event.user_agent] {
            hash.update(part.as_bytes());
            hash.update([0]);
        }
        let referrer_host = url::Url::parse(&event.referrer)
            .ok()
            .and_then(|r| r.host_str().map(|h| h.trim_start_matches("www.").to_owned()))
            .filter(|h| Some(h.as_str()) != url.host_str().map(|own| own.trim_start_matches("www.")))
            .unwrap_or_default();
        let country = event.country.to_ascii_uppercase();
        let country =
            if country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase()) { country } else { String::new() };
        let stored = NewEvent {
            id: uuid::Uuid::now_v7().to_string(),
            website_id: website.id,
            ts: now,
            name: name.to_owned(),
            pathname: url.path().to_owned(),
            referrer_host,
            visitor_id: to_hex(&hash.finalize()[..16]),
            country,
            props,
            revenue_amount,
            revenue_currency,
        };
        self.store.insert_event(&stored).await?;
        ingestion_lag().record(received.elapsed().as_secs_f64(), &[]);
        Ok(true)
    }

    /// Today's salt: made by the first replica to need it, shared through the store.
    async fn salt_of(&self, now: i64) -> Result<String> {
        let day = DateTime::<Utc>::from_timestamp_millis(now).unwrap_or_default().format("%Y-%m-%d").to_string();
        if let Some((cached_day, salt)) = self.salt.lock().expect("salt lock poisoned").clone()
            && cached_day == day
        {
            return Ok(salt);
        }
        let salt = self.store.salt(&day, &random_token("")).await?;
        *self.salt.lock().expect("salt lock poisoned") = Some((day, salt.clone()));
        Ok(salt)
    }

    /// Values of `metrics` for a website over a period (see the module's definitions).
    pub async fn aggregate(
        &self,
        website_id: &str,
        period: &str,
        date: &str,
        metrics: &[String],
    ) -> Result<Vec<(String, f64)>> {
        if let Some(unknown) = metrics.iter().find(|m| !METRICS.contains(&m.as_str())) {
            return Err(field("metrics", &format!("unknown metric {unknown:?}; use {}", METRICS.join(", "))));
        }
        let website = self.get_website(website_id).await?;
        let tz: Tz = website.timezone.parse().map_err(Error::internal)?;
        let (from, to) = period_range(tz, period, date, Utc::now())?;
        let VisitTotals { visitors, visits, pageviews, bounces, duration_ms, events } =
            self.store.visit_totals(&website.id, from, to).await?;
        let per_visit = |x: f64| if visits == 0 { 0.0 } else { x / visits as f64 };
        Ok(metrics
            .iter()
            .map(|metric| {
                let value = match metric.as_str() {
                    "visitors" => visitors as f64,
                    "visits" => visits as f64,
                    "pageviews" => pageviews as f64,
                    "events" => events as f64,
                    "views_per_visit" => (per_visit(pageviews as f64) * 100.0).round() / 100.0,
                    "bounce_rate" => (per_visit(bounces as f64) * 100.0).round(),
                    _ => (per_visit(duration_ms as f64) / 1000.0).round(),
                };
                (metric.clone(), value)
            })
            .collect())
    }
}

/// Seconds from an event's arrival to its durable write.
fn ingestion_lag() -> &'static opentelemetry::metrics::Histogram<f64> {
    static LAG: std::sync::OnceLock<opentelemetry::metrics::Histogram<f64>> = std::sync::OnceLock::new();
    LAG.get_or_init(|| {
        opentelemetry::global::meter("zenovay-analytics")
            .f64_histogram("zenovay.ingestion.lag")
            .with_unit("s")
            .with_description("Time from an event's arrival to its durable write")
            .build()
    })
}

/// `[from, to)` in unix ms for a period ending on `date` (default today) in the site's zone.
pub fn period_range(tz: Tz, period: &str, date: &str, now: DateTime<Utc>) -> Result<(i64, i64)> {
    let day = |text: &str| {
        NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .map_err(|_| field("date", "must be YYYY-MM-DD (or two, for custom)"))
    };
    // The day's first instant: midnight, or the end of a DST gap that swallowed it.
    let midnight = |d: NaiveDate| -> Result<i64> {
        (0..=3)
            .find_map(|hour| tz.from_local_datetime(&d.and_hms_opt(hour, 0, 0)?).earliest())
            .map(|t| t.timestamp_millis())
            .ok_or_else(|| Error::internal("no first instant of the local day"))
    };
    let end = if date.is_empty() || period == "custom" { now.with_timezone(&tz).date_naive() } else { day(date)? };
    let after = |d: NaiveDate| d.checked_add_days(Days::new(1)).ok_or_else(|| field("date", "out of range"));
    let (first, last) = match period {
        "day" => (end, end),
        "7d" | "30d" => {
            let n = if period == "7d" { 6 } else { 29 };
            (end.checked_sub_days(Days::new(n)).ok_or_else(|| field("date", "out of range"))?, end)
        }
        "month" => (end.with_day(1).expect("day 1 exists"), end),
        "6mo" | "12mo" => {
            let n = if period == "6mo" { 5 } else { 11 };
            let start = end.with_day(1).expect("day 1 exists").checked_sub_months(Months::new(n));
            (start.ok_or_else(|| field("date", "out of range"))?, end)
        }
        "custom" => {
            let (a, b) = date.split_once(',').ok_or_else(|| field("date", "custom needs YYYY-MM-DD,YYYY-MM-DD"))?;
            let (a, b) = (day(a)?, day(b)?);
            if a > b {
                return Err(field("date", "the first day must not be after the second"));
            }
            (a, b)
        }
        _ => return Err(field("period", "must be one of day, 7d, 30d, month, 6mo, 12mo, custom")),
    };
    Ok((midnight(first)?, midnight(after(last)?)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_whole_local_days() {
        let now = Utc.with_ymd_and_hms(2026, 11, 26, 23, 30, 0).unwrap();
        let paris: Tz = "Europe/Paris".parse().unwrap();
        // 23:30 UTC is already the 27th in Paris.
        let (from, to) = period_range(paris, "day", "", now).unwrap();
        assert_eq!(from, Utc.with_ymd_and_hms(2026, 11, 26, 23, 0, 0).unwrap().timestamp_millis());
        assert_eq!(to - from, 86_400_000);
        let (from, to) = period_range(Tz::UTC, "7d", "2026-11-26", now).unwrap();
        assert_eq!((to - from) / 86_400_000, 7);
        assert_eq!(from, Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap().timestamp_millis());
        let (from, _) = period_range(Tz::UTC, "month", "2026-11-26", now).unwrap();
        assert_eq!(from, Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap().timestamp_millis());
        let (from, to) = period_range(Tz::UTC, "custom", "2026-01-01,2026-01-31", now).unwrap();
        assert_eq!((to - from) / 86_400_000, 31);
        for (period, date) in
            [("week", ""), ("custom", "2026-02-01"), ("custom", "2026-02-02,2026-02-01"), ("day", "26/11")]
        {
            assert!(period_range(Tz::UTC, period, date, now).is_err(), "{period} {date}");
        }
    }
}
