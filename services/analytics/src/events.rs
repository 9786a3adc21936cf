//! Public event ingestion (docs/behaviour.md#public-tracking): validation and the cookieless visitor hash. Accepted
//! events go to the writers (`writer.rs`), which answer once they are committed.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::secret::{random_token, to_hex};
use common::text::{check_line, check_text};
use common::time::now_ms;
use common::{Error, Result};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

use crate::model::{Website, normalize_domain};
use crate::parse;
use crate::service::Analytics;
use crate::store::{NewEvent, VisitAttributes};
use crate::writer::MAX_BATCH;

pub use proto::vocabulary::DIRECT;
/// How long a site looked up by domain is trusted; a deleted site stops taking events after this.
const SITE_TTL: Duration = Duration::from_secs(5);

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
    /// The page is the URL's path and fragment (`/app/#/settings`), not its path alone.
    pub hash_mode: bool,
    /// An `engagement` event's scroll depth (Plausible's `sd`), as sent.
    pub scroll_depth: Option<i64>,
    /// An `engagement` event's engaged time in milliseconds (Plausible's `e`), as sent.
    pub engagement_ms: Option<i64>,
    /// Plausible's `interactive: false`: the event does not end its visit's bounce.
    pub non_interactive: bool,
}

/// Plausible's tracker sends this event as a page is left; it is not an event of the visit.
pub const ENGAGEMENT: &str = "engagement";

/// Engaged times from 30 days up are dropped, as Plausible drops them (an old tracker sent
/// such values).
const MAX_ENGAGEMENT_MS: i64 = 30 * 86_400_000;

/// What an engagement event says, as Plausible reads it: a scroll depth of 0–100 (more is
/// 100), an engaged time under 30 days; a value out of range is as if not sent, and at least
/// one must be sent. Other events carry neither.
fn engagement(event: &Incoming, name: &str) -> Result<(Option<i64>, i64)> {
    if name != ENGAGEMENT {
        return Ok((None, 0));
    }
    let scroll_depth = event.scroll_depth.filter(|sd| *sd >= 0).map(|sd| sd.min(100));
    let engaged = event.engagement_ms.filter(|ms| (0..MAX_ENGAGEMENT_MS).contains(ms));
    if scroll_depth.is_none() && engaged.is_none() {
        return Err(Error::invalid("sd", "an engagement event needs an integer sd (scroll depth) or e (engaged ms)"));
    }
    Ok((scroll_depth, engaged.unwrap_or(0)))
}

/// Most properties an event keeps, as Plausible keeps them; it drops the others.
const MAX_PROPS: usize = 30;
/// Longest name and value of a property kept, in bytes, as Plausible's: an event with a longer
/// one is refused.
const MAX_PROP_NAME_BYTES: usize = 300;
const MAX_PROP_VALUE_BYTES: usize = 2000;

/// Events Plausible's tracker sends of its own (a form submitted, a page not found) whose `path`
/// property Plausible sets to their page when they carry none, so that goals on them can be
/// broken down by page.
const EVENTS_WITH_PATH: [&str; 3] = ["404", "WP Form Completions", "Form: Submission"];

/// An event's properties, with `page` as its `path` property for one of [`EVENTS_WITH_PATH`].
fn props(json: &str, event: &str, page: &str) -> Result<String> {
    let map = if json.is_empty() {
        serde_json::Map::new()
    } else {
        match serde_json::from_str::<serde_json::Value>(json) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => return Err(Error::invalid("props", "must be a JSON object")),
        }
    };
    // Values are kept as text, as Plausible keeps them: numbers and booleans as written, and
    // what is not a scalar (null, lists, objects) or is blank dropped, as is every property
    // past the 30th. Queries then read one type.
    // Plausible gives the page first, so it counts among the 30, unless a `path` is kept.
    let mut kept = serde_json::Map::new();
    if EVENTS_WITH_PATH.contains(&event) {
        kept.insert("path".to_owned(), serde_json::Value::String(page.to_owned()));
    }
    for (name, value) in map {
        let text = match value {
            serde_json::Value::String(text) => text,
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            _ => continue,
        };
        // A name holding `"` could never be asked for: SQLite's JSON paths quote a name in `"`
        // and cannot escape one, so the Stats APIs refuse such a name. Dropped as blank ones are.
        if name.trim_start().is_empty() || text.trim_start().is_empty() || name.contains('"') {
            continue;
        }
        if kept.len() == MAX_PROPS {
            break;
        }
        if name.len() > MAX_PROP_NAME_BYTES || text.len() > MAX_PROP_VALUE_BYTES {
            return Err(Error::invalid(
                "props",
                format!("keys should have at most {MAX_PROP_NAME_BYTES} bytes and values {MAX_PROP_VALUE_BYTES} bytes"),
            ));
        }
        check_line("props", &name)?;
        check_text(&format!("props.{name}"), &text)?;
        kept.insert(name, serde_json::Value::String(text));
    }
    Ok(serde_json::Value::Object(kept).to_string())
}

