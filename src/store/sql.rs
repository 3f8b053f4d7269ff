//! Every query, written once for both databases: sqlx takes `$N`
//! placeholders on SQLite too, and the schema is the same. What a backend
//! spells its own way (one aggregate, the count of changed rows) is its
//! [`Dialect`]; its connect options and migrations are in its own module.
//!
//! Kept whole: the queries of both databases (the lease's aside, in
//! `lease.rs`) are here, in one generic impl under one set of bounds, so a
//! schema change is read and made in one file.

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row, Type};

use sessiond_actors::{Status, UserId, UserState};

use super::{state_from, AppKeyRow, AuditEntry, Changed, SigningKeyRow, UserRow, WriteError};

const USER_COLUMNS: &str = "id, email, role, status, version, session_epoch";

const APP_KEY_COLUMNS: &str = "id, name, scopes, secret_hash, previous_hash, previous_until,
                               created_at, rotated_at, revoked_at";

/// The outcome of a write that must leave an active administrator.
#[derive(Debug)]
pub enum Guarded<T> {
    Done(T),
    NotFound,
    /// Refused: the user is the last active administrator.
    LastAdmin,
}

/// A condition on the row being changed (of `users`): it is not an active
/// administrator, or another one remains. `$N` is the row's id.
fn keeps_an_admin(n: usize) -> String {
    format!(
        "(NOT (role = 'admin' AND status = 'active') OR EXISTS (
            SELECT 1 FROM users o WHERE o.id <> ${n} AND o.role = 'admin' AND o.status = 'active'))"
    )
}

/// An id read back from one of sessiond's own tables (text): one that does
/// not parse (written by hand) reads as none.
fn stored_id(text: Option<String>) -> Option<UserId> {
    UserId::parse(&text?).ok()
}

/// What `keys retire KID` found.
#[derive(Debug, PartialEq, Eq)]
pub enum Retired {
    Done,
    NotFound,
    /// Refused: the key is the active one.
    Active,
}

/// What one database spells differently from the other.
pub(crate) trait Dialect: Database {
    /// An aggregate that joins the `sid` column with commas.
    const JOIN_SIDS: &'static str;

    /// The database server's clock, in unix milliseconds (leases are
    /// counted on it: the one clock every node shares).
    const NOW_MS: &'static str;

    /// What makes a read of the change log's head wait for a writer that
    /// holds it, so that a lease is never granted past a change that is
    /// about to commit (nothing on SQLite, whose writers run one at a time).
    const LOCK_SHARED: &'static str;

    /// How many rows a statement changed.
    fn rows_affected(done: &Self::QueryResult) -> u64;
}

/// One database's pool; the queries below are the same for each.
pub(crate) struct SqlStore<DB: Database> {
    pub(super) pool: Pool<DB>,
}

/// Revokes every token of user `$3` issued until `$1` (a new session
/// epoch) and bumps its version; `$2` is the time of the change. Shared by
/// revoke-all and by the logout that finds the revoked list full.
const REVOKE_ALL: &str =
    "UPDATE users SET tokens_valid_after = $1, session_epoch = session_epoch + 1,
        version = version + 1, updated_at = $2
  WHERE id = $3 RETURNING version";

impl<DB> SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
{
    pub(crate) fn new(pool: Pool<DB>) -> Self {
        SqlStore { pool }
    }

    fn user_row(r: &DB::Row) -> Result<UserRow, sqlx::Error> {
        Ok(UserRow {
            id: UserId::from(r.try_get::<i64, _>("id")?),
            email: r.try_get("email")?,
            role: r.try_get("role")?,
            status: Status::parse(&r.try_get::<String, _>("status")?),
            version: r.try_get("version")?,
            session_epoch: r.try_get("session_epoch")?,
        })
    }

    fn user_rows(r: Option<DB::Row>) -> Result<Option<UserRow>, sqlx::Error> {
        r.map(|r| Self::user_row(&r)).transpose()
    }

