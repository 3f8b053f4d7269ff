//! Hooks through which the actors report what they do. `sessiond` feeds them
//! to its metrics; the simulation counts them; the default does nothing.

use std::time::Duration;

use crate::view::{FlushReason, ViewChange};

/// Why a lookup could not be answered from the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MissReason {
    /// Nothing was cached for the user.
    Cold,
    /// The cached record was older than the TTL.
    Expired,
    /// The caller asked for a refresh.
    Forced,
    /// The record was dropped by an invalidation.
    Invalidated,
    /// This node holds no freshness lease: it reads through, whatever it
    /// has cached.
    Unleased,
}

impl MissReason {
    pub const ALL: [MissReason; 5] = [
        MissReason::Cold,
        MissReason::Expired,
        MissReason::Forced,
        MissReason::Invalidated,
        MissReason::Unleased,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MissReason::Cold => "cold",
            MissReason::Expired => "expired",
            MissReason::Forced => "forced",
            MissReason::Invalidated => "invalidated",
            MissReason::Unleased => "unleased",
        }
    }
}

/// Where an invalidation came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InvalidationSource {
    /// A write made through this service's API.
    Api,
    /// A database notification (a change made outside the service).
    Notify,
    /// Another node's broadcast.
    Broadcast,
    /// The database's change log, read when the lease is renewed (a change
    /// whose notification or broadcast did not arrive).
    Log,
}

impl InvalidationSource {
    pub const ALL: [InvalidationSource; 4] = [
        InvalidationSource::Api,
        InvalidationSource::Notify,
        InvalidationSource::Broadcast,
        InvalidationSource::Log,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            InvalidationSource::Api => "api",
            InvalidationSource::Notify => "notify",
            InvalidationSource::Broadcast => "broadcast",
            InvalidationSource::Log => "log",
        }
    }
}

/// Event hooks. Every method has an empty default; implementations must be
/// cheap (they run on the hot path) and must not block.
#[allow(unused_variables)]
pub trait Observer: Send + Sync + 'static {
    /// A lookup answered from the cache; `age` is how old the record was.
    fn hit(&self, age: Duration) {}
    /// A lookup that had to wait for the store.
    fn miss(&self, reason: MissReason) {}
    /// One fetch was sent to the store.
    fn store_query(&self) {}
    /// A fetch failed.
    fn store_error(&self) {}
    /// An invalidation was applied on this node.
    fn invalidation(&self, source: InvalidationSource) {}
    /// The number of live session actors changed.
    fn session_actors(&self, live: usize) {}
    /// Sessions were passivated (record and actor gone): idle ones
    /// (`at_cap` false), or the least recently used at the session cap.
    fn passivated(&self, count: usize, at_cap: bool) {}
    /// Quiet session actors were stopped, their records kept (hibernated).
    fn hibernated(&self, count: usize) {}
    /// A lookup was sent to its owner on another node.
    fn forwarded(&self) {}
    /// A forwarded lookup failed and was served locally instead.
    fn forward_failed(&self) {}
    /// This node's membership view changed (only
    /// [`crate::Router::apply_view`] reports it).
    fn view_changed(&self, change: &ViewChange) {}
    /// This node dropped its whole cache (only [`crate::Router::flush`]
    /// reports it).
    fn flushed(&self, reason: FlushReason) {}
    /// This node's freshness lease is now held (`true`) or not.
    fn lease_valid(&self, valid: bool) {}
    /// A held lease ran out before it could be renewed.
    fn lease_lost(&self) {}
    /// A write waited for other nodes' confirmations or lease ends.
    fn write_confirmed(&self, waited: Duration, lapsed: usize) {}
}

/// The observer that ignores everything.
pub struct NoopObserver;
impl Observer for NoopObserver {}
