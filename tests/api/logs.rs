//! No log line, at any level, holds a password, a token or the JWT secret:
//! the real binary at `RUST_LOG=trace` through a full session life cycle,
//! then every line it wrote is searched.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::helpers::call;

const BIN: &str = env!("CARGO_BIN_EXE_sessiond");
const SECRET: &str = "log-check-secret-4f1d9a2c7e-0123456789";
const ADMIN_PASSWORD: &str = "log-check-admin-pw-93xq";
const USER_PASSWORD: &str = "log-check-user-pw-51kz";

#[tokio::test]
async fn no_log_line_holds_a_password_a_token_or_the_secret() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("sessiond.log");
    let log_file = std::fs::File::create(&log).expect("log file");
    let out_file = log_file.try_clone().expect("log file");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let addr = format!("127.0.0.1:{port}");
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", &addr])
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("l.db").display()),
        )
        .env("SESSIOND_JWT_SECRET", SECRET)
        .env("SESSIOND_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("RUST_LOG", "trace")
        .stdout(Stdio::from(out_file))
        .stderr(Stdio::from(log_file))
        .spawn()
        .expect("starts");
    assert!(
        sessiond_testkit::http::wait_accepting(&addr, Duration::from_secs(10)).await,
        "the server did not start"
    );

    let login = |email: &str, pw: &str| json!({"email": email, "password": pw}).to_string();
    let admin = call(
        &addr,
        "POST",
        "/api/auth/login",
        None,
        Some(&login("admin@localhost", ADMIN_PASSWORD)),
    )
    .await
    .1;
    let admin = admin["token"].as_str().expect("admin token").to_string();
    let created = call(
        &addr,
        "POST",
        "/api/admin/users",
        Some(&admin),
        Some(
            &json!({"email": "log@example.test", "password": USER_PASSWORD, "role": "editor"})
                .to_string(),
        ),
    )
    .await
    .1;
    let id = created["id"].as_i64().expect("id");
    let user = call(
        &addr,
        "POST",
        "/api/auth/login",
        None,
        Some(&login("log@example.test", USER_PASSWORD)),
    )
    .await
    .1;
    let user = user["token"].as_str().expect("user token").to_string();
    call(&addr, "GET", "/api/auth/session", Some(&user), None).await;
    call(
        &addr,
        "POST",
        "/api/auth/refresh-session",
        Some(&user),
        Some(r#"{"force":true}"#),
    )
    .await;
    call(
        &addr,
        "PUT",
        &format!("/api/admin/users/{id}/role"),
        Some(&admin),
        Some(r#"{"role":"viewer"}"#),
    )
    .await;
    call(
        &addr,
        "POST",
        "/api/auth/login",
        None,
        Some(&login("log@example.test", "a-wrong-password-77")),
    )
    .await;
    call(
        &addr,
        "POST",
        "/api/auth/login",
        None,
        Some(&login("nobody@example.test", USER_PASSWORD)),
    )
    .await;
    call(&addr, "POST", "/api/auth/logout", Some(&user), None).await;
    call(&addr, "GET", "/api/auth/session", Some(&user), None).await;
    call(
        &addr,
        "GET",
        "/api/auth/session",
        Some(&format!("{user}x")),
        None,
    )
    .await;
    call(
        &addr,
        "POST",
        &format!("/api/admin/users/{id}/deactivate"),
        Some(&admin),
        None,
    )
    .await;
    call(&addr, "GET", "/metrics", None, None).await;

    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).expect("reads the log");
    assert!(
        text.lines().count() > 20,
        "trace logging produced little: {text}"
    );
    let signature = |t: &str| t.rsplit('.').next().unwrap_or_default().to_string();
    for (what, needle) in [
        ("the admin password", ADMIN_PASSWORD.to_string()),
        ("a user password", USER_PASSWORD.to_string()),
        ("a wrong password", "a-wrong-password-77".to_string()),
        ("the JWT secret", SECRET.to_string()),
        ("the admin token", admin.clone()),
        ("the user token", user.clone()),
        ("a token signature", signature(&admin)),
        ("a token signature", signature(&user)),
    ] {
        if let Some(line) = text.lines().find(|l| l.contains(&needle)) {
            panic!("{what} is in the log: {line}");
        }
    }
}
