//! Headers every answer carries and the media type every body must have.

use serde_json::json;

use crate::helpers::*;

/// A request with a body of the given type (`None`: no `Content-Type`).
fn with_type(
    method: &str,
    path: &str,
    token: Option<&str>,
    kind: Option<&str>,
    body: &str,
) -> Vec<u8> {
    let mut r = format!("{method} {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n");
    if let Some(t) = token {
        r.push_str(&format!("authorization: Bearer {t}\r\n"));
    }
    if let Some(k) = kind {
        r.push_str(&format!("content-type: {k}\r\n"));
    }
    r.push_str(&format!("content-length: {}\r\n\r\n{body}", body.len()));
    r.into_bytes()
}

#[tokio::test]
async fn answers_with_tokens_or_users_are_not_stored_and_none_is_sniffed() {
    let app = spawn_app().await;
    let login = app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let token = login.body["token"].as_str().expect("token").to_string();
    let (id, _) = app.user_with_token("someone@example.test", "user").await;
    let answers = [
        ("login", login),
        ("session", app.session(&token).await),
        ("refresh", app.refresh(&token, false).await),
        (
            "admin get",
            app.admin("GET", &format!("/api/admin/users/{id}"), None)
                .await,
        ),
        (
            "a refused login",
            app.login(ADMIN_EMAIL, "wrong-password").await,
        ),
        ("a bad token", app.session("not-a-token").await),
    ];
    for (what, r) in &answers {
        assert_eq!(r.header("cache-control"), Some("no-store"), "{what}");
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{what}"
        );
    }
    for path in ["/healthz", "/openapi.json", "/no-such-route"] {
        let r = app.request("GET", path, None, None).await;
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn bodies_must_be_json() {
    let app = spawn_app().await;
    let creds = json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}).to_string();
    for kind in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=b"),
    ] {
        let r = app
            .raw(&with_type("POST", "/api/auth/login", None, kind, &creds))
            .await;
        r.assert_error(415, "unsupported_media_type");
    }
    // JSON with parameters is JSON.
    let r = app
        .raw(&with_type(
            "POST",
            "/api/auth/login",
            None,
            Some("application/json; charset=utf-8"),
            &creds,
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let token = app.admin_token.clone();
    // An optional body left empty needs no type.
    let r = app
        .raw(&with_type(
            "POST",
            "/api/auth/refresh-session",
            Some(&token),
            None,
            "",
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app
        .raw(&with_type(
            "POST",
            "/api/auth/refresh-session",
            Some(&token),
            Some("text/plain"),
            r#"{"force":true}"#,
        ))
        .await;
    r.assert_error(415, "unsupported_media_type");
    let (id, _) = app.user_with_token("someone@example.test", "user").await;
    let r = app
        .raw(&with_type(
            "PUT",
            &format!("/api/admin/users/{id}/role"),
            Some(&token),
            Some("text/plain"),
            r#"{"role":"viewer"}"#,
        ))
        .await;
    r.assert_error(415, "unsupported_media_type");
    let r = app
        .raw(&with_type(
            "POST",
            "/api/admin/users",
            Some(&token),
            Some("text/plain"),
            r#"{"email":"x@example.test","password":"password-123"}"#,
        ))
        .await;
    r.assert_error(415, "unsupported_media_type");
    app.stop().await;
}
