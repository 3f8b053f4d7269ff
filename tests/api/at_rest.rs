//! What the database holds at rest: signing keys encrypted with a key
//! held outside it (`--key-encryption-key-file`, `sessiond keys rewrap`),
//! an old database's clear keys encrypted on the first start with no
//! token lost, and a new SQLite file (and its -wal/-shm) readable by its
//! owner only.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use sessiond::app::Application;
use sessiond::config::Settings;

use crate::helpers::*;
use crate::on_both_stores;

const BIN: &str = env!("CARGO_BIN_EXE_sessiond");

/// Writes a key-encryption key file (32 random bytes, base64) in `dir`.
fn kek_file(dir: &std::path::Path, name: &str) -> String {
    use base64::Engine as _;
    let bytes: Vec<u8> = (0..32).map(|_| rand::random::<u8>()).collect();
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "{}\n",
            base64::engine::general_purpose::STANDARD.encode(bytes)
        ),
    )
    .expect("writes the key file");
    path.display().to_string()
}

/// The stored values of the signing keys, read as a person with psql or
/// sqlite3 would.
async fn stored_secrets(backend: Backend, db_url: &str) -> Vec<String> {
    use sqlx::{Connection, Row};
    let sql = "SELECT secret FROM signing_keys ORDER BY kid";
    let rows = match backend {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(db_url)
                .await
                .expect("opens");
            sqlx::query(sql)
                .fetch_all(&mut c)
                .await
                .expect("reads")
                .into_iter()
                .map(|r| r.get::<String, _>("secret"))
                .collect::<Vec<_>>()
        }
        Backend::Postgres => {
            let mut c = sessiond_testkit::postgres_db::connect_sessiond(db_url)
                .await
                .expect("connects");
            sqlx::query(sql)
                .fetch_all(&mut c)
                .await
                .expect("reads")
                .into_iter()
                .map(|r| r.get::<String, _>("secret"))
                .collect::<Vec<_>>()
        }
    };
    assert!(!rows.is_empty(), "no signing key stored");
    rows
}

/// `sessiond keys ARGS --database-url URL`: (success, stdout, stderr).
fn keys(db_url: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .arg("keys")
        .args(args)
        .args(["--database-url", db_url])
        .env_remove("DATABASE_URL")
        .env_remove("SESSIOND_KEY_ENCRYPTION_KEY_FILE")
        .env_remove("SESSIOND_PREVIOUS_KEY_ENCRYPTION_KEY_FILE")
        .output()
        .expect("runs the binary");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Why the application refuses to build on `db_url` with these keys.
async fn refused(db_url: &str, kek: Option<&str>) -> String {
    let settings = Settings {
        listen: "127.0.0.1:0".into(),
        database_url: db_url.to_string(),
        admin_password: Some(ADMIN_PASSWORD.into()),
        key_encryption: sessiond::config::KekArgs {
            key_encryption_key_file: kek.map(str::to_owned),
            previous_key_encryption_key_file: vec![],
        },
        ..Settings::default()
    };
    match Application::build(settings).await {
        Ok(_) => panic!("the application started with the wrong key-encryption key"),
        Err(e) => format!("{e:#}"),
    }
}

async fn serve_with(backend: Backend, db_url: &str, kek: Option<String>) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    spawn_at(backend, db_url.to_string(), None, dir, |s| {
        s.jwt_secret = None;
        s.key_encryption.key_encryption_key_file = kek;
    })
    .await
}

