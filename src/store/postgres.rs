//! The PostgreSQL backend: the store of a clustered deployment. A trigger
//! announces every change to a user on channel `sessiond_users`.
//!
//! sessiond's tables live in the schema `sessiond` (its connections put it
//! first on their search path, so its migrations, written with unqualified
//! names, create everything there), apart from the application's tables
//! in `public`. A database made when the tables lived in `public` is moved
//! over in place, rows and all, before the migrations run.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgQueryResult, Postgres};
use sqlx::Row;

use super::sql::{Dialect, SqlStore};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The schema sessiond's own tables, functions and migration history
/// live in.
pub const SCHEMA: &str = "sessiond";

/// The search path of sessiond's connections (and of its functions).
pub const SEARCH_PATH: &str = "sessiond, public";

/// The tables the migrations made in `public` before sessiond had a
/// schema of its own (the migration history first).
const TABLES_BEFORE_SCHEMA: &[&str] = &[
    "_sqlx_migrations",
    "users",
    "revoked_tokens",
    "settings",
    "audit_log",
    "retired_user_ids",
    "sessiond_change_head",
    "sessiond_changes",
    "sessiond_leases",
    "signing_keys",
    "sessiond_test_clock",
];

/// Serializes the schema moves and fix-ups of nodes that start at once.
const SCHEMA_LOCK: i64 = 0x5e55_10d0_5c4e;

impl Dialect for Postgres {
    const JOIN_SIDS: &'static str = "string_agg(sid, ',')";
    const NOW_MS: &'static str = "(extract(epoch FROM clock_timestamp()) * 1000)::BIGINT";
    const LOCK_SHARED: &'static str = " FOR SHARE";

    fn rows_affected(done: &PgQueryResult) -> u64 {
        done.rows_affected()
    }
}

/// The connect options of every sessiond connection to `url`: the
/// `sessiond` schema first on the search path.
pub fn connect_options(url: &str) -> Result<PgConnectOptions, sqlx::Error> {
    Ok(PgConnectOptions::from_str(url)?
        .application_name("sessiond")
        // Written without a space: the startup packet's options split on them.
        .options([("search_path", "sessiond,public")]))
}

pub(crate) async fn connect(url: &str) -> anyhow::Result<SqlStore<Postgres>> {
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .min_connections(1)
        // A miss must fail fast while the database is away.
        .acquire_timeout(Duration::from_secs(1))
        .test_before_acquire(false)
        .connect_with(connect_options(url)?)
        .await?;
    into_own_schema(&pool).await?;
    MIGRATOR.run(&pool).await?;
    fix_function_search_paths(&pool).await?;
    Ok(SqlStore::new(pool))
}

/// Makes the `sessiond` schema; on a database whose sessiond tables are
/// still in `public` (its migration history there is sessiond's: the
/// first migration's checksum is ours), moves them, their sequences,
/// indexes and triggers, and sessiond's functions into it, in one
/// transaction. The migration history moves with them, so the migrator
/// finds it and runs only what is new.
async fn into_own_schema(pool: &PgPool) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(SCHEMA_LOCK)
        .execute(&mut *tx)
        .await?;
    sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
        .execute(&mut *tx)
        .await?;
    let ours_moved: bool =
        sqlx::query("SELECT to_regclass('sessiond._sqlx_migrations') IS NOT NULL AS moved")
            .fetch_one(&mut *tx)
            .await?
            .try_get("moved")?;
    let history_in_public: bool =
        sqlx::query("SELECT to_regclass('public._sqlx_migrations') IS NOT NULL AS there")
            .fetch_one(&mut *tx)
            .await?
            .try_get("there")?;
    if ours_moved || !history_in_public {
        tx.commit().await?;
        return Ok(());
    }
    let first: Option<Vec<u8>> =
        sqlx::query("SELECT checksum FROM public._sqlx_migrations WHERE version = 1")
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.try_get("checksum"))
            .transpose()?;
    let ours = MIGRATOR
        .iter()
        .find(|m| m.version == 1)
        .map(|m| m.checksum.to_vec());
    if first.is_none() || first != ours {
        // Another program's sqlx history: not ours to move.
        tx.commit().await?;
        return Ok(());
    }
    for table in TABLES_BEFORE_SCHEMA {
        let exists: bool = sqlx::query("SELECT to_regclass($1) IS NOT NULL AS there")
            .bind(format!("public.{table}"))
            .fetch_one(&mut *tx)
            .await?
            .try_get("there")?;
        if exists {
            sqlx::query(&format!("ALTER TABLE public.{table} SET SCHEMA {SCHEMA}"))
                .execute(&mut *tx)
                .await?;
        }
    }
    let functions = sqlx::query(
        "SELECT format('%I.%I(%s)', n.nspname, p.proname,
                       pg_get_function_identity_arguments(p.oid)) AS f
           FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
          WHERE n.nspname = 'public' AND p.proname LIKE 'sessiond\\_%'",
    )
    .fetch_all(&mut *tx)
    .await?;
    for f in functions {
        let f: String = f.try_get("f")?;
        sqlx::query(&format!("ALTER FUNCTION {f} SET SCHEMA {SCHEMA}"))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    tracing::info!("moved sessiond's tables from the schema public to {SCHEMA}");
    Ok(())
}

/// Gives each function in the `sessiond` schema that has none the search
/// path of sessiond's connections. A trigger's function runs with the
/// search path of whoever made the change (psql, the app's ORM), which
/// does not list `sessiond`: the unqualified names the migrations use must
/// still find sessiond's tables. Run after every migration, so functions
/// added by later migrations get it too.
async fn fix_function_search_paths(pool: &PgPool) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(SCHEMA_LOCK)
        .execute(&mut *tx)
        .await?;
    let functions = sqlx::query(
        "SELECT format('%I.%I(%s)', n.nspname, p.proname,
                       pg_get_function_identity_arguments(p.oid)) AS f
           FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
          WHERE n.nspname = 'sessiond' AND p.prokind = 'f'
            AND NOT EXISTS (SELECT 1 FROM unnest(COALESCE(p.proconfig, '{}'::text[])) c
                             WHERE c LIKE 'search\\_path=%')",
    )
    .fetch_all(&mut *tx)
    .await?;
    for f in functions {
        let f: String = f.try_get("f")?;
        sqlx::query(&format!(
            "ALTER FUNCTION {f} SET search_path = {SEARCH_PATH}"
        ))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

impl SqlStore<Postgres> {
    /// For LISTEN.
    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }
}
