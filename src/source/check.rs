//! What a node checks of an app source before it serves (and `source
//! install` before it installs): the table, its columns, the id column's
//! type, that each expression runs and that the status reads as `active`
//! or `deactivated`, and that the capture triggers are the ones this
//! configuration installs. A mistake stops the start with a message that
//! names it, never the first request.

use sqlx::postgres::PgPool;
use sqlx::Row;

use super::sql::{ident, CAPTURE_TRIGGER};
use super::{AppSource, Expr};

/// The rows the expressions are tried on.
const SAMPLE_ROWS: i64 = 1000;

/// The checks of the table, columns, id type and expressions.
pub async fn check_schema(app: &AppSource, pool: &PgPool) -> anyhow::Result<()> {
    let table = app.qualified_table();
    let found: bool = sqlx::query("SELECT to_regclass($1) IS NOT NULL AS found")
        .bind(&table)
        .fetch_one(pool)
        .await?
        .try_get("found")?;
    if !found {
        anyhow::bail!(
            "[source] table {table} does not exist in this database (schema {:?}, table {:?})",
            app.schema,
            app.table
        );
    }
    let columns: Vec<(String, String)> = sqlx::query(
        "SELECT attname::text AS name, format_type(atttypid, atttypmod) AS ty
           FROM pg_attribute
          WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped
          ORDER BY attnum",
    )
    .bind(&table)
    .fetch_all(pool)
    .await?
    .iter()
    .map(|r| Ok((r.try_get("name")?, r.try_get("ty")?)))
    .collect::<Result<_, sqlx::Error>>()?;
    let names = || {
        columns
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let column = |key: &str, name: &str| -> anyhow::Result<()> {
        if columns.iter().any(|(n, _)| n == name) {
            Ok(())
        } else {
            anyhow::bail!(
                "[source] {key} {name:?} is not a column of {table} (its columns: {})",
                names()
            )
        }
    };
    column("id_column", &app.id_column)?;
    for (key, e) in [
        ("email_column", &app.email),
        ("role_column", &app.role),
        ("status_column", &app.status),
    ] {
        if let Expr::Column(c) = e {
            column(key, c)?;
        }
    }
    let same_type: Option<bool> = sqlx::query(
        "SELECT a.atttypid = to_regtype($2) AS same
           FROM pg_attribute a
          WHERE a.attrelid = to_regclass($1) AND a.attname = $3",
    )
    .bind(&table)
    .bind(&app.id_type)
    .bind(&app.id_column)
    .fetch_one(pool)
    .await?
    .try_get("same")?;
    let actual = columns
        .iter()
        .find(|(n, _)| n == &app.id_column)
        .map(|(_, t)| t.as_str())
        .unwrap_or("?");
    match same_type {
        None => anyhow::bail!(
            "[source] id_type {:?} is not a PostgreSQL type (the id column {table}.{} is {actual})",
            app.id_type,
            ident(&app.id_column)
        ),
        Some(false) => anyhow::bail!(
            "[source] id_type is {:?} but the id column {table}.{} is of type {actual}",
            app.id_type,
            ident(&app.id_column)
        ),
        Some(true) => {}
    }
    check_id_kind(app, actual)?;
    for (key, e) in [
        ("email", &app.email),
        ("role", &app.role),
        ("status", &app.status),
    ] {
        let sql = format!(
            "SELECT ({})::text AS v FROM {table} LIMIT {SAMPLE_ROWS}",
            AppSource::sql_of(e)
        );
        if let Err(err) = sqlx::query(&sql).fetch_all(pool).await {
            let what = match e {
                Expr::Column(c) => format!("{key}_column {c:?}"),
                Expr::Sql(s) => format!("{key}_sql `{s}`"),
            };
            anyhow::bail!("[source] {what} fails on {table}: {}", describe(&err));
        }
    }
    if let Some(at) = &app.changes_at {
        let sql = format!("SELECT ({at})::timestamptz AS v FROM {table} LIMIT {SAMPLE_ROWS}");
        if let Err(err) = sqlx::query(&sql).fetch_all(pool).await {
            anyhow::bail!(
                "[source] changes_at_sql `{at}` fails on {table} (it must give a timestamp or \
                 NULL): {}",
                describe(&err)
            );
        }
    }
    let sql = format!(
        "SELECT DISTINCT status FROM ({} LIMIT {SAMPLE_ROWS}) a
          WHERE status NOT IN ('active', 'deactivated')",
        app.record_select()
    );
    let odd: Vec<String> = sqlx::query(&sql)
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| r.try_get("status"))
        .collect::<Result<_, sqlx::Error>>()?;
    if let Some(v) = odd.first() {
        anyhow::bail!(
            "[source] the status of a user of {table} reads {v:?}: the status must read \
             'active' or 'deactivated' (use status_sql to map the table's values)"
        );
    }
    Ok(())
}

/// Tokens, the change log and the cluster name users by 64-bit integer
/// ids: an id column of another type cannot be served.
fn check_id_kind(app: &AppSource, actual: &str) -> anyhow::Result<()> {
    if matches!(
        actual,
        "smallint" | "integer" | "bigint" | "text" | "character varying" | "character" | "uuid"
    ) {
        return Ok(());
    }
    anyhow::bail!(
        "[source] the id column {}.{} is of type {actual}; sessiond serves integer, text and \
         uuid ids (smallint, integer, bigint, text, varchar, char, uuid)",
        app.qualified_table(),
        ident(&app.id_column)
    )
}

/// The capture triggers are on the table and run the function this
/// configuration installs (the same id column).
pub(crate) async fn check_installed(app: &AppSource, pool: &PgPool) -> anyhow::Result<()> {
    let table = app.qualified_table();
    let Some(body) = trigger_function_source(pool, &table, CAPTURE_TRIGGER).await? else {
        anyhow::bail!(
            "the change-capture triggers are not installed on {table}: without them a change \
             made by the app would not reach the nodes' caches. Run `sessiond source install` \
             with this configuration (`--dry-run` prints the SQL to review)"
        );
    };
    if body != app.capture_body() {
        anyhow::bail!(
            "the change-capture triggers on {table} were installed for another configuration \
             (another id column): run `sessiond source install` again with this one"
        );
    }
    Ok(())
}

/// The source of the function the trigger `name` on `table` runs, or
/// `None` when no such trigger is installed.
pub(super) async fn trigger_function_source(
    pool: &PgPool,
    table: &str,
    name: &str,
) -> anyhow::Result<Option<String>> {
    let row = sqlx::query(
        "SELECT p.prosrc
           FROM pg_trigger tg
           JOIN pg_proc p ON p.oid = tg.tgfoid
          WHERE tg.tgrelid = to_regclass($1) AND tg.tgname = $2",
    )
    .bind(table)
    .bind(name)
    .fetch_optional(pool)
    .await?;
    Ok(match row {
        Some(row) => Some(row.try_get("prosrc")?),
        None => None,
    })
}

/// A database error as a message (the database's own words).
fn describe(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(db) => db.message().to_string(),
        other => other.to_string(),
    }
}
