//! Persistence: users, revoked tokens and settings, behind one type for both
//! databases. The queries are written once (`sql`); each backend's module
//! holds only its connect options, what its dialect spells differently and
//! its migrations folder. Queries are checked at run time because one schema
//! cannot describe both. Callers see [`DbError`], never a driver's error.
//!
//! Kept whole: [`Db`] is the one type every caller and both actor-store traits go
//! through, and each of its methods is a line or two that picks the backend;
//! split, that one dispatch would be spread over files that each repeat it.

mod app_source;
mod lease;
mod postgres;
mod sql;
mod sqlite;

use std::sync::Arc;
use std::time::Duration;

use sessiond_actors::{
    BoxFuture, Changes, Fetched, Holder, LeaseStore, Status, StoreError, User, UserId, UserState,
    UserStore,
};

use crate::clock::Clock;
use crate::source::{AppSource, Queries};
pub use postgres::{connect_options as postgres_connect_options, SCHEMA, SEARCH_PATH};
use sql::SqlStore;
pub use sql::{Guarded, Retired};

/// The longest one cache fetch may take before the lookup answers
/// `unavailable`: a database that hangs must not hang requests.
pub const FETCH_TIMEOUT: Duration = Duration::from_millis(1500);

/// The longest a statement waits for a lock another transaction holds (a
/// row in PostgreSQL, `lock_timeout`; the write lock in SQLite, its busy
/// timeout) before it fails with [`DbError::is_lock_timeout`]: a
/// transaction left open in psql then fails writes and lease renewals
/// fast instead of queueing them (docs/freshness.md, "Liveness").
/// Migrations wait as long as they need.
pub const LOCK_TIMEOUT: Duration = Duration::from_millis(1000);

/// How long past a token's expiry its revocation is kept. Expiry is checked
/// on each node's wall clock, and the revocations are filtered and cleaned
/// up on the wall clock of whichever node reads or writes them: a node whose
/// clock runs ahead would otherwise forget a revocation while a node whose
/// clock runs behind still accepts the token. The skew allowed between
/// nodes is the one `iat` is checked with.
pub const REVOCATION_SKEW_MS: i64 = crate::auth::IAT_LEEWAY_SECS * 1000;
/// The most unexpired logged-out token ids kept per user (see
/// [`Db::revoke_token`]).
pub const MAX_REVOKED_TOKENS: usize = 64;

/// A user row as the admin API shows it. The own-users table numbers its
/// users: a text id names no row of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRow {
    pub id: UserId,
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
            id: self.id.clone(),
            email: self.email.clone(),
            role: sessiond_actors::Role::new(&self.role),
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
    #[serde(serialize_with = "crate::ids::serialize_opt")]
    pub actor_id: Option<UserId>,
    /// The caller's email, or the email a login tried.
    pub actor_email: Option<String>,
    /// `user.create`, `user.role`, `user.deactivate`, …, `login`,
    /// `login.failure`, `login.rate_limited`, `admin.forbidden`
    pub action: String,
    #[serde(serialize_with = "crate::ids::serialize_opt")]
    pub target_id: Option<UserId>,
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
    /// had), or when it waited for a lock and gave up (its transaction
    /// wrote nothing); otherwise it may have been applied before the error
    /// arrived.
    pub fn may_have_written(&self) -> bool {
        !matches!(self.0, sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed)
            && !self.is_lock_timeout()
    }

    /// The statement waited [`LOCK_TIMEOUT`] for a lock another
    /// transaction holds, and gave up: PostgreSQL's `lock_not_available`
    /// (55P03), SQLite's `SQLITE_BUSY` or `SQLITE_LOCKED` (any extended
    /// code).
    pub fn is_lock_timeout(&self) -> bool {
        let sqlx::Error::Database(e) = &self.0 else {
            return false;
        };
        let Some(code) = e.code() else {
            return false;
        };
        if code == "55P03" {
            return true;
        }
        code.parse::<i64>().is_ok_and(|c| matches!(c & 0xff, 5 | 6))
            && e.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some()
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
    /// Set when users live in the app's own table (`crate::source`).
    app: Option<Arc<AppStore>>,
}

