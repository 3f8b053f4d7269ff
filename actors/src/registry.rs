//! The shared side of the cache: a map from user id to that user's slot —
//! the published record (its snapshot cell) and, while the user is busy,
//! the session actor that owns it.
//!
//! Only the supervisor inserts and removes slots and attaches or detaches
//! actors. Only a session actor publishes a record into its cell; the
//! router may only take one away (invalidation). The hot path reads a cell
//! without sending a message: a fresh record answers a lookup for the cost
//! of two uncontended read locks.
//!
//! A slot without an actor is a *hibernated* session: the record stays (a
//! few hundred bytes) and keeps answering hits; the actor (~10 KB) is gone
//! until the next miss, when a new one is attached to the same cell and
//! starts from the record already there, without a database read.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use ractor::{ActorRef, ActorStatus};
use tokio::time::Instant;

use crate::record::Fetched;
use crate::session::SessionMsg;

/// A record as a session actor published it. Kept inline in its cell:
/// a hit copies it out (the user's state itself is shared, behind an `Arc`).
#[derive(Clone, Debug)]
pub struct Cached {
    pub fetched: Fetched,
    /// When the store answered. Freshness is `now - fetched_at < ttl`; it is a
    /// `tokio::time::Instant` so paused-time tests and the simulation control it.
    pub fetched_at: Instant,
    /// The registry's flush count when the fetch started: a record from
    /// before the last flush is never served (see [`Registry::flush`]).
    pub flush: u64,
}

/// What a cell holds, under one lock so that publishing a record and
/// invalidating it can never interleave.
#[derive(Debug, Default)]
struct CellState {
    cached: Option<Cached>,
    /// The lowest version a record may carry to be published: raised by
    /// every versioned invalidation, so a fetch that started before the
    /// write it races returns an older version and is refused.
    fence: i64,
    /// Bumped by every unversioned invalidation (and forced refresh): a
    /// fetch started under an older generation is refused.
    generation: u64,
    /// The last record was taken away by an invalidation (for miss reasons).
    invalidated: bool,
}

/// A fetched record was not published: it is older than the fence, or was
/// fetched under an older generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stale;

/// The publication point of one user's record.
pub struct SnapshotCell {
    state: RwLock<CellState>,
    /// Milliseconds since the registry's epoch at the last lookup: kept here,
    /// not in the actor, because cache hits never reach the actor and idle
    /// passivation must still see them.
    last_access_ms: AtomicU64,
    /// Milliseconds since the epoch at the actor's last message, to
    /// hibernate actors that only hits have needed lately.
    last_actor_ms: AtomicU64,
    /// Set by an actor that stops on purpose (hibernation): a lookup it
    /// dropped on the way out is retried, whereas one dropped by a panic
    /// fails.
    stopping: std::sync::atomic::AtomicBool,
}

