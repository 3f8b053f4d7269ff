//! "Revoke all sessions" is a per-user counter (the session epoch), not a
//! wall-clock watermark: a node whose clock runs ahead cannot issue tokens
//! that outlive a revoke-all made through another node.

use std::time::Duration;

use crate::helpers::*;
use crate::on_both_stores;

async fn tokens_from_a_node_whose_clock_runs_ahead_are_revoked(backend: Backend) {
    let writer = spawn_on(backend, |_| {}).await;
    // A second node on the same database, its clock 2 s ahead.
    let dir = tempfile::tempdir().expect("temp dir");
    let ahead = spawn_at(backend, writer.db_url.clone(), None, dir, |_| {}).await;
    ahead.ctx.clock.advance(Duration::from_secs(2));

    let id = writer
        .create_user("ahead@example.test", "password-123", "user")
        .await;
    let token = ahead.login_ok("ahead@example.test", "password-123").await;
    assert_eq!(ahead.session(&token).await.status, 200);
    assert_eq!(writer.session(&token).await.status, 200);

    let r = writer
        .admin(
            "POST",
            &format!("/api/admin/users/{id}/revoke-sessions"),
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    for app in [&writer, &ahead] {
        app.session(&token)
            .await
            .assert_error(401, "session_revoked");
    }

    // Tokens issued after the revoke, on either node, work.
    for app in [&writer, &ahead] {
        let fresh = app.login_ok("ahead@example.test", "password-123").await;
        assert_eq!(writer.session(&fresh).await.status, 200);
        assert_eq!(ahead.session(&fresh).await.status, 200);
    }
    ahead.stop().await;
    writer.stop().await;
}

on_both_stores!(tokens_from_a_node_whose_clock_runs_ahead_are_revoked);
