//! A transaction left open in the database (a person in psql who forgot to
//! commit) holding a user's row, or the change log's head that every write
//! and every lease grant goes through. For as long as it is open:
//!
//! - API writes that need what it holds fail fast (503 `locked`), rather
//!   than queue behind it;
//! - lookups keep being answered, and correctly: the committed record
//!   (from the cache while a node holds its lease, read through after);
//! - no node goes out of rotation: each can still answer correctly by
//!   reading through, which is what `/readyz` says (docs/freshness.md,
//!   "Readiness"), even once every node lost its lease to the held head.
//!
//! Once it ends, writes go through again.

use std::time::{Duration, Instant};

use sqlx::Connection;

use super::{ms, CachedUser, Findings, Pair, Place};
use crate::helpers::Backend;

/// How long the transaction stays open.
const HOLD: Duration = Duration::from_secs(30);
/// A write refused for a held lock answers within this: the lock timeout
/// (1 s), perhaps once more behind another write that waits for it, and
/// slack for a loaded machine.
const FAIL_FAST: Duration = Duration::from_millis(3500);

/// What the open transaction holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Held {
    /// One user's row (`SELECT … FOR UPDATE`).
    UserRow,
    /// A user's row changed and not committed: the trigger has taken the
    /// change log's head too (on SQLite, the one write lock).
    Head,
}

/// A connection of its own with a transaction left open.
enum Open {
    Pg(sqlx::PgConnection),
    Sqlite(sqlx::SqliteConnection),
}

impl Open {
    async fn begin(backend: Backend, url: &str, held: Held, user: i64) -> Open {
        let statement = match held {
            Held::UserRow => format!("SELECT id FROM users WHERE id = {user} FOR UPDATE"),
            Held::Head => format!("UPDATE users SET role = 'uncommitted' WHERE id = {user}"),
        };
        match backend {
            Backend::Postgres => {
                let mut c = sessiond_testkit::postgres_db::connect_sessiond(url)
                    .await
                    .expect("connects");
                sqlx::query("BEGIN").execute(&mut c).await.expect("begins");
                sqlx::query(&statement)
                    .execute(&mut c)
                    .await
                    .expect("takes the lock");
                Open::Pg(c)
            }
            Backend::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(url)
                    .await
                    .expect("opens the database file");
                sqlx::query("BEGIN IMMEDIATE")
                    .execute(&mut c)
                    .await
                    .expect("begins");
                sqlx::query(&statement)
                    .execute(&mut c)
                    .await
                    .expect("takes the lock");
                Open::Sqlite(c)
            }
        }
    }

    async fn rollback(self) {
        match self {
            Open::Pg(mut c) => {
                sqlx::query("ROLLBACK")
                    .execute(&mut c)
                    .await
                    .expect("rolls back");
            }
            Open::Sqlite(mut c) => {
                sqlx::query("ROLLBACK")
                    .execute(&mut c)
                    .await
                    .expect("rolls back");
            }
        }
    }
}

async fn set_role(
    pair: &Pair,
    user: &CachedUser,
    role: &str,
) -> (u16, serde_json::Value, Duration) {
    let body = serde_json::json!({ "role": role }).to_string();
    let sent = Instant::now();
    let r = pair
        .http
        .call(
            pair.a.http(),
            "PUT",
            &format!("/api/admin/users/{}/role", user.id),
            Some(&pair.admin),
            Some(&body),
        )
        .await;
    (r.status, r.body, sent.elapsed())
}

