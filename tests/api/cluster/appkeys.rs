//! An app key revoked with `sessiond appkey revoke` is refused by every
//! node of a real three-process PostgreSQL cluster from the next request,
//! and each refusal is audited.

use std::time::Duration;

use super::*;
use crate::appkeys::{appkey_cli, key_id};
use crate::helpers::Backend;

async fn mint(node: &Node, key: &str, user: i64) -> (u16, Value) {
    let body = json!({ "user_id": user }).to_string();
    request(node, "POST", "/api/sessions", Some(key), Some(&body)).await
}

#[tokio::test]
#[cfg_attr(
    not(pg_tests),
    ignore = "set SESSIOND_TEST_POSTGRES_URL to run the PostgreSQL tests"
)]
async fn a_revoked_app_key_is_refused_on_every_node_from_the_next_request() {
    let cluster = Cluster::new(Backend::Postgres).await;
    let n1 = cluster.start("k1", free_port(), &[], COOKIE);
    let n2 = cluster.start("k2", free_port(), &[&n1], COOKIE);
    let n3 = cluster.start("k3", free_port(), &[&n1], COOKIE);
    for n in [&n1, &n2, &n3] {
        assert!(wait_members(n, &["k1", "k2", "k3"], Duration::from_secs(20)).await);
    }
    let ids = add_users(&cluster, 3).await;
    let key = appkey_cli(
        &cluster.db_url(),
        &["create", "--name", "web", "--scope", "mint,admin"],
    )
    .await;
    // Every node accepts the key, for minting and on an admin route.
    for (n, id) in [&n1, &n2, &n3].into_iter().zip(&ids) {
        let (status, v) = mint(n, &key, *id).await;
        assert_eq!(status, 200, "mint via {}: {v}", n.name);
        let token = v["token"].as_str().expect("token");
        let (status, v) = get(n, "/api/auth/session", Some(token)).await;
        assert_eq!((status, v["user"]["id"].as_i64()), (200, Some(*id)), "{v}");
        let (status, v) = get(n, &format!("/api/admin/users/{id}"), Some(&key)).await;
        assert_eq!(status, 200, "admin via {}: {v}", n.name);
    }

    appkey_cli(&cluster.db_url(), &["revoke", key_id(&key)]).await;
    // The very next request on each node: refused, no retry, no wait.
    for (n, id) in [&n1, &n2, &n3].into_iter().zip(&ids) {
        let (status, v) = mint(n, &key, *id).await;
        assert_eq!(
            (status, v["error"].as_str()),
            (401, Some("invalid_token")),
            "via {}: {v}",
            n.name
        );
        let (status, v) = get(n, &format!("/api/admin/users/{id}"), Some(&key)).await;
        assert_eq!(
            (status, v["error"].as_str()),
            (401, Some("invalid_token")),
            "via {}: {v}",
            n.name
        );
    }

    // Six refusals audited (each node stores its own).
    let mut c = sessiond_testkit::postgres_db::connect_sessiond(&cluster.db_url())
        .await
        .expect("connects");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'appkey.invalid'
                AND detail = 'revoked key' AND actor_email = $1",
        )
        .bind(format!("appkey:{}", key_id(&key)))
        .fetch_one(&mut c)
        .await
        .expect("reads the audit trail");
        if n == 6 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{n} refusals audited, not 6"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(c);
    cluster.finish(vec![n1, n2, n3]).await;
}
