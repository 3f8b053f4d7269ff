//! Passwords: one measure of length (characters) at creation, change and
//! login; a user's own change and an admin's reset, each ending the user's
//! other sessions on the spot; hashes made with older argon2 parameters
//! made again at the next login.

use std::time::Duration;

use serde_json::json;

use crate::helpers::*;
use crate::on_both_stores;

/// 700 two-byte characters: 700 characters, 1400 bytes. Accepted at
/// creation, so it logs in.
#[tokio::test]
async fn a_long_password_of_wide_characters_logs_in() {
    let app = spawn_app().await;
    let password = "é".repeat(700);
    app.create_user("wide@example.test", &password, "user")
        .await;
    let r = app.login("wide@example.test", &password).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // The limit is in characters on both sides.
    let over = "é".repeat(1025);
    let body = json!({"email": "over@example.test", "password": over}).to_string();
    app.admin("POST", "/api/admin/users", Some(&body))
        .await
        .assert_error(400, "bad_request");
    app.login("wide@example.test", &over)
        .await
        .assert_error(401, "invalid_credentials");
}

async fn change(app: &TestApp, token: &str, current: &str, new: &str) -> Reply {
    let body = json!({"current_password": current, "new_password": new}).to_string();
    app.request("POST", "/api/auth/password", Some(token), Some(&body))
        .await
}

async fn a_user_changes_their_password_and_their_other_sessions_end(backend: Backend) {
    let app = spawn_on(backend, |_| {}).await;
    let (_, laptop) = app.user_with_token("self@example.test", "user").await;
    let phone = app.login_ok("self@example.test", "password-123").await;

    change(&app, &laptop, "wrong-current", "new-password-456")
        .await
        .assert_error(401, "invalid_credentials");
    change(&app, &laptop, "password-123", "short")
        .await
        .assert_error(400, "bad_request");
    assert_eq!(app.session(&phone).await.status, 200, "nothing changed yet");

    let r = change(&app, &laptop, "password-123", "new-password-456").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let fresh = r.body["token"].as_str().expect("a new token").to_string();
    for old in [&laptop, &phone] {
        app.session(old).await.assert_error(401, "session_revoked");
    }
    assert_eq!(app.session(&fresh).await.status, 200);
    app.login("self@example.test", "password-123")
        .await
        .assert_error(401, "invalid_credentials");
    app.login_ok("self@example.test", "new-password-456").await;
    app.stop().await;
}

async fn an_admin_resets_a_password_and_the_users_sessions_end(backend: Backend) {
    let app = spawn_on(backend, |_| {}).await;
    let (id, token) = app.user_with_token("reset@example.test", "user").await;
    let body = json!({"password": "reset-password-789"}).to_string();
    // Not for a user to do to another.
    let (_, other) = app.user_with_token("other@example.test", "user").await;
    app.request(
        "PUT",
        &format!("/api/admin/users/{id}/password"),
        Some(&other),
        Some(&body),
    )
    .await
    .assert_error(403, "forbidden");
    let r = app
        .admin(
            "PUT",
            &format!("/api/admin/users/{id}/password"),
            Some(&body),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["email"], "reset@example.test");
    app.session(&token)
        .await
        .assert_error(401, "session_revoked");
    app.login("reset@example.test", "password-123")
        .await
        .assert_error(401, "invalid_credentials");
    app.login_ok("reset@example.test", "reset-password-789")
        .await;
    app.admin("PUT", "/api/admin/users/999999/password", Some(&body))
        .await
        .assert_error(404, "not_found");
    app.stop().await;
}

on_both_stores!(
    a_user_changes_their_password_and_their_other_sessions_end,
    an_admin_resets_a_password_and_the_users_sessions_end
);

/// A hash stored with weaker argon2 parameters than today's is replaced by
/// one with today's at the next successful login.
#[tokio::test]
async fn a_login_upgrades_a_hash_made_with_older_parameters() {
    use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
    let app = spawn_app().await;
    app.create_user("old@example.test", "old-params-1", "user")
        .await;
    let weak = argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon2::Params::new(1024, 1, 1, None).expect("valid parameters"),
    )
    .hash_password(b"old-params-1", &SaltString::generate(&mut OsRng))
    .expect("hashes")
    .to_string();
    assert!(sessiond::auth::needs_rehash(&weak));
    app.outside_sql(&format!(
        "UPDATE users SET password_hash = '{weak}' WHERE email = 'old@example.test'"
    ))
    .await;
    app.login_ok("old@example.test", "old-params-1").await;
    let db = sessiond::store::Db::connect(&app.db_url, sessiond::clock::Clock::new())
        .await
        .expect("opens");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, hash) = db
            .credentials("old@example.test")
            .await
            .expect("reads")
            .expect("the user");
        if !sessiond::auth::needs_rehash(&hash) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the hash was not upgraded: {hash}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // And the password still logs in, with the new hash.
    app.login_ok("old@example.test", "old-params-1").await;
}
