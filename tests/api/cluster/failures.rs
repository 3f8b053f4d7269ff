//! Three nodes share ownership and survive SIGSTOP, kill -9, a restart and
//! a node leaving, with every change seen through every node.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use super::*;
use crate::helpers::Backend;

async fn three_nodes_share_ownership_and_survive_failures(b: Backend) {
    let cluster = Cluster::new(b).await;
    let (p1, p2, p3) = (free_port(), free_port(), free_port());
    let n1 = cluster.start("n1", p1, &[], COOKIE);
    let n2 = cluster.start("n2", p2, &[&n1], COOKIE);
    let mut n3 = cluster.start("n3", p3, &[&n1], COOKIE);
    for n in [&n1, &n2, &n3] {
        assert!(
            wait_members(n, &["n1", "n2", "n3"], Duration::from_secs(20)).await,
            "{} sees {:?}",
            n.name,
            members(n).await
        );
    }
    let (status, ready) = get(&n2, "/readyz", None).await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["cluster"], "joined");

    // 1. The same answer and the same owner through every node; users
    //    spread over all three owners.
    let ids = add_users(&cluster, 24).await;
    let mut owners = HashSet::new();
    for id in &ids {
        let mut answers = Vec::new();
        for n in [&n1, &n2, &n3] {
            let (status, v) = session(n, *id).await;
            assert_eq!(status, 200, "user {id} via {}: {v}", n.name);
            answers.push((v["user"].clone(), v["cache"]["node"].clone()));
        }
        assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
        owners.insert(answers[0].1.as_str().unwrap_or_default().to_string());
    }
    assert_eq!(owners.len(), 3, "owners: {owners:?}");

    // A role change sent to node 3 is seen through node 1 on the very next call.
    let admin = admin_token(&n1).await;
    for id in &ids[..6] {
        for n in [&n1, &n2, &n3] {
            session(n, *id).await;
        }
        set_role(&n3, &admin, *id, "auditor").await;
        for n in [&n1, &n2, &n3] {
            let (_, v) = session(n, *id).await;
            assert_eq!(v["user"]["role"], "auditor", "user {id} via {}", n.name);
        }
    }

    // 3. SIGSTOP: the silent node is marked down within the heartbeat
    //    bound; lookups through the others keep succeeding.
    signal(&n2, "-STOP");
    let stopped = Instant::now();
    assert!(wait_members(&n1, &["n1", "n3"], Duration::from_secs(5)).await);
    assert!(wait_members(&n3, &["n1", "n3"], Duration::from_secs(5)).await);
    let marked_down = stopped.elapsed();
    assert!(
        marked_down < Duration::from_secs(5),
        "down after {marked_down:?}"
    );
    assert!(all_resolve(&n1, &ids, Duration::from_secs(5)).await);
    assert!(all_resolve(&n3, &ids, Duration::from_secs(5)).await);
    // A role change while n2 is frozen, seen at once through the others
    // and, after it resumes, through n2 too (it is told to flush).
    set_role(&n1, &admin, ids[0], "frozen-change").await;
    assert_eq!(
        session(&n3, ids[0]).await.1["user"]["role"],
        "frozen-change"
    );
    signal(&n2, "-CONT");
    for n in [&n1, &n2, &n3] {
        assert!(wait_members(n, &["n1", "n2", "n3"], Duration::from_secs(10)).await);
    }
    // n2 drops its cache on its first heartbeat after resuming.
    let deadline = Instant::now() + Duration::from_secs(2);
    while session(&n2, ids[0]).await.1["user"]["role"] != "frozen-change" {
        assert!(Instant::now() < deadline, "n2 still serves the old role");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // 2. kill -9: within 10 s every user resolves through each survivor.
    signal(&n3, "-KILL");
    let _ = n3.child.wait();
    assert!(all_resolve(&n1, &ids, Duration::from_secs(10)).await);
    assert!(all_resolve(&n2, &ids, Duration::from_secs(10)).await);
    assert!(wait_members(&n1, &["n1", "n2"], Duration::from_secs(10)).await);

    // 5. A change while a node rejoins is seen through every node on the
    //    next call. The killed node restarts with the same name, rejoins
    //    with no manual step and owns its share again.
    drop(n3);
    let n3 = cluster.start("n3", p3, &[&n1], COOKIE);
    set_role(&n1, &admin, ids[1], "joining-change").await;
    for n in [&n1, &n2, &n3] {
        assert!(wait_members(n, &["n1", "n2", "n3"], Duration::from_secs(20)).await);
    }
    let mut owners = HashSet::new();
    for id in &ids {
        let mut seen = Vec::new();
        for n in [&n1, &n2, &n3] {
            let (status, v) = session(n, *id).await;
            assert_eq!(status, 200);
            seen.push(v["cache"]["node"].clone());
        }
        assert!(seen.windows(2).all(|w| w[0] == w[1]), "{seen:?}");
        owners.insert(seen[0].as_str().unwrap_or_default().to_string());
    }
    assert!(owners.contains("n3"), "the restarted node owns users again");
    for n in [&n1, &n2, &n3] {
        assert_eq!(session(n, ids[1]).await.1["user"]["role"], "joining-change");
    }

    // A change made while a node leaves is seen through the survivors.
    signal(&n2, "-KILL");
    set_role(&n3, &admin, ids[2], "leaving-change").await;
    for n in [&n1, &n3] {
        assert_eq!(session(n, ids[2]).await.1["user"]["role"], "leaving-change");
    }
    cluster.finish(vec![n1, n2, n3]).await;
}

crate::on_both_stores!(three_nodes_share_ownership_and_survive_failures);
