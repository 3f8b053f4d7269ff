//! Spawns the real application on port 0 with a SQLite file of its own and
//! talks to it over a real socket.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use sessiond::app::Application;
use sessiond::config::Settings;
use sessiond::http::Ctx;
use sessiond_testkit::http::{self, Connection};
use sessiond_testkit::postgres_db;

pub(crate) use sessiond_testkit::http::Reply;

pub(crate) const ADMIN_EMAIL: &str = "admin@localhost";
pub(crate) const ADMIN_PASSWORD: &str = "admin-password-for-tests";
pub(crate) const SECRET: &str = "test-secret-0123456789abcdef-0123456789";

/// Which database a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

/// The server the PostgreSQL tests use (each test gets a database of its own).
pub(crate) fn postgres_url() -> String {
    std::env::var("SESSIOND_TEST_POSTGRES_URL")
        .expect("SESSIOND_TEST_POSTGRES_URL names the PostgreSQL server for these tests")
}

/// A fresh, empty PostgreSQL database: its URL and its name.
pub(crate) async fn fresh_postgres_database() -> (String, String) {
    let name = format!(
        "sessiond_t_{}",
        sessiond::auth::random_secret(12).to_lowercase()
    );
    let url = postgres_db::create(&postgres_url(), &name)
        .await
        .expect("creates a test database on the PostgreSQL test server");
    (url, name)
}

pub(crate) async fn drop_postgres_database(name: &str) {
    postgres_db::drop(&postgres_url(), name).await;
}

/// A database several server processes share: a SQLite file in a
/// temporary directory (gone with this value), or a fresh PostgreSQL
/// database (the test drops it with [`drop_postgres_database`] once its
/// processes are stopped).
pub(crate) struct SharedDb {
    pub url: String,
    pub pg_name: Option<String>,
    _dir: tempfile::TempDir,
}

impl SharedDb {
    pub(crate) async fn new(backend: Backend) -> SharedDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let (url, pg_name) = match backend {
            Backend::Sqlite => (
                format!("sqlite://{}", dir.path().join("shared.db").display()),
                None,
            ),
            Backend::Postgres => {
                let (url, name) = fresh_postgres_database().await;
                (url, Some(name))
            }
        };
        SharedDb {
            url,
            pg_name,
            _dir: dir,
        }
    }
}

pub(crate) struct TestApp {
    pub addr: std::net::SocketAddr,
    /// The operations listener (`--ops-listen`), when there is one.
    pub ops_addr: Option<std::net::SocketAddr>,
    pub backend: Backend,
    pub db_url: String,
    pg_database: Option<String>,
    pub ctx: Arc<Ctx>,
    pub admin_token: String,
    stop: Option<oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
}

/// How a test reads an API error.
pub(crate) trait ReplyExt {
    fn assert_error(&self, status: u16, code: &str);
}

impl ReplyExt for Reply {
    /// Asserts an API error of the given status and code.
    #[track_caller]
    fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(self.body["error"], code, "{}", self.text);
        assert!(
            self.body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "error without a message: {}",
            self.text
        );
        assert_eq!(self.header("content-type"), Some("application/json"));
    }
}

/// The app on SQLite with default settings.
#[allow(dead_code)] // for test modules that need no PostgreSQL variant
pub(crate) async fn spawn_app() -> TestApp {
    spawn_on(Backend::Sqlite, |_| {}).await
}

/// The app on a database of its own on `backend`.
pub(crate) async fn spawn_on(backend: Backend, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let (db_url, pg_database) = match backend {
        Backend::Sqlite => (
            format!("sqlite://{}", dir.path().join("sessiond.db").display()),
            None,
        ),
        Backend::Postgres => {
            let (url, name) = fresh_postgres_database().await;
            (url, Some(name))
        }
    };
    spawn_at(backend, db_url, pg_database, dir, tweak).await
}

