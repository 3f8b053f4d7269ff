//! Real `sessiond` processes joined with ractor_cluster over loopback TCP,
//! sharing one SQLite file: ownership, forwarding, broadcast invalidation,
//! failures (kill -9, SIGSTOP), a wrong cookie, membership changes.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{call, drop_postgres_database, fresh_postgres_database, outside_sql, Backend};

const BIN: &str = env!("CARGO_BIN_EXE_sessiond");
const SECRET: &str = "cluster-test-secret-0123456789";
const COOKIE: &str = "cluster-test-cookie";
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
    db_url: String,
    pg_database: Option<String>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    async fn new(backend: Backend) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let (db_url, pg_database) = match backend {
            Backend::Sqlite => (
                format!("sqlite://{}", dir.path().join("shared.db").display()),
                None,
            ),
            Backend::Postgres => {
                let (url, name) = fresh_postgres_database().await;
                (url, Some(name))
            }
        };
        Cluster {
            backend,
            db_url,
            pg_database,
            _dir: dir,
        }
    }

    /// Drops the test's PostgreSQL database (its nodes must be stopped).
    async fn finish(self, nodes: Vec<Node>) {
        drop(nodes);
        if let Some(name) = &self.pg_database {
            drop_postgres_database(name).await;
        }
    }

    fn db_url(&self) -> String {
        self.db_url.clone()
    }

    /// Runs SQL on a connection of the test's own, outside the service.
    async fn outside_sql(&self, sql: &str) {
        outside_sql(self.backend, &self.db_url, sql).await;
    }

    /// Starts a node and waits until it listens.
    fn start(&self, name: &str, cluster_port: u16, join: &[&Node], cookie: &str) -> Node {
        self.start_with(name, cluster_port, join, cookie, &[])
    }

    fn start_with(
        &self,
        name: &str,
        cluster_port: u16,
        join: &[&Node],
        cookie: &str,
        extra: &[String],
    ) -> Node {
        let cluster_addr = format!("127.0.0.1:{cluster_port}");
        let mut cmd = Command::new(BIN);
        cmd.arg("serve")
            .args(extra)
            .args(["--listen", "127.0.0.1:0", "--node-name", name])
            .args([
                "--cluster-listen",
                &cluster_addr,
                "--cluster-cookie",
                cookie,
            ])
            .env("DATABASE_URL", self.db_url())
            .env("SESSIOND_JWT_SECRET", SECRET)
            .env("SESSIOND_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for peer in join {
            cmd.args(["--join", &peer.cluster_addr]);
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
            name: name.to_string(),
            child,
            http,
            cluster_addr,
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
            let mut c = sqlx::PgConnection::connect(&cluster.db_url())
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

async fn three_nodes_share_ownership_and_survive_failures(b: Backend) {
    let cluster = Cluster::new(b).await;
    let (p1, p2, p3) = (free_port(), free_port(), free_port());
    let n1 = cluster.start("n1", p1, &[], COOKIE);
    let n2 = cluster.start("n2", p2, &[&n1], COOKIE);
    let mut n3 = cluster.start("n3", p3, &[&n1], COOKIE);
    for n in [&n1, &n2, &n3] {
        assert!(
            wait_members(n, &["n1", "n2", "n3"], Duration::from_secs(20)).await,
            "{} sees {:?}",
            n.name,
            members(n).await
        );
    }
    let (status, ready) = get(&n2, "/readyz", None).await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["cluster"], "joined");

    // 1. The same answer and the same owner through every node; users
    //    spread over all three owners.
    let ids = add_users(&cluster, 24).await;
    let mut owners = HashSet::new();
    for id in &ids {
        let mut answers = Vec::new();
        for n in [&n1, &n2, &n3] {
            let (status, v) = session(n, *id).await;
            assert_eq!(status, 200, "user {id} via {}: {v}", n.name);
            answers.push((v["user"].clone(), v["cache"]["node"].clone()));
        }
        assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
        owners.insert(answers[0].1.as_str().unwrap_or_default().to_string());
    }
    assert_eq!(owners.len(), 3, "owners: {owners:?}");

    // A role change sent to node 3 is seen through node 1 on the very next call.
    let admin = admin_token(&n1).await;
    for id in &ids[..6] {
        for n in [&n1, &n2, &n3] {
            session(n, *id).await;
        }
        set_role(&n3, &admin, *id, "auditor").await;
        for n in [&n1, &n2, &n3] {
            let (_, v) = session(n, *id).await;
            assert_eq!(v["user"]["role"], "auditor", "user {id} via {}", n.name);
        }
    }

    // 3. SIGSTOP: the silent node is marked down within the heartbeat
    //    bound; lookups through the others keep succeeding.
    signal(&n2, "-STOP");
    let stopped = Instant::now();
    assert!(wait_members(&n1, &["n1", "n3"], Duration::from_secs(5)).await);
    assert!(wait_members(&n3, &["n1", "n3"], Duration::from_secs(5)).await);
    let marked_down = stopped.elapsed();
    assert!(
        marked_down < Duration::from_secs(5),
        "down after {marked_down:?}"
    );
    assert!(all_resolve(&n1, &ids, Duration::from_secs(5)).await);
    assert!(all_resolve(&n3, &ids, Duration::from_secs(5)).await);
    // A role change while n2 is frozen, seen at once through the others
    // and, after it resumes, through n2 too (it is told to flush).
    set_role(&n1, &admin, ids[0], "frozen-change").await;
    assert_eq!(
        session(&n3, ids[0]).await.1["user"]["role"],
        "frozen-change"
    );
    signal(&n2, "-CONT");
    for n in [&n1, &n2, &n3] {
        assert!(wait_members(n, &["n1", "n2", "n3"], Duration::from_secs(10)).await);
    }
    // n2 drops its cache on its first heartbeat after resuming.
    let deadline = Instant::now() + Duration::from_secs(2);
    while session(&n2, ids[0]).await.1["user"]["role"] != "frozen-change" {
        assert!(Instant::now() < deadline, "n2 still serves the old role");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // 2. kill -9: within 10 s every user resolves through each survivor.
    signal(&n3, "-KILL");
    let _ = n3.child.wait();
    assert!(all_resolve(&n1, &ids, Duration::from_secs(10)).await);
    assert!(all_resolve(&n2, &ids, Duration::from_secs(10)).await);
    assert!(wait_members(&n1, &["n1", "n2"], Duration::from_secs(10)).await);

    // 5. A change while a node rejoins is seen through every node on the
    //    next call. The killed node restarts with the same name, rejoins
    //    with no manual step and owns its share again.
    drop(n3);
    let n3 = cluster.start("n3", p3, &[&n1], COOKIE);
    set_role(&n1, &admin, ids[1], "joining-change").await;
    for n in [&n1, &n2, &n3] {
        assert!(wait_members(n, &["n1", "n2", "n3"], Duration::from_secs(20)).await);
    }
    let mut owners = HashSet::new();
    for id in &ids {
        let mut seen = Vec::new();
        for n in [&n1, &n2, &n3] {
            let (status, v) = session(n, *id).await;
            assert_eq!(status, 200);
            seen.push(v["cache"]["node"].clone());
        }
        assert!(seen.windows(2).all(|w| w[0] == w[1]), "{seen:?}");
        owners.insert(seen[0].as_str().unwrap_or_default().to_string());
    }
    assert!(owners.contains("n3"), "the restarted node owns users again");
    for n in [&n1, &n2, &n3] {
        assert_eq!(session(n, ids[1]).await.1["user"]["role"], "joining-change");
    }

    // A change made while a node leaves is seen through the survivors.
    signal(&n2, "-KILL");
    set_role(&n3, &admin, ids[2], "leaving-change").await;
    for n in [&n1, &n3] {
        assert_eq!(session(n, ids[2]).await.1["user"]["role"], "leaving-change");
    }
    cluster.finish(vec![n1, n2, n3]).await;
}

#[tokio::test]
async fn a_node_with_a_wrong_cookie_never_joins() {
    let cluster = Cluster::new(Backend::Sqlite).await;
    let n1 = cluster.start("good1", free_port(), &[], COOKIE);
    let n2 = cluster.start("good2", free_port(), &[&n1], COOKIE);
    assert!(wait_members(&n1, &["good1", "good2"], Duration::from_secs(20)).await);
    let intruder = cluster.start("intruder", free_port(), &[&n1, &n2], "not-the-cookie");
    tokio::time::sleep(Duration::from_secs(4)).await;
    for n in [&n1, &n2] {
        let m = members(n).await;
        assert!(!m.contains(&"intruder".to_string()), "{m:?}");
    }
    assert_eq!(members(&intruder).await, vec!["intruder".to_string()]);
    let (status, v) = get(&intruder, "/readyz", None).await;
    assert_eq!(status, 503, "{v}");
    assert_eq!(v["error"], "unavailable");
}

#[test]
fn a_cluster_without_a_cookie_refuses_to_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--node-name", "x"])
        .args(["--cluster-listen", "127.0.0.1:0"])
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("x.db").display()),
        )
        .env_remove("SESSIOND_CLUSTER_COOKIE")
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cookie"));
}

