//! A node paused with SIGSTOP around writes made through the other node.
//! While it is stopped the kernel still accepts connections and queues
//! requests; when it resumes, it must not answer any request sent after an
//! acknowledgement with the record from before it, however long the pause.

use std::time::{Duration, Instant};

use super::{judge, ms, CachedUser, Change, Findings, Pair, Place, Written};
use crate::helpers::Backend;

/// Requests for a user sent to the stopped node right after each
/// acknowledgement: the more wait in its queue, the likelier one is served
/// before the node has caught up when it wakes.
const QUEUED_PER_WRITE: usize = 10;

async fn paused_node_never_answers_stale_after_resuming(backend: Backend, pause: Duration) {
    let test = format!("pause of {} ({backend:?})", ms(pause));
    let pair = Pair::start(backend, Place::Loopback).await;
    let changes = [
        Change::Role("demoted".into()),
        Change::Deactivate,
        Change::RevokeSessions,
    ];
    // Whether a node serves a queued request before it has caught up is a
    // race: the shorter pauses run several rounds, each with users of its
    // own, cached on b again once it is back.
    let rounds = if pause <= Duration::from_secs(3) {
        3
    } else {
        1
    };
    let mut users = pair.users_cached_on_b(changes.len() * rounds).await;
    let mut findings = Findings::default();
    let mut acked = 0;
    for (round, users) in users.chunks_mut(changes.len()).enumerate() {
        if round > 0 {
            assert!(
                pair.b
                    .wait_members(&pair.http, &["a", "b"], Duration::from_secs(20))
                    .await,
                "b back in the cluster"
            );
            recache(&pair, users).await;
        }
        acked += one_pause(&pair, users, &changes, pause, &mut findings, &test).await;
    }
    eprintln!(
        "{test}: {acked}/{} writes acknowledged over {rounds} pause(s)",
        changes.len() * rounds
    );
    if acked == 0 {
        findings.add("no write was acknowledged: nothing was checked");
    }
    pair.finish().await;
    findings.assert_none(&test);
}

/// Caches `users` on b again (their owner once more, after b came back).
async fn recache(pair: &Pair, users: &mut [CachedUser]) {
    for user in users.iter_mut() {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let a = pair.session(&pair.b, &user.token).await;
            // Owned by b, or a near copy of a's answer.
            let on_b = a.body["cache"]["node"] == "b" || a.body["cache"]["near"] == true;
            if a.status == 200 && a.body["cache"]["hit"] == true && on_b {
                user.version = a.body["cache"]["version"].as_i64().unwrap_or(user.version);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "user {} not cached on b: {}",
                user.id,
                a.body
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// One pause of b around one write per change; returns how many were
/// acknowledged.
async fn one_pause(
    pair: &Pair,
    users: &[CachedUser],
    changes: &[Change],
    pause: Duration,
    findings: &mut Findings,
    test: &str,
) -> usize {
    let pid = pair.b.pid().expect("b runs");
    pair.b.pause();
    let paused_at = Instant::now();
    let resumed = tokio::spawn(async move {
        tokio::time::sleep_until((paused_at + pause).into()).await;
        sessiond_testkit::process::signal(pid, "-CONT");
        Instant::now()
    });

    // Each write is made while b is stopped (or, for the short pauses,
    // around its resumption); right after each acknowledgement requests for
    // that user go to b, and wait in its queue while it is stopped — more
    // of them every 100 ms until it resumes, so that some are served the
    // moment it wakes, before it has caught up with anything.
    let mut acked = Vec::new();
    let mut queued = Vec::new();
    let ask = |user: &CachedUser, change: &Change| {
        let (http, addr) = (pair.http.clone(), pair.b.http().to_string());
        let (user, change) = (user.clone(), change.clone());
        tokio::spawn(async move {
            let a = http
                .get(&addr, "/api/auth/session", Some(&user.token))
                .await;
            (user, change, a)
        })
    };
    for (user, change) in users.iter().zip(changes) {
        let (written, took) = pair.write(user, change).await;
        eprintln!(
            "{test}: {change:?} of user {} through a: {written:?} after {} ({} into the pause)",
            user.id,
            ms(took),
            ms(paused_at.elapsed())
        );
        if let Written::Acked = written {
            acked.push((user.clone(), change.clone()));
            for _ in 0..QUEUED_PER_WRITE {
                queued.push(ask(user, change));
            }
        }
    }
    while !resumed.is_finished() {
        for (user, change) in &acked {
            queued.push(ask(user, change));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let resumed_at = match resumed.await {
        Ok(t) => t,
        Err(e) => panic!("resume task: {e}"),
    };
    let queued_count = queued.len();
    for q in queued {
        let Ok((user, change, a)) = q.await else {
            continue;
        };
        findings.check(
            format!("b, request queued while it was stopped, user {}", user.id),
            judge(&user, &change, &a),
        );
    }
    // And for a while after it resumed.
    while resumed_at.elapsed() < Duration::from_millis(1500) {
        for (user, change) in users.iter().zip(changes) {
            let a = pair.session(&pair.b, &user.token).await;
            findings.check(
                format!("b after resuming, user {}", user.id),
                judge(user, change, &a),
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "{test}: {}/{} writes acknowledged; {} requests queued at b",
        acked.len(),
        changes.len(),
        queued_count
    );
    acked.len()
}

/// One test per store and pause length.
macro_rules! pauses {
    ($($name:ident: $ms:expr),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::paused_node_never_answers_stale_after_resuming(
                        crate::helpers::Backend::Sqlite,
                        std::time::Duration::from_millis($ms),
                    )
                    .await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[cfg_attr(
                    not(pg_tests),
                    ignore = "set SESSIOND_TEST_POSTGRES_URL to run the PostgreSQL tests"
                )]
                async fn $name() {
                    super::paused_node_never_answers_stale_after_resuming(
                        crate::helpers::Backend::Postgres,
                        std::time::Duration::from_millis($ms),
                    )
                    .await
                }
            )*
        }
    };
}

pauses! {
    paused_500ms: 500,
    paused_1200ms: 1200,
    paused_1700ms: 1700,
    paused_3s: 3000,
    paused_10s: 10_000,
}
