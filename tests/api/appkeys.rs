//! App credentials, with the real `sessiond appkey` commands against the
//! database a running app uses: a forged, malformed or revoked key is 401
//! and audited; a mint-only key cannot call an admin route (403, audited)
//! while an admin key can; minting refuses unknown and deactivated users;
//! a rotation under a continuous minting load fails no request. The
//! revocation on every node of a cluster is in `cluster::appkeys`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use sessiond::store::AuditEntry;

use crate::helpers::*;

const BIN: &str = env!("CARGO_BIN_EXE_sessiond");

/// Runs `sessiond appkey ARGS` against `db_url`: its stdout, trimmed.
pub(crate) async fn appkey_cli(db_url: &str, args: &[&str]) -> String {
    let (db_url, args): (String, Vec<String>) =
        (db_url.into(), args.iter().map(|a| a.to_string()).collect());
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new(BIN)
            .arg("appkey")
            .args(&args)
            .env("DATABASE_URL", &db_url)
            .env("RUST_LOG", "warn")
            .output()
            .expect("runs sessiond appkey");
        assert!(
            out.status.success(),
            "sessiond appkey {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    })
    .await
    .expect("the command's thread")
}

/// A key's id: the part between the prefix and the secret.
pub(crate) fn key_id(key: &str) -> &str {
    key.split('_').nth(1).expect("sdk_<id>_<secret>")
}

fn mint_body(user_id: i64) -> String {
    json!({ "user_id": user_id }).to_string()
}

async fn mint(app: &TestApp, key: &str, user_id: i64) -> Reply {
    app.request(
        "POST",
        "/api/sessions",
        Some(key),
        Some(&mint_body(user_id)),
    )
    .await
}

fn with(trail: &[AuditEntry], action: &str, detail: &str) -> usize {
    trail
        .iter()
        .filter(|e| e.action == action && e.detail.as_deref() == Some(detail))
        .count()
}

async fn keys_are_checked_scoped_and_audited(b: Backend) {
    let app = spawn_on(b, |_| {}).await;
    let minter = appkey_cli(&app.db_url, &["create", "--name", "web", "--scope", "mint"]).await;
    let admin = appkey_cli(
        &app.db_url,
        &["create", "--name", "ops", "--scope", "admin"],
    )
    .await;
    assert!(minter.starts_with("sdk_") && minter.len() > 50, "{minter}");
    let listed = appkey_cli(&app.db_url, &["list"]).await;
    assert!(
        listed.contains(key_id(&minter)) && listed.contains("web"),
        "{listed}"
    );
    assert!(!listed.contains(&minter), "list shows no secret: {listed}");

    let (ann, _) = app.user_with_token("ann@example.test", "editor").await;

    // Minted: the user's token, as a login answers it, that resolves.
    let r = mint(&app, &minter, ann).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["token_type"], "Bearer");
    assert_eq!(r.body["user"]["id"], ann);
    let token = r.body["token"].as_str().expect("a token");
    let s = app.session(token).await;
    assert_eq!(s.status, 200, "{}", s.text);
    assert_eq!(s.body["user"]["role"], "editor");

    // Forged: the right id with another secret, an unknown id, a
    // malformed key, no key: all 401, none minted.
    let forged = format!("sdk_{}_{}", key_id(&minter), "A".repeat(43));
    let unknown = format!("sdk_{}_{}", "Z".repeat(16), "A".repeat(43));
    for key in [
        forged.as_str(),
        unknown.as_str(),
        "sdk_nothing",
        &format!("{minter}x"),
    ] {
        mint(&app, key, ann)
            .await
            .assert_error(401, "invalid_token");
    }
    app.request("POST", "/api/sessions", None, Some(&mint_body(ann)))
        .await
        .assert_error(401, "invalid_token");
    // A user's token is not an app key.
    app.request(
        "POST",
        "/api/sessions",
        Some(&app.admin_token),
        Some(&mint_body(ann)),
    )
    .await
    .assert_error(401, "invalid_token");

    // Scopes: a mint-only key cannot call an admin route; an admin key
    // can (and cannot mint).
    let path = format!("/api/admin/users/{ann}");
    app.request("GET", &path, Some(&minter), None)
        .await
        .assert_error(403, "forbidden");
    let role = json!({ "role": "viewer" }).to_string();
    app.request("PUT", &format!("{path}/role"), Some(&minter), Some(&role))
        .await
        .assert_error(403, "forbidden");
    let got = app.request("GET", &path, Some(&admin), None).await;
    assert_eq!(got.status, 200, "{}", got.text);
    let set = app
        .request("PUT", &format!("{path}/role"), Some(&admin), Some(&role))
        .await;
    assert_eq!(set.status, 200, "{}", set.text);
    assert_eq!(app.session(token).await.body["user"]["role"], "viewer");
    mint(&app, &admin, ann).await.assert_error(403, "forbidden");
    app.request("GET", &path, Some(&forged), None)
        .await
        .assert_error(401, "invalid_token");

    // Unknown and deactivated users are refused.
    mint(&app, &minter, 9_999)
        .await
        .assert_error(404, "not_found");
    let off = app
        .request("POST", &format!("{path}/deactivate"), Some(&admin), None)
        .await;
    assert_eq!(off.status, 200, "{}", off.text);
    mint(&app, &minter, ann)
        .await
        .assert_error(403, "forbidden");
    mint(&app, &minter, 1).await;

    // Revoked: refused from the next request.
    appkey_cli(&app.db_url, &["revoke", key_id(&minter)]).await;
    mint(&app, &minter, 1)
        .await
        .assert_error(401, "invalid_token");

    let minter_actor = format!("appkey:{}", key_id(&minter));
    let admin_actor = format!("appkey:{}", key_id(&admin));
    let trail = audit_when(&app, |t| {
        with(t, "appkey.invalid", "revoked key") == 1
            && t.iter().filter(|e| e.action == "appkey.mint").count() == 2
    })
    .await;
    assert_eq!(
        with(&trail, "appkey.invalid", "wrong secret"),
        3,
        "{trail:#?}"
    );
    assert_eq!(
        with(&trail, "appkey.invalid", "unknown key"),
        1,
        "{trail:#?}"
    );
    assert_eq!(with(&trail, "appkey.invalid", "not an app key's shape"), 1);
    let forbidden: Vec<_> = trail
        .iter()
        .filter(|e| e.action == "admin.forbidden")
        .collect();
    assert_eq!(forbidden.len(), 2, "{trail:#?}");
    assert!(forbidden
        .iter()
        .all(|e| e.actor_email.as_deref() == Some(minter_actor.as_str()) && e.actor_id.is_none()));
    let role_change = trail
        .iter()
        .find(|e| e.action == "user.role")
        .expect("the role change is audited");
    assert_eq!(
        role_change.actor_email.as_deref(),
        Some(admin_actor.as_str())
    );
    assert_eq!(role_change.actor_id, None);
    assert_eq!(with(&trail, "appkey.admin", &format!("GET {path}")), 1);
    let minted = trail
        .iter()
        .find(|e| e.action == "appkey.mint")
        .expect("a mint");
    assert_eq!(minted.target_id, Some(ann.into()));
    assert_eq!(minted.actor_email.as_deref(), Some(minter_actor.as_str()));
    assert!(trail.iter().all(
        |e| e.client.as_deref() == Some("127.0.0.1") || e.actor_email.as_deref() == Some("cli")
    ));
    for e in &trail {
        let text = format!("{e:?}");
        assert!(
            !text.contains(&minter) && !text.contains(&admin),
            "a key in the trail: {e:?}"
        );
    }
    app.stop().await;
}

