//! The operations handlers: performance, metrics, health, readiness and
//! the dashboard. The session routes are in [`super::sessions`], the admin
//! routes in [`super::admin`].

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use warp::http::StatusCode;
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
    let t = &ctx.telemetry;
    let hits = t.hits.load(Ordering::Relaxed);
    let misses = t.misses.load(Ordering::Relaxed);
    let lookups = hits + misses;
    let db_queries = t.db_queries.load(Ordering::Relaxed);
    let uptime = t.uptime();
    let config = ctx.router.config();
    let live = ctx.router.session_actors();
    let five = t.windows.window(Duration::from_secs(300));
    let setup = crate::perf::Setup {
        ttl: config.ttl,
        idle_timeout: config.idle_timeout,
        max_sessions: config.max_sessions,
        live_sessions: live,
        push: ctx.db.postgres().is_some(),
    };
    PerfJson {
        uptime_s: uptime.as_secs(),
        requests: t.requests.load(Ordering::Relaxed),
        hits,
        misses,
        hit_rate: if lookups == 0 {
            0.0
        } else {
            hits as f64 / lookups as f64
        },
        db_queries,
        latency_ms: LatencyJson {
            hit: Quantiles {
                p50: t.hit_latency.quantile_ms(0.5),
                p99: t.hit_latency.quantile_ms(0.99),
            },
            miss: Quantiles {
                p50: t.miss_latency.quantile_ms(0.5),
                p99: t.miss_latency.quantile_ms(0.99),
            },
        },
        session_actors: live as u64,
        invalidations: t.invalidations.load(Ordering::Relaxed),
        node: ctx.router.node().to_string(),
        members: ctx.router.members().iter().map(|m| m.to_string()).collect(),
        recommendations: crate::perf::recommend(&five, &setup),
        db_queries_per_s: (db_queries as f64 / uptime.as_secs_f64().max(1.0) * 1000.0).round()
            / 1000.0,
        hibernated_sessions: ctx.router.hibernated() as u64,
        max_sessions: config.max_sessions as u64,
        cache_ttl_ms: config.ttl.as_millis() as u64,
        windows: PerfWindows {
            one_minute: t.windows.window(Duration::from_secs(60)),
            five_minutes: five,
        },
        series: t.windows.series(),
    }
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
    Ok(json(StatusCode::OK, &serde_json::json!({"status": "ok"})))
}

#[utoipa::path(
    get,
    path = "/readyz",
    tag = "ops",
    responses(
        (status = 200, description = "The database answers and the cluster (if any) is joined.", body = super::openapi::Ready),
        (status = 503, response = super::openapi::Unavailable),
    )
)]
pub async fn readyz(ctx: Arc<Ctx>) -> Answer {
    let cluster = match &ctx.cluster {
        None => "alone",
        Some(c) if c.joined() => "joined",
        Some(_) => {
            return Err(ApiError::Unavailable(
                "this node has not joined its cluster yet".into(),
            ))
        }
    };
    match tokio::time::timeout(Duration::from_secs(2), ctx.db.ping()).await {
        Ok(Ok(())) => Ok(json(
            StatusCode::OK,
            &serde_json::json!({
                "status": "ready",
                "database": "ok",
                "cluster": cluster,
                "members": ctx.router.members().iter().map(|m| m.to_string()).collect::<Vec<_>>(),
            }),
        )),
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
