//! The tables of the freshness-lease protocol (`docs/freshness.md`): the
//! change log the triggers write, and the leases. Written once for both
//! databases; the clock and the shared lock are the dialect's.
//!
//! The database's clock decides nothing a stale answer could come from: a
//! writer waits for a holder the whole length of its lease (`lease_ms`) on
//! its own monotonic clock, and a lease row goes only when its holder
//! releases it or a writer has waited it out. `expires_ms` is kept for
//! people reading the table, and to let the change log be pruned (a node
//! that finds the log pruned past its `seen` drops its whole cache).

use std::time::Duration;

use sessiond_actors::UserId;
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Row, Type};

use super::sql::{Dialect, SqlStore};

/// This server's clock as the lease statements read it, in unix
/// milliseconds: the dialect's clock plus the shift in
/// `sessiond_test_clock`, which is 0 except where a test steps it.
fn db_now<DB: Dialect>() -> String {
    format!(
        "({} + (SELECT offset_ms FROM sessiond_test_clock WHERE id = 1))",
        DB::NOW_MS
    )
}

/// What a renewal reads.
pub(super) struct LoggedChanges {
    pub head: i64,
    pub pruned: i64,
    pub changes: Vec<(UserId, Option<i64>)>,
    /// More than the asked-for limit followed `seen`: none were read.
    pub too_many: bool,
}

impl<DB> SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
{
    /// The head, and the changes after `seen` up to it, unless more than
    /// `limit` follow `seen` (a bulk change): then none are read, and the
    /// node drops its whole cache and starts from the head, rather than
    /// read more than a renewal has time for. The head is read first:
    /// numbers follow commit order, so every change up to it is already
    /// visible.
    pub(super) async fn changes_since(
        &self,
        seen: i64,
        limit: i64,
    ) -> Result<LoggedChanges, sqlx::Error> {
        let head = sqlx::query("SELECT seq, pruned FROM sessiond_change_head WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        let (head, pruned): (i64, i64) = (head.try_get("seq")?, head.try_get("pruned")?);
        if head.saturating_sub(seen) > limit {
            return Ok(LoggedChanges {
                head,
                pruned,
                changes: Vec::new(),
                too_many: true,
            });
        }
        let changes = if head > seen {
            sqlx::query(
                "SELECT user_id, version FROM sessiond_changes
                  WHERE seq > $1 AND seq <= $2 ORDER BY seq",
            )
            .bind(seen)
            .bind(head)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                Ok((
                    r.try_get::<String, _>("user_id")?,
                    r.try_get::<Option<i64>, _>("version")?,
                ))
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?
            .into_iter()
            // A row no id can be read from (written by hand) is left out:
            // the count then falls short of the head and the node drops its
            // whole cache, which covers whatever the row meant.
            .filter_map(|(id, version)| Some((UserId::parse(&id).ok()?, version)))
            .collect()
        } else {
            Vec::new()
        };
        Ok(LoggedChanges {
            head,
            pruned,
            changes,
            too_many: false,
        })
    }

    /// Appends a change of `user_id` with no version ("drop whatever is
    /// cached") to the log, as the triggers do for a write: the head moves,
    /// so every lease that has not seen it must confirm it or end before
    /// the caller acknowledges. For changes that bypassed the triggers.
    /// Returns the change's number.
    pub(super) async fn log_invalidation(&self, user_id: &str) -> Result<i64, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        // Taking the number locks the head row until commit (PostgreSQL;
        // SQLite has one writer): numbers follow commit order (lemma
        // ORDER of docs/freshness.md).
        sqlx::query("UPDATE sessiond_change_head SET seq = seq + 1 WHERE id = 1")
            .execute(&mut *tx)
            .await?;
        let seq: i64 = sqlx::query(
            "INSERT INTO sessiond_changes (seq, user_id, version)
             SELECT seq, $1, NULL FROM sessiond_change_head WHERE id = 1
             RETURNING seq",
        )
        .bind(user_id)
        .fetch_one(&mut *tx)
        .await?
        .try_get("seq")?;
        tx.commit().await?;
        Ok(seq)
    }

    /// Grants `instance` a lease with `seen = head`, in one statement that
    /// first takes the head row's shared lock (PostgreSQL; SQLite has one
    /// writer), so no change can commit between the check and the grant:
    /// lemma GRANT of docs/freshness.md.
    pub(super) async fn grant_lease(
        &self,
        instance: i64,
        node: &str,
        head: i64,
        duration: Duration,
    ) -> Result<bool, sqlx::Error> {
        let sql = format!(
            "INSERT INTO sessiond_leases (instance, node, seen, expires_ms, lease_ms)
             SELECT $1, $2, h.seq, {now} + $3, $3
               FROM (SELECT seq FROM sessiond_change_head WHERE id = 1{lock}) h
              WHERE h.seq = $4
             ON CONFLICT (instance) DO UPDATE
                SET node = excluded.node, seen = excluded.seen,
                    expires_ms = excluded.expires_ms, lease_ms = excluded.lease_ms",
            now = db_now::<DB>(),
            lock = DB::LOCK_SHARED,
        );
        let done = sqlx::query(&sql)
            .bind(instance)
            .bind(node)
            .bind(i64::try_from(duration.as_millis()).unwrap_or(i64::MAX))
            .bind(head)
            .execute(&self.pool)
            .await?;
        Ok(DB::rows_affected(&done) > 0)
    }

