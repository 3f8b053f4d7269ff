//! PostgreSQL's notifications reach every node of a real cluster.

use std::time::{Duration, Instant};

use super::*;
use crate::helpers::Backend;

/// PostgreSQL: a change made by hand reaches every node of a real
/// three-process cluster within 200 ms (TTL 5 minutes), through each
/// node's LISTEN.
#[tokio::test]
#[cfg_attr(
    not(pg_tests),
    ignore = "set SESSIOND_TEST_POSTGRES_URL to run the PostgreSQL tests"
)]
async fn a_change_in_psql_reaches_every_node_of_a_cluster_within_200ms() {
    let cluster = Cluster::new(Backend::Postgres).await;
    let n1 = cluster.start("p1", free_port(), &[], COOKIE);
    let n2 = cluster.start("p2", free_port(), &[&n1], COOKIE);
    let n3 = cluster.start("p3", free_port(), &[&n1], COOKIE);
    for n in [&n1, &n2, &n3] {
        assert!(wait_members(n, &["p1", "p2", "p3"], Duration::from_secs(20)).await);
    }
    let ids = add_users(&cluster, 6).await;
    for id in &ids {
        for n in [&n1, &n2, &n3] {
            assert_eq!(session(n, *id).await.1["user"]["role"], "user");
            // Every node also caches a copy of its own (as after a fallback).
        }
    }
    for (i, id) in ids.iter().enumerate() {
        let role = format!("psql-{i}");
        cluster
            .outside_sql(&format!("UPDATE users SET role = '{role}' WHERE id = {id}"))
            .await;
        let changed = Instant::now();
        for n in [&n1, &n2, &n3] {
            loop {
                if session(n, *id).await.1["user"]["role"] == role.as_str() {
                    break;
                }
                assert!(
                    changed.elapsed() < Duration::from_millis(200),
                    "user {id} via {} still shows the old role after 200 ms",
                    n.name
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
    let id = ids[0];
    cluster
        .outside_sql(&format!(
            "UPDATE users SET status = 'deactivated' WHERE id = {id}"
        ))
        .await;
    let changed = Instant::now();
    for n in [&n1, &n2, &n3] {
        loop {
            let (status, v) = session(n, id).await;
            if status == 401 {
                assert_eq!(v["error"], "session_revoked");
                break;
            }
            assert!(
                changed.elapsed() < Duration::from_millis(200),
                "via {}",
                n.name
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    cluster.finish(vec![n1, n2, n3]).await;
}
