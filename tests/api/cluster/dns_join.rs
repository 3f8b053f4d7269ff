//! Joining by name: `--join NAME:PORT` where NAME resolves to several
//! nodes dials every one of them, and resolves NAME again on every round,
//! so a node started later under that name is found too (a Kubernetes
//! headless Service).
//!
//! The name lives in a hosts file that only the joining node sees: it is
//! started in a mount namespace of its own with that file bound over
//! `/etc/hosts` (as `ip netns exec` does), so the node resolves it through
//! the system resolver, with the production code and nothing else on the
//! machine is touched. That needs root; without it the test fails when
//! `CI` is set and is skipped with a note otherwise.

use std::io::Write as _;
use std::time::Duration;

use super::*;
use crate::helpers::Backend;

const NAME: &str = "sessiond-peers.test";

/// Whether a private mount namespace can be made here.
fn mount_namespaces_or_skip(test: &str) -> bool {
    let ok = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "true"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        if std::env::var_os("CI").is_some() {
            panic!("{test} needs `unshare --mount` (root) and CI is set");
        }
        eprintln!("SKIPPED: {test}: `unshare --mount` does not work here (run as root)");
    }
    ok
}

/// The command that runs a program with `hosts` as its `/etc/hosts`.
fn with_hosts_file(hosts: &Path) -> Vec<String> {
    vec![
        "unshare".into(),
        "--mount".into(),
        "--propagation".into(),
        "private".into(),
        "sh".into(),
        "-c".into(),
        r#"mount --bind "$0" /etc/hosts && exec "$@""#.into(),
        hosts.display().to_string(),
    ]
}

#[tokio::test]
async fn a_node_joined_by_a_name_dials_every_address_and_finds_later_ones() {
    if !mount_namespaces_or_skip("dns_join") {
        return;
    }
    let cluster = Cluster::new(Backend::Sqlite).await;
    // One port, several loopback addresses: what a headless Service's
    // name resolves to (every pod listening on the same port).
    let port = free_port();
    let alone = |name: &'static str, ip: &str| Launch::new(name, &format!("{ip}:{port}"));
    // Two nodes that know nothing of each other.
    let a = cluster.launch(alone("da", "127.0.0.2"));
    let b = cluster.launch(alone("db", "127.0.0.3"));

    let dir = tempfile::tempdir().expect("temp dir");
    let hosts = dir.path().join("hosts");
    let system = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    std::fs::write(
        &hosts,
        format!("{system}\n127.0.0.2 {NAME}\n127.0.0.3 {NAME}\n"),
    )
    .expect("writes the hosts file");
    // The joining node knows only the name.
    let c = cluster.launch(Launch {
        join: vec![format!("{NAME}:{port}")],
        wrapper: with_hosts_file(&hosts),
        ..Launch::new("dc", &format!("127.0.0.1:{}", free_port()))
    });
    for n in [&a, &b, &c] {
        assert!(
            wait_members(n, &["da", "db", "dc"], Duration::from_secs(20)).await,
            "{} sees {:?}",
            n.name,
            members(n).await
        );
    }

    // A node started later, which nobody was told about: the name now
    // resolves to it too (the hosts file is changed in place, as a
    // Service's endpoints change), and the next round finds it.
    let d = cluster.launch(alone("dd", "127.0.0.4"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(members(&d).await, ["dd"], "dd found before it had a name");
    std::fs::OpenOptions::new()
        .append(true)
        .open(&hosts)
        .and_then(|mut f| writeln!(f, "127.0.0.4 {NAME}"))
        .expect("adds an address to the name");
    for n in [&a, &b, &c, &d] {
        assert!(
            wait_members(n, &["da", "db", "dc", "dd"], Duration::from_secs(20)).await,
            "{} sees {:?}",
            n.name,
            members(n).await
        );
    }
    cluster.finish(vec![a, b, c, d]).await;
}
