//! A Jepsen-style history check of "acknowledged means everywhere": three
//! real `sessiond` nodes, each in a network namespace of its own, clients on
//! every node and one admin writer, under a seeded random schedule of faults
//! (partition, pause, kill -9 and restart, the database's clock stepped
//! forward or back while a node is cut off, and with PostgreSQL a database
//! cut). Every request and write is recorded; afterwards the history is
//! checked: no answer to a request sent after a write was acknowledged may
//! show the user's record from before that write.
//!
//! ```text
//! cargo build && sudo target/debug/examples/history_check [--duration 60s]
//!     [--seed N] [--postgres postgres://postgres@127.0.0.1:5432/test]
//!     [--adopt]
//! ```
//!
//! With `--adopt` (PostgreSQL only) the users live in the application's
//! own table, Better Auth's `user` (string ids, `role`, `banned`), adopted
//! with `sessiond source install --source-preset better-auth`; tokens are
//! minted as the app mints them. The writer changes the app's rows in SQL,
//! as the app's ORM would (a new role, a ban, an unban), and logs tokens
//! out through sessiond. A change made in SQL is acknowledged by nobody:
//! the promise is that every node serves it within one lease
//! (`--lease`, 2 s) of its commit, so such a write counts as acknowledged
//! one lease after its COMMIT returned. Answers that showed the old record
//! inside that lease (NOTIFY late or lost) are counted apart, not stale.
//!
//! Needs root (network namespaces) and the `sessiond` binary of the same
//! build (`--bin`, `SESSIOND_BIN`, or next to this example's directory).
//! Exit status: 0 no stale answer, 1 stale answers (the first is named),
//! 2 the run could not be set up.

use sessiond_testkit::http::Client;
use sessiond_testkit::netns::{Host, Lab, Link};
use sessiond_testkit::postgres_db;
use sessiond_testkit::process::{self, Sessiond, Spec};
use sessiond_testkit::relay::Relay;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use sessiond_actors::sync::{MutexExt, RwLockExt};

use clap::Parser;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use history::{Read, Write};

/// The pure checker: a history in, the stale answers out.
mod history {
    /// One session request: times in µs since the run began.
    #[derive(Clone, Debug)]
    pub(crate) struct Read {
        pub sent: u64,
        pub answered: u64,
        pub node: String,
        pub user: i64,
        /// Which of the user's tokens it carried (1 for the first login).
        pub token_gen: u32,
        /// 0 when no answer came.
        pub status: u16,
        pub version: Option<i64>,
        pub role: Option<String>,
        pub user_status: Option<String>,
    }

    /// One admin write (or logout).
    #[derive(Clone, Debug)]
    pub(crate) struct Write {
        pub sent: u64,
        /// When its acknowledgement came back; `None`: not acknowledged.
        pub acked: Option<u64>,
        pub user: i64,
        pub kind: String,
        /// The record's version after it.
        pub new_version: Option<i64>,
        /// The record before it, for writes whose new version is unknown.
        pub prev_role: String,
        pub prev_status: String,
        /// Tokens of this generation and older are revoked by it.
        pub revokes_gen: Option<u32>,
    }

    #[derive(Clone, Debug)]
    pub(crate) struct Violation {
        pub read: Read,
        pub write: Write,
        pub why: String,
    }

