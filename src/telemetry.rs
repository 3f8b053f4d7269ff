//! Metrics: the one place that knows metric names and label sets.
//!
//! Each application owns a Prometheus recorder and pre-registered handles
//! (a few ns per update, no label hashing on the hot path), so two
//! applications in one process, as in tests, never mix their figures. The
//! same events also feed the in-process counters behind `/api/perf`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Key, Label, Metadata, Recorder};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sessiond_actors::{InvalidationSource, MissReason, Observer};

use crate::perf::{Event, Latency, Windows};

/// Metric names (DESIGN §8).
pub mod names {
    pub const CACHE_HITS: &str = "sessiond_cache_hits_total";
    pub const CACHE_MISSES: &str = "sessiond_cache_misses_total";
    pub const DB_QUERIES: &str = "sessiond_db_queries_total";
    pub const DB_ERRORS: &str = "sessiond_db_errors_total";
    pub const RESOLVE_SECONDS: &str = "sessiond_resolve_seconds";
    pub const HTTP_REQUESTS: &str = "sessiond_http_requests_total";
    pub const HTTP_SECONDS: &str = "sessiond_http_request_seconds";
    pub const SESSION_ACTORS: &str = "sessiond_session_actors";
    pub const INVALIDATIONS: &str = "sessiond_invalidations_total";
    pub const PASSIVATIONS: &str = "sessiond_passivations_total";
    pub const HIBERNATIONS: &str = "sessiond_hibernations_total";
    pub const FORWARDED: &str = "sessiond_forwarded_total";
    pub const FORWARD_FAILED: &str = "sessiond_forward_failures_total";
    pub const FORWARD_SECONDS: &str = "sessiond_forward_seconds";
    pub const NOTIFY_RESYNCS: &str = "sessiond_notify_resyncs_total";
    pub const NOTIFY_LISTENING: &str = "sessiond_notify_listening";
    pub const CLUSTER_MEMBERS: &str = "sessiond_cluster_members";
    pub const STALE_SERVED: &str = "sessiond_stale_served_seconds";
}

/// Every route label; anything else is `other`. A fixed set keeps the
/// number of series bounded whatever paths clients send.
pub const ROUTES: [&str; 17] = [
    "/api/auth/login",
    "/api/auth/session",
    "/api/auth/refresh-session",
    "/api/auth/logout",
    "/api/admin/users",
    "/api/admin/users/{id}",
    "/api/admin/users/{id}/role",
    "/api/admin/users/{id}/deactivate",
    "/api/admin/users/{id}/activate",
    "/api/admin/users/{id}/invalidate",
    "/api/admin/users/{id}/revoke-sessions",
    "/api/perf",
    "/metrics",
    "/healthz",
    "/readyz",
    "/",
    "other",
];

const STATUSES: [u16; 13] = [
    200, 201, 202, 204, 400, 401, 403, 404, 405, 413, 429, 500, 503,
];

/// The route label of a request path.
pub fn route_label(path: &str) -> &'static str {
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    match parts.as_slice() {
        [] | [""] => "/",
        ["api", "auth", "login"] => ROUTES[0],
        ["api", "auth", "session"] => ROUTES[1],
        ["api", "auth", "refresh-session"] => ROUTES[2],
        ["api", "auth", "logout"] => ROUTES[3],
        ["api", "admin", "users"] => ROUTES[4],
        ["api", "admin", "users", _] => ROUTES[5],
        ["api", "admin", "users", _, "role"] => ROUTES[6],
        ["api", "admin", "users", _, "deactivate"] => ROUTES[7],
        ["api", "admin", "users", _, "activate"] => ROUTES[8],
        ["api", "admin", "users", _, "invalidate"] => ROUTES[9],
        ["api", "admin", "users", _, "revoke-sessions"] => ROUTES[10],
        ["api", "perf"] => ROUTES[11],
        ["metrics"] => ROUTES[12],
        ["healthz"] => ROUTES[13],
        ["readyz"] => ROUTES[14],
        _ => "other",
    }
}

/// A lock-free latency histogram for quantiles: logarithmic buckets, 20%
/// wide, from 1 µs to ~3 hours.
pub struct LatencyHistogram {
    buckets: Vec<AtomicU64>,
}

