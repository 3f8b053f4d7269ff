//! Nodes with different `--lease` (a rolling change of the setting): a
//! node keeps a near copy of another owner's answer only once that
//! owner's lease, not its own, can no longer hide an invalidation the
//! owner has not applied.
//!
//! Three nodes on PostgreSQL: `w` takes the writes; `o` owns the user and
//! counts a lease four times the others'; `n` holds the user as a near
//! copy of `o`'s answer. `o` is cut from the database and from `w` alone
//! (a pair cut: `n` still reaches both), so the deletion reaches `n` at
//! once and `o` not at all, and `w` must wait out `o`'s long lease. If `n`
//! held copies off for its own short lease only, it would ask `o` again
//! meanwhile, keep `o`'s old answer, and serve it after the deletion was
//! acknowledged.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use sessiond_actors::sync::MutexExt;

use super::netns::{self, Lab, Link};
use super::{
    free_port, judge, ms, node_spec, pg_host_port, CachedUser, Change, Client, Findings, Relay,
    Sessiond, ADMIN_PASSWORD, LEASE, USER_PASSWORD,
};
use crate::helpers::{drop_postgres_database, Backend, SharedDb as Db};

/// The owner's lease: four times the others'.
const LONG_LEASE: Duration = Duration::from_secs(8);