/// An app source and the statements made from it.
struct AppStore {
    source: AppSource,
    queries: Queries,
    /// Better Auth's session statements, when `[better_auth]` is on.
    better_auth: Option<crate::source::better_auth::Statements>,
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
        Ok(Db {
            backend,
            clock,
            app: None,
        })
    }

    /// This database with users read from the app's own table: checked
    /// first (table, columns, id type, expressions, installed triggers),
    /// so a mistake stops the start with a message naming it.
    pub async fn with_app_source(mut self, source: AppSource) -> anyhow::Result<Db> {
        let Some(pool) = self.postgres() else {
            anyhow::bail!(
                "[source] kind = \"app\" needs PostgreSQL: on SQLite sessiond serves its own \
                 users only (docs/adopting.md)"
            );
        };
        crate::source::check_before_serving(&source, pool).await?;
        let better_auth = match &source.better_auth {
            Some(ba) => {
                Some(crate::source::better_auth::Statements::make(&source, ba, pool).await?)
            }
            None => None,
        };
        let queries = source.queries_with(better_auth.as_ref().map(|b| b.attached.as_str()));
        self.app = Some(Arc::new(AppStore {
            source,
            queries,
            better_auth,
        }));
        Ok(self)
    }

    /// Better Auth's configuration, statements and the pool, when
    /// `[better_auth]` is on.
    pub(crate) fn better_auth(
        &self,
    ) -> Option<(
        &crate::source::better_auth::BetterAuth,
        &crate::source::better_auth::Statements,
        &sqlx::PgPool,
    )> {
        let app = self.app.as_deref()?;
        Some((
            app.source.better_auth.as_ref()?,
            app.better_auth.as_ref()?,
            self.postgres()?,
        ))
    }

    /// The app's user table, when users live there.
    pub fn app_source(&self) -> Option<&AppSource> {
        self.app.as_deref().map(|a| &a.source)
    }

    /// The PostgreSQL store and the app source's statements, when users
    /// live in the app's table.
    fn app_pg(&self) -> Option<(&SqlStore<sqlx::Postgres>, &Queries)> {
        match (&self.backend, &self.app) {
            (Backend::Postgres(p), Some(a)) => Some((p, &a.queries)),
            _ => None,
        }
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

    /// The user with this id. In own-users mode the table numbers its
    /// users, so a text id names nobody; an app source takes any id its
    /// table holds.
    pub async fn user(&self, id: &UserId) -> Result<Option<UserRow>, DbError> {
        if let Some((pg, q)) = self.app_pg() {
            let now = self.clock.now_ms();
            return Ok(pg.app_user(q, id, now).await?.map(|(row, _, _, _)| row));
        }
        let Some(id) = id.as_int() else {
            return Ok(None);
        };
        dispatch!(self, s => s.user(id).await)
    }

    /// The user with this email and its password hash.
    pub async fn credentials(&self, email: &str) -> Result<Option<(UserRow, String)>, DbError> {
        dispatch!(self, s => s.credentials(email).await)
    }

    /// Refused ([`Guarded::LastAdmin`]) when it would demote the last
    /// active administrator.
    pub async fn set_role(&self, id: &UserId, role: &str) -> Result<Guarded<Changed>, DbError> {
        let Some(id) = id.as_int() else {
            return Ok(Guarded::NotFound);
        };
        let now = self.clock.now_ms();
        dispatch!(self, s => s.set_role(id, role, now).await)
    }

    /// Refused ([`Guarded::LastAdmin`]) when it would deactivate the last
    /// active administrator.
    pub async fn set_status(
        &self,
        id: &UserId,
        status: Status,
    ) -> Result<Guarded<Changed>, DbError> {
        let Some(id) = id.as_int() else {
            return Ok(Guarded::NotFound);
        };
        let now = self.clock.now_ms();
        dispatch!(self, s => s.set_status(id, status.as_str(), now).await)
    }

    /// Deletes the user (and its revoked tokens); refused
    /// ([`Guarded::LastAdmin`]) for the last active administrator.
    pub async fn delete_user(&self, id: &UserId) -> Result<Guarded<()>, DbError> {
        let Some(id) = id.as_int() else {
            return Ok(Guarded::NotFound);
        };
        dispatch!(self, s => s.delete_user(id).await)
    }

    /// Records a logged-out token id until it cannot verify on any node
    /// (`expires_ms` plus [`REVOCATION_SKEW_MS`]); returns the user's new
    /// version, `None` if there is no such user.
    ///
    /// A user keeps at most [`MAX_REVOKED_TOKENS`] unexpired ids (every
    /// lookup of the user loads, ships and scans them): the logout that
    /// finds the list full revokes every token of the user issued until
    /// then instead (a new session epoch) and empties the list. A
    /// logged-out token never resolves again either way.
    pub async fn revoke_token(
        &self,
        user_id: &UserId,
        sid: &str,
        expires_ms: i64,
    ) -> Result<Option<i64>, DbError> {
        let now = self.clock.now_ms();
        let kept_until = expires_ms.saturating_add(REVOCATION_SKEW_MS);
        let max = MAX_REVOKED_TOKENS as i64;
        if let Some((pg, q)) = self.app_pg() {
            return Ok(pg
                .app_revoke_token(q, user_id, sid, kept_until, now, max)
                .await?);
        }
        let Some(id) = user_id.as_int() else {
            return Ok(None);
        };
        dispatch!(self, s => s.revoke_token(id, sid, kept_until, now, max).await)
    }

    /// Counts one login attempt in the bucket `account` in the database
    /// every node shares, unless `limit` were counted within `window`:
    /// `Ok(id)` (give it back with [`Db::release_login`]), or `Err(wait)`
    /// until the oldest leaves the window. The bucket is an account's
    /// strangers (named by the email) or one known device of an account
    /// (named by [`crate::auth::device_bucket`]).
    pub async fn reserve_login(
        &self,
        account: &str,
        window: std::time::Duration,
        limit: usize,
    ) -> Result<Result<i64, std::time::Duration>, DbError> {
        let now = self.clock.now_ms();
        let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
        let start = now.saturating_sub(window_ms);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let r: Result<Result<i64, i64>, DbError> =
            dispatch!(self, s => s.reserve_login(account, start, limit, now).await);
        Ok(r?.map_err(|oldest| {
            let until = oldest.saturating_add(window_ms);
            std::time::Duration::from_millis(u64::try_from(until - now).unwrap_or(0))
        }))
    }

    /// Gives back a reservation of [`Db::reserve_login`].
    pub async fn release_login(&self, id: i64) -> Result<(), DbError> {
        dispatch!(self, s => s.release_login(id).await)
    }

    /// Replaces a password hash made with older parameters, if it is still
    /// the stored one; true if replaced.
    pub async fn replace_password_hash(
        &self,
        id: &UserId,
        old: &str,
        new: &str,
    ) -> Result<bool, DbError> {
        let Some(id) = id.as_int() else {
            return Ok(false);
        };
        let now = self.clock.now_ms();
        dispatch!(self, s => s.replace_password_hash(id, old, new, now).await)
    }

    /// Sets a new password hash and revokes every token issued until now;
    /// the changed user, none if there is no such user.
    pub async fn set_password(&self, id: &UserId, hash: &str) -> Result<Option<UserRow>, DbError> {
        let Some(id) = id.as_int() else {
            return Ok(None);
        };
        let now = self.clock.now_ms();
        dispatch!(self, s => s.set_password(id, hash, now).await)
    }

    /// Logs a change of `user_id` that drops every cached copy, without
    /// writing the user: the head of the change log moves, so a write
    /// confirmation waits for every lease holder to apply it. For changes
    /// made by hand with the triggers bypassed.
    pub async fn log_invalidation(&self, user_id: &UserId) -> Result<i64, DbError> {
        let user_id = user_id.to_string();
        dispatch!(self, s => s.log_invalidation(&user_id).await)
    }

    /// The nodes that hold a running freshness lease on this database.
    pub async fn running_lease_nodes(&self) -> Result<Vec<String>, DbError> {
        dispatch!(self, s => s.running_lease_nodes().await)
    }

    /// Revokes every token issued until now; returns the new version.
    pub async fn revoke_all(&self, user_id: &UserId) -> Result<Option<i64>, DbError> {
        let now = self.clock.now_ms();
        if let Some((pg, q)) = self.app_pg() {
            return Ok(pg.app_revoke_all(q, user_id, now).await?);
        }
        let Some(user_id) = user_id.as_int() else {
            return Ok(None);
        };
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

    /// Replaces key `kid`'s stored value if it is still `old`.
    pub async fn reseal_signing_key(
        &self,
        kid: &str,
        old: &str,
        new: &str,
    ) -> Result<bool, DbError> {
        dispatch!(self, s => s.reseal_signing_key(kid, old, new).await)
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
    pub async fn fetch_state(&self, id: &UserId) -> Result<Fetched, StoreError> {
        let now = self.clock.now_ms();
        let int_id = id.as_int();
        if int_id.is_none() && self.app_pg().is_none() {
            return Ok(Fetched::Missing);
        }
        let row = tokio::time::timeout(FETCH_TIMEOUT, async {
            if let Some((pg, q)) = self.app_pg() {
                return pg.app_fetch_state(q, id, now).await.map_err(DbError::from);
            }
            let Some(id) = int_id else {
                return Ok(None);
            };
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
    fn changes_since(&self, seen: u64, limit: u64) -> BoxFuture<'_, Result<Changes, StoreError>> {
        Box::pin(async move {
            let seen = i64::try_from(seen).unwrap_or(i64::MAX);
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let logged = self
                .bounded(async { dispatch!(self, s => s.changes_since(seen, limit).await) })
                .await?;
            Ok(Changes {
                head: u64::try_from(logged.head).unwrap_or(0),
                truncated: logged.too_many || log_incomplete(&logged, seen),
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
    fn fetch(&self, user_id: &UserId) -> BoxFuture<'static, Result<Fetched, StoreError>> {
        let db = self.clone();
        let user_id = user_id.clone();
        Box::pin(async move { db.fetch_state(&user_id).await })
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
    attached: Option<String>,
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
        changes_in_ms: None,
        attached: attached.map(Arc::from),
    }
}
