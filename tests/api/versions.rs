//! Whatever SQL is run by hand, a user's version only rises and a user id
//! names one user for ever: otherwise a cached record, or a cached "no such
//! user", could outlive the change that should have replaced it.

use std::time::Duration;

use crate::helpers::*;
use crate::on_both_stores;

/// Runs one statement outside the service and says whether the database
/// took it.
async fn try_sql(app: &TestApp, sql: &str) -> Result<(), sqlx::Error> {
    use sqlx::{Connection, Executor};
    match app.backend {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&app.db_url).await?;
            c.execute(sql).await.map(|_| ())
        }
        Backend::Postgres => {
            let mut c = sessiond_testkit::postgres_db::connect_sessiond(&app.db_url).await?;
            c.execute(sql).await.map(|_| ())
        }
    }
}

/// Asserts that the database refuses each statement, which would give
/// user `id` to another row.
async fn assert_refused(app: &TestApp, id: i64, statements: &[String]) {
    for sql in statements {
        let taken = try_sql(app, sql).await;
        assert!(
            matches!(taken, Err(sqlx::Error::Database(_))),
            "the database let id {id} change hands: {sql}: {taken:?}"
        );
    }
}

fn version(r: &Reply) -> i64 {
    r.body["cache"]["version"].as_i64().unwrap_or(0)
}

async fn a_version_lowered_by_hand_still_reaches_the_cache(b: Backend) {
    let app = spawn_on(b, |_| {}).await;
    let (id, token) = app.user_with_token("low@example.test", "editor").await;
    assert_eq!(app.session(&token).await.body["user"]["role"], "editor");
    // An acknowledged write fences out, on the node caching the user, every
    // record older than it ...
    assert_eq!(app.set_role(id, "auditor").await.status, 200);
    let before = app.session(&token).await;
    assert_eq!(before.body["user"]["role"], "auditor", "{}", before.text);
    assert_eq!(app.session(&token).await.body["cache"]["hit"], true);

    // ... then someone sets the version back by hand.
    app.outside_sql(&format!(
        "UPDATE users SET role = 'viewer', version = 1 WHERE id = {id}"
    ))
    .await;
    if b == Backend::Postgres {
        assert!(
            wait_for_role(&app, &token, "viewer", Duration::from_millis(500)).await,
            "the announced change did not replace the cached record"
        );
    } else {
        // SQLite announces nothing: the change shows on the next read.
        let forced = app.refresh(&token, true).await;
        assert_eq!(forced.status, 200, "{}", forced.text);
        assert_eq!(forced.body["user"]["role"], "viewer");
    }
    let after = app.session(&token).await;
    assert_eq!(after.status, 200, "{}", after.text);
    assert_eq!(after.body["user"]["role"], "viewer");
    assert!(
        version(&after) > version(&before),
        "version went from {} to {}",
        version(&before),
        version(&after)
    );
    app.stop().await;
}

async fn a_deleted_users_id_is_never_given_to_another_user(b: Backend) {
    let app = spawn_on(b, |_| {}).await;
    let (id, token) = app.user_with_token("gone@example.test", "user").await;
    assert_eq!(app.session(&token).await.status, 200);
    let deleted = app
        .admin("DELETE", &format!("/api/admin/users/{id}"), None)
        .await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    // The deleted user's token now resolves to a cached "no such user".
    app.session(&token)
        .await
        .assert_error(401, "session_revoked");

    // Someone inserts a new user by hand, under the deleted user's id.
    let row = "(id, email, password_hash, role, status, version, created_at, updated_at)";
    let mut attempts = vec![format!(
        "INSERT INTO users {row} VALUES ({id}, 'taker@example.test', 'x', 'admin', 'active', 1, 0, 0)"
    )];
    if b == Backend::Postgres {
        attempts.push(format!(
            "INSERT INTO users {row} OVERRIDING SYSTEM VALUE
             VALUES ({id}, 'taker@example.test', 'x', 'admin', 'active', 1, 0, 0)"
        ));
    }
    assert_refused(&app, id, &attempts).await;
    let lookup = app
        .admin("GET", &format!("/api/admin/users/{id}"), None)
        .await;
    lookup.assert_error(404, "not_found");
    // The old token names nobody, cached or read afresh.
    app.session(&token)
        .await
        .assert_error(401, "session_revoked");
    app.refresh(&token, true)
        .await
        .assert_error(401, "session_revoked");
    // Users created the ordinary way still get new ids.
    let next = app
        .create_user("next@example.test", "password-123", "user")
        .await;
    assert!(
        next > id,
        "new user got id {next}, the deleted one had {id}"
    );
    app.stop().await;
}

async fn a_live_users_id_cannot_be_taken_or_moved(b: Backend) {
    let app = spawn_on(b, |_| {}).await;
    let (id, token) = app.user_with_token("kept@example.test", "editor").await;
    assert_eq!(app.session(&token).await.status, 200);

    let mut attempts = vec![format!(
        "UPDATE users SET id = {} WHERE id = {id}",
        id + 1000
    )];
    if b == Backend::Sqlite {
        // Deletes the row and inserts another under the same id.
        attempts.push(format!(
            "INSERT OR REPLACE INTO users
               (id, email, password_hash, role, status, version, created_at, updated_at)
             VALUES ({id}, 'taker@example.test', 'x', 'admin', 'active', 1, 0, 0)"
        ));
    }
    assert_refused(&app, id, &attempts).await;
    let forced = app.refresh(&token, true).await;
    assert_eq!(forced.status, 200, "{}", forced.text);
    assert_eq!(forced.body["user"]["email"], "kept@example.test");
    assert_eq!(forced.body["user"]["role"], "editor");
    app.stop().await;
}

on_both_stores!(
    a_version_lowered_by_hand_still_reaches_the_cache,
    a_deleted_users_id_is_never_given_to_another_user,
    a_live_users_id_cannot_be_taken_or_moved,
);
