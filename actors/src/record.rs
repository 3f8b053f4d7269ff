//! The cached value: a user's record plus what revocation needs, and the rule
//! that decides whether a given token is still admitted by it.

use std::fmt;
use std::sync::Arc;

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
    pub id: i64,
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
    /// Token ids logged out and not yet expired. Kept small: a row leaves the
    /// table once its token would have expired anyway.
    pub revoked_sids: Vec<String>,
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

/// The facts of a verified token that revocation depends on.
#[derive(Clone, Debug)]
pub struct TokenFacts<'a> {
    pub sid: &'a str,
    /// When the token was issued, unix ms.
    pub issued_ms: i64,
}

/// Why a verified token no longer resolves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Revoked {
    Deleted,
    Deactivated,
    LoggedOut,
    SessionsRevoked,
}

impl Revoked {
    pub fn message(self) -> &'static str {
        match self {
            Revoked::Deleted => "the user no longer exists",
            Revoked::Deactivated => "the user is deactivated",
            Revoked::LoggedOut => "this token was logged out",
            Revoked::SessionsRevoked => "this token was revoked",
        }
    }
}

impl Fetched {
    /// Decides whether `token` is admitted by this record.
    pub fn admit(&self, token: &TokenFacts<'_>) -> Result<&Arc<UserState>, Revoked> {
        let state = match self {
            Fetched::Missing => return Err(Revoked::Deleted),
            Fetched::Found(s) => s,
        };
        if state.user.status != Status::Active {
            return Err(Revoked::Deactivated);
        }
        if token.issued_ms <= state.tokens_valid_after_ms {
            return Err(Revoked::SessionsRevoked);
        }
        if state.revoked_sids.iter().any(|s| s == token.sid) {
            return Err(Revoked::LoggedOut);
        }
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(status: Status, after: i64, sids: &[&str]) -> Fetched {
        Fetched::Found(Arc::new(UserState {
            user: User {
                id: 1,
                email: "a@b".into(),
                role: "user".into(),
                status,
            },
            version: 1,
            tokens_valid_after_ms: after,
            revoked_sids: sids.iter().map(|s| s.to_string()).collect(),
        }))
    }

    #[test]
    fn admit_rules() {
        let t = TokenFacts {
            sid: "s1",
            issued_ms: 1000,
        };
        assert!(state(Status::Active, 0, &[]).admit(&t).is_ok());
        assert_eq!(
            state(Status::Deactivated, 0, &[]).admit(&t).err(),
            Some(Revoked::Deactivated)
        );
        assert_eq!(
            state(Status::Active, 1000, &[]).admit(&t).err(),
            Some(Revoked::SessionsRevoked)
        );
        assert!(state(Status::Active, 999, &[]).admit(&t).is_ok());
        assert_eq!(
            state(Status::Active, 0, &["s0", "s1"]).admit(&t).err(),
            Some(Revoked::LoggedOut)
        );
        assert_eq!(Fetched::Missing.admit(&t).err(), Some(Revoked::Deleted));
        assert_eq!(Status::parse("weird"), Status::Deactivated);
    }
}
