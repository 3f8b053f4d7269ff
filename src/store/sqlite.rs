//! The embedded SQLite backend: one file, WAL journal, a small pool.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    Sqlite, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteQueryResult,
};

use super::sql::{Dialect, SqlStore};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

impl Dialect for Sqlite {
    const JOIN_SIDS: &'static str = "group_concat(sid, ',')";
    const NOW_MS: &'static str = "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)";
    const LOCK_SHARED: &'static str = "";

    fn rows_affected(done: &SqliteQueryResult) -> u64 {
        done.rows_affected()
    }
}

/// Creates a missing database file readable and writable by this user
/// only (0600): the file holds password hashes, sessions and the signing
/// keys. SQLite gives the `-wal` and `-shm` files it makes later the mode
/// of the database file, so they are 0600 too. An existing file keeps its
/// mode (the operator's choice).
fn create_private(path: &std::path::Path) -> anyhow::Result<()> {
    use std::io::ErrorKind;
    let mut open = std::fs::OpenOptions::new();
    open.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
    match open.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(anyhow::anyhow!(
            "cannot create the database file {}: {e}",
            path.display()
        )),
    }
}

pub(crate) async fn connect(url: &str) -> anyhow::Result<SqlStore<Sqlite>> {
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    let options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_secs(5))
        .foreign_keys(true);
    if in_memory {
        // Each connection to `:memory:` is a database of its own: one
        // connection, migrated, and no other process to wait for.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(2))
            .test_before_acquire(false)
            .connect_with(options.busy_timeout(super::LOCK_TIMEOUT))
            .await?;
        MIGRATOR.run(&pool).await?;
        return Ok(SqlStore::new(pool));
    }
    create_private(options.get_filename())?;
    // Migrations wait for another process's write as long as before; every
    // other statement waits at most LOCK_TIMEOUT for the write lock.
    let migrating = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options.clone())
        .await?;
    MIGRATOR.run(&migrating).await?;
    migrating.close().await;
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(2))
        .test_before_acquire(false)
        .connect_with(options.busy_timeout(super::LOCK_TIMEOUT))
        .await?;
    Ok(SqlStore::new(pool))
}
