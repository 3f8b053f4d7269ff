//! What `/api/perf` and the dashboard show: counters since start and over
//! sliding windows (the last minute, the last five), and the tuning advice
//! computed from them.
//!
//! - `counters`: what the metrics observer records here, beside Prometheus.
//! - `windows`: the 10-second slots of a 5-minute ring and their sums.
//! - `histogram`: the quantile estimator behind the latencies.
//! - `advice`: the rules that turn a window into recommendations.
//! - `snapshot`: the `/api/perf` document.
//!
//! Nothing here knows Prometheus: `metrics` feeds this module, never the
//! other way round.

mod advice;
mod counters;
mod histogram;
mod snapshot;
mod windows;

pub use advice::{
    recommend, Recommendation, Setup, LOW_HIT_RATE, MIN_LOOKUPS, SHORT_TTL, SLOW_MISS_P99_MS,
};
pub use counters::Counters;
use histogram::LatencyHistogram;
pub use snapshot::{snapshot, LatencyJson, PerfJson, PerfWindows};
pub use windows::{LatencyWindow, Quantiles, SeriesPoint, WindowStats};
