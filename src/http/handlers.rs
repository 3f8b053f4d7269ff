//! The operations handlers: performance, metrics, health, readiness and
//! the dashboard. The session routes are in [`super::sessions`], the admin
//! routes in [`super::admin`].

use std::sync::Arc;
use std::time::Duration;

use warp::http::StatusCode;
use warp::reply::Response;
use warp::Reply;

use super::error::ApiError;
use super::models::*;
use super::reply::{json, Answer};
use super::Ctx;

#[utoipa::path(
    get,
    path = "/api/perf",
    tag = "ops",
    responses((status = 200, description = "Cache performance and advice.", body = PerfJson))
)]
pub async fn perf(ctx: Arc<Ctx>) -> Answer {
    Ok(json(StatusCode::OK, &perf_json(&ctx)))
}

/// Everything `/api/perf` and the dashboard show.
pub fn perf_json(ctx: &Ctx) -> PerfJson {
    crate::perf::snapshot(
        ctx.telemetry.perf(),
        &ctx.router,
        ctx.db.postgres().is_some(),
    )
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "ops",
    responses((status = 200, description = "Prometheus text exposition.", body = String, content_type = "text/plain"))
)]
pub async fn metrics(ctx: Arc<Ctx>) -> Answer {
    let mut reply = warp::reply::with_header(
        ctx.telemetry.render(),
        "content-type",
        "text/plain; version=0.0.4; charset=utf-8",
    )
    .into_response();
    *reply.status_mut() = StatusCode::OK;
    Ok(reply)
}

#[utoipa::path(
    get,
    path = "/healthz",
    tag = "ops",
    responses((status = 200, description = "The process is alive.", body = super::openapi::Health))
)]
pub async fn healthz() -> Answer {
    // The same bytes `json` would write, without building them each time.
    let mut reply = Response::new(warp::hyper::Body::from(&b"{\"status\":\"ok\"}"[..]));
    reply.headers_mut().insert(
        warp::http::header::CONTENT_TYPE,
        warp::http::HeaderValue::from_static("application/json"),
    );
    Ok(reply)
}

#[utoipa::path(
    get,
    path = "/readyz",
    tag = "ops",
    responses(
        (status = 200, description = "The node can answer correctly: the database answers, the cluster (if any) is joined, the freshness lease was granted once (held now, or lost: every lookup then reads through to the database) and the node is not leaving.", body = super::openapi::Ready),
        (status = 503, response = super::openapi::Unavailable),
    )
)]
pub async fn readyz(ctx: Arc<Ctx>, front: super::Front) -> Answer {
    // Shutting down: still answering, but no new traffic please.
    if ctx.drain.leaving() {
        return Err(ApiError::Unavailable(
            "leaving: this node is shutting down".into(),
        ));
    }
    let cluster = match &ctx.cluster {
        None => "alone",
        Some(c) if c.joined() => "joined",
        Some(_) => {
            return Err(ApiError::Unavailable(
                "this node has not joined its cluster yet".into(),
            ))
        }
    };
    // Readiness is about answering correctly, not about the cache
    // (docs/freshness.md, "Readiness"): a node that lost its lease reads
    // every lookup through to the database, and stays ready while the
    // database answers. Only a node that has never held its lease (just
    // started, or not yet admitted by the database) is kept out.
    let lease = match ctx.router.lease() {
        None => "off",
        Some(_) if ctx.router.serves_from_cache() => "held",
        Some(l) if l.ever_held() => "lost",
        Some(_) => {
            return Err(ApiError::Unavailable(
                "this node has not been granted its first freshness lease yet".into(),
            ))
        }
    };
    match tokio::time::timeout(Duration::from_secs(2), ctx.db.ping()).await {
        Ok(Ok(())) => {
            let mut ready = serde_json::json!({
                "status": "ready",
                "database": "ok",
                "cluster": cluster,
                "lease": lease,
            });
            // The membership is operations' business: not told on an API
            // listener that has an operations listener beside it.
            if front != super::Front::Api {
                ready["members"] = ctx
                    .router
                    .members()
                    .iter()
                    .map(|m| m.to_string())
                    .collect::<Vec<_>>()
                    .into();
            }
            Ok(json(StatusCode::OK, &ready))
        }
        Ok(Err(e)) => Err(ApiError::db(e)),
        Err(_) => Err(ApiError::Unavailable(
            "the database did not answer within 2 s".into(),
        )),
    }
}

#[utoipa::path(
    get,
    path = "/",
    tag = "ops",
    responses((status = 200, description = "The live dashboard page.", body = String, content_type = "text/html"))
)]
pub async fn dashboard() -> Answer {
    Ok(warp::reply::html(super::page::DASHBOARD).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn healthz_answers_what_json_would() {
        let ours = match healthz().await {
            Ok(r) => r,
            Err(e) => panic!("healthz failed: {e:?}"),
        };
        let theirs = json(StatusCode::OK, &serde_json::json!({"status": "ok"}));
        assert_eq!(ours.status(), theirs.status());
        assert_eq!(ours.headers(), theirs.headers());
        let body = |r: Response| warp::hyper::body::to_bytes(r.into_body());
        assert_eq!(
            body(ours).await.expect("a body"),
            body(theirs).await.expect("a body")
        );
    }
}
