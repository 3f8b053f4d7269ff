//! The admin writes and logout. Each runs as one sequence, written once in
//! `Users::commit`: the write, then the invalidation of the user's cached
//! record on every node, then the audit entry. Also the rules for what a
//! user is made of (email, password, role), shared with the CLI.
//!
//! Kept whole: every admin write is a few lines around the one
//! `Users::commit` sequence, and the rules for a new user are what those
//! writes check; the tests at the end cover them together.

use std::future::Future;
use std::sync::Arc;

use sessiond_actors::{InvalidationSource, Router, Status, UserId};

use crate::auth::{self, PasswordPool, Verified};
use crate::store::{Db, DbError, Guarded, UserRow, WriteError};

use super::{Audit, Principal};

/// The longest password, in characters (Unicode scalar values), as
/// counted at creation, on a change and at login alike.
pub const MAX_PASSWORD: usize = 1024;
/// The shortest new password, in characters.
pub const MIN_PASSWORD: usize = 8;

/// Why a user operation did not happen. Messages are safe to show the
/// caller.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// What the caller sent breaks a rule (email, password, role).
    #[error("{0}")]
    Invalid(String),
    #[error("no user with id {0}")]
    NotFound(UserId),
    #[error("a user with this email already exists")]
    EmailTaken,
    /// Demoting, deactivating or deleting this user would leave no active
    /// administrator, and only database access could then recover.
    #[error("user {0} is the last active administrator")]
    LastAdmin(UserId),
    /// The password threads' queue is full.
    #[error("too many password checks in progress; try again")]
    Busy,
    /// Users live in the app's own table (named here): sessiond does not
    /// write them.
    #[error("users live in the application's table {0}: create, change and delete them there (sessiond sees every change); here only get, invalidate and revoke-sessions apply")]
    AppManaged(String),
    #[error(transparent)]
    Db(#[from] DbError),
    /// The write was made, but this node could not make sure that no other
    /// node still answers the old record (it could not read the lease
    /// table): not acknowledged.
    #[error("the change was saved but could not be confirmed on every node; it takes effect everywhere within the lease")]
    Unconfirmed,
    /// Something that should not happen; details go to the log.
    #[error("internal error")]
    Internal(anyhow::Error),
}

impl UserError {
    /// Whether the write may have been applied before this error came back.
    fn may_have_written(&self) -> bool {
        matches!(self, UserError::Db(e) if e.may_have_written())
    }
}

/// The written value, or why the write changed nothing.
fn guarded<T>(id: &UserId, outcome: Guarded<T>) -> Result<T, UserError> {
    match outcome {
        Guarded::Done(t) => Ok(t),
        Guarded::NotFound => Err(UserError::NotFound(id.clone())),
        Guarded::LastAdmin => Err(UserError::LastAdmin(id.clone())),
    }
}

/// Roles are 1–64 characters of `[a-z0-9_-]`.
pub fn validate_role(role: &str) -> Result<(), UserError> {
    let ok = (1..=64).contains(&role.len())
        && role
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(UserError::Invalid(
            "a role is 1 to 64 characters of a-z, 0-9, '_' and '-'".into(),
        ))
    }
}

/// Emails are compared case-insensitively: stored trimmed and lower-cased.
pub fn normalize_email(email: &str) -> Result<String, UserError> {
    let e = email.trim().to_lowercase();
    let valid = (3..=254).contains(&e.len())
        && e.split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
        && !e.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid {
        Ok(e)
    } else {
        Err(UserError::Invalid("the email address is not valid".into()))
    }
}

/// Whether a password sent to log in is within [`MAX_PASSWORD`]
/// characters, counted as a new one is (a longer one cannot be right).
pub fn password_length_ok_for_login(password: &str) -> bool {
    // At most 4 bytes a character: only a long one needs counting.
    password.len() <= MAX_PASSWORD || password.chars().count() <= MAX_PASSWORD
}

pub fn validate_new_password(password: &str) -> Result<(), UserError> {
    let n = password.chars().count();
    if (MIN_PASSWORD..=MAX_PASSWORD).contains(&n) {
        Ok(())
    } else {
        Err(UserError::Invalid(format!(
            "a password is {MIN_PASSWORD} to {MAX_PASSWORD} characters"
        )))
    }
}

/// A user to create, checked against the rules.
pub struct NewUser {
    pub email: String,
    pub password: String,
    pub role: String,
}

impl NewUser {
    /// Checks email, password and role (absent: `user`), in that order.
    pub fn parse(email: &str, password: String, role: Option<String>) -> Result<Self, UserError> {
        let email = normalize_email(email)?;
        validate_new_password(&password)?;
        let role = role.unwrap_or_else(|| "user".to_string());
        validate_role(&role)?;
        Ok(NewUser {
            email,
            password,
            role,
        })
    }
}

