//! `--trusted-proxies`: only a trusted peer's X-Forwarded-For names the
//! client, so strangers behind an app are limited one by one and a peer
//! that is not trusted cannot dodge the per-address limit.
//!
//! The app trusts 127.0.0.1 (the test's own address, standing for an app
//! in front of sessiond); 127.0.0.2, another loopback address, is a peer
//! it does not trust.

use std::net::{IpAddr, Ipv4Addr};

use sessiond_testkit::http::Request;

use crate::helpers::*;

const PROXY: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
const UNTRUSTED: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
/// Failed logins per address before 429 (few, to keep this quick).
const PER_ADDRESS: usize = 3;

async fn spawn_behind_proxy() -> TestApp {
    spawn_on(Backend::Sqlite, |s| {
        s.trusted_proxies = "127.0.0.1/32".parse().expect("a valid list");
        s.login_limits.per_address = PER_ADDRESS;
        // One account's limit must not be what stops anything here.
        s.login_limits.per_account = 10_000;
    })
    .await
}

/// A login sent from `local` with `forwarded` as X-Forwarded-For: the status.
async fn login_from(
    app: &TestApp,
    local: IpAddr,
    forwarded: Option<&str>,
    email: &str,
    password: &str,
) -> u16 {
    let body = serde_json::json!({ "email": email, "password": password }).to_string();
    let login = Request {
        method: "POST",
        path: "/api/auth/login",
        token: None,
        body: Some(&body),
    };
    let xff: Vec<(&str, &str)> = forwarded
        .map(|f| ("x-forwarded-for", f))
        .into_iter()
        .collect();
    request_from(app.addr, local, login, &xff).await.status
}

async fn new_user(app: &TestApp, n: usize) -> String {
    let email = format!("proxied{n}@example.test");
    app.create_user(&email, "password-123", "user").await;
    email
}

#[tokio::test]
async fn an_untrusted_peers_forwarded_header_is_ignored() {
    let app = spawn_behind_proxy().await;
    for i in 0..PER_ADDRESS {
        let victim = new_user(&app, i).await;
        let forwarded = format!("192.0.2.{}", i + 1);
        let status = login_from(&app, UNTRUSTED, Some(&forwarded), &victim, "wrong").await;
        assert_eq!(status, 401, "failure {}", i + 1);
    }
    // The failures were the peer's: a fresh forwarded address does not help.
    let user = new_user(&app, 100).await;
    let status = login_from(&app, UNTRUSTED, Some("192.0.2.99"), &user, "password-123").await;
    assert_eq!(status, 429);
    let status = login_from(&app, UNTRUSTED, None, &user, "password-123").await;
    assert_eq!(status, 429);
    // The trusted proxy's users are not affected.
    let status = login_from(&app, PROXY, Some("198.51.100.9"), &user, "password-123").await;
    assert_eq!(status, 200);
    app.stop().await;
}

#[tokio::test]
async fn strangers_behind_a_trusted_proxy_are_limited_one_by_one() {
    let app = spawn_behind_proxy().await;
    let stranger = "203.0.113.66";
    for i in 0..PER_ADDRESS {
        let victim = new_user(&app, i).await;
        // A client-written hop on the left is never believed.
        let forwarded = format!("10.9.9.{i}, {stranger}");
        let status = login_from(&app, PROXY, Some(&forwarded), &victim, "wrong").await;
        assert_eq!(status, 401, "failure {}", i + 1);
    }
    let next = new_user(&app, 100).await;
    // The stranger is refused, however its address is written, and past a
    // second trusted hop.
    for forwarded in [
        stranger,
        "::ffff:203.0.113.66",
        "198.51.100.1, 203.0.113.66, 127.0.0.1",
    ] {
        let status = login_from(&app, PROXY, Some(forwarded), &next, "password-123").await;
        assert_eq!(status, 429, "{forwarded}");
    }
    // Other users behind the same proxy sign in.
    for (n, ip) in [(101, "198.51.100.7"), (102, "2001:db8::8")] {
        let user = new_user(&app, n).await;
        let status = login_from(&app, PROXY, Some(ip), &user, "password-123").await;
        assert_eq!(status, 200, "a user at {ip}");
    }
    // The proxy's own address was never counted: without a header (so the
    // peer is the client) it signs in too.
    let status = login_from(&app, PROXY, None, &next, "password-123").await;
    assert_eq!(status, 200);
    app.stop().await;
}

