//! Soak: drives one sessiond node with many users and mixed traffic for a
//! fixed time and checks what must hold under load.
//!
//! ```text
//! cargo build --release && cargo run --release --example soak -- [SECONDS] [USERS]
//! ```
//!
//! (defaults: 300 s, 2,000 users; the binary is `SESSIOND_BIN` or
//! `target/release/sessiond`). Traffic: resolves, forced refreshes, role
//! changes, logouts and bad tokens from 32 keep-alive-free clients. Checks:
//!
//! - zero 5xx answers and zero transport errors;
//! - no stale read after an acknowledged change: every role change is to
//!   `rN` with N increasing per user, and an answer to a request *sent*
//!   after the change to `rN` was acknowledged must show `rM` with M ≥ N;
//! - a token whose logout was acknowledged never resolves again;
//! - live session actors never exceed `--max-sessions`;
//! - resident memory flat after warm-up (the last third of the run grows
//!   less than 20% over the end of the first third).
//!
//! Exits non-zero when a check fails. All traffic stays on loopback.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sessiond_testkit::http;

const ADMIN_PASSWORD: &str = "soak-admin-password";
const MAX_SESSIONS: usize = 1_500;

#[derive(Default)]
struct Tally {
    requests: AtomicU64,
    server_errors: AtomicU64,
    transport_errors: AtomicU64,
    stale: AtomicU64,
    revoked_resolved: AtomicU64,
    role_changes: AtomicU64,
    logouts: AtomicU64,
}

struct User {
    id: i64,
    token: String,
    /// The highest role number whose change was acknowledged.
    acked: AtomicI64,
    /// The next role number to set.
    next: AtomicI64,
    /// Role changes of one user are made one at a time, so the order in
    /// which they are acknowledged is the order in which they were written
    /// (concurrent writes of one row may land in either order).
    writing: tokio::sync::Mutex<()>,
}

