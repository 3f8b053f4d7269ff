//! The SQL made from an [`AppSource`]: the statements that read a user
//! from the app's table, and the change-capture triggers
//! `sessiond source install` adds to it (and `uninstall` removes).
//!
//! Ids are bound as text and cast to the id column's type in SQL, so one
//! statement serves integer, UUID and text ids. The app's table is always
//! named with its schema: sessiond's connections search the `sessiond`
//! schema first, which has a `users` table of its own.

use super::{AppSource, Expr};

/// `name` as a quoted SQL identifier.
pub(crate) fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The function the capture triggers call (made by `source install`).
pub(crate) const CAPTURE_FUNCTION: &str = "sessiond.source_capture";
/// The row trigger's name on the app's table.
pub(crate) const CAPTURE_TRIGGER: &str = "sessiond_capture";
/// The TRUNCATE guard's name on the app's table.
pub(crate) const TRUNCATE_TRIGGER: &str = "sessiond_no_truncate";

/// Drops every trigger, on any table, that calls one of sessiond's
/// source functions: what an earlier install left, wherever it was.
const DROP_ALL_CAPTURE_TRIGGERS: &str = "DO $drop$
DECLARE
    t RECORD;
BEGIN
    FOR t IN
        SELECT tg.tgname, tg.tgrelid::regclass AS rel
          FROM pg_trigger tg
          JOIN pg_proc p ON p.oid = tg.tgfoid
          JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname = 'sessiond'
           AND p.proname IN ('source_capture', 'source_no_truncate', 'source_capture_session')
           AND NOT tg.tgisinternal
    LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', t.tgname, t.rel);
    END LOOP;
END;
$drop$;";

/// The statements of one source, made once at start.
#[derive(Debug, Clone)]
pub(crate) struct Queries {
    /// `$1` now (unix ms), `$2` the id (text): email, role, status,
    /// version, session_epoch, tokens_valid_after, revoked.
    pub fetch: String,
    /// `$1` the id (text): one row if the user exists.
    pub exists: String,
}

impl AppSource {
    /// The table as SQL: `"schema"."table"`.
    pub fn qualified_table(&self) -> String {
        format!("{}.{}", ident(&self.schema), ident(&self.table))
    }

    fn id(&self) -> String {
        ident(&self.id_column)
    }

    /// A value of the record as a SQL expression over the row.
    pub(crate) fn sql_of(e: &Expr) -> String {
        match e {
            Expr::Column(c) => ident(c),
            Expr::Sql(s) => format!("({s})"),
        }
    }

    /// The app's part of a user's record: uid (text), email, role, status.
    /// A NULL email reads as empty, a NULL role as `user`, a NULL status
    /// as `active`.
    pub(crate) fn record_select(&self) -> String {
        format!(
            "SELECT {id}::text AS uid,
                    COALESCE(({email})::text, '') AS email,
                    COALESCE(({role})::text, 'user') AS role,
                    COALESCE(({status})::text, 'active') AS status
               FROM {table}",
            id = self.id(),
            email = Self::sql_of(&self.email),
            role = Self::sql_of(&self.role),
            status = Self::sql_of(&self.status),
            table = self.qualified_table(),
        )
    }

    /// The statements, the fetch also reading `attached` (an expression
    /// over `a.uid` giving text; NULL without one).
    pub(crate) fn queries_with(&self, attached: Option<&str>) -> Queries {
        let by_id = format!("{} = $2::{}", self.id(), self.id_type);
        Queries {
            fetch: format!(
                "SELECT a.email, a.role, a.status,
                        COALESCE(s.version, 0) AS version,
                        COALESCE(s.session_epoch, 0) AS session_epoch,
                        COALESCE(s.tokens_valid_after, 0) AS tokens_valid_after,
                        (SELECT string_agg(r.sid, ',') FROM sessiond.source_revoked_tokens r
                          WHERE r.user_id = a.uid AND r.expires_at > $1) AS revoked,
                        {attached} AS attached
                   FROM ({record} WHERE {by_id}) a
                   LEFT JOIN sessiond.source_users s ON s.user_id = a.uid",
                record = self.record_select(),
                attached = attached.unwrap_or("NULL::text"),
            ),
            exists: format!(
                "SELECT 1 AS one FROM {} WHERE {} = $1::{}",
                self.qualified_table(),
                self.id(),
                self.id_type
            ),
        }
    }

    /// The body of the capture function: each row written is one change
    /// of its user (`sessiond.source_changed`).
    pub(crate) fn capture_body(&self) -> String {
        let id = self.id();
        format!(
            "
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM sessiond.source_changed(NEW.{id}::text, false);
    ELSIF TG_OP = 'UPDATE' THEN
        IF OLD.{id} IS DISTINCT FROM NEW.{id} THEN
            PERFORM sessiond.source_changed(OLD.{id}::text, true);
        END IF;
        PERFORM sessiond.source_changed(NEW.{id}::text, false);
    ELSE
        PERFORM sessiond.source_changed(OLD.{id}::text, true);
    END IF;
    RETURN NULL;
END;
"
        )
    }

    /// What `sessiond source install` runs, in one transaction: the
    /// capture function, and on the app's table an AFTER row trigger
    /// (INSERT, UPDATE, DELETE) and a TRUNCATE guard. Idempotent: it first
    /// drops whatever an earlier install left. No column, index or
    /// constraint of the app's table is touched.
    pub fn install_sql(&self) -> String {
        let table = self.qualified_table();
        format!(
            "-- sessiond change capture on {table}
{DROP_ALL_CAPTURE_TRIGGERS}

CREATE OR REPLACE FUNCTION {CAPTURE_FUNCTION}() RETURNS trigger
LANGUAGE plpgsql SET search_path = sessiond, public AS $capture${body}$capture$;

CREATE TRIGGER {CAPTURE_TRIGGER}
AFTER INSERT OR UPDATE OR DELETE ON {table}
FOR EACH ROW EXECUTE FUNCTION {CAPTURE_FUNCTION}();

CREATE TRIGGER {TRUNCATE_TRIGGER}
BEFORE TRUNCATE ON {table}
FOR EACH STATEMENT EXECUTE FUNCTION sessiond.source_no_truncate();
",
            body = self.capture_body(),
        ) + &self
            .better_auth
            .as_ref()
            .map(crate::betterauth::session_install_sql)
            .unwrap_or_default()
    }
}

/// What `sessiond source uninstall` runs: every trigger sessiond put on
/// any table, and the capture function. The versions and revocations it
/// kept stay in the `sessiond` schema (a later install goes on from them).
pub fn uninstall_sql() -> String {
    format!(
        "-- sessiond change capture removed
{DROP_ALL_CAPTURE_TRIGGERS}

DROP FUNCTION IF EXISTS {CAPTURE_FUNCTION}();
DROP FUNCTION IF EXISTS {session}();
",
        session = crate::betterauth::SESSION_CAPTURE_FUNCTION
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(ident("banExpires"), "\"banExpires\"");
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
    }
}
