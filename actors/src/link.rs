//! The cross-node hop, as a small trait: `sessiond` implements it over
//! ractor_cluster, the simulation over an in-memory link with delay, loss
//! and partitions. The router only knows this trait.

use std::fmt;

use crate::id::UserId;
use crate::lookup::{Lookup, Served};
use crate::store::BoxFuture;

/// Why a call to another node did not produce an answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkError {
    /// No connection to that node (down, cut off, not yet joined).
    Unreachable,
    /// The node did not answer within the bound.
    Timeout,
    /// The node answered with an error (its store failed, say).
    Remote(String),
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkError::Unreachable => f.write_str("node unreachable"),
            LinkError::Timeout => f.write_str("node did not answer in time"),
            LinkError::Remote(e) => write!(f, "node answered with an error: {e}"),
        }
    }
}

impl std::error::Error for LinkError {}

/// Calls into other nodes' routers.
pub trait Link: Send + Sync + 'static {
    /// Asks `node`, as the owner of `user_id`, to resolve it locally.
    fn resolve(
        &self,
        node: &str,
        user_id: &UserId,
        lookup: Lookup,
    ) -> BoxFuture<'static, Result<Served, LinkError>>;

    /// Asks `node` to drop its cached record for `user_id` (see
    /// [`crate::Router::invalidate_local`]); `Ok` once it has, with the id
    /// of its lease when it holds one (so a writer need not wait for it).
    fn invalidate(
        &self,
        node: &str,
        user_id: &UserId,
        min_version: Option<i64>,
    ) -> BoxFuture<'static, Result<Option<i64>, LinkError>>;
}