async fn transaction_left_open(backend: Backend, held: Held, test: &str) {
    let pair = Pair::start(backend, Place::Loopback).await;
    // `locked` is the user whose row is held; `other` one no one holds.
    let users = pair.users_cached_on_b(2).await;
    let (locked, other) = (&users[0], &users[1]);
    let mut findings = Findings::default();
    let open = Open::begin(
        backend,
        &pair.db.url,
        held,
        match held {
            Held::UserRow => locked.id,
            Held::Head => other.id,
        },
    )
    .await;
    let opened = Instant::now();
    let (mut writes, mut reads, mut probes) = (0, 0, 0);
    let mut slowest = Duration::ZERO;
    let mut round = 0u32;
    while opened.elapsed() < HOLD {
        round += 1;
        // A write of the held user (and, with the head held, any write)
        // fails fast, saying why.
        if round % 5 == 1 {
            let (status, body, took) = set_role(&pair, locked, "blocked").await;
            writes += 1;
            slowest = slowest.max(took);
            if status != 503 || body["error"] != "locked" || took > FAIL_FAST {
                findings.check(
                    "a write while the lock is held",
                    Err(format!(
                        "{status} {body} after {} (503 locked within {} expected)",
                        ms(took),
                        ms(FAIL_FAST)
                    )),
                );
            }
        }
        // Lookups go on, with the committed records, on both nodes.
        for node in [&pair.a, &pair.b] {
            for user in &users {
                let a = pair.session(node, &user.token).await;
                reads += 1;
                let right = a.status == 200
                    && a.body["user"]["role"] == user.role.as_str()
                    && a.body["user"]["status"] == "active";
                if !right {
                    findings.check(
                        format!("a lookup on {} of user {}", node.name(), user.id),
                        Err(format!("{} {}", a.status, a.body)),
                    );
                }
            }
            // And every node that can answer correctly stays in rotation.
            let r = pair.http.get(node.http(), "/readyz", None).await;
            probes += 1;
            if r.status != 200 {
                findings.check(
                    format!("/readyz on {}", node.name()),
                    Err(format!("{} {}", r.status, r.body)),
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let lease_valid = [
        pair.a.metric(&pair.http, "sessiond_lease_valid").await,
        pair.b.metric(&pair.http, "sessiond_lease_valid").await,
    ];
    open.rollback().await;
    eprintln!(
        "{test}: {held:?} held {}: {writes} writes refused (slowest {}), {reads} lookups, \
         {probes} readiness probes; sessiond_lease_valid at the end on a, b: {lease_valid:?}",
        ms(opened.elapsed()),
        ms(slowest)
    );
    if held == Held::Head && lease_valid.iter().any(|v| *v != Some(0.0)) {
        findings.add(format!(
            "with the head held no lease can be granted, yet sessiond_lease_valid is \
             {lease_valid:?} (the test did not hold what it meant to)"
        ));
    }

    // Released: writes go through again, and every node shows them.
    let done = Instant::now();
    let (status, body, took) = loop {
        let (status, body, took) = set_role(&pair, locked, "after").await;
        if status == 200 || done.elapsed() > Duration::from_secs(10) {
            break (status, body, took);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    if status != 200 {
        findings.add(format!(
            "a write after the rollback: {status} {body} after {}",
            ms(took)
        ));
    } else {
        for node in [&pair.a, &pair.b] {
            let a = pair.session(node, &locked.token).await;
            if a.status != 200 || a.body["user"]["role"] != "after" {
                findings.add(format!(
                    "{} after the write that followed the rollback: {} {}",
                    node.name(),
                    a.status,
                    a.body
                ));
            }
        }
    }
    pair.finish().await;
    findings.assert_none(test);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(pg_tests),
    ignore = "set SESSIOND_TEST_POSTGRES_URL to run the PostgreSQL tests"
)]
async fn postgres_user_row_held_open_for_30_s() {
    transaction_left_open(
        Backend::Postgres,
        Held::UserRow,
        "postgres_user_row_held_open_for_30_s",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(pg_tests),
    ignore = "set SESSIOND_TEST_POSTGRES_URL to run the PostgreSQL tests"
)]
async fn postgres_change_head_held_open_for_30_s() {
    transaction_left_open(
        Backend::Postgres,
        Held::Head,
        "postgres_change_head_held_open_for_30_s",
    )
    .await;
}

/// SQLite's one write lock, held: the head and every row with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_write_lock_held_open_for_30_s() {
    transaction_left_open(
        Backend::Sqlite,
        Held::Head,
        "sqlite_write_lock_held_open_for_30_s",
    )
    .await;
}
