//! What a lookup asks for and what it gets back: the words the router, the
//! session actors and the cross-node link share.

use std::sync::Arc;
use std::time::Duration;

use crate::record::Fetched;
use crate::store::StoreError;

/// What a lookup asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The current record; cached if fresh.
    Resolve,
    /// Read the store now, whatever is cached.
    ForceRefresh,
}

/// A lookup's answer.
#[derive(Clone, Debug)]
pub struct Served {
    pub fetched: Fetched,
    /// Answered from the cache without a store read.
    pub hit: bool,
    /// How old the record was when served.
    pub age: Duration,
    /// The node that answered, when it was not this one: the user's owner.
    /// A near copy's answer names the owner too.
    pub node: Option<Arc<str>>,
    /// Answered from this node's near copy of the owner's record (see
    /// [`Router::resolve`](crate::Router::resolve)).
    pub near: bool,
    /// The length of the freshness lease the answering node counts (its
    /// `--lease`), on an answer to a forwarded lookup
    /// ([`Router::answer_forwarded`](crate::Router::answer_forwarded));
    /// `None` when not told. A near copy's hold after an invalidation is
    /// this long (docs/freshness.md, lemma HOLD).
    pub owner_lease: Option<Duration>,
}

/// Why a lookup failed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("the session actor failed while serving this request")]
    ActorFailed,
    #[error("the session actor did not answer in time")]
    Timeout,
    #[error("the session supervisor is not running")]
    Stopped,
}
