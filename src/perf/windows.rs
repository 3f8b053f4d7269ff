//! The sliding windows: events land in 10-second slots of a 5-minute ring;
//! a window is the sum of its slots. Recording is a few relaxed atomic adds;
//! a slot is recycled by the first event of its new period (a concurrent
//! event may be lost then, which a monitoring figure can afford).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use utoipa::ToSchema;

use super::LatencyHistogram;

const SLOT: Duration = Duration::from_secs(10);
const SLOTS: usize = 30;

/// One kind of event counted per slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub(crate) enum Event {
    Request = 0,
    Hit,
    Miss,
    ColdMiss,
    DbQuery,
    Invalidation,
    IdlePassivation,
    CapEviction,
}
const EVENTS: usize = 8;

struct Slot {
    period: AtomicU64,
    counts: [AtomicU64; EVENTS],
    hit: LatencyHistogram,
    miss: LatencyHistogram,
    age: LatencyHistogram,
}

impl Slot {
    fn new() -> Slot {
        Slot {
            period: AtomicU64::new(u64::MAX),
            counts: Default::default(),
            hit: LatencyHistogram::default(),
            miss: LatencyHistogram::default(),
            age: LatencyHistogram::default(),
        }
    }

    fn reset(&self) {
        for c in &self.counts {
            c.store(0, Ordering::Relaxed);
        }
        self.hit.reset();
        self.miss.reset();
        self.age.reset();
    }
}

/// Which latency histogram an observation goes to.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Latency {
    Hit,
    Miss,
    /// The age of a record when served from the cache.
    Age,
}

/// The sliding-window ring.
pub(crate) struct Windows {
    started: Instant,
    slots: Vec<Slot>,
}

impl Default for Windows {
    fn default() -> Self {
        Windows {
            started: Instant::now(),
            slots: (0..SLOTS).map(|_| Slot::new()).collect(),
        }
    }
}

impl Windows {
    fn period(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.started).as_secs() / SLOT.as_secs()
    }

    fn slot(&self) -> &Slot {
        let period = self.period(Instant::now());
        let slot = &self.slots[(period % SLOTS as u64) as usize];
        let seen = slot.period.load(Ordering::Relaxed);
        if seen != period
            && slot
                .period
                .compare_exchange(seen, period, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            slot.reset();
        }
        slot
    }

    pub(crate) fn count(&self, event: Event, n: u64) {
        self.slot().counts[event as usize].fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn latency(&self, kind: Latency, d: Duration) {
        let slot = self.slot();
        match kind {
            Latency::Hit => slot.hit.record(d),
            Latency::Miss => slot.miss.record(d),
            Latency::Age => slot.age.record(d),
        }
    }

    /// Sums the slots of the last `span`, with quantiles merged over them.
    pub(crate) fn window(&self, span: Duration) -> WindowStats {
        let now = self.period(Instant::now());
        let n = (span.as_secs() / SLOT.as_secs()).clamp(1, SLOTS as u64);
        let mut counts = [0u64; EVENTS];
        let hit = LatencyHistogram::default();
        let miss = LatencyHistogram::default();
        let age = LatencyHistogram::default();
        for back in 0..n {
            let Some(period) = now.checked_sub(back) else {
                break;
            };
            let slot = &self.slots[(period % SLOTS as u64) as usize];
            if slot.period.load(Ordering::Relaxed) != period {
                continue;
            }
            for (i, c) in slot.counts.iter().enumerate() {
                counts[i] += c.load(Ordering::Relaxed);
            }
            hit.merge(&slot.hit);
            miss.merge(&slot.miss);
            age.merge(&slot.age);
        }
        // A young process has not lived the whole window yet.
        let lived = self
            .started
            .elapsed()
            .min(Duration::from_secs(n * SLOT.as_secs()));
        WindowStats::from_parts(counts, lived, &hit, &miss, &age)
    }

    /// Per-slot request, hit, miss and query counts of the last five
    /// minutes, oldest first, for the dashboard's charts.
    pub(crate) fn series(&self) -> Vec<SeriesPoint> {
        let now = self.period(Instant::now());
        (0..SLOTS as u64)
            .rev()
            .filter_map(|back| now.checked_sub(back))
            .map(|period| {
                let slot = &self.slots[(period % SLOTS as u64) as usize];
                let live = slot.period.load(Ordering::Relaxed) == period;
                let get = |e: Event| {
                    if live {
                        slot.counts[e as usize].load(Ordering::Relaxed)
                    } else {
                        0
                    }
                };
                SeriesPoint {
                    t_s: period * SLOT.as_secs(),
                    requests: get(Event::Request),
                    hits: get(Event::Hit),
                    misses: get(Event::Miss),
                    db_queries: get(Event::DbQuery),
                }
            })
            .collect()
    }
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct SeriesPoint {
    /// Seconds since start at the beginning of the slot.
    pub t_s: u64,
    pub requests: u64,
    pub hits: u64,
    pub misses: u64,
    pub db_queries: u64,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq, ToSchema)]
