//! # sessiond-actors
//!
//! The cache at the heart of sessiond: one actor per active user owning that
//! user's record, a supervisor per node, and the router in front of them. It
//! knows a [`UserStore`] trait, not any database.
//!
//! ## Layout
//!
//! - [`record`]: the cached value (`UserState`, `Fetched`) and the rule that
//!   admits or revokes a token against it.
//! - [`store`]: the `UserStore` trait the actors read through.
//! - [`session`]: `SessionActor`, one per user: TTL, forced refresh,
//!   invalidation with version fencing, single flight.
//! - [`supervisor`]: attaches session actors on demand, detaches stopped
//!   ones, hibernates quiet ones, forgets idle sessions, holds the cap.
//! - [`registry`]: the shared side (each user's published record and, while
//!   busy, its actor) that lets a cache hit skip every mailbox and keeps a
//!   hibernated session's record without its actor.
//! - [`router`]: the node's entry point for lookups and invalidations.
//! - [`ownership`]: rendezvous hashing of users onto nodes.
//! - [`link`]: the cross-node hop as a trait (ractor_cluster in production,
//!   an in-memory link in the simulation).
//! - [`observer`]: event hooks feeding metrics and the simulation.
//! - [`memory`]: an in-memory store for tests and the simulation.
//! - [`duration`]: the one parser of duration flags, for the service's and
//!   the simulation's command lines.
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
//! ```
//!
//! Session actors are local-only messages (`RactorMessage` semantics): they
//! are never advertised to other nodes. In a cluster, the cross-node link
//! sits in front of the router: the owning node's router answers lookups
//! for its users, and invalidations are broadcast to every node's router.

pub mod duration;
pub mod link;
pub mod memory;
pub mod observer;
pub mod ownership;
pub mod record;
pub mod registry;
pub mod router;
pub mod session;
pub mod store;
pub mod supervisor;

use std::time::Duration;

pub use link::{Link, LinkError};
pub use observer::{InvalidationSource, MissReason, NoopObserver, Observer};
pub use record::{Fetched, Revoked, Status, TokenFacts, User, UserState};
pub use router::{Lookup, Router};
pub use session::{ResolveError, Served};
pub use store::{BoxFuture, StoreError, UserStore};

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
}

impl CacheConfig {
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
            ttl: Duration::from_secs(300),
            idle_timeout: Duration::from_secs(600),
            hibernate_after: None,
            max_sessions: 1_000_000,
            call_timeout: Duration::from_secs(5),
        }
    }
}
