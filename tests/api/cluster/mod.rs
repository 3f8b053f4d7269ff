//! Real `sessiond` processes joined with ractor_cluster over loopback TCP,
//! sharing one SQLite file: ownership, forwarding, broadcast invalidation,
//! failures (kill -9, SIGSTOP), a wrong cookie, membership changes.
//!
//! This file starts nodes and talks to them; the tests are `adopt` (users
//! in the app's own tables), `better_auth` (Better Auth's own sessions),
//! `appkeys` (a revoked app key on every node),
//! `failures` (ownership, forwarding, SIGSTOP, kill -9, rejoin), `guesses`
//! (failed logins counted once for the cluster), `membership` (the
//! nodes run the actors crate's membership policy), `near` (near copies
//! on non-owners), `cookie`, `notify` (PostgreSQL changes reach every
//! node), `tls`, `leave` (graceful leave: a rolling restart under load)
//! and `dns_join` (joining by a name that resolves to several nodes).

mod adopt;
mod appkeys;
mod better_auth;
mod cookie;
mod dns_join;
mod failures;
mod guesses;
mod leave;
mod membership;
mod near;
mod notify;
mod tls;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::helpers::{call, drop_postgres_database, outside_sql, Backend, SharedDb};

const BIN: &str = env!("CARGO_BIN_EXE_sessiond");

/// The binary the nodes run: this build's, or `SESSIOND_TEST_NODE_BIN`
/// (a release build, for the measurements run with `--ignored`).
fn node_bin() -> String {
    std::env::var("SESSIOND_TEST_NODE_BIN").unwrap_or_else(|_| BIN.to_string())
}
const SECRET: &str = "cluster-test-secret-0123456789-abcdefgh";
const COOKIE: &str = "cluster-test-cookie-0123456789-abcdefgh";
const ADMIN_PASSWORD: &str = "admin-password-for-tests";

struct Node {
    name: String,
    child: Child,
    http: String,
    cluster_addr: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

struct Cluster {
    backend: Backend,
    db: SharedDb,
}

impl Cluster {
    async fn new(backend: Backend) -> Cluster {
        Cluster {
            backend,
            db: SharedDb::new(backend).await,
        }
    }

    /// Drops the test's PostgreSQL database (its nodes must be stopped).
    async fn finish(self, nodes: Vec<Node>) {
        drop(nodes);
        if let Some(name) = &self.db.pg_name {
            drop_postgres_database(name).await;
        }
    }

    fn db_url(&self) -> String {
        self.db.url.clone()
    }

    /// Runs SQL on a connection of the test's own, outside the service.
    async fn outside_sql(&self, sql: &str) {
        outside_sql(self.backend, &self.db.url, sql).await;
    }

    /// Starts a node and waits until it listens.
    fn start(&self, name: &str, cluster_port: u16, join: &[&Node], cookie: &str) -> Node {
        self.start_with(name, cluster_port, join, cookie, &[], None)
    }

    /// Starts a node with `extra` flags; with `log`, its log (at the
    /// given filter) goes to that file.
    fn start_with(
        &self,
        name: &str,
        cluster_port: u16,
        join: &[&Node],
        cookie: &str,
        extra: &[String],
        log: Option<(&Path, &str)>,
    ) -> Node {
        self.launch(Launch {
            cookie,
            extra: extra.to_vec(),
            log,
            join: join.iter().map(|n| n.cluster_addr.clone()).collect(),
            ..Launch::new(name, &format!("127.0.0.1:{cluster_port}"))
        })
    }

    /// Starts a node as `spec` says and waits until it listens.
    fn launch(&self, spec: Launch<'_>) -> Node {
        let mut cmd = match spec.wrapper.split_first() {
            None => Command::new(node_bin()),
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(node_bin());
                c
            }
        };
        cmd.arg("serve")
            .args(&spec.extra)
            .args(["--listen", &spec.http, "--node-name", spec.name])
            .args([
                "--cluster-listen",
                &spec.cluster_addr,
                "--cluster-cookie",
                spec.cookie,
            ])
            .env("DATABASE_URL", self.db_url())
            .env("SESSIOND_JWT_SECRET", SECRET)
            .env("SESSIOND_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .stdout(Stdio::piped());
        match spec.log {
            None => cmd.env("RUST_LOG", "warn").stderr(Stdio::null()),
            Some((path, filter)) => cmd
                .env("RUST_LOG", filter)
                .stderr(std::fs::File::create(path).expect("creates the log file")),
        };
        for peer in &spec.join {
            cmd.args(["--join", peer]);
        }
        let mut child = cmd.spawn().expect("starts sessiond");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the node prints where it listens");
        let http = line
            .strip_prefix("sessiond listening on http://")
            .expect("listening line")
            .trim()
            .to_string();
        // Keep draining stdout in the thread above.
        Node {
            name: spec.name.to_string(),
            child,
            http,
            cluster_addr: spec.cluster_addr,
        }
    }
}

/// How to start a node: [`Launch::new`] gives the defaults.
struct Launch<'a> {
    name: &'a str,
    /// `--listen`.
    http: String,
    /// `--cluster-listen`.
    cluster_addr: String,
    /// `--join` entries.
    join: Vec<String>,
    cookie: &'a str,
    extra: Vec<String>,
    log: Option<(&'a Path, &'a str)>,
    /// A command the node is started through (`unshare …`), or none.
    wrapper: Vec<String>,
}

