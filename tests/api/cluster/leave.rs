//! Graceful leave: a rolling restart of a three-node PostgreSQL cluster
//! under steady load, sent like a load balancer sends it (only to nodes
//! whose last `/readyz` poll said 200), with admin role changes going on:
//! no request fails, no forward fails, and no answer sent after a change
//! was acknowledged shows the role before it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sessiond_testkit::http;

use super::*;
use crate::helpers::Backend;

/// How often the balancer polls `/readyz`.
const POLL: Duration = Duration::from_millis(100);
const READERS: usize = 4;
const USERS: usize = 24;
/// The nodes' log: warnings, and why a forward failed.
const LOG_FILTER: &str = "warn,sessiond_actors::router=debug";

/// Sends traffic only to nodes whose last `/readyz` poll said 200.
struct Balancer {
    addrs: Vec<String>,
    ready: Vec<AtomicBool>,
    next: AtomicUsize,
}

impl Balancer {
    fn new(addrs: Vec<String>) -> Arc<Balancer> {
        Arc::new(Balancer {
            ready: addrs.iter().map(|_| AtomicBool::new(false)).collect(),
            addrs,
            next: AtomicUsize::new(0),
        })
    }

    /// Polls every node's `/readyz` every [`POLL`] until `stop`.
    fn spawn_polls(self: &Arc<Self>, stop: &Arc<AtomicBool>) -> Vec<tokio::task::JoinHandle<()>> {
        (0..self.addrs.len())
            .map(|i| {
                let (lb, stop) = (Arc::clone(self), Arc::clone(stop));
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let (status, _) = call(&lb.addrs[i], "GET", "/readyz", None, None).await;
                        lb.ready[i].store(status == 200, Ordering::Relaxed);
                        tokio::time::sleep(POLL).await;
                    }
                })
            })
            .collect()
    }

    /// A node that was ready at its last poll, round robin.
    fn pick(&self) -> Option<&str> {
        let n = self.addrs.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|k| (start + k) % n)
            .find(|i| self.ready[*i].load(Ordering::Relaxed))
            .map(|i| self.addrs[i].as_str())
    }

    async fn wait_ready(&self, i: usize, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if call(&self.addrs[i], "GET", "/readyz", None, None).await.0 == 200 {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }
}

/// What the clients saw.
#[derive(Default)]
struct History {
    /// (user, sent, index of the role answered).
    reads: Vec<(i64, Instant, u64)>,
    /// (user, index of the role written, acknowledged).
    writes: Vec<(i64, u64, Instant)>,
    /// Requests that did not succeed: (node, status, body).
    failures: Vec<(String, u16, String)>,
}

impl History {
    /// Answers sent after a change was acknowledged that show an older role.
    fn stale(&self) -> Vec<String> {
        let mut acked: HashMap<i64, Vec<(Instant, u64)>> = HashMap::new();
        for (user, k, at) in &self.writes {
            acked.entry(*user).or_default().push((*at, *k));
        }
        self.reads
            .iter()
            .filter_map(|(user, sent, seen)| {
                let newest = acked
                    .get(user)?
                    .iter()
                    .filter(|(at, _)| at < sent)
                    .map(|(_, k)| *k)
                    .max()?;
                (*seen < newest).then(|| format!("user {user}: r{seen} after r{newest} was acked"))
            })
            .collect()
    }
}

/// "user" is role 0; the writer sets r1, r2, … on each user.
fn role_index(role: &str) -> Option<u64> {
    match role {
        "user" => Some(0),
        r => r.strip_prefix('r')?.parse().ok(),
    }
}