/// Stores a new user whose password is already hashed.
pub async fn insert(db: &Db, new: &NewUser, hash: &str) -> Result<UserRow, UserError> {
    db.create_user(&new.email, hash, &new.role)
        .await
        .map_err(|e| match e {
            WriteError::EmailTaken => UserError::EmailTaken,
            WriteError::Db(e) => UserError::Db(e),
        })
}

/// Which cached records a write makes stale.
enum Fence {
    /// Those older than this version.
    Version(i64),
    /// Whatever is cached.
    Everything,
    /// None: a new user has no cached record.
    Nothing,
}

/// What a write did, for the steps that follow it.
struct Written<T> {
    value: T,
    target: UserId,
    fence: Fence,
    /// For the audit entry: what changed (`role: editor -> viewer`), never
    /// a secret.
    detail: Option<String>,
}

impl<T> Written<T> {
    fn new(value: T, target: UserId, fence: Fence) -> Self {
        Written {
            value,
            target,
            fence,
            detail: None,
        }
    }
}

/// Whose password change [`Users::set_password`] makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PasswordAction {
    /// An admin sets another user's (or their own) password.
    Reset,
    /// The user changes their own, having given the current one.
    Change,
}

/// The user operations.
pub struct Users {
    db: Db,
    router: Router,
    passwords: Arc<PasswordPool>,
    audit: Audit,
}

impl Users {
    pub fn new(db: Db, router: Router, passwords: Arc<PasswordPool>, audit: Audit) -> Self {
        Users {
            db,
            router,
            passwords,
            audit,
        }
    }

    /// Runs `write`, then invalidates what it made stale on every node while
    /// it records `action` in the audit trail (none: not audited). `about` is
    /// the user the write is about when known before it runs (not so for a
    /// new user).
    ///
    /// The sequence runs as a task of its own and the request only waits for
    /// it: a client that disconnects after the commit (or a proxy that times
    /// out) drops the request's future, and must not drop the invalidation
    /// with it, or the change stays unseen for as long as cached records
    /// live. For the same reason an error after the write was sent (a
    /// connection lost after the commit) still invalidates, without a
    /// version since none came back.
    async fn commit<T, W>(
        &self,
        by: &Principal,
        about: Option<UserId>,
        action: Option<&'static str>,
        write: W,
    ) -> Result<T, UserError>
    where
        T: Send + 'static,
        W: Future<Output = Result<Written<T>, UserError>> + Send + 'static,
    {
        let (router, audit, by) = (self.router.clone(), self.audit.clone(), by.clone());
        let db = self.db.clone();
        // In the request's span: what the task logs carries the request id.
        let span = tracing::Span::current();
        let task = tokio::spawn(tracing::Instrument::instrument(
            async move {
                match write.await {
                    Ok(mut w) => {
                        // Acknowledged only once no node can answer with the
                        // old record (docs/freshness.md §3.5).
                        let api = InvalidationSource::Api;
                        let fence = match w.fence {
                            Fence::Version(v) => Some(Some(v)),
                            Fence::Everything => Some(None),
                            Fence::Nothing => None,
                        };
                        let confirm = async {
                            match fence {
                                Some(v) => {
                                    router.invalidate_confirmed(&w.target, v, api, &db).await
                                }
                                None => Ok(()),
                            }
                        };
                        // The audit entry is written while the other nodes
                        // confirm, not after: both are done before the
                        // answer, and neither waits for the other's round
                        // trip (the entry's commit is not part of what the
                        // confirmation fences).
                        let detail = w.detail.take();
                        let record = async {
                            if let Some(action) = action {
                                audit
                                    .record(&by, action, Some(w.target.clone()), detail)
                                    .await;
                            }
                        };
                        let (confirmed, ()) = tokio::join!(confirm, record);
                        match confirmed {
                            Ok(()) => Ok(w.value),
                            Err(e) => {
                                tracing::warn!(user = %w.target, error = %e, "write not confirmed everywhere");
                                Err(UserError::Unconfirmed)
                            }
                        }
                    }
                    Err(e) => {
                        if let (Some(id), true) = (about, e.may_have_written()) {
                            router.invalidate(id, None, InvalidationSource::Api).await;
                        }
                        Err(e)
                    }
                }
            },
            span,
        ));
        task.await
            .map_err(|e| UserError::Internal(anyhow::anyhow!("a write task failed: {e}")))?
    }

