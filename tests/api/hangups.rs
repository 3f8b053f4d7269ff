//! The login limiter against clients that hang up and requests that cost
//! nothing: a guess whose password check started counts whatever happens
//! to its connection, the check nobody waits for is skipped (so real
//! logins keep their place on the password threads), and logins refused
//! before any password work take no room in the limiter.
//!
//! Addresses other than 127.0.0.1 on the loopback stand for other hosts.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use serde_json::json;
use sessiond_testkit::http::{Connection, Request};
use tokio::io::AsyncWriteExt;

use crate::helpers::*;

const STRANGER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9));

fn login_bytes(app: &TestApp, email: &str, password: &str) -> Vec<u8> {
    let body = json!({ "email": email, "password": password }).to_string();
    Request {
        method: "POST",
        path: "/api/auth/login",
        token: None,
        body: Some(&body),
    }
    .bytes(&app.addr.to_string(), Connection::Close)
}

/// Sends a whole login from `local`, then closes the connection after
/// `after` without reading the answer.
async fn hang_up(app: &TestApp, local: IpAddr, email: &str, password: &str, after: Duration) {
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket
        .bind(std::net::SocketAddr::new(local, 0))
        .expect("binds a loopback address");
    let mut stream = socket.connect(app.addr).await.expect("connects");
    stream
        .write_all(&login_bytes(app, email, password))
        .await
        .expect("sends");
    tokio::time::sleep(after).await;
    drop(stream);
}

async fn login_from(app: &TestApp, local: IpAddr, email: &str, password: &str) -> Reply {
    let body = json!({ "email": email, "password": password }).to_string();
    let login = Request {
        method: "POST",
        path: "/api/auth/login",
        token: None,
        body: Some(&body),
    };
    request_from(app.addr, local, login, &[]).await
}

/// 50 wrong guesses from one address whose client hangs up while the
/// password is checked, then the right password from the same (stranger)
/// address: still limited. Meanwhile a real user logs in (200, never 503).
#[tokio::test]
async fn a_guess_whose_client_hangs_up_still_counts() {
    let app = std::sync::Arc::new(spawn_on(Backend::Sqlite, |_| {}).await);
    app.create_user("real@example.test", "real-password-1", "user")
        .await;
    let mut attack = Vec::new();
    for i in 0..50 {
        let app = std::sync::Arc::clone(&app);
        attack.push(tokio::spawn(async move {
            let guess = format!("wrong-guess-{i}");
            hang_up(
                &app,
                STRANGER,
                ADMIN_EMAIL,
                &guess,
                Duration::from_millis(20),
            )
            .await;
        }));
    }
    let mut real = Vec::new();
    for _ in 0..5 {
        let r = app.login("real@example.test", "real-password-1").await;
        real.push(r.status);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for a in attack {
        a.await.expect("a hang-up");
    }
    assert!(
        real.iter().all(|s| *s == 200),
        "real logins during the attack: {real:?}"
    );
    // The hung-up checks are over (or skipped) by now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = login_from(&app, STRANGER, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    r.assert_error(429, "rate_limited");
    assert_eq!(
        app.login("real@example.test", "real-password-1")
            .await
            .status,
        200
    );
}

/// Logins refused before any password work (a password longer than any a
/// user can have, an email no account can have) are not counted: a flood
/// of them does not hold off the address's next real login.
#[tokio::test]
async fn cheap_refusals_take_no_room_in_the_limiter() {
    let app = spawn_on(Backend::Sqlite, |s| {
        s.login_limits.per_address = 3;
    })
    .await;
    app.create_user("cheap@example.test", "cheap-password-1", "user")
        .await;
    let too_long = "x".repeat(1025);
    for _ in 0..10 {
        login_from(&app, STRANGER, "cheap@example.test", &too_long)
            .await
            .assert_error(401, "invalid_credentials");
        login_from(&app, STRANGER, "not an email", "whatever-1")
            .await
            .assert_error(401, "invalid_credentials");
    }
    let r = login_from(&app, STRANGER, "cheap@example.test", "cheap-password-1").await;
    assert_eq!(r.status, 200, "{}", r.text);
}
