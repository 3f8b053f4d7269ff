//! Persistence: users, revoked tokens and settings, behind one type for both
//! databases. The queries are written once (`sql`); each backend's module
//! holds only its connect options, what its dialect spells differently and
//! its migrations folder. Queries are checked at run time because one schema
//! cannot describe both. Callers see [`DbError`], never a driver's error.
//!
//! Kept whole: [`Db`] is the one type every caller and both actor-store traits go
//! through, and each of its methods is a line or two that picks the backend;
//! split, that one dispatch would be spread over files that each repeat it.

mod lease;
mod postgres;
mod sql;
mod sqlite;

use std::sync::Arc;
use std::time::Duration;

use sessiond_actors::{
    BoxFuture, Changes, Fetched, Holder, LeaseStore, Status, StoreError, User, UserState, UserStore,
};

use crate::clock::Clock;
use sql::SqlStore;
pub use sql::{Guarded, Retired};

/// The longest one cache fetch may take before the lookup answers
/// `unavailable`: a database that hangs must not hang requests.
pub const FETCH_TIMEOUT: Duration = Duration::from_millis(1500);

/// How long past a token's expiry its revocation is kept. Expiry is checked
/// on each node's wall clock, and the revocations are filtered and cleaned
/// up on the wall clock of whichever node reads or writes them: a node whose
/// clock runs ahead would otherwise forget a revocation while a node whose
/// clock runs behind still accepts the token. The skew allowed between
/// nodes is the one `iat` is checked with.
pub const REVOCATION_SKEW_MS: i64 = crate::auth::IAT_LEEWAY_SECS * 1000;

/// A user row as the admin API shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRow {
    pub id: i64,
    pub email: String,
    pub role: String,
    pub status: Status,
    pub version: i64,
    /// The session epoch new tokens are issued under (see
    /// `UserState::session_epoch`).
    pub session_epoch: i64,
}

impl UserRow {
    pub fn user(&self) -> User {
        User {
            id: self.id,
            email: self.email.clone(),
            role: self.role.clone(),
            status: self.status,
        }
    }
}

/// A token signing key as stored (`sessiond keys`).
#[derive(Clone)]
pub struct SigningKeyRow {
    pub kid: String,
    pub secret: String,
    pub active: bool,
    /// Unix ms.
    pub created_at: i64,
    /// When it stopped signing (unix ms); `None` for the active key.
    pub rotated_at: Option<i64>,
}

/// An app credential as stored (`sessiond appkey`): never the secret, only
/// its hash.
#[derive(Clone, Debug)]
pub struct AppKeyRow {
    /// The public part of the key (`sdk_<id>_<secret>`).
    pub id: String,
    pub name: String,
    /// Comma-separated scopes (`mint`, `admin`).
    pub scopes: String,
    pub secret_hash: String,
    /// The secret before the last rotation, accepted until `previous_until`.
    pub previous_hash: Option<String>,
    /// Unix ms.
    pub previous_until: Option<i64>,
    /// Unix ms.
    pub created_at: i64,
    pub rotated_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// One audited event (an admin action, a login, a refusal), as the audit
/// trail keeps it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct AuditEntry {
    /// Unix ms.
    pub at: i64,
    /// The caller's user; none for a refused login.
    pub actor_id: Option<i64>,
    /// The caller's email, or the email a login tried.
    pub actor_email: Option<String>,
    /// `user.create`, `user.role`, `user.deactivate`, …, `login`,
    /// `login.failure`, `login.rate_limited`, `admin.forbidden`
    pub action: String,
    pub target_id: Option<i64>,
    /// What changed (`role: editor -> viewer`), or why a refusal; never a
    /// password or a token.
    pub detail: Option<String>,
    /// The client address the request came from (through trusted proxies).
    pub client: Option<String>,
    /// The request's `X-Request-Id`.
    pub request_id: Option<String>,
}

/// A user changed by a write, and the value it changed from (a role or a
/// status), read in the write's transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Changed {
    pub row: UserRow,
    pub before: String,
}

