//! The authentication rule, in one place: a bearer token is verified
//! (signature, issuer, expiry: [`Tokens::verify`]), its user's current record
//! is resolved through the cache, and the record admits the token or says
//! why not ([`admit`]). Every route that takes a token goes through
//! [`Authenticator::authenticate`]; admin routes add [`Authenticator::admin`].

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sessiond_actors::sync::MutexExt;

use sessiond_actors::{Fetched, Lookup, ResolveError, Router, Served, Status, UserId, UserState};

use crate::auth::{TokenError, Tokens, Verified};
use crate::metrics::{Outcome, Telemetry};

use super::{Origin, Principal};

/// Why a request is not admitted. Messages are safe to show the caller.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No token, a malformed one, a bad signature, expired.
    #[error("{0}")]
    InvalidToken(String),
    /// A valid token that its user's current record no longer admits.
    #[error("{}", .0.message())]
    Revoked(Revoked),
    /// Admitted, but the route needs the admin role (which this user,
    /// named for the audit trail, does not have).
    #[error("this route needs the admin role")]
    NotAdmin { id: UserId, email: String },
    /// More forced refreshes of this user than [`ForceGate`] lets through.
    #[error("too many forced refreshes of this user; try again in {} s", .0.as_secs())]
    TooManyRefreshes(Duration),
    /// The record could not be read.
    #[error(transparent)]
    Unavailable(#[from] ResolveError),
}

impl From<TokenError> for AuthError {
    fn from(e: TokenError) -> Self {
        AuthError::InvalidToken(e.to_string())
    }
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

/// The revocation rule: whether the user's current record (as fetched)
/// still admits this verified token.
pub fn admit<'a>(fetched: &'a Fetched, token: &Verified) -> Result<&'a Arc<UserState>, Revoked> {
    let state = match fetched {
        Fetched::Missing => return Err(Revoked::Deleted),
        Fetched::Found(s) => s,
    };
    if state.user.status != Status::Active {
        return Err(Revoked::Deactivated);
    }
    let revoked = match token.epoch {
        Some(epoch) => epoch < state.session_epoch,
        // A token from before epochs: the issuing node's clock against
        // the watermark, as then.
        None => token.issued_ms <= state.tokens_valid_after_ms,
    };
    if revoked {
        return Err(Revoked::SessionsRevoked);
    }
    if state.revoked_sids.contains(&token.sid) {
        return Err(Revoked::LoggedOut);
    }
    Ok(state)
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer(header: Option<&str>) -> Result<&str, AuthError> {
    let malformed =
        || AuthError::InvalidToken("the Authorization header is not `Bearer <token>`".into());
    let value =
        header.ok_or_else(|| AuthError::InvalidToken("a bearer token is required".into()))?;
    let (scheme, token) = value.trim().split_once(' ').ok_or_else(malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(malformed());
    }
    Ok(token.trim())
}

/// A verified token and the current state of its user, admitted.
pub struct Authed {
    pub token: Verified,
    pub served: Served,
    pub state: Arc<UserState>,
}

impl Authed {
    /// The caller as an audit entry names it.
    pub fn principal(&self, origin: Origin) -> Principal {
        Principal::new(
            self.state.user.id.clone(),
            self.state.user.email.clone(),
            origin,
        )
    }
}

/// Forced refreshes let through per user per second (a forced refresh
/// reads the database whatever the cache holds).
pub const FORCED_REFRESHES_PER_SECOND: u32 = 5;
/// Slots of [`ForceGate`]: users share a slot when their ids meet modulo
/// this, so its memory is fixed.
const FORCE_SLOTS: usize = 4096;

/// Forced refreshes are rate-limited per user: at most
/// [`FORCED_REFRESHES_PER_SECOND`] per second (users whose ids share a
/// slot share the allowance). Fixed memory, one short lock a forced
/// refresh; plain lookups never touch it.
pub struct ForceGate {
    slots: Mutex<Vec<(Option<Instant>, u32)>>,
}

impl Default for ForceGate {
    fn default() -> Self {
        ForceGate {
            slots: Mutex::new(vec![(None, 0); FORCE_SLOTS]),
        }
    }
}

