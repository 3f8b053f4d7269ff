//! Metrics: the one place that knows metric names and label sets, and the
//! single entry point every measured event goes through.
//!
//! - `names`: the names (the contract: `/metrics`), their HELP text and unit, the label values.
//! - `prometheus`: the recorder, its buckets and the pre-registered handles.
//! - `observer`: the actors crate's `Observer`, implemented by [`Telemetry`].
//!
//! Each event lands in Prometheus and, for `/api/perf`, in the
//! [`crate::perf::Counters`] this module owns; `perf` never calls back here.

pub mod names;
mod observer;
mod prometheus;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;

pub use names::{route_label, ROUTES};

use crate::perf::Counters;
use prometheus::Handles;

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
    perf: Counters,
    /// Prometheus counters cannot be read back; tests wait on this one.
    notify_resyncs: AtomicU64,
}

impl Telemetry {
    pub fn new() -> Arc<Telemetry> {
        let (prometheus, h) = prometheus::build();
        Arc::new(Telemetry {
            prometheus,
            h,
            perf: Counters::default(),
            notify_resyncs: AtomicU64::new(0),
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

    /// What `/api/perf` reads.
    pub fn perf(&self) -> &Counters {
        &self.perf
    }

    /// One HTTP request answered: the single chokepoint for HTTP metrics.
    pub fn http(&self, path: &str, status: u16, elapsed: Duration) {
        let route = names::route_index(path);
        self.perf.request();
        let counter = match names::status_index(status) {
            Some(s) => self.h.http_requests.get(route).and_then(|r| r.get(s)),
            None => self.h.http_other_status.get(route),
        };
        if let Some(c) = counter {
            c.increment(1);
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

    /// How many times the notification listener has reconnected.
    pub fn notify_resyncs(&self) -> u64 {
        self.notify_resyncs.load(Ordering::Relaxed)
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
                self.perf.resolved_hit(elapsed);
                0
            }
            Outcome::Miss => {
                self.perf.resolved_miss(elapsed);
                1
            }
            Outcome::Error => 2,
        };
        self.h.resolve[i].record(elapsed.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use sessiond_actors::{MissReason, Observer};

    use super::names::{Kind, DESCRIPTIONS};
    use super::*;

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

    #[test]
    fn every_exported_family_is_described() {
        let text = Telemetry::new().render();
        let families: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .collect();
        // Every series is registered up front, so all of them render.
        assert_eq!(families.len(), DESCRIPTIONS.len(), "{text}");
        for name in families {
            let d = DESCRIPTIONS.iter().find(|d| d.name == name);
            let Some(d) = d else {
                panic!("{name} has no description");
            };
            assert!(
                text.contains(&format!("# HELP {name} {}\n", d.help)),
                "{name}: HELP missing from {text}"
            );
            let kind = match d.kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
                Kind::Histogram => "histogram",
            };
            assert!(text.contains(&format!("# TYPE {name} {kind}\n")), "{name}");
        }
    }
}
