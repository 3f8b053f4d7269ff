//! The cached value: a user's record plus what revocation needs. Whether a
//! given token is admitted by it is the service's rule, not the cache's.

use std::fmt;
use std::sync::Arc;

use crate::id::UserId;

/// Account status, as stored in `users.status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Active,
    Deactivated,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Deactivated => "deactivated",
        }
    }

    /// Parses the stored form; anything unknown is treated as deactivated so a
    /// corrupted row can never grant access.
    pub fn parse(s: &str) -> Status {
        match s {
            "active" => Status::Active,
            _ => Status::Deactivated,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The public part of a user: what a session answer shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub role: String,
    pub status: Status,
}

/// Everything a session actor caches for one user, as read in one fetch.
///
/// `version` is bumped by every write to the user (and by a trigger for writes
/// made by hand), so an invalidation can say "anything older than version N is
/// stale" and a fetch that raced it can be recognised and thrown away.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserState {
    pub user: User,
    pub version: i64,
    /// Tokens issued at or before this instant (unix ms) are revoked
    /// ("revoke all sessions"); 0 when never used.
    pub tokens_valid_after_ms: i64,
    /// The user's session epoch: raised by "revoke all sessions" and by
    /// deactivation. A token carries the epoch it was issued under and is
    /// revoked once the user's is higher: a counter, so no node's clock is
    /// compared with another's.
    pub session_epoch: i64,
    /// Token ids logged out and not yet expired. Kept small: a row leaves the
    /// table once its token would have expired anyway.
    pub revoked_sids: Vec<String>,
    /// What the store read beside the record for the application, opaque
    /// to the cache (JSON text; with Better Auth: the user's row and its
    /// session rows). Cached, invalidated and forwarded with the record;
    /// `None` for most stores.
    pub attached: Option<Arc<str>>,
}

/// What a fetch found: the user, or the fact that no such user exists
/// (deleted, or never created). Both are cacheable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fetched {
    Found(Arc<UserState>),
    Missing,
}

impl Fetched {
    /// The version this answer carries; a missing user satisfies every fence
    /// because ids are never reused.
    pub fn version(&self) -> i64 {
        match self {
            Fetched::Found(s) => s.version,
            Fetched::Missing => i64::MAX,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_status_is_deactivated() {
        assert_eq!(Status::parse("active"), Status::Active);
        assert_eq!(Status::parse("weird"), Status::Deactivated);
    }
}
