//! The shared side of the cache: a map from user id to that user's slot —
//! the published record (its snapshot cell) and, while the user is busy,
//! the session actor that owns it.
//!
//! The supervisor inserts a slot for a session it attaches an actor to;
//! the router inserts one, with no actor, for a near copy. Only the
//! supervisor removes slots and attaches or detaches actors. What a cell
//! holds and who may write it is `cell`'s business. The hot path reads a
//! cell without sending a message: a fresh record answers a lookup for the
//! cost of two uncontended read locks.
//!
//! A slot without an actor is a *hibernated* session: the record stays (a
//! few hundred bytes) and keeps answering hits; the actor (~10 KB) is gone
//! until the next miss, when a new one is attached to the same cell and
//! starts from the record already there, without a database read.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use ractor::{ActorRef, ActorStatus};
use tokio::time::Instant;

use crate::cell::SnapshotCell;
use crate::message::SessionMsg;
use crate::sync::RwLockExt;

/// One user's record and, while it has one, its session actor. The cell
/// is inline, so a hit follows one pointer from the map to the record.
pub(crate) struct Slot {
    actor: RwLock<Option<ActorRef<SessionMsg>>>,
    pub(crate) cell: SnapshotCell,
}

impl Slot {
    pub(crate) fn new(cell: SnapshotCell) -> Slot {
        Slot {
            actor: RwLock::new(None),
            cell,
        }
    }

    /// The live session actor, if the session is not hibernated.
    pub(crate) fn actor(&self) -> Option<ActorRef<SessionMsg>> {
        self.actor.read_locked().clone()
    }

    /// Whether an actor is attached (it may have just stopped).
    pub(crate) fn has_actor(&self) -> bool {
        self.actor.read_locked().is_some()
    }

    pub(crate) fn set_actor(&self, actor: Option<ActorRef<SessionMsg>>) {
        *self.actor.write_locked() = actor;
    }

    /// Detaches the actor if it is the given one; returns whether it was.
    pub(crate) fn detach(&self, id: ractor::ActorId) -> bool {
        let mut actor = self.actor.write_locked();
        if actor.as_ref().is_some_and(|a| a.get_id() == id) {
            *actor = None;
            true
        } else {
            false
        }
    }

    pub(crate) fn live_actor(&self) -> Option<ActorRef<SessionMsg>> {
        self.actor().filter(|a| {
            matches!(
                a.get_status(),
                ActorStatus::Running | ActorStatus::Starting | ActorStatus::Upgrading
            )
        })
    }
}

/// Hashes a user id for the registry's map. The std default (SipHash,
/// keyed per map) resists keys chosen to collide, and costs about a
/// hundred instructions a lookup: an eighth of a whole cache hit. The
/// keys here are user ids the database generated, reached through signed
/// tokens or an authenticated peer, so no caller picks them; a
/// multiply-xorshift mix (splitmix64's finaliser) spreads sequential ids
/// over the table's low bits (bucket) and high bits (tag) alike.
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    #[inline]
    fn finish(&self) -> u64 {
        let mut x = self.0;
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^ (x >> 31)
    }

    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        // Only integers are hashed here; stay correct for anything else.
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }

    #[inline]
    fn write_i64(&mut self, n: i64) {
        self.0 ^= n as u64;
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
}

type IdMap<V> = HashMap<i64, V, BuildHasherDefault<IdHasher>>;

/// The map of sessions on this node.
pub(crate) struct Registry {
    epoch: Instant,
    /// Bumped by [`Registry::flush`]: every record published before is
    /// dead at once, without walking the map, and every fetch started
    /// before is refused.
    flushes: Arc<AtomicU64>,
    slots: RwLock<IdMap<Arc<Slot>>>,
    live_actors: AtomicUsize,
}

impl Registry {
    pub(crate) fn new() -> Self {
        Registry {
            epoch: Instant::now(),
            flushes: Arc::new(AtomicU64::new(0)),
            slots: RwLock::new(IdMap::default()),
            live_actors: AtomicUsize::new(0),
        }
    }

    pub(crate) fn epoch(&self) -> Instant {
        self.epoch
    }

    /// The flush count (see [`Registry::flush`]).
    #[inline]
    pub(crate) fn flushes(&self) -> u64 {
        self.flushes.load(Ordering::Acquire)
    }