/// An event's revenue is less than this, either way (a refund is negative).
const REVENUE_MAX: f64 = 1e15;

/// An event's revenue (amount and currency), as Plausible takes it: an object with an `amount`
/// (a number, or text starting with one: `"12.5abc"` is 12.5) and an ISO 4217 `currency`. Any
/// other revenue (`{}`, which Plausible's tracker sends for every tagged element, a currency in
/// lower case, no amount) is no revenue, and the event is kept, as Plausible keeps it.
fn revenue(json: &str) -> (Option<String>, Option<String>) {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(json) else { return (None, None) };
    let amount = match &value["amount"] {
        serde_json::Value::String(text) => leading_number(text.trim()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    // What a currency's amount can be: finite, and within Plausible's column (18 digits, 3 of
    // them decimals); "NaN", "Infinity" and 1e308 are no amounts, and sums stay exact in cents.
    // Kept as the number it reads as, to those 3 decimals, never as the text sent: `1e-400` is
    // 0, which every store reads back, where the text would not be a double to PostgreSQL.
    let amount = amount
        .and_then(|a| a.parse::<f64>().ok())
        .filter(|n| n.is_finite() && n.abs() < REVENUE_MAX)
        .map(|n| ((n * 1000.0).round() / 1000.0).to_string());
    let currency = value["currency"].as_str().filter(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()));
    match (amount, currency) {
        (Some(amount), Some(currency)) => (Some(amount), Some(currency.to_owned())),
        _ => (None, None),
    }
}

/// The decimal number `text` starts with (`-12.5` of `-12.5abc`), as Elixir's `Decimal.parse`
/// reads one.
fn leading_number(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut end = usize::from(matches!(bytes.first(), Some(b'+' | b'-')));
    let digits = |from: usize| bytes[from..].iter().take_while(|b| b.is_ascii_digit()).count();
    let whole = digits(end);
    end += whole;
    let mut fraction = 0;
    if bytes.get(end) == Some(&b'.') {
        fraction = digits(end + 1);
        if whole + fraction > 0 {
            end += 1 + fraction;
        }
    }
    if whole + fraction == 0 {
        return None;
    }
    if matches!(bytes.get(end), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(bytes.get(end + 1), Some(b'+' | b'-')));
        let exponent = digits(end + 1 + sign);
        if exponent > 0 {
            end += 1 + sign + exponent;
        }
    }
    Some(text[..end].to_owned())
}

/// The page an event was on, as Plausible names it: the URL's path, percent-decoded (`/café`, not
/// `/caf%C3%A9`), and in hash mode its fragment too.
fn page_of(url: &url::Url, hash_mode: bool) -> String {
    let decode = |text: &str| percent_encoding::percent_decode_str(text).decode_utf8_lossy().into_owned();
    let path = decode(url.path()).trim_end().to_owned();
    match url.fragment() {
        Some(fragment) if hash_mode => format!("{path}#{}", decode(fragment)),
        _ => path,
    }
}