    /// Refused when users live in the app's table: sessiond writes only
    /// its own users.
    fn own_users_only(&self) -> Result<(), UserError> {
        match self.db.app_source() {
            Some(app) => Err(UserError::AppManaged(app.qualified_table())),
            None => Ok(()),
        }
    }

    /// Hashes on the password threads: argon2 takes tens of ms of CPU.
    async fn hash_password(&self, password: String) -> Result<String, UserError> {
        match self
            .passwords
            .run(move |_| auth::hash_password(&password))
            .await
        {
            Some(Ok(hash)) => Ok(hash),
            Some(Err(e)) => Err(UserError::Internal(anyhow::anyhow!(
                "password hashing failed: {e}"
            ))),
            None => Err(UserError::Busy),
        }
    }

    pub async fn get(&self, id: impl Into<UserId>) -> Result<UserRow, UserError> {
        let id = id.into();
        self.db.user(&id).await?.ok_or(UserError::NotFound(id))
    }

    pub async fn create(
        &self,
        by: &Principal,
        email: &str,
        password: String,
        role: Option<String>,
    ) -> Result<UserRow, UserError> {
        self.own_users_only()?;
        let new = NewUser::parse(email, password, role)?;
        let hash = self.hash_password(new.password.clone()).await?;
        let db = self.db.clone();
        self.commit(by, None, Some("user.create"), async move {
            let row = insert(&db, &new, &hash).await?;
            let mut w = Written::new(row.clone(), row.id.clone(), Fence::Nothing);
            w.detail = Some(format!("role: {}", row.role));
            Ok(w)
        })
        .await
    }

    pub async fn set_role(
        &self,
        by: &Principal,
        id: impl Into<UserId>,
        role: &str,
    ) -> Result<UserRow, UserError> {
        self.own_users_only()?;
        let id = id.into();
        validate_role(role)?;
        let (db, role) = (self.db.clone(), role.to_string());
        self.commit(by, Some(id.clone()), Some("user.role"), async move {
            let changed = guarded(&id, db.set_role(&id, &role).await?)?;
            let detail = format!("role: {} -> {}", changed.before, changed.row.role);
            let version = changed.row.version;
            let mut w = Written::new(changed.row, id, Fence::Version(version));
            w.detail = Some(detail);
            Ok(w)
        })
        .await
    }

    /// Deactivating also revokes every token issued so far.
    pub async fn set_status(
        &self,
        by: &Principal,
        id: impl Into<UserId>,
        status: Status,
    ) -> Result<UserRow, UserError> {
        self.own_users_only()?;
        let id = id.into();
        let action = match status {
            Status::Active => "user.activate",
            Status::Deactivated => "user.deactivate",
        };
        let db = self.db.clone();
        self.commit(by, Some(id.clone()), Some(action), async move {
            let changed = guarded(&id, db.set_status(&id, status).await?)?;
            let detail = format!(
                "status: {} -> {}",
                changed.before,
                changed.row.status.as_str()
            );
            let version = changed.row.version;
            let mut w = Written::new(changed.row, id, Fence::Version(version));
            w.detail = Some(detail);
            Ok(w)
        })
        .await
    }

    pub async fn delete(&self, by: &Principal, id: impl Into<UserId>) -> Result<(), UserError> {
        self.own_users_only()?;
        let id = id.into();
        let db = self.db.clone();
        self.commit(by, Some(id.clone()), Some("user.delete"), async move {
            guarded(&id, db.delete_user(&id).await?)?;
            Ok(Written::new((), id, Fence::Everything))
        })
        .await
    }

    /// Every token issued until now stops resolving.
    pub async fn revoke_sessions(
        &self,
        by: &Principal,
        id: impl Into<UserId>,
    ) -> Result<(), UserError> {
        let id = id.into();
        let db = self.db.clone();
        self.commit(
            by,
            Some(id.clone()),
            Some("user.revoke_sessions"),
            async move {
                let Some(version) = db.revoke_all(&id).await? else {
                    return Err(UserError::NotFound(id));
                };
                Ok(Written::new((), id, Fence::Version(version)))
            },
        )
        .await
    }

