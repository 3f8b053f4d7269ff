//! A throwaway PostgreSQL database: created for a test or a benchmark run,
//! dropped afterwards. Shared by the end-to-end tests and `http_load`.

use sqlx::Connection;

/// Replaces the database name in a PostgreSQL URL.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = base[scheme_end..]
        .find('/')
        .map(|i| i + scheme_end)
        .unwrap_or(base.len());
    format!("{}/{db}{query}", &base[..host_end])
}

/// Creates the database `name` on the server of `admin_url`; returns its URL.
pub async fn create(admin_url: &str, name: &str) -> Result<String, sqlx::Error> {
    let mut admin = sqlx::PgConnection::connect(admin_url).await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await?;
    Ok(with_database(admin_url, name))
}

/// Drops the database `name`, closing its connections; a server that cannot
/// be reached is left alone.
pub async fn drop(admin_url: &str, name: &str) {
    if let Ok(mut admin) = sqlx::PgConnection::connect(admin_url).await {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut admin)
            .await;
    }
}

/// A connection to a database sessiond serves that finds sessiond's tables
/// by their bare names (`users`, `sessiond_changes`), as sessiond's own
/// connections do: its schema first on the search path.
pub async fn connect_sessiond(url: &str) -> Result<sqlx::PgConnection, sqlx::Error> {
    let mut c = sqlx::PgConnection::connect(url).await?;
    sqlx::query("SET search_path TO sessiond, public")
        .execute(&mut c)
        .await?;
    Ok(c)
}
