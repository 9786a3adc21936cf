//! Change notifications: identity announces that a key or a user's memberships changed, policy
//! that a team's plan or key policy changed, analytics that a team's websites changed; every
//! gateway, and policy itself, evict what they cached about them. In-process in the all-in-one mode,
//! Redis pub/sub across processes (sharded pub/sub on a Redis Cluster, where a plain PUBLISH
//! would be copied to every node). A subscriber is told when its channel is lost and when it is
//! back, so that it can stop trusting its cache in between.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use redis::{PushInfo, PushKind};
use tokio::sync::{broadcast, mpsc};

use crate::redis_link::{Link, Target, Timeouts};
use crate::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Change {
    /// A key was revoked or edited.
    Key(String),
    /// A user's memberships or roles changed.
    User(String),
    /// A team's plan, limit overrides or key policy changed.
    Team(String),
    /// A website of the team was created, changed or deleted.
    Websites(String),
}

impl Change {
    fn encode(&self) -> String {
        match self {
            Change::Key(id) => format!("key:{id}"),
            Change::User(id) => format!("user:{id}"),
            Change::Team(id) => format!("team:{id}"),
            Change::Websites(id) => format!("websites:{id}"),
        }
    }

    fn decode(text: &str) -> Option<Change> {
        let (kind, id) = text.split_once(':')?;
        let id = id.to_owned();
        match kind {
            "key" => Some(Change::Key(id)),
            "user" => Some(Change::User(id)),
            "team" => Some(Change::Team(id)),
            "websites" => Some(Change::Websites(id)),
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

/// Bounds on publishing: a change is committed already, its announcement must not hold the
/// answer long.
const TIMEOUTS: Timeouts =
    Timeouts { connect: Duration::from_millis(250), response: Duration::from_millis(250), retries: 1 };

/// Redis pub/sub on the channel `<prefix>changes`; on a cluster, sharded pub/sub on that
/// channel, which lives on the master of its hash slot.
pub struct RedisBus {
    target: Target,
    publisher: Link,
    channel: String,
}

impl RedisBus {
    pub fn new(target: &Target, prefix: &str) -> Result<Self, redis::RedisError> {
        Ok(RedisBus {
            target: target.clone(),
            publisher: Link::open(target, TIMEOUTS)?,
            channel: format!("{prefix}changes"),
        })
    }
}

#[async_trait::async_trait]
impl ChangeBus for RedisBus {
    async fn publish(&self, change: Change) -> Result<()> {
        let mut conn = self.publisher.clone();
        let command = if self.target.is_cluster() { "SPUBLISH" } else { "PUBLISH" };
        redis::cmd(command)
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
        let channel = self.channel.clone();
        match &self.target {
            Target::Single(url) => match redis::Client::open(url.as_str()) {
                Ok(client) => drop(tokio::spawn(follow_single(client, channel, out))),
                Err(e) => tracing::error!(error = %e, "change notifications unavailable"),
            },
            Target::Cluster(nodes) => drop(tokio::spawn(follow_cluster(nodes.clone(), channel, out))),
        }
        rx
    }
}

/// Waits before the next attempt, longer each time up to a second.
async fn backoff(delay: &mut Duration) {
    tokio::time::sleep(*delay).await;
    *delay = (*delay * 2).min(Duration::from_secs(1));
}

async fn follow_single(client: redis::Client, channel: String, out: mpsc::UnboundedSender<Notice>) {
    let mut delay = Duration::from_millis(50);
    while !out.is_closed() {
        if let Ok(mut pubsub) = client.get_async_pubsub().await
            && pubsub.subscribe(&channel).await.is_ok()
        {
            delay = Duration::from_millis(50);
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
        backoff(&mut delay).await;
    }
}

/// Sharded pub/sub on a cluster. The cluster connection hears pushes from every node; a
/// disconnection from any of them, or the channel's slot moving away, may have cost messages, so
/// the subscriber is told and the channel subscribed again at its slot's current master.
async fn follow_cluster(nodes: Vec<String>, channel: String, out: mpsc::UnboundedSender<Notice>) {
    let (pushes_tx, mut pushes) = mpsc::unbounded_channel::<PushInfo>();
    let client = match Target::cluster_client(&nodes, TIMEOUTS, true) {
        Ok(client) => client,
        Err(e) => return tracing::error!(error = %e, "change notifications unavailable"),
    };
    let config = TIMEOUTS.cluster_config().set_push_sender(pushes_tx);
    let mut delay = Duration::from_millis(50);
    let mut conn = loop {
        if out.is_closed() {
            return;
        }
        match client.get_async_connection_with_config(config.clone()).await {
            Ok(conn) => break conn,
            Err(_) => backoff(&mut delay).await,
        }
    };
    loop {
        while conn.ssubscribe(&channel).await.is_err() {
            if out.is_closed() {
                return;
            }
            backoff(&mut delay).await;
        }
        delay = Duration::from_millis(50);
        if out.send(Notice::Connected).is_err() {
            return;
        }
        loop {
            // The connection owns the sender: no more pushes means no more connection.
            let Some(push) = pushes.recv().await else { return };
            match push.kind {
                PushKind::SMessage => {
                    let payload = push.data.get(1).and_then(|v| redis::from_redis_value_ref::<String>(v).ok());
                    if let Some(change) = payload.as_deref().and_then(Change::decode)
                        && out.send(Notice::Change(change)).is_err()
                    {
                        return;
                    }
                }
                PushKind::Disconnection | PushKind::SUnsubscribe => break,
                _ => {}
            }
        }
        tracing::warn!("change notifications lost; subscribing again");
        if out.send(Notice::Lost).is_err() {
            return;
        }
    }
}

/// The bus of a process: Redis when configured, else none (nothing to tell other processes).
pub fn redis(target: Option<&Target>, prefix: &str) -> Result<Option<Arc<dyn ChangeBus>>, redis::RedisError> {
    Ok(match target {
        Some(target) => Some(Arc::new(RedisBus::new(target, prefix)?)),
        None => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_round_trip_as_text() {
        for change in [
            Change::Key("k:1".into()),
            Change::User("u".into()),
            Change::Team("t".into()),
            Change::Websites("t".into()),
        ] {
            assert_eq!(Change::decode(&change.encode()), Some(change));
        }
        assert_eq!(Change::decode("nonsense"), None);
    }
}
