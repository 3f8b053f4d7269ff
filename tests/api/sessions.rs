//! Session resolution end to end: roles, revocation, admin rights.

use std::time::Duration;

use serde_json::json;

use crate::helpers::*;

async fn login_then_session_shows_the_current_record(b: Backend) {
    let app = spawn_on(b, |_| {}).await;
    let (id, token) = app.user_with_token("ann@example.test", "editor").await;

    let r = app.session(&token).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["user"]["id"], id);
    assert_eq!(r.body["user"]["email"], "ann@example.test");
    assert_eq!(r.body["user"]["role"], "editor");
    assert_eq!(r.body["user"]["status"], "active");
    assert_eq!(r.body["cache"]["hit"], false);
    assert_eq!(r.body["cache"]["ttl_ms"], 300_000);
    assert_eq!(r.body["cache"]["node"], "local");
    assert!(r.body["cache"]["version"].as_i64().is_some());
    let expires = r.body["expires"].as_str().expect("expires");
    assert!(expires.ends_with('Z') && expires.len() == 20, "{expires}");

    let again = app.session(&token).await;
    assert_eq!(
        again.body["cache"]["hit"], true,
        "second call is a cache hit"
    );
    assert_eq!(again.body["user"], r.body["user"]);

    let login = app.login("ann@example.test", "password-123").await;
    assert_eq!(login.body["token_type"], "Bearer");
    assert_eq!(login.body["user"]["role"], "editor");
    assert!(login.body["expires_at"].as_str().is_some());
    app.stop().await;
}

async fn role_change_is_seen_on_the_very_next_call(b: Backend) {
    let app = spawn_on(b, |_| {}).await;
    let (id, token) = app.user_with_token("bo@example.test", "editor").await;
    // Warm the cache: the old role is cached for five minutes.
    app.session(&token).await;
    assert_eq!(app.session(&token).await.body["cache"]["hit"], true);

    let r = app.set_role(id, "viewer").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["role"], "viewer");

    let s = app.session(&token).await;
    assert_eq!(s.body["user"]["role"], "viewer");
    assert_eq!(s.body["cache"]["hit"], false);
    app.stop().await;
}

async fn outside_change_shows_after_ttl_or_at_once_on_forced_refresh(b: Backend) {
    let app = spawn_on(b, |s| s.cache_ttl = Duration::from_secs(2)).await;
    let (id, token) = app.user_with_token("cy@example.test", "editor").await;
    assert_eq!(app.session(&token).await.body["user"]["role"], "editor");

    app.outside_sql(&format!(
        "UPDATE users SET role = 'auditor' WHERE id = {id}"
    ))
    .await;
    if b == Backend::Postgres {
        // PostgreSQL announces the change: no waiting for the TTL.
        let seen = wait_for_role(&app, &token, "auditor", Duration::from_millis(500)).await;
        assert!(seen, "a change made by hand reaches the cache at once");
    } else {
        // Within the TTL the cached record is still served ...
        let cached = app.session(&token).await;
        assert_eq!(cached.body["user"]["role"], "editor");
        assert_eq!(cached.body["cache"]["hit"], true);
        // ... a forced refresh reads the database at once ...
        let forced = app.refresh(&token, true).await;
        assert_eq!(forced.status, 200, "{}", forced.text);
        assert_eq!(forced.body["user"]["role"], "auditor");
        assert_eq!(forced.body["cache"]["hit"], false);
    }
    // An unforced refresh answers from the cache; a forced one reads.
    let unforced = app.refresh(&token, false).await;
    assert_eq!(unforced.body["user"]["role"], "auditor");
    assert_eq!(unforced.body["cache"]["hit"], true);
    let forced = app.refresh(&token, true).await;
    assert_eq!(forced.body["cache"]["hit"], false);

    if b == Backend::Sqlite {
        app.outside_sql(&format!("UPDATE users SET role = 'viewer' WHERE id = {id}"))
            .await;
        assert_eq!(app.session(&token).await.body["user"]["role"], "auditor");
        tokio::time::sleep(Duration::from_millis(2100)).await;
        let expired = app.session(&token).await;
        assert_eq!(
            expired.body["user"]["role"], "viewer",
            "shown after the TTL"
        );
        assert_eq!(expired.body["cache"]["hit"], false);
        // The by-hand writes bumped the version (a trigger does it).
        assert!(expired.body["cache"]["version"].as_i64().unwrap_or(0) >= 3);
    }
    app.stop().await;
}

