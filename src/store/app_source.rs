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

/// A row of the fetch: the user, its revoke-all watermark, its revoked
/// token ids, what the store read beside it (Better Auth's rows).
#[allow(clippy::type_complexity)]
fn app_row(
    id: &UserId,
    r: &sqlx::postgres::PgRow,
) -> Result<(UserRow, i64, Option<String>, Option<String>), sqlx::Error> {
    let row = UserRow {
        id: id.clone(),
        email: r.try_get("email")?,
        role: r.try_get("role")?,
        status: Status::parse(&r.try_get::<String, _>("status")?),
        version: r.try_get("version")?,
        session_epoch: r.try_get("session_epoch")?,
    };
    Ok((
        row,
        r.try_get("tokens_valid_after")?,
        r.try_get("revoked")?,
        r.try_get("attached")?,
    ))
}

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
        app_row(id, &r).map(Some)
    }

    pub(crate) async fn app_fetch_state(
        &self,
        q: &Queries,
        id: &UserId,
        now: i64,
    ) -> Result<Option<UserState>, sqlx::Error> {
        let Some(r) = sqlx::query(&q.fetch)
            .bind(now)
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let (row, after, revoked, attached) = app_row(id, &r)?;
        let mut state = state_from(row, after, revoked, attached);
        state.changes_in_ms = r
            .try_get::<Option<i64>, _>("changes_in_ms")?
            .map(|ms| u32::try_from(ms.max(0)).unwrap_or(u32::MAX));
        Ok(Some(state))
    }

    /// One change of the user made by sessiond (a logout, a revoke-all):
    /// in one transaction, the user must exist in the app's table, its
    /// version rises, the token id `revoked` is listed, and the change is
    /// logged and announced as the capture triggers do. A user keeps at
    /// most `max_kept` unexpired ids, as sessiond's own users do: the
    /// logout that finds the list full revokes every token of the user
    /// issued until now instead (a new session epoch) and empties the
    /// list. `None`: no such user.
    async fn app_change(
        &self,
        q: &Queries,
        id: &UserId,
        now: i64,
        revoke_all: bool,
        revoked: Option<(&str, i64, i64)>,
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
        let mut full = false;
        if let Some((_, _, max_kept)) = revoked {
            sqlx::query(
                "DELETE FROM sessiond.source_revoked_tokens WHERE user_id = $1 AND expires_at <= $2",
            )
            .bind(&uid)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let kept: i64 = sqlx::query(
                "SELECT COUNT(*) AS n FROM sessiond.source_revoked_tokens WHERE user_id = $1",
            )
            .bind(&uid)
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
            full = kept >= max_kept;
        }
        let version: i64 = sqlx::query(BUMP)
            .bind(&uid)
            .bind(now)
            .bind(revoke_all || full)
            .fetch_one(&mut *tx)
            .await?
            .try_get("version")?;
        if full {
            // The new epoch covers this token and every one listed.
            sqlx::query("DELETE FROM sessiond.source_revoked_tokens WHERE user_id = $1")
                .bind(&uid)
                .execute(&mut *tx)
                .await?;
        } else if let Some((sid, kept_until, _)) = revoked {
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
        max_kept: i64,
    ) -> Result<Option<i64>, sqlx::Error> {
        self.app_change(q, id, now, false, Some((sid, kept_until, max_kept)))
            .await
    }
}
