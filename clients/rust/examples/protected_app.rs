//! A warp app whose routes are protected by sessiond.
//!
//! ```sh
//! cargo run -- serve                                      # sessiond on 127.0.0.1:8080
//! cargo run -p sessiond-client --example protected_app    # this app on 127.0.0.1:3001
//! curl -s localhost:3001/me -H "authorization: Bearer $TOKEN"
//! curl -s localhost:3001/admin -H "authorization: Bearer $TOKEN"
//! ```
//!
//! `SESSIOND_URL` (default `http://127.0.0.1:8080`) names sessiond and
//! `APP_LISTEN` (default `127.0.0.1:3001`) this app's address. Demote the
//! user or deactivate them in sessiond and the very next request here sees it.

use std::net::SocketAddr;

use sessiond_client::{self as client, Session, SessiondClient};
use warp::Filter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let sessiond_url =
        std::env::var("SESSIOND_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let listen: SocketAddr = std::env::var("APP_LISTEN")
        .unwrap_or_else(|_| "127.0.0.1:3001".into())
        .parse()?;
    let sessiond = SessiondClient::new(&sessiond_url)?;

    // Any signed-in user: who they are, as of this request.
    let me = warp::path!("me")
        .and(warp::get())
        .and(client::session_filter(sessiond.clone()))
        .map(|s: Session| {
            warp::reply::json(&serde_json::json!({
                "id": s.user.id,
                "email": s.user.email,
                "role": s.user.role,
                "served_from_cache": s.cache.hit,
            }))
        });
    // Admins only: a demoted admin is refused on the very next request.
    let admin = warp::path!("admin")
        .and(warp::get())
        .and(client::require_role(sessiond, &["admin"]))
        .map(|s: Session| warp::reply::json(&serde_json::json!({ "hello": s.user.email })));
    let public = warp::path::end().map(|| "public page: try /me and /admin with a bearer token\n");

    let routes = public.or(me).or(admin).recover(client::recover_all);
    let (addr, server) = warp::serve(routes).try_bind_with_graceful_shutdown(listen, async {
        let _ = tokio::signal::ctrl_c().await;
    })?;
    println!("protected_app listening on http://{addr} (sessiond at {sessiond_url})");
    server.await;
    Ok(())
}
