//! The audit trail beyond admin writes: logins (success, failure,
//! lock-out) with the email tried and the client address, 403s on admin
//! routes, the old value of a role or status change, the request id of
//! each entry; and a flood of refusals stays a bounded number of rows.

use std::net::{IpAddr, Ipv4Addr};

use serde_json::json;
use sessiond::store::AuditEntry;
use sessiond::usecases::REFUSALS_PER_ADDRESS;
use sessiond_testkit::http::Request;

use crate::helpers::*;

const HERE: &str = "127.0.0.1";

fn entries<'a>(trail: &'a [AuditEntry], action: &str) -> Vec<&'a AuditEntry> {
    trail.iter().filter(|e| e.action == action).collect()
}

fn is_request_id(id: Option<&str>) -> bool {
    id.is_some_and(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()))
}

async fn logins_refusals_and_old_values_are_audited(b: Backend) {
    let app = spawn_on(b, |s| s.login_limits.per_account = 2).await;
    let (id, token) = app.user_with_token("ed@example.test", "editor").await;

    // Two wrong passwords, then the account is locked (429).
    for _ in 0..2 {
        app.login("ED@example.test", "not-the-password")
            .await
            .assert_error(401, "invalid_credentials");
    }
    let locked = app.login("ed@example.test", "password-123").await;
    locked.assert_error(429, "rate_limited");
    app.login("ghost@example.test", "whatever-123").await;

    // A non-admin on an admin route.
    let denied = app
        .request(
            "PUT",
            "/api/admin/users/1/role",
            Some(&token),
            Some(r#"{"role":"user"}"#),
        )
        .await;
    denied.assert_error(403, "forbidden");

    // A role change and a deactivation name the value they replaced.
    let changed = app.set_role(id, "viewer").await;
    assert_eq!(changed.status, 200, "{}", changed.text);
    let deactivated = app
        .admin("POST", &format!("/api/admin/users/{id}/deactivate"), None)
        .await;
    assert_eq!(deactivated.status, 200, "{}", deactivated.text);

    let trail = audit_when(&app, |t| {
        entries(t, "login").len() == 2
            && entries(t, "login.failure").len() == 3
            && entries(t, "login.rate_limited").len() == 1
            && entries(t, "admin.forbidden").len() == 1
    })
    .await;
    for e in &trail {
        assert_eq!(e.client.as_deref(), Some(HERE), "{e:?}");
        assert!(is_request_id(e.request_id.as_deref()), "{e:?}");
    }
    let logins = entries(&trail, "login");
    assert_eq!(logins[1].actor_email.as_deref(), Some("ed@example.test"));
    assert_eq!(logins[1].actor_id, Some(id.into()));
    assert_eq!(logins[1].target_id, Some(id.into()));
    let failures = entries(&trail, "login.failure");
    let tried: Vec<_> = failures.iter().map(|e| e.actor_email.as_deref()).collect();
    assert!(tried.contains(&Some("ed@example.test")), "{tried:?}");
    assert!(tried.contains(&Some("ghost@example.test")), "{tried:?}");
    assert!(
        failures.iter().all(|e| e.actor_id.is_none()),
        "{failures:?}"
    );
    let locked_out = entries(&trail, "login.rate_limited")[0];
    assert_eq!(locked_out.actor_email.as_deref(), Some("ed@example.test"));
    assert!(
        locked_out
            .detail
            .as_deref()
            .is_some_and(|d| d.starts_with("retry after")),
        "{locked_out:?}"
    );
    assert_eq!(
        locked.header("x-request-id"),
        locked_out.request_id.as_deref(),
        "the entry names the request the client saw"
    );
    let forbidden = entries(&trail, "admin.forbidden")[0];
    assert_eq!(forbidden.actor_id, Some(id.into()));
    assert_eq!(forbidden.actor_email.as_deref(), Some("ed@example.test"));
    assert_eq!(
        forbidden.detail.as_deref(),
        Some("PUT /api/admin/users/1/role")
    );
    assert_eq!(
        entries(&trail, "user.role")[0].detail.as_deref(),
        Some("role: editor -> viewer")
    );
    assert_eq!(
        entries(&trail, "user.role")[0].request_id.as_deref(),
        changed.header("x-request-id")
    );
    assert_eq!(
        entries(&trail, "user.deactivate")[0].detail.as_deref(),
        Some("status: active -> deactivated")
    );
    let text = json!(trail).to_string();
    for secret in ["not-the-password", "password-123", "whatever-123", &token] {
        assert!(!text.contains(secret), "a secret in the trail: {secret}");
    }
    app.stop().await;
}

crate::on_both_stores!(logins_refusals_and_old_values_are_audited);

/// Behind a trusted proxy, entries name the forwarded client and the
/// proxy's request id.
#[tokio::test]
async fn entries_name_the_client_behind_a_trusted_proxy() {
    let app = spawn_on(Backend::Sqlite, |s| {
        s.trusted_proxies = "127.0.0.1/32".parse().expect("a valid list");
    })
    .await;
    let body = json!({"email": "admin@localhost", "password": "wrong-password"}).to_string();
    let login = Request {
        method: "POST",
        path: "/api/auth/login",
        token: None,
        body: Some(&body),
    };
    let proxy = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let headers = [
        ("x-forwarded-for", "203.0.113.9"),
        ("x-request-id", "edge-42"),
    ];
    let r = request_from(app.addr, proxy, login, &headers).await;
    r.assert_error(401, "invalid_credentials");
    assert_eq!(r.header("x-request-id"), Some("edge-42"));
    // The same headers from a peer that is not a proxy are not believed.
    let stranger = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let r = request_from(app.addr, stranger, login, &headers).await;
    r.assert_error(401, "invalid_credentials");
    let theirs = r.header("x-request-id").map(str::to_string);
    assert_ne!(theirs.as_deref(), Some("edge-42"));

    let trail = audit_when(&app, |t| entries(t, "login.failure").len() == 2).await;
    let failures = entries(&trail, "login.failure");
    let proxied = failures
        .iter()
        .find(|e| e.request_id.as_deref() == Some("edge-42"))
        .expect("the proxied failure");
    assert_eq!(proxied.client.as_deref(), Some("203.0.113.9"));
    assert_eq!(proxied.actor_email.as_deref(), Some("admin@localhost"));
    let direct = failures
        .iter()
        .find(|e| e.request_id == theirs)
        .expect("the stranger's failure");
    assert_eq!(direct.client.as_deref(), Some("127.0.0.2"));
    app.stop().await;
}

/// Refusals are cheap to cause: a flood of them from one address is
/// stored only up to the per-address budget.
#[tokio::test]
async fn a_flood_of_refusals_stores_a_bounded_number_of_rows() {
    let app = spawn_on(Backend::Sqlite, |s| s.login_limits.per_account = 1).await;
    let flood = 4 * REFUSALS_PER_ADDRESS as usize;
    for _ in 0..flood {
        app.login("target@example.test", "guess-guess").await;
    }
    let refused = |t: &[AuditEntry]| {
        t.iter()
            .filter(|e| e.action.starts_with("login.") && e.client.as_deref() == Some(HERE))
            .count()
    };
    audit_when(&app, |t| refused(t) == REFUSALS_PER_ADDRESS as usize).await;
    // Nothing more arrives later.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let trail = app.ctx.db.audit_since(0).await.expect("reads the trail");
    assert_eq!(refused(&trail), REFUSALS_PER_ADDRESS as usize, "{trail:#?}");
    // Admin actions are not part of that budget.
    let id = app
        .create_user("after@example.test", "password-123", "user")
        .await;
    audit_when(&app, |t| {
        t.iter()
            .any(|e| e.action == "user.create" && e.target_id == Some(id.into()))
    })
    .await;
    app.stop().await;
}

/// A flood of failed logins is a bounded number of log lines too: the
/// real binary, 4 × the per-address budget of failed logins, and the lines
/// it wrote for them are counted.
#[tokio::test]
async fn a_flood_of_failed_logins_is_a_bounded_number_of_log_lines() {
    use std::process::{Command, Stdio};
    use std::time::Duration;
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("sessiond.log");
    let log_file = std::fs::File::create(&log).expect("log file");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let addr = format!("127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sessiond"))
        .args(["serve", "--listen", &addr, "--login-max-failures", "1"])
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("a.db").display()),
        )
        .env("SESSIOND_ADMIN_PASSWORD", "flood-admin-password")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::from(log_file))
        .spawn()
        .expect("starts");
    assert!(
        sessiond_testkit::http::wait_accepting(&addr, Duration::from_secs(10)).await,
        "the server did not start"
    );
    let flood = 4 * REFUSALS_PER_ADDRESS as usize;
    let body = json!({"email": "target@example.test", "password": "guess-guess"}).to_string();
    for _ in 0..flood {
        call(&addr, "POST", "/api/auth/login", None, Some(&body)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).expect("reads the log");
    let lines = text
        .lines()
        .filter(|l| l.contains("login.failure") || l.contains("login.rate_limited"))
        .count();
    assert_eq!(lines, REFUSALS_PER_ADDRESS as usize, "{text}");
}