async fn signing_keys_are_encrypted_at_rest(backend: Backend) {
    let db = SharedDb::new(backend).await;
    let files = tempfile::tempdir().expect("temp dir");
    // A database as a release without key encryption left it: its key in
    // clear, a token signed with it.
    let old = serve_with(backend, &db.url, None).await;
    let (_, token) = old.user_with_token("kept@example.test", "user").await;
    old.stop().await;
    let clear = stored_secrets(backend, &db.url).await;
    assert!(clear.iter().all(|s| !s.starts_with("sealed:")), "{clear:?}");

    // First start with a key-encryption key: the clear key is encrypted,
    // the token signed before still resolves, new logins work.
    let k1 = kek_file(files.path(), "k1");
    let app = serve_with(backend, &db.url, Some(k1.clone())).await;
    assert_eq!(app.session(&token).await.status, 200);
    let stored = stored_secrets(backend, &db.url).await;
    for s in &stored {
        assert!(s.starts_with("sealed:v1:"), "{s}");
        for c in &clear {
            assert!(!s.contains(c.as_str()), "the key is in clear in {s}");
        }
    }
    let fresh = app.login_ok("kept@example.test", "password-123").await;
    app.stop().await;

    // A wrong key, or none, refuses to start and says why.
    let wrong = kek_file(files.path(), "wrong");
    let e = refused(&db.url, Some(&wrong)).await;
    assert!(e.contains("not with the configured one"), "{e}");
    let e = refused(&db.url, None).await;
    assert!(
        e.contains("encrypted at rest") && e.contains("--key-encryption-key-file"),
        "{e}"
    );
    // Neither wrote anything.
    assert_eq!(stored_secrets(backend, &db.url).await, stored);

    // `keys rotate` without the key refuses; with it, the new key is
    // stored encrypted.
    let (ok, _, err) = keys(&db.url, &["rotate"]);
    assert!(!ok && err.contains("--key-encryption-key-file"), "{err}");
    let (ok, out, err) = keys(&db.url, &["rotate", "--key-encryption-key-file", &k1]);
    assert!(ok, "{out}{err}");
    let rotated = stored_secrets(backend, &db.url).await;
    assert_eq!(rotated.len(), 2);
    assert!(
        rotated.iter().all(|s| s.starts_with("sealed:v1:")),
        "{rotated:?}"
    );

    // Rewrapped with a new key-encryption key: the old one no longer
    // opens anything, tokens signed before still resolve.
    let k2 = kek_file(files.path(), "k2");
    let (ok, out, err) = keys(
        &db.url,
        &[
            "rewrap",
            "--key-encryption-key-file",
            &k2,
            "--previous-key-encryption-key-file",
            &k1,
        ],
    );
    assert!(ok && out.contains("2 signing key(s)"), "{out}{err}");
    let (ok, list, _) = keys(&db.url, &["list"]);
    assert!(ok && list.matches("encrypted (").count() == 2, "{list}");
    let rewrapped = stored_secrets(backend, &db.url).await;
    let id = |s: &str| s.split(':').nth(2).map(str::to_owned);
    assert_ne!(id(&rewrapped[0]), id(&rotated[0]));
    let e = refused(&db.url, Some(&k1)).await;
    assert!(e.contains("not with the configured one"), "{e}");
    let app = serve_with(backend, &db.url, Some(k2)).await;
    assert_eq!(app.session(&token).await.status, 200);
    assert_eq!(app.session(&fresh).await.status, 200);
    app.stop().await;
    if let Some(name) = &db.pg_name {
        drop_postgres_database(name).await;
    }
}

on_both_stores!(signing_keys_are_encrypted_at_rest);

/// A key-encryption key file that holds no key is refused with a clear
/// message, before the database is touched.
#[tokio::test]
async fn a_malformed_key_encryption_key_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bad = dir.path().join("bad");
    std::fs::write(&bad, "changeme\n").expect("writes");
    let db_url = format!("sqlite://{}", dir.path().join("k.db").display());
    let e = refused(&db_url, Some(&bad.display().to_string())).await;
    assert!(e.contains("openssl rand -base64 32"), "{e}");
    let e = refused(&db_url, Some("/nonexistent/kek")).await;
    assert!(e.contains("cannot read the key-encryption key file"), "{e}");
}

/// A new SQLite database, its write-ahead log and its shared-memory file
/// are created 0600 whatever the umask lets through.
#[tokio::test]
async fn a_new_sqlite_file_is_readable_by_its_owner_only() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("private.db");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let addr = format!("127.0.0.1:{port}");
    // A permissive umask, as many services run with.
    let mut child = Command::new("sh")
        .args([
            "-c",
            "umask 022 && exec \"$0\" serve --listen \"$1\"",
            BIN,
            &addr,
        ])
        .env("DATABASE_URL", format!("sqlite://{}", file.display()))
        .env("SESSIOND_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("RUST_LOG", "warn")
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts");
    let up = sessiond_testkit::http::wait_accepting(&addr, Duration::from_secs(20)).await;
    let modes: Vec<(String, u32)> = ["", "-wal", "-shm"]
        .iter()
        .map(|suffix| {
            let path = format!("{}{suffix}", file.display());
            let mode = std::fs::metadata(&path)
                .map(|m| m.permissions().mode() & 0o777)
                .unwrap_or(0o7777);
            (path, mode)
        })
        .collect();
    let _ = child.kill();
    let _ = child.wait();
    assert!(up, "the server did not start");
    for (path, mode) in modes {
        assert_eq!(mode, 0o600, "{path} is {mode:o}");
    }
}
