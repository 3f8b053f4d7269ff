//! Process control for the fault tests and the history checker: a
//! `sessiond serve` started inside a namespace or not, paused (SIGSTOP),
//! resumed, killed with -9 and restarted under the same name; and what a
//! node says about itself (members, metrics) through the one HTTP client.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::http::Client;

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

impl Sessiond {
    /// The members this node sees (from `/api/perf`), sorted.
    pub async fn members(&self, client: &Client) -> Vec<String> {
        members_at(client, self.http()).await
    }

    /// Waits until this node sees exactly `expected` as members.
    pub async fn wait_members(&self, client: &Client, expected: &[&str], within: Duration) -> bool {
        let mut want: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
        want.sort();
        let deadline = Instant::now() + within;
        loop {
            if self.members(client).await == want {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The value of a metric in this node's `/metrics` (its first series),
    /// if shown.
    pub async fn metric(&self, client: &Client, name: &str) -> Option<f64> {
        let a = client.get(self.http(), "/metrics", None).await;
        a.text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| {
                let (key, value) = l.rsplit_once(' ')?;
                let labelled = key.strip_prefix(name).is_some_and(|r| r.starts_with('{'));
                (key == name || labelled).then(|| value.trim().parse().ok())?
            })
    }
}

/// The members the node at `addr` sees (from `/api/perf`), sorted.
pub async fn members_at(client: &Client, addr: &str) -> Vec<String> {
    let a = client.get(addr, "/api/perf", None).await;
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
