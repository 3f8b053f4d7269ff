//! The cached value: a user's record plus what revocation needs. Whether a
//! given token is admitted by it is the service's rule, not the cache's.

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::id::UserId;
use crate::sync::MutexExt;

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
    pub role: Role,
    pub status: Status,
}

/// The most distinct roles kept shared; beyond them (an application whose
/// roles are per user, say) a role is allocated for its record alone.
pub const MAX_SHARED_ROLES: usize = 1024;

/// A user's role: immutable shared text. Roles are few and repeated by
/// every user who has one, so each distinct role is allocated once (up to
/// [`MAX_SHARED_ROLES`] of them) and a cached record holds a pointer to it:
/// no allocation of its own per cached user. Compares, hashes and prints
/// as its text.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Role(Arc<str>);

impl Role {
    /// The role spelled `s`, shared with every other record that has it.
    pub fn new(s: &str) -> Role {
        static SHARED: OnceLock<Mutex<HashSet<Arc<str>>>> = OnceLock::new();
        let mut shared = SHARED.get_or_init(Mutex::default).locked();
        if let Some(r) = shared.get(s) {
            return Role(Arc::clone(r));
        }
        let r: Arc<str> = Arc::from(s);
        if shared.len() < MAX_SHARED_ROLES {
            shared.insert(Arc::clone(&r));
        }
        Role(r)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Role {
    fn default() -> Role {
        Role::new("")
    }
}

impl std::ops::Deref for Role {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Role {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Role {
    fn from(s: &str) -> Role {
        Role::new(s)
    }
}

impl From<String> for Role {
    fn from(s: String) -> Role {
        Role::new(&s)
    }
}

impl From<&String> for Role {
    fn from(s: &String) -> Role {
        Role::new(s)
    }
}

impl From<Role> for String {
    fn from(r: Role) -> String {
        r.0.to_string()
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl PartialEq<str> for Role {
    fn eq(&self, other: &str) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<&str> for Role {
    fn eq(&self, other: &&str) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<String> for Role {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<Role> for str {
    fn eq(&self, other: &Role) -> bool {
        *self == *other.0
    }
}

impl PartialEq<Role> for &str {
    fn eq(&self, other: &Role) -> bool {
        **self == *other.0
    }
}

impl PartialEq<Role> for String {
    fn eq(&self, other: &Role) -> bool {
        **self == *other.0
    }
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
    /// The record stops being true this many milliseconds after it was
    /// read, with no write to say so: a ban that ends at a set instant
    /// (Better Auth's `banExpires`), anything time-based in an app
    /// source's role or status. Counted by the store's own clock at the
    /// read, so no node's clock is compared with the store's. The cache
    /// serves the record no longer than this (nor than its TTL). `None`:
    /// only a write changes it.
    pub changes_in_ms: Option<u32>,
    /// What the store read beside the record for the application, opaque
    /// to the cache (JSON text; with Better Auth: the user's row and its
    /// session rows). Cached, invalidated and forwarded with the record;
    /// `None` for most stores.
    pub attached: Option<Arc<str>>,
}

impl UserState {
    /// How long after it was read this record may be served: the TTL, or
    /// less if the record changes by itself sooner.
    #[inline]
    pub fn fresh_for(&self, ttl: Duration) -> Duration {
        match self.changes_in_ms {
            None => ttl,
            Some(ms) => ttl.min(Duration::from_millis(u64::from(ms))),
        }
    }
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

    /// How long after it was read this answer may be served, given the
    /// cache's TTL ([`UserState::fresh_for`]).
    #[inline]
    pub fn fresh_for(&self, ttl: Duration) -> Duration {
        match self {
            Fetched::Found(s) => s.fresh_for(ttl),
            Fetched::Missing => ttl,
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

    /// Users with the same role share one allocation of it; the role
    /// still reads, compares and prints as its text.
    #[test]
    fn a_role_is_shared_by_every_record_that_has_it() {
        let a = Role::from(String::from("editor"));
        let b = Role::new("editor");
        assert!(Arc::ptr_eq(&a.0, &b.0), "one allocation");
        assert_eq!(a, "editor");
        assert_eq!("editor", b);
        assert_eq!(a.to_string(), "editor");
        assert_eq!(format!("{a:?}"), "\"editor\"");
        assert_ne!(Role::new("admin"), a);
        assert_eq!(String::from(a), "editor");
    }
}
