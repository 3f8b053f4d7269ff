//! Fault injection against real `sessiond` processes: network namespaces
//! joined by veth pairs whose links can be cut one at a time, a userspace
//! TCP relay for database traffic, and process control (SIGSTOP/SIGCONT,
//! kill -9, restart under the same name).
//!
//! ```text
//!  root namespace (the test, nodes that are never cut off, PostgreSQL)
//!    │ sdNu ─ uplink┐          hub namespace: bridge br0 (10.213.N.0/25)
//!    │             ├─ br0 ─ pK ─── peer ┐
//!    │ sdNcK ───────────────────── ctl  ├─ host namespace K (one node)
//!    │ sdNdK ── relay → 127.0.0.1:5432 db ┘
//! ```
//!
//! Every host namespace has three links, so each kind of traffic can be cut
//! alone: `ctl` carries the test's own HTTP requests and is never cut;
//! `peer` carries cluster traffic (to a bridge in a hub namespace, which the
//! root namespace reaches through its own uplink, so nodes in the root
//! namespace and in any host namespace all see each other); `db` carries
//! database traffic to a relay in the test process. A cut sets the link's
//! outer end down: the node's packets vanish, with no reset and no error, as
//! with a pulled cable. Addresses are taken from 10.213.0.0/16 only and live
//! only on the devices made here; nothing is routed anywhere else.
//!
//! Names carry the owner's process id (`sd<N>-<pid>-…`), so runs in
//! parallel never collide, and namespaces of a crashed run are removed by
//! the next one.

#![allow(dead_code)] // each includer uses its own part

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

/// The first octets of every address made here.
const NET: [u8; 2] = [10, 213];
/// At most this many host namespaces per lab (the ctl and db /30 pairs of
/// host K live in 10.213.N.128/25).
const MAX_HOSTS: u8 = 16;
/// Namespaces of a run whose process is gone are removed once this old.
const STALE_AFTER: Duration = Duration::from_secs(180);

/// Why the fault tools cannot run here.
#[derive(Debug, Clone)]
pub struct Unsupported(pub String);

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Runs `ip` with `args`; the error names the command and what it said.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Checks that this process may make namespaces (root, `ip` installed,
/// `ip netns add` works).
pub fn check_environment() -> Result<(), Unsupported> {
    static CHECKED: Mutex<Option<Result<(), String>>> = Mutex::new(None);
    let mut checked = CHECKED.lock().unwrap_or_else(|p| p.into_inner());
    let result = checked.get_or_insert_with(|| {
        let uid = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("Uid:"))
                    .and_then(|l| l.split_whitespace().nth(2).map(str::to_string))
            });
        if uid.as_deref() != Some("0") {
            return Err("network namespaces need root (effective uid 0)".into());
        }
        if Command::new("ip").arg("-V").output().is_err() {
            return Err("the `ip` command (iproute2) is not installed".into());
        }
        let probe = format!("sdprobe-{}", std::process::id());
        ip(&["netns", "add", &probe])
            .map_err(|e| format!("`ip netns add` does not work here: {e}"))?;
        let _ = ip(&["netns", "del", &probe]);
        Ok(())
    });
    result.clone().map_err(Unsupported)
}

/// For tests: `true` when namespaces can be made. Otherwise fails the test
/// when `CI` is set, and else prints why it is skipped and returns `false`
/// (a `cargo test` without root must pass).
pub fn available_or_skip(test: &str) -> bool {
    match check_environment() {
        Ok(()) => true,
        Err(why) if std::env::var_os("CI").is_some() => {
            panic!("{test} needs network namespaces and CI is set, but {why}")
        }
        Err(why) => {
            eprintln!("SKIPPED: {test}: {why} (run as root to include it)");
            false
        }
    }
}

