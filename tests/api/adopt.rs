//! The app source's configuration and install, on a real PostgreSQL
//! database with the Auth.js adapter's schema: a mistake is refused at
//! start with a message naming it (one test per kind), `source install`
//! leaves the app's tables as they were apart from its triggers and
//! `uninstall` leaves no trace; a database whose sessiond tables are in
//! `public` (as every release before the `sessiond` schema made them) is
//! moved over keeping every row. The three-node runs with the real
//! libraries are in `cluster::adopt`.

use std::process::Command;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use sqlx::Connection;

use sessiond::app::Application;
use sessiond::config::Settings;
use sessiond::source::{Preset, SourceArgs};

use crate::helpers::{
    drop_postgres_database, fresh_postgres_database, spawn_at, Backend, ReplyExt, ADMIN_EMAIL,
    ADMIN_PASSWORD, SECRET,
};

const BIN: &str = env!("CARGO_BIN_EXE_sessiond");
const AUTHJS_SCHEMA: &str = include_str!("../fixtures/adopt/authjs-pg-schema.sql");

/// A fresh database with the Auth.js adapter's tables and two users.
async fn authjs_database() -> (String, String) {
    let (url, name) = fresh_postgres_database().await;
    let mut c = sqlx::PgConnection::connect(&url).await.expect("connects");
    sqlx::raw_sql(AUTHJS_SCHEMA)
        .execute(&mut c)
        .await
        .expect("makes the schema");
    sqlx::raw_sql(
        "INSERT INTO users (name, email) VALUES ('A', 'a@app.test'), ('B', 'b@app.test')",
    )
    .execute(&mut c)
    .await
    .expect("adds users");
    (url, name)
}

fn cli(url: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(BIN)
        .args(args)
        .env("DATABASE_URL", url)
        .env("RUST_LOG", "warn")
        .output()
        .expect("sessiond runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn install(url: &str) {
    let (ok, out) = cli(url, &["source", "install", "--source-preset", "authjs"]);
    assert!(ok, "source install: {out}");
}

/// The error `Application::build` stops with on an Auth.js database
/// (capture installed unless `installed` is false) with `tweak` applied
/// to an `authjs` source.
async fn refused(installed: bool, tweak: impl FnOnce(&mut SourceArgs)) -> String {
    let (url, name) = authjs_database().await;
    if installed {
        install(&url);
    }
    let mut source = SourceArgs {
        source_preset: Some(Preset::Authjs),
        ..Default::default()
    };
    tweak(&mut source);
    let settings = Settings {
        listen: "127.0.0.1:0".into(),
        database_url: url,
        jwt_secret: Some(SECRET.into()),
        source,
        ..Settings::default()
    };
    let built = Application::build(settings).await;
    drop_postgres_database(&name).await;
    match built {
        Ok(_) => panic!("a bad source was accepted"),
        Err(e) => format!("{e:#}"),
    }
}

macro_rules! pg_test {
    ($name:ident, $body:block) => {
        #[tokio::test]
        #[cfg_attr(
            not(pg_tests),
            ignore = "set SESSIOND_TEST_POSTGRES_URL to run the PostgreSQL tests"
        )]
        async fn $name() $body
    };
}

pg_test!(a_missing_table_is_refused_at_start, {
    let e = refused(true, |s| s.source_table = Some("members".into())).await;
    assert!(e.contains("\"public\".\"members\" does not exist"), "{e}");
});

pg_test!(a_missing_column_is_refused_at_start, {
    let e = refused(true, |s| s.source_role_column = Some("rank".into())).await;
    assert!(
        e.contains("role_column \"rank\" is not a column of \"public\".\"users\""),
        "{e}"
    );
});

pg_test!(an_expression_that_fails_is_refused_at_start, {
    let e = refused(true, |s| {
        s.source_status_sql = Some("CASE WHEN banned THEN 'deactivated' ELSE 'active' END".into())
    })
    .await;
    assert!(e.contains("status_sql `CASE WHEN banned"), "{e}");
    assert!(e.contains("banned"), "{e}");
});

pg_test!(
    a_status_that_reads_neither_active_nor_deactivated_is_refused_at_start,
    {
        let e = refused(true, |s| s.source_status_sql = Some("'enabled'".into())).await;
        assert!(e.contains("reads \"enabled\""), "{e}");
    }
);

