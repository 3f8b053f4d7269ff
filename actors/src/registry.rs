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

use std::borrow::Borrow;
use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use ractor::{ActorRef, ActorStatus};
use tokio::time::Instant;

use crate::cell::SnapshotCell;
use crate::id::UserId;
use crate::message::SessionMsg;
use crate::sync::{MutexExt, RwLockExt};

/// One user's record and, while it has one, its session actor. The cell
/// is inline, so a hit follows one pointer from the map to the record.
/// The slot holds the user's id, and the map keys on it (see [`Keyed`]),
/// so a cached user's id is stored once in the map, not beside it.
pub(crate) struct Slot {
    id: UserId,
    /// A mutex (8 bytes less than a read-write lock): only misses, the
    /// sweep and the supervisor take it, never a hit.
    actor: Mutex<Option<ActorRef<SessionMsg>>>,
    pub(crate) cell: SnapshotCell,
}

impl Slot {
    pub(crate) fn new(id: UserId, cell: SnapshotCell) -> Slot {
        Slot {
            id,
            actor: Mutex::new(None),
            cell,
        }
    }

    /// The live session actor, if the session is not hibernated.
    pub(crate) fn actor(&self) -> Option<ActorRef<SessionMsg>> {
        self.actor.locked().clone()
    }

    /// Whether an actor is attached (it may have just stopped).
    pub(crate) fn has_actor(&self) -> bool {
        self.actor.locked().is_some()
    }

    pub(crate) fn set_actor(&self, actor: Option<ActorRef<SessionMsg>>) {
        *self.actor.locked() = actor;
    }

