//! Failed logins across the cluster: the strangers of an account, and
//! each known device of it, are counted in one place every node shares,
//! so three nodes together let no more guesses reach the password check
//! than one node alone, and the bound holds while nodes come and go.

use std::time::Duration;

use super::*;
use crate::helpers::Backend;

async fn guess(node: &Node, n: usize) -> u16 {
    login(node, &format!("wrong-guess-{n}"), None).await.0
}

/// A login as the admin with `password`, presenting the device token
/// `device` or none: the status and the answer.
async fn login(node: &Node, password: &str, device: Option<&str>) -> (u16, Value) {
    let mut body = json!({"email": "admin@localhost", "password": password});
    if let Some(d) = device {
        body["device"] = json!(d);
    }
    request(
        node,
        "POST",
        "/api/auth/login",
        None,
        Some(&body.to_string()),
    )
    .await
}

#[tokio::test]
async fn three_nodes_allow_no_more_guesses_than_one() {
    let cluster = Cluster::new(Backend::Sqlite).await;
    let n1 = cluster.start("g1", free_port(), &[], COOKIE);
    let n2 = cluster.start("g2", free_port(), &[&n1], COOKIE);
    let n3 = cluster.start("g3", free_port(), &[&n1, &n2], COOKIE);
    assert!(wait_members(&n1, &["g1", "g2", "g3"], Duration::from_secs(30)).await);
    let nodes = [&n1, &n2, &n3];
    let (mut checked, mut limited) = (0, 0);
    for i in 0..30 {
        match guess(nodes[i % 3], i).await {
            401 => checked += 1,
            429 => limited += 1,
            s => panic!("guess {i}: status {s}"),
        }
    }
    println!("30 guesses over 3 nodes: {checked} checked (401), {limited} refused (429)");
    assert_eq!(checked, 10, "the default limit, for the cluster as a whole");
    assert_eq!(limited, 20);
    // A node that joins later knows the count too.
    let n4 = cluster.start("g4", free_port(), &[&n1], COOKIE);
    assert!(wait_members(&n4, &["g1", "g2", "g3", "g4"], Duration::from_secs(30)).await);
    assert_eq!(guess(&n4, 99).await, 429);
    cluster.finish(vec![n1, n2, n3, n4]).await;
}

/// A known device's failures are counted once for the cluster too: a
/// stolen device token spread over three nodes gets the limit once, not
/// once per node. The strangers' count is the device's own business: the
/// owner's right password, as a stranger, is still let through.
#[tokio::test]
#[cfg_attr(
    not(pg_tests),
    ignore = "set SESSIOND_TEST_POSTGRES_URL to run the PostgreSQL tests"
)]
async fn three_nodes_allow_a_device_no_more_guesses_than_one() {
    let cluster = Cluster::new(Backend::Postgres).await;
    let n1 = cluster.start("d1", free_port(), &[], COOKIE);
    let n2 = cluster.start("d2", free_port(), &[&n1], COOKIE);
    let n3 = cluster.start("d3", free_port(), &[&n1, &n2], COOKIE);
    assert!(wait_members(&n1, &["d1", "d2", "d3"], Duration::from_secs(30)).await);
    let (status, answer) = login(&n1, ADMIN_PASSWORD, None).await;
    assert_eq!(status, 200, "{answer}");
    let device = answer["device"]
        .as_str()
        .expect("a successful login is answered with a device token")
        .to_string();
    let nodes = [&n1, &n2, &n3];
    let (mut checked, mut limited) = (0, 0);
    for i in 0..30 {
        let password = format!("wrong-guess-{i}");
        match login(nodes[i % 3], &password, Some(&device)).await.0 {
            401 => checked += 1,
            429 => limited += 1,
            s => panic!("guess {i}: status {s}"),
        }
    }
    println!("30 guesses with one device token over 3 nodes: {checked} checked (401), {limited} refused (429)");
    assert_eq!(checked, 10, "the default limit, for the cluster as a whole");
    assert_eq!(limited, 20);
    // Held off on every node, even with the right password ...
    for node in nodes {
        assert_eq!(login(node, ADMIN_PASSWORD, Some(&device)).await.0, 429);
    }
    // ... while the device's failures were not the strangers'.
    assert_eq!(login(&n2, ADMIN_PASSWORD, None).await.0, 200);
    cluster.finish(vec![n1, n2, n3]).await;
}