const BUCKETS: usize = 128;
const GROWTH: f64 = 1.2;

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl LatencyHistogram {
    fn index(d: Duration) -> usize {
        let us = d.as_secs_f64() * 1e6;
        if us <= 1.0 {
            return 0;
        }
        ((us.ln() / GROWTH.ln()).ceil() as usize).min(BUCKETS - 1)
    }

    pub fn record(&self, d: Duration) {
        self.buckets[Self::index(d)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    pub fn reset(&self) {
        for b in &self.buckets {
            b.store(0, Ordering::Relaxed);
        }
    }

    /// Adds `other`'s counts into this one.
    pub fn merge(&self, other: &LatencyHistogram) {
        for (a, b) in self.buckets.iter().zip(&other.buckets) {
            let n = b.load(Ordering::Relaxed);
            if n > 0 {
                a.fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    /// The `q` quantile in milliseconds (upper edge of its bucket); 0 when
    /// nothing was recorded.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return 0.0;
        }
        let rank = ((q * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let ms = GROWTH.powi(i as i32) / 1000.0;
                return (ms * 1000.0).round() / 1000.0;
            }
        }
        0.0
    }
}

/// Pre-registered Prometheus handles.
struct Handles {
    hits: Counter,
    misses: [Counter; 4],
    db_queries: Counter,
    db_errors: Counter,
    invalidations: [Counter; 3],
    passivations: [Counter; 2],
    hibernations: Counter,
    session_actors: Gauge,
    cluster_members: Gauge,
    forwarded: Counter,
    forward_failed: Counter,
    notify_resyncs: Counter,
    notify_listening: Gauge,
    forward_seconds: Histogram,
    resolve: [Histogram; 3],
    stale_served: Histogram,
    http_requests: HashMap<(&'static str, u16), Counter>,
    http_other_status: HashMap<&'static str, Counter>,
    http_seconds: HashMap<&'static str, Histogram>,
}

/// How a resolve ended, for `sessiond_resolve_seconds{outcome}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Hit,
    Miss,
    Error,
}

/// The application's telemetry: Prometheus handles plus `/api/perf` counters.
pub struct Telemetry {
    prometheus: PrometheusHandle,
    h: Handles,
    started: std::time::Instant,
    pub requests: AtomicU64,
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub db_queries: AtomicU64,
    pub invalidations: AtomicU64,
    pub session_actors: AtomicU64,
    pub notify_resyncs: AtomicU64,
    pub hit_latency: LatencyHistogram,
    pub miss_latency: LatencyHistogram,
    /// The last minutes, for `/api/perf` windows and the dashboard.
    pub windows: Windows,
}

fn key(name: &'static str, labels: &[(&'static str, &'static str)]) -> Key {
    Key::from_parts(
        name,
        labels
            .iter()
            .map(|(k, v)| Label::new(*k, *v))
            .collect::<Vec<_>>(),
    )
}

impl Telemetry {
    pub fn new() -> Arc<Telemetry> {
        const LATENCY: [f64; 16] = [
            0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
            0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
        ];
        const AGE: [f64; 10] = [0.1, 1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0];
        let builder = PrometheusBuilder::new();
        let builder = builder.set_buckets(&LATENCY).and_then(|b| {
            b.set_buckets_for_metric(Matcher::Full(names::STALE_SERVED.into()), &AGE)
        });
        let recorder = match builder {
            Ok(b) => b.build_recorder(),
            // Only an empty bucket list is refused; ours are constants.
            Err(_) => PrometheusBuilder::new().build_recorder(),
        };
        let meta = Metadata::new("sessiond", metrics::Level::INFO, None);
        let counter = |name, labels: &[(&'static str, &'static str)]| {
            recorder.register_counter(&key(name, labels), &meta)
        };
        let gauge = |name| recorder.register_gauge(&key(name, &[]), &meta);
        let histogram = |name, labels: &[(&'static str, &'static str)]| {
            recorder.register_histogram(&key(name, labels), &meta)
        };
        let mut http_requests = HashMap::new();
        let mut http_other_status = HashMap::new();
        let mut http_seconds = HashMap::new();
        for route in ROUTES {
            for status in STATUSES {
                let s: &'static str = status_str(status);
                http_requests.insert(
                    (route, status),
                    counter(names::HTTP_REQUESTS, &[("route", route), ("status", s)]),
                );
            }
            http_other_status.insert(
                route,
                counter(
                    names::HTTP_REQUESTS,
                    &[("route", route), ("status", "other")],
                ),
            );
            http_seconds.insert(route, histogram(names::HTTP_SECONDS, &[("route", route)]));
        }
        let h = Handles {
            hits: counter(names::CACHE_HITS, &[]),
            misses: MissReason::ALL
                .map(|r| counter(names::CACHE_MISSES, &[("reason", r.as_str())])),
            db_queries: counter(names::DB_QUERIES, &[]),
            db_errors: counter(names::DB_ERRORS, &[]),
            invalidations: InvalidationSource::ALL
                .map(|s| counter(names::INVALIDATIONS, &[("source", s.as_str())])),
            passivations: [
                counter(names::PASSIVATIONS, &[("cause", "idle")]),
                counter(names::PASSIVATIONS, &[("cause", "cap")]),
            ],
            hibernations: counter(names::HIBERNATIONS, &[]),
            session_actors: gauge(names::SESSION_ACTORS),
            cluster_members: gauge(names::CLUSTER_MEMBERS),
            forwarded: counter(names::FORWARDED, &[]),
            forward_failed: counter(names::FORWARD_FAILED, &[]),
            notify_resyncs: counter(names::NOTIFY_RESYNCS, &[]),
            notify_listening: gauge(names::NOTIFY_LISTENING),
            forward_seconds: histogram(names::FORWARD_SECONDS, &[]),
            resolve: [
                histogram(names::RESOLVE_SECONDS, &[("outcome", "hit")]),
                histogram(names::RESOLVE_SECONDS, &[("outcome", "miss")]),
                histogram(names::RESOLVE_SECONDS, &[("outcome", "error")]),
            ],
            stale_served: histogram(names::STALE_SERVED, &[]),
            http_requests,
            http_other_status,
            http_seconds,
        };
        h.cluster_members.set(1.0);
        Arc::new(Telemetry {
            prometheus: recorder.handle(),
            h,
            started: std::time::Instant::now(),
            requests: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            db_queries: AtomicU64::new(0),
            invalidations: AtomicU64::new(0),
            session_actors: AtomicU64::new(0),
            notify_resyncs: AtomicU64::new(0),
            hit_latency: LatencyHistogram::default(),
            miss_latency: LatencyHistogram::default(),
            windows: Windows::default(),
        })
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        self.prometheus.render()
    }

    /// Periodic housekeeping of the exporter (histogram draining).
    pub fn upkeep(&self) {
        self.prometheus.run_upkeep();
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// One HTTP request answered: the single chokepoint for HTTP metrics.
    pub fn http(&self, path: &str, status: u16, elapsed: Duration) {
        let route = route_label(path);
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.windows.count(Event::Request, 1);
        match self.h.http_requests.get(&(route, status)) {
            Some(c) => c.increment(1),
            None => {
                if let Some(c) = self.h.http_other_status.get(route) {
                    c.increment(1);
                }
            }
        }
        if let Some(h) = self.h.http_seconds.get(route) {
            h.record(elapsed.as_secs_f64());
        }
    }

    /// The notification listener reconnected and marked the cache stale.
    pub fn notify_resync(&self) {
        self.notify_resyncs.fetch_add(1, Ordering::Relaxed);
        self.h.notify_resyncs.increment(1);
    }

    pub fn notify_listening(&self, up: bool) {
        self.h.notify_listening.set(if up { 1.0 } else { 0.0 });
    }

    /// How long a lookup forwarded to its owner took (answered or not).
    pub fn forward_latency(&self, elapsed: Duration) {
        self.h.forward_seconds.record(elapsed.as_secs_f64());
    }

    /// The number of live members in this node's view.
    pub fn cluster_members(&self, n: usize) {
        self.h.cluster_members.set(n as f64);
    }

    /// How long a resolve took, by outcome.
    pub fn resolved(&self, outcome: Outcome, elapsed: Duration) {
        let i = match outcome {
            Outcome::Hit => {
                self.hit_latency.record(elapsed);
                self.windows.latency(Latency::Hit, elapsed);
                0
            }
            Outcome::Miss => {
                self.miss_latency.record(elapsed);
                self.windows.latency(Latency::Miss, elapsed);
                1
            }
            Outcome::Error => 2,
        };
        self.h.resolve[i].record(elapsed.as_secs_f64());
    }
}

fn status_str(status: u16) -> &'static str {
    match status {
        200 => "200",
        201 => "201",
        202 => "202",
        204 => "204",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        413 => "413",
        429 => "429",
        500 => "500",
        503 => "503",
        _ => "other",
    }
}

impl Observer for Telemetry {
    fn hit(&self, age: Duration) {
        self.hits.fetch_add(1, Ordering::Relaxed);
        self.windows.count(Event::Hit, 1);
        self.windows.latency(Latency::Age, age);
        self.h.hits.increment(1);
        self.h.stale_served.record(age.as_secs_f64());
    }

    fn miss(&self, reason: MissReason) {
        self.misses.fetch_add(1, Ordering::Relaxed);
        self.windows.count(Event::Miss, 1);
        if reason == MissReason::Cold {
            self.windows.count(Event::ColdMiss, 1);
        }
        let i = MissReason::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(0);
        self.h.misses[i].increment(1);
    }

    fn store_query(&self) {
        self.db_queries.fetch_add(1, Ordering::Relaxed);
        self.windows.count(Event::DbQuery, 1);
        self.h.db_queries.increment(1);
    }

    fn store_error(&self) {
        self.h.db_errors.increment(1);
    }

    fn invalidation(&self, source: InvalidationSource) {
        self.invalidations.fetch_add(1, Ordering::Relaxed);
        self.windows.count(Event::Invalidation, 1);
        let i = InvalidationSource::ALL
            .iter()
            .position(|s| *s == source)
            .unwrap_or(0);
        self.h.invalidations[i].increment(1);
    }

    fn session_actors(&self, live: usize) {
        self.session_actors.store(live as u64, Ordering::Relaxed);
        self.h.session_actors.set(live as f64);
    }

    fn passivated(&self, count: usize, at_cap: bool) {
        self.h.passivations[usize::from(at_cap)].increment(count as u64);
        let event = if at_cap {
            Event::CapEviction
        } else {
            Event::IdlePassivation
        };
        self.windows.count(event, count as u64);
    }

    fn hibernated(&self, count: usize) {
        self.h.hibernations.increment(count as u64);
    }

    fn forwarded(&self) {
        self.h.forwarded.increment(1);
    }

    fn forward_failed(&self) {
        self.h.forward_failed.increment(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_labels_are_templates() {
        assert_eq!(
            route_label("/api/admin/users/17/role"),
            "/api/admin/users/{id}/role"
        );
        assert_eq!(route_label("/api/admin/users/abc"), "/api/admin/users/{id}");
        assert_eq!(route_label("/"), "/");
        assert_eq!(route_label("/nope/x"), "other");
    }

    #[test]
    fn quantiles_track_the_data() {
        let h = LatencyHistogram::default();
        for _ in 0..99 {
            h.record(Duration::from_micros(100));
        }
        h.record(Duration::from_millis(50));
        let p50 = h.quantile_ms(0.5);
        assert!((0.09..0.13).contains(&p50), "p50 {p50}");
        let p100 = h.quantile_ms(1.0);
        assert!((45.0..65.0).contains(&p100), "max {p100}");
    }

    #[test]
    fn renders_prometheus_names() {
        let t = Telemetry::new();
        t.hit(Duration::from_secs(1));
        t.miss(MissReason::Forced);
        t.http("/api/auth/session", 200, Duration::from_millis(1));
        let text = t.render();
        assert!(text.contains("sessiond_cache_hits_total 1"), "{text}");
        assert!(text.contains("sessiond_cache_misses_total{reason=\"forced\"} 1"));
        assert!(text.contains(
            "sessiond_http_requests_total{route=\"/api/auth/session\",status=\"200\"} 1"
        ));
    }
}
