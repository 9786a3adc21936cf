//! Change notifications: identity announces that a key or a user's memberships changed, policy
//! that a team's plan or key policy changed, and every gateway evicts what it cached about them. In-process in the all-in-one mode,
//! Redis pub/sub across processes. A subscriber is told when its channel is lost and when it is
//! back, so that it can stop trusting its cache in between.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::{broadcast, mpsc};

use crate::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Change {
    /// A key was revoked or edited.
    Key(String),
    /// A user's memberships or roles changed.
    User(String),
    /// A team's plan, limit overrides or key policy changed.
    Team(String),
}

impl Change {
    fn encode(&self) -> String {
        match self {
            Change::Key(id) => format!("key:{id}"),
            Change::User(id) => format!("user:{id}"),
            Change::Team(id) => format!("team:{id}"),
        }
    }

    fn decode(text: &str) -> Option<Change> {
        let (kind, id) = text.split_once(':')?;
        let id = id.to_owned();
        match kind {
            "key" => Some(Change::Key(id)),
            "user" => Some(Change::User(id)),
            "team" => Some(Change::Team(id)),
            _ => None,
        }
    }
}

/// What a subscriber hears, in order. It starts disconnected: nothing can be trusted before the
/// first `Connected`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    Connected,
    Change(Change),
    /// Notifications may have been missed from here until the next `Connected`.
    Lost,
}

#[async_trait::async_trait]
pub trait ChangeBus: Send + Sync + 'static {
    async fn publish(&self, change: Change) -> Result<()>;
    /// A new subscription; it ends when the receiver is dropped.
    fn subscribe(&self) -> mpsc::UnboundedReceiver<Notice>;
}

/// Publishes, logging instead of failing: the change itself is already committed, and a
/// subscriber that misses it is told its channel was lost.
pub async fn announce(bus: Option<&Arc<dyn ChangeBus>>, change: Change) {
    if let Some(bus) = bus
        && let Err(e) = bus.publish(change).await
    {
        tracing::error!(error = %e, "could not announce a change");
    }
}

/// Every subscriber in this process.
pub struct MemoryBus {
    tx: broadcast::Sender<Change>,
}

impl Default for MemoryBus {
    fn default() -> Self {
        MemoryBus { tx: broadcast::channel(4096).0 }
    }
}

#[async_trait::async_trait]
impl ChangeBus for MemoryBus {
    async fn publish(&self, change: Change) -> Result<()> {
        // No subscriber is not an error: nobody has anything to evict.
        let _ = self.tx.send(change);
        Ok(())
    }

    fn subscribe(&self) -> mpsc::UnboundedReceiver<Notice> {
        let (out, rx) = mpsc::unbounded_channel();
        let mut changes = self.tx.subscribe();
        let _ = out.send(Notice::Connected);
        tokio::spawn(async move {
            loop {
                let notice = match changes.recv().await {
                    Ok(change) => Notice::Change(change),
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        // Missed some: say so, then carry on from here.
                        if out.send(Notice::Lost).is_err() {
                            return;
                        }
                        Notice::Connected
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                if out.send(notice).is_err() {
                    return;
                }
            }
        });
        rx
    }
}

/// Redis pub/sub on the channel `<prefix>changes`.
pub struct RedisBus {
    client: redis::Client,
    publisher: ConnectionManager,
    channel: String,
}

impl RedisBus {
    pub fn new(url: &str, prefix: &str) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(250)))
            .set_response_timeout(Some(Duration::from_millis(250)))
            .set_number_of_retries(1);
        let publisher = ConnectionManager::new_lazy_with_config(client.clone(), config)?;
        Ok(RedisBus { client, publisher, channel: format!("{prefix}changes") })
    }
}

#[async_trait::async_trait]
impl ChangeBus for RedisBus {
    async fn publish(&self, change: Change) -> Result<()> {
        let mut conn = self.publisher.clone();
        redis::cmd("PUBLISH")
            .arg(&self.channel)
            .arg(change.encode())
            .query_async::<i64>(&mut conn)
            .await
            .map(drop)
            .map_err(|e| {
                tracing::warn!(error = %e, "change notification not published");
                Error::unavailable("the change bus")
            })
    }

    fn subscribe(&self) -> mpsc::UnboundedReceiver<Notice> {
        let (out, rx) = mpsc::unbounded_channel();
        let (client, channel) = (self.client.clone(), self.channel.clone());
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(50);
            while !out.is_closed() {
                if let Ok(mut pubsub) = client.get_async_pubsub().await
                    && pubsub.subscribe(&channel).await.is_ok()
                {
                    backoff = Duration::from_millis(50);
                    if out.send(Notice::Connected).is_err() {
                        return;
                    }
                    let mut messages = pubsub.into_on_message();
                    while let Some(message) = messages.next().await {
                        let payload: String = message.get_payload().unwrap_or_default();
                        if let Some(change) = Change::decode(&payload)
                            && out.send(Notice::Change(change)).is_err()
                        {
                            return;
                        }
                    }
                    tracing::warn!("change notifications lost; reconnecting");
                    if out.send(Notice::Lost).is_err() {
                        return;
                    }
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        });
        rx
    }
}

/// The bus of a process: Redis when configured, else none (nothing to tell other processes).
pub fn redis(url: Option<&str>, prefix: &str) -> Result<Option<Arc<dyn ChangeBus>>, redis::RedisError> {
    Ok(match url {
        Some(url) => Some(Arc::new(RedisBus::new(url, prefix)?)),
        None => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_round_trip_as_text() {
        for change in [Change::Key("k:1".into()), Change::User("u".into()), Change::Team("t".into())] {
            assert_eq!(Change::decode(&change.encode()), Some(change));
        }
        assert_eq!(Change::decode("nonsense"), None);
    }
}