/// One request on a connection of its own (an empty `body` is none):
/// status and JSON body, or the transport error.
async fn call(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> Result<(u16, Value), String> {
    let request = http::Request {
        method,
        path,
        token,
        body: (!body.is_empty()).then_some(body),
    };
    http::send(addr, request, Duration::from_secs(10))
        .await
        .map(|reply| (reply.status, reply.body))
        .map_err(|e| e.to_string())
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn role_number(v: &Value) -> Option<i64> {
    v["user"]["role"].as_str()?.strip_prefix('r')?.parse().ok()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let secs: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(300);
    let users_n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(2_000);
    let bin = std::env::var("SESSIOND_BIN").unwrap_or_else(|_| "target/release/sessiond".into());
    let dir = std::env::temp_dir().join(format!("sessiond-soak-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(18_999);
    let addr = format!("127.0.0.1:{port}");
    let mut child = match Command::new(&bin)
        .args([
            "serve",
            "--listen",
            &addr,
            "--max-sessions",
            &MAX_SESSIONS.to_string(),
        ])
        .arg("--database-url")
        .arg(format!("sqlite://{}", dir.join("soak.db").display()))
        .env("SESSIOND_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cannot start {bin}: {e} (build it with cargo build --release)");
            std::process::exit(2);
        }
    };
    let pid = child.id();
    let mut up = false;
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(&addr).await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if !up {
        eprintln!("sessiond did not start");
        let _ = child.kill();
        std::process::exit(2);
    }
    let login = |email: &str, pw: &str| json!({"email": email, "password": pw}).to_string();
    let admin = match call(
        &addr,
        "POST",
        "/api/auth/login",
        None,
        &login("admin@localhost", ADMIN_PASSWORD),
    )
    .await
    {
        Ok((200, v)) => v["token"].as_str().unwrap_or_default().to_string(),
        other => {
            eprintln!("admin login failed: {other:?}");
            let _ = child.kill();
            std::process::exit(2);
        }
    };
    eprintln!("creating {users_n} users…");
    let mut users = Vec::new();
    for i in 0..users_n {
        let email = format!("soak{i}@example.test");
        let body = json!({"email": email, "password": "soak-password", "role": "r0"}).to_string();
        let id = match call(&addr, "POST", "/api/admin/users", Some(&admin), &body).await {
            Ok((201, v)) => v["id"].as_i64().unwrap_or(0),
            other => {
                eprintln!("create failed: {other:?}");
                continue;
            }
        };
        let token = match call(
            &addr,
            "POST",
            "/api/auth/login",
            None,
            &login(&email, "soak-password"),
        )
        .await
        {
            Ok((200, v)) => v["token"].as_str().unwrap_or_default().to_string(),
            _ => continue,
        };
        users.push(Arc::new(User {
            id,
            token,
            acked: AtomicI64::new(0),
            next: AtomicI64::new(1),
            writing: tokio::sync::Mutex::new(()),
        }));
    }
    let users = Arc::new(users);
    let revoked: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let tally = Arc::new(Tally::default());
    let max_actors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    eprintln!("soaking for {secs} s…");

    let mut tasks = Vec::new();
    for worker in 0..32u64 {
        let (users, tally, revoked, addr, admin) = (
            Arc::clone(&users),
            Arc::clone(&tally),
            Arc::clone(&revoked),
            addr.clone(),
            admin.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut seed =
                0x9e37_79b9_7f4a_7c15u64 ^ (worker + 1).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            let mut rand = move || {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed
            };
            while Instant::now() < deadline {
                let u = &users[(rand() % users.len() as u64) as usize];
                let dice = rand() % 1000;
                tally.requests.fetch_add(1, Ordering::Relaxed);
                let result = if dice < 900 {
                    // Resolve (forced now and then), checking freshness.
                    let acked_before = u.acked.load(Ordering::SeqCst);
                    let r = if dice < 880 {
                        call(&addr, "GET", "/api/auth/session", Some(&u.token), "").await
                    } else {
                        call(
                            &addr,
                            "POST",
                            "/api/auth/refresh-session",
                            Some(&u.token),
                            r#"{"force":true}"#,
                        )
                        .await
                    };
                    if let Ok((200, v)) = &r {
                        if role_number(v).is_some_and(|n| n < acked_before) {
                            tally.stale.fetch_add(1, Ordering::Relaxed);
                            eprintln!(
                                "STALE: user {} showed {:?} after r{acked_before} was acknowledged",
                                u.id, v["user"]["role"]
                            );
                        }
                    }
                    r
                } else if dice < 960 {
                    // Role change to the next number; acknowledged on 200.
                    let _one_at_a_time = u.writing.lock().await;
                    let n = u.next.fetch_add(1, Ordering::SeqCst);
                    let body = json!({ "role": format!("r{n}") }).to_string();
                    let r = call(
                        &addr,
                        "PUT",
                        &format!("/api/admin/users/{}/role", u.id),
                        Some(&admin),
                        &body,
                    )
                    .await;
                    if matches!(r, Ok((200, _))) {
                        u.acked.fetch_max(n, Ordering::SeqCst);
                        tally.role_changes.fetch_add(1, Ordering::Relaxed);
                    }
                    r
                } else if dice < 970 {
                    // A throwaway session: log in, log out, must stay dead.
                    let email = format!("soak{}@example.test", (u.id - 2).max(0));
                    match call(
                        &addr,
                        "POST",
                        "/api/auth/login",
                        None,
                        &login(&email, "soak-password"),
                    )
                    .await
                    {
                        Ok((200, v)) => {
                            let t = v["token"].as_str().unwrap_or_default().to_string();
                            let r = call(&addr, "POST", "/api/auth/logout", Some(&t), "").await;
                            if matches!(r, Ok((204, _))) {
                                tally.logouts.fetch_add(1, Ordering::Relaxed);
                                if let Ok(mut rv) = revoked.lock() {
                                    rv.push(t);
                                }
                            }
                            r
                        }
                        other => other,
                    }
                } else if dice < 985 {
                    // A logged-out token must not resolve.
                    let t = revoked.lock().ok().and_then(|rv| {
                        (!rv.is_empty()).then(|| rv[(rand() % rv.len() as u64) as usize].clone())
                    });
                    match t {
                        Some(t) => {
                            let r = call(&addr, "GET", "/api/auth/session", Some(&t), "").await;
                            if matches!(r, Ok((200, _))) {
                                tally.revoked_resolved.fetch_add(1, Ordering::Relaxed);
                            }
                            r
                        }
                        None => Ok((401, Value::Null)),
                    }
                } else {
                    // Bad tokens.
                    let bad = format!("{}x", u.token);
                    call(&addr, "GET", "/api/auth/session", Some(&bad), "").await
                };
                match result {
                    Ok((s, _)) if s >= 500 => {
                        tally.server_errors.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(_) => {
                        tally.transport_errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }

    // Sample memory and actors every second.
    let mut samples: Vec<(f64, u64)> = Vec::new();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
        samples.push((started.elapsed().as_secs_f64(), rss_kib(pid)));
        if let Ok((200, v)) = call(&addr, "GET", "/api/perf", None, "").await {
            let live = v["session_actors"].as_u64().unwrap_or(0);
            max_actors.fetch_max(live, Ordering::Relaxed);
        }
    }
    for t in tasks {
        let _ = t.await;
    }
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);

    let third = samples.len() / 3;
    let warm = samples.get(third).map(|s| s.1).unwrap_or(0);
    let end = samples.last().map(|s| s.1).unwrap_or(0);
    let peak = samples.iter().map(|s| s.1).max().unwrap_or(0);
    let t = &tally;
    let n = t.requests.load(Ordering::Relaxed);
    println!("| figure | value |");
    println!("|---|---:|");
    println!("| duration | {secs} s |");
    println!("| users | {} |", users.len());
    println!("| requests | {n} ({:.0}/s) |", n as f64 / secs as f64);
    println!(
        "| role changes acknowledged | {} |",
        t.role_changes.load(Ordering::Relaxed)
    );
    println!(
        "| logouts acknowledged | {} |",
        t.logouts.load(Ordering::Relaxed)
    );
    println!(
        "| 5xx answers | {} |",
        t.server_errors.load(Ordering::Relaxed)
    );
    println!(
        "| transport errors | {} |",
        t.transport_errors.load(Ordering::Relaxed)
    );
    println!(
        "| stale answers after an acknowledged change | {} |",
        t.stale.load(Ordering::Relaxed)
    );
    println!(
        "| logged-out tokens that resolved | {} |",
        t.revoked_resolved.load(Ordering::Relaxed)
    );
    println!(
        "| most live session actors (cap {MAX_SESSIONS}) | {} |",
        max_actors.load(Ordering::Relaxed)
    );
    println!(
        "| RSS after warm-up / at end / peak | {} / {} / {} MiB |",
        warm / 1024,
        end / 1024,
        peak / 1024
    );
    let failures = t.server_errors.load(Ordering::Relaxed)
        + t.transport_errors.load(Ordering::Relaxed)
        + t.stale.load(Ordering::Relaxed)
        + t.revoked_resolved.load(Ordering::Relaxed);
    let memory_flat = warm == 0 || end as f64 <= warm as f64 * 1.2;
    let capped = max_actors.load(Ordering::Relaxed) <= MAX_SESSIONS as u64;
    if failures > 0 || !memory_flat || !capped {
        eprintln!("SOAK FAILED (failures {failures}, memory flat {memory_flat}, capped {capped})");
        std::process::exit(1);
    }
    println!("\nsoak passed");
}