    pub(crate) async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    pub(crate) async fn count_users(&self) -> Result<i64, sqlx::Error> {
        sqlx::query("SELECT COUNT(*) AS n FROM users")
            .fetch_one(&self.pool)
            .await?
            .try_get("n")
    }

    pub(crate) async fn create_user(
        &self,
        email: &str,
        password_hash: &str,
        role: &str,
        now: i64,
    ) -> Result<UserRow, WriteError> {
        let sql = format!(
            "INSERT INTO users (email, password_hash, role, status, version, created_at, updated_at)
             VALUES ($1, $2, $3, 'active', 1, $4, $5) RETURNING {USER_COLUMNS}"
        );
        let result = sqlx::query(&sql)
            .bind(email)
            .bind(password_hash)
            .bind(role)
            .bind(now)
            .bind(now)
            .fetch_one(&self.pool)
            .await;
        match result {
            Ok(r) => Ok(Self::user_row(&r)?),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(WriteError::EmailTaken),
            Err(e) => Err(e.into()),
        }
    }

    pub(crate) async fn user(&self, id: i64) -> Result<Option<UserRow>, sqlx::Error> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        Self::user_rows(
            sqlx::query(&sql)
                .bind(id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    pub(crate) async fn credentials(
        &self,
        email: &str,
    ) -> Result<Option<(UserRow, String)>, sqlx::Error> {
        let sql = format!("SELECT {USER_COLUMNS}, password_hash FROM users WHERE email = $1");
        let Some(r) = sqlx::query(&sql)
            .bind(email)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        Ok(Some((Self::user_row(&r)?, r.try_get("password_hash")?)))
    }

    /// Takes the lock every write that could remove the last active
    /// administrator holds until its transaction ends: a row lock in
    /// PostgreSQL, the write lock in SQLite. So the check that another
    /// active administrator remains sees every such write committed before
    /// it (two admins demoting each other at once: the second finds itself
    /// the last). A settings row, not the admins' rows: an update of a user
    /// fires its version and notification triggers.
    async fn lock_admins(conn: &mut DB::Connection) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ('admin_guard', '')
             ON CONFLICT (key) DO UPDATE SET value = ''",
        )
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Why a guarded write changed no row: no such user, or it would have
    /// left no active administrator.
    async fn unchanged<T>(conn: &mut DB::Connection, id: i64) -> Result<Guarded<T>, sqlx::Error> {
        let found = sqlx::query("SELECT id FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
        Ok(match found {
            Some(_) => Guarded::LastAdmin,
            None => Guarded::NotFound,
        })
    }

    /// A user's `role` or `status` as it is now, within the transaction
    /// (after [`Self::lock_admins`], so no other guarded write changes it
    /// before this one).
    async fn current(
        conn: &mut DB::Connection,
        id: i64,
        column: &str,
    ) -> Result<Option<String>, sqlx::Error> {
        let sql = format!("SELECT {column} AS v FROM users WHERE id = $1");
        sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?
            .map(|r| r.try_get("v"))
            .transpose()
    }

    /// A write that must leave an active administrator, in the one shape
    /// every such write takes: in one transaction, take the admins' lock
    /// ([`Self::lock_admins`]), read the user's `column` as it is before
    /// (none: no such user), run `write` (it returns the changed row, or
    /// none when its condition refused the change), and tell a refusal from
    /// a user that is gone.
    async fn guarded<'q>(
        &self,
        id: i64,
        column: &str,
        write: sqlx::query::Query<'q, DB, DB::Arguments<'q>>,
    ) -> Result<Guarded<(DB::Row, String)>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        Self::lock_admins(&mut tx).await?;
        let Some(before) = Self::current(&mut tx, id, column).await? else {
            return Ok(Guarded::NotFound);
        };
        let done = match write.fetch_optional(&mut *tx).await? {
            Some(row) => Guarded::Done((row, before)),
            None => Self::unchanged(&mut tx, id).await?,
        };
        tx.commit().await?;
        Ok(done)
    }

