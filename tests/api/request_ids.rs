//! Request ids and JSON logs: every answer carries `X-Request-Id`; at
//! `--log-format json` every line the binary writes (stdout and stderr) is
//! one JSON object, and each line of a request carries that request's id;
//! only a trusted proxy chooses the id.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use sessiond_testkit::http::{self as raw, Request};

use crate::helpers::*;

const BIN: &str = env!("CARGO_BIN_EXE_sessiond");

fn generated(id: Option<&str>) -> bool {
    id.is_some_and(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// One request to a server outside this process: the whole answer.
async fn send(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Reply {
    raw::Client::default()
        .call(addr, method, path, token, body)
        .await
}

#[tokio::test]
async fn json_logs_parse_line_by_line_and_each_line_of_a_request_has_its_id() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (out, err) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let addr = format!("127.0.0.1:{port}");
    let db_url = format!("sqlite://{}", dir.path().join("j.db").display());
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", &addr, "--log-format", "json"])
        .env("DATABASE_URL", &db_url)
        .env("SESSIOND_JWT_SECRET", SECRET)
        .env("SESSIOND_ADMIN_PASSWORD", ADMIN_PASSWORD)
        // The default filter with the access log on (it is off by
        // default): a line for every request to find its id on.
        .env("RUST_LOG", "info,hyper=error")
        .stdout(Stdio::from(std::fs::File::create(&out).expect("a file")))
        .stderr(Stdio::from(std::fs::File::create(&err).expect("a file")))
        .spawn()
        .expect("starts");
    assert!(
        raw::wait_accepting(&addr, Duration::from_secs(10)).await,
        "the server did not start"
    );

    // A session's life cycle; every answer's id, with what it answered.
    let mut answers: Vec<(String, u16, Option<String>)> = Vec::new();
    let mut note = |what: &str, r: &Reply| {
        answers.push((
            what.to_string(),
            r.status,
            r.header("x-request-id").map(str::to_string),
        ));
    };
    let login = |email: &str, pw: &str| json!({"email": email, "password": pw}).to_string();
    let r = send(
        &addr,
        "POST",
        "/api/auth/login",
        None,
        Some(&login(ADMIN_EMAIL, ADMIN_PASSWORD)),
    )
    .await;
    note("admin login", &r);
    let admin = r.body["token"].as_str().expect("admin token").to_string();
    let body = json!({"email": "j@example.test", "password": "password-123", "role": "editor"})
        .to_string();
    let r = send(&addr, "POST", "/api/admin/users", Some(&admin), Some(&body)).await;
    note("create", &r);
    let id = r.body["id"].as_i64().expect("id");
    let r = send(
        &addr,
        "POST",
        "/api/auth/login",
        None,
        Some(&login("j@example.test", "password-123")),
    )
    .await;
    note("user login", &r);
    let user = r.body["token"].as_str().expect("user token").to_string();
    note(
        "session",
        &send(&addr, "GET", "/api/auth/session", Some(&user), None).await,
    );
    note(
        "refresh",
        &send(
            &addr,
            "POST",
            "/api/auth/refresh-session",
            Some(&user),
            Some(r#"{"force":true}"#),
        )
        .await,
    );
    let role = send(
        &addr,
        "PUT",
        &format!("/api/admin/users/{id}/role"),
        Some(&admin),
        Some(r#"{"role":"viewer"}"#),
    )
    .await;
    assert_eq!(role.status, 200, "{}", role.text);
    note("role change", &role);
    note(
        "bad request",
        &send(&addr, "POST", "/api/auth/login", None, Some("{not json")).await,
    );
    note(
        "wrong password",
        &send(
            &addr,
            "POST",
            "/api/auth/login",
            None,
            Some(&login("j@example.test", "wrong-password")),
        )
        .await,
    );
    note(
        "logout",
        &send(&addr, "POST", "/api/auth/logout", Some(&user), None).await,
    );
    note(
        "revoked",
        &send(&addr, "GET", "/api/auth/session", Some(&user), None).await,
    );
    note(
        "no route",
        &send(&addr, "GET", "/nowhere", None, None).await,
    );
    note("metrics", &send(&addr, "GET", "/metrics", None, None).await);

    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();

    // Every line of both streams is one JSON object with the common keys.
    let mut lines: Vec<Value> = Vec::new();
    for file in [&out, &err] {
        let text = std::fs::read_to_string(file).expect("reads the output");
        for line in text.lines() {
            let v: Value = serde_json::from_str(line).unwrap_or_else(|e| {
                panic!(
                    "a line that is not JSON ({e}) in {}: {line:?}",
                    file.display()
                )
            });
            for key in ["timestamp", "level", "target", "message"] {
                assert!(v[key].is_string(), "no {key} in {line}");
            }
            lines.push(v);
        }
    }
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["listen"] == format!("http://{addr}")),
        "no welcome line"
    );

    // Each answer's id is on exactly one access line, which describes it.
    let mut access: HashMap<&str, &Value> = HashMap::new();
    for l in lines.iter().filter(|l| l["target"] == "sessiond::access") {
        let id = l["request_id"]
            .as_str()
            .unwrap_or_else(|| panic!("an access line without an id: {l}"));
        assert!(access.insert(id, l).is_none(), "two access lines for {id}");
    }
    for (what, status, id) in &answers {
        let id = id
            .as_deref()
            .unwrap_or_else(|| panic!("{what}: no X-Request-Id"));
        assert!(generated(Some(id)), "{what}: {id}");
        let line = access
            .get(id)
            .unwrap_or_else(|| panic!("{what}: no access line for {id}"));
        assert_eq!(line["fields"]["status"], *status, "{what}: {line}");
    }
    assert_eq!(
        answers.len(),
        access.len(),
        "access lines for requests not sent"
    );

    // The chosen request: the role change. Its lines (the access line and
    // the audit event, written by the write's own task) all carry its id.
    let chosen = role.header("x-request-id").expect("an id");
    let of_role_change: Vec<&Value> = lines
        .iter()
        .filter(|l| {
            (l["target"] == "sessiond::audit" && l["fields"]["action"] == "user.role")
                || (l["target"] == "sessiond::access"
                    && l["fields"]["route"] == "/api/admin/users/{id}/role")
        })
        .collect();
    assert_eq!(of_role_change.len(), 2, "{of_role_change:?}");
    for l in &of_role_change {
        assert_eq!(l["request_id"], chosen, "{l}");
    }
    let audit = of_role_change
        .iter()
        .find(|l| l["target"] == "sessiond::audit")
        .expect("the audit line");
    assert_eq!(audit["fields"]["request_id"], chosen);
    assert_eq!(audit["fields"]["detail"], "role: editor -> viewer");
    // Every line that names a request id names one of ours.
    for l in &lines {
        if let Some(id) = l["request_id"].as_str() {
            assert!(access.contains_key(id), "an unknown request id: {l}");
        }
    }

    // The stored audit entry carries it too.
    let db = sessiond::store::Db::connect(&db_url, sessiond::clock::Clock::new())
        .await
        .expect("opens the database");
    let trail = db.audit_since(0).await.expect("reads the trail");
    let entry = trail
        .iter()
        .find(|e| e.action == "user.role")
        .expect("the entry");
    assert_eq!(entry.request_id.as_deref(), Some(chosen));
}

/// A request (method, path, token, body) and the status it answers.
type Case<'a> = (&'a str, &'a str, Option<&'a str>, Option<&'a str>, u16);

/// Every answer carries an id, whatever produced it: errors, rejections,
/// operations routes, the dashboard.
#[tokio::test]
async fn every_answer_carries_a_request_id() {
    let app = spawn_app().await;
    let big = format!("{{\"email\":\"{}\"}}", "a".repeat(70 * 1024));
    let cases: [Case; 11] = [
        ("GET", "/", None, None, 200),
        ("GET", "/healthz", None, None, 200),
        ("GET", "/metrics", None, None, 200),
        ("GET", "/api/perf", None, None, 200),
        ("GET", "/nowhere", None, None, 404),
        ("DELETE", "/api/auth/login", None, None, 405),
        ("POST", "/api/auth/login", None, Some("{"), 400),
        ("POST", "/api/auth/login", None, Some(big.as_str()), 413),
        ("GET", "/api/auth/session", None, None, 401),
        ("GET", "/api/auth/session", Some("x.y.z"), None, 401),
        (
            "GET",
            "/api/admin/users/1",
            Some(app.admin_token.as_str()),
            None,
            200,
        ),
    ];
    let mut seen = std::collections::HashSet::new();
    for (method, path, token, body, status) in cases {
        let r = app.request(method, path, token, body).await;
        assert_eq!(r.status, status, "{method} {path}: {}", r.text);
        let id = r.header("x-request-id");
        assert!(generated(id), "{method} {path}: {id:?}");
        assert!(
            seen.insert(id.map(str::to_string)),
            "{method} {path}: a repeated id"
        );
    }
    // 415: a body that is not declared JSON.
    let request = format!(
        "POST /api/auth/login HTTP/1.1\r\nhost: {}\r\ncontent-type: text/plain\r\n\
         content-length: 2\r\nconnection: close\r\n\r\n{{}}",
        app.addr
    );
    let r = app.raw(request.as_bytes()).await;
    assert_eq!(r.status, 415, "{}", r.text);
    assert!(generated(r.header("x-request-id")));
    app.stop().await;
}

/// A client's own X-Request-Id is not echoed (its lines could otherwise be
/// made to pass for another request's); a trusted proxy's is, when sane.
#[tokio::test]
async fn only_a_trusted_proxy_chooses_the_request_id() {
    let app = spawn_on(Backend::Sqlite, |s| {
        s.trusted_proxies = "127.0.0.1/32".parse().expect("a valid list");
    })
    .await;
    let health = Request {
        method: "GET",
        path: "/healthz",
        token: None,
        body: None,
    };
    let proxy = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let stranger = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let chosen = [("x-request-id", "chosen-by-caller")];
    let r = request_from(app.addr, stranger, health, &chosen).await;
    assert_eq!(r.status, 200);
    assert!(
        generated(r.header("x-request-id")),
        "{:?}",
        r.header("x-request-id")
    );
    let r = request_from(app.addr, proxy, health, &chosen).await;
    assert_eq!(r.header("x-request-id"), Some("chosen-by-caller"));
    let long = "x".repeat(129);
    for insane in [long.as_str(), "two words", "\"quoted\"\tand tab"] {
        let r = request_from(app.addr, proxy, health, &[("x-request-id", insane)]).await;
        assert!(
            generated(r.header("x-request-id")),
            "{insane:?}: {:?}",
            r.header("x-request-id")
        );
    }
    app.stop().await;
}
