//! HTTP load benchmark of the real `sessiond` binary, every figure a ratio
//! measured side by side in one run.
//!
//! ```sh
//! cargo bench --bench http_load
//! cargo bench --bench http_load -- --secs 4 --connections 32 --stores sqlite,postgres
//! ```
//!
//! It starts `sessiond serve` as child processes on loopback and drives them
//! with the HTTP/1.1 keep-alive load generator below (raw tokio sockets, one
//! request in flight per connection), which runs on the same cores as the
//! servers. It measures:
//!
//! - (a) `GET /healthz` vs a cached `GET /api/auth/session` (many users'
//!   tokens, warmed) on one server: the most requests per second of each
//!   (closed loop) and their ratio, then p50/p99 latency at half of each
//!   one's maximum rate (open loop, paced);
//! - (b) the session route with the cache on vs `--cache-ttl 0`, on SQLite
//!   and on PostgreSQL: two servers per store on the same database, measured
//!   in alternating rounds.
//!
//! Flags (after `--`) or environment: `--secs` / `HTTP_LOAD_SECS` (seconds
//! per measured round, default 2), `--rounds` / `HTTP_LOAD_ROUNDS` (default
//! 4), `--connections` / `HTTP_LOAD_CONNECTIONS` (default 32), `--users` /
//! `HTTP_LOAD_USERS` (default 200), `--threads` / `HTTP_LOAD_THREADS` (load
//! generator workers, default 2), `--stores` / `HTTP_LOAD_STORES` (default
//! `sqlite,postgres`). PostgreSQL: `SESSIOND_BENCH_POSTGRES_URL`, else
//! `SESSIOND_TEST_POSTGRES_URL`, else `postgres://postgres@127.0.0.1:5432/postgres`;
//! a fresh database is created for the run and dropped afterwards. If the
//! server cannot be reached the PostgreSQL rows say so and are skipped.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[path = "../tests/support/postgres_db.rs"]
mod postgres_db;

const ADMIN_PASSWORD: &str = "bench-admin-password";
const JWT_SECRET: &str = "bench-secret-bench-secret-bench-secret!";

// ---------------------------------------------------------------- settings

#[derive(Clone, Debug)]
struct Settings {
    secs: f64,
    rounds: usize,
    connections: usize,
    users: usize,
    threads: usize,
    stores: Vec<String>,
}

impl Settings {
    fn load() -> Settings {
        fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        }
        let mut s = Settings {
            secs: env("HTTP_LOAD_SECS", 2.0),
            rounds: env("HTTP_LOAD_ROUNDS", 4),
            connections: env("HTTP_LOAD_CONNECTIONS", 32),
            users: env("HTTP_LOAD_USERS", 200),
            threads: env("HTTP_LOAD_THREADS", 2),
            stores: env("HTTP_LOAD_STORES", "sqlite,postgres".to_string())
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
        };
        // `cargo bench` adds `--bench`; anything unknown is ignored.
        let args: Vec<String> = std::env::args().skip(1).collect();
        let mut i = 0;
        while i < args.len() {
            let value = args.get(i + 1).cloned().unwrap_or_default();
            let used = match args[i].as_str() {
                "--secs" => value.parse().map(|v| s.secs = v).is_ok(),
                "--rounds" => value.parse().map(|v| s.rounds = v).is_ok(),
                "--connections" => value.parse().map(|v| s.connections = v).is_ok(),
                "--users" => value.parse().map(|v| s.users = v).is_ok(),
                "--threads" => value.parse().map(|v| s.threads = v).is_ok(),
                "--stores" => {
                    s.stores = value.split(',').map(|v| v.trim().to_string()).collect();
                    true
                }
                _ => false,
            };
            i += if used { 2 } else { 1 };
        }
        s.rounds = s.rounds.max(1);
        s.connections = s.connections.max(1);
        s.users = s.users.max(1);
        s.threads = s.threads.max(1);
        s
    }

    fn command(&self) -> String {
        format!(
            "cargo bench --bench http_load -- --secs {} --rounds {} --connections {} --users {} --threads {} --stores {}",
            self.secs,
            self.rounds,
            self.connections,
            self.users,
            self.threads,
            self.stores.join(",")
        )
    }
}