/// The app on an existing database (several apps may share one).
pub(crate) async fn spawn_at(
    backend: Backend,
    db_url: String,
    pg_database: Option<String>,
    dir: tempfile::TempDir,
    tweak: impl FnOnce(&mut Settings),
) -> TestApp {
    let mut settings = Settings {
        listen: "127.0.0.1:0".into(),
        database_url: db_url.clone(),
        jwt_secret: Some(SECRET.into()),
        admin_password: Some(ADMIN_PASSWORD.into()),
        ..Settings::default()
    };
    tweak(&mut settings);
    // Users in the app's own table: no first administrator, no password
    // login.
    let app_users = settings.source.resolve().is_ok_and(|s| !s.password_login());
    let app = Application::build(settings).await.expect("app builds");
    let addr = app.addr();
    let ops_addr = app.ops_addr();
    let ctx = Arc::clone(app.ctx());
    let (stop, stopped) = oneshot::channel::<()>();
    let done = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    let mut t = TestApp {
        addr,
        ops_addr,
        backend,
        db_url,
        pg_database,
        ctx,
        admin_token: String::new(),
        stop: Some(stop),
        done: Some(done),
        _dir: dir,
    };
    if !app_users {
        t.admin_token = t.login_ok(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    }
    t
}

impl TestApp {
    /// Sends one request on a fresh connection and reads the whole answer.
    pub(crate) async fn raw(&self, request: &[u8]) -> Reply {
        http::exchange(self.addr, request, Duration::from_secs(20))
            .await
            .expect("a complete answer within 20 s")
    }

    pub(crate) async fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Reply {
        let request = http::Request {
            method,
            path,
            token,
            body,
        };
        self.raw(&request.bytes(&self.addr.to_string(), Connection::Close))
            .await
    }

    pub(crate) async fn login(&self, email: &str, password: &str) -> Reply {
        let body = json!({"email": email, "password": password}).to_string();
        self.request("POST", "/api/auth/login", None, Some(&body))
            .await
    }

    pub(crate) async fn login_ok(&self, email: &str, password: &str) -> String {
        let r = self.login(email, password).await;
        assert_eq!(r.status, 200, "login: {}", r.text);
        r.body["token"].as_str().expect("token").to_string()
    }

    pub(crate) async fn session(&self, token: &str) -> Reply {
        self.request("GET", "/api/auth/session", Some(token), None)
            .await
    }

    pub(crate) async fn refresh(&self, token: &str, force: bool) -> Reply {
        let body = json!({ "force": force }).to_string();
        self.request(
            "POST",
            "/api/auth/refresh-session",
            Some(token),
            Some(&body),
        )
        .await
    }

    /// Creates a user as admin; returns its id.
    pub(crate) async fn create_user(&self, email: &str, password: &str, role: &str) -> i64 {
        let body = json!({"email": email, "password": password, "role": role}).to_string();
        let r = self
            .request(
                "POST",
                "/api/admin/users",
                Some(&self.admin_token),
                Some(&body),
            )
            .await;
        assert_eq!(r.status, 201, "create user: {}", r.text);
        r.body["id"].as_i64().expect("id")
    }

    /// Creates a user and logs in as it: `(id, token)`.
    pub(crate) async fn user_with_token(&self, email: &str, role: &str) -> (i64, String) {
        let id = self.create_user(email, "password-123", role).await;
        let token = self.login_ok(email, "password-123").await;
        (id, token)
    }

    pub(crate) async fn admin(&self, method: &str, path: &str, body: Option<&str>) -> Reply {
        self.request(method, path, Some(&self.admin_token), body)
            .await
    }

    pub(crate) async fn set_role(&self, id: i64, role: &str) -> Reply {
        let body = json!({ "role": role }).to_string();
        self.admin("PUT", &format!("/api/admin/users/{id}/role"), Some(&body))
            .await
    }

    /// Stops the app the way SIGTERM does and waits for it.
    pub(crate) async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(d) = self.done.take() {
            d.await.expect("app task").expect("app stops cleanly");
        }
        if let Some(name) = self.pg_database.take() {
            drop_postgres_database(&name).await;
        }
    }

    /// Runs one SQL statement on a connection of its own, outside the
    /// service, as a person in psql or sqlite3 would.
    pub(crate) async fn outside_sql(&self, sql: &str) {
        outside_sql(self.backend, &self.db_url, sql).await;
    }
}

