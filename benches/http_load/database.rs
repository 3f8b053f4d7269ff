//! A database per store for one run: a temporary SQLite file, or a fresh
//! PostgreSQL database dropped afterwards.

use sessiond_testkit::postgres_db;

fn postgres_admin_url() -> String {
    std::env::var("SESSIOND_BENCH_POSTGRES_URL")
        .or_else(|_| std::env::var("SESSIOND_TEST_POSTGRES_URL"))
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A database for one store, and how to remove it afterwards.
pub(crate) enum Database {
    /// The directory is removed when this is dropped.
    Sqlite {
        _dir: tempfile::TempDir,
        url: String,
    },
    Postgres(String, String),
}

impl Database {
    pub(crate) async fn create(store: &str) -> Result<Database, String> {
        match store {
            "sqlite" => {
                let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
                let url = format!("sqlite://{}", dir.path().join("bench.db").display());
                Ok(Database::Sqlite { _dir: dir, url })
            }
            "postgres" => {
                let name = format!("sessiond_bench_{}", std::process::id());
                let admin_url = postgres_admin_url();
                postgres_db::drop(&admin_url, &name).await;
                let url = postgres_db::create(&admin_url, &name)
                    .await
                    .map_err(|e| format!("PostgreSQL at {admin_url} unreachable: {e}"))?;
                Ok(Database::Postgres(url, name))
            }
            other => Err(format!("unknown store {other:?} (sqlite, postgres)")),
        }
    }

    pub(crate) fn url(&self) -> &str {
        match self {
            Database::Sqlite { url, .. } | Database::Postgres(url, _) => url,
        }
    }

    pub(crate) async fn remove(self) {
        if let Database::Postgres(_, name) = self {
            postgres_db::drop(&postgres_admin_url(), &name).await;
        }
    }
}