crate::on_both_stores!(three_nodes_share_ownership_and_survive_failures);

/// PostgreSQL: a change made by hand reaches every node of a real
/// three-process cluster within 200 ms (TTL 5 minutes), through each
/// node's LISTEN.
#[tokio::test]
#[cfg_attr(
    not(pg_tests),
    ignore = "set SESSIOND_TEST_POSTGRES_URL to run the PostgreSQL tests"
)]
async fn a_change_in_psql_reaches_every_node_of_a_cluster_within_200ms() {
    let cluster = Cluster::new(Backend::Postgres).await;
    let n1 = cluster.start("p1", free_port(), &[], COOKIE);
    let n2 = cluster.start("p2", free_port(), &[&n1], COOKIE);
    let n3 = cluster.start("p3", free_port(), &[&n1], COOKIE);
    for n in [&n1, &n2, &n3] {
        assert!(wait_members(n, &["p1", "p2", "p3"], Duration::from_secs(20)).await);
    }
    let ids = add_users(&cluster, 6).await;
    for id in &ids {
        for n in [&n1, &n2, &n3] {
            assert_eq!(session(n, *id).await.1["user"]["role"], "user");
            // Every node also caches a copy of its own (as after a fallback).
        }
    }
    for (i, id) in ids.iter().enumerate() {
        let role = format!("psql-{i}");
        cluster
            .outside_sql(&format!("UPDATE users SET role = '{role}' WHERE id = {id}"))
            .await;
        let changed = Instant::now();
        for n in [&n1, &n2, &n3] {
            loop {
                if session(n, *id).await.1["user"]["role"] == role.as_str() {
                    break;
                }
                assert!(
                    changed.elapsed() < Duration::from_millis(200),
                    "user {id} via {} still shows the old role after 200 ms",
                    n.name
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
    let id = ids[0];
    cluster
        .outside_sql(&format!(
            "UPDATE users SET status = 'deactivated' WHERE id = {id}"
        ))
        .await;
    let changed = Instant::now();
    for n in [&n1, &n2, &n3] {
        loop {
            let (status, v) = session(n, id).await;
            if status == 401 {
                assert_eq!(v["error"], "session_revoked");
                break;
            }
            assert!(
                changed.elapsed() < Duration::from_millis(200),
                "via {}",
                n.name
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    cluster.finish(vec![n1, n2, n3]).await;
}

/// A CA and node certificates made with the openssl command line.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("runs openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn new() -> Pki {
        let pki = Pki {
            dir: tempfile::tempdir().expect("temp dir"),
        };
        std::fs::write(
            pki.dir.path().join("node.ext"),
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n",
        )
        .expect("writes");
        pki
    }

    fn ca(&self, name: &str) {
        self.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
        ]);
    }

    /// A certificate for `node` signed by `ca`.
    fn node(&self, node: &str, ca: &str) {
        self.openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{node}.key"),
            "-out",
            &format!("{node}.csr"),
            "-subj",
            &format!("/CN={node}"),
        ]);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &format!("{node}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            &format!("{node}.pem"),
            "-days",
            "2",
            "-extfile",
            "node.ext",
        ]);
    }

    fn path(&self, file: &str) -> String {
        self.dir.path().join(file).display().to_string()
    }

    /// The TLS flags of `node`, trusting `ca`.
    fn flags(&self, node: &str, ca: &str) -> Vec<String> {
        vec![
            "--cluster-tls-cert".into(),
            self.path(&format!("{node}.pem")),
            "--cluster-tls-key".into(),
            self.path(&format!("{node}.key")),
            "--cluster-tls-ca".into(),
            self.path(&format!("{ca}.pem")),
        ]
    }
}