impl ForceGate {
    /// Whether one more forced refresh of `user` may read the database
    /// now, or how long until one may.
    pub fn admit(&self, user: &UserId) -> Result<(), Duration> {
        use std::hash::{Hash, Hasher};
        let now = Instant::now();
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        user.hash(&mut hasher);
        let slot = (hasher.finish() % FORCE_SLOTS as u64) as usize;
        let mut slots = self.slots.locked();
        let Some((started, count)) = slots.get_mut(slot) else {
            return Ok(());
        };
        let second = Duration::from_secs(1);
        match started {
            Some(t) if now.saturating_duration_since(*t) < second => {
                if *count >= FORCED_REFRESHES_PER_SECOND {
                    return Err(second.saturating_sub(now.saturating_duration_since(*t)));
                }
                *count += 1;
            }
            _ => {
                *started = Some(now);
                *count = 1;
            }
        }
        Ok(())
    }
}

/// Verifies tokens and resolves their users.
pub struct Authenticator {
    tokens: Arc<Tokens>,
    router: Router,
    telemetry: Arc<Telemetry>,
    force: ForceGate,
}

impl Authenticator {
    pub fn new(tokens: Arc<Tokens>, router: Router, telemetry: Arc<Telemetry>) -> Self {
        Authenticator {
            tokens,
            router,
            telemetry,
            force: ForceGate::default(),
        }
    }

    /// The caller of an `Authorization` header, admitted by its user's
    /// current record.
    pub async fn authenticate(
        &self,
        header: Option<&str>,
        lookup: Lookup,
    ) -> Result<Authed, AuthError> {
        let token = self.tokens.verify(bearer(header)?).await?;
        if lookup == Lookup::ForceRefresh {
            self.force.admit(&token.user_id).map_err(|wait| {
                // Round up: a client told 0 s would retry at once.
                AuthError::TooManyRefreshes(wait.max(Duration::from_secs(1)))
            })?;
        }
        let started = Instant::now();
        let result = self.router.resolve(&token.user_id, lookup).await;
        let outcome = match &result {
            Ok(s) if s.hit => Outcome::Hit,
            Ok(_) => Outcome::Miss,
            Err(_) => Outcome::Error,
        };
        self.telemetry.resolved(outcome, started.elapsed());
        let served = result?;
        let state = Arc::clone(admit(&served.fetched, &token).map_err(AuthError::Revoked)?);
        Ok(Authed {
            token,
            served,
            state,
        })
    }

    /// As [`Self::authenticate`], and the user must hold the admin role.
    pub async fn admin(&self, header: Option<&str>) -> Result<Authed, AuthError> {
        let authed = self.authenticate(header, Lookup::Resolve).await?;
        let user = &authed.state.user;
        if user.role != "admin" {
            return Err(AuthError::NotAdmin {
                id: user.id.clone(),
                email: user.email.clone(),
            });
        }
        Ok(authed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sessiond_actors::User;

    fn state(status: Status, after: i64, sids: &[&str]) -> Fetched {
        Fetched::Found(Arc::new(UserState {
            user: User {
                id: UserId::from(1),
                email: "a@b".into(),
                role: "user".into(),
                status,
            },
            version: 1,
            tokens_valid_after_ms: after,
            session_epoch: 0,
            revoked_sids: sids.iter().map(|s| s.to_string()).collect(),
            attached: None,
        }))
    }

    #[test]
    fn forced_refreshes_are_limited_per_user() {
        let gate = ForceGate::default();
        for _ in 0..FORCED_REFRESHES_PER_SECOND {
            assert!(gate.admit(&UserId::from(7)).is_ok());
        }
        let wait = gate.admit(&UserId::from(7)).expect_err("over the limit");
        assert!(wait <= Duration::from_secs(1));
        assert!(
            gate.admit(&UserId::from(8)).is_ok(),
            "another user has their own"
        );
    }

    #[test]
    fn admit_rules() {
        let t = Verified {
            user_id: UserId::from(1),
            sid: "s1".into(),
            issued_ms: 1000,
            epoch: None,
            exp: 0,
        };
        assert!(admit(&state(Status::Active, 0, &[]), &t).is_ok());
        assert_eq!(
            admit(&state(Status::Deactivated, 0, &[]), &t).err(),
            Some(Revoked::Deactivated)
        );
        assert_eq!(
            admit(&state(Status::Active, 1000, &[]), &t).err(),
            Some(Revoked::SessionsRevoked)
        );
        assert!(admit(&state(Status::Active, 999, &[]), &t).is_ok());
        assert_eq!(
            admit(&state(Status::Active, 0, &["s0", "s1"]), &t).err(),
            Some(Revoked::LoggedOut)
        );
        assert_eq!(admit(&Fetched::Missing, &t).err(), Some(Revoked::Deleted));
    }
}
