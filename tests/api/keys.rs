//! Signing keys that rotate: `sessiond keys list|rotate|retire`
//! against the database two serving nodes share; rotation under load loses
//! no resolve; retired and forged key ids are `invalid_token`; and the
//! claims checks (`iat`, lifetime, audience) seen from outside.

use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::helpers::*;
use crate::on_both_stores;

const BIN: &str = env!("CARGO_BIN_EXE_sessiond");

/// Runs `sessiond keys ARGS --database-url URL`: (success, stdout, stderr).
fn keys(db_url: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .arg("keys")
        .args(args)
        .args(["--database-url", db_url])
        .env_remove("DATABASE_URL")
        .env_remove("SESSIOND_TOKEN_TTL")
        .output()
        .expect("runs the binary");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The `kid` a token's header names.
fn kid(token: &str) -> Option<String> {
    jsonwebtoken::decode_header(token).ok()?.kid
}

/// A token with these claims, signed with `secret` and naming `kid`.
fn forge(secret: &[u8], kid: Option<&str>, claims: Value) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(secret)).expect("signs")
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Claims of a token for user `sub` as sessiond issues them.
fn claims(sub: i64, iat: i64, exp: i64) -> Value {
    json!({"sub": sub.to_string(), "sid": "forged-sid", "iat": iat, "exp": exp, "iss": "sessiond", "sep": 0})
}

/// Two nodes on one database, with database keys (no configured secret).
async fn two_nodes(backend: Backend) -> (TestApp, TestApp) {
    let one = spawn_on(backend, |s| s.jwt_secret = None).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let two = spawn_at(backend, one.db_url.clone(), None, dir, |s| {
        s.jwt_secret = None
    })
    .await;
    (one, two)
}

