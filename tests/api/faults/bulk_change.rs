//! A bulk change (an UPDATE of a million users, made in psql): a node that
//! would have more changes to read from the log than a renewal has time
//! for drops its whole cache and takes the head instead, so it keeps its
//! lease and answers the new records at once.
//!
//! "More than it can read" is `--lease-catch-up`, made small here (100)
//! so that a change of a couple of thousand rows stands for the million.

use std::time::{Duration, Instant};

use super::{ms, Findings, Pair, Place, LEASE};
use crate::helpers::{outside_sql, Backend};

/// The catch-up bound the nodes run with, and the change, far past it.
const CATCH_UP: &str = "100";
const BULK_USERS: u32 = 2000;

/// `sessiond_cache_flushes_total{reason="lease"}` on `node` (0 when absent).
async fn lease_flushes(pair: &Pair, node: &sessiond_testkit::process::Sessiond) -> f64 {
    node.metric(&pair.http, "sessiond_cache_flushes_total{reason=\"lease\"}")
        .await
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(pg_tests),
    ignore = "set SESSIOND_TEST_POSTGRES_URL to run the PostgreSQL tests"
)]
async fn postgres_bulk_change_past_the_catch_up_flushes_and_keeps_the_lease() {
    let test = "postgres_bulk_change_past_the_catch_up_flushes_and_keeps_the_lease";
    let pair = Pair::start_with(
        Backend::Postgres,
        Place::Loopback,
        &["--lease-catch-up", CATCH_UP],
    )
    .await;
    let users = pair.users_cached_on_b(2).await;
    let mut findings = Findings::default();
    let flushes_before = lease_flushes(&pair, &pair.b).await;
    let lost_before = pair
        .b
        .metric(&pair.http, "sessiond_lease_lost_total")
        .await
        .unwrap_or(0.0);

    // Thousands of logged changes in two statements, as by hand: new
    // users, then every user but the administrator changed at once.
    outside_sql(
        Backend::Postgres,
        &pair.db.url,
        &format!(
            "INSERT INTO users (email, password_hash, role, status, version, created_at, updated_at)
             SELECT 'bulk' || g || '@example.test', 'x', 'user', 'active', 1, 0, 0
               FROM generate_series(1, {BULK_USERS}) g"
        ),
    )
    .await;
    let changed = Instant::now();
    outside_sql(
        Backend::Postgres,
        &pair.db.url,
        "UPDATE users SET role = 'bulk' WHERE role <> 'admin'",
    )
    .await;

    // b shows the new role within a renewal or two, from its cache again
    // soon after, and never loses its lease.
    let bound = LEASE * 2;
    for user in &users {
        let shown = loop {
            let a = pair.session(&pair.b, &user.token).await;
            if a.status == 200 && a.body["user"]["role"] == "bulk" {
                break Some(changed.elapsed());
            }
            if changed.elapsed() > bound {
                findings.add(format!(
                    "user {}: b still answers {} {} {} after the bulk change",
                    user.id,
                    a.status,
                    a.body,
                    ms(changed.elapsed())
                ));
                break None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        eprintln!(
            "{test}: user {} shown changed on b after {:?}",
            user.id,
            shown.map(ms)
        );
    }
    let flushes = lease_flushes(&pair, &pair.b).await - flushes_before;
    let lost = pair
        .b
        .metric(&pair.http, "sessiond_lease_lost_total")
        .await
        .unwrap_or(0.0)
        - lost_before;
    let valid = pair.b.metric(&pair.http, "sessiond_lease_valid").await;
    eprintln!("{test}: on b, flushes for the lease {flushes}, leases lost {lost}, valid {valid:?}");
    if flushes < 1.0 {
        findings.add("b did not drop its cache for the change it could not read");
    }
    if lost > 0.0 || valid != Some(1.0) {
        findings.add(format!(
            "b lost its lease over the bulk change (lost {lost}, sessiond_lease_valid {valid:?})"
        ));
    }
    pair.finish().await;
    findings.assert_none(test);
}
