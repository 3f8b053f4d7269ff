//! Better Auth's own sessions on three real nodes
//! (`GET /api/better-auth/get-session`, docs/better-auth.md): every node
//! answers the cookie Better Auth set, whoever owns its user; a sign-out
//! made by Better Auth is seen on every node from the next request; the
//! sliding refresh, asked for on all three nodes at once, writes the row
//! once.

use std::time::{Duration, Instant};

use super::*;
use crate::better_auth::{ba, cli, node_present, psql, scalar, BA_SECRET};
use crate::helpers::Backend;

async fn get_session(node: &Node, cookie: &str) -> sessiond_testkit::http::Reply {
    let req = format!(
        "GET /api/better-auth/get-session HTTP/1.1\r\nHost: {}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n",
        node.http
    );
    sessiond_testkit::http::exchange(node.http.as_str(), req.as_bytes(), Duration::from_secs(20))
        .await
        .expect("an answer")
}

#[tokio::test]
#[cfg_attr(
    not(pg_tests),
    ignore = "set SESSIOND_TEST_POSTGRES_URL to run the PostgreSQL tests"
)]
async fn better_auth_sessions_on_three_nodes() {
    if !node_present() {
        return;
    }
    let cluster = Cluster::new(Backend::Postgres).await;
    let url = cluster.db_url();
    ba(&url, &["migrate"]);
    let emails: Vec<String> = (0..4).map(|i| format!("c{i}@app.test")).collect();
    for e in &emails {
        ba(&url, &["signup", e]);
    }
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
    let flags: Vec<String> = [
        "--source-preset",
        "better-auth",
        "--better-auth",
        "--better-auth-secret",
        BA_SECRET,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let n1 = cluster.start_with("b1", free_port(), &[], COOKIE, &flags, None);
    let n2 = cluster.start_with("b2", free_port(), &[&n1], COOKIE, &flags, None);
    let n3 = cluster.start_with("b3", free_port(), &[&n1], COOKIE, &flags, None);
    let nodes = vec![n1, n2, n3];
    for n in &nodes {
        assert!(wait_members(n, &["b1", "b2", "b3"], Duration::from_secs(20)).await);
    }
    let cookies: Vec<String> = emails.iter().map(|e| ba(&url, &["signin", e])).collect();
    for (e, c) in emails.iter().zip(&cookies) {
        for n in &nodes {
            let r = get_session(n, c).await;
            assert_eq!(r.status, 200, "{}: {}", n.name, r.text);
            assert_eq!(r.body["user"]["email"], e.as_str());
        }
    }

    // Better Auth's signOut, seen on every node.
    ba(&url, &["signout", &cookies[0]]);
    let since = Instant::now();
    for n in &nodes {
        loop {
            let r = get_session(n, &cookies[0]).await;
            if r.status == 401 && r.body["error"] == "session_revoked" {
                break;
            }
            assert!(
                since.elapsed() < Duration::from_secs(5),
                "{}: {} {}",
                n.name,
                r.status,
                r.text
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    eprintln!("signOut seen on every node after {:?}", since.elapsed());

    // The sliding refresh asked for on three nodes at once: one write.
    let token = get_session(&nodes[0], &cookies[1]).await.body["session"]["token"]
        .as_str()
        .expect("token")
        .to_string();
    psql(
        &url,
        "CREATE TABLE refresh_writes (token text);
         CREATE FUNCTION count_refresh() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN INSERT INTO refresh_writes VALUES (NEW.token); RETURN NULL; END; $$;
         CREATE TRIGGER count_refresh AFTER UPDATE ON session
         FOR EACH ROW EXECUTE FUNCTION count_refresh();",
    )
    .await;
    psql(
        &url,
        &format!(
            "UPDATE session SET \"expiresAt\" = now() + interval '5 days' WHERE token = '{token}'"
        ),
    )
    .await;
    psql(&url, "DELETE FROM refresh_writes").await;
    // Every node has dropped the old rows (the UPDATE's change) before
    // the burst: each answers the shortened expiry.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut burst = Vec::new();
    for _ in 0..10 {
        for n in &nodes {
            burst.push(get_session(n, &cookies[1]));
        }
    }
    let answers = futures_util::future::join_all(burst).await;
    let mut set = 0;
    for r in &answers {
        assert_eq!(r.status, 200, "{}", r.text);
        if r.header("set-cookie").is_some() {
            set += 1;
        }
    }
    assert!(set >= 1, "the refresh set the cookie again");
    let writes = scalar(&url, "SELECT count(*)::text FROM refresh_writes").await;
    assert_eq!(
        writes,
        "1",
        "one refresh write for {} requests",
        answers.len()
    );
    let days: f64 = scalar(
        &url,
        &format!("SELECT (extract(epoch FROM \"expiresAt\" - now()) / 86400)::text FROM session WHERE token = '{token}'"),
    )
    .await
    .parse()
    .unwrap_or(0.0);
    assert!(days > 6.9, "{days}");
    cluster.finish(nodes).await;
}
