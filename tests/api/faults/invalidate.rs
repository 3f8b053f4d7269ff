//! `POST /api/admin/users/{id}/invalidate` is the tool for changes made in
//! the database that bypassed the triggers (no change logged, no NOTIFY).
//! Its 202 is an acknowledgement like any other write's: afterwards no node
//! may answer the record from before the change, not even one cut off from
//! its peers, which only the database can reach.

use std::time::{Duration, Instant};

use super::netns::{self, Link};
use super::{ms, CachedUser, Findings, Pair, Place, LEASE};
use crate::helpers::Backend;

/// The role the change made by hand gives.
const BYPASSED_ROLE: &str = "changed-by-hand";

/// Changes `id`'s role in the database with every trigger switched off (as
/// an operator restoring a row, or a bulk load, would): nothing logged,
/// nothing announced, the version left as it was.
async fn change_role_bypassing_triggers(db_url: &str, id: i64) {
    use sqlx::Executor;
    let mut c = sessiond_testkit::postgres_db::connect_sessiond(db_url)
        .await
        .expect("connects");
    let sql = format!(
        "BEGIN;
         SET LOCAL session_replication_role = replica;
         UPDATE users SET role = '{BYPASSED_ROLE}' WHERE id = {id};
         COMMIT;"
    );
    c.execute(sql.as_str()).await.expect("runs");
}

/// After the 202: 401/403/503, or the record as the database has it now.
fn judge(user: &CachedUser, a: &sessiond_testkit::http::Reply) -> Result<(), String> {
    match a.status {
        401 | 403 | 503 => Ok(()),
        200 if a.body["user"]["role"] == BYPASSED_ROLE => Ok(()),
        0 => Err("no answer within the client timeout".into()),
        s => Err(format!(
            "STALE after the invalidation: {s} {} (before: role {})",
            a.body, user.role
        )),
    }
}

async fn invalidate_is_confirmed_everywhere(place: Place, test: &str) {
    if place == Place::Namespace && !netns::available_or_skip(test) {
        return;
    }
    let pair = Pair::start(Backend::Postgres, place).await;
    // One user b owns, one held on b as a near copy of a's.
    let users = pair.users_cached_on_b(2).await;
    let mut findings = Findings::default();
    if place == Place::Namespace {
        pair.host().cut(Link::Peer);
    }
    let mut acked = 0;
    for user in &users {
        change_role_bypassing_triggers(&pair.db.url, user.id).await;
        // The change reached no cache: b still answers the role it had.
        let before = pair.session(&pair.b, &user.token).await;
        if before.body["user"]["role"] != user.role.as_str() {
            findings.add(format!(
                "user {}: b did not answer the cached role before the invalidation \
                 (nothing checked): {} {}",
                user.id, before.status, before.body
            ));
        }
        let sent = Instant::now();
        let r = pair
            .http
            .call(
                pair.a.http(),
                "POST",
                &format!("/api/admin/users/{}/invalidate", user.id),
                Some(&pair.admin),
                None,
            )
            .await;
        let took = sent.elapsed();
        eprintln!(
            "{test}: invalidate of user {} through a: {} after {}",
            user.id,
            r.status,
            ms(took)
        );
        match r.status {
            202 => acked += 1,
            503 => continue,
            s => panic!("invalidate of user {}: {s} {}", user.id, r.body),
        }
        // Sent after the 202, for a whole lease: never the old role (a
        // node that missed it would answer it until its TTL).
        let until = Instant::now() + LEASE + Duration::from_millis(500);
        while Instant::now() < until {
            let a = pair.session(&pair.b, &user.token).await;
            findings.check(format!("b, user {}", user.id), judge(user, &a));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    if acked == 0 {
        findings.add("no invalidation was acknowledged: nothing was checked");
    }
    pair.finish().await;
    findings.assert_none(test);
}

/// b is cut off from its peers (it still reaches the database, and renews
/// its lease there): the invalidation cannot reach it over the link, so
/// the writer must wait until b has applied it from the change log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(pg_tests),
    ignore = "set SESSIOND_TEST_POSTGRES_URL to run the PostgreSQL tests"
)]
async fn postgres_invalidate_reaches_a_node_cut_from_its_peers() {
    invalidate_is_confirmed_everywhere(
        Place::Namespace,
        "postgres_invalidate_reaches_a_node_cut_from_its_peers",
    )
    .await;
}

/// A healthy pair: the 202 comes only once b has dropped its copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(pg_tests),
    ignore = "set SESSIOND_TEST_POSTGRES_URL to run the PostgreSQL tests"
)]
async fn postgres_invalidate_reaches_a_healthy_peer() {
    invalidate_is_confirmed_everywhere(
        Place::Loopback,
        "postgres_invalidate_reaches_a_healthy_peer",
    )
    .await;
}
