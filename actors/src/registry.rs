//! The shared read side of the cache: a map from user id to that user's live
//! session actor and the snapshot the actor last published.
//!
//! Only the supervisor inserts and removes slots, and only a session actor
//! publishes into its own snapshot cell (the router may clear one, never fill
//! it). The hot path reads both without sending a message: a fresh snapshot
//! answers a lookup for the cost of two uncontended read locks.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use ractor::{ActorRef, ActorStatus};
use tokio::time::Instant;

use crate::record::Fetched;
use crate::session::SessionMsg;

/// A record as a session actor published it.
#[derive(Debug)]
pub struct Cached {
    pub fetched: Fetched,
    /// When the store answered. Freshness is `now - fetched_at < ttl`; it is a
    /// `tokio::time::Instant` so paused-time tests and the simulation control it.
    pub fetched_at: Instant,
}

/// The publication point of one session actor.
pub struct SnapshotCell {
    cached: RwLock<Option<Arc<Cached>>>,
    /// Milliseconds since the registry's epoch at the last lookup: kept here,
    /// not in the actor, because cache hits never reach the actor and idle
    /// passivation must still see them.
    last_access_ms: AtomicU64,
}

impl SnapshotCell {
    pub(crate) fn new(now_ms: u64) -> Self {
        SnapshotCell {
            cached: RwLock::new(None),
            last_access_ms: AtomicU64::new(now_ms),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Option<Arc<Cached>>> {
        self.cached.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Option<Arc<Cached>>> {
        self.cached.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The published record if it is still fresh at `now`.
    pub fn fresh(&self, now: Instant, ttl: Duration) -> Option<Arc<Cached>> {
        let guard = self.read();
        let cached = guard.as_ref()?;
        if now.saturating_duration_since(cached.fetched_at) < ttl {
            Some(Arc::clone(cached))
        } else {
            None
        }
    }

    pub(crate) fn publish(&self, cached: Arc<Cached>) {
        *self.write() = Some(cached);
    }

    /// Drops the published record unless it is at least `min_version`
    /// (`None`: drop whatever is there).
    pub(crate) fn clear_older_than(&self, min_version: Option<i64>) {
        let mut guard = self.write();
        let keep = match (guard.as_ref(), min_version) {
            (Some(c), Some(v)) => c.fetched.version() >= v,
            _ => false,
        };
        if !keep {
            *guard = None;
        }
    }

    pub(crate) fn touch(&self, now_ms: u64) {
        self.last_access_ms.store(now_ms, Ordering::Relaxed);
    }

    pub(crate) fn last_access_ms(&self) -> u64 {
        self.last_access_ms.load(Ordering::Relaxed)
    }
}

/// One user's live session actor and its snapshot.
pub struct Slot {
    pub actor: ActorRef<SessionMsg>,
    pub cell: Arc<SnapshotCell>,
}

impl Slot {
    pub(crate) fn is_alive(&self) -> bool {
        matches!(
            self.actor.get_status(),
            ActorStatus::Running | ActorStatus::Starting | ActorStatus::Upgrading
        )
    }
}

/// The map of live session actors on this node.
pub struct Registry {
    epoch: Instant,
    slots: RwLock<HashMap<i64, Arc<Slot>>>,
}

impl Registry {
    pub(crate) fn new() -> Self {
        Registry {
            epoch: Instant::now(),
            slots: RwLock::new(HashMap::new()),
        }
    }

    pub(crate) fn millis(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_millis() as u64
    }

    pub fn get(&self, user_id: i64) -> Option<Arc<Slot>> {
        self.slots
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&user_id)
            .cloned()
    }

    pub fn len(&self) -> usize {
        self.slots.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn insert(&self, user_id: i64, slot: Arc<Slot>) {
        self.slots
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(user_id, slot);
    }

    /// Removes the user's slot if it still belongs to the given actor.
    pub(crate) fn remove_if(&self, user_id: i64, actor: ractor::ActorId) -> Option<Arc<Slot>> {
        let mut slots = self.slots.write().unwrap_or_else(|e| e.into_inner());
        match slots.get(&user_id) {
            Some(s) if s.actor.get_id() == actor => slots.remove(&user_id),
            _ => None,
        }
    }

    /// `(user_id, last_access_ms)` of every slot, for passivation.
    pub(crate) fn access_times(&self) -> Vec<(i64, u64)> {
        self.slots
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(id, s)| (*id, s.cell.last_access_ms()))
            .collect()
    }

    pub(crate) fn user_ids(&self) -> Vec<i64> {
        self.slots
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .copied()
            .collect()
    }

    pub(crate) fn drain(&self) -> Vec<Arc<Slot>> {
        self.slots
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .map(|(_, s)| s)
            .collect()
    }
}