async fn deactivation_revokes_at_once_and_reactivation_needs_a_new_login(b: Backend) {
    let app = spawn_on(b, |_| {}).await;
    let (id, token) = app.user_with_token("di@example.test", "user").await;
    assert_eq!(app.session(&token).await.status, 200);

    let r = app
        .admin("POST", &format!("/api/admin/users/{id}/deactivate"), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "deactivated");
    app.session(&token)
        .await
        .assert_error(401, "session_revoked");
    app.login("di@example.test", "password-123")
        .await
        .assert_error(403, "forbidden");

    let r = app
        .admin("POST", &format!("/api/admin/users/{id}/activate"), None)
        .await;
    assert_eq!(r.body["status"], "active");
    app.session(&token)
        .await
        .assert_error(401, "session_revoked");
    let fresh = app.login_ok("di@example.test", "password-123").await;
    assert_eq!(app.session(&fresh).await.status, 200);
    app.stop().await;
}

async fn deletion_revokes_at_once(b: Backend) {
    let app = spawn_on(b, |_| {}).await;
    let (id, token) = app.user_with_token("del@example.test", "user").await;
    assert_eq!(app.session(&token).await.status, 200);
    let r = app
        .admin("DELETE", &format!("/api/admin/users/{id}"), None)
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    app.session(&token)
        .await
        .assert_error(401, "session_revoked");
    app.admin("GET", &format!("/api/admin/users/{id}"), None)
        .await
        .assert_error(404, "not_found");
    app.admin("DELETE", &format!("/api/admin/users/{id}"), None)
        .await
        .assert_error(404, "not_found");
    app.stop().await;
}

async fn logout_revokes_only_that_token(b: Backend) {
    let app = spawn_on(b, |_| {}).await;
    let (_, first) = app.user_with_token("lo@example.test", "user").await;
    let second = app.login_ok("lo@example.test", "password-123").await;
    assert_eq!(app.session(&first).await.status, 200);
    assert_eq!(app.session(&second).await.status, 200);

    let r = app
        .request("POST", "/api/auth/logout", Some(&first), None)
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    app.session(&first)
        .await
        .assert_error(401, "session_revoked");
    assert_eq!(app.session(&second).await.status, 200);
    app.request("POST", "/api/auth/logout", Some(&first), None)
        .await
        .assert_error(401, "session_revoked");
    app.stop().await;
}

async fn revoke_sessions_revokes_every_earlier_token(b: Backend) {
    let app = spawn_on(b, |_| {}).await;
    let (id, first) = app.user_with_token("rv@example.test", "user").await;
    let second = app.login_ok("rv@example.test", "password-123").await;
    assert_eq!(app.session(&first).await.status, 200);

    let r = app
        .admin(
            "POST",
            &format!("/api/admin/users/{id}/revoke-sessions"),
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    app.session(&first)
        .await
        .assert_error(401, "session_revoked");
    app.session(&second)
        .await
        .assert_error(401, "session_revoked");
    let after = app.login_ok("rv@example.test", "password-123").await;
    assert_eq!(app.session(&after).await.status, 200);
    app.stop().await;
}

async fn a_demoted_admin_loses_admin_routes_at_once(b: Backend) {
    let app = spawn_on(b, |_| {}).await;
    let (id, token) = app.user_with_token("boss@example.test", "admin").await;
    let r = app
        .request("GET", "/api/admin/users/1", Some(&token), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["email"], ADMIN_EMAIL);

    assert_eq!(app.set_role(id, "user").await.status, 200);
    app.request("GET", "/api/admin/users/1", Some(&token), None)
        .await
        .assert_error(403, "forbidden");
    // Still a valid session, just not an admin one.
    assert_eq!(app.session(&token).await.body["user"]["role"], "user");
    app.stop().await;
}

async fn admin_api_answers_and_refuses_as_documented(b: Backend) {
    let app = spawn_on(b, |_| {}).await;
    let (id, token) = app.user_with_token("plain@example.test", "user").await;
    app.request("GET", &format!("/api/admin/users/{id}"), Some(&token), None)
        .await
        .assert_error(403, "forbidden");
    app.request("GET", &format!("/api/admin/users/{id}"), None, None)
        .await
        .assert_error(401, "invalid_token");

    let r = app
        .admin("GET", &format!("/api/admin/users/{id}"), None)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body,
        json!({"id": id, "email": "plain@example.test", "role": "user", "status": "active"})
    );
    let dup = json!({"email": "PLAIN@example.test", "password": "password-123"}).to_string();
    app.admin("POST", "/api/admin/users", Some(&dup))
        .await
        .assert_error(409, "conflict");
    let r = app
        .admin("POST", &format!("/api/admin/users/{id}/invalidate"), None)
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let s = app.session(&token).await;
    assert_eq!(
        s.body["cache"]["hit"], false,
        "invalidated record is re-read"
    );
    app.set_role(9_999, "user")
        .await
        .assert_error(404, "not_found");
    app.admin("POST", "/api/admin/users/9999/deactivate", None)
        .await
        .assert_error(404, "not_found");
    app.admin("POST", "/api/admin/users/9999/revoke-sessions", None)
        .await
        .assert_error(404, "not_found");
    app.stop().await;
}

