//! The PostgreSQL backend: the store of a clustered deployment. A trigger
//! announces every change to a user on channel `sessiond_users`.

use std::str::FromStr;
use std::time::Duration;

use sessiond_actors::{Status, UserState};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::Row;

use super::{state_from, AuditEntry, UserRow, WriteError};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

const USER_COLUMNS: &str = "id, email, role, status, version";

pub struct PgStore {
    pool: PgPool,
}

fn user_row(r: &sqlx::postgres::PgRow) -> Result<UserRow, sqlx::Error> {
    Ok(UserRow {
        id: r.try_get("id")?,
        email: r.try_get("email")?,
        role: r.try_get("role")?,
        status: Status::parse(r.try_get::<&str, _>("status")?),
        version: r.try_get("version")?,
    })
}

impl PgStore {
    pub async fn connect(url: &str) -> anyhow::Result<PgStore> {
        let options = PgConnectOptions::from_str(url)?.application_name("sessiond");
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .min_connections(1)
            // A miss must fail fast while the database is away.
            .acquire_timeout(Duration::from_secs(1))
            .test_before_acquire(false)
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(PgStore { pool })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
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
            Ok(r) => Ok(user_row(&r)?),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(WriteError::EmailTaken),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn user(&self, id: i64) -> Result<Option<UserRow>, sqlx::Error> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| user_row(&r))
            .transpose()
    }

    pub async fn credentials(&self, email: &str) -> Result<Option<(UserRow, String)>, sqlx::Error> {
        let sql = format!("SELECT {USER_COLUMNS}, password_hash FROM users WHERE email = $1");
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
            "UPDATE users SET role = $1, version = version + 1, updated_at = $2
             WHERE id = $3 RETURNING {USER_COLUMNS}"
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
            "UPDATE users SET status = $1,
                    tokens_valid_after = CASE WHEN $2 = 'deactivated' THEN $3 ELSE tokens_valid_after END,
                    version = version + 1, updated_at = $4
             WHERE id = $5 RETURNING {USER_COLUMNS}"
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
        let done = sqlx::query("DELETE FROM users WHERE id = $1")
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
            "UPDATE users SET version = version + 1, updated_at = $1 WHERE id = $2 RETURNING version",
        )
        .bind(now)
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await?;
        if version.is_some() {
            sqlx::query("DELETE FROM revoked_tokens WHERE user_id = $1 AND expires_at <= $2")
                .bind(user_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO revoked_tokens (sid, user_id, expires_at) VALUES ($1, $2, $3)
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
            "UPDATE users SET tokens_valid_after = $1, version = version + 1, updated_at = $2
             WHERE id = $3 RETURNING version",
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
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(proposed)
        .execute(&self.pool)
        .await?;
        sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_one(&self.pool)
            .await
    }

    pub async fn fetch_state(&self, id: i64, now: i64) -> Result<Option<UserState>, sqlx::Error> {
        let sql = format!(
            "SELECT {USER_COLUMNS}, tokens_valid_after,
                    (SELECT string_agg(sid, ',') FROM revoked_tokens r
                      WHERE r.user_id = users.id AND r.expires_at > $1) AS revoked
               FROM users WHERE id = $2"
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
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
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
        sqlx::query("DELETE FROM audit_log WHERE at < $1")
            .bind(before)
            .execute(&self.pool)
            .await
            .map(|r| r.rows_affected())
    }

    pub async fn audit_since(&self, since: i64) -> Result<Vec<AuditEntry>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT at, actor_id, actor_email, action, target_id, detail, client
               FROM audit_log WHERE at >= $1 ORDER BY id",
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
