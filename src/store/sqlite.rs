//! The embedded SQLite backend: one file, WAL journal, a small pool.

use std::str::FromStr;
use std::time::Duration;

use sessiond_actors::{Status, UserState};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::Row;

use super::{state_from, AuditEntry, UserRow, WriteError};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

const USER_COLUMNS: &str = "id, email, role, status, version";

pub struct SqliteStore {
    pool: SqlitePool,
}

fn user_row(r: &sqlx::sqlite::SqliteRow) -> Result<UserRow, sqlx::Error> {
    Ok(UserRow {
        id: r.try_get("id")?,
        email: r.try_get("email")?,
        role: r.try_get("role")?,
        status: Status::parse(r.try_get::<&str, _>("status")?),
        version: r.try_get("version")?,
    })
}

impl SqliteStore {
    pub async fn connect(url: &str) -> anyhow::Result<SqliteStore> {
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            // Each connection to `:memory:` is a database of its own.
            .max_connections(if in_memory { 1 } else { 4 })
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(2))
            .test_before_acquire(false)
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(SqliteStore { pool })
    }

    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    pub async fn count_users(&self) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&self.pool)
            .await
    }

    pub async fn create_user(
        &self,
        email: &str,
        password_hash: &str,
        role: &str,
        now: i64,
    ) -> Result<UserRow, WriteError> {
        let sql = format!(
            "INSERT INTO users (email, password_hash, role, status, version, created_at, updated_at)
             VALUES (?, ?, ?, 'active', 1, ?, ?) RETURNING {USER_COLUMNS}"
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
            Ok(r) => Ok(user_row(&r)?),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(WriteError::EmailTaken),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn user(&self, id: i64) -> Result<Option<UserRow>, sqlx::Error> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?");
        sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| user_row(&r))
            .transpose()
    }

    pub async fn credentials(&self, email: &str) -> Result<Option<(UserRow, String)>, sqlx::Error> {
        let sql = format!("SELECT {USER_COLUMNS}, password_hash FROM users WHERE email = ?");
        let Some(r) = sqlx::query(&sql)
            .bind(email)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        Ok(Some((user_row(&r)?, r.try_get("password_hash")?)))
    }

    pub async fn set_role(
        &self,
        id: i64,
        role: &str,
        now: i64,
    ) -> Result<Option<UserRow>, sqlx::Error> {
        let sql = format!(
            "UPDATE users SET role = ?, version = version + 1, updated_at = ?
             WHERE id = ? RETURNING {USER_COLUMNS}"
        );
        sqlx::query(&sql)
            .bind(role)
            .bind(now)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| user_row(&r))
            .transpose()
    }

    /// Deactivation also revokes every token issued so far: reactivating an
    /// account does not bring its old sessions back.
    pub async fn set_status(
        &self,
        id: i64,
        status: &str,
        now: i64,
    ) -> Result<Option<UserRow>, sqlx::Error> {
        let sql = format!(
            "UPDATE users SET status = ?,
                    tokens_valid_after = CASE WHEN ? = 'deactivated' THEN ? ELSE tokens_valid_after END,
                    version = version + 1, updated_at = ?
             WHERE id = ? RETURNING {USER_COLUMNS}"
        );
        sqlx::query(&sql)
            .bind(status)
            .bind(status)
            .bind(now)
            .bind(now)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| user_row(&r))
            .transpose()
    }

    pub async fn delete_user(&self, id: i64) -> Result<bool, sqlx::Error> {
        let done = sqlx::query("DELETE FROM users WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn revoke_token(
        &self,
        user_id: i64,
        sid: &str,
        expires_ms: i64,
        now: i64,
    ) -> Result<Option<i64>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let version: Option<i64> = sqlx::query_scalar(
            "UPDATE users SET version = version + 1, updated_at = ? WHERE id = ? RETURNING version",
        )
        .bind(now)
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await?;
        if version.is_some() {
            sqlx::query("DELETE FROM revoked_tokens WHERE user_id = ? AND expires_at <= ?")
                .bind(user_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO revoked_tokens (sid, user_id, expires_at) VALUES (?, ?, ?)
                 ON CONFLICT (sid) DO NOTHING",
            )
            .bind(sid)
            .bind(user_id)
            .bind(expires_ms)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(version)
    }

    pub async fn revoke_all(&self, user_id: i64, now: i64) -> Result<Option<i64>, sqlx::Error> {
        sqlx::query_scalar(
            "UPDATE users SET tokens_valid_after = ?, version = version + 1, updated_at = ?
             WHERE id = ? RETURNING version",
        )
        .bind(now)
        .bind(now)
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await
    }

    pub async fn setting_or_insert(
        &self,
        key: &str,
        proposed: &str,
    ) -> Result<String, sqlx::Error> {
        sqlx::query("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING")
            .bind(key)
            .bind(proposed)
            .execute(&self.pool)
            .await?;
        sqlx::query_scalar("SELECT value FROM settings WHERE key = ?")
            .bind(key)
            .fetch_one(&self.pool)
            .await
    }

    pub async fn fetch_state(&self, id: i64, now: i64) -> Result<Option<UserState>, sqlx::Error> {
        let sql = format!(
            "SELECT {USER_COLUMNS}, tokens_valid_after,
                    (SELECT group_concat(sid, ',') FROM revoked_tokens r
                      WHERE r.user_id = users.id AND r.expires_at > ?) AS revoked
               FROM users WHERE id = ?"
        );
        let Some(r) = sqlx::query(&sql)
            .bind(now)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let row = user_row(&r)?;
        Ok(Some(state_from(
            row,
            r.try_get("tokens_valid_after")?,
            r.try_get("revoked")?,
        )))
    }

    pub async fn record_audit(&self, e: &AuditEntry) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO audit_log (at, actor_id, actor_email, action, target_id, detail, client)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(e.at)
        .bind(e.actor_id)
        .bind(&e.actor_email)
        .bind(&e.action)
        .bind(e.target_id)
        .bind(&e.detail)
        .bind(&e.client)
        .execute(&self.pool)
        .await
        .map(|_| ())
    }

    pub async fn prune_audit(&self, before: i64) -> Result<u64, sqlx::Error> {
        sqlx::query("DELETE FROM audit_log WHERE at < ?")
            .bind(before)
            .execute(&self.pool)
            .await
            .map(|r| r.rows_affected())
    }

    pub async fn audit_since(&self, since: i64) -> Result<Vec<AuditEntry>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT at, actor_id, actor_email, action, target_id, detail, client
               FROM audit_log WHERE at >= ? ORDER BY id",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditEntry {
                    at: r.try_get("at")?,
                    actor_id: r.try_get("actor_id")?,
                    actor_email: r.try_get("actor_email")?,
                    action: r.try_get("action")?,
                    target_id: r.try_get("target_id")?,
                    detail: r.try_get("detail")?,
                    client: r.try_get("client")?,
                })
            })
            .collect()
    }
}