/// Runs one SQL statement on a connection of its own to `db_url`, outside
/// the service, as a person in psql or sqlite3 would.
pub(crate) async fn outside_sql(backend: Backend, db_url: &str, sql: &str) {
    use sqlx::Connection;
    match backend {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(db_url)
                .await
                .expect("opens the database file");
            sqlx::query(sql).execute(&mut c).await.expect("runs");
        }
        Backend::Postgres => {
            let mut c = sessiond_testkit::postgres_db::connect_sessiond(db_url)
                .await
                .expect("connects");
            sqlx::query(sql).execute(&mut c).await.expect("runs");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// Sends one request to `addr` (`host:port`), for servers outside this
/// process: the status and the JSON body (`Null` when it is not JSON), or
/// `(0, Null)` when the server cannot be reached or does not answer within
/// 20 s.
pub(crate) async fn call(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, Value) {
    let request = http::Request {
        method,
        path,
        token,
        body,
    };
    match http::send(addr, request, Duration::from_secs(20)).await {
        Ok(reply) => (reply.status, reply.body),
        Err(_) => (0, Value::Null),
    }
}

/// base64url without padding, for hand-made tokens.
pub(crate) fn b64url(data: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// Runs each named `async fn(Backend)` as a test on SQLite and, when a
/// PostgreSQL server is given, on PostgreSQL (else reported as ignored).
#[macro_export]
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                #[cfg_attr(
                    not(pg_tests),
                    ignore = "set SESSIOND_TEST_POSTGRES_URL to run the PostgreSQL tests"
                )]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Postgres).await
                }
            )*
        }
    };
}

impl TestApp {
    /// Sends bytes and returns whatever comes back (possibly nothing).
    pub(crate) async fn raw_lenient(&self, request: &[u8]) -> Vec<u8> {
        let mut stream = TcpStream::connect(self.addr).await.expect("connects");
        let _ = stream.write_all(request).await;
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut buf)).await;
        buf
    }
}

/// Polls the session until it shows `role`; false if it did not within `within`.
pub(crate) async fn wait_for_role(
    app: &TestApp,
    token: &str,
    role: &str,
    within: Duration,
) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if app.session(token).await.body["user"]["role"] == role {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// `method path` to `to`, sent from the local address `local` (a loopback
/// address other than 127.0.0.1 stands for another host), with `extra`
/// headers: the whole answer.
pub(crate) async fn request_from(
    to: std::net::SocketAddr,
    local: std::net::IpAddr,
    request: http::Request<'_>,
    extra: &[(&str, &str)],
) -> Reply {
    let bytes = request.bytes(&to.to_string(), Connection::Close);
    let head_end = bytes
        .windows(2)
        .position(|w| w == b"\r\n")
        .expect("a request line")
        + 2;
    let mut sent = bytes[..head_end].to_vec();
    for (name, value) in extra {
        sent.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    sent.extend_from_slice(&bytes[head_end..]);
    let exchange = async {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(std::net::SocketAddr::new(local, 0))?;
        let mut stream = socket.connect(to).await?;
        stream.write_all(&sent).await?;
        let mut buf = Vec::new();
        stream.read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    let buf = tokio::time::timeout(Duration::from_secs(20), exchange)
        .await
        .expect("an answer within 20 s")
        .expect("an answer");
    Reply::parse(&buf).expect("an HTTP answer")
}

/// The audit trail once `done` holds for it, polling (entries of logins and
/// refusals are written by tasks of their own); panics after 10 s.
pub(crate) async fn audit_when(
    app: &TestApp,
    done: impl Fn(&[sessiond::store::AuditEntry]) -> bool,
) -> Vec<sessiond::store::AuditEntry> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let trail = app.ctx.db.audit_since(0).await.expect("reads the trail");
        if done(&trail) {
            return trail;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the audit trail never got there: {trail:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether `program` runs here (`program version_arg` exits 0). CI
/// installs every tool a test needs, so there its absence fails the test;
/// elsewhere the test is skipped with a message (to stderr directly: the
/// harness would swallow `eprintln!`), never silently.
pub(crate) fn tool_present(program: &str, version_arg: &str, what: &str, install: &str) -> bool {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let present = Command::new(program)
        .arg(version_arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !present {
        assert!(
            std::env::var_os("CI").is_none(),
            "{program} not installed, and CI must run {what} ({install})"
        );
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: {program} not installed; {what} did not run ({install})"
        );
    }
    present
}
