//! The cookie: a node with the wrong one never joins, and a cluster
//! without one refuses to start.

use std::process::Command;
use std::time::Duration;

use super::*;
use crate::helpers::Backend;

#[tokio::test]
async fn a_node_with_a_wrong_cookie_never_joins() {
    let cluster = Cluster::new(Backend::Sqlite).await;
    let n1 = cluster.start("good1", free_port(), &[], COOKIE);
    let n2 = cluster.start("good2", free_port(), &[&n1], COOKIE);
    assert!(wait_members(&n1, &["good1", "good2"], Duration::from_secs(20)).await);
    let intruder = cluster.start(
        "intruder",
        free_port(),
        &[&n1, &n2],
        "not-the-cookie-of-this-cluster-0123456789",
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    for n in [&n1, &n2] {
        let m = members(n).await;
        assert!(!m.contains(&"intruder".to_string()), "{m:?}");
    }
    assert_eq!(members(&intruder).await, vec!["intruder".to_string()]);
    let (status, v) = get(&intruder, "/readyz", None).await;
    assert_eq!(status, 503, "{v}");
    assert_eq!(v["error"], "unavailable");
}

#[test]
fn a_cluster_without_a_cookie_refuses_to_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--node-name", "x"])
        .args(["--cluster-listen", "127.0.0.1:0"])
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("x.db").display()),
        )
        .env_remove("SESSIOND_CLUSTER_COOKIE")
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cookie"));
}
