//! The queries of an app source (PostgreSQL): a user read from the app's
//! own table, with what sessiond keeps about it (`sessiond.source_users`,
//! `sessiond.source_revoked_tokens`). The statements are made once from
//! the configuration (`crate::source`); ids are bound as text.

use sqlx::postgres::Postgres;
use sqlx::Row;

use sessiond_actors::{Status, UserId, UserState};

use super::sql::SqlStore;
use super::{state_from, UserRow};
use crate::source::Queries;

/// Raises the user's version (a row is made at 1) and returns it; with
/// `revoke_all` also its session epoch and revoke-all watermark (`$2`).
const BUMP: &str = "INSERT INTO sessiond.source_users AS s
        (user_id, version, session_epoch, tokens_valid_after)
     VALUES ($1, 1, CASE WHEN $3 THEN 1 ELSE 0 END, CASE WHEN $3 THEN $2 ELSE 0 END)
     ON CONFLICT (user_id) DO UPDATE
        SET version = s.version + 1,
            session_epoch = s.session_epoch + CASE WHEN $3 THEN 1 ELSE 0 END,
            tokens_valid_after = CASE WHEN $3 THEN $2 ELSE s.tokens_valid_after END
     RETURNING version";

impl SqlStore<Postgres> {
    pub(crate) async fn app_user(
        &self,
        q: &Queries,
        id: &UserId,
        now: i64,
    ) -> Result<Option<(UserRow, i64, Option<String>, Option<String>)>, sqlx::Error> {
        let Some(r) = sqlx::query(&q.fetch)
            .bind(now)
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let row = UserRow {
            id: id.clone(),
            email: r.try_get("email")?,
            role: r.try_get("role")?,
            status: Status::parse(&r.try_get::<String, _>("status")?),
            version: r.try_get("version")?,
            session_epoch: r.try_get("session_epoch")?,
        };
        Ok(Some((
            row,
            r.try_get("tokens_valid_after")?,
            r.try_get("revoked")?,
            r.try_get("attached")?,
        )))
    }

    pub(crate) async fn app_fetch_state(
        &self,
        q: &Queries,
        id: &UserId,
        now: i64,
    ) -> Result<Option<UserState>, sqlx::Error> {
        Ok(self
            .app_user(q, id, now)
            .await?
            .map(|(row, after, revoked, attached)| state_from(row, after, revoked, attached)))
    }

    /// One change of the user made by sessiond (a logout, a revoke-all):
    /// in one transaction, the user must exist in the app's table, its
    /// version rises, `also` runs, and the change is logged and announced
    /// as the capture triggers do. `None`: no such user.
    async fn app_change(
        &self,
        q: &Queries,
        id: &UserId,
        now: i64,
        revoke_all: bool,
        revoked: Option<(&str, i64)>,
    ) -> Result<Option<i64>, sqlx::Error> {
        let uid = id.to_string();
        let mut tx = self.pool.begin().await?;
        let exists = sqlx::query(&q.exists)
            .bind(&uid)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Ok(None);
        }
        let version: i64 = sqlx::query(BUMP)
            .bind(&uid)
            .bind(now)
            .bind(revoke_all)
            .fetch_one(&mut *tx)
            .await?
            .try_get("version")?;
        if let Some((sid, kept_until)) = revoked {
            sqlx::query(
                "DELETE FROM sessiond.source_revoked_tokens WHERE user_id = $1 AND expires_at <= $2",
            )
            .bind(&uid)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO sessiond.source_revoked_tokens (sid, user_id, expires_at)
                 VALUES ($1, $2, $3) ON CONFLICT (sid) DO NOTHING",
            )
            .bind(sid)
            .bind(&uid)
            .bind(kept_until)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("SELECT sessiond.sessiond_log_change($1, $2)")
            .bind(&uid)
            .bind(version)
            .execute(&mut *tx)
            .await?;
        sqlx::query("SELECT pg_notify('sessiond_users', $1)")
            .bind(format!("{uid}:{version}"))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(version))
    }

    pub(crate) async fn app_revoke_all(
        &self,
        q: &Queries,
        id: &UserId,
        now: i64,
    ) -> Result<Option<i64>, sqlx::Error> {
        self.app_change(q, id, now, true, None).await
    }

    pub(crate) async fn app_revoke_token(
        &self,
        q: &Queries,
        id: &UserId,
        sid: &str,
        kept_until: i64,
        now: i64,
    ) -> Result<Option<i64>, sqlx::Error> {
        self.app_change(q, id, now, false, Some((sid, kept_until)))
            .await
    }
}