pg_test!(an_id_type_that_does_not_match_is_refused_at_start, {
    let e = refused(true, |s| s.source_id_type = Some("uuid".into())).await;
    assert!(e.contains("id_type is \"uuid\" but the id column"), "{e}");
    assert!(e.contains("is of type integer"), "{e}");
});

pg_test!(a_source_without_its_triggers_is_refused_at_start, {
    let e = refused(false, |_| {}).await;
    assert!(e.contains("not installed on \"public\".\"users\""), "{e}");
    assert!(e.contains("sessiond source install"), "{e}");
});

#[tokio::test]
async fn an_app_source_on_sqlite_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let settings = Settings {
        listen: "127.0.0.1:0".into(),
        database_url: format!("sqlite://{}", dir.path().join("s.db").display()),
        jwt_secret: Some(SECRET.into()),
        source: SourceArgs {
            source_preset: Some(Preset::Authjs),
            ..Default::default()
        },
        ..Settings::default()
    };
    let e = match Application::build(settings).await {
        Ok(_) => panic!("accepted"),
        Err(e) => format!("{e:#}"),
    };
    assert!(e.contains("needs PostgreSQL"), "{e}");
}

#[tokio::test]
async fn a_configuration_file_with_an_unknown_key_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("sessiond.toml");
    std::fs::write(
        &path,
        "[source]\npreset = \"authjs\"\nrole_colum = \"role\"\n",
    )
    .expect("writes");
    let args = SourceArgs {
        config: Some(path),
        ..Default::default()
    };
    let e = args
        .resolve()
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("role_colum"), "{e}");
}

/// Everything the catalog says of the tables in `public` (columns,
/// constraints, indexes, triggers) and of the functions outside
/// sessiond's schema, one line each; triggers apart.
async fn catalog(url: &str) -> (Vec<String>, Vec<String>) {
    let mut c = sqlx::PgConnection::connect(url).await.expect("connects");
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT concat_ws(' ', table_name, column_name, ordinal_position, data_type,
                          column_default, is_nullable, character_maximum_length)
           FROM information_schema.columns WHERE table_schema = 'public'
         UNION ALL
         SELECT concat_ws(' ', conrelid::regclass::text, conname, pg_get_constraintdef(oid))
           FROM pg_constraint WHERE connamespace = 'public'::regnamespace
         UNION ALL
         SELECT concat_ws(' ', tablename, indexname, indexdef) FROM pg_indexes
          WHERE schemaname = 'public'
         UNION ALL
         SELECT concat_ws(' ', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid))
           FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
          WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'sessiond')
         ORDER BY 1",
    )
    .fetch_all(&mut c)
    .await
    .expect("reads the catalog");
    let triggers: Vec<String> = sqlx::query_scalar(
        "SELECT pg_get_triggerdef(t.oid) FROM pg_trigger t
           JOIN pg_class r ON r.oid = t.tgrelid
          WHERE r.relnamespace = 'public'::regnamespace AND NOT t.tgisinternal
          ORDER BY 1",
    )
    .fetch_all(&mut c)
    .await
    .expect("reads the triggers");
    (tables, triggers)
}

pg_test!(
    install_changes_only_triggers_and_uninstall_leaves_no_trace,
    {
        let (url, name) = authjs_database().await;
        // sessiond's schema first (as a node's start makes it), so what is
        // compared is what install itself adds.
        let (ok, out) = cli(&url, &["source", "uninstall"]);
        assert!(ok, "{out}");
        let before = catalog(&url).await;
        assert!(before.1.is_empty(), "no trigger before: {:?}", before.1);
        install(&url);
        install(&url); // idempotent
        let installed = catalog(&url).await;
        assert_eq!(installed.0, before.0, "install changed the app's tables");
        assert_eq!(installed.1.len(), 2, "{:?}", installed.1);
        assert!(
            installed
                .1
                .iter()
                .any(|t| t
                    .contains("sessiond_capture AFTER INSERT OR DELETE OR UPDATE ON public.users")),
            "{:?}",
            installed.1
        );
        assert!(
            installed
                .1
                .iter()
                .any(|t| t.contains("sessiond_no_truncate BEFORE TRUNCATE ON public.users")),
            "{:?}",
            installed.1
        );
        let (ok, out) = cli(&url, &["source", "uninstall"]);
        assert!(ok, "{out}");
        assert_eq!(catalog(&url).await, before, "uninstall left a trace");
        let mut c = sqlx::PgConnection::connect(&url).await.expect("connects");
        let capture: Option<String> =
            sqlx::query_scalar("SELECT to_regproc('sessiond.source_capture')::text")
                .fetch_one(&mut c)
                .await
                .expect("reads");
        assert_eq!(capture, None, "the capture function is gone");
        // The app's writes go on without sessiond.
        sqlx::query("TRUNCATE users CASCADE")
            .execute(&mut c)
            .await
            .expect("truncates");
        drop_postgres_database(&name).await;
    }
);