pub struct Quantiles {
    pub p50: f64,
    pub p99: f64,
}

impl Quantiles {
    pub(super) fn of(h: &LatencyHistogram) -> Quantiles {
        Quantiles {
            p50: h.quantile_ms(0.5),
            p99: h.quantile_ms(0.99),
        }
    }
}

/// Counters and quantiles over one window.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct WindowStats {
    pub seconds: f64,
    pub requests: u64,
    pub hits: u64,
    pub misses: u64,
    pub cold_misses: u64,
    pub hit_rate: f64,
    pub db_queries: u64,
    pub db_queries_per_s: f64,
    pub requests_per_s: f64,
    pub invalidations: u64,
    pub idle_passivations: u64,
    pub cap_evictions: u64,
    pub latency_ms: LatencyWindow,
    /// Age of records when served from the cache, in seconds.
    pub served_age_s: Quantiles,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct LatencyWindow {
    pub hit: Quantiles,
    pub miss: Quantiles,
}

impl WindowStats {
    fn from_parts(
        c: [u64; EVENTS],
        lived: Duration,
        hit: &LatencyHistogram,
        miss: &LatencyHistogram,
        age: &LatencyHistogram,
    ) -> WindowStats {
        let secs = lived.as_secs_f64().max(1.0);
        let hits = c[Event::Hit as usize];
        let misses = c[Event::Miss as usize];
        let age_q = Quantiles::of(age);
        WindowStats {
            seconds: round3(lived.as_secs_f64()),
            requests: c[Event::Request as usize],
            hits,
            misses,
            cold_misses: c[Event::ColdMiss as usize],
            hit_rate: ratio(hits, hits + misses),
            db_queries: c[Event::DbQuery as usize],
            db_queries_per_s: round3(c[Event::DbQuery as usize] as f64 / secs),
            requests_per_s: round3(c[Event::Request as usize] as f64 / secs),
            invalidations: c[Event::Invalidation as usize],
            idle_passivations: c[Event::IdlePassivation as usize],
            cap_evictions: c[Event::CapEviction as usize],
            latency_ms: LatencyWindow {
                hit: Quantiles::of(hit),
                miss: Quantiles::of(miss),
            },
            served_age_s: Quantiles {
                p50: round3(age_q.p50 / 1000.0),
                p99: round3(age_q.p99 / 1000.0),
            },
        }
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        round3(a as f64 / b as f64)
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_sum_their_slots() {
        let w = Windows::default();
        w.count(Event::Hit, 3);
        w.count(Event::Miss, 1);
        w.count(Event::DbQuery, 1);
        w.latency(Latency::Hit, Duration::from_micros(50));
        let s = w.window(Duration::from_secs(60));
        assert_eq!((s.hits, s.misses, s.db_queries), (3, 1, 1));
        assert_eq!(s.hit_rate, 0.75);
        assert!(s.latency_ms.hit.p50 > 0.0);
        let series = w.series();
        assert!(!series.is_empty() && series.len() <= SLOTS);
        assert_eq!(series.last().map(|p| p.hits), Some(3));
    }
}
