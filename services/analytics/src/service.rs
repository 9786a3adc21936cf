//! Analytics' rules for websites.

use std::sync::{Arc, Mutex};

use common::db::{Backend, OpenError};
use common::secret::random_token;
use common::time::now_ms;
use common::{Error, Result};

use crate::model::{Website, normalize_domain, validate_name, validate_timezone};
use crate::store::Store;

#[derive(Clone)]
pub struct Analytics {
    pub(crate) store: Store,
    pub(crate) bots: Arc<isbot::Bots>,
    /// Today's visitor-hash salt, as (UTC day, salt).
    pub(crate) salt: Arc<Mutex<Option<(String, String)>>>,
}

pub struct WebsiteChanges {
    pub name: Option<String>,
    pub timezone: Option<String>,
}

impl Analytics {
    pub async fn open(backend: &Backend) -> Result<Analytics, OpenError> {
        Ok(Analytics {
            store: Store::open(backend).await?,
            bots: Arc::new(isbot::Bots::default()),
            salt: Arc::default(),
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
        Ok(())
    }
}