impl Analytics {
    /// Validates and stores events, answering once they are durable: for each, whether it was
    /// stored (false for a bot) or why it was refused. All of them are queued before any is
    /// awaited, so they share the writer's next transaction.
    pub async fn ingest(&self, events: Vec<Incoming>) -> Vec<Result<bool>> {
        let received = Instant::now();
        let now = now_ms();
        let salt = match self.salt_of(now).await {
            Ok(salt) => salt,
            Err(e) => return vec![Err(e); events.len()],
        };
        let mut queued = Vec::with_capacity(events.len());
        for event in &events {
            queued.push(self.queue(event, now, &salt).await);
        }
        let mut outcomes = Vec::with_capacity(queued.len());
        for queued in queued {
            outcomes.push(match queued {
                Ok(Some(stored)) => committed(stored).await,
                Ok(None) => Ok(false),
                Err(e) => Err(e),
            });
        }
        ingestion_lag().record(received.elapsed().as_secs_f64(), &[]);
        outcomes
    }

    /// Validates an event of time `ts` and hands it to its writer: the receiver answers once it
    /// is stored. None for a bot, which is not stored.
    async fn queue(&self, event: &Incoming, ts: i64, salt: &str) -> Result<Option<oneshot::Receiver<Result<bool>>>> {
        match self.prepared(event, ts, salt).await? {
            Some(stored) => self.writer.enqueue(stored).await.map(Some),
            None => Ok(None),
        }
    }

    /// The event to store, or None for a bot, after every check a live event passes.
    async fn prepared(&self, event: &Incoming, ts: i64, salt: &str) -> Result<Option<NewEvent>> {
        // Before the site lookup and long before the writer: a value no store can hold must cost
        // the events batched with it nothing.
        for (name, value) in [("domain", &event.domain), ("name", &event.name), ("url", &event.url)] {
            check_line(name, value)?;
        }
        check_line("referrer", &event.referrer)?;
        let website = self.site_of(&event.domain).await?;
        self.prepare(event, &website.id, ts, salt)
    }

    /// Refuses an event as `import` would, storing nothing: an import checks its whole file
    /// first, so that a bad line leaves no part of the file stored (README, "Events and
    /// statistics").
    pub async fn check(&self, event: &Incoming, ts: i64) -> Result<()> {
        self.prepared(event, ts, "").await.map(drop)
    }

    /// Makes the day partitions of an import of events in `[from, to]` before it writes any
    /// (PostgreSQL). Made as the import reaches each day, a partition waited for its lock behind
    /// the server's rollups of the days imported before it, which read the same table.
    pub async fn prepare_import(&self, from: i64, to: i64) -> Result<()> {
        self.store.ensure_partitions(from, to).await
    }

    /// Stores past events (an import, or generated traffic) with their own times, through the
    /// same validation as live ones. Today's events are hashed with today's salt, as live ones
    /// are, so that a visitor imported and then tracked is one visitor; an earlier day's salt is
    /// gone (visitors are not followed across days), so each earlier day gets a fresh salt for
    /// this import alone. Returns how many were stored (bots are not).
    pub async fn import(&self, events: impl IntoIterator<Item = (i64, Incoming)>) -> Result<u64> {
        let now = common::time::now_ms();
        let mut salts: HashMap<i64, String> = HashMap::from([(now.div_euclid(86_400_000), self.salt_of(now).await?)]);
        let mut prepared = HashSet::new();
        // A few batches queued ahead, so that the writers never wait for this loop.
        let mut queued = Vec::with_capacity(4 * MAX_BATCH);
        let mut stored = 0;
        for (ts, event) in events {
            let day = ts.div_euclid(86_400_000);
            if prepared.insert(day) {
                // A past day's events need its partition (PostgreSQL).
                self.store.ensure_partitions(day * 86_400_000, day * 86_400_000).await?;
            }
            let salt = salts.entry(day).or_insert_with(|| random_token(""));
            if let Some(stored) = self.queue(&event, ts, salt).await? {
                queued.push(stored);
            }
            if queued.len() == 4 * MAX_BATCH {
                stored += settle(&mut queued).await?;
            }
        }
        let stored = stored + settle(&mut queued).await?;
        self.store.analyze().await?;
        Ok(stored)
    }

