//! PostgreSQL only: changes made outside the service reach every node's
//! cache through LISTEN/NOTIFY; a lost listener resyncs; an outage is
//! survived. Reported as ignored unless SESSIOND_TEST_POSTGRES_URL is set.

use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::helpers::*;

/// Three apps on one database, each with its own cache and listener.
async fn three_nodes() -> Vec<TestApp> {
    let (url, name) = fresh_postgres_database().await;
    let mut apps = Vec::new();
    for i in 0..3 {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = (i == 0).then(|| name.clone());
        let app = spawn_at(Backend::Postgres, url.clone(), db, dir, |s| {
            s.node_name = format!("node{}", i + 1);
        })
        .await;
        apps.push(app);
    }
    apps
}

async fn stop_all(apps: Vec<TestApp>) {
    for app in apps.into_iter().rev() {
        app.stop().await;
    }
}

#[tokio::test]
#[cfg_attr(
    not(pg_tests),
    ignore = "set SESSIOND_TEST_POSTGRES_URL to run the PostgreSQL tests"
)]
async fn a_change_made_by_hand_reaches_every_node_within_200ms() {
    let apps = three_nodes().await;
    let (id, token) = apps[0].user_with_token("hand@example.test", "editor").await;
    // Every node caches the record (TTL 5 minutes).
    for app in &apps {
        assert_eq!(app.session(&token).await.body["user"]["role"], "editor");
        assert_eq!(app.session(&token).await.body["cache"]["hit"], true);
    }

    apps[0]
        .outside_sql(&format!(
            "UPDATE users SET role = 'auditor' WHERE id = {id}"
        ))
        .await;
    let changed = Instant::now();
    for app in &apps {
        assert!(
            wait_for_role(app, &token, "auditor", Duration::from_millis(200)).await,
            "role change not seen within 200 ms"
        );
    }
    let elapsed = changed.elapsed();
    assert!(
        elapsed < Duration::from_millis(400),
        "all three within {elapsed:?}"
    );

    apps[0]
        .outside_sql(&format!(
            "UPDATE users SET status = 'deactivated' WHERE id = {id}"
        ))
        .await;
    for app in &apps {
        let deadline = Instant::now() + Duration::from_millis(200);
        loop {
            let r = app.session(&token).await;
            if r.status == 401 {
                r.assert_error(401, "session_revoked");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "deactivation not seen within 200 ms"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    stop_all(apps).await;
}

#[tokio::test]
#[cfg_attr(
    not(pg_tests),
    ignore = "set SESSIOND_TEST_POSTGRES_URL to run the PostgreSQL tests"
)]
async fn a_killed_listener_resyncs_and_serves_nothing_stale_after() {
    let app = spawn_on(Backend::Postgres, |_| {}).await;
    let (id, token) = app.user_with_token("gap@example.test", "editor").await;
    assert_eq!(app.session(&token).await.body["user"]["role"], "editor");
    assert_eq!(app.session(&token).await.body["cache"]["hit"], true);
    let resyncs = || app.ctx.telemetry.notify_resyncs();
    assert_eq!(resyncs(), 0);

    // Kill the listening connection and change the role in the gap.
    app.outside_sql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
          WHERE datname = current_database() AND application_name = 'sessiond-listen'",
    )
    .await;
    app.outside_sql(&format!(
        "UPDATE users SET role = 'auditor' WHERE id = {id}"
    ))
    .await;

    let deadline = Instant::now() + Duration::from_secs(5);
    while resyncs() == 0 {
        assert!(Instant::now() < deadline, "the listener did not reconnect");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let r = app.session(&token).await;
    assert_eq!(
        r.body["user"]["role"], "auditor",
        "nothing stale after the resync"
    );
    let m = app.request("GET", "/metrics", None, None).await;
    assert!(
        m.text.contains("sessiond_notify_resyncs_total 1"),
        "resync counted"
    );

    // And the new connection delivers again.
    app.outside_sql(&format!("UPDATE users SET role = 'viewer' WHERE id = {id}"))
        .await;
    assert!(wait_for_role(&app, &token, "viewer", Duration::from_millis(500)).await);
    app.stop().await;
}

/// A TCP proxy the test can cut (every connection closed, new ones
/// refused) and restore.
struct Proxy {
    port: u16,
    cut: watch::Sender<bool>,
}

impl Proxy {
    async fn start(target: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let port = listener.local_addr().expect("addr").port();
        let (cut, cut_rx) = watch::channel(false);
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if *cut_rx.borrow() {
                    let _ = client.shutdown().await;
                    continue;
                }
                let mut rx = cut_rx.clone();
                let target = target.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = rx.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        Proxy { port, cut }
    }

    fn set_cut(&self, cut: bool) {
        let _ = self.cut.send(cut);
    }
}

fn host_port(url: &str) -> String {
    let after = url.split("://").nth(1).unwrap_or(url);
    let hostport = after.split('/').next().unwrap_or(after);
    let hostport = hostport.rsplit('@').next().unwrap_or(hostport);
    if hostport.contains(':') {
        hostport.to_string()
    } else {
        format!("{hostport}:5432")
    }
}

#[tokio::test]
#[cfg_attr(
    not(pg_tests),
    ignore = "set SESSIOND_TEST_POSTGRES_URL to run the PostgreSQL tests"
)]
async fn an_outage_serves_fresh_records_fails_misses_fast_and_recovers() {
    let (url, name) = fresh_postgres_database().await;
    let proxy = Proxy::start(host_port(&url)).await;
    let target = host_port(&url);
    let proxied = url.replacen(&target, &format!("127.0.0.1:{}", proxy.port), 1);
    let dir = tempfile::tempdir().expect("temp dir");
    let app = spawn_at(Backend::Postgres, proxied, Some(name), dir, |_| {}).await;
    let (_, cached) = app.user_with_token("warm@example.test", "editor").await;
    let (_, cold) = app.user_with_token("cold@example.test", "viewer").await;
    assert_eq!(app.session(&cached).await.status, 200);

    proxy.set_cut(true);
    // A record fresh within the TTL keeps being served.
    for _ in 0..3 {
        let r = app.session(&cached).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["cache"]["hit"], true);
    }
    // A miss answers 503 quickly, not a hang.
    let started = Instant::now();
    let r = app.session(&cold).await;
    let took = started.elapsed();
    r.assert_error(503, "unavailable");
    assert!(took < Duration::from_secs(2), "503 after {took:?}");
    let ready = app.request("GET", "/readyz", None, None).await;
    ready.assert_error(503, "unavailable");

    // The database comes back: the node recovers by itself.
    proxy.set_cut(false);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = app.session(&cold).await;
        if r.status == 200 {
            assert_eq!(r.body["user"]["role"], "viewer");
            break;
        }
        assert!(Instant::now() < deadline, "not recovered: {}", r.text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(app.request("GET", "/readyz", None, None).await.status, 200);
    assert_eq!(app.session(&cached).await.status, 200);
    app.stop().await;
}
