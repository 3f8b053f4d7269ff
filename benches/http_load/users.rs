//! The users a run needs, made through the admin API, and the warm-up that
//! checks each server caches (or not) as told.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sessiond_testkit::http::{self, Conn, Connection};

use crate::ADMIN_PASSWORD;

/// A POST on a connection of its own: status and JSON body.
async fn post(addr: SocketAddr, path: &str, token: Option<&str>, body: &str) -> (u16, Value) {
    let request = http::Request {
        method: "POST",
        path,
        token,
        body: Some(body),
    };
    let reply = http::send(&addr.to_string(), request, Duration::from_secs(60))
        .await
        .expect("sessiond answers");
    (reply.status, reply.body)
}

async fn login(addr: SocketAddr, email: &str, password: &str) -> String {
    let body = serde_json::json!({ "email": email, "password": password }).to_string();
    let (status, json) = post(addr, "/api/auth/login", None, &body).await;
    assert_eq!(status, 200, "login of {email}: {json}");
    json["token"].as_str().expect("a token").to_string()
}

/// Creates `users` users through the admin API (skipping those that exist)
/// and logs each in; returns their tokens.
pub(crate) async fn tokens_for_users(addr: SocketAddr, users: usize) -> Vec<String> {
    let admin = login(addr, "admin@localhost", ADMIN_PASSWORD).await;
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    // argon2 runs on the server's blocking pool: a few at a time is plenty.
    for _ in 0..4 {
        let next = Arc::clone(&next);
        let admin = admin.clone();
        tasks.push(tokio::spawn(async move {
            let mut tokens = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= users {
                    break tokens;
                }
                let email = format!("bench{i}@example.test");
                let password = format!("bench-password-{i}");
                let body =
                    serde_json::json!({ "email": email, "password": password, "role": "user" })
                        .to_string();
                let (status, json) = post(addr, "/api/admin/users", Some(&admin), &body).await;
                assert!(
                    status == 201 || status == 409,
                    "create {email}: {status} {json}"
                );
                tokens.push(login(addr, &email, &password).await);
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("user setup task"));
    }
    all
}

/// Every token resolved once; checks the answers say `cache.hit` as expected.
pub(crate) async fn warm_and_check(addr: SocketAddr, tokens: &[String], expect_hit: bool) {
    let mut conn = Conn::open(addr).await.expect("connects");
    let host = addr.to_string();
    for pass in 0..2 {
        for t in tokens {
            let session = http::Request {
                method: "GET",
                path: "/api/auth/session",
                token: Some(t),
                body: None,
            };
            let req = session.bytes(&host, Connection::KeepAlive);
            let status = conn.roundtrip(&req).await.expect("session answers");
            assert_eq!(
                status,
                200,
                "session: {}",
                String::from_utf8_lossy(conn.body())
            );
            if pass == 1 {
                let json: Value = serde_json::from_slice(conn.body()).expect("session JSON");
                assert_eq!(
                    json["cache"]["hit"].as_bool(),
                    Some(expect_hit),
                    "cache.hit on the second pass: {json}"
                );
            }
        }
    }
}
