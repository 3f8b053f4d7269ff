//! A steady stream of changes (200 a second, each its own transaction, as
//! logouts and role changes from many clients would make) must not stop
//! lease renewals: a grant is refused when the head moves between the
//! renewal's read of the log and the grant, and the keeper reads again at
//! once; under a steady stream that must still win, every time, well
//! within a lease (docs/freshness.md, "Liveness").

use std::time::{Duration, Instant};

use super::{Findings, Pair, Place};
use crate::helpers::Backend;

/// The stream: this many changes a second, for this long.
const PER_SECOND: u32 = 200;
const FOR: Duration = Duration::from_secs(15);
/// Users the stream changes in turn.
const USERS: u32 = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(pg_tests),
    ignore = "set SESSIOND_TEST_POSTGRES_URL to run the PostgreSQL tests"
)]
async fn postgres_200_changes_a_second_do_not_stop_renewals() {
    let test = "postgres_200_changes_a_second_do_not_stop_renewals";
    let pair = Pair::start(Backend::Postgres, Place::Loopback).await;
    let mut findings = Findings::default();
    let mut c = sessiond_testkit::postgres_db::connect_sessiond(&pair.db.url)
        .await
        .expect("connects");
    // The stream's commits need not wait for the disk: the rate is what
    // is tested, not the server's fsync.
    sqlx::query("SET synchronous_commit = off")
        .execute(&mut c)
        .await
        .expect("sets");
    let first: i64 = sqlx::query_scalar(&format!(
        "INSERT INTO users (email, password_hash, role, status, version, created_at, updated_at)
         SELECT 'steady' || g || '@example.test', 'x', 'user', 'active', 1, 0, 0
           FROM generate_series(1, {USERS}) g
         RETURNING id"
    ))
    .fetch_all(&mut c)
    .await
    .expect("inserts")
    .into_iter()
    .min()
    .expect("ids");
    let lost_before = [
        pair.a.metric(&pair.http, "sessiond_lease_lost_total").await,
        pair.b.metric(&pair.http, "sessiond_lease_lost_total").await,
    ];

    // The stream, on a connection of its own; the probes, meanwhile.
    let stream = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1) / PER_SECOND);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let started = Instant::now();
        let mut n: i64 = 0;
        while started.elapsed() < FOR {
            tick.tick().await;
            let id = first + n % i64::from(USERS);
            sqlx::query(
                "UPDATE users SET role = CASE role WHEN 'user' THEN 'viewer' ELSE 'user' END
                  WHERE id = $1",
            )
            .bind(id)
            .execute(&mut c)
            .await
            .expect("changes a user");
            n += 1;
        }
        (n, started.elapsed())
    });
    let mut probes = 0;
    let mut unready = Vec::new();
    while !stream.is_finished() {
        for node in [&pair.a, &pair.b] {
            let valid = node.metric(&pair.http, "sessiond_lease_valid").await;
            probes += 1;
            if valid != Some(1.0) {
                unready.push(format!("{}: sessiond_lease_valid {valid:?}", node.name()));
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (changes, took) = stream.await.expect("the stream ran");
    let rate = changes as f64 / took.as_secs_f64();
    let lost_after = [
        pair.a.metric(&pair.http, "sessiond_lease_lost_total").await,
        pair.b.metric(&pair.http, "sessiond_lease_lost_total").await,
    ];
    eprintln!(
        "{test}: {changes} changes in {:.1} s ({rate:.0}/s); {probes} probes; leases lost on a, b \
         before {lost_before:?}, after {lost_after:?}",
        took.as_secs_f64()
    );
    if rate < f64::from(PER_SECOND) * 0.9 {
        findings.add(format!(
            "the stream ran at {rate:.0} changes/s, under {PER_SECOND}: nothing was shown"
        ));
    }
    if lost_after != lost_before {
        findings.add(format!(
            "a lease lapsed under the stream: sessiond_lease_lost_total {lost_before:?} -> \
             {lost_after:?}"
        ));
    }
    for u in unready {
        findings.check("a probe under the stream", Err(u));
    }
    pair.finish().await;
    findings.assert_none(test);
}
