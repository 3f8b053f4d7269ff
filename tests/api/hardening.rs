//! Brute force held off, login timing that does not reveal accounts, and
//! the audit trail of admin actions.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::*;

async fn brute_force_is_held_off_per_account(b: Backend) {
    let app = spawn_on(b, |_| {}).await;
    app.create_user("target@example.test", "the-right-password", "user")
        .await;
    app.create_user("bystander@example.test", "bystander-password", "user")
        .await;
    let mut limited_at = None;
    for i in 0..20 {
        let r = app
            .login("target@example.test", &format!("guess-{i}"))
            .await;
        if r.status == 429 {
            r.assert_error(429, "rate_limited");
            let retry: u64 = r
                .header("retry-after")
                .and_then(|v| v.parse().ok())
                .expect("a Retry-After in seconds");
            assert!((1..=15 * 60).contains(&retry), "Retry-After {retry}");
            limited_at.get_or_insert(i);
        } else {
            assert!(
                limited_at.is_none(),
                "429 must last: attempt {i} got {}",
                r.status
            );
            r.assert_error(401, "invalid_credentials");
        }
    }
    assert_eq!(limited_at, Some(10), "the 11th failure in a row is refused");
    // Even the right password is refused while the account is held off ...
    app.login("target@example.test", "the-right-password")
        .await
        .assert_error(429, "rate_limited");
    // ... and other accounts are unaffected.
    assert_eq!(
        app.login("bystander@example.test", "bystander-password")
            .await
            .status,
        200
    );
    app.stop().await;
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::test]
async fn a_missing_account_takes_as_long_as_a_wrong_password() {
    let app = spawn_on(Backend::Sqlite, |s| {
        s.login_limits.per_account = 10_000;
        s.login_limits.per_address = 10_000;
    })
    .await;
    app.create_user("exists@example.test", "the-right-password", "user")
        .await;
    // Interleaved, alternating which goes first, so load on the machine
    // hits both alike. The machine is shared and noisy: up to three rounds,
    // one within the bound suffices (a real difference fails all three).
    let mut ratios = Vec::new();
    for round in 0..3 {
        let (mut missing, mut wrong) = (Vec::new(), Vec::new());
        for i in 0..30 {
            let ghost = format!("ghost{round}-{i}@example.test");
            for first in [i % 2 == 0, i % 2 != 0] {
                let t = Instant::now();
                if first {
                    let r = app.login(&ghost, "some-password").await;
                    missing.push(t.elapsed());
                    r.assert_error(401, "invalid_credentials");
                } else {
                    let r = app.login("exists@example.test", "a-wrong-password").await;
                    wrong.push(t.elapsed());
                    r.assert_error(401, "invalid_credentials");
                }
            }
        }
        let (m, w) = (median(missing), median(wrong));
        let ratio = m.as_secs_f64() / w.as_secs_f64();
        eprintln!("login medians: missing account {m:?}, wrong password {w:?}, ratio {ratio:.3}");
        ratios.push(ratio);
        if (0.8..=1.2).contains(&ratio) {
            break;
        }
    }
    assert!(
        ratios.iter().any(|r| (0.8..=1.2).contains(r)),
        "missing ÷ wrong-password login time {ratios:?}: timing tells accounts apart"
    );
    app.stop().await;
}