    /// Every answer to a request sent after the acknowledgement of a write
    /// to that user that shows the record from before the write: an older
    /// version, the pre-write role and status (when the version is not
    /// known), or a token the write revoked. Requests sent before the
    /// acknowledgement are concurrent with the write and may see either.
    /// Sorted by the time the request was sent.
    pub(crate) fn check(reads: &[Read], writes: &[Write]) -> Vec<Violation> {
        let mut by_user: std::collections::HashMap<i64, Vec<&Write>> = Default::default();
        for w in writes.iter().filter(|w| w.acked.is_some()) {
            by_user.entry(w.user).or_default().push(w);
        }
        for ws in by_user.values_mut() {
            ws.sort_by_key(|w| w.acked);
        }
        let mut out = Vec::new();
        for r in reads.iter().filter(|r| r.status == 200) {
            let Some(ws) = by_user.get(&r.user) else {
                continue;
            };
            let before = ws.partition_point(|w| w.acked.is_some_and(|a| a < r.sent));
            for w in ws[..before].iter().rev() {
                let why = match (w.new_version, r.version) {
                    (Some(need), Some(seen)) if seen < need => {
                        Some(format!("version {seen}, older than {need}"))
                    }
                    (None, _)
                        if r.role.as_deref() == Some(w.prev_role.as_str())
                            && r.user_status.as_deref() == Some(w.prev_status.as_str())
                            && r.version.is_none() =>
                    {
                        Some("the role and status from before the write".to_string())
                    }
                    _ => None,
                }
                .or_else(|| {
                    w.revokes_gen
                        .filter(|g| r.token_gen <= *g)
                        .map(|g| format!("token {} answered, revoked up to {g}", r.token_gen))
                });
                if let Some(why) = why {
                    out.push(Violation {
                        read: r.clone(),
                        write: (*w).clone(),
                        why,
                    });
                    break;
                }
            }
        }
        out.sort_by_key(|v| v.read.sent);
        out
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn read(sent: u64, version: i64, token_gen: u32) -> Read {
            Read {
                sent,
                answered: sent + 1_000,
                node: "h2".into(),
                user: 7,
                token_gen,
                status: 200,
                version: Some(version),
                role: Some("old".into()),
                user_status: Some("active".into()),
            }
        }

        fn write(sent: u64, acked: u64, new_version: i64) -> Write {
            Write {
                sent,
                acked: Some(acked),
                user: 7,
                kind: "role".into(),
                new_version: Some(new_version),
                prev_role: "old".into(),
                prev_status: "active".into(),
                revokes_gen: None,
            }
        }

        #[test]
        fn a_stale_answer_sent_after_the_acknowledgement_is_caught() {
            let writes = [write(100, 200, 5)];
            let v = check(&[read(201, 4, 1)], &writes);
            assert_eq!(v.len(), 1);
            assert_eq!(v[0].read.sent, 201);
            assert!(v[0].why.contains("older"), "{}", v[0].why);
        }

        #[test]
        fn a_stale_answer_concurrent_with_the_write_is_not() {
            let writes = [write(100, 200, 5)];
            // Sent while the write was in flight, answered after its ack.
            assert!(check(&[read(150, 4, 1)], &writes).is_empty());
            // Sent at the very instant of the ack: not after it.
            assert!(check(&[read(200, 4, 1)], &writes).is_empty());
        }

        #[test]
        fn new_records_errors_and_other_users_pass() {
            let writes = [write(100, 200, 5)];
            let mut refused = read(300, 4, 1);
            refused.status = 401;
            let mut other = read(300, 1, 1);
            other.user = 8;
            assert!(check(&[read(300, 5, 1), read(300, 9, 1), refused, other], &writes).is_empty());
        }

        #[test]
        fn a_write_that_was_not_acknowledged_promises_nothing() {
            let mut w = write(100, 200, 5);
            w.acked = None;
            assert!(check(&[read(300, 4, 1)], &[w]).is_empty());
        }

        #[test]
        fn a_revoked_token_answered_after_the_acknowledgement_is_caught() {
            let mut w = write(100, 200, 5);
            w.revokes_gen = Some(1);
            let v = check(&[read(300, 5, 1), read(300, 6, 2)], &[w]);
            assert_eq!(v.len(), 1);
            assert_eq!(v[0].read.token_gen, 1);
        }

        #[test]
        fn without_a_known_version_the_pre_write_record_is_caught() {
            let mut w = write(100, 200, 5);
            w.new_version = None;
            let mut r = read(300, 0, 1);
            r.version = None;
            assert_eq!(check(&[r.clone()], &[w.clone()]).len(), 1);
            r.role = Some("new".into());
            assert!(check(&[r], &[w]).is_empty());
        }
    }
}

#[derive(Parser, Debug)]
#[command(about = "History check of sessiond under faults (needs root)")]
struct Args {
    /// How long clients, writer and faults run.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Seed of the fault schedule and of the clients' choices (random if
    /// not given; printed either way).
    #[arg(long)]
    seed: Option<u64>,
    /// Run on PostgreSQL (a fresh database on this server, reached by each
    /// node through a relay on its own db link) instead of a shared SQLite
    /// file.
    #[arg(long)]
    postgres: Option<String>,
    /// The sessiond binary.
    #[arg(long, env = "SESSIOND_BIN")]
    bin: Option<String>,
    /// Users in the run.
    #[arg(long, default_value_t = 24)]
    users: usize,
    /// Session clients per node.
    #[arg(long, default_value_t = 2)]
    clients: usize,
    /// Pause between one client's requests.
    #[arg(long, default_value = "5ms", value_parser = humantime::parse_duration)]
    think: Duration,
    /// Pause between admin writes.
    #[arg(long, default_value = "150ms", value_parser = humantime::parse_duration)]
    write_every: Duration,
    /// Users in the app's own table (Better Auth's schema), changed in SQL
    /// (needs `--postgres`).
    #[arg(long, requires = "postgres")]
    adopt: bool,
}

/// The nodes' lease (their default): how long after its commit a change
/// made in SQL is promised on every node.
const LEASE: Duration = Duration::from_secs(2);

/// Better Auth's `user` table with its admin plugin, as its migration
/// makes it on PostgreSQL.
const BETTER_AUTH_USER: &str = r#"CREATE TABLE public."user" (
    "id" text NOT NULL PRIMARY KEY,
    "name" text NOT NULL,
    "email" text NOT NULL UNIQUE,
    "emailVerified" boolean NOT NULL,
    "image" text,
    "createdAt" timestamptz DEFAULT CURRENT_TIMESTAMP NOT NULL,
    "updatedAt" timestamptz DEFAULT CURRENT_TIMESTAMP NOT NULL,
    "role" text,
    "banned" boolean,
    "banReason" text,
    "banExpires" timestamptz
)"#;

