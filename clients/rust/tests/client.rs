//! The Rust client and its warp filter against the real app on a real
//! socket: a valid token hands the handler its session, a role change is
//! seen at once, revoked and garbled tokens are refused with sessiond's codes.

use serde_json::Value;
use warp::http::StatusCode;
use warp::{Filter, Reply};

use sessiond_client::{self as client, Session, SessiondClient, SessiondError, UserStatus};

mod https;
mod server;

use server::{spawn_app, ADMIN_EMAIL, ADMIN_PASSWORD};

/// What the filter extracts for a request with this `Authorization` header.
async fn filter_with(
    client: &SessiondClient,
    authorization: Option<&str>,
) -> Result<Session, SessiondError> {
    let filter = client::session_filter(client.clone());
    let mut req = warp::test::request().path("/");
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    match req.filter(&filter).await {
        Ok(s) => Ok(s),
        Err(r) => Err(r
            .find::<SessiondError>()
            .cloned()
            .expect("the rejection is a SessiondError")),
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[track_caller]
fn assert_refused(r: Result<Session, SessiondError>, status: u16, code: &str) {
    let e = r.expect_err("refused");
    assert_eq!((e.status.as_u16(), e.code.as_str()), (status, code), "{e}");
    assert!(!e.message.is_empty());
}

/// A small app protected by the filter, with the recover helper.
fn protected(
    sessiond: SessiondClient,
) -> impl Filter<Extract = (impl Reply,), Error = std::convert::Infallible> + Clone {
    let me = warp::path!("me")
        .and(client::session_filter(sessiond.clone()))
        .map(|s: Session| warp::reply::json(&s.user));
    let admin = warp::path!("admin")
        .and(client::require_role(sessiond, &["admin"]))
        .map(|s: Session| format!("hello, admin {}", s.user.email));
    me.or(admin)
        .recover(client::recover)
        .recover(client::recover_all)
}

fn json_body(r: &warp::http::Response<bytes::Bytes>) -> Value {
    serde_json::from_slice(r.body()).expect("a JSON body")
}

#[tokio::test]
async fn a_valid_token_hands_the_handler_its_session() {
    let app = spawn_app().await;
    let (id, token) = app.user_with_token("ann@example.com", "editor").await;
    let sessiond = app.client();

    let s = filter_with(&sessiond, Some(&bearer(&token)))
        .await
        .expect("resolves");
    assert_eq!(s.user.id, id);
    assert_eq!(s.user.email, "ann@example.com");
    assert_eq!(s.user.role, "editor");
    assert_eq!(s.user.status, UserStatus::Active);
    assert!(!s.expires.is_empty());
    assert_eq!(s.cache.node, "local");
    assert!(!s.cache.near, "one node: no near copy");
    // Any case of the scheme, surrounding spaces: as sessiond reads it.
    let again = filter_with(&sessiond, Some(&format!("  bearer {token} ")))
        .await
        .expect("resolves");
    assert!(again.cache.hit);

    let routes = protected(sessiond.clone());
    let r = warp::test::request()
        .path("/me")
        .header("authorization", bearer(&token))
        .reply(&routes)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(json_body(&r)["email"], "ann@example.com");

    // The client's own calls.
    let forced = sessiond
        .refresh_session(&token, true)
        .await
        .expect("refresh");
    assert!(!forced.cache.hit);
    assert_eq!(forced.user, s.user);
    let login = sessiond
        .login(ADMIN_EMAIL, ADMIN_PASSWORD)
        .await
        .expect("login");
    assert_eq!(login.token_type, "Bearer");
    assert_eq!(login.user.role, "admin");
    let e = sessiond
        .login(ADMIN_EMAIL, "wrong-password")
        .await
        .expect_err("refused");
    assert_eq!(
        (e.status.as_u16(), e.code.as_str()),
        (401, "invalid_credentials")
    );
    app.stop().await;
}

/// The device token a login answers, relayed with the next logins: let
/// through while strangers' failures hold the account off.
#[tokio::test]
async fn a_device_token_is_relayed() {
    let app = spawn_app().await;
    app.user_with_token("dev@example.com", "user").await;
    let sessiond = app.client();
    let first = sessiond
        .login("dev@example.com", "password-123")
        .await
        .expect("login");
    let device = first.device.expect("a device token");
    for _ in 0..10 {
        let e = sessiond
            .login("dev@example.com", "a-wrong-guess")
            .await
            .expect_err("refused");
        assert_eq!(e.status.as_u16(), 401);
    }
    let e = sessiond
        .login("dev@example.com", "password-123")
        .await
        .expect_err("strangers are held off");
    assert_eq!(e.code.as_str(), "rate_limited");
    let again = sessiond
        .login_with_device("dev@example.com", "password-123", Some(&device))
        .await
        .expect("the device is let through");
    assert!(again.device.is_some_and(|d| d != device));
    app.stop().await;
}

#[tokio::test]
async fn a_role_change_is_seen_at_once() {
    let app = spawn_app().await;
    let (id, token) = app.user_with_token("bob@example.com", "admin").await;
    let sessiond = app.client();
    let routes = protected(sessiond.clone());
    let admin_page = || {
        warp::test::request()
            .path("/admin")
            .header("authorization", bearer(&token))
            .reply(&routes)
    };

    assert_eq!(admin_page().await.status(), StatusCode::OK);
    let cached = filter_with(&sessiond, Some(&bearer(&token)))
        .await
        .expect("resolves");
    assert_eq!(
        (cached.user.role.as_str(), cached.cache.hit),
        ("admin", true)
    );

    let body = r#"{"role":"viewer"}"#;
    let r = app
        .admin("PUT", &format!("/api/admin/users/{id}/role"), Some(body))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    let s = filter_with(&sessiond, Some(&bearer(&token)))
        .await
        .expect("resolves");
    assert_eq!(s.user.role, "viewer");
    let r = admin_page().await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(json_body(&r)["error"], "forbidden");
    app.stop().await;
}

#[tokio::test]
async fn revoked_and_garbled_tokens_are_refused_with_sessiond_codes() {
    let app = spawn_app().await;
    let sessiond = app.client();

    // Logged out (through the client), deactivated, all sessions revoked.
    let (_, logged_out) = app.user_with_token("c1@example.com", "editor").await;
    filter_with(&sessiond, Some(&bearer(&logged_out)))
        .await
        .expect("resolves before");
    sessiond.logout(&logged_out).await.expect("logout");
    assert_refused(
        filter_with(&sessiond, Some(&bearer(&logged_out))).await,
        401,
        "session_revoked",
    );
    let (id, deactivated) = app.user_with_token("c2@example.com", "editor").await;
    filter_with(&sessiond, Some(&bearer(&deactivated)))
        .await
        .expect("resolves before");
    let r = app
        .admin("POST", &format!("/api/admin/users/{id}/deactivate"), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_refused(
        filter_with(&sessiond, Some(&bearer(&deactivated))).await,
        401,
        "session_revoked",
    );
    let (id, revoked) = app.user_with_token("c3@example.com", "editor").await;
    let r = app
        .admin(
            "POST",
            &format!("/api/admin/users/{id}/revoke-sessions"),
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_refused(
        filter_with(&sessiond, Some(&bearer(&revoked))).await,
        401,
        "session_revoked",
    );

    // Garbled: a flipped signature, not a JWT, not a bearer header, none.
    let (_, token) = app.user_with_token("c4@example.com", "editor").await;
    let mut forged = token.clone();
    let last = forged.pop().expect("a non-empty token");
    forged.push(if last == 'A' { 'B' } else { 'A' });
    for header in [
        Some(bearer(&forged)),
        Some(bearer("not-a-jwt")),
        Some(format!("Basic {token}")),
        Some("Bearer".to_string()),
        None,
    ] {
        assert_refused(
            filter_with(&sessiond, header.as_deref()).await,
            401,
            "invalid_token",
        );
    }

    // The recover helper renders the rejection as sessiond's JSON error.
    let routes = protected(sessiond.clone());
    let r = warp::test::request()
        .path("/me")
        .header("authorization", bearer(&logged_out))
        .reply(&routes)
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.headers().get("content-type").map(|v| v.as_bytes()),
        Some(&b"application/json"[..])
    );
    let body = json_body(&r);
    assert_eq!(body["error"], "session_revoked");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    let r = warp::test::request()
        .path("/me")
        .header("authorization", bearer(&forged))
        .reply(&routes)
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json_body(&r)["error"], "invalid_token");
    // Other rejections pass through to the app's own handling.
    let r = warp::test::request().path("/nowhere").reply(&routes).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(json_body(&r)["error"], "not_found");
    app.stop().await;
}

#[tokio::test]
async fn an_unreachable_sessiond_denies_the_request() {
    let app = spawn_app().await;
    let (_, token) = app.user_with_token("d@example.com", "editor").await;
    let base = format!("http://{}", app.addr);
    app.stop().await;

    let sessiond = SessiondClient::new(&base)
        .expect("a valid base URL")
        .with_retries(1);
    assert_refused(
        filter_with(&sessiond, Some(&bearer(&token))).await,
        503,
        "unavailable",
    );
}

#[tokio::test]
async fn an_app_key_mints_a_session_for_a_user_the_app_signed_in() {
    let app = spawn_app().await;
    let (id, _) = app.user_with_token("minted@example.test", "editor").await;
    let sessiond = app.client();
    let key = app.app_key("mint").await;
    let minted = sessiond.mint_session(&key, id).await.expect("mints");
    assert_eq!(
        (minted.user.id, minted.token_type.as_str()),
        (id.into(), "Bearer")
    );
    let s = sessiond.session(&minted.token).await.expect("resolves");
    assert_eq!(s.user.role, "editor");

    let refused = |r: Result<_, SessiondError>| {
        let e = r.expect_err("refused");
        (e.status.as_u16(), e.code)
    };
    assert_eq!(
        refused(sessiond.mint_session(&key, 9_999).await),
        (404, "not_found".to_string())
    );
    let admin_only = app.app_key("admin").await;
    assert_eq!(
        refused(sessiond.mint_session(&admin_only, id).await),
        (403, "forbidden".to_string())
    );
    let forged = format!("{}x", key);
    assert_eq!(
        refused(sessiond.mint_session(&forged, id).await),
        (401, "invalid_token".to_string())
    );
    app.stop().await;
}
