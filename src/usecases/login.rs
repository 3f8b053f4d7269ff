//! Logging in: email and password in, a new token out. The brute-force
//! limiter reserves the attempt before any password work and is told every
//! outcome; an unknown email costs as much as a known one. Every outcome
//! that says something about the account (success, wrong credentials, a
//! deactivated account, a lock-out) is audited with the email tried and
//! the client's address, never the password. A successful login is
//! answered with a device token; presented on the account's later logins,
//! it lets them through when strangers are held off (`crate::limiter`).

use std::sync::Arc;
use std::time::Duration;

use sessiond_actors::{Status, User};

use crate::auth::{self, Claims, PasswordPool, Tokens};
use crate::limiter::{LoginLimiter, DEVICE_MEMORY};
use crate::store::{Db, DbError, UserRow};

use super::users::{normalize_email, password_length_ok_for_login};
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
    /// A new device token, on a password login.
    pub device: Option<String>,
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

    /// `from.client` is the caller's address, which the limiter counts
    /// too; `device` the device token an earlier login of this account was
    /// answered with, if the caller has one.
    pub async fn login(
        &self,
        email: &str,
        password: String,
        device: Option<&str>,
        from: &Origin,
    ) -> Result<LoggedIn, LoginError> {
        if self.db.app_source().is_some() {
            return Err(LoginError::PasswordLoginOff);
        }
        let email = email.trim().to_lowercase();
        let device = device.and_then(|d| self.tokens.device_id(d, &email));
        let checked = self
            .check(&email, password, from.client.as_deref(), device.as_deref())
            .await;
        let result = match checked {
            Ok(row) if row.status != Status::Active => Err(LoginError::Deactivated),
            Ok(row) => self.issue(&row).and_then(|mut done| {
                done.device = Some(
                    self.tokens
                        .issue_device(&email, DEVICE_MEMORY)
                        .map_err(|e| LoginError::Internal(e.into()))?,
                );
                Ok(done)
            }),
            Err(e) => Err(e),
        };
        self.audit_login(&email, from, &result);
        result
    }

    /// A user's own password, given again to change it: counted by the
    /// limiter and audited as a login is.
    pub async fn check_current_password(
        &self,
        email: &str,
        password: String,
        from: &Origin,
    ) -> Result<(), LoginError> {
        if self.db.app_source().is_some() {
            return Err(LoginError::PasswordLoginOff);
        }
        let result = self
            .check(email, password, from.client.as_deref(), None)
            .await
            .map(|_| ());
        if let Err(e) = &result {
            self.audit_refusal(email, from, e);
        }
        result
    }

    /// A new token for `row`'s user, at its current session epoch.
    pub fn issue(&self, row: &UserRow) -> Result<LoggedIn, LoginError> {
        let (token, claims) = self
            .tokens
            .issue(&row.id, row.session_epoch)
            .map_err(|e| LoginError::Internal(e.into()))?;
        Ok(LoggedIn {
            token,
            claims,
            user: row.user(),
            device: None,
        })
    }

    fn audit_login(&self, email: &str, from: &Origin, result: &Result<LoggedIn, LoginError>) {
        match result {
            Ok(done) => self.audit.logged_in(&done.user.id, email, from),
            Err(e) => self.audit_refusal(email, from, e),
        }
    }

    fn audit_refusal(&self, email: &str, from: &Origin, e: &LoginError) {
        let refused = |action, detail| self.audit.login_refused(email, action, from, detail);
        match e {
            LoginError::InvalidCredentials => refused("login.failure", None),
            LoginError::Deactivated => {
                refused("login.failure", Some("the account is deactivated".into()))
            }
            LoginError::RateLimited(wait) => refused(
                "login.rate_limited",
                Some(format!("retry after {} s", wait.as_secs())),
            ),
            // The service's trouble, not the caller's: logged where it arose.
            LoginError::Busy
            | LoginError::Db(_)
            | LoginError::Internal(_)
            | LoginError::PasswordLoginOff => {}
        }
    }

    async fn check(
        &self,
        email: &str,
        password: String,
        client: Option<&str>,
        device: Option<&str>,
    ) -> Result<UserRow, LoginError> {
        // Refused before any password work, so never counted: no account
        // has such an email or such a password, and a flood of these must
        // not take the limiter's memory.
        if !can_log_in(email, &password) {
            return Err(LoginError::InvalidCredentials);
        }
        // Counted from here on, whatever happens to the request (a client
        // that hangs up has spent its guess); given back on success or when
        // this service cannot check the password.
        let attempt = self
            .limiter
            .reserve(email, client, device)
            .map_err(LoginError::RateLimited)?;
        // The attempt also counts in the database every node shares, in
        // the same bucket (the strangers' of the account, or the known
        // device's): the nodes of a cluster together allow no more guesses
        // per window than one node does.
        let bucket = match device {
            Some(d) => auth::device_bucket(email, d),
            None => email.to_string(),
        };
        let limits = self.limiter.limits();
        let shared = match self
            .db
            .reserve_login(&bucket, limits.window, limits.per_account)
            .await
        {
            Ok(Ok(id)) => id,
            Ok(Err(wait)) => {
                attempt.unchecked();
                return Err(LoginError::RateLimited(wait.max(Duration::from_secs(1))));
            }
            Err(e) => {
                attempt.unchecked();
                return Err(e.into());
            }
        };
        let give_back = |db: &Db| {
            let db = db.clone();
            tokio::spawn(async move {
                if let Err(e) = db.release_login(shared).await {
                    tracing::warn!(error = %e, "a login attempt was not given back");
                }
            });
        };
        let (row, hash) = match self.db.credentials(email).await {
            Ok(Some((row, hash))) => (Some(row), hash),
            Ok(None) => (None, self.dummy_hash.clone()),
            Err(e) => {
                attempt.unchecked();
                give_back(&self.db);
                return Err(e.into());
            }
        };
        // On the password threads (see `PasswordPool`): a flood of logins
        // queues there instead of multiplying memory; a check whose request
        // was dropped meanwhile is skipped. A hash made with other
        // parameters than today's is made again while the password is at
        // hand.
        let known = row.is_some();
        let stored = hash.clone();
        let check = self.passwords.submit(move |blocks| {
            let ok = auth::verify_password_in(&password, &hash, blocks);
            let upgraded = (ok && known && auth::needs_rehash(&hash))
                .then(|| auth::hash_password(&password).ok())
                .flatten();
            (ok, upgraded)
        });
        let checked = match check {
            Some(check) => check.await.ok(),
            None => None,
        };
        let Some((ok, upgraded)) = checked else {
            attempt.unchecked();
            give_back(&self.db);
            return Err(LoginError::Busy);
        };
        let row = match row {
            Some(row) if ok => row,
            _ => {
                attempt.failed();
                return Err(LoginError::InvalidCredentials);
            }
        };
        attempt.succeeded();
        give_back(&self.db);
        if let Some(new_hash) = upgraded {
            let (db, id) = (self.db.clone(), row.id.clone());
            tokio::spawn(async move {
                match db.replace_password_hash(&id, &stored, &new_hash).await {
                    Ok(_) => {
                        tracing::info!(user = %id, "password hash upgraded to today's parameters")
                    }
                    Err(e) => tracing::warn!(user = %id, error = %e, "password hash not upgraded"),
                }
            });
        }
        Ok(row)
    }
}

/// Whether `email` and `password` could be an account's at all: an email
/// that is not one, or a password longer than any a user can set, fails
/// without a password check and without being counted.
fn can_log_in(email: &str, password: &str) -> bool {
    password_length_ok_for_login(password) && normalize_email(email).is_ok()
}
