//! The binary as a newcomer runs it: `serve` prints how to log in and
//! where the generated password is (a file only its owner reads; the
//! password itself never on the terminal), SIGTERM stops it cleanly;
//! `user add` creates a user that can log in.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_sessiond");

struct Server {
    child: Child,
    url: String,
    /// The generated password, read from the file the welcome names.
    password: Option<String>,
    /// Everything the welcome printed.
    printed: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `sessiond serve` in `dir` and reads its welcome lines.
fn serve(dir: &std::path::Path, extra_env: &[(&str, &str)]) -> Server {
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("SESSIOND_ADMIN_PASSWORD")
        .env_remove("SESSIOND_ADMIN_EMAIL")
        .env_remove("SESSIOND_ADMIN_PASSWORD_FILE")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("starts the binary");
    let stdout = child.stdout.take().expect("stdout");
    // Keep reading stdout for the server's whole life: a closed pipe would
    // make its next print fail.
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut url = None;
    let mut password = None;
    let mut printed = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let Ok(line) = rx.recv_timeout(Duration::from_secs(60)) else {
            break;
        };
        printed += &line;
        printed.push('\n');
        if let Some(rest) = line.strip_prefix("sessiond listening on ") {
            url = Some(rest.trim().to_string());
        }
        if let Some((_, path)) = line.split_once("its password is in the file ") {
            let path = dir.join(path.trim());
            let mode = std::os::unix::fs::PermissionsExt::mode(
                &std::fs::metadata(&path)
                    .expect("the password file exists")
                    .permissions(),
            );
            assert_eq!(mode & 0o777, 0o600, "readable by its owner alone");
            let p = std::fs::read_to_string(&path).expect("reads the password file");
            password = Some(p.trim().to_string());
        }
        if line.starts_with("log in") {
            break;
        }
    }
    Server {
        child,
        url: url.expect("prints where it listens"),
        password,
        printed,
    }
}

async fn post_json(url: &str, path: &str, body: &str) -> (u16, Value) {
    let addr = url.trim_start_matches("http://");
    crate::helpers::call(addr, "POST", path, None, Some(body)).await
}

fn wait_exit(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

#[tokio::test]
async fn serve_prints_a_working_login_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = serve(dir.path(), &[]);
    let password = server
        .password
        .clone()
        .expect("names the file holding the generated password");
    assert!(
        !server.printed.contains(&password),
        "the password itself is never printed: {}",
        server.printed
    );
    let body = format!(r#"{{"email":"admin@localhost","password":"{password}"}}"#);
    let (status, reply) = post_json(&server.url, "/api/auth/login", &body).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["user"]["role"], "admin");
    assert!(
        dir.path().join("sessiond.db").exists(),
        "default SQLite file created"
    );

    let pid = server.child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status();
    assert!(killed.is_ok_and(|s| s.success()));
    let status =
        wait_exit(&mut server.child, Duration::from_secs(10)).expect("exits after SIGTERM");
    assert!(status.success(), "clean exit, got {status:?}");

    // A second start finds the users and the secret already there.
    let again = serve(dir.path(), &[]);
    assert!(again.password.is_none(), "no second administrator");
    let (status, _) = post_json(&again.url, "/api/auth/login", &body).await;
    assert_eq!(status, 200, "same password, same database");
}

/// A second SIGTERM while the node drains ends the drain at once: with
/// traffic that never stops, the first alone would keep it up for the whole
/// grace (60 s here).
#[tokio::test]
async fn a_second_sigterm_ends_the_drain_at_once() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;

    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = serve(dir.path(), &[("SESSIOND_SHUTDOWN_GRACE", "60s")]);
    let addr = server.url.trim_start_matches("http://").to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    let traffic = {
        let (stop, answered) = (Arc::clone(&stop), Arc::clone(&answered));
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if crate::helpers::call(&addr, "GET", "/api/auth/session", None, None)
                    .await
                    .0
                    == 401
                {
                    answered.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let pid = server.child.id().to_string();
    let term = || Command::new("kill").args(["-TERM", &pid]).status();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(term().is_ok_and(|s| s.success()));
    // Draining: still up, still answering.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = answered.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        server
            .child
            .try_wait()
            .expect("the child's state")
            .is_none(),
        "exited before the drain's traffic stopped"
    );
    assert!(
        answered.load(Ordering::Relaxed) > before,
        "a draining node answers what still arrives"
    );
    let second = Instant::now();
    assert!(term().is_ok_and(|s| s.success()));
    let mut status = None;
    while second.elapsed() < Duration::from_secs(10) {
        if let Some(s) = server.child.try_wait().expect("the child's state") {
            status = Some((s, second.elapsed()));
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let _ = traffic.await;
    let (status, took) = status.expect("exits within 10 s of the second SIGTERM (grace 60 s)");
    assert!(status.success(), "clean exit, got {status:?}");
    assert!(
        took < Duration::from_secs(5),
        "exit took {took:?} after the second SIGTERM"
    );
}

#[tokio::test]
async fn user_add_creates_a_user_who_can_log_in() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = format!("sqlite://{}", dir.path().join("u.db").display());
    let add = |email: &str| {
        Command::new(BIN)
            .args([
                "user",
                "add",
                "--email",
                email,
                "--password",
                "pass-word-1",
                "--role",
                "editor",
            ])
            .args(["--database-url", &db])
            .env("RUST_LOG", "warn")
            .output()
            .expect("runs")
    };
    let out = add("new@example.test");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("with role editor"));
    let dup = add("new@example.test");
    assert!(!dup.status.success());
    assert!(String::from_utf8_lossy(&dup.stderr).contains("already exists"));

    let bad = Command::new(BIN)
        .args(["serve", "--cache-ttl", "five", "--database-url", &db])
        .output()
        .expect("runs");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("cache-ttl"));

    let server = serve(
        dir.path(),
        &[
            ("DATABASE_URL", &db),
            ("SESSIOND_ADMIN_PASSWORD", "unused-password"),
        ],
    );
    assert!(server.password.is_none(), "the database already had a user");
    let (status, reply) = post_json(
        &server.url,
        "/api/auth/login",
        r#"{"email":"new@example.test","password":"pass-word-1"}"#,
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["user"]["role"], "editor");
}

/// `--admin-email` (or SESSIOND_ADMIN_EMAIL) names the first administrator;
/// `--admin-password-file` where its generated password goes.
#[tokio::test]
async fn the_first_administrators_email_and_password_file_are_configurable() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = serve(
        dir.path(),
        &[
            ("SESSIOND_ADMIN_EMAIL", "Root@Example.Test"),
            ("SESSIOND_ADMIN_PASSWORD_FILE", "secrets-admin"),
        ],
    );
    assert!(
        server.printed.contains("root@example.test"),
        "{}",
        server.printed
    );
    assert!(dir.path().join("secrets-admin").exists());
    let password = server.password.clone().expect("the generated password");
    let body = format!(r#"{{"email":"root@example.test","password":"{password}"}}"#);
    let (status, reply) = post_json(&server.url, "/api/auth/login", &body).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["user"]["role"], "admin");
    let old = r#"{"email":"admin@localhost","password":"whatever-it-is"}"#;
    assert_eq!(post_json(&server.url, "/api/auth/login", old).await.0, 401);
}