    /// The flush count, shared with the session actors.
    pub(crate) fn flush_counter(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.flushes)
    }

    /// Drops every record on this node in O(1): records published and
    /// fetches started before it are never served.
    pub(crate) fn flush(&self) {
        self.flushes.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn millis(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_millis() as u64
    }

    pub(crate) fn get(&self, user_id: i64) -> Option<Arc<Slot>> {
        self.slots.read_locked().get(&user_id).cloned()
    }

    /// Runs `f` on the user's slot under the map's read lock, without
    /// cloning it: the cache-hit path.
    pub(crate) fn with<R>(&self, user_id: i64, f: impl FnOnce(&Slot) -> R) -> Option<R> {
        self.slots.read_locked().get(&user_id).map(|s| f(s))
    }

    /// Sessions known to this node, live or hibernated.
    pub(crate) fn len(&self) -> usize {
        self.slots.read_locked().len()
    }

    /// Sessions with a live actor.
    pub(crate) fn live_actors(&self) -> usize {
        self.live_actors.load(Ordering::Relaxed)
    }

    pub(crate) fn set_live_actors(&self, n: usize) {
        self.live_actors.store(n, Ordering::Relaxed);
    }

    /// The user's slot, created (empty, no actor) if there is none.
    pub(crate) fn get_or_insert(&self, user_id: i64, now: Instant) -> Arc<Slot> {
        if let Some(s) = self.get(user_id) {
            return s;
        }
        let mut slots = self.slots.write_locked();
        let now_ms = self.millis(now);
        Arc::clone(
            slots
                .entry(user_id)
                .or_insert_with(|| Arc::new(Slot::new(SnapshotCell::new(now_ms)))),
        )
    }

    pub(crate) fn remove(&self, user_id: i64) -> Option<Arc<Slot>> {
        self.slots.write_locked().remove(&user_id)
    }

    /// Runs `f` on every slot under the map's read lock, without cloning
    /// them: the supervisor's sweep. Lookups only read the map (its writers
    /// are the supervisor and the router's near-copy insertions), so holding
    /// the read lock for a whole pass delays no lookup.
    pub(crate) fn for_each(&self, mut f: impl FnMut(i64, &Slot)) {
        for (id, slot) in self.slots.read_locked().iter() {
            f(*id, slot);
        }
    }

    /// Every slot, to pick the least recently used at the cap.
    pub(crate) fn all(&self) -> Vec<(i64, Arc<Slot>)> {
        self.slots
            .read_locked()
            .iter()
            .map(|(id, s)| (*id, Arc::clone(s)))
            .collect()
    }

    pub(crate) fn user_ids(&self) -> Vec<i64> {
        self.slots.read_locked().keys().copied().collect()
    }

    pub(crate) fn drain(&self) -> Vec<Arc<Slot>> {
        self.slots.write_locked().drain().map(|(_, s)| s).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::hash::BuildHasher;

    use super::*;

    fn hash(id: i64) -> u64 {
        BuildHasherDefault::<IdHasher>::default().hash_one(id)
    }

    /// Sequential ids (what the database hands out) must spread over the
    /// bits a table uses: the low bits pick the bucket, the top seven the
    /// tag. A weak mix (say, the id itself) piles them into a few.
    #[test]
    fn sequential_ids_spread_over_buckets_and_tags() {
        let ids = 1..=4096i64;
        let buckets: HashSet<u64> = ids.clone().map(|id| hash(id) & 4095).collect();
        let tags: HashSet<u64> = ids.clone().map(|id| hash(id) >> 57).collect();
        // 4096 balls in 4096 bins leave ~63% of bins used when random.
        assert!(buckets.len() > 2400, "{} buckets used", buckets.len());
        assert_eq!(tags.len(), 128, "every tag value used");
        let strided: HashSet<u64> = (1..=4096i64).map(|i| hash(i << 12) & 4095).collect();
        assert!(strided.len() > 2400, "{} buckets used", strided.len());
    }

    #[test]
    fn ids_hash_the_same_however_written() {
        let mut a = IdHasher::default();
        a.write_i64(42);
        let mut b = IdHasher::default();
        b.write_u64(42);
        assert_eq!(a.finish(), b.finish());
    }
}
