//! The one thing the actors need from a database: read a user's state.

use std::future::Future;
use std::pin::Pin;

use crate::id::UserId;
use crate::record::Fetched;

/// A boxed, sendable future: the store is used as `Arc<dyn UserStore>`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a fetch failed. The text is for operators; it never holds secrets.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("the fetch task panicked")]
    Panicked,
}

/// Reads one user's current state. Implemented by the SQLite and PostgreSQL
/// stores of `sessiond` and by the in-memory stores of tests and the
/// simulation.
pub trait UserStore: Send + Sync + 'static {
    /// Fetch the user's record, the revocation watermark and the revoked token
    /// ids. `Ok(Fetched::Missing)` when there is no such user.
    fn fetch(&self, user_id: &UserId) -> BoxFuture<'static, Result<Fetched, StoreError>>;
}
