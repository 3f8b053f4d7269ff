//! "Acknowledged means everywhere", under faults: real `sessiond`
//! processes, one of them cut off by a real network partition (its own
//! network namespace, links set down) or paused with SIGSTOP, while admin
//! writes go through another node. After every acknowledged write, every
//! answer the faulty node gives about that user for a request sent after the
//! acknowledgement must be 401/403/503 or the new record, never the old.
//!
//! The partition tests need root (network namespaces); without it they fail
//! when `CI` is set and are skipped with a note otherwise. The pause tests
//! run anywhere.
//!
//! Kept whole: the pair of nodes, its writes, the judge of an answer and
//! the watcher are the one kit every fault test here shares.

mod bulk_change;
mod db_clock;
mod invalidate;
mod lease_off;
mod lock_wait;
mod log_guards;
mod mixed_leases;
mod partition;
mod pause;
mod revoked_skew;
mod rewound_log;
mod steady_changes;

use sessiond_testkit::http::{Client, Reply};
use sessiond_testkit::netns::{self, Host, Lab};
use sessiond_testkit::process::{Sessiond, Spec};
use sessiond_testkit::relay::Relay;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sessiond_actors::sync::MutexExt;

use serde_json::json;

use crate::helpers::{drop_postgres_database, Backend, SharedDb as Db};

const BIN: &str = env!("CARGO_BIN_EXE_sessiond");
const SECRET: &str = "faults-test-secret-0123456789-abcdefghij";
const COOKIE: &str = "faults-test-cookie-0123456789-abcdefghij";
const ADMIN_PASSWORD: &str = "admin-password-for-tests";
const USER_PASSWORD: &str = "password-123";

/// The nodes run with the default `--lease`: a node cut off from its peers
/// must stop serving from its cache within this, and a write may wait for a
/// lapse of it (plus a drift margin).
pub(crate) const LEASE: Duration = Duration::from_secs(2);

/// Where the node that faults hit runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    /// In the root namespace, on loopback (pauses need no namespace).
    Loopback,
    /// In a namespace of its own, its links cuttable.
    Namespace,
}

/// `host:port` of a PostgreSQL URL.
fn pg_host_port(url: &str) -> &str {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let rest = rest.rsplit_once('@').map(|(_, r)| r).unwrap_or(rest);
    rest.split(['/', '?']).next().unwrap_or(rest)
}

/// A user cached on the faulty node: its token and the version it showed.
#[derive(Clone, Debug)]
struct CachedUser {
    id: i64,
    token: String,
    version: i64,
    role: String,
}

/// An admin write (or the user's own logout) the contract covers.
#[derive(Clone, Debug)]
enum Change {
    Role(String),
    Deactivate,
    RevokeSessions,
    Delete,
    Logout,
}

/// How a write ended.
#[derive(Debug)]
enum Written {
    Acked,
    /// Refused with 503: nothing promised.
    Refused,
}

/// Two nodes sharing one database: `a` takes the writes and is never hit by
/// a fault; `b` is paused or cut off. Fields drop in order: processes first,
/// then the relay and the namespaces.
struct Pair {
    a: Sessiond,
    b: Sessiond,
    _relay: Option<Relay>,
    host: Option<Host>,
    _lab: Option<Lab>,
    db: Db,
    http: Client,
    admin: String,
}

fn free_port(ip: std::net::Ipv4Addr) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn node_spec(name: &str, db_url: &str, args: Vec<String>) -> Spec {
    // The namespaces' links are private to the test.
    let insecure: Vec<String> = if args.iter().any(|a| a == "--cluster-listen") {
        vec!["--cluster-insecure".into()]
    } else {
        Vec::new()
    };
    Spec {
        bin: BIN.into(),
        netns: None,
        name: name.into(),
        args: [
            vec!["--node-name".into(), name.into()],
            vec!["--cluster-cookie".into(), COOKIE.into()],
            insecure,
            args,
        ]
        .concat(),
        env: vec![
            ("DATABASE_URL".into(), db_url.into()),
            ("SESSIOND_JWT_SECRET".into(), SECRET.into()),
            ("SESSIOND_ADMIN_PASSWORD".into(), ADMIN_PASSWORD.into()),
            ("RUST_LOG".into(), "warn".into()),
        ],
    }
}