async fn admin_actions_are_audited(b: Backend) {
    let app = spawn_on(b, |_| {}).await;
    let id = app
        .create_user("aud@example.test", "audit-password", "user")
        .await;
    assert_eq!(app.set_role(id, "editor").await.status, 200);
    app.admin("POST", &format!("/api/admin/users/{id}/deactivate"), None)
        .await;
    app.admin(
        "POST",
        &format!("/api/admin/users/{id}/revoke-sessions"),
        None,
    )
    .await;
    app.admin("DELETE", &format!("/api/admin/users/{id}"), None)
        .await;
    let trail = app.ctx.db.audit_since(0).await.expect("reads the trail");
    // The admin actions (logins are audited too: tests/api/audit.rs).
    let trail: Vec<_> = trail
        .into_iter()
        .filter(|e| e.action.starts_with("user."))
        .collect();
    let actions: Vec<&str> = trail.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        vec![
            "user.create",
            "user.role",
            "user.deactivate",
            "user.revoke_sessions",
            "user.delete"
        ]
    );
    for e in &trail {
        assert_eq!(e.actor_email.as_deref(), Some(ADMIN_EMAIL));
        assert_eq!(e.target_id, Some(id.into()));
        assert_eq!(e.client.as_deref(), Some("127.0.0.1"));
        assert!(e.at > 0);
    }
    assert_eq!(trail[1].detail.as_deref(), Some("role: user -> editor"));
    let text = json!(trail).to_string();
    assert!(!text.contains("audit-password"), "no password in the trail");
    // Entries older than the retention are pruned.
    let pruned = app
        .ctx
        .db
        .prune_audit(app.ctx.clock.now_ms() + 1)
        .await
        .expect("prunes");
    assert!(pruned >= 5, "{pruned}");
    let left = app.ctx.db.audit_since(0).await.expect("reads the trail");
    assert!(left.is_empty(), "{left:?}");
    app.stop().await;
}

crate::on_both_stores!(
    brute_force_is_held_off_per_account,
    admin_actions_are_audited
);

/// Each argon2id check holds ~19 MiB: a flood of concurrent logins must
/// queue for the hashing permits, not multiply the server's memory.
#[tokio::test]
async fn a_login_flood_does_not_multiply_memory() {
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().expect("temp dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let addr = format!("127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sessiond"))
        .args(["serve", "--listen", &addr])
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("f.db").display()),
        )
        .env("SESSIOND_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("SESSIOND_LOGIN_MAX_FAILURES_PER_ADDRESS", "100000")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts");
    let rss = |pid: u32| -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
            })
            .unwrap_or(0)
    };
    assert!(
        sessiond_testkit::http::wait_accepting(&addr, Duration::from_secs(10)).await,
        "the server did not start"
    );
    let before = rss(child.id());
    let mut peak = before;
    for round in 0..3 {
        let mut tasks = Vec::new();
        for i in 0..64 {
            let addr = addr.clone();
            tasks.push(tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let body = json!({"email": format!("flood{round}-{i}@example.test"), "password": "x-password"}).to_string();
                let req = format!(
                    "POST /api/auth/login HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                if let Ok(mut s) = tokio::net::TcpStream::connect(&addr).await {
                    let _ = s.write_all(req.as_bytes()).await;
                    let mut buf = Vec::new();
                    let _ = s.read_to_end(&mut buf).await;
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
        peak = peak.max(rss(child.id()));
    }
    let _ = child.kill();
    let _ = child.wait();
    let grown_mib = peak.saturating_sub(before) / 1024;
    eprintln!("RSS grew {grown_mib} MiB over 192 concurrent logins");
    // Unbounded, 64 concurrent checks hold 64 × 19 MiB ≈ 1.2 GiB.
    assert!(grown_mib < 400, "RSS grew {grown_mib} MiB");
}

/// A forced refresh reads the database whatever the cache holds, so one
/// user's are limited (5 a second): past that, 429 with `Retry-After`;
/// plain refreshes are not limited.
#[tokio::test]
async fn forced_refreshes_are_rate_limited() {
    let app = spawn_app().await;
    let (_, token) = app.user_with_token("force@example.test", "user").await;
    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(app.refresh(&token, true).await.status);
    }
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert!(limited >= 5, "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
    let r = app.refresh(&token, true).await;
    if r.status == 429 {
        r.assert_error(429, "rate_limited");
        assert!(r.header("retry-after").is_some());
    }
    for _ in 0..10 {
        assert_eq!(app.refresh(&token, false).await.status, 200);
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(app.refresh(&token, true).await.status, 200);
}
