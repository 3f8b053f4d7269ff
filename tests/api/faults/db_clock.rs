//! The database host's clock steps forward, then back, while a node that
//! holds a lease is cut off: NTP stepping the clock, a VM resumed, a
//! failover to a standby whose clock is ahead or behind. The node counts
//! its lease on its own monotonic clock whatever the database's clock says,
//! so a writer must wait for it (forward step) and must not wait past one
//! lease for it (backward step).
//!
//! The step is played through `sessiond_test_clock`, a shift the lease
//! statements add to the database's clock (always 0 in service). On
//! PostgreSQL only: a node that reaches a SQLite file keeps renewing, and
//! so applies the change within a quarter of a lease, before the writer
//! is done sending to the members it cannot reach.

use std::time::{Duration, Instant};

use super::netns::{self, Link};
use super::{judge, ms, Change, Findings, Pair, Place, Written, LEASE};
use crate::helpers::{outside_sql, Backend};

/// How far the database's clock is stepped, each way: far more than a
/// lease.
const STEP: Duration = Duration::from_secs(10);
/// How long an acknowledged write may take while a node is cut off: the
/// lease plus its drift margin, plus slack for a loaded machine.
const WRITE_BOUND: Duration = LEASE.saturating_add(Duration::from_millis(2500));

async fn shift_database_clock(pair: &Pair, backend: Backend, by_ms: i64) {
    outside_sql(
        backend,
        &pair.db.url,
        &format!("UPDATE sessiond_test_clock SET offset_ms = {by_ms} WHERE id = 1"),
    )
    .await;
}

async fn database_clock_steps_with_a_cut_off_holder(backend: Backend, links: &[Link], test: &str) {
    if !netns::available_or_skip(test) {
        return;
    }
    let pair = Pair::start(backend, Place::Namespace).await;
    let users = pair.users_cached_on_b(2).await;
    let step = i64::try_from(STEP.as_millis()).unwrap_or(i64::MAX);
    let steps = [
        (step, Change::Role("demoted".into())),
        (-step, Change::Deactivate),
    ];
    let mut findings = Findings::default();

    // b holds its lease and both users; from now on it hears nothing from
    // a (and, on PostgreSQL, nothing from the database).
    let cut_at = Instant::now();
    for link in links {
        pair.host().cut(*link);
    }
    let mut acked = 0;
    for (user, (shift, change)) in users.iter().zip(&steps) {
        shift_database_clock(&pair, backend, *shift).await;
        let (written, took) = pair.write(user, change).await;
        eprintln!(
            "{test}: database clock shifted by {shift} ms; {change:?} of user {} through a: \
             {written:?} after {} (cut {} ago)",
            user.id,
            ms(took),
            ms(cut_at.elapsed())
        );
        let Written::Acked = written else {
            continue;
        };
        acked += 1;
        if took > WRITE_BOUND {
            findings.add(format!(
                "{change:?} with the database's clock shifted by {shift} ms acknowledged \
                 after {}, more than {}",
                ms(took),
                ms(WRITE_BOUND)
            ));
        }
        // Sent after the acknowledgement: never the old record.
        for _ in 0..10 {
            let a = pair.session(&pair.b, &user.token).await;
            findings.check(
                format!("b, database clock shifted by {shift} ms, user {}", user.id),
                judge(user, change, &a),
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    if acked == 0 {
        findings.add("no write was acknowledged: nothing was checked");
    }

    // The clock set right and the links healed: b comes back, and still
    // never shows the old records.
    shift_database_clock(&pair, backend, 0).await;
    if !pair.heal_and_wait_ready(links).await {
        findings.add("b not ready again within 15 s of the heal");
    }
    for (user, (_, change)) in users.iter().zip(&steps) {
        let a = pair.session(&pair.b, &user.token).await;
        findings.check(
            format!("b after the heal, user {}", user.id),
            judge(user, change, &a),
        );
    }
    pair.finish().await;
    findings.assert_none(test);
}

/// PostgreSQL reached through the cut link: b holds its lease on its own
/// clock, and can neither renew nor hear the invalidation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(pg_tests),
    ignore = "set SESSIOND_TEST_POSTGRES_URL to run the PostgreSQL tests"
)]
async fn postgres_database_clock_moved_forward_and_back_with_a_partitioned_holder() {
    database_clock_steps_with_a_cut_off_holder(
        Backend::Postgres,
        &[Link::Peer, Link::Db],
        "postgres_database_clock_moved_forward_and_back_with_a_partitioned_holder",
    )
    .await;
}
