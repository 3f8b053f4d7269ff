//! Hostile and broken input: each answered with the right JSON error, and
//! the server still serving afterwards.

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use crate::helpers::*;

fn claims(sub: &str, exp_offset_s: i64) -> serde_json::Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    json!({"sub": sub, "sid": "hand-made", "iat": now, "exp": now + exp_offset_s, "iss": "sessiond"})
}

fn sign(alg: Algorithm, secret: &str, claims: &serde_json::Value) -> String {
    jsonwebtoken::encode(
        &Header::new(alg),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("encodes")
}

async fn still_serving(app: &TestApp) {
    assert_eq!(app.request("GET", "/healthz", None, None).await.status, 200);
    let s = app.session(&app.admin_token).await;
    assert_eq!(s.status, 200, "{}", s.text);
}

async fn bad_tokens_are_invalid_token(b: Backend) {
    let app = spawn_on(b, |_| {}).await;
    let id = app
        .create_user("tk@example.test", "password-123", "user")
        .await;
    let sub = id.to_string();

    // Missing, wrong scheme, garbled.
    app.request("GET", "/api/auth/session", None, None)
        .await
        .assert_error(401, "invalid_token");
    let basic = b"GET /api/auth/session HTTP/1.1\r\nhost: x\r\nconnection: close\r\nauthorization: Basic YWRtaW46eA==\r\n\r\n";
    app.raw(basic).await.assert_error(401, "invalid_token");
    for garbage in [
        "x",
        "a.b.c",
        "....",
        "eyJhbGciOiJIUzI1NiJ9.e30.",
        &"A".repeat(4000),
    ] {
        app.session(garbage)
            .await
            .assert_error(401, "invalid_token");
    }

    // A well-formed token with our secret works; the variants below don't.
    let good = sign(Algorithm::HS256, SECRET, &claims(&sub, 3600));
    assert_eq!(app.session(&good).await.status, 200);

    let wrong_sig = sign(
        Algorithm::HS256,
        "some-other-secret-entirely-0000",
        &claims(&sub, 3600),
    );
    app.session(&wrong_sig)
        .await
        .assert_error(401, "invalid_token");

    for alg in [Algorithm::HS384, Algorithm::HS512] {
        let other_alg = sign(alg, SECRET, &claims(&sub, 3600));
        app.session(&other_alg)
            .await
            .assert_error(401, "invalid_token");
    }

    let header = b64url(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = b64url(claims(&sub, 3600).to_string().as_bytes());
    for unsigned in [
        format!("{header}.{payload}."),
        format!("{header}.{payload}"),
    ] {
        app.session(&unsigned)
            .await
            .assert_error(401, "invalid_token");
    }
    // The good token's signature on a tampered payload.
    let sig = good.rsplit('.').next().unwrap_or_default();
    let tampered_payload = b64url(claims("1", 3600).to_string().as_bytes());
    let tampered = format!(
        "{}.{tampered_payload}.{sig}",
        b64url(br#"{"typ":"JWT","alg":"HS256"}"#)
    );
    app.session(&tampered)
        .await
        .assert_error(401, "invalid_token");

    let expired = sign(Algorithm::HS256, SECRET, &claims(&sub, -10));
    app.session(&expired)
        .await
        .assert_error(401, "invalid_token");
    let wrong_iss = sign(
        Algorithm::HS256,
        SECRET,
        &json!({"sub": sub, "sid": "x", "iat": 0, "exp": 4_000_000_000i64, "iss": "other"}),
    );
    app.session(&wrong_iss)
        .await
        .assert_error(401, "invalid_token");
    // A subject that is no user id (ids are ASCII letters, digits and
    // -_.~:@+=, 1 to 128 bytes) is an invalid token ...
    for sub in ["not a number", "", "ü", &"a".repeat(129)] {
        let bad_sub = sign(Algorithm::HS256, SECRET, &claims(sub, 3600));
        app.session(&bad_sub)
            .await
            .assert_error(401, "invalid_token");
    }
    // ... whereas a text id the own-users table cannot hold names no user.
    let text_sub = sign(Algorithm::HS256, SECRET, &claims("not-a-number", 3600));
    app.session(&text_sub)
        .await
        .assert_error(401, "session_revoked");

    still_serving(&app).await;
    app.stop().await;
}

async fn tokens_expire_by_the_service_clock(b: Backend) {
    let app = spawn_on(b, |s| s.token_ttl = Duration::from_secs(3600)).await;
    let (_, token) = app.user_with_token("ex@example.test", "user").await;
    assert_eq!(app.session(&token).await.status, 200);
    app.ctx.clock.advance(Duration::from_secs(3601));
    let r = app.session(&token).await;
    r.assert_error(401, "invalid_token");
    assert!(r.body["message"].as_str().unwrap_or("").contains("expired"));
    app.stop().await;
}

async fn bad_bodies_are_bad_request_or_too_large(b: Backend) {
    let app = spawn_on(b, |_| {}).await;
    let t = app.admin_token.clone();

    app.request("POST", "/api/auth/login", None, Some("not json"))
        .await
        .assert_error(400, "bad_request");
    app.request("POST", "/api/auth/login", None, None)
        .await
        .assert_error(400, "bad_request");
    app.request("POST", "/api/auth/login", None, Some(r#"{"email": 5}"#))
        .await
        .assert_error(400, "bad_request");
    app.request("POST", "/api/auth/login", None, Some("[1,2,3]"))
        .await
        .assert_error(400, "bad_request");
    app.request(
        "POST",
        "/api/admin/users",
        Some(&t),
        Some(r#"{"email":"x"}"#),
    )
    .await
    .assert_error(400, "bad_request");
    let bad_email = json!({"email": "no-at-sign", "password": "password-123"}).to_string();
    app.request("POST", "/api/admin/users", Some(&t), Some(&bad_email))
        .await
        .assert_error(400, "bad_request");
    let short_pw = json!({"email": "a@b.c", "password": "short"}).to_string();
    app.request("POST", "/api/admin/users", Some(&t), Some(&short_pw))
        .await
        .assert_error(400, "bad_request");
    for role in ["", "Admin", "a b", &"r".repeat(65), "ünï"] {
        let body = json!({ "role": role }).to_string();
        app.request("PUT", "/api/admin/users/1/role", Some(&t), Some(&body))
            .await
            .assert_error(400, "bad_request");
    }
    app.request(
        "POST",
        "/api/auth/refresh-session",
        Some(&t),
        Some(r#"{"force":"yes"}"#),
    )
    .await
    .assert_error(400, "bad_request");
    // No body at all is fine for refresh-session.
    let r = app
        .request("POST", "/api/auth/refresh-session", Some(&t), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // Oversized, declared ...
    let big = format!(r#"{{"email":"{}","password":"x"}}"#, "a".repeat(70 * 1024));
    app.request("POST", "/api/auth/login", None, Some(&big))
        .await
        .assert_error(413, "payload_too_large");
    // ... and streamed in chunks with no declared length.
    let mut chunked = String::from(
        "POST /api/auth/login HTTP/1.1\r\nhost: x\r\nconnection: close\r\ntransfer-encoding: chunked\r\n\r\n",
    );
    for _ in 0..70 {
        chunked.push_str(&format!("400\r\n{}\r\n", "b".repeat(1024)));
    }
    chunked.push_str("0\r\n\r\n");
    app.raw(chunked.as_bytes())
        .await
        .assert_error(413, "payload_too_large");

    still_serving(&app).await;
    app.stop().await;
}

async fn bad_paths_and_ids(b: Backend) {
    let app = spawn_on(b, |_| {}).await;
    app.request("GET", "/no/such/route", None, None)
        .await
        .assert_error(404, "not_found");
    app.request("GET", "/api/auth/sessionx", None, None)
        .await
        .assert_error(404, "not_found");
    app.request("DELETE", "/api/auth/session", None, None)
        .await
        .assert_error(405, "method_not_allowed");
    // What is no user id: 400.
    let long = "a".repeat(129);
    for id in ["a%20b", "%2F", "%zz", "..", "-", "a%C3", long.as_str()] {
        app.admin("GET", &format!("/api/admin/users/{id}"), None)
            .await
            .assert_error(400, "bad_request");
    }
    // Ids this store has no user for, integers and text alike (UUID, cuid,
    // nanoid, a 32-character id, one percent-encoded): 404.
    for id in [
        "424242",
        "0",
        "-1",
        "1.5",
        "99999999999999999999999",
        "abc",
        "550e8400-e29b-41d4-a716-446655440000",
        "clx3k9abc0000qzrmn1234567",
        "V1StGXR8_Z5jdHi6B-myT",
        "Zx9kQ2mN7pL4vR8sT1wY3uE6iO0aB5cD",
        "tenant%3A7%40x",
    ] {
        app.admin("GET", &format!("/api/admin/users/{id}"), None)
            .await
            .assert_error(404, "not_found");
        app.admin("POST", &format!("/api/admin/users/{id}/deactivate"), None)
            .await
            .assert_error(404, "not_found");
    }

    // Not HTTP at all, and a head that never ends: the connection is
    // dropped, the server carries on.
    let garbage = app.raw_lenient(b"\x00\x01\x02 hello\r\n\r\n").await;
    assert!(garbage.is_empty() || garbage.starts_with(b"HTTP/1.1 4"));
    still_serving(&app).await;
    app.stop().await;
}

crate::on_both_stores!(
    bad_tokens_are_invalid_token,
    tokens_expire_by_the_service_clock,
    bad_bodies_are_bad_request_or_too_large,
    bad_paths_and_ids,
);
