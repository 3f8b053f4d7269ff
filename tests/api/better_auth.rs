//! Better Auth's own sessions resolved by sessiond
//! (`GET /api/better-auth/get-session`), against the real Better Auth
//! (its migration, sign-up, sign-in, sign-out, revokeSession, admin
//! setRole and banUser under node from `tests/fixtures/adopt`) on
//! PostgreSQL: the cookie Better Auth set is answered with Better Auth's
//! own `getSession` body; a tampered one, an expired session, a deleted
//! user are refused; every Better Auth write and a psql DELETE is seen
//! from the next request; the sliding refresh writes once; bearer tokens.

use std::process::Command as Process;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;
use sqlx::Connection;

use sessiond::app::Application;
use sessiond::config::Settings;
use sessiond::source::{Preset, SourceArgs};
use sessiond_testkit::http::{self, Reply};

use crate::helpers::{drop_postgres_database, fresh_postgres_database, SECRET};

const BIN: &str = env!("CARGO_BIN_EXE_sessiond");
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/adopt");
/// The fixture app's `secret` (tests/fixtures/adopt/better-auth.mjs).
pub(crate) const BA_SECRET: &str = "fixture-secret-0123456789abcdef-0123456789";

pub(crate) fn node_present() -> bool {
    let what = "the Better Auth session tests with the real Better Auth";
    crate::helpers::tool_present("node", "--version", what, "apt-get install nodejs")
        && crate::helpers::tool_present("npm", "--version", what, "apt-get install npm")
}

fn fixtures_ready() {
    static READY: OnceLock<()> = OnceLock::new();
    READY.get_or_init(|| {
        if std::path::Path::new(FIXTURES).join("node_modules").is_dir() {
            return;
        }
        let done = Process::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(FIXTURES)
            .status()
            .expect("npm runs");
        assert!(done.success(), "npm ci in {FIXTURES} failed");
    });
}

