//! Failed logins across the cluster: the strangers of an account are
//! counted in one place every node shares, so three nodes together let no
//! more guesses reach the password check than one node alone, and the
//! bound holds while nodes come and go.

use std::time::Duration;

use super::*;
use crate::helpers::Backend;

async fn guess(node: &Node, n: usize) -> u16 {
    let body =
        json!({"email": "admin@localhost", "password": format!("wrong-guess-{n}")}).to_string();
    request(node, "POST", "/api/auth/login", None, Some(&body))
        .await
        .0
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