#[test]
fn dry_run_prints_the_sql_and_connects_to_nothing() {
    let (ok, out) = cli(
        "postgres://nobody@127.0.0.1:1/none",
        &[
            "source",
            "install",
            "--dry-run",
            "--source-preset",
            "better-auth",
        ],
    );
    assert!(ok, "{out}");
    assert!(out.contains("CREATE TRIGGER sessiond_capture\nAFTER INSERT OR UPDATE OR DELETE ON \"public\".\"user\""), "{out}");
    assert!(
        out.contains("sessiond.source_changed(NEW.\"id\"::text, false)"),
        "{out}"
    );
    let (ok, out) = cli(
        "postgres://nobody@127.0.0.1:1/none",
        &["source", "uninstall", "--dry-run"],
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("DROP FUNCTION IF EXISTS sessiond.source_capture()"),
        "{out}"
    );
}

/// A database as the releases before the `sessiond` schema left it: their
/// migrations (the same files, numbered below 30) run with `public` as the
/// search path, and rows in every table.
async fn database_of_an_earlier_release() -> (String, String) {
    let (url, name) = fresh_postgres_database().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let source = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres");
    for entry in std::fs::read_dir(source).expect("reads the migrations") {
        let path = entry.expect("an entry").path();
        let file = path
            .file_name()
            .and_then(|f| f.to_str())
            .unwrap_or("")
            .to_string();
        let number: u32 = file
            .get(..4)
            .and_then(|n| n.parse().ok())
            .unwrap_or(u32::MAX);
        if number < 30 {
            std::fs::copy(&path, dir.path().join(&file)).expect("copies");
        }
    }
    let mut c = sqlx::PgConnection::connect(&url).await.expect("connects");
    sqlx::migrate::Migrator::new(dir.path())
        .await
        .expect("reads the old migrations")
        .run(&mut c)
        .await
        .expect("migrates as an earlier release did");
    let hash = sessiond::auth::hash_password(ADMIN_PASSWORD).expect("hashes");
    sqlx::query(
        "INSERT INTO users (email, password_hash, role) VALUES ($1, $2, 'admin'), ('kept@x.test', 'x', 'editor')",
    )
    .bind(ADMIN_EMAIL)
    .bind(hash)
    .execute(&mut c)
    .await
    .expect("adds users");
    sqlx::raw_sql(
        "INSERT INTO signing_keys (kid, secret, state, created_at)
             VALUES ('old-key', 'old-secret-0123456789-0123456789-0123', 'active', 1);
         INSERT INTO audit_log (at, action)
             SELECT (extract(epoch FROM now()) * 1000)::BIGINT, a
               FROM unnest(ARRAY['old.one', 'old.two']) a;
         INSERT INTO revoked_tokens (sid, user_id, expires_at)
             SELECT 'gone-sid', id, 9999999999999 FROM users WHERE email = 'kept@x.test';",
    )
    .execute(&mut c)
    .await
    .expect("adds rows");
    (url, name)
}