/// Logs in on `app` until the token names a key other than `old`.
async fn login_until_new_kid(app: &TestApp, email: &str, old: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let token = app.login_ok(email, "a-password-of-length").await;
        if kid(&token).as_deref() != Some(old) {
            return token;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the rotation did not reach the node"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn rotation_under_load_fails_no_resolve(backend: Backend) {
    let (one, two) = two_nodes(backend).await;
    one.create_user("load@example.com", "a-password-of-length", "user")
        .await;
    let nodes = Arc::new([one, two]);
    let first = nodes[0]
        .login_ok("load@example.com", "a-password-of-length")
        .await;
    let old_kid = kid(&first).expect("a token names its key");

    // Clients resolve continuously on both nodes, with the first token and
    // with every token logged in since (on either node, resolved on the
    // other).
    let tokens = Arc::new(std::sync::RwLock::new(vec![first]));
    let (resolved, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for c in 0..8usize {
        let (nodes, tokens, resolved, failed, stop) = (
            Arc::clone(&nodes),
            Arc::clone(&tokens),
            Arc::clone(&resolved),
            Arc::clone(&failed),
            Arc::clone(&stop),
        );
        clients.push(tokio::spawn(async move {
            let mut i = c;
            while !stop.load(Ordering::Relaxed) {
                let token = {
                    let t = tokens.read().expect("lock");
                    t[i % t.len()].clone()
                };
                let r = nodes[i % 2].session(&token).await;
                if r.status == 200 {
                    resolved.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                    eprintln!("failed resolve: {} {}", r.status, r.text);
                }
                i += 1;
            }
        }));
    }
    let login = {
        let (nodes, tokens, stop) = (Arc::clone(&nodes), Arc::clone(&tokens), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let t = nodes[i % 2]
                    .login_ok("load@example.com", "a-password-of-length")
                    .await;
                tokens.write().expect("lock").push(t);
                i += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    tokio::time::sleep(Duration::from_millis(500)).await;
    let db_url = nodes[0].db_url.clone();
    let (ok, out, err) = tokio::task::spawn_blocking(move || keys(&db_url, &["rotate"]))
        .await
        .expect("runs");
    assert!(ok, "keys rotate: {out} {err}");
    let new_kid = out
        .split_whitespace()
        .next()
        .expect("prints the new key")
        .to_string();
    assert_ne!(new_kid, old_kid);

    // New logins on either node get the new key within the reload bound.
    for node in nodes.iter() {
        let t = login_until_new_kid(node, "load@example.com", &old_kid).await;
        assert_eq!(kid(&t).as_deref(), Some(new_kid.as_str()));
        tokens.write().expect("lock").push(t);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.expect("client");
    }
    login.await.expect("logins");
    let (resolved, failed) = (
        resolved.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
    );
    eprintln!("rotation under load: {resolved} resolves, {failed} failed");
    assert!(resolved > 100, "{resolved} resolves");
    assert_eq!(failed, 0);

    let db_url = nodes[0].db_url.clone();
    let (ok, out, _) = keys(&db_url, &["list"]);
    assert!(ok);
    assert!(
        out.contains(&format!("{new_kid} ")) && out.contains("active"),
        "{out}"
    );
    assert!(
        out.contains(&old_kid) && out.contains("verifying until"),
        "{out}"
    );
    let Ok([one, two]) = Arc::try_unwrap(nodes) else {
        panic!("nodes still shared")
    };
    two.stop().await;
    one.stop().await;
}

async fn retired_and_forged_keys_are_invalid_tokens(backend: Backend) {
    let app = spawn_on(backend, |s| s.jwt_secret = None).await;
    let id = app
        .create_user("keys@example.com", "a-password-of-length", "user")
        .await;
    let old = app
        .login_ok("keys@example.com", "a-password-of-length")
        .await;
    let old_kid = kid(&old).expect("names its key");

    // Nothing to retire yet, and the active key cannot be retired.
    let (ok, out, _) = keys(&app.db_url, &["retire"]);
    assert!(ok && out.contains("no key to retire"), "{out}");
    let (ok, _, err) = keys(&app.db_url, &["retire", &old_kid]);
    assert!(!ok && err.contains("active signing key"), "{err}");
    let (ok, _, err) = keys(&app.db_url, &["retire", "no-such-key"]);
    assert!(!ok && err.contains("no signing key"), "{err}");

    let (ok, out, err) = keys(&app.db_url, &["rotate"]);
    assert!(ok, "{out} {err}");
    let new = login_until_new_kid(&app, "keys@example.com", &old_kid).await;
    assert_eq!(
        app.session(&old).await.status,
        200,
        "the old key verifies on"
    );

    // `list` shows ids and states, never a secret.
    let (ok, list, _) = keys(&app.db_url, &["list"]);
    assert!(ok);
    assert_eq!(list.lines().count(), 3, "{list}");
    let secrets = stored_secrets(backend, &app.db_url).await;
    assert_eq!(secrets.len(), 2);
    for s in &secrets {
        assert!(!list.contains(s.as_str()), "a secret in the listing");
    }

    // A forged key id (unknown), and a known one on a token signed with
    // another secret; and a token naming no key.
    let now = now_secs();
    let new_kid = kid(&new).expect("names its key");
    for forged in [
        forge(
            b"a-secret-nobody-here-knows-0123456789",
            Some("0000000000000000beef"),
            claims(id, now, now + 60),
        ),
        forge(
            b"a-secret-nobody-here-knows-0123456789",
            Some(&new_kid),
            claims(id, now, now + 60),
        ),
        forge(
            b"a-secret-nobody-here-knows-0123456789",
            None,
            claims(id, now, now + 60),
        ),
        forge(
            b"a-secret-nobody-here-knows-0123456789",
            Some(&"x".repeat(500)),
            claims(id, now, now + 60),
        ),
    ] {
        app.session(&forged)
            .await
            .assert_error(401, "invalid_token");
    }

    // Retired by name: the old key's tokens stop resolving (within the
    // reload bound); the new key's go on.
    let (ok, out, err) = keys(&app.db_url, &["retire", &old_kid]);
    assert!(ok, "{out} {err}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let r = app.session(&old).await;
        if r.status == 401 {
            r.assert_error(401, "invalid_token");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the retired key still verifies"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(app.session(&new).await.status, 200);
    let (_, list, _) = keys(&app.db_url, &["list"]);
    assert!(!list.contains(&old_kid), "{list}");

    // A key rotated out longer ago than the token lifetime (and the
    // leeway on `iat`) is retired by `keys retire` without a name.
    let (ok, _, _) = keys(&app.db_url, &["rotate"]);
    assert!(ok);
    let (ok, out, _) = keys(&app.db_url, &["retire"]);
    assert!(ok && out.contains("no key to retire"), "{out}");
    app.outside_sql(&format!(
        "UPDATE signing_keys SET rotated_at = rotated_at - 2678400000 WHERE kid = '{new_kid}'"
    ))
    .await;
    let (ok, out, _) = keys(&app.db_url, &["retire"]);
    assert!(ok && out.contains(&format!("retired {new_kid}")), "{out}");
    let (_, list, _) = keys(&app.db_url, &["list"]);
    assert_eq!(list.lines().count(), 2, "{list}");
    app.stop().await;
}

/// The secrets the database holds, read as a person with psql would.
async fn stored_secrets(backend: Backend, db_url: &str) -> Vec<String> {
    use sqlx::{Connection, Row};
    let sql = "SELECT secret FROM signing_keys";
    match backend {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(db_url)
                .await
                .expect("opens");
            sqlx::query(sql)
                .fetch_all(&mut c)
                .await
                .expect("reads")
                .iter()
                .map(|r| r.get::<String, _>("secret"))
                .collect()
        }
        Backend::Postgres => {
            let mut c = sessiond_testkit::postgres_db::connect_sessiond(db_url)
                .await
                .expect("connects");
            sqlx::query(sql)
                .fetch_all(&mut c)
                .await
                .expect("reads")
                .iter()
                .map(|r| r.get::<String, _>("secret"))
                .collect()
        }
    }
}

on_both_stores!(
    rotation_under_load_fails_no_resolve,
    retired_and_forged_keys_are_invalid_tokens,
);

/// A token that names no key (issued before key ids) checks with the key
/// the old stored secret became.
#[tokio::test]
async fn a_token_without_a_key_id_checks_with_the_legacy_key() {
    let app = spawn_on(Backend::Sqlite, |s| s.jwt_secret = None).await;
    let id = app
        .create_user("old@example.com", "a-password-of-length", "user")
        .await;
    let secret = "the-secret-stored-before-key-ids-0123456789";
    let now = now_secs();
    let old = forge(secret.as_bytes(), None, claims(id, now, now + 60));
    app.session(&old).await.assert_error(401, "invalid_token");
    app.outside_sql(&format!(
        "INSERT INTO signing_keys (kid, secret, state, created_at, rotated_at)
         VALUES ('legacy', '{secret}', 'verifying', 0, {})",
        now * 1000
    ))
    .await;
    // Met without a key the node knows: one reload finds it.
    tokio::time::sleep(sessiond::auth::UNKNOWN_KID_GAP).await;
    assert_eq!(app.session(&old).await.status, 200);
    app.stop().await;
}

/// `iat` in the future, `exp − iat` beyond --token-ttl and a missing or
/// wrong `aud` are refused; issued tokens carry the configured audience.
#[tokio::test]
async fn claims_beyond_policy_are_invalid_tokens() {
    let app = spawn_on(Backend::Sqlite, |s| {
        s.token_ttl = Duration::from_secs(3600);
        s.jwt_audience = Some("orders-app".into());
    })
    .await;
    let id = app
        .create_user("claims@example.com", "a-password-of-length", "user")
        .await;
    let token = app
        .login_ok("claims@example.com", "a-password-of-length")
        .await;
    assert_eq!(app.session(&token).await.status, 200);
    let payload = token.split('.').nth(1).expect("payload");
    let payload: Value = serde_json::from_slice(&base64_decode(payload)).expect("json");
    assert_eq!(payload["aud"], "orders-app");
    assert_eq!(
        payload["exp"].as_i64().unwrap_or(0) - payload["iat"].as_i64().unwrap_or(0),
        3600
    );

    // Signed with the service's own key: only the claims are wrong.
    let kid = sessiond::auth::configured_kid(SECRET.as_bytes());
    let now = now_secs();
    let with_aud = |mut c: Value, aud: Option<&str>| {
        if let Some(a) = aud {
            c["aud"] = json!(a);
        }
        forge(SECRET.as_bytes(), Some(&kid), c)
    };
    let good = with_aud(claims(id, now, now + 3600), Some("orders-app"));
    assert_eq!(app.session(&good).await.status, 200, "the forging is right");
    for bad in [
        with_aud(claims(id, now + 600, now + 1200), Some("orders-app")),
        with_aud(claims(id, now, now + 365 * 86_400), Some("orders-app")),
        with_aud(claims(id, now, now + 3600), None),
        with_aud(claims(id, now, now + 3600), Some("billing-app")),
    ] {
        app.session(&bad).await.assert_error(401, "invalid_token");
    }
    app.stop().await;
}

fn base64_decode(s: &str) -> Vec<u8> {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.bytes() {
        let Some(v) = A.iter().position(|&a| a == c) else {
            continue;
        };
        bits = (bits << 6) | v as u32;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    out
}
