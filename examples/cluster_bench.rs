//! Local vs forwarded lookups, side by side in one run: two sessiond nodes
//! in a cluster on loopback, one shared SQLite file; cached session
//! resolves sent to node 1 for users node 1 owns (answered locally) and for
//! users node 2 owns (forwarded over ractor_cluster and answered there).
//!
//! ```text
//! cargo build --release && cargo run --release --example cluster_bench -- [SECONDS] [CONNECTIONS]
//! ```
//!
//! (defaults: 10 s per phase, 16 keep-alive connections; the binary is
//! `SESSIOND_BIN` or `target/release/sessiond`). The load generator shares
//! the machine's cores with both nodes. Only loopback traffic.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sessiond_testkit::http::{self, Conn, Connection};

const ADMIN_PASSWORD: &str = "bench-admin-password";
const SECRET: &str = "cluster-bench-secret-0123456789-abcdefgh";

struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

fn start(bin: &str, db: &str, name: &str, http: u16, cluster: u16, join: Option<u16>) -> Node {
    let mut cmd = Command::new(bin);
    cmd.args([
        "serve",
        "--listen",
        &format!("127.0.0.1:{http}"),
        "--node-name",
        name,
    ])
    .args([
        "--cluster-listen",
        &format!("127.0.0.1:{cluster}"),
        "--cluster-cookie",
        "cluster-bench-cookie-0123456789-abcdefgh",
    ])
    .env("DATABASE_URL", db)
    .env("SESSIOND_JWT_SECRET", SECRET)
    .env("SESSIOND_ADMIN_PASSWORD", ADMIN_PASSWORD)
    .env("RUST_LOG", "warn")
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    if let Some(j) = join {
        cmd.args(["--join", &format!("127.0.0.1:{j}")]);
    }
    match cmd.spawn() {
        Ok(c) => Node(c),
        Err(e) => {
            eprintln!("cannot start {bin}: {e} (build it with cargo build --release)");
            std::process::exit(2);
        }
    }
}

fn host(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

/// One call on a connection of its own: the JSON answer, `Null` if none.
async fn json_call(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Value {
    let request = http::Request {
        method,
        path,
        token,
        body,
    };
    match http::send(&host(port), request, Duration::from_secs(30)).await {
        Ok(reply) => reply.body,
        Err(_) => Value::Null,
    }
}

/// Drives `tokens` round-robin over `connections` for `secs`: (requests/s,
/// p50 µs, p99 µs, errors).
async fn drive(
    port: u16,
    tokens: &[String],
    connections: usize,
    secs: u64,
) -> (f64, u64, u64, u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for w in 0..connections {
        let tokens: Vec<Vec<u8>> = tokens
            .iter()
            .map(|t| {
                let session = http::Request {
                    method: "GET",
                    path: "/api/auth/session",
                    token: Some(t),
                    body: None,
                };
                session.bytes(&host(port), Connection::KeepAlive)
            })
            .collect();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            let Ok(mut c) = Conn::open(("127.0.0.1", port)).await else {
                return (lat, 1);
            };
            let mut i = w;
            while Instant::now() < deadline {
                let t = Instant::now();
                match c.roundtrip(&tokens[i % tokens.len()]).await {
                    Ok(200) => lat.push(t.elapsed().as_micros() as u64),
                    _ => errors += 1,
                }
                i += connections;
            }
            (lat, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        if let Ok((l, e)) = t.await {
            all.extend(l);
            errors += e;
        }
    }
    all.sort_unstable();
    let q = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    (all.len() as f64 / secs as f64, q(0.5), q(0.99), errors)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let secs: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(10);
    let connections: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(16);
    let bin = std::env::var("SESSIOND_BIN").unwrap_or_else(|_| "target/release/sessiond".into());
    let dir = std::env::temp_dir().join(format!("sessiond-cbench-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let db = format!("sqlite://{}", dir.join("c.db").display());
    let (h1, h2, c1, c2) = (free_port(), free_port(), free_port(), free_port());
    let _n1 = start(&bin, &db, "n1", h1, c1, None);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _n2 = start(&bin, &db, "n2", h2, c2, Some(c1));
    // Wait for both to see each other.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let p = json_call(h1, "GET", "/api/perf", None, None).await;
        if p["members"].as_array().map(|m| m.len()) == Some(2) {
            break;
        }
        if Instant::now() > deadline {
            eprintln!("the nodes did not join");
            std::process::exit(2);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let login = json!({"email": "admin@localhost", "password": ADMIN_PASSWORD}).to_string();
    let admin = json_call(h1, "POST", "/api/auth/login", None, Some(&login)).await["token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    // Users, with a token each, sorted by the owner node 1 reports.
    let (mut local, mut remote) = (Vec::new(), Vec::new());
    for i in 0..200 {
        let email = format!("b{i}@example.test");
        let body =
            json!({"email": email, "password": "bench-password", "role": "user"}).to_string();
        json_call(h1, "POST", "/api/admin/users", Some(&admin), Some(&body)).await;
        let login = json!({"email": email, "password": "bench-password"}).to_string();
        let token = json_call(h1, "POST", "/api/auth/login", None, Some(&login)).await["token"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let s = json_call(h1, "GET", "/api/auth/session", Some(&token), None).await;
        match s["cache"]["node"].as_str() {
            Some("n1") => local.push(token),
            Some("n2") => remote.push(token),
            _ => {}
        }
    }
    println!("users owned by n1: {}, by n2: {}; {secs} s per phase, {connections} connections, all via n1", local.len(), remote.len());
    let l = drive(h1, &local, connections, secs).await;
    let r = drive(h1, &remote, connections, secs).await;
    println!();
    println!("| lookups via n1 | requests/s | p50 | p99 | errors |");
    println!("|---|---:|---:|---:|---:|");
    println!(
        "| owned by n1 (local) | {:.0} | {} µs | {} µs | {} |",
        l.0, l.1, l.2, l.3
    );
    println!(
        "| owned by n2 (forwarded) | {:.0} | {} µs | {} µs | {} |",
        r.0, r.1, r.2, r.3
    );
    println!();
    println!("forwarded ÷ local throughput: {:.2}", r.0 / l.0.max(1.0));
    let _ = std::fs::remove_dir_all(&dir);
}