    /// The head, and the other leases whose `seen` is below `below` (the
    /// head when `None`), with the milliseconds each holder may still count
    /// on its lease from now: the whole length it was granted for. Whether
    /// a lease is still running is not asked of the database's clock: a
    /// forward step of it would hide a holder that still counts its lease
    /// on its own clock. A row from before `lease_ms` existed reports what
    /// it has left by the database's clock.
    pub(super) async fn unconfirmed_leases(
        &self,
        me: i64,
        below: Option<i64>,
    ) -> Result<(i64, Vec<(i64, String, i64)>), sqlx::Error> {
        // One statement, one round trip: the head row, joined with each
        // holder (or with nothing: then one row whose lease columns are
        // NULL).
        let sql = format!(
            "SELECT h.seq AS head, l.instance, l.node,
                    COALESCE(l.lease_ms, l.expires_ms - {now}) AS remaining_ms
               FROM sessiond_change_head h
               LEFT JOIN sessiond_leases l
                 ON l.instance <> $1
                AND l.seen < CASE WHEN $2 < 0 THEN h.seq ELSE $2 END
              WHERE h.id = 1",
            now = db_now::<DB>(),
        );
        let rows = sqlx::query(&sql)
            .bind(me)
            // No bound given: -1, read as the head (sequence numbers are
            // never negative).
            .bind(below.unwrap_or(-1))
            .fetch_all(&self.pool)
            .await?;
        let Some(first) = rows.first() else {
            return Err(sqlx::Error::RowNotFound);
        };
        let head: i64 = first.try_get("head")?;
        let mut holders = Vec::with_capacity(rows.len());
        for r in &rows {
            let instance: Option<i64> = r.try_get("instance")?;
            if let Some(instance) = instance {
                holders.push((instance, r.try_get("node")?, r.try_get("remaining_ms")?));
            }
        }
        Ok((head, holders))
    }

    /// The nodes holding a running lease (by this database's clock).
    pub(super) async fn running_lease_nodes(&self) -> Result<Vec<String>, sqlx::Error> {
        let sql = format!(
            "SELECT DISTINCT node FROM sessiond_leases WHERE expires_ms > {now} ORDER BY node",
            now = DB::NOW_MS,
        );
        sqlx::query(&sql)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| r.try_get("node"))
            .collect()
    }

    pub(super) async fn release_lease(&self, instance: i64) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM sessiond_leases WHERE instance = $1")
            .bind(instance)
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    /// Drops `instance`'s lease row if its `seen` is still below `below`:
    /// a writer waited that grant out. Any later grant of the instance was
    /// made at a head of at least `below`, and stays.
    pub(super) async fn drop_lapsed_lease(
        &self,
        instance: i64,
        below: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM sessiond_leases WHERE instance = $1 AND seen < $2")
            .bind(instance)
            .bind(below)
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    /// Forgets the changes every lease running by the database's clock has
    /// seen. That clock may step: a lease it wrongly calls over loses
    /// changes it has not seen, and its holder, finding the log pruned past
    /// its `seen`, drops its whole cache when it renews. Lease rows are
    /// not pruned by that clock (a forward step would hide a holder from
    /// writers): they go when released or waited out by a writer.
    pub(super) async fn prune_changes(&self) -> Result<(), sqlx::Error> {
        let sql = format!(
            "SELECT COALESCE(MIN(seen), (SELECT seq FROM sessiond_change_head WHERE id = 1)) AS keep
               FROM sessiond_leases WHERE expires_ms > {now}",
            now = db_now::<DB>(),
        );
        let keep: i64 = sqlx::query(&sql)
            .fetch_one(&self.pool)
            .await?
            .try_get("keep")?;
        sqlx::query(
            "UPDATE sessiond_change_head
                SET pruned = CASE WHEN pruned < $1 THEN $1 ELSE pruned END WHERE id = 1",
        )
        .bind(keep)
        .execute(&self.pool)
        .await?;
        sqlx::query("DELETE FROM sessiond_changes WHERE seq <= $1")
            .bind(keep)
            .execute(&self.pool)
            .await
            .map(|_| ())
    }
}
