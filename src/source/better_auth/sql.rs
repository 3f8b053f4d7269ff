//! The statements made from Better Auth's schema, once at start from the
//! catalog (a date column is written as Better Auth writes a `Date` in
//! JSON: ISO-8601 in UTC with milliseconds), and the session table's
//! change-capture trigger `sessiond source install` adds.

use sqlx::postgres::PgPool;
use sqlx::Row;

use super::BetterAuth;
use crate::source::{ident, AppSource};

/// The function the session table's trigger calls.
pub(crate) const SESSION_CAPTURE_FUNCTION: &str = "sessiond.source_capture_session";
/// The row trigger's name on the session table.
pub(crate) const SESSION_CAPTURE_TRIGGER: &str = "sessiond_capture_session";
/// The TRUNCATE guard's name on the session table.
const SESSION_TRUNCATE_TRIGGER: &str = "sessiond_no_truncate_session";

/// The session table's columns Better Auth's core needs.
const SESSION_COLUMNS: [&str; 6] = [
    "id",
    "token",
    "userId",
    "expiresAt",
    "createdAt",
    "updatedAt",
];

/// The body of the session table's capture function: a session row
/// written is a change of its user (the old one's and the new one's).
pub(crate) fn capture_body() -> String {
    "
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM sessiond.source_changed(NEW.\"userId\"::text, false);
    ELSIF TG_OP = 'UPDATE' THEN
        IF OLD.\"userId\" IS DISTINCT FROM NEW.\"userId\" THEN
            PERFORM sessiond.source_changed(OLD.\"userId\"::text, false);
        END IF;
        PERFORM sessiond.source_changed(NEW.\"userId\"::text, false);
    ELSE
        PERFORM sessiond.source_changed(OLD.\"userId\"::text, false);
    END IF;
    RETURN NULL;
END;
"
    .to_string()
}

/// The session table's part of `sessiond source install` (after the user
/// table's, in the same transaction, which first dropped every trigger an
/// earlier install left).
pub(crate) fn install_sql(ba: &BetterAuth) -> String {
    let table = ba.qualified_session_table();
    format!(
        "
-- sessiond change capture on {table} (Better Auth's sessions)
CREATE OR REPLACE FUNCTION {SESSION_CAPTURE_FUNCTION}() RETURNS trigger
LANGUAGE plpgsql SET search_path = sessiond, public AS $capture${body}$capture$;

CREATE TRIGGER {SESSION_CAPTURE_TRIGGER}
AFTER INSERT OR UPDATE OR DELETE ON {table}
FOR EACH ROW EXECUTE FUNCTION {SESSION_CAPTURE_FUNCTION}();

CREATE TRIGGER {SESSION_TRUNCATE_TRIGGER}
BEFORE TRUNCATE ON {table}
FOR EACH STATEMENT EXECUTE FUNCTION sessiond.source_no_truncate();
",
        body = capture_body(),
    )
}

/// A column and its SQL type, from the catalog.
async fn columns(pool: &PgPool, table: &str) -> anyhow::Result<Vec<(String, String)>> {
    Ok(sqlx::query(
        "SELECT attname::text AS name, format_type(atttypid, atttypmod) AS ty
           FROM pg_attribute
          WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped
          ORDER BY attnum",
    )
    .bind(table)
    .fetch_all(pool)
    .await?
    .iter()
    .map(|r| Ok((r.try_get("name")?, r.try_get("ty")?)))
    .collect::<Result<_, sqlx::Error>>()?)
}

/// The session table exists with the columns Better Auth's core has.
pub(crate) async fn check_session_table(ba: &BetterAuth, pool: &PgPool) -> anyhow::Result<()> {
    let table = ba.qualified_session_table();
    let found: bool = sqlx::query("SELECT to_regclass($1) IS NOT NULL AS found")
        .bind(&table)
        .fetch_one(pool)
        .await?
        .try_get("found")?;
    if !found {
        anyhow::bail!(
            "[better_auth] session table {table} does not exist in this database (run Better \
             Auth's migration first, or set session_table)"
        );
    }
    let cols = columns(pool, &table).await?;
    for want in SESSION_COLUMNS {
        if !cols.iter().any(|(n, _)| n == want) {
            anyhow::bail!(
                "[better_auth] the session table {table} has no column {want:?} (its columns: {})",
                cols.iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    if let Some((_, ty)) = cols.iter().find(|(n, _)| n == "expiresAt") {
        if !ty.starts_with("timestamp") {
            anyhow::bail!(
                "[better_auth] {table}.\"expiresAt\" is of type {ty}; a timestamp is expected"
            );
        }
    }
    Ok(())
}

/// The capture trigger is on the session table with this body.
pub(crate) async fn check_installed(ba: &BetterAuth, pool: &PgPool) -> anyhow::Result<()> {
    let table = ba.qualified_session_table();
    let Some(body) =
        crate::source::check::trigger_function_source(pool, &table, SESSION_CAPTURE_TRIGGER)
            .await?
    else {
        anyhow::bail!(
            "the change-capture trigger is not installed on Better Auth's session table {table}: \
             without it a sign-out or a revoked session would not reach the nodes' caches. Run \
             `sessiond source install` with this configuration (`--dry-run` prints the SQL)"
        );
    };
    if body != capture_body() {
        anyhow::bail!(
            "the change-capture trigger on {table} was installed by another version: run \
             `sessiond source install` again"
        );
    }
    Ok(())
}

/// A column as Better Auth shows it in JSON, over the row alias `a`.
fn json_value(alias: &str, name: &str, ty: &str) -> String {
    let col = format!("{alias}.{}", ident(name));
    const ISO: &str = "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'";
    if ty.starts_with("timestamp") && ty.contains("with time zone") {
        format!("to_char({col} AT TIME ZONE 'UTC', {ISO})")
    } else if ty.starts_with("timestamp") || ty == "date" {
        format!("to_char({col}, {ISO})")
    } else {
        col
    }
}

/// `json_build_object` of every column of a row (in chunks: one call takes
/// at most 50 pairs).
fn row_object(alias: &str, cols: &[(String, String)]) -> String {
    let parts: Vec<String> = cols
        .chunks(50)
        .map(|chunk| {
            let pairs: Vec<String> = chunk
                .iter()
                .map(|(n, t)| format!("'{}', {}", n.replace('\'', "''"), json_value(alias, n, t)))
                .collect();
            format!("jsonb_build_object({})", pairs.join(", "))
        })
        .collect();
    format!("({})", parts.join(" || "))
}

/// A bound instant (unix ms) as a value of the `expiresAt` column's type.
fn instant(param: &str, ty: &str) -> String {
    if ty.contains("with time zone") {
        format!("to_timestamp({param}::float8 / 1000)")
    } else {
        format!("(to_timestamp({param}::float8 / 1000) AT TIME ZONE 'UTC')")
    }
}

/// The statements of Better Auth's sessions, made once at start.
#[derive(Debug, Clone)]
pub(crate) struct Statements {
    /// An expression over the fetch's `a.uid`: the attached JSON text
    /// (`{"user": {...}, "sessions": [{"exp": ms, "row": {...}}], "full": bool}`).
    pub attached: String,
    /// `$1` a token: `uid` (text) of its session's user.
    pub user_of_token: String,
    /// `$1` a token: the same object as one of `sessions`.
    pub one_session: String,
    /// `$1` token, `$2` new expiry (ms), `$3` now (ms), `$4` the latest
    /// expiry that is refreshed (ms): at most one writer wins.
    pub refresh: String,
}

impl Statements {
    pub(crate) async fn make(
        app: &AppSource,
        ba: &BetterAuth,
        pool: &PgPool,
    ) -> anyhow::Result<Statements> {
        let users = columns(pool, &app.qualified_table()).await?;
        let sessions_table = ba.qualified_session_table();
        let sessions = columns(pool, &sessions_table).await?;
        let exp_ty = sessions
            .iter()
            .find(|(n, _)| n == "expiresAt")
            .map(|(_, t)| t.clone())
            .unwrap_or_default();
        let session_obj = format!(
            "jsonb_build_object('exp', (extract(epoch FROM s.\"expiresAt\") * 1000)::bigint, 'row', {})",
            row_object("s", &sessions)
        );
        let cap = ba.max_sessions_per_user;
        let attached = format!(
            "(SELECT jsonb_build_object(
                 'user', (SELECT {user_obj} FROM {users_table} u WHERE u.{id} = a.uid::{ty}),
                 'sessions', COALESCE((SELECT jsonb_agg(x.o) FROM
                     (SELECT {session_obj} AS o FROM {sessions_table} s
                       WHERE s.\"userId\" = a.uid::{ty}
                       ORDER BY s.\"expiresAt\" DESC LIMIT {cap}) x), '[]'::jsonb),
                 'full', (SELECT count(*) FROM {sessions_table} s WHERE s.\"userId\" = a.uid::{ty}) > {cap}
             )::text)",
            user_obj = row_object("u", &users),
            users_table = app.qualified_table(),
            id = ident(&app.id_column),
            ty = app.id_type,
        );
        Ok(Statements {
            attached,
            user_of_token: format!(
                "SELECT s.\"userId\"::text AS uid FROM {sessions_table} s WHERE s.token = $1"
            ),
            one_session: format!(
                "SELECT ({session_obj})::text AS o FROM {sessions_table} s WHERE s.token = $1"
            ),
            refresh: format!(
                "UPDATE {sessions_table} SET \"expiresAt\" = {new}, \"updatedAt\" = {now}
                  WHERE token = $1 AND \"expiresAt\" <= {latest}",
                new = instant("$2", &exp_ty),
                now = instant("$3", &exp_ty),
                latest = instant("$4", &exp_ty),
            ),
        })
    }
}