    /// A guarded write's changed row, and the column's value before.
    fn changed(done: Guarded<(DB::Row, String)>) -> Result<Guarded<Changed>, sqlx::Error> {
        Ok(match done {
            Guarded::Done((r, before)) => Guarded::Done(Changed {
                row: Self::user_row(&r)?,
                before,
            }),
            Guarded::NotFound => Guarded::NotFound,
            Guarded::LastAdmin => Guarded::LastAdmin,
        })
    }

    pub(crate) async fn set_role(
        &self,
        id: i64,
        role: &str,
        now: i64,
    ) -> Result<Guarded<Changed>, sqlx::Error> {
        let sql = format!(
            "UPDATE users SET role = $1, version = version + 1, updated_at = $2
             WHERE id = $3 AND ($4 = 'admin' OR {}) RETURNING {USER_COLUMNS}",
            keeps_an_admin(5)
        );
        let write = sqlx::query(&sql)
            .bind(role)
            .bind(now)
            .bind(id)
            .bind(role)
            .bind(id);
        Self::changed(self.guarded(id, "role", write).await?)
    }

    /// Deactivation also revokes every token issued so far: reactivating an
    /// account does not bring its old sessions back.
    pub(crate) async fn set_status(
        &self,
        id: i64,
        status: &str,
        now: i64,
    ) -> Result<Guarded<Changed>, sqlx::Error> {
        let sql = format!(
            "UPDATE users SET status = $1,
                    tokens_valid_after = CASE WHEN $2 = 'deactivated' THEN $3 ELSE tokens_valid_after END,
                    session_epoch = CASE WHEN $2 = 'deactivated' THEN session_epoch + 1 ELSE session_epoch END,
                    version = version + 1, updated_at = $4
             WHERE id = $5 AND ($6 = 'active' OR {}) RETURNING {USER_COLUMNS}",
            keeps_an_admin(7)
        );
        let write = sqlx::query(&sql)
            .bind(status)
            .bind(status)
            .bind(now)
            .bind(now)
            .bind(id)
            .bind(status)
            .bind(id);
        Self::changed(self.guarded(id, "status", write).await?)
    }

    pub(crate) async fn delete_user(&self, id: i64) -> Result<Guarded<()>, sqlx::Error> {
        let sql = format!(
            "DELETE FROM users WHERE id = $1 AND {} RETURNING id",
            keeps_an_admin(2)
        );
        let write = sqlx::query(&sql).bind(id).bind(id);
        Ok(match self.guarded(id, "role", write).await? {
            Guarded::Done(_) => Guarded::Done(()),
            Guarded::NotFound => Guarded::NotFound,
            Guarded::LastAdmin => Guarded::LastAdmin,
        })
    }