    /// Detaches the actor if it is the given one; returns whether it was.
    pub(crate) fn detach(&self, id: ractor::ActorId) -> bool {
        let mut actor = self.actor.locked();
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

/// Hashes a user id for the registry's map (an integer id as the integer,
/// a text id as its bytes). The std default (SipHash,
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

    /// A text id: eight bytes at a time, each word folded in with a
    /// multiply, and the length last (so "a" and "a\0" differ). An inline
    /// id comes as its fixed 38 bytes, so the loop unrolls.
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.0 = (self.0 ^ u64::from_le_bytes(w)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.0 = (self.0 ^ u64::from_le_bytes(w)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
        self.0 ^= bytes.len() as u64;
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

/// A slot as the map's key: hashed and compared by the id it holds, and
/// looked up by a bare [`UserId`] through `Borrow`. Each entry of the map is
/// one pointer (8 bytes, against 48 for an id and a pointer side by side):
/// with a table at most seven eighths full and a power of two in size, that
/// is ~20 bytes per cached user instead of ~100 at a million users.
struct Keyed(Arc<Slot>);

impl Borrow<UserId> for Keyed {
    #[inline]
    fn borrow(&self) -> &UserId {
        &self.0.id
    }
}

impl PartialEq for Keyed {
    #[inline]
    fn eq(&self, other: &Keyed) -> bool {
        self.0.id == other.0.id
    }
}

impl Eq for Keyed {}

impl Hash for Keyed {
    /// The id's own hash, as `Borrow` requires.
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.id.hash(state);
    }
}

type SlotSet = HashSet<Keyed, BuildHasherDefault<IdHasher>>;

/// The map of sessions on this node.
pub(crate) struct Registry {
    epoch: Instant,
    /// Bumped by [`Registry::flush`]: every record published before is
    /// dead at once, without walking the map, and every fetch started
    /// before is refused.
    flushes: Arc<AtomicU64>,
    slots: RwLock<SlotSet>,
    live_actors: AtomicUsize,
}

impl Registry {
    pub(crate) fn new() -> Self {
        Registry {
            epoch: Instant::now(),
            flushes: Arc::new(AtomicU64::new(0)),
            slots: RwLock::new(SlotSet::default()),
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

    pub(crate) fn get(&self, user_id: &UserId) -> Option<Arc<Slot>> {
        self.slots
            .read_locked()
            .get(user_id)
            .map(|k| Arc::clone(&k.0))
    }

    /// Runs `f` on the user's slot under the map's read lock, without
    /// cloning it: the cache-hit path.
    pub(crate) fn with<R>(&self, user_id: &UserId, f: impl FnOnce(&Slot) -> R) -> Option<R> {
        self.slots.read_locked().get(user_id).map(|k| f(&k.0))
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
    pub(crate) fn get_or_insert(&self, user_id: &UserId, now: Instant) -> Arc<Slot> {
        if let Some(s) = self.get(user_id) {
            return s;
        }
        let mut slots = self.slots.write_locked();
        if let Some(k) = slots.get(user_id) {
            return Arc::clone(&k.0);
        }
        let now_ms = self.millis(now);
        let slot = Arc::new(Slot::new(user_id.clone(), SnapshotCell::new(now_ms)));
        slots.insert(Keyed(Arc::clone(&slot)));
        slot
    }

    pub(crate) fn remove(&self, user_id: &UserId) -> Option<Arc<Slot>> {
        self.slots.write_locked().take(user_id).map(|k| k.0)
    }

    /// Runs `f` on every slot under the map's read lock, without cloning
    /// them: the supervisor's sweep. Lookups only read the map (its writers
    /// are the supervisor and the router's near-copy insertions), so holding
    /// the read lock for a whole pass delays no lookup.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&UserId, &Slot)) {
        for k in self.slots.read_locked().iter() {
            f(&k.0.id, &k.0);
        }
    }

    /// Every slot, to pick the least recently used at the cap.
    pub(crate) fn all(&self) -> Vec<(UserId, Arc<Slot>)> {
        self.slots
            .read_locked()
            .iter()
            .map(|k| (k.0.id.clone(), Arc::clone(&k.0)))
            .collect()
    }

    pub(crate) fn user_ids(&self) -> Vec<UserId> {
        self.slots
            .read_locked()
            .iter()
            .map(|k| k.0.id.clone())
            .collect()
    }

    pub(crate) fn drain(&self) -> Vec<Arc<Slot>> {
        self.slots.write_locked().drain().map(|k| k.0).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::hash::BuildHasher;

    use super::*;

    fn hash(id: i64) -> u64 {
        BuildHasherDefault::<IdHasher>::default().hash_one(UserId::from(id))
    }

    fn hash_text(id: &str) -> u64 {
        let id = UserId::parse(id).unwrap_or_else(|_| UserId::from(0));
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

    /// Text ids that differ in one character, or only in length, spread
    /// as well as sequential integers.
    #[test]
    fn text_ids_spread_over_buckets_and_tags() {
        let ids: Vec<String> = (0..4096)
            .map(|i| format!("Zx9kQ2mN7pL4vR8sT1wY3uE6iO{i:06}"))
            .collect();
        let buckets: HashSet<u64> = ids.iter().map(|id| hash_text(id) & 4095).collect();
        let tags: HashSet<u64> = ids.iter().map(|id| hash_text(id) >> 57).collect();
        assert!(buckets.len() > 2400, "{} buckets used", buckets.len());
        assert_eq!(tags.len(), 128, "every tag value used");
        assert_ne!(hash_text("a"), hash_text("a0"));
    }

    /// Text ids at every length up to the longest: the same text, the same
    /// hash; one byte changed anywhere, or one byte more, another hash.
    #[test]
    fn text_ids_hash_by_their_text_at_every_length() {
        for n in 1..=crate::id::MAX_USER_ID_LEN {
            let base = "k".repeat(n);
            assert_eq!(hash_text(&base), hash_text(&base.clone()), "{n}");
            for at in 0..n {
                let mut changed = base.clone().into_bytes();
                changed[at] = b'Q';
                let changed = String::from_utf8(changed).unwrap_or_default();
                assert_ne!(hash_text(&base), hash_text(&changed), "{n} {at}");
            }
            assert_ne!(hash_text(&base), hash_text(&format!("{base}k")), "{n}");
        }
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
