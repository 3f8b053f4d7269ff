//! The change log and the leases cannot be emptied by hand: TRUNCATE fires
//! no row trigger, so nothing would tell the nodes, and the numbers they
//! have seen would be handed out again (or writers would stop waiting for
//! nodes that still answer from their caches).

use crate::helpers::*;

/// Runs `sql` outside the service; the database's error, if any.
async fn try_sql(db_url: &str, sql: &str) -> Result<(), String> {
    let mut c = sessiond_testkit::postgres_db::connect_sessiond(db_url)
        .await
        .expect("connects");
    sqlx::query(sql)
        .execute(&mut c)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[tokio::test]
#[cfg_attr(
    not(pg_tests),
    ignore = "set SESSIOND_TEST_POSTGRES_URL to run the PostgreSQL tests"
)]
async fn postgres_refuses_emptying_the_log_and_the_leases() {
    let app = spawn_on(Backend::Postgres, |_| {}).await;
    for sql in [
        "TRUNCATE sessiond_changes",
        "TRUNCATE sessiond_change_head",
        "TRUNCATE sessiond_leases",
        "DELETE FROM sessiond_change_head",
    ] {
        match try_sql(&app.db_url, sql).await {
            Ok(()) => panic!("{sql}: accepted"),
            Err(e) => assert!(e.contains("is refused"), "{sql}: {e}"),
        }
    }
    // What sessiond itself does still works: a write logs a change.
    let id = app
        .create_user("guard@example.test", "password-123", "user")
        .await;
    assert_eq!(app.set_role(id, "viewer").await.status, 200);
    app.stop().await;
}

#[tokio::test]
async fn sqlite_refuses_deleting_the_head_of_the_log() {
    let app = spawn_on(Backend::Sqlite, |_| {}).await;
    use sqlx::Connection;
    let mut c = sqlx::SqliteConnection::connect(&app.db_url)
        .await
        .expect("opens");
    let r = sqlx::query("DELETE FROM sessiond_change_head")
        .execute(&mut c)
        .await;
    match r {
        Ok(_) => panic!("DELETE FROM sessiond_change_head: accepted"),
        Err(e) => assert!(e.to_string().contains("is refused"), "{e}"),
    }
    drop(c);
    app.stop().await;
}