/// The sum of `sessiond_forward_failures_total` on a node.
async fn forward_failures(addr: &str) -> f64 {
    let request = http::Request {
        method: "GET",
        path: "/metrics",
        token: None,
        body: None,
    };
    let reply = http::send(addr, request, Duration::from_secs(10))
        .await
        .expect("/metrics answers");
    assert_eq!(reply.status, 200);
    reply
        .text
        .lines()
        .filter(|l| l.starts_with("sessiond_forward_failures_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Sends SIGTERM and waits for the process to exit; its status and how
/// long it took.
async fn terminate(node: &mut Node, within: Duration) -> (std::process::ExitStatus, Duration) {
    let started = Instant::now();
    signal(node, "-TERM");
    loop {
        if let Some(status) = node.child.try_wait().expect("waits") {
            return (status, started.elapsed());
        }
        assert!(
            started.elapsed() < within,
            "{} did not exit within {within:?} of SIGTERM",
            node.name
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
#[cfg_attr(
    not(pg_tests),
    ignore = "set SESSIOND_TEST_POSTGRES_URL to run the PostgreSQL tests"
)]
async fn a_rolling_restart_under_load_fails_no_request_and_serves_nothing_stale() {
    let cluster = Cluster::new(Backend::Postgres).await;
    let names = ["r1", "r2", "r3"];
    let cluster_addrs: Vec<String> = names
        .iter()
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    let http_addrs: Vec<String> = names
        .iter()
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    // Each process's log, with why a forward failed (for the message
    // should one fail).
    let logs = tempfile::tempdir().expect("temp dir");
    let log_paths: Vec<Vec<std::path::PathBuf>> = names
        .iter()
        .map(|n| {
            (0..2)
                .map(|g| logs.path().join(format!("{n}-{g}.log")))
                .collect()
        })
        .collect();
    // Every node is told every address, as a static peer list would.
    let launch = |i: usize, generation: usize| Launch {
        http: http_addrs[i].clone(),
        join: cluster_addrs.clone(),
        extra: vec!["--shutdown-grace".into(), "10s".into()],
        log: Some((&log_paths[i][generation], LOG_FILTER)),
        ..Launch::new(names[i], &cluster_addrs[i])
    };
    let mut nodes: Vec<Node> = (0..3).map(|i| cluster.launch(launch(i, 0))).collect();
    for n in &nodes {
        assert!(
            wait_members(n, &names, Duration::from_secs(30)).await,
            "{} sees {:?}",
            n.name,
            members(n).await
        );
    }
    let ids = add_users(&cluster, USERS).await;
    let tokens: Vec<String> = ids.iter().map(|id| token(*id)).collect();
    let admin = admin_token(&nodes[0]).await;

    let lb = Balancer::new(http_addrs.clone());
    for (i, name) in names.iter().enumerate() {
        assert!(
            lb.wait_ready(i, Duration::from_secs(30)).await,
            "{name} ready"
        );
    }
    let stop = Arc::new(AtomicBool::new(false));
    let history = Arc::new(Mutex::new(History::default()));
    let mut tasks = lb.spawn_polls(&stop);
    for w in 0..READERS {
        let (lb, stop, history) = (Arc::clone(&lb), Arc::clone(&stop), Arc::clone(&history));
        let (ids, tokens) = (ids.clone(), tokens.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = w;
            while !stop.load(Ordering::Relaxed) {
                let Some(node) = lb.pick().map(String::from) else {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                };
                i = (i + 7) % ids.len();
                let sent = Instant::now();
                let (status, body) =
                    call(&node, "GET", "/api/auth/session", Some(&tokens[i]), None).await;
                let role = body["user"]["role"].as_str().and_then(role_index);
                let mut h = history.lock().expect("history");
                match (status, role) {
                    (200, Some(k)) => h.reads.push((ids[i], sent, k)),
                    _ => h.failures.push((node, status, body.to_string())),
                }
            }
        }));
    }
    {
        let (lb, stop, history) = (Arc::clone(&lb), Arc::clone(&stop), Arc::clone(&history));
        let ids = ids.clone();
        tasks.push(tokio::spawn(async move {
            let mut next: HashMap<i64, u64> = HashMap::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let Some(node) = lb.pick().map(String::from) else {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                };
                i = (i + 5) % ids.len();
                let k = next.entry(ids[i]).or_insert(0);
                *k += 1;
                let body = json!({ "role": format!("r{k}") }).to_string();
                let path = format!("/api/admin/users/{}/role", ids[i]);
                let (status, answer) = call(&node, "PUT", &path, Some(&admin), Some(&body)).await;
                let acked = Instant::now();
                {
                    let mut h = history.lock().expect("history");
                    if status == 200 {
                        h.writes.push((ids[i], *k, acked));
                    } else {
                        h.failures.push((node, status, answer.to_string()));
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }

    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut failed_forwards = 0.0;
    let mut leave_times = Vec::new();
    for i in 0..3 {
        failed_forwards += forward_failures(&nodes[i].http).await;
        let (status, took) = terminate(&mut nodes[i], Duration::from_secs(20)).await;
        assert!(status.success(), "{} exited with {status}", names[i]);
        leave_times.push(took);
        nodes[i] = cluster.launch(launch(i, 1));
        assert!(
            lb.wait_ready(i, Duration::from_secs(30)).await,
            "{} ready again",
            names[i]
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("client task");
    }
    for n in &nodes {
        failed_forwards += forward_failures(&n.http).await;
    }

    let h = std::mem::take(&mut *history.lock().expect("history"));
    let stale = h.stale();
    eprintln!(
        "rolling restart: {} lookups, {} acknowledged role changes, {} failed, {} stale, \
         {failed_forwards} failed forwards; SIGTERM to exit: {leave_times:?}",
        h.reads.len(),
        h.writes.len(),
        h.failures.len(),
        stale.len(),
    );
    assert!(
        h.reads.len() > 200,
        "steady load: {} lookups",
        h.reads.len()
    );
    assert!(h.writes.len() > 20, "role changes: {}", h.writes.len());
    assert!(
        h.failures.is_empty(),
        "failed requests: {:?}",
        &h.failures[..h.failures.len().min(10)]
    );
    assert!(
        stale.is_empty(),
        "stale answers: {:?}",
        &stale[..stale.len().min(10)]
    );
    let why: Vec<String> = log_paths
        .iter()
        .flatten()
        .flat_map(|p| {
            std::fs::read_to_string(p)
                .unwrap_or_default()
                .lines()
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .filter(|l| l.contains("serving locally"))
        .collect();
    assert_eq!(failed_forwards, 0.0, "forward failures: {why:?}");
    cluster.finish(nodes).await;
}

/// A node told to stop turns unready at once, is dropped from its peers'
/// views while it is still running (by its notice, not by the failure
/// detector, which cannot notice a node that still answers), still answers
/// lookups sent to it, and exits 0 once they stop coming.
#[tokio::test]
async fn a_leaving_node_turns_unready_is_dropped_by_its_peers_and_still_answers() {
    let cluster = Cluster::new(Backend::Sqlite).await;
    let a = cluster.start("la", free_port(), &[], COOKIE);
    let mut b = cluster.start("lb", free_port(), &[&a], COOKIE);
    for n in [&a, &b] {
        assert!(wait_members(n, &["la", "lb"], Duration::from_secs(20)).await);
    }
    let ids = add_users(&cluster, 8).await;
    for id in &ids {
        assert_eq!(session(&b, *id).await.0, 200);
        assert_eq!(session(&b, *id).await.0, 200);
    }
    let admin = admin_token(&a).await;
    signal(&b, "-TERM");
    let started = Instant::now();
    // Unready, saying why.
    loop {
        let (status, body) = get(&b, "/readyz", None).await;
        if status == 503 {
            assert!(
                body["message"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("leaving"),
                "{body}"
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "still ready: {body}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Lookups still arrive (a balancer acts on its last poll): each is
    // answered, and each keeps the node draining.
    let mut dropped = false;
    for round in 0..40 {
        for id in &ids {
            let (status, body) = session(&b, *id).await;
            assert_eq!(status, 200, "lookup {round} on the leaving node: {body}");
        }
        if members(&a).await == ["la"] {
            dropped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(dropped, "la still sees {:?}", members(&a).await);
    assert!(
        b.child.try_wait().expect("waits").is_none(),
        "lb was dropped only once it had exited"
    );
    // A balancer whose last poll predates the leave still sends lb a
    // lookup now and then: keep a few coming, each answered, so lb's quiet
    // period (a second without requests) does not end while the admin
    // writes below are slow on a loaded machine.
    let trickle_stop = Arc::new(AtomicBool::new(false));
    let trickle = {
        let (addr, stop, id) = (b.http.clone(), Arc::clone(&trickle_stop), ids[0]);
        tokio::spawn(async move {
            let mut failed = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let t = token(id);
                let (status, body) =
                    crate::helpers::call(&addr, "GET", "/api/auth/session", Some(&t), None).await;
                if status != 200 {
                    failed.push(format!("{status} {body}"));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            failed
        })
    };
    // la no longer waits for lb's lease, and sends it no invalidation: a
    // change acknowledged now must still never be answered the old way by
    // lb (which cached these users), so lb no longer answers from its cache.
    for id in &ids {
        set_role(&a, &admin, *id, "after-leave").await;
        let (status, body) = session(&b, *id).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["user"]["role"], "after-leave",
            "stale answer from lb: {body}"
        );
    }
    // Its users are la's now, with nothing forwarded to lb.
    for id in &ids {
        let (status, body) = session(&a, *id).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["cache"]["node"], "la", "{body}");
    }
    trickle_stop.store(true, Ordering::Relaxed);
    let failed = trickle.await.expect("the trickle ends");
    assert!(failed.is_empty(), "lookups on the leaving node: {failed:?}");
    let (status, _) = terminate(&mut b, Duration::from_secs(15)).await;
    assert!(status.success(), "lb exited with {status}");
    assert_eq!(forward_failures(&a.http).await, 0.0);
    cluster.finish(vec![a, b]).await;
}