/// The database failed to answer (or answered with an error): the store's
/// own error type, so the layers above never see the driver's. It shows as
/// [`describe`] says, never with query parameters.
#[derive(Debug, thiserror::Error)]
#[error("{}", describe(.0))]
pub struct DbError(#[from] sqlx::Error);

impl DbError {
    /// False when the statement was certainly never sent (no connection was
    /// had); otherwise it may have been applied before the error arrived.
    pub fn may_have_written(&self) -> bool {
        !matches!(self.0, sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed)
    }
}

/// A write that could not be made.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("a user with this email already exists")]
    EmailTaken,
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for WriteError {
    fn from(e: sqlx::Error) -> Self {
        WriteError::Db(DbError(e))
    }
}

/// The database, whichever it is. Cheap to clone.
#[derive(Clone)]
pub struct Db {
    backend: Backend,
    clock: Clock,
}

#[derive(Clone)]
enum Backend {
    Sqlite(Arc<SqlStore<sqlx::Sqlite>>),
    Postgres(Arc<SqlStore<sqlx::Postgres>>),
}

/// Runs the same call on whichever backend this is; a driver error becomes
/// a [`DbError`].
macro_rules! dispatch {
    ($self:ident, $s:ident => $e:expr) => {
        match &$self.backend {
            Backend::Sqlite($s) => $e,
            Backend::Postgres($s) => $e,
        }
        .map_err(Into::into)
    };
}

impl Db {
    /// Connects and runs the embedded migrations.
    pub async fn connect(url: &str, clock: Clock) -> anyhow::Result<Db> {
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite(Arc::new(sqlite::connect(url).await?))
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres(Arc::new(postgres::connect(url).await?))
        } else {
            anyhow::bail!("unsupported database URL (expected sqlite://… or postgres://…)")
        };
        Ok(Db { backend, clock })
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The PostgreSQL pool, when that is the backend (for LISTEN).
    pub fn postgres(&self) -> Option<&sqlx::PgPool> {
        match &self.backend {
            Backend::Postgres(p) => Some(p.pool()),
            Backend::Sqlite(_) => None,
        }
    }

    /// One round trip, for readiness.
    pub async fn ping(&self) -> Result<(), DbError> {
        dispatch!(self, s => s.ping().await)
    }

    pub async fn count_users(&self) -> Result<i64, DbError> {
        dispatch!(self, s => s.count_users().await)
    }

    pub async fn create_user(
        &self,
        email: &str,
        password_hash: &str,
        role: &str,
    ) -> Result<UserRow, WriteError> {
        let now = self.clock.now_ms();
        dispatch!(self, s => s.create_user(email, password_hash, role, now).await)
    }

    pub async fn user(&self, id: i64) -> Result<Option<UserRow>, DbError> {
        dispatch!(self, s => s.user(id).await)
    }

    /// The user with this email and its password hash.
    pub async fn credentials(&self, email: &str) -> Result<Option<(UserRow, String)>, DbError> {
        dispatch!(self, s => s.credentials(email).await)
    }

    /// Refused ([`Guarded::LastAdmin`]) when it would demote the last
    /// active administrator.
    pub async fn set_role(&self, id: i64, role: &str) -> Result<Guarded<Changed>, DbError> {
        let now = self.clock.now_ms();
        dispatch!(self, s => s.set_role(id, role, now).await)
    }

    /// Refused ([`Guarded::LastAdmin`]) when it would deactivate the last
    /// active administrator.
    pub async fn set_status(&self, id: i64, status: Status) -> Result<Guarded<Changed>, DbError> {
        let now = self.clock.now_ms();
        dispatch!(self, s => s.set_status(id, status.as_str(), now).await)
    }

    /// Deletes the user (and its revoked tokens); refused
    /// ([`Guarded::LastAdmin`]) for the last active administrator.
    pub async fn delete_user(&self, id: i64) -> Result<Guarded<()>, DbError> {
        dispatch!(self, s => s.delete_user(id).await)
    }

    /// Records a logged-out token id until it cannot verify on any node
    /// (`expires_ms` plus [`REVOCATION_SKEW_MS`]); returns the user's new
    /// version, `None` if there is no such user.
    pub async fn revoke_token(
        &self,
        user_id: i64,
        sid: &str,
        expires_ms: i64,
    ) -> Result<Option<i64>, DbError> {
        let now = self.clock.now_ms();
        let kept_until = expires_ms.saturating_add(REVOCATION_SKEW_MS);
        dispatch!(self, s => s.revoke_token(user_id, sid, kept_until, now).await)
    }

    /// Logs a change of `user_id` that drops every cached copy, without
    /// writing the user: the head of the change log moves, so a write
    /// confirmation waits for every lease holder to apply it. For changes
    /// made by hand with the triggers bypassed.
    pub async fn log_invalidation(&self, user_id: i64) -> Result<i64, DbError> {
        dispatch!(self, s => s.log_invalidation(user_id).await)
    }

    /// The nodes that hold a running freshness lease on this database.
    pub async fn running_lease_nodes(&self) -> Result<Vec<String>, DbError> {
        dispatch!(self, s => s.running_lease_nodes().await)
    }

    /// Revokes every token issued until now; returns the new version.
    pub async fn revoke_all(&self, user_id: i64) -> Result<Option<i64>, DbError> {
        let now = self.clock.now_ms();
        dispatch!(self, s => s.revoke_all(user_id, now).await)
    }

    /// Every signing key, oldest first.
    pub async fn signing_keys(&self) -> Result<Vec<SigningKeyRow>, DbError> {
        dispatch!(self, s => s.signing_keys().await)
    }

    /// Stores a first active signing key unless one exists; true if this
    /// call stored it.
    pub async fn add_first_signing_key(&self, kid: &str, secret: &str) -> Result<bool, DbError> {
        let now = self.clock.now_ms();
        dispatch!(self, s => s.add_first_signing_key(kid, secret, now).await)
    }

    /// Makes `kid` the active key; the previous one verifies on. Returns
    /// the previous key's id.
    pub async fn rotate_signing_key(
        &self,
        kid: &str,
        secret: &str,
    ) -> Result<Option<String>, DbError> {
        let now = self.clock.now_ms();
        dispatch!(self, s => s.rotate_signing_key(kid, secret, now).await)
    }

    /// Deletes a key that does not sign.
    pub async fn retire_signing_key(&self, kid: &str) -> Result<Retired, DbError> {
        dispatch!(self, s => s.retire_signing_key(kid).await)
    }

    /// Deletes the keys rotated out at or before `before` (unix ms).
    pub async fn retire_signing_keys_before(&self, before: i64) -> Result<Vec<String>, DbError> {
        dispatch!(self, s => s.retire_signing_keys_before(before).await)
    }

    /// Stores a new app key (its secret's hash only).
    pub async fn create_app_key(
        &self,
        id: &str,
        name: &str,
        scopes: &str,
        secret_hash: &str,
    ) -> Result<(), DbError> {
        let now = self.clock.now_ms();
        dispatch!(self, s => s.create_app_key(id, name, scopes, secret_hash, now).await)
    }

    /// One app key, read from the database on every use (bounded like a
    /// fetch): a revocation is seen by every node from its next request.
    pub async fn app_key(&self, id: &str) -> Result<Option<AppKeyRow>, StoreError> {
        self.bounded(async { dispatch!(self, s => s.app_key(id).await) })
            .await
    }

    /// Every app key, oldest first.
    pub async fn app_keys(&self) -> Result<Vec<AppKeyRow>, DbError> {
        dispatch!(self, s => s.app_keys().await)
    }

    /// A new secret for key `id`; the current one is accepted until
    /// `previous_until` (unix ms). False: no such key, or it is revoked.
    pub async fn rotate_app_key(
        &self,
        id: &str,
        secret_hash: &str,
        previous_until: i64,
    ) -> Result<bool, DbError> {
        let now = self.clock.now_ms();
        dispatch!(self, s => s.rotate_app_key(id, secret_hash, previous_until, now).await)
    }

    /// Revokes key `id`. False: no such key, or it was revoked already.
    pub async fn revoke_app_key(&self, id: &str) -> Result<bool, DbError> {
        let now = self.clock.now_ms();
        dispatch!(self, s => s.revoke_app_key(id, now).await)
    }

    /// Appends an admin action to the audit trail.
    pub async fn record_audit(&self, entry: &AuditEntry) -> Result<(), DbError> {
        dispatch!(self, s => s.record_audit(entry).await)
    }

    /// Drops audit entries older than `before` (unix ms); returns how many.
    pub async fn prune_audit(&self, before: i64) -> Result<u64, DbError> {
        dispatch!(self, s => s.prune_audit(before).await)
    }

    /// Audit entries at or after `since` (unix ms), oldest first.
    pub async fn audit_since(&self, since: i64) -> Result<Vec<AuditEntry>, DbError> {
        dispatch!(self, s => s.audit_since(since).await)
    }

    /// One user's cached state: record, watermark, unexpired revoked ids.
    pub async fn fetch_state(&self, id: i64) -> Result<Fetched, StoreError> {
        let now = self.clock.now_ms();
        let row = tokio::time::timeout(FETCH_TIMEOUT, async {
            let row: Result<_, DbError> = dispatch!(self, s => s.fetch_state(id, now).await);
            row
        })
        .await;
        match row {
            Ok(Ok(Some(r))) => Ok(Fetched::Found(Arc::new(r))),
            Ok(Ok(None)) => Ok(Fetched::Missing),
            Ok(Err(e)) => Err(StoreError::Unavailable(e.to_string())),
            Err(_) => Err(StoreError::Unavailable(format!(
                "the database did not answer within {} ms",
                FETCH_TIMEOUT.as_millis()
            ))),
        }
    }
}

/// The lease protocol's tables (`docs/freshness.md`), for the actors'
/// [`LeaseKeeper`](sessiond_actors::LeaseKeeper) and write confirmation.
/// Every call is bounded like a fetch: a database that hangs must not
/// hold a renewal past the lease it renews.
impl LeaseStore for Db {
    fn changes_since(&self, seen: u64) -> BoxFuture<'_, Result<Changes, StoreError>> {
        Box::pin(async move {
            let seen = i64::try_from(seen).unwrap_or(i64::MAX);
            let logged = self
                .bounded(async { dispatch!(self, s => s.changes_since(seen).await) })
                .await?;
            Ok(Changes {
                head: u64::try_from(logged.head).unwrap_or(0),
                truncated: log_incomplete(&logged, seen),
                changes: logged.changes,
            })
        })
    }

    fn grant<'a>(
        &'a self,
        instance: i64,
        node: &'a str,
        head: u64,
        duration: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let head = i64::try_from(head).unwrap_or(i64::MAX);
            self.bounded(async {
                dispatch!(self, s => s.grant_lease(instance, node, head, duration).await)
            })
            .await
        })
    }

    fn unconfirmed(
        &self,
        me: i64,
        below: Option<u64>,
    ) -> BoxFuture<'_, Result<(u64, Vec<Holder>), StoreError>> {
        Box::pin(async move {
            let below = below.map(|b| i64::try_from(b).unwrap_or(i64::MAX));
            let (head, rows) = self
                .bounded(async { dispatch!(self, s => s.unconfirmed_leases(me, below).await) })
                .await?;
            let holders = rows
                .into_iter()
                .map(|(instance, node, remaining_ms)| Holder {
                    instance,
                    node,
                    remaining: Duration::from_millis(u64::try_from(remaining_ms).unwrap_or(0)),
                })
                .collect();
            Ok((u64::try_from(head).unwrap_or(0), holders))
        })
    }

    fn release(&self, instance: i64) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            self.bounded(async { dispatch!(self, s => s.release_lease(instance).await) })
                .await
        })
    }

    fn prune(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            self.bounded(async { dispatch!(self, s => s.prune_changes().await) })
                .await
        })
    }

    fn lapsed(&self, instance: i64, below: u64) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let below = i64::try_from(below).unwrap_or(i64::MAX);
            self.bounded(async { dispatch!(self, s => s.drop_lapsed_lease(instance, below).await) })
                .await
        })
    }
}