fn is_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Removes namespaces left by runs that crashed: made here (`sd<N>-<pid>-`),
/// their process gone, and older than [`STALE_AFTER`]. Processes still
/// inside them (nodes of that run) are killed by id first.
fn remove_stale() {
    let entries = std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten();
    for entry in entries {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(pid) = owner_pid(&name) else {
            continue;
        };
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age > STALE_AFTER);
        if pid == std::process::id() || is_alive(pid) || !old {
            continue;
        }
        if let Ok(out) = Command::new("ip").args(["netns", "pids", &name]).output() {
            for p in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-KILL", p]).status();
            }
        }
        let _ = ip(&["netns", "del", &name]);
    }
    // A namespace outlives its deletion while sockets in it still hold it
    // (say, a connection killed while its link was down, retransmitting):
    // then its veth ends in the root namespace stay, and go with it.
    for n in 1..=250u8 {
        if lab_in_use(n) {
            continue;
        }
        for dev in lab_devices(n) {
            let _ = ip(&["link", "del", "dev", &dev]);
        }
    }
}

/// Whether any namespace of lab number `n` exists.
fn lab_in_use(n: u8) -> bool {
    let prefix = format!("sd{n}-");
    std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with(&prefix))
}

/// Devices in the root namespace made for lab number `n` (`sd<n>u`,
/// `sd<n>c<k>`, `sd<n>d<k>`).
fn lab_devices(n: u8) -> Vec<String> {
    let prefix = format!("sd{n}");
    std::fs::read_dir("/sys/class/net")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|d| {
            d.strip_prefix(&prefix).is_some_and(|rest| {
                let mut c = rest.chars();
                matches!(c.next(), Some('u' | 'c' | 'd')) && c.all(|ch| ch.is_ascii_digit())
            })
        })
        .collect()
}

/// The owner's process id in a name made here (`sd<N>-<pid>-…`).
fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("sd")?;
    let (n, rest) = rest.split_once('-')?;
    n.parse::<u8>().ok()?;
    let (pid, _) = rest.split_once('-')?;
    pid.parse().ok()
}

fn addr(n: u8, last: u8) -> Ipv4Addr {
    Ipv4Addr::new(NET[0], NET[1], n, last)
}

/// A hub namespace with a bridge for cluster traffic, reached from the root
/// namespace by an uplink that is never cut. Dropping it removes every
/// namespace and device it made.
pub struct Lab {
    n: u8,
    tag: String,
    hub: String,
    next_host: AtomicU8,
}

impl Lab {
    pub fn new() -> Result<Lab, Unsupported> {
        check_environment()?;
        static CLEAN: Once = Once::new();
        CLEAN.call_once(remove_stale);
        // One claim at a time within this process; across processes the
        // uplink's name in the root namespace is the claim.
        static CLAIM: Mutex<()> = Mutex::new(());
        let _claim = CLAIM.lock().unwrap_or_else(|p| p.into_inner());
        let pid = std::process::id();
        for n in 1..=250u8 {
            let uplink = format!("sd{n}u");
            if lab_in_use(n) || !lab_devices(n).is_empty() {
                continue;
            }
            let tag = format!("sd{n}-{pid}");
            let hub = format!("{tag}-hub");
            if ip(&["netns", "add", &hub]).is_err() {
                continue;
            }
            let lab = Lab {
                n,
                tag,
                hub,
                next_host: AtomicU8::new(1),
            };
            if ip(&[
                "link", "add", &uplink, "type", "veth", "peer", "name", "uplink", "netns", &lab.hub,
            ])
            .is_err()
            {
                // Another run claimed this number meanwhile.
                continue;
            }
            lab.wire_hub(&uplink).map_err(Unsupported)?;
            return Ok(lab);
        }
        Err(Unsupported("no free lab number in 10.213.0.0/16".into()))
    }

