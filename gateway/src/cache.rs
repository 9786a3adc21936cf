//! Verified keys, cached per gateway and evicted by change notifications.
//!
//! Three rules keep the cache from ever serving a revoked key or a lost membership for longer
//! than a notification takes to arrive:
//! - a `Key` or `User` change evicts every entry of that key or user;
//! - every notification bumps a generation, and a lookup that started before it cannot insert
//!   its (possibly stale) answer afterwards;
//! - while the notification channel is down the cache is neither read nor written, and it is
//!   emptied, because changes made meanwhile would go unheard.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use common::bus::{Change, ChangeBus, Notice};
use common::secret::Digest;
use proto::identity::v1 as pb;

/// A safety net for a notification lost without the channel noticing; not how changes apply.
const TTL: Duration = Duration::from_secs(300);
const MAX_ENTRIES: usize = 100_000;

#[derive(Clone)]
pub struct Verified {
    pub key: pb::ApiKey,
    pub teams: Vec<pb::TeamRole>,
}

struct Entry {
    verified: Arc<Verified>,
    at: Instant,
}

#[derive(Default)]
struct State {
    trusted: bool,
    generation: u64,
    entries: HashMap<Digest, Entry>,
}

pub enum Lookup {
    Hit(Arc<Verified>),
    /// Not cached; insert the answer with this generation.
    Miss(u64),
    /// The channel is down: ask identity and keep nothing.
    Untrusted,
}

pub struct KeyCache {
    state: Mutex<State>,
}

impl KeyCache {
    /// A cache that follows `bus` for as long as the cache lives.
    pub fn follow(bus: &dyn ChangeBus) -> Arc<KeyCache> {
        let cache = Arc::new(KeyCache { state: Mutex::default() });
        let mut notices = bus.subscribe();
        let weak: Weak<KeyCache> = Arc::downgrade(&cache);
        tokio::spawn(async move {
            while let Some(notice) = notices.recv().await {
                let Some(cache) = weak.upgrade() else { return };
                cache.apply(notice);
            }
        });
        cache
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("key cache lock poisoned")
    }

    pub fn lookup(&self, digest: &Digest) -> Lookup {
        let state = self.state();
        if !state.trusted {
            return Lookup::Untrusted;
        }
        match state.entries.get(digest) {
            Some(entry) if entry.at.elapsed() < TTL => Lookup::Hit(entry.verified.clone()),
            _ => Lookup::Miss(state.generation),
        }
    }

    pub fn insert(&self, digest: Digest, generation: u64, verified: Arc<Verified>) {
        let mut state = self.state();
        if !state.trusted || state.generation != generation {
            return;
        }
        if state.entries.len() >= MAX_ENTRIES {
            state.entries.clear();
        }
        state.entries.insert(digest, Entry { verified, at: Instant::now() });
    }

    /// Applies a change this replica made itself, without waiting for its notification.
    pub fn forget(&self, change: Change) {
        self.apply(Notice::Change(change));
    }

    fn apply(&self, notice: Notice) {
        let mut state = self.state();
        state.generation += 1;
        match notice {
            Notice::Connected => state.trusted = true,
            Notice::Lost => {
                state.trusted = false;
                state.entries.clear();
            }
            Notice::Change(Change::Key(id)) => state.entries.retain(|_, e| e.verified.key.id != id),
            Notice::Change(Change::User(id)) => state.entries.retain(|_, e| e.verified.key.user_id != id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::bus::MemoryBus;

    fn verified(key_id: &str, user_id: &str) -> Verified {
        Verified { key: pb::ApiKey { id: key_id.into(), user_id: user_id.into(), ..Default::default() }, teams: vec![] }
    }

    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn a_lookup_that_started_before_a_change_cannot_insert_after_it() {
        let bus = MemoryBus::default();
        let cache = KeyCache::follow(&bus);
        settle().await;
        let digest = Digest::of("a");
        let Lookup::Miss(generation) = cache.lookup(&digest) else { panic!("trusted and empty") };
        bus.publish(Change::Key("k".into())).await.unwrap();
        settle().await;
        cache.insert(digest, generation, Arc::new(verified("k", "u")));
        assert!(matches!(cache.lookup(&digest), Lookup::Miss(_)));
    }

    #[tokio::test]
    async fn changes_evict_by_key_and_by_user() {
        let bus = MemoryBus::default();
        let cache = KeyCache::follow(&bus);
        settle().await;
        for (secret, key, user) in [("a", "k1", "u1"), ("b", "k2", "u1"), ("c", "k3", "u2")] {
            let Lookup::Miss(generation) = cache.lookup(&Digest::of(secret)) else { panic!() };
            cache.insert(Digest::of(secret), generation, Arc::new(verified(key, user)));
        }
        bus.publish(Change::Key("k3".into())).await.unwrap();
        settle().await;
        assert!(matches!(cache.lookup(&Digest::of("c")), Lookup::Miss(_)));
        assert!(matches!(cache.lookup(&Digest::of("a")), Lookup::Hit(_)));
        bus.publish(Change::User("u1".into())).await.unwrap();
        settle().await;
        assert!(matches!(cache.lookup(&Digest::of("a")), Lookup::Miss(_)));
        assert!(matches!(cache.lookup(&Digest::of("b")), Lookup::Miss(_)));
    }

    #[tokio::test]
    async fn a_lost_channel_empties_and_disables_the_cache_until_it_is_back() {
        let cache = Arc::new(KeyCache { state: Mutex::default() });
        assert!(matches!(cache.lookup(&Digest::of("a")), Lookup::Untrusted), "untrusted before the first Connected");
        cache.apply(Notice::Connected);
        let Lookup::Miss(generation) = cache.lookup(&Digest::of("a")) else { panic!() };
        cache.insert(Digest::of("a"), generation, Arc::new(verified("k", "u")));
        cache.apply(Notice::Lost);
        assert!(matches!(cache.lookup(&Digest::of("a")), Lookup::Untrusted));
        cache.apply(Notice::Connected);
        assert!(matches!(cache.lookup(&Digest::of("a")), Lookup::Miss(_)), "emptied while lost");
    }
}