// ------------------------------------------------------------------ server

/// A `sessiond serve` child process; SIGTERM on drop.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(database_url: &str, cache_ttl: &str) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sessiond"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(["--database-url", database_url])
            .args(["--cache-ttl", cache_ttl])
            .env("SESSIOND_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("SESSIOND_JWT_SECRET", JWT_SECRET)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starts the sessiond binary");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut first = String::new();
        stdout.read_line(&mut first).expect("reads the first line");
        let addr = first
            .trim()
            .rsplit("http://")
            .next()
            .and_then(|a| a.trim_end_matches('/').parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line from sessiond: {first:?}"));
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = String::new();
            while stdout.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
                sink.clear();
            }
        });
        Server { child, addr }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// utime + stime of a `/proc/…/stat` file (Linux; `None` elsewhere).
fn proc_cpu(path: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(path).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on every Linux this runs on.
    Some(Duration::from_millis(ticks * 10))
}

/// CPU time of this process (the load generator).
fn self_cpu() -> Option<Duration> {
    proc_cpu("/proc/self/stat")
}

/// CPU time of every running PostgreSQL process on this machine (backends
/// of other clients included; pooled backends live as long as the servers).
fn postgres_cpu() -> Option<Duration> {
    let mut total = Duration::ZERO;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let path = format!("/proc/{name}/stat");
        let Ok(stat) = std::fs::read_to_string(&path) else {
            continue;
        };
        if stat.contains("(postgres)") {
            total += proc_cpu(&path).unwrap_or_default();
        }
    }
    Some(total)
}

/// Busy CPU time of the whole machine (every core, every process), from
/// the first line of /proc/stat.
fn machine_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let ticks: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|t| t.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal …
    let busy: u64 = ticks.iter().take(8).sum::<u64>() - ticks.get(3)? - ticks.get(4)?;
    Some(Duration::from_millis(busy * 10))
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "n/a".into())
}

// ------------------------------------------------------------ HTTP client

/// One keep-alive HTTP/1.1 connection; one request in flight.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    body: std::ops::Range<usize>,
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

impl Conn {
    async fn open(addr: SocketAddr) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(4096),
            body: 0..0,
        })
    }

    /// Sends `request` (complete bytes) and reads one response; returns
    /// its status. The body is in [`Conn::body`] until the next call.
    async fn roundtrip(&mut self, request: &[u8]) -> std::io::Result<u16> {
        self.stream.write_all(request).await?;
        self.buf.clear();
        let mut scanned: usize = 0;
        let head_end = loop {
            if let Some(i) = find(&self.buf[scanned.saturating_sub(3)..], b"\r\n\r\n") {
                break scanned.saturating_sub(3) + i + 4;
            }
            scanned = self.buf.len();
            self.read_more().await?;
        };
        let head = std::str::from_utf8(&self.buf[..head_end])
            .map_err(|_| bad("response head is not UTF-8"))?;
        let status: u16 = head
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("no status code"))?;
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .ok_or_else(|| bad("response without Content-Length"))?;
        while self.buf.len() < head_end + length {
            self.read_more().await?;
        }
        self.body = head_end..head_end + length;
        Ok(status)
    }

    async fn read_more(&mut self) -> std::io::Result<()> {
        let len = self.buf.len();
        self.buf.resize(len + 4096, 0);
        let n = self.stream.read(&mut self.buf[len..]).await?;
        self.buf.truncate(len + n);
        if n == 0 {
            return Err(bad("connection closed by the server"));
        }
        Ok(())
    }

    fn body(&self) -> &[u8] {
        &self.buf[self.body.clone()]
    }
}

fn bad(msg: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.to_string())
}

fn get_request(addr: SocketAddr, path: &str, bearer: Option<&str>) -> Vec<u8> {
    let auth = bearer
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}\r\n").into_bytes()
}

