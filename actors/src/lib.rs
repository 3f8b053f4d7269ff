//! # sessiond-actors
//!
//! The cache at the heart of sessiond: one actor per active user owning that
//! user's record, a supervisor per node, and the router in front of them. It
//! knows a [`UserStore`] trait, not any database.
//!
//! ## Layout
//!
//! Consumers see the items re-exported here and the [`memory`], [`duration`]
//! and [`sync`] modules; the others are private. The modules form layers
//! with no cycle: each names only modules listed before it.
//!
//! Words the others share (leaves):
//! - [`sync`]: locks that outlive a panic ([`sync::MutexExt`],
//!   [`sync::RwLockExt`]), for every crate of the workspace.
//! - [`duration`]: the one parser of duration flags, for the service's and
//!   the simulation's command lines.
//! - `id`: the user id as the application spells it ([`UserId`]: an
//!   integer, a UUID, a cuid, a nanoid...).
//! - `nonce`: [`process_nonce`].
//! - `config`: the cache policy ([`CacheConfig`]).
//! - `ownership`: rendezvous hashing of users onto nodes.
//! - `record`: the cached value ([`UserState`], [`Fetched`]). Whether a
//!   token is admitted against it is the service's rule, not the cache's
//!   (`src/usecases/authenticate.rs` in `sessiond`).
//! - `store`: the [`UserStore`] trait the actors read through.
//! - `lookup`: what a lookup asks and gets ([`Lookup`], [`Served`],
//!   [`ResolveError`]).
//! - `view`: what a membership change did and why a node flushed
//!   ([`ViewChange`], [`FlushReason`]).
//! - `observer`: event hooks feeding metrics and the simulation
//!   ([`Observer`]).
//! - `message`: the session actor's mailbox (`SessionMsg`).
//! - `lease`: the freshness lease, the right to answer from the cache
//!   ([`Lease`], [`LeaseStore`]), and the wait a write owes until every
//!   holder has confirmed it ([`Acks`]); see `docs/freshness.md`.
//! - `link`: the cross-node hop as a trait ([`Link`]: ractor_cluster in
//!   production, [`memory::MemoryNet`] in tests and the simulation).
//!
//! The cache:
//! - `cell`: one user's published record and its fences (`SnapshotCell`).
//! - `registry`: the shared side (each user's cell and, while busy, its
//!   actor) that lets a cache hit skip every mailbox and keeps a
//!   hibernated session's record without its actor.
//! - `session`: `SessionActor`, one per user: TTL, forced refresh,
//!   invalidation with version fencing, single flight.
//! - `supervisor`: attaches session actors on demand, detaches stopped
//!   ones, hibernates quiet ones, passivates idle sessions, holds the cap.
//!
//! The router ([`Router`]), its methods in four files on one state:
//! - `router`: starting a node, lookups, forwarding to a user's owner.
//! - `near`: near copies of what other owners answered
//!   ([`CacheConfig::near`]).
//! - `invalidation`: [`Router::invalidate`] on every node and
//!   [`Router::invalidate_confirmed`], the write that waits for every
//!   lease holder.
//! - `membership`: the membership policy, one copy for the service and
//!   the simulation: [`Router::apply_view`] (who came and went; users no
//!   longer owned are passivated), [`Router::flush`] (the one way to drop
//!   the whole cache: a returning member, a pause, a notification resync,
//!   a regained lease) and [`PauseCheck`].
//!
//! On top:
//! - `keeper`: [`LeaseKeeper`], which renews the lease and applies the
//!   database's change log to the router.
//! - [`memory`]: an in-memory store and an in-memory network with delay,
//!   loss, partitions and crashes, for tests and the simulation.
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
//!                    passivated when idle or least recently used at the
//!                    cap — record and actor go — never restarted)
//!
//!   Router::apply_view(view) ── users no longer owned ─► Supervisor (Drop)
//!   Router::flush(reason)    ── every Registry snapshot marked stale
//!   LeaseKeeper (task)       ── logged changes ─► Router::invalidate_local,
//!                               then renews the lease
//! ```
//!
//! Session actors are local-only messages (`RactorMessage` semantics): they
//! are never advertised to other nodes. In a cluster, the cross-node link
//! sits in front of the router: the owning node's router answers lookups
//! for its users, and invalidations are broadcast to every node's router.
//! Whoever runs the membership (the service's heartbeat, the simulation's
//! schedule) tells each router its view and flushes the members it names.

mod cell;
pub mod clock;
mod config;
pub mod duration;
mod id;
mod invalidation;
mod keeper;
mod lease;
mod link;
mod lookup;
mod membership;
pub mod memory;
mod message;
mod near;
mod nonce;
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
mod view;

pub use config::CacheConfig;
pub use id::{UserId, UserIdError, INLINE_LEN, MAX_USER_ID_LEN};
pub use keeper::{LeaseKeeper, DEFAULT_CATCH_UP};
pub use lease::{Acks, Changes, Holder, Lease, LeaseStore, Unconfirmed};
pub use link::{Link, LinkError};
pub use lookup::{Lookup, ResolveError, Served};
pub use membership::PauseCheck;
pub use nonce::process_nonce;
pub use observer::{InvalidationSource, MissReason, NoopObserver, Observer};
pub use record::{Fetched, Role, Status, User, UserState, MAX_SHARED_ROLES};
pub use router::Router;
pub use store::{BoxFuture, StoreError, UserStore};
pub use view::{FlushReason, ViewChange};
