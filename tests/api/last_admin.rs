//! The last active administrator cannot be demoted, deactivated or
//! deleted, even by two administrators demoting each other at once.

use serde_json::json;

use crate::helpers::*;

async fn put_role(app: &TestApp, token: &str, id: i64, role: &str) -> Reply {
    let body = json!({ "role": role }).to_string();
    app.request(
        "PUT",
        &format!("/api/admin/users/{id}/role"),
        Some(token),
        Some(&body),
    )
    .await
}

async fn the_only_admin_cannot_remove_themselves(b: Backend) {
    let app = spawn_on(b, |_| {}).await;
    let me = app.session(&app.admin_token).await.body["user"]["id"]
        .as_i64()
        .expect("admin id");
    put_role(&app, &app.admin_token, me, "viewer")
        .await
        .assert_error(409, "conflict");
    app.admin("POST", &format!("/api/admin/users/{me}/deactivate"), None)
        .await
        .assert_error(409, "conflict");
    app.admin("DELETE", &format!("/api/admin/users/{me}"), None)
        .await
        .assert_error(409, "conflict");
    // Still an administrator: admin routes answer.
    let r = app
        .admin("GET", &format!("/api/admin/users/{me}"), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["role"], "admin");
    assert_eq!(r.body["status"], "active");
    // With a second active admin, the first may step down.
    app.create_user("second@example.test", "password-123", "admin")
        .await;
    let r = put_role(&app, &app.admin_token, me, "viewer").await;
    assert_eq!(r.status, 200, "{}", r.text);
    app.stop().await;
}

async fn two_admins_demoting_each_other_leave_one(b: Backend) {
    let app = spawn_on(b, |_| {}).await;
    let a_id = app.session(&app.admin_token).await.body["user"]["id"]
        .as_i64()
        .expect("admin id");
    let (b_id, b_token) = app.user_with_token("second@example.test", "admin").await;
    let a_token = app.admin_token.clone();
    let mut both_refused = 0;
    for round in 0..25 {
        let (ra, rb) = tokio::join!(
            put_role(&app, &a_token, b_id, "viewer"),
            put_role(&app, &b_token, a_id, "viewer"),
        );
        assert!(
            !(ra.status == 200 && rb.status == 200),
            "round {round}: both admins demoted each other"
        );
        for r in [&ra, &rb] {
            assert!(
                [200, 403, 409].contains(&r.status),
                "round {round}: {} {}",
                r.status,
                r.text
            );
        }
        // The one left an admin promotes the other back for the next round.
        let (winner, loser) = if ra.status == 200 {
            (&a_token, b_id)
        } else if rb.status == 200 {
            (&b_token, a_id)
        } else {
            both_refused += 1;
            continue;
        };
        let r = put_role(&app, winner, loser, "admin").await;
        assert_eq!(r.status, 200, "round {round}: re-promotion: {}", r.text);
    }
    // Both still work as administrators at the end.
    for t in [&a_token, &b_token] {
        let r = app
            .request("GET", &format!("/api/admin/users/{a_id}"), Some(t), None)
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    assert!(both_refused < 25, "every round refused both demotions");
    app.stop().await;
}

crate::on_both_stores!(
    the_only_admin_cannot_remove_themselves,
    two_admins_demoting_each_other_leave_one
);
