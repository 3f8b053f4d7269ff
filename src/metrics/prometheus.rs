//! The Prometheus side: one recorder per application with every series
//! registered up front, so an update is a few ns with no label hashing on
//! the hot path, and two applications in one process, as in tests, never
//! mix their figures.

use metrics::{Counter, Gauge, Histogram, Key, Label, Metadata, Recorder};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use sessiond_actors::{FlushReason, InvalidationSource, MissReason};

use super::names::{self, Kind, DESCRIPTIONS, ROUTES, STATUSES};

/// Bucket bounds (seconds) for latencies: 25 µs to 5 s.
const LATENCY: [f64; 16] = [
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1.0, 5.0,
];
/// Bucket bounds (seconds) for the age of a served record: up to 30 min.
const AGE: [f64; 10] = [0.1, 1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0];

/// Pre-registered Prometheus handles.
pub(super) struct Handles {
    pub hits: Counter,
    pub misses: [Counter; 5],
    pub db_queries: Counter,
    pub db_errors: Counter,
    pub invalidations: [Counter; 4],
    pub lease_valid: Gauge,
    pub lease_lost: Counter,
    pub write_confirm: Histogram,
    pub flushes: [Counter; 4],
    pub passivations: [Counter; 2],
    pub hibernations: Counter,
    pub session_actors: Gauge,
    pub cluster_members: Gauge,
    pub forwarded: Counter,
    pub forward_failed: Counter,
    pub notify_resyncs: Counter,
    pub notify_listening: Gauge,
    pub forward_seconds: Histogram,
    pub resolve: [Histogram; 3],
    pub stale_served: Histogram,
    /// By route index ([`names::route_index`]), then status index
    /// ([`names::status_index`]).
    pub http_requests: Vec<Vec<Counter>>,
    /// By route index.
    pub http_other_status: Vec<Counter>,
    /// By route index.
    pub http_seconds: Vec<Histogram>,
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

fn recorder() -> PrometheusRecorder {
    let builder = PrometheusBuilder::new();
    let builder = builder
        .set_buckets(&LATENCY)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Full(names::STALE_SERVED.into()), &AGE));
    let recorder = match builder {
        Ok(b) => b.build_recorder(),
        // Only an empty bucket list is refused; ours are constants.
        Err(_) => PrometheusBuilder::new().build_recorder(),
    };
    // The recorder is this application's, not the process-wide one the
    // `describe_*!` macros reach, so it is described directly.
    for d in &DESCRIPTIONS {
        let (name, unit, help) = (d.name.into(), Some(d.unit), d.help.into());
        match d.kind {
            Kind::Counter => recorder.describe_counter(name, unit, help),
            Kind::Gauge => recorder.describe_gauge(name, unit, help),
            Kind::Histogram => recorder.describe_histogram(name, unit, help),
        }
    }
    recorder
}

/// A described recorder with every series registered: its handle for
/// rendering, and the handles the application updates.
pub(super) fn build() -> (PrometheusHandle, Handles) {
    let recorder = recorder();
    let meta = Metadata::new("sessiond", metrics::Level::INFO, None);
    let counter = |name, labels: &[(&'static str, &'static str)]| {
        recorder.register_counter(&key(name, labels), &meta)
    };
    let gauge = |name| recorder.register_gauge(&key(name, &[]), &meta);
    let histogram = |name, labels: &[(&'static str, &'static str)]| {
        recorder.register_histogram(&key(name, labels), &meta)
    };
    let mut http_requests = Vec::with_capacity(ROUTES.len());
    let mut http_other_status = Vec::with_capacity(ROUTES.len());
    let mut http_seconds = Vec::with_capacity(ROUTES.len());
    for route in ROUTES {
        http_requests.push(
            STATUSES
                .iter()
                .map(|&status| {
                    let s: &'static str = names::status_str(status);
                    counter(names::HTTP_REQUESTS, &[("route", route), ("status", s)])
                })
                .collect(),
        );
        http_other_status.push(counter(
            names::HTTP_REQUESTS,
            &[("route", route), ("status", "other")],
        ));
        http_seconds.push(histogram(names::HTTP_SECONDS, &[("route", route)]));
    }
    let h = Handles {
        hits: counter(names::CACHE_HITS, &[]),
        misses: MissReason::ALL.map(|r| counter(names::CACHE_MISSES, &[("reason", r.as_str())])),
        db_queries: counter(names::DB_QUERIES, &[]),
        db_errors: counter(names::DB_ERRORS, &[]),
        invalidations: InvalidationSource::ALL
            .map(|s| counter(names::INVALIDATIONS, &[("source", s.as_str())])),
        lease_valid: gauge(names::LEASE_VALID),
        lease_lost: counter(names::LEASE_LOST, &[]),
        write_confirm: histogram(names::WRITE_CONFIRM_SECONDS, &[]),
        flushes: FlushReason::ALL.map(|r| counter(names::FLUSHES, &[("reason", r.as_str())])),
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
    (recorder.handle(), h)
}