impl<'a> Launch<'a> {
    fn new(name: &'a str, cluster_addr: &str) -> Launch<'a> {
        Launch {
            name,
            http: "127.0.0.1:0".into(),
            cluster_addr: cluster_addr.into(),
            join: Vec::new(),
            cookie: COOKIE,
            extra: Vec::new(),
            log: None,
            wrapper: Vec::new(),
        }
    }
}

async fn get(node: &Node, path: &str, token: Option<&str>) -> (u16, Value) {
    request(node, "GET", path, token, None).await
}

async fn request(
    node: &Node,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, Value) {
    call(&node.http, method, path, token, body).await
}

async fn members(node: &Node) -> Vec<String> {
    let (_, v) = get(node, "/api/perf", None).await;
    v["members"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| m.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until `node` sees exactly `expected` as members.
async fn wait_members(node: &Node, expected: &[&str], within: Duration) -> bool {
    let mut want: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    want.sort();
    let deadline = Instant::now() + within;
    loop {
        if members(node).await == want {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A token for `user_id`, signed with the cluster's secret.
fn token(user_id: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let sid = format!("{now:012x}{:020x}", user_id);
    let claims = json!({
        "sub": user_id.to_string(), "sid": sid, "iat": now / 1000,
        "exp": now / 1000 + 3600, "iss": "sessiond"
    });
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("signs")
}

/// Adds `n` users straight into the shared database (no password work);
/// returns their ids.
async fn add_users(cluster: &Cluster, n: usize) -> Vec<i64> {
    use sqlx::Connection;
    let insert = "INSERT INTO users (email, password_hash, role, created_at, updated_at)
                  VALUES ($1, 'x', 'user', 0, 0) RETURNING id";
    let mut ids = Vec::new();
    match cluster.backend {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&cluster.db_url())
                .await
                .expect("opens the shared database");
            for i in 0..n {
                let id: i64 = sqlx::query_scalar(&insert.replace("$1", "?"))
                    .bind(format!("u{i}@example.test"))
                    .fetch_one(&mut c)
                    .await
                    .expect("inserts");
                ids.push(id);
            }
        }
        Backend::Postgres => {
            let mut c = sessiond_testkit::postgres_db::connect_sessiond(&cluster.db_url())
                .await
                .expect("connects");
            for i in 0..n {
                let id: i64 = sqlx::query_scalar(insert)
                    .bind(format!("u{i}@example.test"))
                    .fetch_one(&mut c)
                    .await
                    .expect("inserts");
                ids.push(id);
            }
        }
    }
    ids
}

async fn admin_token(node: &Node) -> String {
    let body = json!({"email": "admin@localhost", "password": ADMIN_PASSWORD}).to_string();
    let (status, v) = request(node, "POST", "/api/auth/login", None, Some(&body)).await;
    assert_eq!(status, 200, "{v}");
    v["token"].as_str().expect("token").to_string()
}

async fn set_role(node: &Node, admin: &str, id: i64, role: &str) {
    let body = json!({ "role": role }).to_string();
    let (status, v) = request(
        node,
        "PUT",
        &format!("/api/admin/users/{id}/role"),
        Some(admin),
        Some(&body),
    )
    .await;
    assert_eq!(status, 200, "role change through {}: {v}", node.name);
}

async fn session(node: &Node, id: i64) -> (u16, Value) {
    get(node, "/api/auth/session", Some(&token(id))).await
}

/// Resolves every user through `node` until all succeed or time runs out.
async fn all_resolve(node: &Node, ids: &[i64], within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        let mut ok = true;
        for id in ids {
            if session(node, *id).await.0 != 200 {
                ok = false;
                break;
            }
        }
        if ok {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn signal(node: &Node, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &node.child.id().to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill {sig}");
}