    fn wire_hub(&self, uplink: &str) -> Result<(), String> {
        let hub = self.hub.as_str();
        let root = format!("{}/25", self.root_addr());
        ip(&["-n", hub, "link", "set", "dev", "lo", "up"])?;
        ip(&["-n", hub, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", hub, "link", "set", "dev", "br0", "up"])?;
        ip(&[
            "-n", hub, "link", "set", "dev", "uplink", "master", "br0", "up",
        ])?;
        ip(&["addr", "add", &root, "dev", uplink])?;
        ip(&["link", "set", "dev", uplink, "up"])
    }

    /// The root namespace's address on the cluster network: nodes in the
    /// root namespace listen for cluster traffic here.
    pub fn root_addr(&self) -> Ipv4Addr {
        addr(self.n, 1)
    }

    /// A new namespace for one node, with its ctl, peer and db links up.
    pub fn host(&self) -> Result<Host, Unsupported> {
        let k = self.next_host.fetch_add(1, Ordering::SeqCst);
        if k > MAX_HOSTS {
            return Err(Unsupported(format!("at most {MAX_HOSTS} hosts per lab")));
        }
        let host = Host {
            ns: format!("{}-h{k}", self.tag),
            hub: self.hub.clone(),
            n: self.n,
            k,
        };
        ip(&["netns", "add", &host.ns]).map_err(Unsupported)?;
        host.wire().map_err(Unsupported)?;
        Ok(host)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Deleting the hub deletes the uplink and every peer link's hub end.
        let _ = ip(&["netns", "del", &self.hub]);
    }
}

/// The links of a host namespace that can be cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// Cluster traffic (to the hub's bridge).
    Peer,
    /// Database traffic (to the relay in the root namespace).
    Db,
}

/// A network namespace for one node. Dropping it removes it.
pub struct Host {
    ns: String,
    hub: String,
    n: u8,
    k: u8,
}

impl Host {
    fn base(&self) -> u8 {
        128 + 8 * (self.k - 1)
    }

    fn ctl_dev(&self) -> String {
        format!("sd{}c{}", self.n, self.k)
    }

    fn db_dev(&self) -> String {
        format!("sd{}d{}", self.n, self.k)
    }

    fn peer_dev(&self) -> String {
        format!("p{}", self.k)
    }

    fn wire(&self) -> Result<(), String> {
        let ns = self.ns.as_str();
        ip(&["-n", ns, "link", "set", "dev", "lo", "up"])?;
        for (dev, inner, root, node) in [
            (self.ctl_dev(), "ctl", self.ctl_root(), self.ctl_addr()),
            (self.db_dev(), "db", self.db_root(), self.db_addr()),
        ] {
            ip(&[
                "link", "add", &dev, "type", "veth", "peer", "name", inner, "netns", ns,
            ])?;
            ip(&["addr", "add", &format!("{root}/30"), "dev", &dev])?;
            ip(&["link", "set", "dev", &dev, "up"])?;
            ip(&["-n", ns, "addr", "add", &format!("{node}/30"), "dev", inner])?;
            ip(&["-n", ns, "link", "set", "dev", inner, "up"])?;
        }
        let peer = self.peer_dev();
        ip(&[
            "-n", &self.hub, "link", "add", &peer, "type", "veth", "peer", "name", "peer", "netns",
            ns,
        ])?;
        ip(&[
            "-n", &self.hub, "link", "set", "dev", &peer, "master", "br0", "up",
        ])?;
        let me = format!("{}/25", self.peer_addr());
        ip(&["-n", ns, "addr", "add", &me, "dev", "peer"])?;
        ip(&["-n", ns, "link", "set", "dev", "peer", "up"])
    }

    /// The namespace's name (for `ip netns exec`).
    pub fn name(&self) -> &str {
        &self.ns
    }

    /// The node's address for the test's HTTP requests (never cut).
    pub fn ctl_addr(&self) -> Ipv4Addr {
        addr(self.n, self.base() + 2)
    }

    fn ctl_root(&self) -> Ipv4Addr {
        addr(self.n, self.base() + 1)
    }

