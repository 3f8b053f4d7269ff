//! A user cannot grow their own list of logged-out tokens without bound
//! (log in, log out, in a loop): the list every lookup of the user loads,
//! ships between nodes and scans stays within its cap, and every token
//! logged out stays revoked.

use crate::helpers::*;
use crate::on_both_stores;

const MAX: usize = sessiond::store::MAX_REVOKED_TOKENS;

async fn kept_revocations(app: &TestApp, email: &str) -> i64 {
    let db = sessiond::store::Db::connect(&app.db_url, sessiond::clock::Clock::new())
        .await
        .expect("opens");
    let (row, _) = db
        .credentials(email)
        .await
        .expect("reads")
        .expect("the user");
    match db.fetch_state(&row.id).await.expect("fetches") {
        sessiond_actors::Fetched::Found(s) => s.revoked_sids.len() as i64,
        sessiond_actors::Fetched::Missing => panic!("the user is gone"),
    }
}

async fn logging_in_and_out_in_a_loop_keeps_the_list_bounded(backend: Backend) {
    let app = spawn_on(backend, |_| {}).await;
    let email = "loop@example.test";
    app.create_user(email, "password-123", "user").await;
    let mut logged_out = Vec::new();
    for _ in 0..(2 * MAX + 10) {
        let token = app.login_ok(email, "password-123").await;
        let r = app
            .request("POST", "/api/auth/logout", Some(&token), None)
            .await;
        assert_eq!(r.status, 204, "{}", r.text);
        logged_out.push(token);
        let kept = kept_revocations(&app, email).await;
        assert!(kept <= MAX as i64, "{kept} revocations kept");
    }
    // Exact: every token logged out stays revoked.
    for token in &logged_out {
        app.session(token)
            .await
            .assert_error(401, "session_revoked");
    }
    let fresh = app.login_ok(email, "password-123").await;
    assert_eq!(app.session(&fresh).await.status, 200);
    app.stop().await;
}

on_both_stores!(logging_in_and_out_in_a_loop_keeps_the_list_bounded);