/// A 32-character id as Better Auth makes them.
fn better_auth_id(rng: &mut StdRng) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    (0..32)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// A token for the app's user `sub`, as the app mints it.
fn app_token(sub: &str, rng: &mut StdRng) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let sid = format!(
        "{:012x}{:020x}",
        now as u64 & 0xffff_ffff_ffff,
        rng.gen::<u64>()
    );
    let claims = json!({
        "sub": sub, "sid": sid, "iat": now / 1000, "exp": now / 1000 + 3600, "iss": "sessiond"
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap_or_else(|e| fail(format!("cannot sign a token: {e}")))
}

const SECRET: &str = "history-check-secret-0123456789-abcdefgh";
const COOKIE: &str = "history-check-cookie-0123456789-abcdefgh";
const ADMIN_PASSWORD: &str = "history-check-admin-password";
const USER_PASSWORD: &str = "history-check-user-password";
const NODES: usize = 3;
const HTTP_PORT: u16 = 8080;
const CLUSTER_PORT: u16 = 7400;

fn fail(msg: impl std::fmt::Display) -> ! {
    eprintln!("history_check: {msg}");
    std::process::exit(2)
}

/// The database as this process reaches it (directly, never cut).
enum Db {
    Sqlite {
        url: String,
        _dir: tempfile::TempDir,
    },
    Postgres {
        server: String,
        url: String,
        name: String,
    },
}

impl Db {
    /// The app user's role, status (as the better-auth preset reads them)
    /// and version, straight from the database.
    async fn app_row(&self, sub: &str) -> Option<(String, String, i64)> {
        use sqlx::Row;
        let Db::Postgres { url, .. } = self else {
            return None;
        };
        let mut c = sessiond_testkit::postgres_db::connect_sessiond(url)
            .await
            .ok()?;
        let sql = format!(
            r#"SELECT COALESCE(u."role", 'user'), {},
                      COALESCE(s.version, 0)::bigint
                 FROM public."user" u LEFT JOIN sessiond.source_users s ON s.user_id = u."id"
                WHERE u."id" = $1"#,
            sessiond::source::BETTER_AUTH_STATUS
                .replace("\"banned\"", "u.\"banned\"")
                .replace("\"banExpires\"", "u.\"banExpires\"")
        );
        let r = sqlx::query(&sql)
            .bind(sub)
            .fetch_optional(&mut c)
            .await
            .ok()??;
        Some((r.try_get(0).ok()?, r.try_get(1).ok()?, r.try_get(2).ok()?))
    }

    /// Runs one statement on the app's table, as the app's ORM would.
    async fn app_write(&self, sql: &str, sub: &str) -> Result<(), String> {
        let Db::Postgres { url, .. } = self else {
            return Err("not PostgreSQL".into());
        };
        let mut c = sessiond_testkit::postgres_db::connect_sessiond(url)
            .await
            .map_err(|e| e.to_string())?;
        sqlx::query(sql)
            .bind(sub)
            .execute(&mut c)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// The user's role, status and version, straight from the database.
    async fn row(&self, id: i64) -> Option<(String, String, i64)> {
        use sqlx::{Connection, Row};
        let sql = format!("SELECT role, status, version FROM users WHERE id = {id}");
        let row = match self {
            Db::Sqlite { url, .. } => {
                let mut c = sqlx::SqliteConnection::connect(url).await.ok()?;
                let r = sqlx::query(&sql).fetch_optional(&mut c).await.ok()??;
                (r.try_get(0).ok()?, r.try_get(1).ok()?, r.try_get(2).ok()?)
            }
            Db::Postgres { url, .. } => {
                let mut c = sessiond_testkit::postgres_db::connect_sessiond(url)
                    .await
                    .ok()?;
                let r = sqlx::query(&sql).fetch_optional(&mut c).await.ok()??;
                (r.try_get(0).ok()?, r.try_get(1).ok()?, r.try_get(2).ok()?)
            }
        };
        Some(row)
    }

    /// Shifts the database's clock as the lease statements read it
    /// (`sessiond_test_clock`; 0: the true clock).
    async fn shift_clock(&self, offset_ms: i64) -> Result<(), String> {
        use sqlx::Connection;
        let sql = format!("UPDATE sessiond_test_clock SET offset_ms = {offset_ms} WHERE id = 1");
        let done = match self {
            Db::Sqlite { url, .. } => {
                let mut c = sqlx::SqliteConnection::connect(url)
                    .await
                    .map_err(|e| e.to_string())?;
                sqlx::query(&sql).execute(&mut c).await.map(|_| ())
            }
            Db::Postgres { url, .. } => {
                let mut c = sessiond_testkit::postgres_db::connect_sessiond(url)
                    .await
                    .map_err(|e| e.to_string())?;
                sqlx::query(&sql).execute(&mut c).await.map(|_| ())
            }
        };
        done.map_err(|e| e.to_string())
    }
}

/// Microseconds since the run began.
#[derive(Clone, Copy)]
struct Clock(Instant);

impl Clock {
    fn now(&self) -> u64 {
        self.0.elapsed().as_micros() as u64
    }
}

struct Run {
    clock: Clock,
    http: Client,
    /// Each node's HTTP address (stable across restarts).
    addrs: Vec<String>,
    names: Vec<String>,
    /// user id → (token generation, token).
    tokens: RwLock<HashMap<i64, (u32, String)>>,
    reads: Mutex<Vec<Read>>,
    writes: Mutex<Vec<Write>>,
    stop: AtomicBool,
    sent: AtomicU64,
    /// With `--adopt`: user `n`'s id in the app's table is `subs[n - 1]`.
    subs: Vec<String>,
}

impl Run {
    fn token(&self, user: i64) -> Option<(u32, String)> {
        self.tokens.read_locked().get(&user).cloned()
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Logs `email` in through the first node that answers; returns the
    /// token.
    async fn login(&self, email: &str, password: &str, first: usize) -> Option<String> {
        let body = json!({"email": email, "password": password}).to_string();
        for i in 0..NODES {
            let addr = &self.addrs[(first + i) % NODES];
            let a = self
                .http
                .call(addr, "POST", "/api/auth/login", None, Some(&body))
                .await;
            if a.status == 200 {
                return a.body["token"].as_str().map(String::from);
            }
        }
        None
    }
}

/// A client bound to one node: resolves random users' sessions, recording
/// each request.
async fn client(run: Arc<Run>, node: usize, users: Vec<i64>, seed: u64, think: Duration) {
    let mut rng = StdRng::seed_from_u64(seed);
    while !run.stopped() {
        let user = users[rng.gen_range(0..users.len())];
        let Some((token_gen, token)) = run.token(user) else {
            continue;
        };
        let sent = run.clock.now();
        run.sent.fetch_add(1, Ordering::Relaxed);
        let a = run
            .http
            .get(&run.addrs[node], "/api/auth/session", Some(&token))
            .await;
        let answered = run.clock.now();
        let text = |v: &serde_json::Value| v.as_str().map(String::from);
        run.reads.locked().push(Read {
            sent,
            answered,
            node: run.names[node].clone(),
            user,
            token_gen,
            status: a.status,
            version: a.body["cache"]["version"].as_i64(),
            role: text(&a.body["user"]["role"]),
            user_status: text(&a.body["user"]["status"]),
        });
        tokio::time::sleep(think).await;
    }
}

/// The one admin writer (so each user's writes are sequential): role
/// changes to a role never used before, deactivate then activate,
/// revoke-sessions, logout; after a write that revokes the user's token a
/// new login hands the clients the next one.
async fn writer(run: Arc<Run>, db: Arc<Db>, users: Vec<(i64, String)>, seed: u64, every: Duration) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut admin = None;
    let mut seq = 0u64;
    let mut deactivated: HashMap<i64, bool> = HashMap::new();
    while !run.stopped() {
        tokio::time::sleep(every).await;
        let via = rng.gen_range(0..NODES);
        if admin.is_none() {
            admin = run.login("admin@localhost", ADMIN_PASSWORD, via).await;
        }
        let Some(admin_token) = admin.clone() else {
            continue;
        };
        let (id, email) = users[rng.gen_range(0..users.len())].clone();
        let Some((prev_role, prev_status, _)) = db.row(id).await else {
            continue;
        };
        let Some((token_gen, user_token)) = run.token(id) else {
            continue;
        };
        seq += 1;
        let is_off = deactivated.get(&id).copied().unwrap_or(false);
        let pick = rng.gen_range(0..100);
        let (kind, method, path, token, body, ok, revokes) = if is_off {
            let path = format!("/api/admin/users/{id}/activate");
            (
                "activate",
                "POST",
                path,
                admin_token.clone(),
                None,
                200,
                false,
            )
        } else if pick < 70 {
            let body = json!({ "role": format!("r{seq}") }).to_string();
            let path = format!("/api/admin/users/{id}/role");
            (
                "role",
                "PUT",
                path,
                admin_token.clone(),
                Some(body),
                200,
                false,
            )
        } else if pick < 82 {
            let path = format!("/api/admin/users/{id}/deactivate");
            (
                "deactivate",
                "POST",
                path,
                admin_token.clone(),
                None,
                200,
                true,
            )
        } else if pick < 94 {
            let path = format!("/api/admin/users/{id}/revoke-sessions");
            (
                "revoke-sessions",
                "POST",
                path,
                admin_token.clone(),
                None,
                204,
                true,
            )
        } else {
            (
                "logout",
                "POST",
                "/api/auth/logout".into(),
                user_token,
                None,
                204,
                true,
            )
        };
        let sent = run.clock.now();
        let a = run
            .http
            .call(
                &run.addrs[via],
                method,
                &path,
                Some(&token),
                body.as_deref(),
            )
            .await;
        let acked = (a.status == ok).then(|| run.clock.now());
        if a.status == 401 && token == admin_token {
            admin = None;
        }
        // Single writer: the version in the database right after the
        // acknowledgement is this write's (or a later one's, if a refused
        // write still landed: that only makes the check more lenient).
        let new_version = match acked {
            Some(_) => db.row(id).await.map(|(_, _, v)| v),
            None => None,
        };
        run.writes.locked().push(Write {
            sent,
            acked,
            user: id,
            kind: kind.to_string(),
            new_version,
            prev_role,
            prev_status,
            revokes_gen: revokes.then_some(token_gen),
        });
        if let Some((_, status, _)) = db.row(id).await {
            deactivated.insert(id, status == "deactivated");
        }
        // Tokens die with deactivation, revoke-sessions and logout (also
        // when the answer was lost): log in again once the user is active.
        let off = deactivated.get(&id).copied().unwrap_or(false);
        if !off && (revokes || kind == "activate") {
            if let Some(t) = run.login(&email, USER_PASSWORD, via).await {
                run.tokens.write_locked().insert(id, (token_gen + 1, t));
            }
        }
    }
}

/// The writer of `--adopt`: a new role or a ban or unban written in SQL
/// to the app's table, or a logout through sessiond (then the clients get
/// a new token). A SQL write counts as acknowledged one lease after its
/// COMMIT returned (its kind starts with `sql-`).
async fn app_writer(run: Arc<Run>, db: Arc<Db>, seed: u64, every: Duration) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut seq = 0u64;
    while !run.stopped() {
        tokio::time::sleep(every).await;
        let id = rng.gen_range(1..=run.subs.len() as i64);
        let sub = run.subs[id as usize - 1].clone();
        let Some((prev_role, prev_status, _)) = db.app_row(&sub).await else {
            continue;
        };
        let Some((token_gen, user_token)) = run.token(id) else {
            continue;
        };
        seq += 1;
        let pick = rng.gen_range(0..100);
        let sql = if prev_status == "deactivated" {
            Some((
                "sql-unban",
                r#"UPDATE public."user" SET "banned" = false, "updatedAt" = now() WHERE "id" = $1"#
                    .to_string(),
            ))
        } else if pick < 70 {
            Some((
                "sql-role",
                format!(
                    r#"UPDATE public."user" SET "role" = 'r{seq}', "updatedAt" = now() WHERE "id" = $1"#
                ),
            ))
        } else if pick < 85 {
            Some(("sql-ban", r#"UPDATE public."user" SET "banned" = true, "banReason" = 'history', "updatedAt" = now() WHERE "id" = $1"#.to_string()))
        } else {
            None
        };
        let sent = run.clock.now();
        let (kind, acked, revokes) = match sql {
            Some((kind, sql)) => {
                let done = db.app_write(&sql, &sub).await;
                let lease_us = LEASE.as_micros() as u64;
                (
                    kind,
                    done.is_ok().then(|| run.clock.now() + lease_us),
                    false,
                )
            }
            None => {
                let via = rng.gen_range(0..NODES);
                let a = run
                    .http
                    .call(
                        &run.addrs[via],
                        "POST",
                        "/api/auth/logout",
                        Some(&user_token),
                        None,
                    )
                    .await;
                ("logout", (a.status == 204).then(|| run.clock.now()), true)
            }
        };
        // Single writer: the version right after is this write's.
        let new_version = match acked {
            Some(_) => db.app_row(&sub).await.map(|(_, _, v)| v),
            None => None,
        };
        run.writes.locked().push(Write {
            sent,
            acked,
            user: id,
            kind: kind.to_string(),
            new_version,
            prev_role,
            prev_status,
            revokes_gen: revokes.then_some(token_gen),
        });
        if revokes {
            let t = app_token(&sub, &mut rng);
            run.tokens.write_locked().insert(id, (token_gen + 1, t));
        }
    }
}

#[derive(Default, Debug)]
struct FaultCounts {
    partition: u32,
    pause: u32,
    kill: u32,
    db_cut: u32,
    isolate: u32,
    clock_forward: u32,
    clock_back: u32,
}

/// Injects one fault at a time, with healthy gaps, until the run stops.
async fn faults(
    run: Arc<Run>,
    hosts: &[Host],
    nodes: Arc<Vec<Mutex<Sessiond>>>,
    db: Arc<Db>,
    seed: u64,
    counts: Arc<Mutex<FaultCounts>>,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let postgres = matches!(&*db, Db::Postgres { .. });
    // With PostgreSQL also: a cut from the database alone (3), and from the
    // peers and the database together (4, so no NOTIFY either). On both:
    // the database's clock stepped forward (5) or back (6).
    let kinds = if postgres { 7 } else { 5 };
    let ms = |rng: &mut StdRng, lo: u64, hi: u64| Duration::from_millis(rng.gen_range(lo..hi));
    let secs = |d: Duration| d.as_secs_f64();
    loop {
        tokio::time::sleep(ms(&mut rng, 1000, 3000)).await;
        if run.stopped() {
            return;
        }
        let n = rng.gen_range(0..NODES);
        let name = run.names[n].clone();
        let at = secs(run.clock.0.elapsed());
        let kind = match rng.gen_range(0..kinds) {
            k if !postgres && k >= 3 => k + 2,
            k => k,
        };
        match kind {
            0 => {
                let d = ms(&mut rng, 500, 5000);
                println!(
                    "[{at:6.1}s] partition {name} from its peers for {:.1}s",
                    secs(d)
                );
                hosts[n].cut(Link::Peer);
                tokio::time::sleep(d).await;
                hosts[n].heal(Link::Peer);
                counts.locked().partition += 1;
            }
            1 => {
                let d = if rng.gen_bool(0.2) {
                    ms(&mut rng, 4000, 10_000)
                } else {
                    ms(&mut rng, 200, 3000)
                };
                println!("[{at:6.1}s] pause {name} for {:.1}s", secs(d));
                let pid = lock(&nodes[n]).pid();
                if let Some(pid) = pid {
                    process::signal(pid, "-STOP");
                    tokio::time::sleep(d).await;
                    process::signal(pid, "-CONT");
                }
                counts.locked().pause += 1;
            }
            2 => {
                let d = ms(&mut rng, 300, 2000);
                println!("[{at:6.1}s] kill -9 {name}, restart after {:.1}s", secs(d));
                lock(&nodes[n]).kill9();
                tokio::time::sleep(d).await;
                let nodes = Arc::clone(&nodes);
                let restarted =
                    tokio::task::spawn_blocking(move || lock(&nodes[n]).restart()).await;
                if !matches!(restarted, Ok(Ok(()))) {
                    println!(
                        "[{:6.1}s] {name} did not restart: {restarted:?}",
                        secs(run.clock.0.elapsed())
                    );
                }
                counts.locked().kill += 1;
            }
            4 => {
                let d = ms(&mut rng, 500, 4000);
                println!(
                    "[{at:6.1}s] isolate {name} from its peers and the database for {:.1}s",
                    secs(d)
                );
                hosts[n].cut(Link::Peer);
                hosts[n].cut(Link::Db);
                tokio::time::sleep(d).await;
                hosts[n].heal_all();
                counts.locked().isolate += 1;
            }
            5 | 6 => {
                // A node cut off while holding its lease (from its peers;
                // with PostgreSQL from the database too, so it cannot
                // renew), and the database's clock stepped meanwhile.
                let forward = kind == 5;
                let step = ms(&mut rng, 3000, 15_000);
                let d = ms(&mut rng, 1000, 4000);
                let offset = i64::try_from(step.as_millis()).unwrap_or(i64::MAX);
                let offset = if forward { offset } else { -offset };
                println!(
                    "[{at:6.1}s] database clock stepped {} {:.1}s for {:.1}s, {name} cut from its peers{}",
                    if forward { "forward" } else { "back" },
                    secs(step),
                    secs(d),
                    if postgres { " and the database" } else { "" }
                );
                hosts[n].cut(Link::Peer);
                if postgres {
                    hosts[n].cut(Link::Db);
                }
                if let Err(e) = db.shift_clock(offset).await {
                    println!("[{at:6.1}s] cannot step the database's clock: {e}");
                }
                tokio::time::sleep(d).await;
                if let Err(e) = db.shift_clock(0).await {
                    println!("[{at:6.1}s] cannot set the database's clock back: {e}");
                }
                hosts[n].heal_all();
                let mut c = counts.locked();
                if forward {
                    c.clock_forward += 1;
                } else {
                    c.clock_back += 1;
                }
            }
            _ => {
                let d = ms(&mut rng, 500, 4000);
                println!(
                    "[{at:6.1}s] cut {name} from the database for {:.1}s",
                    secs(d)
                );
                hosts[n].cut(Link::Db);
                tokio::time::sleep(d).await;
                hosts[n].heal(Link::Db);
                counts.locked().db_cut += 1;
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.locked()
}

fn snapshot(run: &Run) -> (Vec<Read>, Vec<Write>) {
    (lock(&run.reads).clone(), lock(&run.writes).clone())
}

fn sessiond_bin(given: Option<String>) -> String {
    if let Some(b) = given {
        return b;
    }
    // target/<profile>/examples/history_check → target/<profile>/sessiond
    std::env::current_exe()
        .ok()
        .and_then(|p| Some(p.parent()?.parent()?.join("sessiond")))
        .filter(|p| p.exists())
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| fail("no sessiond binary: build it (cargo build) or pass --bin"))
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    let bin = sessiond_bin(args.bin.clone());
    println!(
        "history_check: seed {seed}, {} on {}, {} users, {} clients per node",
        humantime::format_duration(args.duration),
        if args.adopt {
            "PostgreSQL, users in the app's table (Better Auth's schema)"
        } else if args.postgres.is_some() {
            "PostgreSQL"
        } else {
            "SQLite"
        },
        args.users,
        args.clients
    );
    let lab = Lab::new().unwrap_or_else(|e| fail(e));
    let hosts: Vec<Host> = (0..NODES)
        .map(|_| lab.host().unwrap_or_else(|e| fail(e)))
        .collect();
    let db = match &args.postgres {
        None => {
            let dir = tempfile::tempdir().unwrap_or_else(|e| fail(e));
            let url = format!("sqlite://{}", dir.path().join("shared.db").display());
            Db::Sqlite { url, _dir: dir }
        }
        Some(server) => {
            let name = format!("sessiond_hist_{}", seed % 1_000_000_007);
            let url = postgres_db::create(server, &name)
                .await
                .unwrap_or_else(|e| fail(format!("cannot create a database on {server}: {e}")));
            Db::Postgres {
                server: server.clone(),
                url,
                name,
            }
        }
    };
    let db = Arc::new(db);
    let outcome = run_checked(&args, seed, &bin, &hosts, Arc::clone(&db)).await;
    // The nodes are gone: give their connections a moment to close before
    // the namespaces go.
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(hosts);
    drop(lab);
    if let Db::Postgres { server, name, .. } = &*db {
        postgres_db::drop(server, name).await;
    }
    match outcome {
        Ok(code) => std::process::exit(code),
        Err(e) => fail(e),
    }
}

/// Starts the nodes, runs the clients, writer and faults, checks the
/// history; returns the exit status.
async fn run_checked(
    args: &Args,
    seed: u64,
    bin: &str,
    hosts: &[Host],
    db: Arc<Db>,
) -> Result<i32, String> {
    let adopt = args.adopt;
    let mut relays: Vec<Relay> = Vec::new();
    let mut nodes = Vec::new();
    let names: Vec<String> = (1..=NODES).map(|i| format!("h{i}")).collect();
    let mut rng = StdRng::seed_from_u64(seed ^ 0xadd0);
    let subs: Vec<String> = if args.adopt {
        adopt_users(&db, bin, args.users, &mut rng).await?
    } else {
        Vec::new()
    };
    for (i, host) in hosts.iter().enumerate() {
        let url = match &*db {
            Db::Sqlite { url, .. } => url.clone(),
            Db::Postgres { url, .. } => {
                let hostport = url
                    .split_once('@')
                    .map(|(_, r)| r)
                    .and_then(|r| r.split('/').next())
                    .unwrap_or("127.0.0.1:5432");
                let target = std::net::ToSocketAddrs::to_socket_addrs(hostport)
                    .ok()
                    .and_then(|mut a| a.next())
                    .ok_or_else(|| format!("cannot resolve {hostport}"))?;
                let relay = Relay::start(host.db_root(), target).map_err(|e| e.to_string())?;
                let url = url.replacen(hostport, &relay.addr().to_string(), 1);
                relays.push(relay);
                url
            }
        };
        let mut args = vec![
            "--listen".to_string(),
            format!("{}:{HTTP_PORT}", host.ctl_addr()),
            "--node-name".into(),
            names[i].clone(),
            "--cluster-listen".into(),
            format!("{}:{CLUSTER_PORT}", host.peer_addr()),
            "--cluster-cookie".into(),
            COOKIE.into(),
            // The namespaces' links are private to the run.
            "--cluster-insecure".into(),
        ];
        if adopt {
            args.extend(["--source-preset".into(), "better-auth".into()]);
        }
        for (j, other) in hosts.iter().enumerate() {
            if j != i {
                args.extend([
                    "--join".into(),
                    format!("{}:{CLUSTER_PORT}", other.peer_addr()),
                ]);
            }
        }
        let spec = Spec {
            bin: bin.to_string(),
            netns: Some(host.name().to_string()),
            name: names[i].clone(),
            args,
            env: vec![
                ("DATABASE_URL".into(), url),
                ("SESSIOND_JWT_SECRET".into(), SECRET.into()),
                ("RUST_LOG".into(), "error".into()),
            ]
            .into_iter()
            .chain((!adopt).then(|| ("SESSIOND_ADMIN_PASSWORD".into(), ADMIN_PASSWORD.into())))
            .collect(),
        };
        nodes.push(Mutex::new(Sessiond::start(spec)?));
    }
    let http = Client::new(Duration::from_secs(15));
    let all: Vec<&str> = names.iter().map(String::as_str).collect();
    for n in &nodes {
        let addr = lock(n).http().to_string();
        let wanted = Instant::now() + Duration::from_secs(30);
        loop {
            let m = process::members_at(&http, &addr).await;
            if m == all {
                break;
            }
            if Instant::now() > wanted {
                return Err(format!("{addr} sees members {m:?}, not {all:?}"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let run = Arc::new(Run {
        clock: Clock(Instant::now()),
        http,
        addrs: nodes.iter().map(|n| lock(n).http().to_string()).collect(),
        names: names.clone(),
        tokens: RwLock::default(),
        reads: Mutex::default(),
        writes: Mutex::default(),
        stop: AtomicBool::new(false),
        sent: AtomicU64::new(0),
        subs: subs.clone(),
    });
    let mut users = Vec::new();
    for (i, sub) in subs.iter().enumerate() {
        let n = i as i64 + 1;
        lock_w(&run.tokens).insert(n, (1, app_token(sub, &mut rng)));
        users.push((n, sub.clone()));
    }
    let admin = if args.adopt {
        String::new()
    } else {
        run.login("admin@localhost", ADMIN_PASSWORD, 0)
            .await
            .ok_or("the administrator cannot log in")?
    };
    for i in 0..if args.adopt { 0 } else { args.users } {
        let email = format!("h{i}@example.test");
        let body = json!({"email": email, "password": USER_PASSWORD, "role": "r0"}).to_string();
        let a = run
            .http
            .call(
                &run.addrs[i % NODES],
                "POST",
                "/api/admin/users",
                Some(&admin),
                Some(&body),
            )
            .await;
        let Some(id) = a.body["id"].as_i64() else {
            return Err(format!("cannot create a user: {} {}", a.status, a.body));
        };
        let Some(token) = run.login(&email, USER_PASSWORD, i).await else {
            return Err("a new user cannot log in".into());
        };
        lock_w(&run.tokens).insert(id, (1, token));
        users.push((id, email));
    }
    println!(
        "history_check: cluster of {NODES} formed, {} users; running",
        users.len()
    );

    let nodes = Arc::new(nodes);
    let counts = Arc::new(Mutex::new(FaultCounts::default()));
    let ids: Vec<i64> = users.iter().map(|(id, _)| *id).collect();
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..NODES {
        for c in 0..args.clients {
            tasks.spawn(client(
                Arc::clone(&run),
                n,
                ids.clone(),
                seed ^ ((n * 31 + c + 1) as u64),
                args.think,
            ));
        }
    }
    if args.adopt {
        tasks.spawn(app_writer(
            Arc::clone(&run),
            Arc::clone(&db),
            seed ^ 0x5eed,
            args.write_every,
        ));
    } else {
        tasks.spawn(writer(
            Arc::clone(&run),
            Arc::clone(&db),
            users,
            seed ^ 0x5eed,
            args.write_every,
        ));
    }
    // The fault schedule borrows the hosts: it runs beside the progress
    // loop, in this task.
    let fault_run = faults(
        Arc::clone(&run),
        hosts,
        Arc::clone(&nodes),
        Arc::clone(&db),
        seed,
        Arc::clone(&counts),
    );
    let progress = async {
        let end = Instant::now() + args.duration;
        while Instant::now() < end {
            tokio::time::sleep(Duration::from_secs(5).min(end - Instant::now())).await;
            let (reads, writes) = snapshot(&run);
            let stale = history::check(&reads, &writes).len();
            println!(
                "[{:6.1}s] requests {} answered {} writes acknowledged {} faults {:?} stale {stale}",
                run.clock.0.elapsed().as_secs_f64(),
                run.sent.load(Ordering::Relaxed),
                reads.iter().filter(|r| r.status != 0).count(),
                writes.iter().filter(|w| w.acked.is_some()).count(),
                lock(&counts),
            );
        }
        run.stop.store(true, Ordering::Relaxed);
    };
    tokio::join!(fault_run, progress);
    // Clients finish their last request (bounded by the client timeout).
    let _ = tokio::time::timeout(Duration::from_secs(20), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    tasks.abort_all();
    for n in nodes.iter() {
        lock(n).resume();
    }
    drop(relays);

    let (reads, writes) = snapshot(&run);
    let violations = history::check(&reads, &writes);
    let answered = reads.iter().filter(|r| r.status != 0).count();
    let ok = reads.iter().filter(|r| r.status == 200).count();
    let after_ack = {
        let mut first_ack: HashMap<i64, u64> = HashMap::new();
        for w in &writes {
            if let Some(a) = w.acked {
                let e = first_ack.entry(w.user).or_insert(a);
                *e = (*e).min(a);
            }
        }
        reads
            .iter()
            .filter(|r| r.status != 0 && first_ack.get(&r.user).is_some_and(|a| r.sent > *a))
            .count()
    };
    let c = lock(&counts);
    println!("history_check: seed {seed}");
    println!(
        "requests checked: {answered} answered ({ok} with 200, {after_ack} sent after an acknowledged write to their user), {} without an answer",
        reads.len() - answered
    );
    println!(
        "writes: {} acknowledged of {} sent",
        writes.iter().filter(|w| w.acked.is_some()).count(),
        writes.len()
    );
    println!(
        "faults injected: {} partitions, {} pauses, {} kill -9 and restart, {} database cuts, {} isolations (peers and database), {} database clock steps forward, {} back (each with a node cut off)",
        c.partition, c.pause, c.kill, c.db_cut, c.isolate, c.clock_forward, c.clock_back
    );
    if args.adopt {
        // The same history with each SQL write acknowledged at its COMMIT:
        // answers that showed the old record inside the lease it is given.
        let lease_us = LEASE.as_micros() as u64;
        let at_commit: Vec<Write> = writes
            .iter()
            .cloned()
            .map(|mut w| {
                if w.kind.starts_with("sql-") {
                    w.acked = w.acked.map(|a| a.saturating_sub(lease_us));
                }
                w
            })
            .collect();
        let early = history::check(&reads, &at_commit);
        let sql = writes
            .iter()
            .filter(|w| w.kind.starts_with("sql-") && w.acked.is_some())
            .count();
        println!(
            "SQL writes to the app's table: {sql} committed; answers showing the old record after a COMMIT, inside its lease (allowed): {}",
            early.len()
        );
    }
    println!("stale answers: {}", violations.len());
    if let Some(v) = violations.first() {
        println!(
            "FIRST STALE ANSWER: node {} user {} (token {}) sent at {:.3}s answered at {:.3}s: status {} version {:?} role {:?} status {:?} — {}; after the {} sent at {:.3}s, acknowledged at {:.3}s (version {:?})",
            v.read.node,
            v.read.user,
            v.read.token_gen,
            v.read.sent as f64 / 1e6,
            v.read.answered as f64 / 1e6,
            v.read.status,
            v.read.version,
            v.read.role,
            v.read.user_status,
            v.why,
            v.write.kind,
            v.write.sent as f64 / 1e6,
            v.write.acked.unwrap_or(0) as f64 / 1e6,
            v.write.new_version,
        );
        let mut per_node: HashMap<&str, usize> = HashMap::new();
        for v in &violations {
            *per_node.entry(v.read.node.as_str()).or_default() += 1;
        }
        println!("stale answers by node: {per_node:?}");
        return Ok(1);
    }
    Ok(0)
}

/// `--adopt`: Better Auth's `user` table with `n` users in the fresh
/// database, and sessiond's capture installed on it; their ids.
async fn adopt_users(
    db: &Db,
    bin: &str,
    n: usize,
    rng: &mut StdRng,
) -> Result<Vec<String>, String> {
    let Db::Postgres { url, .. } = db else {
        return Err("--adopt needs --postgres".into());
    };
    let mut c = sessiond_testkit::postgres_db::connect_sessiond(url)
        .await
        .map_err(|e| e.to_string())?;
    sqlx::query(BETTER_AUTH_USER)
        .execute(&mut c)
        .await
        .map_err(|e| format!("cannot make the app's table: {e}"))?;
    let mut subs = Vec::new();
    for i in 0..n {
        let sub = better_auth_id(rng);
        sqlx::query(
            r#"INSERT INTO public."user" ("id", "name", "email", "emailVerified", "role", "banned")
               VALUES ($1, $2, $3, true, 'user', false)"#,
        )
        .bind(&sub)
        .bind(format!("H{i}"))
        .bind(format!("h{i}@app.test"))
        .execute(&mut c)
        .await
        .map_err(|e| format!("cannot add a user: {e}"))?;
        subs.push(sub);
    }
    let out = std::process::Command::new(bin)
        .args(["source", "install", "--source-preset", "better-auth"])
        .env("DATABASE_URL", url)
        .env("RUST_LOG", "warn")
        .output()
        .map_err(|e| format!("cannot run {bin}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "source install failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(subs)
}

fn lock_w<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write_locked()
}
