//! # sessiond-actors
//!
//! The cache at the heart of sessiond: one actor per active user owning that
//! user's record, a supervisor per node, and the router in front of them. It
//! knows a [`UserStore`] trait, not any database.
//!
//! ## Layout
//!
//! Consumers see the items re-exported here and the [`memory`] test
//! doubles; the modules behind them are private.
//!
//! - `record`: the cached value ([`UserState`], [`Fetched`]) and the rule
//!   that admits or revokes a token against it.
//! - `store`: the [`UserStore`] trait the actors read through.
//! - `session`: `SessionActor`, one per user: TTL, forced refresh,
//!   invalidation with version fencing, single flight.
//! - `supervisor`: attaches session actors on demand, detaches stopped
//!   ones, hibernates quiet ones, forgets idle sessions, holds the cap.
//! - `registry`: the shared side (each user's published record and, while
//!   busy, its actor) that lets a cache hit skip every mailbox and keeps a
//!   hibernated session's record without its actor.
//! - `router`: the node's entry point for lookups and invalidations
//!   ([`Router`]).
//! - `membership`: the membership policy, one copy for the service and
//!   the simulation: [`Router::apply_view`] (who came and went; users no
//!   longer owned are dropped), [`Router::flush`] (the one way to drop the
//!   whole cache: a returning member, a pause, a notification resync) and
//!   [`PauseCheck`].
//! - `ownership`: rendezvous hashing of users onto nodes.
//! - `link`: the cross-node hop as a trait ([`Link`]: ractor_cluster in
//!   production, [`memory::MemoryNet`] in tests and the simulation).
//! - `observer`: event hooks feeding metrics and the simulation
//!   ([`Observer`]).
//! - [`memory`]: an in-memory store and an in-memory network with delay,
//!   loss, partitions and crashes, for tests and the simulation.
//! - [`duration`]: the one parser of duration flags, for the service's and
//!   the simulation's command lines.
//! - [`sync`]: locks that outlive a panic ([`sync::MutexExt`],
//!   [`sync::RwLockExt`]), for every crate of the workspace.
//! - `lease`: freshness leases ([`LeaseKeeper`], [`Router::invalidate_confirmed`]):
//!   the right to answer from the cache, and the wait a write owes
//!   (`docs/freshness.md`).
//!
//! ## Supervision tree
//!
//! ```text
//!   Router (handle, cloned into every request)
//!     │  hit: read Registry snapshot ──────────────► answer (no message)
//!     │  miss: call ─────────────────┐
//!     ▼                              ▼
//!   Supervisor (actor, one per node) SessionActor(user) ── fetch task ─► UserStore
//!     ├── links ──► SessionActor(user 1)   publishes ─► Registry snapshot
//!     ├── links ──► SessionActor(user 2)
//!     └── …         (attached on a miss, hibernated when quiet — the
//!                    record stays in the registry, the actor goes —
//!                    forgotten when idle, LRU at the cap, never restarted)
//!
//!   Router::apply_view(view) ── users no longer owned ─► Supervisor (Drop)
//!   Router::flush(reason)    ── every Registry snapshot marked stale
//! ```
//!
//! Session actors are local-only messages (`RactorMessage` semantics): they
//! are never advertised to other nodes. In a cluster, the cross-node link
//! sits in front of the router: the owning node's router answers lookups
//! for its users, and invalidations are broadcast to every node's router.
//! Whoever runs the membership (the service's heartbeat, the simulation's
//! schedule) tells each router its view and flushes the members it names.

pub mod duration;
mod lease;
mod link;
mod membership;
pub mod memory;
mod observer;
mod ownership;
mod record;
mod registry;
mod router;
mod session;
pub mod stats;
mod store;
mod supervisor;
pub mod sync;

use std::time::Duration;

pub use lease::{Acks, Changes, Holder, Lease, LeaseKeeper, LeaseStore, Unconfirmed};
pub use link::{Link, LinkError};
pub use membership::{FlushReason, PauseCheck, ViewChange};
pub use observer::{InvalidationSource, MissReason, NoopObserver, Observer};
pub use record::{Fetched, Status, User, UserState};
pub use router::{Lookup, Router};
pub use session::{ResolveError, Served};
pub use store::{BoxFuture, StoreError, UserStore};

/// A number that tells this process apart from any other, earlier or later,
/// under the same node name: the wall clock and the process id through a
/// randomly keyed hash. Not a secret.
pub fn process_nonce() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.finish()
}

/// The cache policy of a node.
#[derive(Clone, Debug)]
pub struct CacheConfig {
    /// How long a fetched record is served without reading the store again.
    /// Zero disables the cache: every lookup reads the store.
    pub ttl: Duration,
    /// A session with no lookup for this long is forgotten. Its actor
    /// hibernates much sooner (see `hibernate_after`): cache hits need only
    /// the record, not the actor.
    pub idle_timeout: Duration,
    /// How long an actor may go without a message before it hibernates.
    /// `None`: a tenth of the idle timeout, between 100 ms and one minute.
    /// Hibernation saves memory and changes no answer; the simulation waits
    /// the whole idle timeout, which saves it wall time.
    pub hibernate_after: Option<Duration>,
    /// The most sessions (live or hibernated) on this node at once; beyond
    /// it the least recently used are forgotten.
    pub max_sessions: usize,
    /// The longest a lookup waits for an actor (and, through it, the store).
    pub call_timeout: Duration,
    /// The freshness lease this node must hold to answer from its cache
    /// (see [`lease`]). `None`: no lease, the cache always answers — for a
    /// node whose every write goes through itself, and for tests.
    pub lease: Option<Duration>,
    /// Keep near copies: a node that forwards a lookup to the user's owner
    /// keeps the owner's answer, under the same fences as the owner's own
    /// copy, and answers the next lookups itself (see [`Router::resolve`]).
    pub near: bool,
}

impl CacheConfig {
    /// The default [`CacheConfig::ttl`]: five minutes.
    pub const DEFAULT_TTL: Duration = Duration::from_secs(300);
    /// The default [`CacheConfig::idle_timeout`]: ten minutes.
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(600);
    /// The default [`CacheConfig::max_sessions`].
    pub const DEFAULT_MAX_SESSIONS: usize = 1_000_000;
    /// The default [`CacheConfig::call_timeout`].
    pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(5);

    /// How long an actor may go without a message before it hibernates.
    pub fn hibernate_delay(&self) -> Duration {
        self.hibernate_after
            .unwrap_or_else(|| supervisor::hibernate_after(self.idle_timeout))
    }

    /// How often the supervisor sweeps its sessions (hibernating quiet
    /// actors, forgetting idle sessions): half the default hibernation
    /// delay (a twentieth of the idle timeout), between 10 ms and 30 s.
    /// It follows the idle timeout alone, so that `hibernate_after` changes
    /// when actors stop and nothing else.
    pub fn sweep_period(&self) -> Duration {
        (supervisor::hibernate_after(self.idle_timeout) / 2)
            .clamp(Duration::from_millis(10), Duration::from_secs(30))
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            ttl: Self::DEFAULT_TTL,
            idle_timeout: Self::DEFAULT_IDLE_TIMEOUT,
            hibernate_after: None,
            max_sessions: Self::DEFAULT_MAX_SESSIONS,
            call_timeout: Self::DEFAULT_CALL_TIMEOUT,
            lease: None,
            near: true,
        }
    }
}
