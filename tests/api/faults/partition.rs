//! A node cut off by a real network partition (its links set down: packets
//! vanish, no reset) after its users were cached there, while every kind of
//! change is made through the other node.

use std::time::{Duration, Instant};

use super::netns::{self, Link};
use super::Reply;
use super::{judge, ms, Change, Findings, Pair, Place, Watcher, Written, LEASE};
use crate::helpers::Backend;

/// How long after a cut the node must have stopped serving from its cache
/// and say so on `/readyz`: its lease, plus a second for the probe's
/// interval and a loaded machine.
const LAPSE_BOUND: Duration = LEASE.saturating_add(Duration::from_secs(1));
/// How long an acknowledged write may take while a node is cut off: the
/// lease plus its drift margin, plus slack for a loaded machine.
const WRITE_BOUND: Duration = LEASE.saturating_add(Duration::from_millis(2500));

/// `reaches_database`: b keeps its way to the database (a SQLite file on
/// the same machine), so it keeps its lease and stays fresh through the
/// change log (docs/freshness.md, "cut from peers only"): it must never
/// answer stale, and it may go on serving from its cache. Otherwise it
/// must lose its lease within the bound, and say so.
async fn cut_off_node_never_answers_stale(
    backend: Backend,
    links: &[Link],
    reaches_database: bool,
    test: &str,
) {
    if !netns::available_or_skip(test) {
        return;
    }
    let pair = Pair::start(backend, Place::Namespace).await;
    let changes = [
        Change::Deactivate,
        Change::Role("demoted".into()),
        Change::RevokeSessions,
        Change::Delete,
        Change::Logout,
    ];
    // One more user, never written, probes whether b still serves from its
    // cache.
    let users = pair.users_cached_on_b(changes.len() + 1).await;
    let probe = users[changes.len()].clone();
    let mut findings = Findings::default();

    let cut_at = Instant::now();
    for link in links {
        pair.host().cut(*link);
    }
    let every = Duration::from_millis(50);
    let ready = Watcher::start(
        pair.http.clone(),
        pair.b.http().into(),
        "/readyz",
        None,
        every,
    );
    let cached = Watcher::start(
        pair.http.clone(),
        pair.b.http().into(),
        "/api/auth/session",
        Some(probe.token.clone()),
        every,
    );

    let mut acked = 0;
    let mut latencies = Vec::new();
    for (user, change) in users.iter().zip(&changes) {
        let (written, took) = pair.write(user, change).await;
        eprintln!(
            "{test}: {change:?} of user {} through a: {written:?} after {} (cut {} ago)",
            user.id,
            ms(took),
            ms(cut_at.elapsed())
        );
        let Written::Acked = written else {
            continue;
        };
        acked += 1;
        latencies.push(took);
        if took > WRITE_BOUND {
            findings.add(format!(
                "{change:?} acknowledged after {}, more than {}",
                ms(took),
                ms(WRITE_BOUND)
            ));
        }
        // Sent after the acknowledgement: never the old record.
        for _ in 0..5 {
            let a = pair.session(&pair.b, &user.token).await;
            findings.check(format!("b, user {}", user.id), judge(user, change, &a));
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }
    // Let the lease lapse for certain, then look at everything once more.
    let lapsed = cut_at + LAPSE_BOUND + Duration::from_millis(500);
    tokio::time::sleep_until(lapsed.into()).await;
    for (user, change) in users.iter().zip(&changes) {
        let a = pair.session(&pair.b, &user.token).await;
        findings.check(
            format!("b after the lease lapsed, user {}", user.id),
            judge(user, change, &a),
        );
    }

    // b says it is not ready, and stopped serving from its cache, within
    // the bound.
    let first_503 = ready
        .seen()
        .into_iter()
        .find(|(_, _, a)| a.status == 503)
        .map(|(_, answered, _)| answered - cut_at);
    // From b's own cache: its copy of a user it owns, or its near copy
    // (an answer forwarded to a and hit in a's cache is a's).
    let from_b_cache = |a: &Reply| {
        a.status == 200
            && a.body["cache"]["hit"] == true
            && (a.body["cache"]["node"] == "b" || a.body["cache"]["near"] == true)
    };
    let first_uncached = cached
        .seen()
        .into_iter()
        .find(|(_, _, a)| !from_b_cache(a))
        .map(|(_, answered, a)| (answered - cut_at, a.status));
    let hits_after_bound = cached
        .seen()
        .into_iter()
        .filter(|(sent, _, a)| *sent > cut_at + LAPSE_BOUND && from_b_cache(a))
        .count();
    drop((ready, cached));
    let lease_valid = pair.b.metric(&pair.http, "sessiond_lease_valid").await;
    let lease_lost = pair.b.metric(&pair.http, "sessiond_lease_lost_total").await;
    eprintln!(
        "{test}: writes acknowledged {acked}/{}; latency while b is cut off: {}; \
         first 503 from b's /readyz {}; first answer of b not from its cache {}; \
         cache hits later than {} after the cut: {hits_after_bound}; \
         sessiond_lease_valid {lease_valid:?}, sessiond_lease_lost_total {lease_lost:?}",
        changes.len(),
        latencies
            .iter()
            .map(|d| ms(*d))
            .collect::<Vec<_>>()
            .join(", "),
        first_503.map(ms).unwrap_or_else(|| "never".into()),
        first_uncached
            .map(|(d, s)| format!("{} (status {s})", ms(d)))
            .unwrap_or_else(|| "never".into()),
        ms(LAPSE_BOUND),
    );
    if acked == 0 {
        findings.add("no write was acknowledged: nothing was checked");
    }
    if reaches_database {
        // Fresh through the database: its lease holds, it stays ready.
        if first_503.is_some() {
            findings.add("/readyz on b said 503 though b still reaches the database");
        }
        if lease_valid != Some(1.0) {
            findings.add(format!(
                "b's /metrics: sessiond_lease_valid is {lease_valid:?} though b reaches the database"
            ));
        }
    } else {
        match first_503 {
            Some(d) if d <= LAPSE_BOUND => {}
            Some(d) => findings.add(format!("/readyz on b first said 503 after {}", ms(d))),
            None => findings.add(format!(
                "/readyz on b never said 503 in the {} after the cut",
                ms(lapsed - cut_at)
            )),
        }
        match first_uncached {
            Some((d, _)) if d <= LAPSE_BOUND => {}
            Some((d, _)) => findings.add(format!("b served from its cache for {}", ms(d))),
            None => findings.add(format!(
                "b served the probe from its cache for the whole {} after the cut",
                ms(lapsed - cut_at)
            )),
        }
        if hits_after_bound > 0 {
            findings.add(format!(
                "b answered {hits_after_bound} cache hits more than {} after the cut",
                ms(LAPSE_BOUND)
            ));
        }
        if lease_valid != Some(0.0) {
            findings.add(format!(
                "b's /metrics: sessiond_lease_valid is {lease_valid:?} while it is cut off"
            ));
        }
        if !lease_lost.is_some_and(|n| n >= 1.0) {
            findings.add(format!(
                "b's /metrics: sessiond_lease_lost_total is {lease_lost:?} after losing its lease"
            ));
        }
    }

    // Healed: b comes back and still never shows the old records.
    if !pair.heal_and_wait_ready(links).await {
        findings.add("b not ready again within 15 s of the heal");
    }
    for (user, change) in users.iter().zip(&changes) {
        let a = pair.session(&pair.b, &user.token).await;
        findings.check(
            format!("b after the heal, user {}", user.id),
            judge(user, change, &a),
        );
    }
    pair.finish().await;
    findings.assert_none(test);
}

/// SQLite shared file: b loses its peers (and only them); it keeps its
/// lease through the database file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_node_cut_from_its_peers_never_answers_stale() {
    cut_off_node_never_answers_stale(
        Backend::Sqlite,
        &[Link::Peer],
        true,
        "sqlite_node_cut_from_its_peers_never_answers_stale",
    )
    .await;
}

/// PostgreSQL reached through the cut link: b loses its peers, the
/// database and NOTIFY together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(pg_tests),
    ignore = "set SESSIOND_TEST_POSTGRES_URL to run the PostgreSQL tests"
)]
async fn postgres_node_cut_from_peers_and_database_never_answers_stale() {
    cut_off_node_never_answers_stale(
        Backend::Postgres,
        &[Link::Peer, Link::Db],
        false,
        "postgres_node_cut_from_peers_and_database_never_answers_stale",
    )
    .await;
}

/// PostgreSQL: b loses the database (and NOTIFY) but keeps its peers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(pg_tests),
    ignore = "set SESSIOND_TEST_POSTGRES_URL to run the PostgreSQL tests"
)]
async fn postgres_node_cut_from_the_database_alone_never_answers_stale() {
    cut_off_node_never_answers_stale(
        Backend::Postgres,
        &[Link::Db],
        false,
        "postgres_node_cut_from_the_database_alone_never_answers_stale",
    )
    .await;
}