    /// The node's address on the cluster network.
    pub fn peer_addr(&self) -> Ipv4Addr {
        addr(self.n, 1 + self.k)
    }

    /// The root namespace's end of the db link: a relay listens here.
    pub fn db_root(&self) -> Ipv4Addr {
        addr(self.n, self.base() + 5)
    }

    fn db_addr(&self) -> Ipv4Addr {
        addr(self.n, self.base() + 6)
    }

    fn outer(&self, link: Link) -> Vec<String> {
        match link {
            Link::Peer => vec!["-n".into(), self.hub.clone(), self.peer_dev()],
            Link::Db => vec![self.db_dev()],
        }
    }

    fn set(&self, link: Link, state: &str) {
        let mut args = self.outer(link);
        let dev = args.pop().unwrap_or_default();
        args.extend(["link".into(), "set".into(), "dev".into(), dev, state.into()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        if let Err(e) = ip(&args) {
            panic!("cannot set {link:?} of {} {state}: {e}", self.ns);
        }
    }

    /// Cuts `link`: its outer end goes down, so packets vanish silently.
    pub fn cut(&self, link: Link) {
        self.set(link, "down");
    }

    pub fn heal(&self, link: Link) {
        self.set(link, "up");
    }

    /// Heals every link. Call it before the node is killed: connections
    /// killed while their link is down keep retransmitting, and keep the
    /// namespace (and its devices) alive for minutes after its deletion.
    pub fn heal_all(&self) {
        for link in [Link::Peer, Link::Db] {
            self.heal(link);
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        // Nodes started in it are killed by their own Drop; the veth pairs
        // go with the namespace.
        let _ = ip(&["netns", "del", &self.ns]);
    }
}

/// A TCP relay in this process (on a thread and runtime of its own, so the
/// caller's runtime may block): every connection accepted on `listen` is
/// joined to a new connection to `target`.
pub struct Relay {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Relay {
    /// Listens on `ip` (port chosen by the system) and forwards to `target`.
    pub fn start(ip: Ipv4Addr, target: SocketAddr) -> std::io::Result<Relay> {
        let std_listener = std::net::TcpListener::bind((ip, 0))?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name(format!("relay-{addr}"))
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(std_listener) else {
                        return;
                    };
                    let accept = async {
                        while let Ok((mut inbound, _)) = listener.accept().await {
                            tokio::spawn(async move {
                                if let Ok(mut outbound) =
                                    tokio::net::TcpStream::connect(target).await
                                {
                                    let _ =
                                        tokio::io::copy_bidirectional(&mut inbound, &mut outbound)
                                            .await;
                                }
                            });
                        }
                    };
                    tokio::select! {
                        _ = accept => {}
                        _ = stopped => {}
                    }
                });
                // Dropping the runtime here closes every relayed connection.
            })?;
        Ok(Relay {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Sends `sig` (`-STOP`, `-CONT`, …) to the process `pid`.
pub fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill {sig} {pid}");
}

/// How to start one `sessiond serve`: inside a namespace or not.
#[derive(Clone, Debug)]
pub struct Spec {
    pub bin: String,
    /// `ip netns exec` into this namespace first.
    pub netns: Option<String>,
    pub name: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

/// A running `sessiond serve` process, under the test's control.
pub struct Sessiond {
    spec: Spec,
    child: Option<Child>,
    http: String,
}

impl Sessiond {
    /// Starts it and waits until it says where it listens.
    pub fn start(spec: Spec) -> Result<Sessiond, String> {
        let mut node = Sessiond {
            spec,
            child: None,
            http: String::new(),
        };
        node.spawn()?;
        Ok(node)
    }

    fn spawn(&mut self) -> Result<(), String> {
        let mut cmd = match &self.spec.netns {
            // `ip netns exec` execs the program, so the child's pid is the
            // node's own.
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, &self.spec.bin]);
                c
            }
            None => Command::new(&self.spec.bin),
        };
        cmd.arg("serve")
            .args(&self.spec.args)
            .envs(self.spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.spec.bin))?;
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            return Err("no stdout".into());
        };
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            // Keeps draining stdout for the process's whole life.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let http = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(a) = line.strip_prefix("sessiond listening on http://") {
                        break a.trim().to_string();
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "{} did not say where it listens within 60 s",
                        self.spec.name
                    ));
                }
            }
        };
        self.http = http;
        self.child = Some(child);
        Ok(())
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// `host:port` of its HTTP front.
    pub fn http(&self) -> &str {
        &self.http
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGSTOP: the process stays, its sockets stay open (the kernel still
    /// accepts connections and queues requests), nothing runs.
    pub fn pause(&self) {
        if let Some(pid) = self.pid() {
            signal(pid, "-STOP");
        }
    }

    pub fn resume(&self) {
        if let Some(pid) = self.pid() {
            signal(pid, "-CONT");
        }
    }

    /// kill -9, and reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again with the same name, addresses and flags.
    pub fn restart(&mut self) -> Result<(), String> {
        self.kill9();
        self.spawn()
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

impl Drop for Sessiond {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A small HTTP client (hyper's, with keep-alive) for talking to nodes.
#[derive(Clone)]
pub struct Http {
    client: hyper::Client<hyper::client::HttpConnector>,
    timeout: Duration,
}

/// One answer: the status (0 when none came within the timeout or the
/// connection failed) and the body, parsed as JSON (`Null` when it is not)
/// or as text under `"text"`.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Default for Http {
    fn default() -> Self {
        Http::new(Duration::from_secs(20))
    }
}

impl Http {
    pub fn new(timeout: Duration) -> Http {
        Http {
            client: hyper::Client::builder()
                .pool_idle_timeout(Duration::from_secs(5))
                .build_http(),
            timeout,
        }
    }

    pub async fn call(
        &self,
        addr: &str,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Answer {
        let none = Answer {
            status: 0,
            body: Value::Null,
        };
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(format!("http://{addr}{path}"));
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(hyper::Body::from(b.to_string())),
            None => req.body(hyper::Body::empty()),
        };
        let Ok(req) = req else {
            return none;
        };
        let exchange = async {
            let res = self.client.request(req).await.ok()?;
            let status = res.status().as_u16();
            let bytes = hyper::body::to_bytes(res.into_body()).await.ok()?;
            let body = serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| serde_json::json!({ "text": String::from_utf8_lossy(&bytes) }));
            Some(Answer { status, body })
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(Some(a)) => a,
            _ => none,
        }
    }

    pub async fn get(&self, addr: &str, path: &str, token: Option<&str>) -> Answer {
        self.call(addr, "GET", path, token, None).await
    }

    /// The members a node sees (from `/api/perf`), sorted.
    pub async fn members(&self, node: &Sessiond) -> Vec<String> {
        self.members_at(node.http()).await
    }

    /// The members the node at `addr` sees, sorted.
    pub async fn members_at(&self, addr: &str) -> Vec<String> {
        let a = self.get(addr, "/api/perf", None).await;
        let mut m: Vec<String> = a.body["members"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|m| m.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        m.sort();
        m
    }

    /// Waits until `node` sees exactly `expected` as members.
    pub async fn wait_members(&self, node: &Sessiond, expected: &[&str], within: Duration) -> bool {
        let mut want: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
        want.sort();
        let deadline = Instant::now() + within;
        loop {
            if self.members(node).await == want {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The value of a metric in a node's `/metrics` (its first series), if
    /// shown.
    pub async fn metric(&self, node: &Sessiond, name: &str) -> Option<f64> {
        let a = self.get(node.http(), "/metrics", None).await;
        let text = a.body["text"].as_str()?.to_string();
        text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            let labelled = key.strip_prefix(name).is_some_and(|r| r.starts_with('{'));
            (key == name || labelled).then(|| value.trim().parse().ok())?
        })
    }
}