/// Better Auth's own API, under node.
pub(crate) fn ba(url: &str, args: &[&str]) -> String {
    fixtures_ready();
    let out = Process::new("node")
        .arg("better-auth.mjs")
        .args(args)
        .env("DATABASE_URL", url)
        .current_dir(FIXTURES)
        .output()
        .expect("node runs");
    assert!(
        out.status.success(),
        "node better-auth.mjs {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub(crate) fn cli(url: &str, args: &[&str]) -> (bool, String) {
    let out = Process::new(BIN)
        .args(args)
        .env("DATABASE_URL", url)
        .env("RUST_LOG", "warn")
        .output()
        .expect("sessiond runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn source(secret: Option<&str>) -> SourceArgs {
    let mut s = SourceArgs {
        source_preset: Some(Preset::BetterAuth),
        ..Default::default()
    };
    s.better_auth.enabled = true;
    s.better_auth.better_auth_secret = secret.map(str::to_string);
    s
}

struct Node {
    addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Node {
    async fn start(url: &str, tweak: impl FnOnce(&mut Settings)) -> Node {
        let mut settings = Settings {
            listen: "127.0.0.1:0".into(),
            database_url: url.to_string(),
            jwt_secret: Some(SECRET.into()),
            source: source(Some(BA_SECRET)),
            ..Settings::default()
        };
        tweak(&mut settings);
        let app = Application::build(settings).await.expect("app builds");
        let addr = app.addr();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let done = tokio::spawn(app.run_until_stopped(async {
            let _ = stopped.await;
        }));
        Node {
            addr,
            stop: Some(stop),
            done: Some(done),
        }
    }

    async fn get(&self, headers: &[(&str, &str)]) -> Reply {
        let mut req = format!(
            "GET /api/better-auth/get-session HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.addr
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        http::exchange(self.addr, req.as_bytes(), Duration::from_secs(20))
            .await
            .expect("an answer")
    }

    async fn cookie(&self, cookie: &str) -> Reply {
        self.get(&[("Cookie", cookie)]).await
    }

    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(d) = self.done.take() {
            let _ = d.await;
        }
    }
}

/// A database with Better Auth's schema (its own migration), an admin and
/// two users, and sessiond's capture installed.
async fn better_auth_database() -> (String, String) {
    let (url, name) = fresh_postgres_database().await;
    ba(&url, &["migrate"]);
    ba(&url, &["signup", "boss@app.test"]);
    ba(&url, &["signup", "a@app.test"]);
    ba(&url, &["signup", "b@app.test"]);
    psql(
        &url,
        "UPDATE \"user\" SET role = 'admin' WHERE email = 'boss@app.test'",
    )
    .await;
    let (ok, out) = cli(
        &url,
        &[
            "source",
            "install",
            "--source-preset",
            "better-auth",
            "--better-auth",
        ],
    );
    assert!(ok, "source install: {out}");
    (url, name)
}

pub(crate) async fn psql(url: &str, sql: &str) {
    let mut c = sqlx::PgConnection::connect(url).await.expect("connects");
    sqlx::raw_sql(sql).execute(&mut c).await.expect("runs");
}

pub(crate) async fn scalar(url: &str, sql: &str) -> String {
    let mut c = sqlx::PgConnection::connect(url).await.expect("connects");
    sqlx::query_scalar::<_, String>(sql)
        .fetch_one(&mut c)
        .await
        .expect("reads")
}

/// Polls until `node` answers `want` (a status and an error code or the
/// user's role) for `cookie`; NOTIFY makes it a matter of milliseconds.
async fn until(node: &Node, cookie: &str, check: impl Fn(&Reply) -> bool) -> Reply {
    let start = std::time::Instant::now();
    loop {
        let r = node.cookie(cookie).await;
        if check(&r) {
            return r;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "not seen within 5 s: {} {}",
            r.status,
            r.text
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn revoked(r: &Reply) -> bool {
    r.status == 401 && r.body["error"] == "session_revoked"
}

macro_rules! pg_test {
    ($name:ident, $body:block) => {
        #[tokio::test]
        #[cfg_attr(
            not(pg_tests),
            ignore = "set SESSIOND_TEST_POSTGRES_URL to run the PostgreSQL tests"
        )]
        async fn $name() {
            if !node_present() {
                return;
            }
            $body
        }
    };
}

pg_test!(
    a_better_auth_cookie_is_answered_as_better_auth_answers_it,
    {
        let (url, name) = better_auth_database().await;
        let node = Node::start(&url, |_| {}).await;
        let cookie = ba(&url, &["signin", "a@app.test"]);
        assert!(cookie.starts_with("better-auth.session_token="), "{cookie}");
        let r = node.cookie(&cookie).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.header("cache-control"), Some("no-store"));
        assert_eq!(
            r.header("set-cookie"),
            None,
            "a fresh session is not refreshed"
        );
        // Better Auth's own getSession, field for field.
        let theirs: Value =
            serde_json::from_str(&ba(&url, &["get-session", &cookie])).expect("json");
        assert_eq!(
            r.body, theirs,
            "sessiond's answer differs from Better Auth's"
        );
        assert_eq!(r.body["user"]["email"], "a@app.test");
        assert_eq!(r.body["user"]["role"], "user");
        assert!(r.body["session"]["expiresAt"]
            .as_str()
            .is_some_and(|d| d.ends_with('Z') && d.len() == 24));

        // A tampered value, a made-up signature, no credential at all.
        let (cname, value) = cookie.split_once('=').expect("name=value");
        let mut tampered = value.to_string();
        tampered.replace_range(0..1, if value.starts_with('A') { "B" } else { "A" });
        node.cookie(&format!("{cname}={tampered}"))
            .await
            .assert_error_code(401, "invalid_token");
        node.cookie("better-auth.session_token=abc.def")
            .await
            .assert_error_code(401, "invalid_token");
        node.get(&[]).await.assert_error_code(401, "invalid_token");
        // The __Secure- name (an app on HTTPS) is the same session.
        let r = node.cookie(&format!("__Secure-{cookie}")).await;
        assert_eq!(r.status, 200, "{}", r.text);

        // Bearer: the signed value, URL-encoded or not, and the bare token.
        let token = r.body["session"]["token"]
            .as_str()
            .expect("token")
            .to_string();
        let bearer = format!("Bearer {value}");
        assert_eq!(node.get(&[("Authorization", &bearer)]).await.status, 200);
        let decoded = value
            .replace("%2B", "+")
            .replace("%2F", "/")
            .replace("%3D", "=");
        let bearer = format!("Bearer {decoded}");
        assert_eq!(node.get(&[("Authorization", &bearer)]).await.status, 200);
        let bare = format!("Bearer {token}");
        assert_eq!(node.get(&[("Authorization", &bare)]).await.status, 200);
        let forged = format!(
            "Bearer {token}.{}",
            &decoded[token.len() + 1..].replace('A', "B")
        );
        if forged != bearer {
            node.get(&[("Authorization", &forged)])
                .await
                .assert_error_code(401, "invalid_token");
        }

        // Expired (Better Auth's rule: expiresAt < now) and a deleted user.
        psql(
        &url,
        &format!("UPDATE session SET \"expiresAt\" = now() - interval '1 second' WHERE token = '{token}'"),
    )
    .await;
        until(&node, &cookie, revoked).await;
        let other = ba(&url, &["signin", "b@app.test"]);
        assert_eq!(node.cookie(&other).await.status, 200);
        psql(&url, "DELETE FROM \"user\" WHERE email = 'b@app.test'").await;
        until(&node, &other, revoked).await;
        node.stop().await;
        drop_postgres_database(&name).await;
    }
);

pg_test!(
    better_auth_writes_and_psql_are_seen_from_the_next_request,
    {
        let (url, name) = better_auth_database().await;
        let node = Node::start(&url, |_| {}).await;
        let id = scalar(&url, "SELECT id FROM \"user\" WHERE email = 'a@app.test'").await;

        // signOut
        let c1 = ba(&url, &["signin", "a@app.test"]);
        assert_eq!(node.cookie(&c1).await.status, 200);
        ba(&url, &["signout", &c1]);
        until(&node, &c1, revoked).await;

        // revokeSession (of another session of the same user)
        let c2 = ba(&url, &["signin", "a@app.test"]);
        let c3 = ba(&url, &["signin", "a@app.test"]);
        let t3 = node.cookie(&c3).await.body["session"]["token"]
            .as_str()
            .expect("token")
            .to_string();
        assert_eq!(node.cookie(&c2).await.status, 200);
        ba(&url, &["revoke-session", &c2, &t3]);
        until(&node, &c3, revoked).await;
        assert_eq!(node.cookie(&c2).await.status, 200, "the other one stays");

        // A psql DELETE of the row.
        psql(
            &url,
            &format!("DELETE FROM session WHERE \"userId\" = '{id}'"),
        )
        .await;
        until(&node, &c2, revoked).await;

        // setRole (admin plugin), then banUser (which also deletes sessions).
        let c4 = ba(&url, &["signin", "a@app.test"]);
        assert_eq!(node.cookie(&c4).await.body["user"]["role"], "user");
        ba(&url, &["set-role", "boss@app.test", &id, "editor"]);
        until(&node, &c4, |r| {
            r.status == 200 && r.body["user"]["role"] == "editor"
        })
        .await;
        ba(&url, &["ban", "boss@app.test", &id]);
        until(&node, &c4, revoked).await;
        // A ban by hand, sessions kept: refused all the same.
        ba(&url, &["unban", "boss@app.test", &id]);
        let c5 = ba(&url, &["signin", "a@app.test"]);
        assert_eq!(node.cookie(&c5).await.status, 200);
        psql(
            &url,
            &format!("UPDATE \"user\" SET banned = true WHERE id = '{id}'"),
        )
        .await;
        until(&node, &c5, revoked).await;
        node.stop().await;
        drop_postgres_database(&name).await;
    }
);

pg_test!(answers_come_from_memory_and_invalidate_confirms_a_write, {
    let (url, name) = better_auth_database().await;
    let node = Node::start(&url, |_| {}).await;
    let id = scalar(&url, "SELECT id FROM \"user\" WHERE email = 'a@app.test'").await;
    let cookie = ba(&url, &["signin", "a@app.test"]);
    assert_eq!(node.cookie(&cookie).await.status, 200);
    // A write the triggers do not see: the cache goes on answering it...
    psql(
        &url,
        "ALTER TABLE session DISABLE TRIGGER sessiond_capture_session;
         DELETE FROM session;
         ALTER TABLE session ENABLE TRIGGER sessiond_capture_session;",
    )
    .await;
    for _ in 0..5 {
        assert_eq!(
            node.cookie(&cookie).await.status,
            200,
            "answered from memory"
        );
    }
    // ...until the app confirms its write with an admin app key, by
    // Better Auth's text id: answered only once every holder applied it.
    let key =
        crate::appkeys::appkey_cli(&url, &["create", "--name", "ba", "--scope", "admin"]).await;
    let path = format!("/api/admin/users/{id}/invalidate");
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {key}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        node.addr
    );
    let r = http::exchange(node.addr, req.as_bytes(), Duration::from_secs(20))
        .await
        .expect("an answer");
    assert!(r.status < 300, "invalidate: {} {}", r.status, r.text);
    assert!(
        revoked(&node.cookie(&cookie).await),
        "the next request sees it"
    );
    node.stop().await;
    drop_postgres_database(&name).await;
});

pg_test!(
    a_session_made_after_an_unban_is_answered_before_the_change_arrives,
    {
        let (url, name) = better_auth_database().await;
        let node = Node::start(&url, |_| {}).await;
        let id = scalar(&url, "SELECT id FROM \"user\" WHERE email = 'a@app.test'").await;
        let c1 = ba(&url, &["signin", "a@app.test"]);
        assert_eq!(node.cookie(&c1).await.status, 200);
        // Banned by hand, sessions kept: the node holds the banned record.
        psql(
            &url,
            &format!("UPDATE \"user\" SET banned = true WHERE id = '{id}'"),
        )
        .await;
        until(&node, &c1, revoked).await;
        // Unbanned, and signed in again, with neither change reaching the node
        // (as when both land before the notification does).
        psql(
            &url,
            "ALTER TABLE \"user\" DISABLE TRIGGER sessiond_capture;
         ALTER TABLE session DISABLE TRIGGER sessiond_capture_session;",
        )
        .await;
        psql(
            &url,
            &format!("UPDATE \"user\" SET banned = false WHERE id = '{id}'"),
        )
        .await;
        let c2 = ba(&url, &["signin", "a@app.test"]);
        psql(
            &url,
            "ALTER TABLE \"user\" ENABLE TRIGGER sessiond_capture;
         ALTER TABLE session ENABLE TRIGGER sessiond_capture_session;",
        )
        .await;
        // The new session is not among the rows the banned record holds: it
        // was made after that read, so it is answered from a fresh one.
        let r = node.cookie(&c2).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["user"]["banned"], false);
        node.stop().await;
        drop_postgres_database(&name).await;
    }
);

pg_test!(
    the_sliding_refresh_writes_the_row_once_and_sets_the_cookie,
    {
        let (url, name) = better_auth_database().await;
        let node = Node::start(&url, |_| {}).await;
        let cookie = ba(&url, &["signin", "a@app.test"]);
        let token = node.cookie(&cookie).await.body["session"]["token"]
            .as_str()
            .expect("token")
            .to_string();
        // As if issued 2 days ago: expiresAt - 7d + 1d <= now.
        psql(
            &url,
            &format!(
                "UPDATE session SET \"expiresAt\" = now() + interval '5 days',
                                \"updatedAt\" = now() - interval '2 days' WHERE token = '{token}'"
            ),
        )
        .await;
        let r = until(&node, &cookie, |r| {
            r.status == 200 && r.header("set-cookie").is_some()
        })
        .await;
        let set = r.header("set-cookie").unwrap_or_default().to_string();
        let (name_value, _) = set.split_once(';').unwrap_or_default();
        assert_eq!(name_value, cookie, "the same signed cookie is set again");
        assert!(
            set.ends_with("; Max-Age=604800; Path=/; HttpOnly; SameSite=Lax"),
            "{set}"
        );
        let stored = scalar(
        &url,
        &format!(
            "SELECT to_char(\"expiresAt\" AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') FROM session WHERE token = '{token}'"
        ),
    )
    .await;
        assert_eq!(r.body["session"]["expiresAt"], stored.as_str());
        let days: f64 = scalar(
        &url,
        &format!("SELECT (extract(epoch FROM \"expiresAt\" - now()) / 86400)::text FROM session WHERE token = '{token}'"),
    )
    .await
    .parse()
    .unwrap_or(0.0);
        assert!(days > 6.9, "expiresAt is now + 7 days: {days}");
        // Written once: the next requests (from memory or not) set no cookie
        // and leave the row as it is.
        for _ in 0..20 {
            let r = node.cookie(&cookie).await;
            assert_eq!(r.status, 200, "{}", r.text);
            assert_eq!(r.header("set-cookie"), None);
            assert_eq!(r.body["session"]["expiresAt"], stored.as_str());
        }
        // The __Secure- cookie is set again Secure.
        psql(
        &url,
        &format!("UPDATE session SET \"expiresAt\" = now() + interval '5 days' WHERE token = '{token}'"),
    )
    .await;
        let secure = format!("__Secure-{cookie}");
        let r = until(&node, &secure, |r| r.header("set-cookie").is_some()).await;
        assert!(
            r.header("set-cookie")
                .is_some_and(|c| c.starts_with(&secure) && c.contains("; Secure;")),
            "{:?}",
            r.header("set-cookie")
        );
        node.stop().await;
        drop_postgres_database(&name).await;
    }
);

pg_test!(misconfigurations_are_refused_at_start, {
    let (url, name) = better_auth_database().await;
    let refused = |tweak: Box<dyn FnOnce(&mut Settings)>| {
        let url = url.clone();
        async move {
            let mut settings = Settings {
                listen: "127.0.0.1:0".into(),
                database_url: url,
                jwt_secret: Some(SECRET.into()),
                source: source(Some(BA_SECRET)),
                ..Settings::default()
            };
            tweak(&mut settings);
            match Application::build(settings).await {
                Ok(_) => panic!("accepted"),
                Err(e) => format!("{e:#}"),
            }
        }
    };
    let e = refused(Box::new(|s| s.source = source(None))).await;
    assert!(e.contains("needs the app's Better Auth secret"), "{e}");
    let e = refused(Box::new(|s| s.source = source(Some("too-short")))).await;
    assert!(e.contains("at least 32"), "{e}");
    assert!(!e.contains("too-short"), "the secret is never shown: {e}");
    let e = refused(Box::new(|s| {
        s.source.better_auth.better_auth_session_table = Some("sessions".into())
    }))
    .await;
    assert!(e.contains("\"public\".\"sessions\" does not exist"), "{e}");
    let e = refused(Box::new(|s| s.source.source_preset = Some(Preset::Authjs))).await;
    assert!(e.contains("only served with the better-auth preset"), "{e}");
    // The user table's triggers alone (an install without [better_auth]).
    let (ok, out) = cli(
        &url,
        &["source", "install", "--source-preset", "better-auth"],
    );
    assert!(ok, "{out}");
    let e = refused(Box::new(|_| {})).await;
    assert!(
        e.contains("not installed on Better Auth's session table"),
        "{e}"
    );
    drop_postgres_database(&name).await;
});

#[test]
fn dry_run_prints_the_session_table_trigger_and_uninstall_drops_it() {
    let (ok, out) = cli(
        "postgres://nobody@127.0.0.1:1/none",
        &[
            "source",
            "install",
            "--dry-run",
            "--source-preset",
            "better-auth",
            "--better-auth",
        ],
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("CREATE TRIGGER sessiond_capture_session\nAFTER INSERT OR UPDATE OR DELETE ON \"public\".\"session\""),
        "{out}"
    );
    assert!(
        out.contains("sessiond.source_changed(OLD.\"userId\"::text, false)"),
        "{out}"
    );
    let (ok, out) = cli(
        "postgres://nobody@127.0.0.1:1/none",
        &["source", "uninstall", "--dry-run"],
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("DROP FUNCTION IF EXISTS sessiond.source_capture_session()"),
        "{out}"
    );
}

trait Code {
    fn assert_error_code(&self, status: u16, code: &str);
}

impl Code for Reply {
    #[track_caller]
    fn assert_error_code(&self, status: u16, code: &str) {
        assert_eq!(
            (self.status, self.body["error"].as_str()),
            (status, Some(code)),
            "{}",
            self.text
        );
    }
}
