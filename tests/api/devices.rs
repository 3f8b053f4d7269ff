//! OWASP's device cookie, over real sockets: a successful login is
//! answered with a device token; presented on the account's later logins
//! (from any address, after a restart too), it lets them through while
//! strangers' failures hold the account off, and a device that fails too
//! often is held off on its own.

use serde_json::{json, Value};

use crate::helpers::*;

const EMAIL: &str = "owner@example.test";
const PASSWORD: &str = "the-owners-password";

/// A login through the trusted proxy (127.0.0.1) for the client `from`,
/// with a device token or none: the status and the answer.
async fn login(app: &TestApp, from: &str, password: &str, device: Option<&str>) -> (u16, Value) {
    let mut body = json!({"email": EMAIL, "password": password});
    if let Some(d) = device {
        body["device"] = json!(d);
    }
    let body = body.to_string();
    let request = format!(
        "POST /api/auth/login HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nx-forwarded-for: {from}\r\nconnection: close\r\n\r\n{body}",
        app.addr,
        body.len()
    );
    let r = app.raw(request.as_bytes()).await;
    (r.status, r.body)
}

fn device_of(answer: &Value) -> String {
    answer["device"]
        .as_str()
        .expect("a successful login is answered with a device token")
        .to_string()
}

async fn serve(db: &SharedDb) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    spawn_at(Backend::Sqlite, db.url.clone(), None, dir, |s| {
        s.jwt_secret = None;
        s.trusted_proxies = "127.0.0.1/32".parse().expect("a valid list");
    })
    .await
}

#[tokio::test]
async fn a_known_device_is_let_through_while_strangers_are_held_off() {
    let db = SharedDb::new(Backend::Sqlite).await;
    let app = serve(&db).await;
    app.create_user(EMAIL, PASSWORD, "user").await;
    let (status, answer) = login(&app, "198.51.100.7", PASSWORD, None).await;
    assert_eq!(status, 200, "{answer}");
    let device = device_of(&answer);
    app.stop().await;

    // After a restart: strangers, each from an address of its own, spend
    // the account's guesses; then even the right password is refused them.
    let app = serve(&db).await;
    for i in 0..10 {
        let (status, _) = login(&app, &format!("203.0.113.{i}"), "a-wrong-guess", None).await;
        assert_eq!(status, 401);
    }
    let (status, _) = login(&app, "203.0.113.99", PASSWORD, None).await;
    assert_eq!(status, 429, "strangers are held off");
    // The owner without the device token is a stranger too ...
    let (status, _) = login(&app, "198.51.100.7", PASSWORD, None).await;
    assert_eq!(status, 429);
    // ... and so with a forged one ...
    let forged = format!("{}x", &device[..device.len() - 1]);
    let (status, _) = login(&app, "198.51.100.7", PASSWORD, Some(&forged)).await;
    assert_eq!(status, 429);
    // ... but with it, from a new network even, the owner is let through
    // and given a new device token.
    let (status, answer) = login(&app, "192.0.2.50", PASSWORD, Some(&device)).await;
    assert_eq!(status, 200, "{answer}");
    let renewed = device_of(&answer);
    assert_ne!(renewed, device);

    // A device that fails as often as strangers may is held off itself,
    // and its failures do not hold off the account's other device.
    for _ in 0..10 {
        let (status, _) = login(&app, "192.0.2.50", "a-typo", Some(&device)).await;
        assert_eq!(status, 401);
    }
    let (status, _) = login(&app, "192.0.2.50", PASSWORD, Some(&device)).await;
    assert_eq!(status, 429, "a device's own failures hold it off");
    let (status, answer) = login(&app, "192.0.2.50", PASSWORD, Some(&renewed)).await;
    assert_eq!(status, 200, "{answer}");
    // A device token is not a bearer token.
    app.session(&renewed)
        .await
        .assert_error(401, "invalid_token");
    app.stop().await;
}
