//! Logging in: email and password in, a new token out. The brute-force
//! limiter reserves the attempt before any password work and is told every
//! outcome; an unknown email costs as much as a known one. Every outcome
//! that says something about the account (success, wrong credentials, a
//! deactivated account, a lock-out) is audited with the email tried and
//! the client's address, never the password.

use std::sync::Arc;
use std::time::Duration;

use sessiond_actors::{Status, User};

use crate::auth::{self, Claims, PasswordPool, Tokens};
use crate::limiter::LoginLimiter;
use crate::store::{Db, DbError};

use super::users::MAX_PASSWORD;
use super::{Audit, Origin};

/// Why a login was refused. Messages are safe to show the caller.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("too many failed logins; try again in {} s", .0.as_secs())]
    RateLimited(Duration),
    #[error("wrong email or password")]
    InvalidCredentials,
    #[error("the account is deactivated")]
    Deactivated,
    /// Users live in the app's own table: the app signs them in.
    #[error("password login is off: users live in the application's own table, and the application signs them in")]
    PasswordLoginOff,
    /// The password threads' queue is full.
    #[error("too many logins in progress; try again")]
    Busy,
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("internal error")]
    Internal(anyhow::Error),
}

/// A new token, its claims and its user.
pub struct LoggedIn {
    pub token: String,
    pub claims: Claims,
    pub user: User,
}

pub struct Login {
    db: Db,
    tokens: Arc<Tokens>,
    limiter: LoginLimiter,
    passwords: Arc<PasswordPool>,
    audit: Audit,
    /// A real argon2id hash of a random password: unknown emails are checked
    /// against it so they take as long as known ones.
    dummy_hash: String,
}

impl Login {
    pub fn new(
        db: Db,
        tokens: Arc<Tokens>,
        limiter: LoginLimiter,
        passwords: Arc<PasswordPool>,
        audit: Audit,
        dummy_hash: String,
    ) -> Self {
        Login {
            db,
            tokens,
            limiter,
            passwords,
            audit,
            dummy_hash,
        }
    }

    /// `from.client` is the caller's address, which the limiter counts too.
    pub async fn login(
        &self,
        email: &str,
        password: String,
        from: &Origin,
    ) -> Result<LoggedIn, LoginError> {
        if self.db.app_source().is_some() {
            return Err(LoginError::PasswordLoginOff);
        }
        let email = email.trim().to_lowercase();
        let result = self.check(&email, password, from.client.as_deref()).await;
        let refused = |action, detail| self.audit.login_refused(&email, action, from, detail);
        match &result {
            Ok(done) => self.audit.logged_in(done.user.id, &email, from),
            Err(LoginError::InvalidCredentials) => refused("login.failure", None),
            Err(LoginError::Deactivated) => {
                refused("login.failure", Some("the account is deactivated".into()))
            }
            Err(LoginError::RateLimited(wait)) => refused(
                "login.rate_limited",
                Some(format!("retry after {} s", wait.as_secs())),
            ),
            // The service's trouble, not the caller's: logged where it arose.
            Err(
                LoginError::Busy
                | LoginError::Db(_)
                | LoginError::Internal(_)
                | LoginError::PasswordLoginOff,
            ) => {}
        }
        result
    }

    async fn check(
        &self,
        email: &str,
        password: String,
        client: Option<&str>,
    ) -> Result<LoggedIn, LoginError> {
        // Counted from here on: given back on success or when the password
        // is never checked (an early return drops it).
        let attempt = self
            .limiter
            .reserve(email, client)
            .map_err(LoginError::RateLimited)?;
        if password.len() > MAX_PASSWORD {
            attempt.failed();
            return Err(LoginError::InvalidCredentials);
        }
        let (row, hash) = match self.db.credentials(email).await? {
            Some((row, hash)) => (Some(row), hash),
            None => (None, self.dummy_hash.clone()),
        };
        // On the password threads (see `PasswordPool`): a flood of logins
        // queues there instead of multiplying memory.
        let ok = self
            .passwords
            .run(move |blocks| auth::verify_password_in(&password, &hash, blocks))
            .await
            .ok_or(LoginError::Busy)?;
        let row = match row {
            Some(row) if ok => row,
            _ => {
                attempt.failed();
                return Err(LoginError::InvalidCredentials);
            }
        };
        attempt.succeeded();
        if row.status != Status::Active {
            return Err(LoginError::Deactivated);
        }
        let (token, claims) = self
            .tokens
            .issue(row.id, row.session_epoch)
            .map_err(|e| LoginError::Internal(e.into()))?;
        Ok(LoggedIn {
            token,
            claims,
            user: row.user(),
        })
    }
}