async fn wrong_credentials_are_refused_alike(b: Backend) {
    let app = spawn_on(b, |_| {}).await;
    app.create_user("wc@example.test", "password-123", "user")
        .await;
    app.login("wc@example.test", "wrong-password")
        .await
        .assert_error(401, "invalid_credentials");
    app.login("nobody@example.test", "password-123")
        .await
        .assert_error(401, "invalid_credentials");
    // Emails are case-insensitive.
    assert_eq!(
        app.login("WC@Example.Test", "password-123").await.status,
        200
    );
    app.stop().await;
}

async fn ops_endpoints_report_what_happened(b: Backend) {
    let app = spawn_on(b, |_| {}).await;
    let (_, token) = app.user_with_token("ops@example.test", "user").await;
    app.session(&token).await;
    app.session(&token).await;

    let h = app.request("GET", "/healthz", None, None).await;
    assert_eq!(h.status, 200);
    let r = app.request("GET", "/readyz", None, None).await;
    assert_eq!(r.status, 200, "{}", r.text);

    let perf = app.request("GET", "/api/perf", None, None).await;
    assert_eq!(perf.status, 200);
    let p = &perf.body;
    for key in [
        "uptime_s",
        "requests",
        "hits",
        "misses",
        "hit_rate",
        "db_queries",
        "session_actors",
        "invalidations",
    ] {
        assert!(p[key].is_number(), "{key} in {}", perf.text);
    }
    assert!(p["hits"].as_u64().unwrap_or(0) >= 1);
    assert!(p["misses"].as_u64().unwrap_or(0) >= 1);
    assert!(p["db_queries"].as_u64().unwrap_or(0) >= 1);
    assert!(p["latency_ms"]["hit"]["p50"].is_number());
    assert!(p["latency_ms"]["miss"]["p99"].is_number());
    assert_eq!(p["node"], "local");
    assert_eq!(p["members"], json!(["local"]));

    let m = app.request("GET", "/metrics", None, None).await;
    assert_eq!(m.status, 200);
    assert!(m
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/plain")));
    for name in [
        "sessiond_cache_hits_total",
        "sessiond_cache_misses_total{reason=\"cold\"}",
        "sessiond_db_queries_total",
        "sessiond_http_requests_total{route=\"/api/auth/session\",status=\"200\"}",
        "sessiond_http_request_seconds_bucket{route=\"/api/auth/session\"",
        "sessiond_resolve_seconds_bucket{outcome=\"hit\"",
        "sessiond_session_actors",
        "sessiond_stale_served_seconds_bucket",
    ] {
        assert!(m.text.contains(name), "{name} missing from /metrics");
    }
    assert!(p["windows"]["1m"]["hits"].as_u64().unwrap_or(0) >= 1);
    assert!(p["windows"]["5m"]["db_queries_per_s"].is_number());
    assert!(p["windows"]["5m"]["served_age_s"]["p99"].is_number());
    assert!(p["recommendations"].is_array());
    assert!(!p["series"].as_array().map(|s| s.is_empty()).unwrap_or(true));

    // The dashboard is one self-contained page: nothing fetched from elsewhere.
    let page = app.request("GET", "/", None, None).await;
    assert_eq!(page.status, 200);
    assert!(page
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/html")));
    assert!(page.text.contains("id=\"hit-rate\"") && page.text.contains("/api/perf"));
    assert!(!page.text.contains("http://") && !page.text.contains("https://"));
    app.stop().await;
}

crate::on_both_stores!(
    login_then_session_shows_the_current_record,
    role_change_is_seen_on_the_very_next_call,
    outside_change_shows_after_ttl_or_at_once_on_forced_refresh,
    deactivation_revokes_at_once_and_reactivation_needs_a_new_login,
    deletion_revokes_at_once,
    logout_revokes_only_that_token,
    revoke_sessions_revokes_every_earlier_token,
    a_demoted_admin_loses_admin_routes_at_once,
    admin_api_answers_and_refuses_as_documented,
    wrong_credentials_are_refused_alike,
    ops_endpoints_report_what_happened,
);
