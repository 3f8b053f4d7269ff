//! `--lease 0` leaves a node without a lease row: writers on other nodes
//! never wait for it, so it would serve a changed user from its cache for
//! the whole TTL. Wherever another node can exist, it must not start.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, node_spec, Sessiond, BIN, LEASE};
use crate::helpers::{Backend, SharedDb as Db};

/// Starts `sessiond serve` with `args` on `db_url`; returns its exit status
/// and its output once it exits, or `None` (and kills it) if it is still
/// running after `within`.
fn run(db_url: &str, args: &[&str], within: Duration) -> Option<(bool, String)> {
    let mut child = Command::new(BIN)
        .arg("serve")
        .args(args)
        .env("DATABASE_URL", db_url)
        .env("SESSIOND_JWT_SECRET", super::SECRET)
        .env("SESSIOND_ADMIN_PASSWORD", super::ADMIN_PASSWORD)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sessiond starts");
    let deadline = Instant::now() + within;
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break Some(status);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        return None;
    };
    let mut out = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut out);
    }
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    Some((status.success(), out))
}

/// How long a node gets to refuse: opening the database and a first lease
/// take well under this.
const REFUSE_WITHIN: Duration = Duration::from_secs(15);

#[test]
fn lease_off_is_refused_in_a_cluster() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db_url = format!("sqlite://{}", dir.path().join("one.db").display());
    let cluster = format!("127.0.0.1:{}", free_port(std::net::Ipv4Addr::LOCALHOST));
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--node-name",
        "a",
        "--cluster-listen",
        &cluster,
        "--cluster-cookie",
        super::COOKIE,
        "--lease",
        "0",
    ];
    match run(&db_url, &args, REFUSE_WITHIN) {
        None => panic!("a clustered node with --lease 0 started and served"),
        Some((ok, out)) => {
            assert!(!ok, "it exited with success: {out}");
            assert!(
                out.contains("--lease 0 is refused in a cluster"),
                "the refusal says why: {out}"
            );
        }
    }
}

/// No cluster flags, but the database is shared with a node that holds a
/// lease: the second node could answer the first one's users stale.
#[test]
fn lease_off_is_refused_beside_a_leased_node() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let db = rt.block_on(Db::new(Backend::Sqlite));
    let a = Sessiond::start(node_spec(
        "a",
        &db.url,
        vec!["--listen".into(), "127.0.0.1:0".into()],
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    // Its lease is in the database by the time it answers /readyz.
    let http = super::Client::default();
    let ready = Instant::now();
    while rt.block_on(http.get(a.http(), "/readyz", None)).status != 200 {
        assert!(ready.elapsed() < LEASE * 10, "a never got ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--node-name",
        "b",
        "--lease",
        "0",
    ];
    let outcome = run(&db.url, &args, REFUSE_WITHIN);
    drop(a);
    match outcome {
        None => panic!("a node with --lease 0 started beside a leased node"),
        Some((ok, out)) => {
            assert!(!ok, "it exited with success: {out}");
            assert!(
                out.contains("--lease 0 is refused") && out.contains("(a)"),
                "the refusal names the other node: {out}"
            );
        }
    }
}

/// A lone node may still run without leases.
#[test]
fn lease_off_still_starts_alone() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db_url = format!("sqlite://{}", dir.path().join("alone.db").display());
    let args = ["--listen", "127.0.0.1:0", "--lease", "0"];
    if let Some((_, out)) = run(&db_url, &args, Duration::from_secs(3)) {
        panic!("a lone node with --lease 0 exited: {out}");
    }
}
