//! Lookups spread over a three-node cluster vs lookups answered by their
//! owner, side by side in one run: three sessiond nodes on loopback
//! sharing one SQLite file, and three phases per round:
//!
//! 1. node 1 alone answers the users it owns (every answer local; the two
//!    other nodes idle);
//! 2. each node answers the users it owns (every answer local, all three
//!    nodes busy: what a load balancer that knew the owners would do);
//! 3. every user's lookups round-robin over all three nodes, as a plain
//!    load balancer sends them: two in three reach a node that does not
//!    own the user and are answered from its near copy (or forwarded, with
//!    `--near-cache off`).
//!
//! ```text
//! cargo build --release --bin sessiond --example cluster_bench
//! target/release/examples/cluster_bench [SECONDS] [CONNECTIONS] [TTL] [NEAR] [ROUNDS]
//! ```
//!
//! (defaults: 10 s per phase, 16 keep-alive connections, `--cache-ttl 5s`
//! so that each phase spans several TTLs, near copies `on`, one round; the
//! binary is `SESSIOND_BIN` or `target/release/sessiond`). Each connection
//! sends every token of its phase in turn from its own offset. It prints
//! requests/s, p50 and p99 of each phase, the ratios of phase 3 to phases 1
//! and 2, and the database reads per user per TTL of each (counted by every
//! node's `/api/perf`). The load generator shares the machine's cores with
//! the nodes. Only loopback traffic.

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

struct Opts<'a> {
    bin: &'a str,
    db: &'a str,
    ttl: &'a str,
    near: &'a str,
}