    /// The event to store, or None for a bot.
    fn prepare(&self, event: &Incoming, website_id: &str, ts: i64, salt: &str) -> Result<Option<NewEvent>> {
        let name = event.name.trim();
        if name.is_empty() || name.chars().count() > 120 {
            return Err(Error::invalid("name", "must be 1–120 characters"));
        }
        if event.url.len() > 2048 {
            return Err(Error::invalid("url", "must be at most 2048 bytes"));
        }
        // Any scheme but `data:`, as Plausible takes them: its Events API tells mobile apps to
        // send `app://localhost/<screen>`. The URL needs a path, which is the page.
        let url = url::Url::parse(&event.url)
            .ok()
            .filter(|u| u.scheme() != "data" && !u.cannot_be_a_base())
            .ok_or_else(|| Error::invalid("url", "must be an absolute URL such as https://example.com/page"))?;
        let pathname = page_of(&url, event.hash_mode);
        let props = props(&event.props_json, name, &pathname)?;
        let (scroll_depth, engagement_ms) = engagement(event, name)?;
        let (revenue_amount, revenue_currency) = revenue(&event.revenue_json);
        let Some(client) = self.client_of(&event.user_agent) else {
            return Ok(None);
        };
        let mut hash = Sha256::new();
        for part in [salt, website_id, &event.client_ip, &event.user_agent] {
            hash.update(part.as_bytes());
            hash.update([0]);
        }
        let utm = parse::utm(&url);
        let source = match parse::source(&event.referrer, &url, &utm.source) {
            direct if direct.is_empty() => DIRECT.to_owned(),
            source => source,
        };
        let referrer_host = parse::referral(&event.referrer, &url).map(|(_, host)| host).unwrap_or_default();
        let channel = parse::channel(if source == DIRECT { "" } else { &source }, &utm).to_owned();
        let utm_medium = parse::medium(&source, &utm);
        let country = event.country.to_ascii_uppercase();
        // `XX` (unknown) and `ZZ` (no country) are placeholders of geo headers such as
        // Cloudflare's, which Plausible leaves out too.
        let known =
            country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase()) && !matches!(&*country, "XX" | "ZZ");
        let country = if known { country } else { String::new() };
        Ok(Some(NewEvent {
            id: uuid::Uuid::now_v7().to_string(),
            website_id: website_id.to_owned(),
            ts,
            name: name.to_owned(),
            pathname,
            referrer_host,
            visitor_id: to_hex(&hash.finalize()[..16]),
            props,
            revenue_amount,
            revenue_currency,
            scroll_depth,
            engagement_ms,
            non_interactive: event.non_interactive,
            visit_id: String::new(),
            hostname: parse::hostname(&url),
            visit: VisitAttributes {
                entry_page: url.path().to_owned(),
                referrer: match parse::referrer(&event.referrer, &url) {
                    direct if direct.is_empty() => DIRECT.to_owned(),
                    referrer => referrer,
                },
                channel,
                source,
                utm_source: utm.source,
                utm_medium,
                utm_campaign: utm.campaign,
                utm_content: utm.content,
                utm_term: utm.term,
                country,
                browser: client.browser,
                os: client.os,
                device: client.device,
                browser_version: client.browser_version,
                os_version: client.os_version,
            },
        }))
    }

    /// What a user agent says, or None for a bot. Browsers send few distinct user agents, so
    /// each is judged once: the bot patterns are the costliest step of an event.
    fn client_of(&self, user_agent: &str) -> Option<parse::Client> {
        if let Some(known) = self.clients.lock().expect("clients lock poisoned").get(user_agent) {
            return known.clone();
        }
        let client = (!user_agent.is_empty() && !self.bots.is_bot(user_agent)).then(|| parse::client(user_agent));
        let mut clients = self.clients.lock().expect("clients lock poisoned");
        if clients.len() >= 10_000 {
            clients.clear();
        }
        clients.insert(user_agent.to_owned(), client.clone());
        client
    }

    /// The site an event names by tracking code or domain.
    async fn site_of(&self, name: &str) -> Result<Website> {
        if let Some((website, at)) = self.sites.lock().expect("sites lock poisoned").get(name)
            && at.elapsed() < SITE_TTL
        {
            return Ok(website.clone());
        }
        let website = match self.store.website_by_tracking_code(name).await? {
            Some(website) => website,
            None => {
                let domain = normalize_domain(name).map_err(|_| Error::invalid("domain", "is not a site's domain"))?;
                self.store
                    .website_by_either_domain(&domain)
                    .await?
                    .ok_or_else(|| Error::invalid("domain", "no site has this domain"))?
            }
        };
        let mut sites = self.sites.lock().expect("sites lock poisoned");
        if sites.len() > 10_000 {
            sites.clear();
        }
        sites.insert(name.to_owned(), (website.clone(), Instant::now()));
        Ok(website)
    }

    /// Today's salt: made by the first replica to need it, shared through the store.
    async fn salt_of(&self, now: i64) -> Result<String> {
        let day_start = crate::store::day_of(now);
        if let Some((cached, salt)) = self.salt.lock().expect("salt lock poisoned").as_ref()
            && *cached == day_start
        {
            return Ok(salt.clone());
        }
        let day = DateTime::<Utc>::from_timestamp_millis(now).unwrap_or_default().format("%Y-%m-%d").to_string();
        let salt = self.store.salt(&day, &random_token("")).await?;
        *self.salt.lock().expect("salt lock poisoned") = Some((day_start, salt.clone()));
        Ok(salt)
    }
}