/// Mints continuously from `workers` tasks with the key in `current` until
/// `stop`; returns (succeeded, failed).
async fn minting_load(
    app: &TestApp,
    user: i64,
    current: Arc<Mutex<String>>,
    during: impl std::future::Future<Output = ()>,
) -> (u64, u64) {
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (ok, failed, stop, current) = (
            Arc::clone(&ok),
            Arc::clone(&failed),
            Arc::clone(&stop),
            Arc::clone(&current),
        );
        let addr = app.addr.to_string();
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let key = current.lock().expect("key").clone();
                let (status, _) = call(
                    &addr,
                    "POST",
                    "/api/sessions",
                    Some(&key),
                    Some(&mint_body(user)),
                )
                .await;
                let counter = if status == 200 { &ok } else { &failed };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    during.await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.expect("a minting task");
    }
    (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed))
}

/// A rotation while an app mints continuously: the app switches to the
/// new secret some time after the rotation, and no request fails, because
/// the previous secret is accepted for the grace period. The same with
/// `--grace 0` does fail requests (what the grace period is for), and the
/// old secret is refused once its grace has run out.
async fn rotation_under_load_fails_no_request(b: Backend) {
    let app = spawn_on(b, |_| {}).await;
    let key = appkey_cli(&app.db_url, &["create", "--name", "web", "--scope", "mint"]).await;
    let id = key_id(&key).to_string();
    let (user, _) = app.user_with_token("bo@example.test", "user").await;

    let current = Arc::new(Mutex::new(key.clone()));
    let rotate = |grace: &'static str| {
        let (db, id, current) = (app.db_url.clone(), id.clone(), Arc::clone(&current));
        async move {
            tokio::time::sleep(Duration::from_millis(400)).await;
            let new = appkey_cli(&db, &["rotate", &id, "--grace", grace]).await;
            // The app's servers pick the new key up a while later.
            tokio::time::sleep(Duration::from_millis(400)).await;
            *current.lock().expect("key") = new.clone();
            tokio::time::sleep(Duration::from_millis(400)).await;
            new
        }
    };
    let (new, grace_done) = {
        let new = Arc::new(Mutex::new(String::new()));
        let slot = Arc::clone(&new);
        let r = rotate("1h");
        let counts = minting_load(&app, user, Arc::clone(&current), async move {
            *slot.lock().expect("slot") = r.await;
        })
        .await;
        let new = new.lock().expect("slot").clone();
        (new, counts)
    };
    let (ok, failed) = grace_done;
    assert_eq!(
        failed, 0,
        "requests failed during the rotation ({ok} succeeded)"
    );
    assert!(ok > 50, "the load ran: {ok} requests");
    assert_ne!(new, key);
    // Within the grace period both secrets mint.
    assert_eq!(mint(&app, &key, user).await.status, 200);
    assert_eq!(mint(&app, &new, user).await.status, 200);

    // Without a grace period the same switch fails requests.
    let (ok, failed) = minting_load(&app, user, Arc::clone(&current), async {
        rotate("0").await;
    })
    .await;
    assert!(
        failed > 0,
        "a rotation with no grace should fail requests ({ok} ok)"
    );
    // The secret rotated out with no grace is refused at once.
    mint(&app, &new, user)
        .await
        .assert_error(401, "invalid_token");
    app.stop().await;
}

crate::on_both_stores!(
    keys_are_checked_scoped_and_audited,
    rotation_under_load_fails_no_request
);