    /// Sets user `id`'s password and revokes every token of the user issued
    /// until now, on every node before this returns: an admin's reset
    /// (`user.password_reset`), or the user's own change
    /// (`user.password_change`, after the current password was checked),
    /// whose caller then gets a new token. The changed user comes back
    /// (with its new session epoch).
    pub async fn set_password(
        &self,
        by: &Principal,
        id: impl Into<UserId>,
        password: String,
        action: PasswordAction,
    ) -> Result<UserRow, UserError> {
        let id = id.into();
        if self.db.app_source().is_some() {
            return Err(UserError::Invalid(
                "passwords are the application's own: change them there".into(),
            ));
        }
        validate_new_password(&password)?;
        let hash = self.hash_password(password).await?;
        let db = self.db.clone();
        let action = match action {
            PasswordAction::Reset => "user.password_reset",
            PasswordAction::Change => "user.password_change",
        };
        self.commit(by, Some(id.clone()), Some(action), async move {
            let row = db
                .set_password(&id, &hash)
                .await?
                .ok_or_else(|| UserError::NotFound(id.clone()))?;
            let version = row.version;
            Ok(Written::new(row, id, Fence::Version(version)))
        })
        .await
    }

    /// Drops the user's cached record on every node: for changes made in
    /// the database that bypassed the triggers. A confirmed write like the
    /// others: it logs a change of the user (the user's row is not touched),
    /// so every lease holder must apply it, over the link or from the log,
    /// or see its lease end before this returns.
    pub async fn invalidate(&self, by: &Principal, id: impl Into<UserId>) -> Result<(), UserError> {
        let id = id.into();
        let db = self.db.clone();
        self.commit(by, Some(id.clone()), Some("user.invalidate"), async move {
            db.log_invalidation(&id).await?;
            Ok(Written::new((), id, Fence::Everything))
        })
        .await
    }

    /// This token stops resolving. Not an admin action, so not audited.
    pub async fn logout(&self, by: &Principal, token: &Verified) -> Result<(), UserError> {
        let db = self.db.clone();
        let (user_id, sid, expires_ms) = (
            token.user_id.clone(),
            token.sid.clone(),
            token.exp.saturating_mul(1000),
        );
        self.commit(by, Some(user_id.clone()), None, async move {
            // No version means the user is gone: drop whatever is cached.
            let fence = match db.revoke_token(&user_id, &sid, expires_ms).await? {
                Some(v) => Fence::Version(v),
                None => Fence::Everything,
            };
            Ok(Written::new((), user_id, fence))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sessiond_actors::{CacheConfig, Fetched, Lookup, NoopObserver};

    use super::*;
    use crate::clock::Clock;

    async fn role_seen(router: &Router, id: &UserId) -> String {
        match router.resolve(id.clone(), Lookup::Resolve).await {
            Ok(served) => match served.fetched {
                Fetched::Found(s) => s.user.role.to_string(),
                Fetched::Missing => "missing".into(),
            },
            Err(e) => format!("error: {e}"),
        }
    }

    /// A request whose future is dropped right after it started (a client
    /// that went away) still completes its write and the invalidation: the
    /// cache never keeps serving the old role.
    #[tokio::test]
    async fn a_dropped_request_still_writes_and_invalidates() {
        let db = Db::connect("sqlite::memory:", Clock::new())
            .await
            .expect("opens");
        let router = Router::start(
            CacheConfig::default(),
            Arc::new(db.clone()),
            Arc::new(NoopObserver),
            "test",
        )
        .await
        .expect("starts");
        let users = Users::new(
            db.clone(),
            router.clone(),
            Arc::new(PasswordPool::new(1)),
            Audit::new(db.clone(), Clock::new()),
        );
        let new = NewUser::parse("a@b.c", "password1".into(), None).expect("valid");
        let row = insert(&db, &new, "not a hash").await.expect("inserts");
        assert_eq!(role_seen(&router, &row.id).await, "user");

        let by = Principal::new(0.into(), "admin@localhost".into(), Default::default());
        let mut request = Box::pin(users.set_role(&by, row.id.clone(), "viewer"));
        // Polled once, then dropped, as warp drops a disconnected request.
        std::future::poll_fn(|cx| {
            let _ = request.as_mut().poll(cx);
            std::task::Poll::Ready(())
        })
        .await;
        drop(request);

        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while role_seen(&router, &row.id).await != "viewer" {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the cache still serves the old role"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let stored = db.user(&row.id).await.expect("reads").expect("exists");
        assert_eq!(stored.role, "viewer");
        router.stop().await;
    }

    #[test]
    fn validation() {
        assert!(validate_role("admin").is_ok());
        assert!(validate_role("read-only_2").is_ok());
        assert!(validate_role("").is_err());
        assert!(validate_role("Admin").is_err());
        assert!(validate_role(&"a".repeat(65)).is_err());
        assert!(validate_role("a b").is_err());
        assert_eq!(normalize_email(" A@B.c ").ok().as_deref(), Some("a@b.c"));
        assert!(normalize_email("nobody").is_err());
        assert!(normalize_email("@x").is_err());
        assert!(validate_new_password("short").is_err());
    }
}