/// Waits for a queued event's commit: whether it was stored (an engagement event outside any
/// visit is not). A writer that went away took the event with it.
async fn committed(stored: oneshot::Receiver<Result<bool>>) -> Result<bool> {
    stored.await.unwrap_or_else(|_| Err(Error::unavailable("event storage")))
}

/// Waits for queued events to be stored; returns how many were, or the first refusal once all
/// have been answered.
async fn settle(queued: &mut Vec<oneshot::Receiver<Result<bool>>>) -> Result<u64> {
    let mut count = 0;
    let mut first_error = None;
    for stored in queued.drain(..) {
        match committed(stored).await {
            Ok(stored) => count += u64::from(stored),
            Err(e) => drop(first_error.get_or_insert(e)),
        }
    }
    first_error.map_or(Ok(count), Err)
}

/// Seconds from an event's arrival to its durable write.
fn ingestion_lag() -> &'static opentelemetry::metrics::Histogram<f64> {
    static LAG: std::sync::OnceLock<opentelemetry::metrics::Histogram<f64>> = std::sync::OnceLock::new();
    LAG.get_or_init(|| {
        opentelemetry::global::meter("zenovay-analytics")
            .f64_histogram("zenovay.ingestion.lag")
            .with_unit("s")
            .with_boundaries(telemetry::SECONDS_BOUNDARIES.to_vec())
            .with_description("Time from an event's arrival to its durable write")
            .build()
    })
}

#[cfg(test)]
mod tests {
    use super::revenue;

    fn of(json: &str) -> (Option<String>, Option<String>) {
        revenue(json)
    }

    #[test]
    fn a_revenue_is_kept_as_the_number_its_amount_reads_as() {
        let kept = |amount: &str| of(&format!(r#"{{"amount": {amount}, "currency": "EUR"}}"#)).0;
        assert_eq!(kept("12.5").as_deref(), Some("12.5"));
        assert_eq!(kept(r#""12.5abc""#).as_deref(), Some("12.5"));
        assert_eq!(kept(r#""-3e2 EUR""#).as_deref(), Some("-300"));
        assert_eq!(kept(r#""1e-400""#).as_deref(), Some("0"), "a number every store reads back");
        assert_eq!(kept("0.0004").as_deref(), Some("0"), "to 3 decimals");
    }

    #[test]
    fn a_revenue_plausible_would_not_take_is_none() {
        for json in [
            "{}",
            r#"{"currency": "EUR"}"#,
            r#"{"amount": 5}"#,
            r#"{"amount": 5, "currency": "eur"}"#,
            r#"{"amount": "abc", "currency": "EUR"}"#,
            r#"{"amount": ".", "currency": "EUR"}"#,
            r#"{"amount": "NaN", "currency": "EUR"}"#,
            r#"{"amount": 1e15, "currency": "EUR"}"#,
            "[]",
            "not json",
        ] {
            assert_eq!(of(json), (None, None), "{json}");
        }
    }
}