impl SnapshotCell {
    pub(crate) fn new(now_ms: u64) -> Self {
        SnapshotCell {
            state: RwLock::new(CellState::default()),
            last_access_ms: AtomicU64::new(now_ms),
            last_actor_ms: AtomicU64::new(now_ms),
            stopping: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, CellState> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, CellState> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The published record if it is still fresh at `now` and was fetched
    /// since the registry's last flush (`flush`, its current count).
    pub fn fresh(&self, now: Instant, ttl: Duration, flush: u64) -> Option<Cached> {
        let guard = self.read();
        let cached = guard.cached.as_ref()?;
        if cached.flush == flush && now.saturating_duration_since(cached.fetched_at) < ttl {
            Some(cached.clone())
        } else {
            None
        }
    }

    /// Whether a record (fresh or not) is published since the last flush.
    pub(crate) fn has_record(&self, flush: u64) -> bool {
        self.read()
            .cached
            .as_ref()
            .is_some_and(|c| c.flush == flush)
    }

    /// Whether the last record was taken by an invalidation, or dropped by
    /// a flush since (`flush`: the registry's count now).
    pub(crate) fn was_invalidated(&self, flush: u64) -> bool {
        let s = self.read();
        s.invalidated || s.cached.as_ref().is_some_and(|c| c.flush != flush)
    }

    /// The generation a fetch starting now runs under.
    pub(crate) fn generation(&self) -> u64 {
        self.read().generation
    }

    /// Publishes `fetched` unless an invalidation since `generation` (or a
    /// fence above its version, or a flush since `flush`, the registry's
    /// flush count when the fetch started; `flush_now` is the count now)
    /// says it is already stale.
    pub(crate) fn publish(
        &self,
        fetched: &Fetched,
        (generation, flush): (u64, u64),
        flush_now: u64,
        at: Instant,
        keep: bool,
    ) -> Result<(), Stale> {
        let mut s = self.write();
        if generation != s.generation || flush != flush_now || fetched.version() < s.fence {
            return Err(Stale);
        }
        if keep {
            // Stamped with the count at the fetch's start: a flush that
            // lands between `flush_now` being read and this write still
            // keeps the record from being served.
            s.cached = Some(Cached {
                fetched: fetched.clone(),
                fetched_at: at,
                flush,
            });
            s.invalidated = false;
        }
        Ok(())
    }

    /// Takes the record away unless it is at least `min_version`, and
    /// fences off any fetch in flight that could bring an older one back
    /// (`None`: in any case).
    pub(crate) fn invalidate(&self, min_version: Option<i64>) {
        let mut s = self.write();
        let keep = match (&s.cached, min_version) {
            (Some(c), Some(v)) => c.fetched.version() >= v,
            _ => false,
        };
        match min_version {
            Some(v) => s.fence = s.fence.max(v),
            None => s.generation += 1,
        }
        if !keep && s.cached.take().is_some() {
            s.invalidated = true;
        }
    }

    /// Forgets the record (a forced refresh): not an invalidation.
    pub(crate) fn supersede(&self) {
        let mut s = self.write();
        s.generation += 1;
        s.cached = None;
        s.invalidated = false;
    }

    pub(crate) fn touch(&self, now_ms: u64) {
        // Written only when it changes: under load most lookups of a user
        // fall in the same millisecond, and a store would dirty the line
        // for every other core reading it.
        if self.last_access_ms.load(Ordering::Relaxed) != now_ms {
            self.last_access_ms.store(now_ms, Ordering::Relaxed);
        }
    }

    pub(crate) fn last_access_ms(&self) -> u64 {
        self.last_access_ms.load(Ordering::Relaxed)
    }

    pub(crate) fn set_stopping(&self, stopping: bool) {
        self.stopping.store(stopping, Ordering::SeqCst);
    }

    pub(crate) fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    pub(crate) fn actor_touch(&self, now_ms: u64) {
        self.last_actor_ms.store(now_ms, Ordering::Relaxed);
    }

    pub(crate) fn last_actor_ms(&self) -> u64 {
        self.last_actor_ms.load(Ordering::Relaxed)
    }
}

/// One user's record and, while it has one, its session actor. The cell
/// is inline, so a hit follows one pointer from the map to the record.
pub struct Slot {
    actor: RwLock<Option<ActorRef<SessionMsg>>>,
    pub cell: SnapshotCell,
}

impl Slot {
    pub(crate) fn new(cell: SnapshotCell) -> Slot {
        Slot {
            actor: RwLock::new(None),
            cell,
        }
    }

    /// The live session actor, if the session is not hibernated.
    pub fn actor(&self) -> Option<ActorRef<SessionMsg>> {
        self.actor.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether an actor is attached (it may have just stopped).
    pub(crate) fn has_actor(&self) -> bool {
        self.actor
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    pub(crate) fn set_actor(&self, actor: Option<ActorRef<SessionMsg>>) {
        *self.actor.write().unwrap_or_else(|e| e.into_inner()) = actor;
    }

    /// Detaches the actor if it is the given one; returns whether it was.
    pub(crate) fn detach(&self, id: ractor::ActorId) -> bool {
        let mut actor = self.actor.write().unwrap_or_else(|e| e.into_inner());
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
pub struct Registry {
    epoch: Instant,
    /// Bumped by [`Registry::flush`]: every record published before is
    /// dead at once, without walking the map, and every fetch started
    /// before is refused.
    flushes: Arc<AtomicU64>,
    slots: RwLock<IdMap<Arc<Slot>>>,
    live_actors: std::sync::atomic::AtomicUsize,
}

impl Registry {
    pub(crate) fn new() -> Self {
        Registry {
            epoch: Instant::now(),
            flushes: Arc::new(AtomicU64::new(0)),
            slots: RwLock::new(IdMap::default()),
            live_actors: std::sync::atomic::AtomicUsize::new(0),
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

    pub fn get(&self, user_id: i64) -> Option<Arc<Slot>> {
        self.slots
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&user_id)
            .cloned()
    }

    /// Runs `f` on the user's slot under the map's read lock, without
    /// cloning it: the cache-hit path.
    pub fn with<R>(&self, user_id: i64, f: impl FnOnce(&Slot) -> R) -> Option<R> {
        self.slots
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&user_id)
            .map(|s| f(s))
    }

    /// Sessions known to this node, live or hibernated.
    pub fn len(&self) -> usize {
        self.slots.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Sessions with a live actor.
    pub fn live_actors(&self) -> usize {
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
        let mut slots = self.slots.write().unwrap_or_else(|e| e.into_inner());
        let now_ms = self.millis(now);
        Arc::clone(
            slots
                .entry(user_id)
                .or_insert_with(|| Arc::new(Slot::new(SnapshotCell::new(now_ms)))),
        )
    }

    pub(crate) fn remove(&self, user_id: i64) -> Option<Arc<Slot>> {
        self.slots
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&user_id)
    }

    /// Runs `f` on every slot under the map's read lock, without cloning
    /// them: the supervisor's sweep. Only the supervisor writes the map, so
    /// holding the read lock for a whole pass delays no lookup.
    pub(crate) fn for_each(&self, mut f: impl FnMut(i64, &Slot)) {
        for (id, slot) in self.slots.read().unwrap_or_else(|e| e.into_inner()).iter() {
            f(*id, slot);
        }
    }

    /// Every slot, for eviction.
    pub(crate) fn all(&self) -> Vec<(i64, Arc<Slot>)> {
        self.slots
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(id, s)| (*id, Arc::clone(s)))
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