#[tokio::test]
async fn with_tls_only_nodes_of_the_cluster_ca_join_and_the_wire_is_encrypted() {
    let pki = Pki::new();
    pki.ca("ca");
    pki.ca("rogue-ca");
    for n in ["t1", "t2", "t3"] {
        pki.node(n, "ca");
    }
    pki.node("rogue", "rogue-ca");

    let cluster = Cluster::new(Backend::Sqlite).await;
    let p1 = free_port();
    let t1 = cluster.start_with("t1", p1, &[], COOKIE, &pki.flags("t1", "ca"));
    let t2 = cluster.start_with("t2", free_port(), &[&t1], COOKIE, &pki.flags("t2", "ca"));
    let t3 = cluster.start_with("t3", free_port(), &[&t2], COOKIE, &pki.flags("t3", "ca"));
    for n in [&t1, &t2, &t3] {
        assert!(
            wait_members(n, &["t1", "t2", "t3"], Duration::from_secs(20)).await,
            "{} sees {:?}",
            n.name,
            members(n).await
        );
    }
    // Lookups cross nodes over TLS.
    let ids = add_users(&cluster, 9).await;
    for id in &ids {
        let (s1, v1) = session(&t1, *id).await;
        let (s3, v3) = session(&t3, *id).await;
        assert_eq!((s1, s3), (200, 200));
        assert_eq!(v1["cache"]["node"], v3["cache"]["node"]);
    }

    // A certificate from another CA, and no TLS at all: never members.
    let rogue = cluster.start_with(
        "rogue",
        free_port(),
        &[&t1],
        COOKIE,
        &pki.flags("rogue", "ca"),
    );
    let plain = cluster.start("plain", free_port(), &[&t1], COOKIE);
    tokio::time::sleep(Duration::from_secs(4)).await;
    for n in [&t1, &t2, &t3] {
        let m = members(n).await;
        assert_eq!(m, vec!["t1", "t2", "t3"], "via {}", n.name);
    }
    assert_eq!(members(&rogue).await, vec!["rogue".to_string()]);
    assert_eq!(members(&plain).await, vec!["plain".to_string()]);

    // On the wire: the cluster port speaks TLS 1.3 with client certificates,
    // and plaintext gets nothing back.
    let mut raw = tokio::net::TcpStream::connect(("127.0.0.1", p1))
        .await
        .expect("connects");
    raw.write_all(b"\x00\x00\x00\x10plaintext hello!")
        .await
        .expect("writes");
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), raw.read(&mut buf))
        .await
        .map(|r| r.unwrap_or(0))
        .unwrap_or(0);
    // Whatever comes back (an alert or nothing) is not a cluster frame.
    assert!(
        n == 0 || buf[0] == 0x15,
        "plaintext answered: {:?}",
        &buf[..n]
    );
    let tls = sessiond::cluster::ClusterTls::load(
        &pki.path("t2.pem"),
        &pki.path("t2.key"),
        &pki.path("ca.pem"),
    )
    .expect("loads");
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", p1))
        .await
        .expect("connects");
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
    let stream = tls
        .connector
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    let (_, conn) = stream.get_ref();
    assert_eq!(
        conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    assert!(conn.peer_certificates().is_some_and(|c| !c.is_empty()));
    // And the rogue CA's certificate is refused at the handshake.
    let rogue_tls = sessiond::cluster::ClusterTls::load(
        &pki.path("rogue.pem"),
        &pki.path("rogue.key"),
        &pki.path("ca.pem"),
    )
    .expect("loads");
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", p1))
        .await
        .expect("connects");
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
    let refused = match rogue_tls.connector.connect(name, tcp).await {
        Err(_) => true,
        // TLS 1.3 reports a refused client certificate on the first read.
        Ok(mut s) => {
            let mut b = [0u8; 1];
            !matches!(
                tokio::time::timeout(Duration::from_secs(5), s.read(&mut b)).await,
                Ok(Ok(1))
            )
        }
    };
    assert!(refused, "a certificate from another CA was accepted");
    cluster.finish(vec![t1, t2, t3, rogue, plain]).await;
}
