//! Near copies on three real nodes: a non-owner keeps the owner's answer
//! and answers from it (`cache.near`), drops it on the write's
//! invalidation before the write is acknowledged, and a forced refresh
//! through it reads the database once, at the owner, and refreshes both
//! copies.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::*;
use crate::helpers::Backend;

/// Three SQLite nodes, all in one view, and `n` users made behind their
/// backs (once the change log's holds on near copies have passed).
async fn three_nodes(cluster: &Cluster, n: usize) -> ([Node; 3], Vec<i64>) {
    let n1 = cluster.start("n1", free_port(), &[], COOKIE);
    let n2 = cluster.start("n2", free_port(), &[&n1], COOKIE);
    let n3 = cluster.start("n3", free_port(), &[&n1], COOKIE);
    for n in [&n1, &n2, &n3] {
        assert!(wait_members(n, &["n1", "n2", "n3"], Duration::from_secs(20)).await);
    }
    let ids = add_users(cluster, n).await;
    // Each node applies the inserts from the change log within a quarter
    // lease; a near copy is kept only a lease after that.
    tokio::time::sleep(Duration::from_secs(3)).await;
    ([n1, n2, n3], ids)
}

/// A user `owner` owns, as every node reports.
async fn owned_by(nodes: &[Node; 3], ids: &[i64], owner: &str) -> i64 {
    for id in ids {
        let (status, v) = session(&nodes[0], *id).await;
        assert_eq!(status, 200, "{v}");
        if v["cache"]["node"] == owner {
            return *id;
        }
    }
    panic!("no user owned by {owner} among {ids:?}");
}

/// Asks `node` for `id` until the answer comes from its near copy.
async fn near_copy(node: &Node, id: i64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, v) = session(node, id).await;
        assert_eq!(status, 200, "{v}");
        if v["cache"]["near"] == true {
            assert_eq!(v["cache"]["hit"], true, "{v}");
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{} never answered user {id} from a near copy: {v}",
            node.name
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn db_queries(node: &Node) -> u64 {
    let (_, v) = get(node, "/api/perf", None).await;
    v["db_queries"].as_u64().expect("db_queries in /api/perf")
}

#[tokio::test]
async fn a_role_change_through_the_owner_is_seen_at_once_through_nodes_with_near_copies() {
    let cluster = Cluster::new(Backend::Sqlite).await;
    let (nodes, ids) = three_nodes(&cluster, 12).await;
    let [a, b, c] = &nodes;
    let id = owned_by(&nodes, &ids, "n1").await;
    let admin = admin_token(a).await;
    for round in 0..3 {
        for n in [b, c] {
            let v = near_copy(n, id).await;
            assert_eq!(v["cache"]["node"], "n1", "cache.node names the owner: {v}");
        }
        let role = format!("role-{round}");
        set_role(a, &admin, id, &role).await;
        // Acknowledged: the very next lookups through B and C see it.
        for n in [b, c] {
            let (status, v) = session(n, id).await;
            assert_eq!(status, 200, "{v}");
            assert_eq!(v["user"]["role"], role.as_str(), "via {}: {v}", n.name);
        }
        // And the near copies they keep again hold the new role.
        for n in [b, c] {
            let v = near_copy(n, id).await;
            assert_eq!(v["user"]["role"], role.as_str(), "via {}: {v}", n.name);
        }
    }
    cluster.finish(nodes.into()).await;
}

#[tokio::test]
async fn a_forced_refresh_through_a_non_owner_reads_once_and_refreshes_both_copies() {
    let cluster = Cluster::new(Backend::Sqlite).await;
    let (nodes, ids) = three_nodes(&cluster, 12).await;
    let [owner, _, c] = &nodes;
    let id = owned_by(&nodes, &ids, "n1").await;
    near_copy(c, id).await;
    // Let both copies age, so that a refreshed one shows.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = db_queries(owner).await;
    let body = json!({ "force": true }).to_string();
    let (status, v) = request(
        c,
        "POST",
        "/api/auth/refresh-session",
        Some(&token(id)),
        Some(&body),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["cache"]["hit"], false, "read from the database: {v}");
    assert_eq!(v["cache"]["near"], false, "{v}");
    assert_eq!(v["cache"]["node"], "n1", "{v}");
    assert_eq!(
        db_queries(owner).await,
        before + 1,
        "one read, at the owner"
    );

    let near = near_copy(c, id).await;
    let (_, at_owner) = session(owner, id).await;
    assert_eq!(at_owner["cache"]["hit"], true, "{at_owner}");
    for v in [&near, &at_owner] {
        let age = v["cache"]["age_ms"].as_u64().expect("age_ms");
        assert!(age < 1000, "a copy older than the refresh: {v}");
    }
    assert_eq!(db_queries(owner).await, before + 1, "no read since");
    cluster.finish(nodes.into()).await;
}