/// A node in a namespace of its own, reaching the database through a relay
/// on its cuttable db link.
fn start_in_host(
    name: &str,
    host: &netns::Host,
    db: &Db,
    join: &str,
    extra: &[&str],
) -> (Sessiond, Relay) {
    let target: std::net::SocketAddr =
        std::net::ToSocketAddrs::to_socket_addrs(pg_host_port(&db.url))
            .ok()
            .and_then(|mut a| a.next())
            .expect("the PostgreSQL address resolves");
    let relay = Relay::start(host.db_root(), target).expect("relay starts");
    let url = db
        .url
        .replacen(pg_host_port(&db.url), &relay.addr().to_string(), 1);
    let mut args: Vec<String> = vec![
        "--listen".into(),
        format!("{}:8080", host.ctl_addr()),
        "--cluster-listen".into(),
        format!("{}:7400", host.peer_addr()),
        "--join".into(),
        join.into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let mut spec = node_spec(name, &url, args);
    spec.netns = Some(host.name().to_string());
    (
        Sessiond::start(spec).unwrap_or_else(|e| panic!("{e}")),
        relay,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(pg_tests),
    ignore = "set SESSIOND_TEST_POSTGRES_URL to run the PostgreSQL tests"
)]
async fn postgres_near_copy_holds_for_the_owners_longer_lease() {
    let test = "postgres_near_copy_holds_for_the_owners_longer_lease";
    if !netns::available_or_skip(test) {
        return;
    }
    let mut db = Db::new(Backend::Postgres).await;
    let lab = Lab::new().unwrap_or_else(|e| panic!("{e}"));
    let (o_host, n_host) = (
        lab.host().unwrap_or_else(|e| panic!("{e}")),
        lab.host().unwrap_or_else(|e| panic!("{e}")),
    );
    let w_cluster = format!("{}:{}", lab.root_addr(), free_port(lab.root_addr()));
    let mut w = Sessiond::start(node_spec(
        "w",
        &db.url,
        vec![
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--cluster-listen".into(),
            w_cluster.clone(),
        ],
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let long = format!("{}ms", LONG_LEASE.as_millis());
    let (mut o, _o_relay) = start_in_host("o", &o_host, &db, &w_cluster, &["--lease", &long]);
    let (mut n, _n_relay) = start_in_host("n", &n_host, &db, &w_cluster, &[]);
    let http = Client::default();
    for node in [&w, &o, &n] {
        assert!(
            node.wait_members(&http, &["n", "o", "w"], Duration::from_secs(20))
                .await,
            "{} sees {:?}",
            node.name(),
            node.members(&http).await
        );
    }
    let login = json!({"email": "admin@localhost", "password": ADMIN_PASSWORD}).to_string();
    let r = http
        .call(w.http(), "POST", "/api/auth/login", None, Some(&login))
        .await;
    assert_eq!(r.status, 200, "admin login: {}", r.body);
    let admin = r.body["token"].as_str().expect("token").to_string();

    // A user o owns, held on n as a near copy (and cached on o).
    let mut user = None;
    for i in 0..40 {
        let email = format!("m{i}@example.test");
        let body = json!({"email": email, "password": USER_PASSWORD, "role": "editor"}).to_string();
        let r = http
            .call(
                w.http(),
                "POST",
                "/api/admin/users",
                Some(&admin),
                Some(&body),
            )
            .await;
        assert_eq!(r.status, 201, "create user: {}", r.body);
        let id = r.body["id"].as_i64().expect("id");
        let login = json!({"email": email, "password": USER_PASSWORD}).to_string();
        let r = http
            .call(w.http(), "POST", "/api/auth/login", None, Some(&login))
            .await;
        assert_eq!(r.status, 200, "login: {}", r.body);
        let token = r.body["token"].as_str().expect("token").to_string();
        let first = http.get(n.http(), "/api/auth/session", Some(&token)).await;
        assert_eq!(first.status, 200, "{}", first.body);
        if first.body["cache"]["node"] == "o" {
            user = Some((id, token));
            break;
        }
    }
    let (id, token) = user.expect("a user owned by o among 40");
    // Near copies are held off for a while after the user's creation and
    // after n learns o's longer lease: ask until one is kept.
    let asked = Instant::now();
    let near = loop {
        let a = http.get(n.http(), "/api/auth/session", Some(&token)).await;
        assert_eq!(a.status, 200, "{}", a.body);
        if a.body["cache"]["near"] == true && a.body["cache"]["hit"] == true {
            break a;
        }
        assert!(
            asked.elapsed() < Duration::from_secs(30),
            "no near copy on n: {}",
            a.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let cached = CachedUser {
        id,
        token: token.clone(),
        version: near.body["cache"]["version"].as_i64().expect("version"),
        role: near.body["user"]["role"]
            .as_str()
            .unwrap_or_default()
            .into(),
    };

    // o keeps its lease (it cannot renew, nor hear of the deletion) while
    // n hears of it at once and keeps asking o.
    o_host.cut(Link::Db);
    lab.cut_pair(lab.root_addr(), o_host.peer_addr());
    let answers: Arc<std::sync::Mutex<Vec<(Instant, sessiond_testkit::http::Reply)>>> =
        Arc::default();
    let watcher = {
        let (http, addr, token, answers) = (
            http.clone(),
            n.http().to_string(),
            token.clone(),
            Arc::clone(&answers),
        );
        tokio::spawn(async move {
            loop {
                let sent = Instant::now();
                let a = http.get(&addr, "/api/auth/session", Some(&token)).await;
                answers.locked().push((sent, a));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let sent = Instant::now();
    let r = http
        .call(
            w.http(),
            "DELETE",
            &format!("/api/admin/users/{id}"),
            Some(&admin),
            None,
        )
        .await;
    let took = sent.elapsed();
    let acked = Instant::now();
    eprintln!("{test}: delete through w: {} after {}", r.status, ms(took));
    let mut findings = Findings::default();
    if r.status == 204 {
        // Sent after the acknowledgement, for two of the short leases.
        tokio::time::sleep(LEASE * 2).await;
    } else {
        findings.add(format!(
            "the deletion was not acknowledged: {} {}",
            r.status, r.body
        ));
    }
    watcher.abort();
    let after: Vec<_> = answers
        .locked()
        .iter()
        .filter(|(s, _)| *s > acked)
        .map(|(_, a)| a.clone())
        .collect();
    if r.status == 204 && after.is_empty() {
        findings.add("n answered nothing after the acknowledgement: nothing was checked");
    }
    for a in &after {
        findings.check("n, after the deletion", judge(&cached, &Change::Delete, a));
    }

    lab.heal_pairs();
    o_host.heal_all();
    n_host.heal_all();
    w.kill9();
    o.kill9();
    n.kill9();
    std::thread::sleep(Duration::from_millis(300));
    drop((w, o, n));
    if let Some(name) = db.pg_name.take() {
        drop_postgres_database(&name).await;
    }
    findings.assert_none(test);
}
