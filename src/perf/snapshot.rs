//! The `/api/perf` answer: totals since start, the windows, the advice and
//! this node's place in the cluster, in one JSON document the dashboard
//! draws from.

use std::time::Duration;

use serde::Serialize;
use sessiond_actors::Router;
use utoipa::ToSchema;

use super::{recommend, Counters, Quantiles, Recommendation, SeriesPoint, Setup, WindowStats};

#[derive(Serialize, ToSchema)]
#[schema(as = Latency)]
pub struct LatencyJson {
    pub hit: Quantiles,
    pub miss: Quantiles,
}

// The window, series and advice parts are documented as plain objects.
#[derive(Serialize, ToSchema)]
#[schema(as = Perf)]
pub struct PerfJson {
    pub uptime_s: u64,
    pub requests: u64,
    pub hits: u64,
    pub misses: u64,
    pub hit_rate: f64,
    pub db_queries: u64,
    pub latency_ms: LatencyJson,
    pub session_actors: u64,
    pub invalidations: u64,
    pub node: String,
    pub members: Vec<String>,
    /// Whether this node holds its freshness lease and so answers from its
    /// cache; `null` when leases are off (`--lease 0`).
    pub lease_valid: Option<bool>,
    #[schema(value_type = Vec<Object>)]
    pub recommendations: Vec<Recommendation>,
    /// Store queries per second since start.
    pub db_queries_per_s: f64,
    /// Sessions kept as compact snapshots instead of live actors.
    pub hibernated_sessions: u64,
    pub max_sessions: u64,
    pub cache_ttl_ms: u64,
    /// The last minute and the last five minutes.
    pub windows: PerfWindows,
    /// 10-second slots of the last five minutes, oldest first.
    #[schema(value_type = Vec<Object>)]
    pub series: Vec<SeriesPoint>,
}

#[derive(Serialize, ToSchema)]
pub struct PerfWindows {
    #[serde(rename = "1m")]
    #[schema(value_type = Object)]
    pub one_minute: WindowStats,
    #[serde(rename = "5m")]
    #[schema(value_type = Object)]
    pub five_minutes: WindowStats,
}

/// Everything `/api/perf` and the dashboard show. `push`: whether changes
/// made outside the service reach the cache (PostgreSQL), which the advice
/// takes into account.
pub fn snapshot(c: &Counters, router: &Router, push: bool) -> PerfJson {
    let hits = c.hits();
    let misses = c.misses();
    let lookups = hits + misses;
    let db_queries = c.db_queries();
    let uptime = c.uptime();
    let config = router.config();
    let live = router.session_actors();
    let windows = c.windows();
    let five = windows.window(Duration::from_secs(300));
    let setup = Setup {
        ttl: config.ttl,
        idle_timeout: config.idle_timeout,
        max_sessions: config.max_sessions,
        live_sessions: live,
        push,
    };
    PerfJson {
        uptime_s: uptime.as_secs(),
        requests: c.requests(),
        hits,
        misses,
        hit_rate: if lookups == 0 {
            0.0
        } else {
            hits as f64 / lookups as f64
        },
        db_queries,
        latency_ms: LatencyJson {
            hit: Quantiles::of(c.hit_latency()),
            miss: Quantiles::of(c.miss_latency()),
        },
        session_actors: live as u64,
        invalidations: c.invalidations(),
        node: router.node().to_string(),
        members: router.members().iter().map(|m| m.to_string()).collect(),
        lease_valid: router.lease().map(|_| router.serves_from_cache()),
        recommendations: recommend(&five, &setup),
        db_queries_per_s: (db_queries as f64 / uptime.as_secs_f64().max(1.0) * 1000.0).round()
            / 1000.0,
        hibernated_sessions: router.hibernated() as u64,
        max_sessions: config.max_sessions as u64,
        cache_ttl_ms: config.ttl.as_millis() as u64,
        windows: PerfWindows {
            one_minute: windows.window(Duration::from_secs(60)),
            five_minutes: five,
        },
        series: windows.series(),
    }
}