pg_test!(
    an_earlier_releases_database_moves_into_the_sessiond_schema_keeping_every_row,
    {
        let (url, name) = database_of_an_earlier_release().await;
        let dir = tempfile::tempdir().expect("temp dir");
        // The admin logs in with the password stored before the move.
        let app = spawn_at(Backend::Postgres, url.clone(), None, dir, |_| {}).await;
        let mut c = sqlx::PgConnection::connect(&url).await.expect("connects");
        let left_in_public: Vec<String> = sqlx::query_scalar(
        "SELECT relname::text FROM pg_class WHERE relnamespace = 'public'::regnamespace ORDER BY 1",
    )
    .fetch_all(&mut c)
    .await
    .expect("reads");
        assert_eq!(
            left_in_public,
            Vec::<String>::new(),
            "nothing of sessiond's stays in public"
        );
        let counts: (i64, i64, i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM sessiond.users),
                (SELECT count(*) FROM sessiond.signing_keys WHERE kid = 'old-key'),
                (SELECT count(*) FROM sessiond.audit_log WHERE action LIKE 'old.%'),
                (SELECT count(*) FROM sessiond.revoked_tokens),
                (SELECT count(*) FROM sessiond._sqlx_migrations WHERE version < 30)",
        )
        .fetch_one(&mut c)
        .await
        .expect("reads");
        let old_migrations =
            std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
                .expect("reads")
                .filter(|e| {
                    e.as_ref()
                        .ok()
                        .and_then(|e| e.file_name().to_str()?.get(..4)?.parse::<u32>().ok())
                        .is_some_and(|n| n < 30)
                })
                .count() as i64;
        assert_eq!(counts, (2, 1, 2, 1, old_migrations));
        // A token for the kept user resolves with its role; a change in psql
        // (the search path of whoever makes it does not list `sessiond`) is
        // seen, through the moved triggers.
        let id: i64 =
            sqlx::query_scalar("SELECT id FROM sessiond.users WHERE email = 'kept@x.test'")
                .fetch_one(&mut c)
                .await
                .expect("reads");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": id.to_string(), "sid": "s-kept-0001", "iat": now, "exp": now + 600, "iss": "sessiond"}),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("signs");
        let r = app.session(&token).await;
        assert_eq!(
            (r.status, r.body["user"]["role"].as_str()),
            (200, Some("editor")),
            "{}",
            r.body
        );
        sqlx::query("UPDATE sessiond.users SET role = 'viewer' WHERE id = $1")
            .bind(id)
            .execute(&mut c)
            .await
            .expect("updates by hand");
        assert!(
            crate::helpers::wait_for_role(
                &app,
                &token,
                "viewer",
                std::time::Duration::from_secs(2)
            )
            .await,
            "a change by hand is seen"
        );
        app.stop().await;
        drop_postgres_database(&name).await;
    }
);

/// A token for app user `sub` under session epoch `sep`, as an app mints
/// it (token id `sid`).
fn app_token(sub: &str, sid: &str, sep: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": sub, "sid": sid, "iat": now, "exp": now + 600, "iss": "sessiond", "sep": sep}),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("signs")
}

/// The user's session epoch as sessiond keeps it for an app user.
async fn epoch(c: &mut sqlx::PgConnection, sub: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(
        "SELECT COALESCE(MAX(session_epoch), 0)::bigint FROM sessiond.source_users
          WHERE user_id = $1",
    )
    .bind(sub)
    .fetch_one(c)
    .await
    .expect("reads the epoch")
}

pg_test!(
    an_app_users_logged_out_tokens_are_capped_as_sessionds_own_are,
    {
        const MAX: usize = sessiond::store::MAX_REVOKED_TOKENS;
        let (url, name) = authjs_database().await;
        install(&url);
        let dir = tempfile::tempdir().expect("temp dir");
        let app = spawn_at(Backend::Postgres, url.clone(), Some(name), dir, |s| {
            s.source = SourceArgs {
                source_preset: Some(Preset::Authjs),
                ..Default::default()
            }
        })
        .await;
        let mut c = sqlx::PgConnection::connect(&url).await.expect("connects");
        let id: i32 = sqlx::query_scalar("SELECT id FROM public.users WHERE email = 'a@app.test'")
            .fetch_one(&mut c)
            .await
            .expect("reads");
        let sub = id.to_string();
        let mut logged_out = Vec::new();
        for i in 0..(2 * MAX + 10) {
            let token = app_token(&sub, &format!("cap-{i:04}"), epoch(&mut c, &sub).await);
            let r = app
                .request("POST", "/api/auth/logout", Some(&token), None)
                .await;
            assert_eq!(r.status, 204, "logout {i}: {}", r.text);
            logged_out.push(token);
            let kept: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM sessiond.source_revoked_tokens WHERE user_id = $1",
            )
            .bind(&sub)
            .fetch_one(&mut c)
            .await
            .expect("counts");
            assert!(
                kept <= MAX as i64,
                "{kept} revocations kept after {} logouts",
                i + 1
            );
        }
        assert!(
            epoch(&mut c, &sub).await >= 2,
            "a full list starts a new epoch"
        );
        // Every token logged out stays revoked; a new one resolves.
        for token in &logged_out {
            app.session(token)
                .await
                .assert_error(401, "session_revoked");
        }
        let fresh = app_token(&sub, "cap-fresh", epoch(&mut c, &sub).await);
        let r = app.session(&fresh).await;
        assert_eq!(r.status, 200, "{}", r.body);
        drop(c);
        app.stop().await;
    }
);
