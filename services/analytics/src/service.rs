//! Analytics' rules for websites.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::Utc;
use chrono_tz::Tz;

use common::db::{Backend, OpenError};
use common::secret::random_token;
use common::time::now_ms;
use common::{Error, Result};

use crate::model::{Website, normalize_domain, validate_name, validate_timezone};
use crate::query::{Answer, Buckets, Counted, Filter, Query, period_range};
use crate::store::{ReadFrom, Store};
use crate::writer::Writer;

#[derive(Clone)]
pub struct Analytics {
    pub(crate) store: Store,
    pub(crate) bots: Arc<isbot::Bots>,
    /// Today's visitor-hash salt, as (start of the UTC day, salt).
    pub(crate) salt: Arc<Mutex<Option<(i64, String)>>>,
    pub(crate) writer: Writer,
    /// Sites by the name trackers send (domain or tracking code), with when they were read.
    pub(crate) sites: Arc<Mutex<HashMap<String, (Website, Instant)>>>,
    /// User agents seen lately: what they say, or None for bots.
    pub(crate) clients: Arc<Mutex<HashMap<String, Option<crate::parse::Client>>>>,
}

/// A statistics query as asked, before validation (see `query.rs` for the names).
#[derive(Debug, Clone, Default)]
pub struct QueryRequest {
    pub website_id: String,
    pub metrics: Vec<String>,
    pub dimensions: Vec<String>,
    /// (operator, dimension, values)
    pub filters: Vec<(String, String, Vec<String>)>,
    pub period: String,
    pub date: String,
    /// (metric or dimension, descending)
    pub order_by: Vec<(String, bool)>,
    pub limit: usize,
    pub offset: usize,
    pub fill_time: bool,
    pub previous_period: bool,
}

pub struct WebsiteChanges {
    pub name: Option<String>,
    pub timezone: Option<String>,
}

impl Analytics {
    pub async fn open(backend: &Backend) -> Result<Analytics, OpenError> {
        Analytics::open_with(backend, &crate::Storage::default()).await
    }

    /// Opens the service with a read replica for statistics and event retention, when set.
    pub async fn open_with(backend: &Backend, storage: &crate::Storage) -> Result<Analytics, OpenError> {
        let store = Store::open(backend, storage.read_replica.as_ref()).await?;
        Ok(Analytics {
            writer: Writer::spawn(backend).await?,
            store,
            bots: Arc::new(isbot::Bots::default()),
            salt: Arc::default(),
            sites: Arc::default(),
            clients: Arc::default(),
        })
    }

    pub async fn create_website(
        &self,
        team_id: &str,
        domain: &str,
        name: &str,
        timezone: Option<&str>,
    ) -> Result<Website> {
        if team_id.is_empty() {
            return Err(Error::validation("team_id is required"));
        }
        let website = Website {
            id: uuid::Uuid::now_v7().to_string(),
            team_id: team_id.to_owned(),
            domain: normalize_domain(domain)?,
            name: validate_name(name)?,
            timezone: validate_timezone(timezone.unwrap_or("UTC"))?,
            tracking_code: random_token("zvt_")[..16].to_owned(),
            created_at: now_ms(),
        };
        self.store.insert_website(&website).await?;
        Ok(website)
    }

    pub async fn get_website(&self, id: &str) -> Result<Website> {
        self.store.website(id).await?.ok_or_else(|| Error::not_found("website"))
    }

    /// A website by id, or by domain as Plausible's clients name sites.
    pub async fn find_website(&self, id_or_domain: &str) -> Result<Website> {
        if let Some(website) = self.store.website(id_or_domain).await? {
            return Ok(website);
        }
        let domain = normalize_domain(id_or_domain).map_err(|_| Error::not_found("website"))?;
        self.store.website_by_domain(&domain).await?.ok_or_else(|| Error::not_found("website"))
    }

    pub async fn list_websites(&self, team_ids: &[String]) -> Result<Vec<Website>> {
        self.store.websites_of(team_ids).await
    }

    pub async fn update_website(&self, id: &str, changes: WebsiteChanges) -> Result<Website> {
        let mut website = self.get_website(id).await?;
        if let Some(name) = changes.name {
            website.name = validate_name(&name)?;
        }
        if let Some(tz) = changes.timezone {
            website.timezone = validate_timezone(&tz)?;
        }
        self.store.update_website(&website).await?;
        Ok(website)
    }

    pub async fn delete_website(&self, id: &str) -> Result<()> {
        if !self.store.delete_website(id).await? {
            return Err(Error::not_found("website"));
        }
        self.sites.lock().expect("sites lock poisoned").retain(|_, (site, _)| site.id != id);
        Ok(())
    }

    /// Runs a statistics query in the website's time zone; also returns the resolved `[from, to)`.
    pub async fn query(&self, request: QueryRequest) -> Result<(Answer, (i64, i64))> {
        let website = self.get_website(&request.website_id).await?;
        let tz: Tz = website.timezone.parse().map_err(Error::internal)?;
        let mut range = period_range(tz, &request.period, &request.date, Utc::now())?;
        if request.previous_period {
            range = (range.0 - (range.1 - range.0), range.0);
        }
        let filters = request
            .filters
            .into_iter()
            .map(|(op, dim, values)| Filter::new(&op, &dim, values))
            .collect::<Result<Vec<_>>>()?;
        let query = Query::new(
            website.id,
            tz,
            range,
            &request.metrics,
            &request.dimensions,
            filters,
            &request.order_by,
            (request.limit, request.offset),
            request.fill_time,
        )?;
        let buckets = query.buckets()?;
        let (events, visits, rolled_up_days) = match self.read_rollups(&query, buckets.as_ref()).await? {
            Some(parts) => parts,
            None => {
                let (events, visits) = self.read_events(&query, buckets.as_ref(), ReadFrom::Replica).await?;
                (events, visits, 0)
            }
        };
        let answer = query.answer(events, visits, buckets.as_ref());
        Ok((Answer { rolled_up_days, ..answer }, range))
    }

    /// Both parts of a query, computed from raw events and visits.
    pub(crate) async fn read_events(
        &self,
        query: &Query,
        buckets: Option<&Buckets>,
        from: ReadFrom,
    ) -> Result<(Vec<Counted>, Vec<Counted>)> {
        let like = self.store.like();
        let events = async {
            match query.event_sql(like, buckets) {
                Some(sql) => self.store.counted(&sql, &query.dims, 3, from).await,
                None => Ok(vec![]),
            }
        };
        let visits = async {
            match query.visit_sql(like, buckets) {
                Some(sql) => self.store.counted(&sql, &query.dims, 4, from).await,
                None => Ok(vec![]),
            }
        };
        tokio::try_join!(events, visits)
    }
}
