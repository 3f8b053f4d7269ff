//! Real network partitions for the fault tests: network namespaces joined
//! by veth pairs whose links can be cut one at a time. The database link
//! ends at a [`Relay`](crate::relay::Relay) in the test process; the nodes
//! in the namespaces are run by [`crate::process`].
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
//! alone (and [`Lab::cut_pair`] cuts the cluster traffic of two nodes to
//! each other only, in the hub's bridge): `ctl` carries the test's own HTTP requests and is never cut;
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

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, Once};
use std::time::{Duration, SystemTime};

use sessiond_actors::sync::MutexExt;

mod pairs;

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
    let mut checked = CHECKED.locked();
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
        let _claim = CLAIM.locked();
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