impl Pair {
    async fn start(backend: Backend, place: Place) -> Pair {
        Pair::start_with(backend, place, &[]).await
    }

    /// [`Pair::start`], with `extra` flags for both nodes.
    async fn start_with(backend: Backend, place: Place, extra: &[&str]) -> Pair {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let db = Db::new(backend).await;
        let (lab, host) = match place {
            Place::Loopback => (None, None),
            Place::Namespace => {
                let lab = Lab::new().unwrap_or_else(|e| panic!("{e}"));
                let host = lab.host().unwrap_or_else(|e| panic!("{e}"));
                (Some(lab), Some(host))
            }
        };
        let a_ip = lab
            .as_ref()
            .map(Lab::root_addr)
            .unwrap_or(std::net::Ipv4Addr::LOCALHOST);
        let a_cluster = format!("{a_ip}:{}", free_port(a_ip));
        let a = Sessiond::start(node_spec(
            "a",
            &db.url,
            [
                vec![
                    "--listen".into(),
                    "127.0.0.1:0".into(),
                    "--cluster-listen".into(),
                    a_cluster.clone(),
                ],
                extra.clone(),
            ]
            .concat(),
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        let mut relay = None;
        let b = match &host {
            None => {
                let b_cluster = format!("127.0.0.1:{}", free_port(a_ip));
                Sessiond::start(node_spec(
                    "b",
                    &db.url,
                    [
                        vec![
                            "--listen".into(),
                            "127.0.0.1:0".into(),
                            "--cluster-listen".into(),
                            b_cluster,
                            "--join".into(),
                            a_cluster.clone(),
                        ],
                        extra.clone(),
                    ]
                    .concat(),
                ))
            }
            Some(host) => {
                let b_url = match backend {
                    Backend::Sqlite => db.url.clone(),
                    Backend::Postgres => {
                        let target: std::net::SocketAddr =
                            std::net::ToSocketAddrs::to_socket_addrs(pg_host_port(&db.url))
                                .ok()
                                .and_then(|mut a| a.next())
                                .expect("the PostgreSQL address resolves");
                        let r = Relay::start(host.db_root(), target).expect("relay starts");
                        let url = db
                            .url
                            .replacen(pg_host_port(&db.url), &r.addr().to_string(), 1);
                        relay = Some(r);
                        url
                    }
                };
                let mut spec = node_spec(
                    "b",
                    &b_url,
                    [
                        vec![
                            "--listen".into(),
                            format!("{}:8080", host.ctl_addr()),
                            "--cluster-listen".into(),
                            format!("{}:7400", host.peer_addr()),
                            "--join".into(),
                            a_cluster.clone(),
                        ],
                        extra.clone(),
                    ]
                    .concat(),
                );
                spec.netns = Some(host.name().to_string());
                Sessiond::start(spec)
            }
        }
        .unwrap_or_else(|e| panic!("{e}"));
        let http = Client::default();
        for n in [&a, &b] {
            assert!(
                n.wait_members(&http, &["a", "b"], Duration::from_secs(20))
                    .await,
                "{} sees {:?}",
                n.name(),
                n.members(&http).await
            );
        }
        let login = json!({"email": "admin@localhost", "password": ADMIN_PASSWORD}).to_string();
        let r = http
            .call(a.http(), "POST", "/api/auth/login", None, Some(&login))
            .await;
        assert_eq!(r.status, 200, "admin login: {}", r.body);
        let admin = r.body["token"].as_str().expect("token").to_string();
        Pair {
            a,
            b,
            _relay: relay,
            host,
            _lab: lab,
            db,
            http,
            admin,
        }
    }

    fn host(&self) -> &Host {
        self.host.as_ref().expect("a namespaced pair")
    }

    /// Heals `links`, then waits up to 15 s for b to answer `/readyz` with
    /// 200; false if it did not.
    async fn heal_and_wait_ready(&self, links: &[netns::Link]) -> bool {
        for link in links {
            self.host().heal(*link);
        }
        let healed = Instant::now();
        while healed.elapsed() < Duration::from_secs(15) {
            if self.http.get(self.b.http(), "/readyz", None).await.status == 200 {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    /// Stops the nodes and drops the test's PostgreSQL database.
    async fn finish(mut self) {
        let pg = self.db.pg_name.take();
        drop(self);
        if let Some(name) = pg {
            drop_postgres_database(&name).await;
        }
    }

    async fn session(&self, node: &Sessiond, token: &str) -> Reply {
        self.http
            .get(node.http(), "/api/auth/session", Some(token))
            .await
    }

    /// `n` users (made and logged in through `a`), each cached on `b` (its
    /// second answer there a cache hit): every other one owned by `b`, the
    /// rest owned by `a` and held on `b` as near copies.
    async fn users_cached_on_b(&self, n: usize) -> Vec<CachedUser> {
        let mut users = Vec::new();
        let (mut owned, mut near) = (0, 0);
        for i in 0..64 {
            if users.len() == n {
                break;
            }
            let email = format!("f{i}@example.test");
            let body =
                json!({"email": email, "password": USER_PASSWORD, "role": "editor"}).to_string();
            let r = self
                .http
                .call(
                    self.a.http(),
                    "POST",
                    "/api/admin/users",
                    Some(&self.admin),
                    Some(&body),
                )
                .await;
            assert_eq!(r.status, 201, "create user: {}", r.body);
            let id = r.body["id"].as_i64().expect("id");
            let login = json!({"email": email, "password": USER_PASSWORD}).to_string();
            let r = self
                .http
                .call(self.a.http(), "POST", "/api/auth/login", None, Some(&login))
                .await;
            assert_eq!(r.status, 200, "login: {}", r.body);
            let token = r.body["token"].as_str().expect("token").to_string();
            let first = self.session(&self.b, &token).await;
            assert_eq!(first.status, 200, "{}", first.body);
            let owned_by_b = first.body["cache"]["node"] == self.b.name();
            if (owned_by_b && owned > near) || (!owned_by_b && near >= owned) {
                continue;
            }
            // A near copy is not kept for a lease after the user's change
            // (its creation) reaches b: ask until it is.
            let kept = Instant::now();
            let again = loop {
                let again = self.session(&self.b, &token).await;
                assert_eq!(again.status, 200, "{}", again.body);
                if owned_by_b || again.body["cache"]["near"] == true {
                    break again;
                }
                assert!(
                    kept.elapsed() < Duration::from_secs(10),
                    "no near copy on b: {}",
                    again.body
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            assert_eq!(
                again.body["cache"]["hit"], true,
                "cached on b: {}",
                again.body
            );
            if owned_by_b {
                owned += 1;
            } else {
                near += 1;
            }
            users.push(CachedUser {
                id,
                token,
                version: again.body["cache"]["version"].as_i64().expect("version"),
                role: again.body["user"]["role"]
                    .as_str()
                    .unwrap_or_default()
                    .into(),
            });
        }
        assert_eq!(users.len(), n, "not enough users of each owner");
        users
    }

    /// Sends `change` for `user` through `a`. Only 503 may refuse it.
    async fn write(&self, user: &CachedUser, change: &Change) -> (Written, Duration) {
        let id = user.id;
        let admin = Some(self.admin.as_str());
        let role_body;
        let (method, path, token, body, ok) = match change {
            Change::Role(role) => {
                role_body = json!({ "role": role }).to_string();
                let path = format!("/api/admin/users/{id}/role");
                ("PUT", path, admin, Some(role_body.as_str()), 200)
            }
            Change::Deactivate => {
                let path = format!("/api/admin/users/{id}/deactivate");
                ("POST", path, admin, None, 200)
            }
            Change::RevokeSessions => {
                let path = format!("/api/admin/users/{id}/revoke-sessions");
                ("POST", path, admin, None, 204)
            }
            Change::Delete => ("DELETE", format!("/api/admin/users/{id}"), admin, None, 204),
            Change::Logout => (
                "POST",
                "/api/auth/logout".to_string(),
                Some(user.token.as_str()),
                None,
                204,
            ),
        };
        let sent = Instant::now();
        let r = self
            .http
            .call(self.a.http(), method, &path, token, body)
            .await;
        let took = sent.elapsed();
        match r.status {
            s if s == ok => (Written::Acked, took),
            503 => {
                eprintln!("{change:?} of user {id} refused: {}", r.body);
                (Written::Refused, took)
            }
            s => panic!("{change:?} of user {id}: {s} {} after {took:?}", r.body),
        }
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        // Whatever the test left cut is healed before the nodes die, and
        // their connections get a moment to close before the namespaces go
        // (else they retransmit into nothing and keep the namespace alive).
        if let Some(h) = &self.host {
            h.heal_all();
            self.a.kill9();
            self.b.kill9();
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

/// Whether an answer about `user`, for a request sent after `change` was
/// acknowledged, keeps the contract: 401/403/503, or the new record.
fn judge(user: &CachedUser, change: &Change, a: &Reply) -> Result<(), String> {
    let shown = || {
        format!(
            "{} {} (before the write: version {}, role {})",
            a.status, a.body, user.version, user.role
        )
    };
    match a.status {
        401 | 403 | 503 => Ok(()),
        200 => {
            let newer = a.body["cache"]["version"]
                .as_i64()
                .is_some_and(|v| v > user.version);
            let shows_change = match change {
                Change::Role(role) => a.body["user"]["role"] == role.as_str(),
                Change::Deactivate => a.body["user"]["status"] == "deactivated",
                // The token itself is dead: no record may be answered for it.
                Change::RevokeSessions | Change::Delete | Change::Logout => false,
            };
            if newer && shows_change {
                Ok(())
            } else {
                Err(format!("STALE after {change:?}: {}", shown()))
            }
        }
        0 => Err(format!(
            "no answer after {change:?} within the client timeout"
        )),
        _ => Err(format!("unexpected answer after {change:?}: {}", shown())),
    }
}

/// What a watcher saw: (sent, answered, answer).
type Seen = Arc<Mutex<Vec<(Instant, Instant, Reply)>>>;

/// Sends a request every `every`, each on its own task so a slow answer does
/// not delay the next; stopped (outstanding requests abandoned) on drop.
struct Watcher {
    seen: Seen,
    task: tokio::task::JoinHandle<()>,
}

impl Watcher {
    fn start(
        http: Client,
        addr: String,
        path: &'static str,
        token: Option<String>,
        every: Duration,
    ) -> Watcher {
        let seen: Seen = Arc::default();
        let out = Arc::clone(&seen);
        let task = tokio::spawn(async move {
            let mut tasks = tokio::task::JoinSet::new();
            loop {
                let (http, addr, token, out) =
                    (http.clone(), addr.clone(), token.clone(), Arc::clone(&out));
                tasks.spawn(async move {
                    let sent = Instant::now();
                    let a = http.get(&addr, path, token.as_deref()).await;
                    let answered = Instant::now();
                    out.locked().push((sent, answered, a));
                });
                tokio::time::sleep(every).await;
                while tasks.try_join_next().is_some() {}
            }
        });
        Watcher { seen, task }
    }

    /// Everything answered so far, in order of answer.
    fn seen(&self) -> Vec<(Instant, Instant, Reply)> {
        let mut v = self.seen.locked().clone();
        v.sort_by_key(|(_, answered, _)| *answered);
        v
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

/// Test findings, reported together so one run shows every broken promise;
/// repeats of one finding (same where, same user) are counted, not listed.
#[derive(Default)]
struct Findings(Vec<(String, String, usize)>);

impl Findings {
    fn add(&mut self, what: impl Into<String>) {
        let what = what.into();
        self.0.push((what.clone(), what, 1));
    }

    /// Records `r`'s error under `key` (where, and which user).
    fn check(&mut self, key: impl Into<String>, r: Result<(), String>) {
        let Err(e) = r else {
            return;
        };
        let key = key.into();
        match self.0.iter_mut().find(|(k, _, _)| *k == key) {
            Some((_, _, n)) => *n += 1,
            None => self.0.push((key.clone(), format!("{key}: {e}"), 1)),
        }
    }

    #[track_caller]
    fn assert_none(self, test: &str) {
        let lines: Vec<String> = self
            .0
            .iter()
            .map(|(_, first, n)| match n {
                1 => first.clone(),
                n => format!("{first} (and {} more like it)", n - 1),
            })
            .collect();
        assert!(
            lines.is_empty(),
            "{test}: {} broken promise(s):\n  {}",
            lines.len(),
            lines.join("\n  ")
        );
    }
}
