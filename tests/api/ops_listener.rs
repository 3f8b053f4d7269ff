//! `--ops-listen`: the operations routes (`/metrics`, `/api/perf`, the
//! dashboard, `/readyz` with the members) on a listener of their own, and
//! not on the API's.

use std::net::SocketAddr;
use std::time::Duration;

use sessiond_testkit::http::{self, Reply};

use crate::helpers::*;

async fn get(addr: SocketAddr, path: &str) -> Reply {
    let request = format!("GET {path} HTTP/1.1\r\nhost: sessiond\r\nconnection: close\r\n\r\n");
    http::exchange(addr, request.as_bytes(), Duration::from_secs(10))
        .await
        .expect("an answer")
}

#[tokio::test]
async fn operations_routes_move_to_the_ops_listener() {
    let app = spawn_on(Backend::Sqlite, |s| {
        s.ops_listen = Some("127.0.0.1:0".into());
    })
    .await;
    let ops = app.ops_addr.expect("an operations listener");
    assert_ne!(ops, app.addr);

    // The API listener: no metrics, perf or dashboard; probes still answer,
    // readiness without the members.
    for path in ["/metrics", "/api/perf", "/"] {
        get(app.addr, path).await.assert_error(404, "not_found");
    }
    assert_eq!(get(app.addr, "/healthz").await.status, 200);
    let ready = get(app.addr, "/readyz").await;
    assert_eq!(ready.status, 200, "{}", ready.text);
    assert!(ready.body.get("members").is_none(), "{}", ready.text);
    assert_eq!(app.session(&app.admin_token).await.status, 200);

    // The operations listener: those, and nothing of the API.
    let metrics = get(ops, "/metrics").await;
    assert_eq!(metrics.status, 200);
    assert!(metrics.text.contains("sessiond_http_requests_total"));
    assert_eq!(get(ops, "/api/perf").await.status, 200);
    let page = get(ops, "/").await;
    assert_eq!(page.status, 200);
    assert!(page.text.contains("<html"), "{}", page.text);
    let ready = get(ops, "/readyz").await;
    assert_eq!(ready.status, 200, "{}", ready.text);
    assert_eq!(ready.body["members"], serde_json::json!(["local"]));
    assert_eq!(get(ops, "/healthz").await.status, 200);
    for path in ["/api/auth/session", "/openapi.json", "/api/admin/users/1"] {
        get(ops, path).await.assert_error(404, "not_found");
    }
    app.stop().await;
}

#[tokio::test]
async fn without_ops_listen_every_route_is_on_the_api_listener() {
    let app = spawn_app().await;
    assert!(app.ops_addr.is_none());
    for path in ["/metrics", "/api/perf", "/", "/healthz"] {
        assert_eq!(get(app.addr, path).await.status, 200, "{path}");
    }
    let ready = get(app.addr, "/readyz").await;
    assert_eq!(ready.body["members"], serde_json::json!(["local"]));
    app.stop().await;
}