fn start(o: &Opts, name: &str, http: u16, cluster: u16, join: Option<u16>) -> Node {
    let bin = o.bin;
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
    .args(["--cache-ttl", o.ttl, "--near-cache", o.near])
    .env("DATABASE_URL", o.db)
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

/// Drives the routes for `secs` over `connections` keep-alive
/// connections, connection `w` to `routes[w % routes.len()]` (a node's
/// port and the tokens it is sent, in turn): (requests/s, p50 µs, p99 µs,
/// errors).
async fn drive(routes: &[(u16, &[String])], connections: usize, secs: u64) -> (f64, u64, u64, u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for w in 0..connections {
        let (port, tokens) = routes[w % routes.len()];
        let requests: Vec<Vec<u8>> = tokens
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
            if requests.is_empty() {
                return (lat, errors);
            }
            let Ok(mut c) = Conn::open(("127.0.0.1", port)).await else {
                return (lat, 1);
            };
            // Every connection sends every token of its route in turn,
            // from its own offset: a user's lookups reach every node of
            // the route, as a round-robin load balancer sends them.
            let mut i = w * requests.len() / connections;
            while Instant::now() < deadline {
                let t = Instant::now();
                match c.roundtrip(&requests[i % requests.len()]).await {
                    Ok(200) => lat.push(t.elapsed().as_micros() as u64),
                    _ => errors += 1,
                }
                i += 1;
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

/// Database reads and cache misses so far, summed over the nodes (a
/// non-owner's miss, answered by a forwarded call, counts on both).
async fn db_queries(ports: &[u16]) -> (u64, u64) {
    let (mut queries, mut misses) = (0, 0);
    for p in ports {
        let perf = json_call(*p, "GET", "/api/perf", None, None).await;
        queries += perf["db_queries"].as_u64().unwrap_or(0);
        misses += perf["misses"].as_u64().unwrap_or(0);
    }
    (queries, misses)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let secs: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(10);
    let connections: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(16);
    let ttl_arg = args.get(2).cloned().unwrap_or_else(|| "5s".into());
    let ttl_secs: f64 = ttl_arg.trim_end_matches('s').parse().unwrap_or_else(|_| {
        eprintln!("TTL in seconds, as 5s");
        std::process::exit(2);
    });
    let near = args.get(3).cloned().unwrap_or_else(|| "on".into());
    let rounds: usize = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(1);
    let bin = std::env::var("SESSIOND_BIN").unwrap_or_else(|_| "target/release/sessiond".into());
    let dir = std::env::temp_dir().join(format!("sessiond-cbench-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let db = format!("sqlite://{}", dir.join("c.db").display());
    let o = Opts {
        bin: &bin,
        db: &db,
        ttl: &ttl_arg,
        near: &near,
    };
    let (h1, h2, h3) = (free_port(), free_port(), free_port());
    let (c1, c2, c3) = (free_port(), free_port(), free_port());
    let _n1 = start(&o, "n1", h1, c1, None);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _n2 = start(&o, "n2", h2, c2, Some(c1));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _n3 = start(&o, "n3", h3, c3, Some(c1));
    let all_nodes = [h1, h2, h3];
    // Wait for all to see each other.
    let deadline = Instant::now() + Duration::from_secs(60);
    'join: loop {
        let mut joined = true;
        for p in all_nodes {
            let v = json_call(p, "GET", "/api/perf", None, None).await;
            joined &= v["members"].as_array().map(|m| m.len()) == Some(3);
        }
        if joined {
            break 'join;
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
    // Users, with a token each, grouped by the node that owns them.
    let names = ["n1", "n2", "n3"];
    let mut owned: [Vec<String>; 3] = Default::default();
    let mut all = Vec::new();
    for i in 0..240 {
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
        match names
            .iter()
            .position(|n| s["cache"]["node"].as_str() == Some(n))
        {
            Some(k) => owned[k].push(token.clone()),
            None => {
                eprintln!("no owner in the answer for {email}: {s}");
                std::process::exit(2);
            }
        }
        all.push(token);
    }
    println!(
        "{} users, owned {} / {} / {} by n1 / n2 / n3; {secs} s per phase, {rounds} round(s), \
         {connections} connections, --cache-ttl {ttl_arg}, --near-cache {near}",
        all.len(),
        owned[0].len(),
        owned[1].len(),
        owned[2].len(),
    );
    let alone: Vec<(u16, &[String])> = vec![(h1, &owned[0])];
    let by_owner: Vec<(u16, &[String])> = (0..3).map(|k| (all_nodes[k], &owned[k][..])).collect();
    let spread: Vec<(u16, &[String])> = all_nodes.iter().map(|&p| (p, &all[..])).collect();
    let phases = [
        ("n1 alone, its own users", &alone, owned[0].len()),
        ("each node its own users", &by_owner, all.len()),
        ("all users round-robin over n1, n2, n3", &spread, all.len()),
    ];
    // Warm every node's copies (and let the creations' holds pass).
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (_, routes, _) in &phases {
        drive(routes, connections, 2).await;
    }
    let windows = secs as f64 / ttl_secs.max(1e-3);
    let per_user_ttl = |q: u64, users: usize| q as f64 / users.max(1) as f64 / windows;
    let mut ratios: Vec<[f64; 6]> = Vec::new();
    for round in 1..=rounds {
        println!();
        println!("round {round}");
        println!();
        println!(
            "| phase | requests/s | p50 | p99 | errors | misses | DB reads per user per TTL |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|");
        let mut results = Vec::new();
        for (name, routes, users) in &phases {
            let q0 = db_queries(&all_nodes).await;
            let r = drive(routes, connections, secs).await;
            let q1 = db_queries(&all_nodes).await;
            println!(
                "| {name} | {:.0} | {} µs | {} µs | {} | {} | {:.2} |",
                r.0,
                r.1,
                r.2,
                r.3,
                q1.1 - q0.1,
                per_user_ttl(q1.0 - q0.0, *users)
            );
            results.push(r);
        }
        let ratio = |a: &(f64, u64, u64, u64), b: &(f64, u64, u64, u64)| {
            (
                a.0 / b.0.max(1.0),
                a.1 as f64 / b.1.max(1) as f64,
                a.2 as f64 / b.2.max(1) as f64,
            )
        };
        let vs_alone = ratio(&results[2], &results[0]);
        let vs_owners = ratio(&results[2], &results[1]);
        println!();
        println!(
            "round-robin ÷ n1 alone: throughput {:.2}, p50 {:.2}, p99 {:.2}",
            vs_alone.0, vs_alone.1, vs_alone.2
        );
        println!(
            "round-robin ÷ each node its own users: throughput {:.2}, p50 {:.2}, p99 {:.2}",
            vs_owners.0, vs_owners.1, vs_owners.2
        );
        ratios.push([
            vs_alone.0,
            vs_alone.1,
            vs_alone.2,
            vs_owners.0,
            vs_owners.1,
            vs_owners.2,
        ]);
    }
    if rounds > 1 {
        // Medians over the rounds: the machine's noise moves single
        // rounds more than the cache does.
        let median = |k: usize| {
            let mut v: Vec<f64> = ratios.iter().map(|r| r[k]).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        println!();
        println!("medians over {rounds} rounds");
        println!(
            "round-robin ÷ n1 alone: throughput {:.2}, p50 {:.2}, p99 {:.2}",
            median(0),
            median(1),
            median(2)
        );
        println!(
            "round-robin ÷ each node its own users: throughput {:.2}, p50 {:.2}, p99 {:.2}",
            median(3),
            median(4),
            median(5)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