    pub(crate) async fn revoke_token(
        &self,
        user_id: i64,
        sid: &str,
        expires_ms: i64,
        now: i64,
        max_kept: i64,
    ) -> Result<Option<i64>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let version = sqlx::query(
            "UPDATE users SET version = version + 1, updated_at = $1 WHERE id = $2 RETURNING version",
        )
        .bind(now)
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| r.try_get::<i64, _>("version"))
        .transpose()?;
        if version.is_some() {
            sqlx::query("DELETE FROM revoked_tokens WHERE user_id = $1 AND expires_at <= $2")
                .bind(user_id.to_string())
                .bind(now)
                .execute(&mut *tx)
                .await?;
            let kept: i64 =
                sqlx::query("SELECT COUNT(*) AS n FROM revoked_tokens WHERE user_id = $1")
                    .bind(user_id.to_string())
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get("n")?;
            if kept >= max_kept {
                // The list is full: every token of the user issued until
                // now is revoked at once (a new epoch), which covers this
                // one and every one listed, so the list empties.
                let version = sqlx::query(REVOKE_ALL)
                    .bind(now)
                    .bind(now)
                    .bind(user_id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .map(|r| r.try_get::<i64, _>("version"))
                    .transpose()?;
                sqlx::query("DELETE FROM revoked_tokens WHERE user_id = $1")
                    .bind(user_id.to_string())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                return Ok(version);
            }
            sqlx::query(
                "INSERT INTO revoked_tokens (sid, user_id, expires_at) VALUES ($1, $2, $3)
                 ON CONFLICT (sid) DO NOTHING",
            )
            .bind(sid)
            .bind(user_id.to_string())
            .bind(expires_ms)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(version)
    }

    pub(crate) async fn revoke_all(
        &self,
        user_id: i64,
        now: i64,
    ) -> Result<Option<i64>, sqlx::Error> {
        sqlx::query(REVOKE_ALL)
            .bind(now)
            .bind(now)
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.try_get("version"))
            .transpose()
    }

    /// Replaces the password hash if it is still `old` (a change made
    /// meanwhile wins); true if replaced.
    pub(crate) async fn replace_password_hash(
        &self,
        id: i64,
        old: &str,
        new: &str,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        sqlx::query(
            "UPDATE users SET password_hash = $1, version = version + 1, updated_at = $2
             WHERE id = $3 AND password_hash = $4",
        )
        .bind(new)
        .bind(now)
        .bind(id)
        .bind(old)
        .execute(&self.pool)
        .await
        .map(|done| DB::rows_affected(&done) > 0)
    }

    /// Sets a new password hash and revokes every token issued until now,
    /// in one statement; the changed user, none if there is no such user.
    pub(crate) async fn set_password(
        &self,
        id: i64,
        hash: &str,
        now: i64,
    ) -> Result<Option<UserRow>, sqlx::Error> {
        let sql = format!(
            "UPDATE users SET password_hash = $1, tokens_valid_after = $2,
                    session_epoch = session_epoch + 1, version = version + 1, updated_at = $3
              WHERE id = $4 RETURNING {USER_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(hash)
            .bind(now)
            .bind(now)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Self::user_row(&r)).transpose()
    }

    /// Counts one login attempt in the bucket `account` (an account's
    /// strangers, named by the email, or one of its known devices, named
    /// by `auth::device_bucket`) unless it already has `limit` within the
    /// window (those at or after `window_start`): the new row's id, or the
    /// time of the oldest failure in the window. One lock (a settings row)
    /// orders every node's reservations; expired rows of every bucket go
    /// in the same transaction.
    pub(crate) async fn reserve_login(
        &self,
        account: &str,
        window_start: i64,
        limit: i64,
        now: i64,
    ) -> Result<Result<i64, i64>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ('login_guard', '')
             ON CONFLICT (key) DO UPDATE SET value = ''",
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM login_failures WHERE at < $1")
            .bind(window_start)
            .execute(&mut *tx)
            .await?;
        let r = sqlx::query(
            "SELECT COUNT(*) AS n, MIN(at) AS oldest FROM login_failures WHERE account = $1",
        )
        .bind(account)
        .fetch_one(&mut *tx)
        .await?;
        let n: i64 = r.try_get("n")?;
        if n >= limit {
            let oldest: Option<i64> = r.try_get("oldest")?;
            tx.commit().await?;
            return Ok(Err(oldest.unwrap_or(now)));
        }
        let id: i64 =
            sqlx::query("INSERT INTO login_failures (account, at) VALUES ($1, $2) RETURNING id")
                .bind(account)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?
                .try_get("id")?;
        tx.commit().await?;
        Ok(Ok(id))
    }

    /// Gives a reservation of [`Self::reserve_login`] back.
    pub(crate) async fn release_login(&self, id: i64) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM login_failures WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    pub(crate) async fn fetch_state(
        &self,
        id: i64,
        now: i64,
    ) -> Result<Option<UserState>, sqlx::Error> {
        let sql = format!(
            "SELECT {USER_COLUMNS}, tokens_valid_after,
                    (SELECT {} FROM revoked_tokens r
                      WHERE r.user_id = CAST(users.id AS TEXT) AND r.expires_at > $1) AS revoked
               FROM users WHERE id = $2",
            DB::JOIN_SIDS
        );
        let Some(r) = sqlx::query(&sql)
            .bind(now)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(state_from(
            Self::user_row(&r)?,
            r.try_get("tokens_valid_after")?,
            r.try_get("revoked")?,
            None,
        )))
    }

    pub(crate) async fn record_audit(&self, e: &AuditEntry) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO audit_log (at, actor_id, actor_email, action, target_id, detail, client,
                                    request_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(e.at)
        .bind(e.actor_id.as_ref().map(ToString::to_string))
        .bind(e.actor_email.as_deref())
        .bind(e.action.as_str())
        .bind(e.target_id.as_ref().map(ToString::to_string))
        .bind(e.detail.as_deref())
        .bind(e.client.as_deref())
        .bind(e.request_id.as_deref())
        .execute(&self.pool)
        .await
        .map(|_| ())
    }

    pub(crate) async fn prune_audit(&self, before: i64) -> Result<u64, sqlx::Error> {
        sqlx::query("DELETE FROM audit_log WHERE at < $1")
            .bind(before)
            .execute(&self.pool)
            .await
            .map(|done| DB::rows_affected(&done))
    }

    pub(crate) async fn audit_since(&self, since: i64) -> Result<Vec<AuditEntry>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT at, actor_id, actor_email, action, target_id, detail, client, request_id
               FROM audit_log WHERE at >= $1 ORDER BY id",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditEntry {
                    at: r.try_get("at")?,
                    actor_id: stored_id(r.try_get("actor_id")?),
                    actor_email: r.try_get("actor_email")?,
                    action: r.try_get("action")?,
                    target_id: stored_id(r.try_get("target_id")?),
                    detail: r.try_get("detail")?,
                    client: r.try_get("client")?,
                    request_id: r.try_get("request_id")?,
                })
            })
            .collect()
    }

    pub(crate) async fn signing_keys(&self) -> Result<Vec<SigningKeyRow>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT kid, secret, state, created_at, rotated_at
               FROM signing_keys ORDER BY created_at, kid",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SigningKeyRow {
                    kid: r.try_get("kid")?,
                    secret: r.try_get("secret")?,
                    active: r.try_get::<String, _>("state")? == "active",
                    created_at: r.try_get("created_at")?,
                    rotated_at: r.try_get("rotated_at")?,
                })
            })
            .collect()
    }

    /// Stores `kid` as the active key unless there is one already (the
    /// unique index on the active state makes racing nodes agree).
    pub(crate) async fn add_first_signing_key(
        &self,
        kid: &str,
        secret: &str,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "INSERT INTO signing_keys (kid, secret, state, created_at)
             SELECT $1, $2, 'active', $3
              WHERE NOT EXISTS (SELECT 1 FROM signing_keys WHERE state = 'active')
             ON CONFLICT DO NOTHING",
        )
        .bind(kid)
        .bind(secret)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(DB::rows_affected(&done) > 0)
    }

    /// In one transaction: the active key becomes a verifying one and
    /// `kid` the active one. Returns the previous active key's id.
    pub(crate) async fn rotate_signing_key(
        &self,
        kid: &str,
        secret: &str,
        now: i64,
    ) -> Result<Option<String>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let previous = sqlx::query(
            "UPDATE signing_keys SET state = 'verifying', rotated_at = $1
              WHERE state = 'active' RETURNING kid",
        )
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| r.try_get::<String, _>("kid"))
        .transpose()?;
        sqlx::query(
            "INSERT INTO signing_keys (kid, secret, state, created_at) VALUES ($1, $2, 'active', $3)",
        )
        .bind(kid)
        .bind(secret)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(previous)
    }

    /// Replaces the stored value of key `kid` if it is still `old` (a
    /// concurrent rewrap or retirement wins); true if replaced.
    pub(crate) async fn reseal_signing_key(
        &self,
        kid: &str,
        old: &str,
        new: &str,
    ) -> Result<bool, sqlx::Error> {
        let done =
            sqlx::query("UPDATE signing_keys SET secret = $3 WHERE kid = $1 AND secret = $2")
                .bind(kid)
                .bind(old)
                .bind(new)
                .execute(&self.pool)
                .await?;
        Ok(DB::rows_affected(&done) > 0)
    }

    /// Deletes the key `kid` unless it is the active one.
    pub(crate) async fn retire_signing_key(&self, kid: &str) -> Result<Retired, sqlx::Error> {
        let gone = sqlx::query("DELETE FROM signing_keys WHERE kid = $1 AND state <> 'active'")
            .bind(kid)
            .execute(&self.pool)
            .await?;
        if DB::rows_affected(&gone) > 0 {
            return Ok(Retired::Done);
        }
        let found = sqlx::query("SELECT kid FROM signing_keys WHERE kid = $1")
            .bind(kid)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match found {
            Some(_) => Retired::Active,
            None => Retired::NotFound,
        })
    }

    /// Deletes the verifying keys rotated out at or before `before`;
    /// returns their ids.
    pub(crate) async fn retire_signing_keys_before(
        &self,
        before: i64,
    ) -> Result<Vec<String>, sqlx::Error> {
        let rows = sqlx::query(
            "DELETE FROM signing_keys WHERE state = 'verifying' AND rotated_at <= $1 RETURNING kid",
        )
        .bind(before)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| r.try_get("kid")).collect()
    }

    fn app_key_row(r: &DB::Row) -> Result<AppKeyRow, sqlx::Error> {
        Ok(AppKeyRow {
            id: r.try_get("id")?,
            name: r.try_get("name")?,
            scopes: r.try_get("scopes")?,
            secret_hash: r.try_get("secret_hash")?,
            previous_hash: r.try_get("previous_hash")?,
            previous_until: r.try_get("previous_until")?,
            created_at: r.try_get("created_at")?,
            rotated_at: r.try_get("rotated_at")?,
            revoked_at: r.try_get("revoked_at")?,
        })
    }

    pub(crate) async fn create_app_key(
        &self,
        id: &str,
        name: &str,
        scopes: &str,
        secret_hash: &str,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO app_keys (id, name, scopes, secret_hash, created_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(name)
        .bind(scopes)
        .bind(secret_hash)
        .bind(now)
        .execute(&self.pool)
        .await
        .map(|_| ())
    }

    /// One key by its id: a primary-key read, made on every use.
    pub(crate) async fn app_key(&self, id: &str) -> Result<Option<AppKeyRow>, sqlx::Error> {
        let sql = format!("SELECT {APP_KEY_COLUMNS} FROM app_keys WHERE id = $1");
        sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| Self::app_key_row(&r))
            .transpose()
    }

    pub(crate) async fn app_keys(&self) -> Result<Vec<AppKeyRow>, sqlx::Error> {
        let sql = format!("SELECT {APP_KEY_COLUMNS} FROM app_keys ORDER BY created_at, id");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter().map(Self::app_key_row).collect()
    }

    /// A new secret for a key that is not revoked; the current one is
    /// accepted until `previous_until`. False when there is no such key
    /// (or it is revoked).
    pub(crate) async fn rotate_app_key(
        &self,
        id: &str,
        secret_hash: &str,
        previous_until: i64,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE app_keys SET previous_hash = secret_hash, previous_until = $1,
                    secret_hash = $2, rotated_at = $3
              WHERE id = $4 AND revoked_at IS NULL",
        )
        .bind(previous_until)
        .bind(secret_hash)
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(DB::rows_affected(&done) > 0)
    }

    /// Revokes a key: no secret of it is accepted any more. False when
    /// there is no such key or it was revoked already.
    pub(crate) async fn revoke_app_key(&self, id: &str, now: i64) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE app_keys SET revoked_at = $1, previous_hash = NULL, previous_until = NULL
              WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(DB::rows_affected(&done) > 0)
    }
}