fn post_request(addr: SocketAddr, path: &str, bearer: Option<&str>, body: &str) -> Vec<u8> {
    let auth = bearer
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// One request on a fresh connection: (status, parsed JSON body or Null).
async fn call(addr: SocketAddr, request: &[u8]) -> (u16, serde_json::Value) {
    let mut conn = Conn::open(addr).await.expect("connects to sessiond");
    let status = conn.roundtrip(request).await.expect("sessiond answers");
    let json = serde_json::from_slice(conn.body()).unwrap_or(serde_json::Value::Null);
    (status, json)
}

async fn login(addr: SocketAddr, email: &str, password: &str) -> String {
    let body = serde_json::json!({ "email": email, "password": password }).to_string();
    let (status, json) = call(addr, &post_request(addr, "/api/auth/login", None, &body)).await;
    assert_eq!(status, 200, "login of {email}: {json}");
    json["token"].as_str().expect("a token").to_string()
}

/// Creates `users` users through the admin API (skipping those that exist)
/// and logs each in; returns their tokens.
async fn tokens_for_users(addr: SocketAddr, users: usize) -> Vec<String> {
    let admin = login(addr, "admin@localhost", ADMIN_PASSWORD).await;
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    // argon2 runs on the server's blocking pool: a few at a time is plenty.
    for _ in 0..4 {
        let next = Arc::clone(&next);
        let admin = admin.clone();
        tasks.push(tokio::spawn(async move {
            let mut tokens = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= users {
                    break tokens;
                }
                let email = format!("bench{i}@example.test");
                let password = format!("bench-password-{i}");
                let body =
                    serde_json::json!({ "email": email, "password": password, "role": "user" })
                        .to_string();
                let req = post_request(addr, "/api/admin/users", Some(&admin), &body);
                let (status, json) = call(addr, &req).await;
                assert!(
                    status == 201 || status == 409,
                    "create {email}: {status} {json}"
                );
                tokens.push(login(addr, &email, &password).await);
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("user setup task"));
    }
    all
}

/// Every token resolved once; checks the answers say `cache.hit` as expected.
async fn warm_and_check(addr: SocketAddr, tokens: &[String], expect_hit: bool) {
    let mut conn = Conn::open(addr).await.expect("connects");
    for pass in 0..2 {
        for t in tokens {
            let status = conn
                .roundtrip(&get_request(addr, "/api/auth/session", Some(t)))
                .await
                .expect("session answers");
            assert_eq!(
                status,
                200,
                "session: {}",
                String::from_utf8_lossy(conn.body())
            );
            if pass == 1 {
                let json: serde_json::Value =
                    serde_json::from_slice(conn.body()).expect("session JSON");
                assert_eq!(
                    json["cache"]["hit"].as_bool(),
                    Some(expect_hit),
                    "cache.hit on the second pass: {json}"
                );
            }
        }
    }
}

// ------------------------------------------------------------------- load

#[derive(Default)]
struct Stats {
    ok: u64,
    errors: u64,
    elapsed: Duration,
    /// Microseconds, sorted.
    latencies: Vec<u32>,
    /// CPU used meanwhile by the server, this load generator, PostgreSQL
    /// and the whole machine.
    cpu: [Option<Duration>; 4],
}

impl Stats {
    fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    fn quantile_ms(&self, q: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let n = self.latencies.len();
        let i = ((n as f64 * q).ceil() as usize).clamp(1, n) - 1;
        self.latencies[i] as f64 / 1000.0
    }

    /// CPU µs per answered request: `which` 0 = server, 1 = load
    /// generator, 2 = PostgreSQL.
    fn cpu_us_per_request(&self, which: usize) -> Option<f64> {
        let cpu = self.cpu[which]?;
        (self.ok > 0).then(|| cpu.as_secs_f64() * 1e6 / self.ok as f64)
    }

    /// CPU µs per answered request, all parties summed (PostgreSQL only
    /// when `with_db`): what each request costs the machine, which stays
    /// put when other processes take cores away.
    fn total_cpu_us(&self, with_db: bool) -> Option<f64> {
        let n = if with_db { 3 } else { 2 };
        (0..n).map(|i| self.cpu_us_per_request(i)).sum()
    }

    /// Cores kept busy meanwhile by the parties summed in `total_cpu_us`,
    /// and by everything else on the machine (other people's work).
    fn cores_busy(&self, with_db: bool) -> String {
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
struct Target {
    addr: SocketAddr,
    pid: u32,
    requests: Arc<Vec<Vec<u8>>>,
}

impl Target {
    fn new(server: &Server, path: &str, tokens: &[String]) -> Target {
        let requests = if tokens.is_empty() {
            vec![get_request(server.addr, path, None)]
        } else {
            tokens
                .iter()
                .map(|t| get_request(server.addr, path, Some(t)))
                .collect()
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
async fn drive(target: &Target, connections: usize, secs: f64, rate: Option<f64>) -> Stats {
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
async fn compare(targets: &[&Target], s: &Settings) -> Vec<Stats> {
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

fn rate(r: f64) -> String {
    format!("{:.0}", r)
}

fn cpu(s: &Stats, which: usize) -> String {
    s.cpu_us_per_request(which)
        .map(|c| format!("{c:.1}"))
        .unwrap_or_else(|| "n/a".into())
}

// --------------------------------------------------------------- database

fn postgres_admin_url() -> String {
    std::env::var("SESSIOND_BENCH_POSTGRES_URL")
        .or_else(|_| std::env::var("SESSIOND_TEST_POSTGRES_URL"))
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A database for one store, and how to remove it afterwards.
enum Database {
    /// The directory is removed when this is dropped.
    Sqlite {
        _dir: tempfile::TempDir,
        url: String,
    },
    Postgres(String, String),
}

impl Database {
    async fn create(store: &str) -> Result<Database, String> {
        match store {
            "sqlite" => {
                let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
                let url = format!("sqlite://{}", dir.path().join("bench.db").display());
                Ok(Database::Sqlite { _dir: dir, url })
            }
            "postgres" => {
                let name = format!("sessiond_bench_{}", std::process::id());
                let admin_url = postgres_admin_url();
                postgres_db::drop(&admin_url, &name).await;
                let url = postgres_db::create(&admin_url, &name)
                    .await
                    .map_err(|e| format!("PostgreSQL at {admin_url} unreachable: {e}"))?;
                Ok(Database::Postgres(url, name))
            }
            other => Err(format!("unknown store {other:?} (sqlite, postgres)")),
        }
    }

    fn url(&self) -> &str {
        match self {
            Database::Sqlite { url, .. } | Database::Postgres(url, _) => url,
        }
    }

    async fn remove(self) {
        if let Database::Postgres(_, name) = self {
            postgres_db::drop(&postgres_admin_url(), &name).await;
        }
    }
}

// -------------------------------------------------------------------- run

struct StoreRow {
    store: String,
    on: Stats,
    off: Stats,
}

async fn run(s: Settings) {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("# sessiond HTTP load\n");
    println!("command: `{}`", s.command());
    println!(
        "machine: {cores} cores, shared by the servers and this load generator ({} tokio workers); load average at start: {}",
        s.threads,
        loadavg()
    );
    println!(
        "load: {} keep-alive connections, one request in flight each; {} round(s) of {} s per figure, order alternating; {} users' tokens rotated\n",
        s.connections, s.rounds, s.secs, s.users
    );

    let mut rows: Vec<StoreRow> = Vec::new();
    let mut skipped: Vec<String> = Vec::new();
    let mut part_a: Option<(Stats, Stats, Stats, Stats)> = None;

    for store in &s.stores {
        let db = match Database::create(store).await {
            Ok(db) => db,
            Err(e) => {
                eprintln!("skipping {store}: {e}");
                skipped.push(format!("{store}: {e}"));
                continue;
            }
        };
        let setup = Instant::now();
        let on = Server::start(db.url(), "5m");
        let tokens = tokens_for_users(on.addr, s.users).await;
        let off = Server::start(db.url(), "0");
        warm_and_check(on.addr, &tokens, true).await;
        warm_and_check(off.addr, &tokens, false).await;
        eprintln!(
            "{store}: {} users created and logged in, both servers warmed in {:.1} s",
            tokens.len(),
            setup.elapsed().as_secs_f64()
        );
        let session_on = Target::new(&on, "/api/auth/session", &tokens);
        let session_off = Target::new(&off, "/api/auth/session", &tokens);

        if part_a.is_none() {
            let healthz = Target::new(&on, "/healthz", &[]);
            let max = compare(&[&healthz, &session_on], &s).await;
            let mut max = max.into_iter();
            let (h, c) = (max.next().expect("healthz"), max.next().expect("session"));
            eprintln!(
                "(a) max: healthz {:.0}/s, session {:.0}/s",
                h.rate(),
                c.rate()
            );
            let h_half = drive(&healthz, s.connections, s.secs, Some(h.rate() / 2.0)).await;
            let c_half = drive(&session_on, s.connections, s.secs, Some(c.rate() / 2.0)).await;
            part_a = Some((h, c, h_half, c_half));
        }

        let both = compare(&[&session_on, &session_off], &s).await;
        let mut both = both.into_iter();
        let row = StoreRow {
            store: store.clone(),
            on: both.next().expect("cache on"),
            off: both.next().expect("cache off"),
        };
        eprintln!(
            "(b) {store}: cache on {:.0}/s, off {:.0}/s",
            row.on.rate(),
            row.off.rate()
        );
        rows.push(row);
        drop(on);
        drop(off);
        db.remove().await;
    }

    if let Some((h, c, h_half, c_half)) = &part_a {
        println!(
            "## (a) cached session vs /healthz (same server, {})\n",
            s.stores[0]
        );
        println!("| route | max req/s | CPU µs/req: server / load generator | cores busy: ours / others | paced at req/s | p50 ms | p99 ms | achieved req/s | errors |");
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        for (name, max, half) in [
            ("GET /healthz", h, h_half),
            ("GET /api/auth/session (cached)", c, c_half),
        ] {
            println!(
                "| {name} | {} | {} / {} | {} | {} | {:.3} | {:.3} | {} | {} |",
                rate(max.rate()),
                cpu(max, 0),
                cpu(max, 1),
                max.cores_busy(false),
                rate(max.rate() / 2.0),
                half.quantile_ms(0.50),
                half.quantile_ms(0.99),
                rate(half.rate()),
                max.errors + half.errors,
            );
        }
        let cpu_ratio = match (h.total_cpu_us(false), c.total_cpu_us(false)) {
            (Some(h), Some(c)) => format!("{:.2}", h / c),
            _ => "n/a".into(),
        };
        println!(
            "\nsession ÷ healthz throughput: **{:.2}** (target ≥ 0.7; from CPU µs per request, server + load generator: {cpu_ratio}); p99 of a cached session at half its max: **{:.3} ms** (target ≤ 1 ms)\n",
            c.rate() / h.rate(),
            c_half.quantile_ms(0.99)
        );
    }

    if !rows.is_empty() {
        println!("## (b) session route, cache on vs `--cache-ttl 0`\n");
        println!("| store | cache | req/s | on ÷ off | ÷ from CPU cost | p50 / p99 ms | CPU µs/req: server / load gen / PostgreSQL | cores busy: ours / others | errors |");
        println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
        for r in &rows {
            let with_db = r.store == "postgres";
            let cpu_ratio = match (r.on.total_cpu_us(with_db), r.off.total_cpu_us(with_db)) {
                (Some(on), Some(off)) => format!("{:.2}×", off / on),
                _ => "n/a".into(),
            };
            for (cache, st) in [("on (5m)", &r.on), ("off (0)", &r.off)] {
                let (ratio, by_cpu) = if std::ptr::eq(st, &r.on) {
                    (
                        format!("**{:.2}×**", r.on.rate() / r.off.rate()),
                        cpu_ratio.clone(),
                    )
                } else {
                    (String::new(), String::new())
                };
                let pg = if with_db {
                    cpu(st, 2)
                } else {
                    "–".to_string()
                };
                println!(
                    "| {} | {cache} | {} | {ratio} | {by_cpu} | {:.2} / {:.2} | {} / {} / {pg} | {} | {} |",
                    r.store,
                    rate(st.rate()),
                    st.quantile_ms(0.5),
                    st.quantile_ms(0.99),
                    cpu(st, 0),
                    cpu(st, 1),
                    st.cores_busy(with_db),
                    st.errors,
                );
            }
        }
        println!(
            "\n(closed loop at {} connections: latencies there are at saturation, not at a paced rate)",
            s.connections
        );
    }
    for s in &skipped {
        println!("\nskipped: {s}");
    }
    println!("\nload average at the end: {}", loadavg());
}

fn main() {
    let settings = Settings::load();
    let started = Instant::now();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(settings.threads)
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(run(settings));
    eprintln!("total {:.0} s", started.elapsed().as_secs_f64());
}
