//! The load generator: keep-alive connections driven closed loop (the most
//! requests per second) or paced (latency at a given rate), and what a
//! drive measured.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sessiond_actors::stats::quantile;
use sessiond_testkit::http::{self, Conn, Connection};

use crate::cpu::{machine_cpu, postgres_cpu, proc_cpu, self_cpu};
use crate::server::Server;
use crate::settings::Settings;

#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) ok: u64,
    pub(crate) errors: u64,
    pub(crate) elapsed: Duration,
    /// Microseconds, sorted.
    pub(crate) latencies: Vec<u32>,
    /// CPU used meanwhile by the server, this load generator, PostgreSQL
    /// and the whole machine.
    pub(crate) cpu: [Option<Duration>; 4],
}

impl Stats {
    pub(crate) fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    pub(crate) fn quantile_ms(&self, q: f64) -> f64 {
        quantile(&self.latencies, q).map_or(f64::NAN, |us| us as f64 / 1000.0)
    }

    /// CPU µs per answered request: `which` 0 = server, 1 = load
    /// generator, 2 = PostgreSQL.
    pub(crate) fn cpu_us_per_request(&self, which: usize) -> Option<f64> {
        let cpu = self.cpu[which]?;
        (self.ok > 0).then(|| cpu.as_secs_f64() * 1e6 / self.ok as f64)
    }

    /// CPU µs per answered request, all parties summed (PostgreSQL only
    /// when `with_db`): what each request costs the machine, which stays
    /// put when other processes take cores away.
    pub(crate) fn total_cpu_us(&self, with_db: bool) -> Option<f64> {
        let n = if with_db { 3 } else { 2 };
        (0..n).map(|i| self.cpu_us_per_request(i)).sum()
    }

    /// Cores kept busy meanwhile by the parties summed in `total_cpu_us`,
    /// and by everything else on the machine (other people's work).
    pub(crate) fn cores_busy(&self, with_db: bool) -> String {
        let secs = self.elapsed.as_secs_f64();
        let ours = self
            .total_cpu_us(with_db)
            .map(|us| us * self.ok as f64 / 1e6 / secs);
        let all = self.cpu[3].map(|d| d.as_secs_f64() / secs);
        match (ours, all) {
            (Some(o), Some(a)) => format!("{o:.2} / {:.2}", (a - o).max(0.0)),
            (Some(o), None) => format!("{o:.2} / n/a"),
            _ => "n/a".into(),
        }
    }

    fn merge(&mut self, other: Stats) {
        self.ok += other.ok;
        self.errors += other.errors;
        self.elapsed += other.elapsed;
        self.latencies.extend(other.latencies);
        self.latencies.sort_unstable();
        for (mine, theirs) in self.cpu.iter_mut().zip(other.cpu) {
            *mine = match (*mine, theirs) {
                (Some(a), Some(b)) => Some(a + b),
                (None, b) => b,
                (a, None) => a,
            };
        }
    }
}

/// What one target serves: the server and the requests to rotate through.
#[derive(Clone)]
pub(crate) struct Target {
    addr: SocketAddr,
    pid: u32,
    requests: Arc<Vec<Vec<u8>>>,
}

impl Target {
    pub(crate) fn new(server: &Server, path: &str, tokens: &[String]) -> Target {
        let host = server.addr.to_string();
        let get = |token| {
            let request = http::Request {
                method: "GET",
                path,
                token,
                body: None,
            };
            request.bytes(&host, Connection::KeepAlive)
        };
        let requests = if tokens.is_empty() {
            vec![get(None)]
        } else {
            tokens.iter().map(|t| get(Some(t))).collect()
        };
        Target {
            addr: server.addr,
            pid: server.child.id(),
            requests: Arc::new(requests),
        }
    }

    fn cpu(&self) -> Option<Duration> {
        proc_cpu(&format!("/proc/{}/stat", self.pid))
    }
}

/// Drives `target` with `connections` keep-alive connections for `secs`.
/// `rate`: `None` is a closed loop (each connection sends its next request
/// as soon as the answer arrives: the maximum throughput); `Some(r)` paces
/// the requests at `r` per second in total (open loop: latency counts from
/// when a request was due if the connection was still busy then).
pub(crate) async fn drive(
    target: &Target,
    connections: usize,
    secs: f64,
    rate: Option<f64>,
) -> Stats {
    let mut conns = Vec::with_capacity(connections);
    for _ in 0..connections {
        conns.push(Conn::open(target.addr).await.expect("connects"));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let cpu_before = [target.cpu(), self_cpu(), postgres_cpu(), machine_cpu()];
    let started = Instant::now();
    let end = started + Duration::from_secs_f64(secs);
    let interval = rate.map(|r| Duration::from_secs_f64(connections as f64 / r));
    let mut tasks = Vec::with_capacity(connections);
    for (c, mut conn) in conns.into_iter().enumerate() {
        let requests = Arc::clone(&target.requests);
        let stop = Arc::clone(&stop);
        let addr = target.addr;
        tasks.push(tokio::spawn(async move {
            let mut s = Stats::default();
            let mut k = c * 7919;
            let offset = interval.map(|i| i.mul_f64(c as f64 / connections as f64));
            let mut due = started + offset.unwrap_or_default();
            loop {
                let t0 = match interval {
                    None => {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        Instant::now()
                    }
                    Some(i) => {
                        if due >= end {
                            break;
                        }
                        let now = Instant::now();
                        let t0 = if now < due {
                            tokio::time::sleep_until(due.into()).await;
                            Instant::now()
                        } else {
                            due
                        };
                        due += i;
                        t0
                    }
                };
                let req = &requests[k % requests.len()];
                k += 1;
                match conn.roundtrip(req).await {
                    Ok(200) => {
                        s.ok += 1;
                        s.latencies
                            .push(t0.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    }
                    Ok(_) => s.errors += 1,
                    Err(_) => {
                        s.errors += 1;
                        match Conn::open(addr).await {
                            Ok(c) => conn = c,
                            Err(_) => break,
                        }
                    }
                }
            }
            s
        }));
    }
    if rate.is_none() {
        tokio::time::sleep_until(end.into()).await;
        stop.store(true, Ordering::Relaxed);
    }
    let mut total = Stats::default();
    for t in tasks {
        let s = t.await.expect("load task");
        total.ok += s.ok;
        total.errors += s.errors;
        total.latencies.extend(s.latencies);
    }
    total.elapsed = started.elapsed();
    let cpu_after = [target.cpu(), self_cpu(), postgres_cpu(), machine_cpu()];
    for i in 0..4 {
        total.cpu[i] = match (cpu_before[i], cpu_after[i]) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a)),
            _ => None,
        };
    }
    total.latencies.sort_unstable();
    total
}

/// Closed-loop rounds of `targets`, alternating their order each round;
/// returns each target's merged stats.
pub(crate) async fn compare(targets: &[&Target], s: &Settings) -> Vec<Stats> {
    // A short warm-up of each, not counted.
    for t in targets {
        drive(t, s.connections, 0.5, None).await;
    }
    let mut out: Vec<Stats> = targets.iter().map(|_| Stats::default()).collect();
    for round in 0..s.rounds {
        let order: Vec<usize> = if round % 2 == 0 {
            (0..targets.len()).collect()
        } else {
            (0..targets.len()).rev().collect()
        };
        for i in order {
            let stats = drive(targets[i], s.connections, s.secs, None).await;
            out[i].merge(stats);
        }
    }
    out
}
