//! The quantile estimator behind `/api/perf`'s latencies. Prometheus keeps
//! histograms of its own; this one exists because the dashboard wants p50
//! and p99 per window without a query language.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sessiond_actors::stats::quantile_bucket;

/// A lock-free latency histogram for quantiles: logarithmic buckets, 20%
/// wide, from 1 µs to ~3 hours.
pub(crate) struct LatencyHistogram {
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

    pub(crate) fn record(&self, d: Duration) {
        self.buckets[Self::index(d)].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn reset(&self) {
        for b in &self.buckets {
            b.store(0, Ordering::Relaxed);
        }
    }

    /// Adds `other`'s counts into this one.
    pub(crate) fn merge(&self, other: &LatencyHistogram) {
        for (a, b) in self.buckets.iter().zip(&other.buckets) {
            let n = b.load(Ordering::Relaxed);
            if n > 0 {
                a.fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    /// The `q` quantile in milliseconds (upper edge of its bucket); 0 when
    /// nothing was recorded.
    pub(crate) fn quantile_ms(&self, q: f64) -> f64 {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let Some(i) = quantile_bucket(&counts, q) else {
            return 0.0;
        };
        let ms = GROWTH.powi(i as i32) / 1000.0;
        (ms * 1000.0).round() / 1000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