#[tokio::test]
async fn the_audit_trail_records_the_forwarded_client() {
    let app = spawn_behind_proxy().await;
    let body = r#"{"email":"audited@example.test","password":"password-123","role":"user"}"#;
    let request = format!(
        "POST /api/admin/users HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\
         x-forwarded-for: 203.0.113.5\r\nconnection: close\r\n\r\n{body}",
        app.addr,
        app.admin_token,
        body.len()
    );
    let reply = app.raw(request.as_bytes()).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let trail = app.ctx.db.audit_since(0).await.expect("reads the trail");
    let entry = trail
        .iter()
        .find(|e| e.action == "user.create")
        .expect("the entry");
    assert_eq!(entry.client.as_deref(), Some("203.0.113.5"), "{trail:?}");
    app.stop().await;
}

/// The account lock-out policy seen from outside: strangers on many
/// addresses get at most the account's limit of guesses checked, and do
/// not lock the owner out of the device the owner logged in with (its
/// device token; the address alone is no device).
#[tokio::test]
async fn strangers_cannot_lock_the_owner_out_of_a_known_device() {
    const PER_ACCOUNT: usize = 3;
    let app = spawn_on(Backend::Sqlite, |s| {
        s.trusted_proxies = "127.0.0.1/32".parse().expect("a valid list");
        s.login_limits.per_account = PER_ACCOUNT;
        s.login_limits.per_address = 10_000;
    })
    .await;
    let email = new_user(&app, 900).await;
    let owner = Some("198.51.100.7");
    let with_device = |device: &str| {
        serde_json::json!({ "email": email, "password": "password-123", "device": device })
            .to_string()
    };
    let first = with_device("");
    let first = request_from(
        app.addr,
        PROXY,
        Request {
            method: "POST",
            path: "/api/auth/login",
            token: None,
            body: Some(&first),
        },
        &[("x-forwarded-for", "198.51.100.7")],
    )
    .await;
    assert_eq!(first.status, 200, "{}", first.text);
    let device = first.body["device"]
        .as_str()
        .expect("a device token")
        .to_string();
    let mut checked = 0;
    for i in 0..40 {
        let stranger = format!("203.0.113.{i}");
        match login_from(&app, PROXY, Some(&stranger), &email, "wrong").await {
            401 => checked += 1,
            429 => {}
            s => panic!("a stranger's guess answered {s}"),
        }
    }
    assert_eq!(checked, PER_ACCOUNT, "guesses checked from 40 strangers");
    // A new address with the right password waits out the window too ...
    assert_eq!(
        login_from(&app, PROXY, Some("192.0.2.1"), &email, "password-123").await,
        429
    );
    // ... so does the owner's address alone ...
    assert_eq!(
        login_from(&app, PROXY, owner, &email, "password-123").await,
        429
    );
    // ... but the owner's device is let in.
    let known = with_device(&device);
    let known = request_from(
        app.addr,
        PROXY,
        Request {
            method: "POST",
            path: "/api/auth/login",
            token: None,
            body: Some(&known),
        },
        &[("x-forwarded-for", "198.51.100.7")],
    )
    .await;
    assert_eq!(known.status, 200, "{}", known.text);
    app.stop().await;
}

/// `--client-ip-header forwarded`: the client is read from `Forwarded`
/// alone; an `X-Forwarded-For` beside it (which a client may have written
/// and a proxy that writes `Forwarded` passes on) is never read.
#[tokio::test]
async fn only_the_header_the_operator_names_is_read() {
    use sessiond::http::client_addr::ClientIpHeader;
    let app = spawn_on(Backend::Sqlite, |s| {
        s.trusted_proxies = "127.0.0.1/32"
            .parse::<sessiond::http::client_addr::TrustedProxies>()
            .expect("a valid list")
            .with_header(ClientIpHeader::Forwarded);
        s.login_limits.per_address = PER_ADDRESS;
        s.login_limits.per_account = 10_000;
    })
    .await;
    let email = new_user(&app, 90).await;
    let send = |forwarded: &'static str, xff: &'static str, password: &'static str| {
        let app = &app;
        let email = email.clone();
        async move {
            let body = serde_json::json!({ "email": email, "password": password }).to_string();
            let login = Request {
                method: "POST",
                path: "/api/auth/login",
                token: None,
                body: Some(&body),
            };
            request_from(
                app.addr,
                PROXY,
                login,
                &[("forwarded", forwarded), ("x-forwarded-for", xff)],
            )
            .await
            .status
        }
    };
    // Failures whose X-Forwarded-For changes every time: Forwarded counts.
    for xff in ["203.0.113.1", "203.0.113.2", "203.0.113.3"] {
        assert_eq!(send("for=198.51.100.7", xff, "wrong-password").await, 401);
    }
    assert_eq!(
        send("for=198.51.100.7", "203.0.113.4", "password-123").await,
        429,
        "the address named in Forwarded is held off"
    );
    assert_eq!(
        send("for=198.51.100.8", "203.0.113.1", "password-123").await,
        200,
        "another Forwarded address is not"
    );
}