/// Whether the changes read after `seen` cannot be trusted to be every
/// change the node missed, so it must drop its whole cache: the log was
/// pruned past `seen`; the head is below `seen` (a database restored from
/// a backup, or failed over to a replica that was behind, or a log reset by
/// hand); or the rows read are not exactly the numbers `seen + 1 ..= head`
/// (rows deleted by hand, or a prune between the two reads).
fn log_incomplete(logged: &lease::LoggedChanges, seen: i64) -> bool {
    let expected = logged.head.saturating_sub(seen).max(0);
    logged.pruned > seen
        || logged.head < seen
        || i64::try_from(logged.changes.len()) != Ok(expected)
}

impl Db {
    /// Runs a lease query within [`FETCH_TIMEOUT`], as a store error.
    async fn bounded<T>(
        &self,
        query: impl std::future::Future<Output = Result<T, DbError>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(FETCH_TIMEOUT, query).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(StoreError::Unavailable(e.to_string())),
            Err(_) => Err(StoreError::Unavailable(format!(
                "the database did not answer within {} ms",
                FETCH_TIMEOUT.as_millis()
            ))),
        }
    }
}

impl crate::auth::KeyStore for Db {
    fn load_keys(&self) -> BoxFuture<'_, Result<Vec<crate::auth::StoredKey>, String>> {
        Box::pin(async move {
            let rows = self
                .bounded(async { dispatch!(self, s => s.signing_keys().await) })
                .await
                .map_err(|e| e.to_string())?;
            Ok(rows
                .into_iter()
                .map(|k| crate::auth::StoredKey {
                    kid: k.kid,
                    secret: k.secret,
                    active: k.active,
                })
                .collect())
        })
    }
}

impl UserStore for Db {
    fn fetch(&self, user_id: i64) -> BoxFuture<'static, Result<Fetched, StoreError>> {
        let db = self.clone();
        Box::pin(async move { db.fetch_state(user_id).await })
    }
}

/// An operator-facing description of a database error that never includes
/// query parameters.
pub fn describe(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::PoolTimedOut => "timed out waiting for a database connection".into(),
        sqlx::Error::Io(io) => format!("database I/O error: {io}"),
        sqlx::Error::Database(db) => format!("database error: {}", db.message()),
        other => format!("database error: {other}"),
    }
}

/// Builds the cached state from a fetched row.
pub(crate) fn state_from(
    row: UserRow,
    tokens_valid_after_ms: i64,
    revoked: Option<String>,
) -> UserState {
    UserState {
        user: row.user(),
        version: row.version,
        session_epoch: row.session_epoch,
        tokens_valid_after_ms,
        revoked_sids: revoked
            .unwrap_or_default()
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    }
}
