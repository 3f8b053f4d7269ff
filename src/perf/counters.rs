//! What the service records for `/api/perf`: totals since start, the
//! latency quantiles of hits and misses, and the sliding windows. The
//! metrics observer feeds these from the same events it counts for
//! Prometheus, whose counters cannot be read back.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::windows::{Event, Latency, Windows};
use super::LatencyHistogram;

pub struct Counters {
    started: Instant,
    requests: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    db_queries: AtomicU64,
    invalidations: AtomicU64,
    hit_latency: LatencyHistogram,
    miss_latency: LatencyHistogram,
    windows: Windows,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            started: Instant::now(),
            requests: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            db_queries: AtomicU64::new(0),
            invalidations: AtomicU64::new(0),
            hit_latency: LatencyHistogram::default(),
            miss_latency: LatencyHistogram::default(),
            windows: Windows::default(),
        }
    }
}

impl Counters {
    /// One HTTP request answered.
    pub fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.windows.count(Event::Request, 1);
    }

    /// A lookup served from the cache, with the age of the record served.
    pub fn hit(&self, age: Duration) {
        self.hits.fetch_add(1, Ordering::Relaxed);
        self.windows.count(Event::Hit, 1);
        self.windows.latency(Latency::Age, age);
    }

    /// A lookup that read the store; `cold` when no actor held the user.
    pub fn miss(&self, cold: bool) {
        self.misses.fetch_add(1, Ordering::Relaxed);
        self.windows.count(Event::Miss, 1);
        if cold {
            self.windows.count(Event::ColdMiss, 1);
        }
    }

    pub fn db_query(&self) {
        self.db_queries.fetch_add(1, Ordering::Relaxed);
        self.windows.count(Event::DbQuery, 1);
    }

    pub fn invalidation(&self) {
        self.invalidations.fetch_add(1, Ordering::Relaxed);
        self.windows.count(Event::Invalidation, 1);
    }

    /// Session actors stopped: for idleness, or to stay under the cap.
    pub fn passivated(&self, count: usize, at_cap: bool) {
        let event = if at_cap {
            Event::CapEviction
        } else {
            Event::IdlePassivation
        };
        self.windows.count(event, count as u64);
    }

    /// How long a resolve answered from the cache took.
    pub fn resolved_hit(&self, elapsed: Duration) {
        self.hit_latency.record(elapsed);
        self.windows.latency(Latency::Hit, elapsed);
    }

    /// How long a resolve that read the store took.
    pub fn resolved_miss(&self, elapsed: Duration) {
        self.miss_latency.record(elapsed);
        self.windows.latency(Latency::Miss, elapsed);
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }

    pub fn db_queries(&self) -> u64 {
        self.db_queries.load(Ordering::Relaxed)
    }

    pub fn invalidations(&self) -> u64 {
        self.invalidations.load(Ordering::Relaxed)
    }

    pub(super) fn hit_latency(&self) -> &LatencyHistogram {
        &self.hit_latency
    }

    pub(super) fn miss_latency(&self) -> &LatencyHistogram {
        &self.miss_latency
    }

    pub(super) fn windows(&self) -> &Windows {
        &self.windows
    }
}
