//! The PostgreSQL backend: the store of a clustered deployment. A trigger
//! announces every change to a user on channel `sessiond_users`.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgQueryResult, Postgres};

use super::sql::{Dialect, SqlStore};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl Dialect for Postgres {
    const JOIN_SIDS: &'static str = "string_agg(sid, ',')";
    const NOW_MS: &'static str = "(extract(epoch FROM clock_timestamp()) * 1000)::BIGINT";
    const LOCK_SHARED: &'static str = " FOR SHARE";

    fn rows_affected(done: &PgQueryResult) -> u64 {
        done.rows_affected()
    }
}

pub(crate) async fn connect(url: &str) -> anyhow::Result<SqlStore<Postgres>> {
    let options = PgConnectOptions::from_str(url)?.application_name("sessiond");
    // Migrations wait for each other's lock as long as it takes (nodes
    // that start together); every other statement waits at most
    // LOCK_TIMEOUT for a row another transaction holds.
    {
        let migrating = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        MIGRATOR.run(&migrating).await?;
        migrating.close().await;
    }
    let lock_timeout = format!("{}ms", super::LOCK_TIMEOUT.as_millis());
    let options = options.options([("lock_timeout", lock_timeout.as_str())]);
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .min_connections(1)
        // A miss must fail fast while the database is away.
        .acquire_timeout(Duration::from_secs(1))
        .test_before_acquire(false)
        .connect_with(options)
        .await?;
    Ok(SqlStore::new(pool))
}

impl SqlStore<Postgres> {
    /// For LISTEN.
    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }
}
