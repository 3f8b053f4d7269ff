//! What `/api/perf` and the dashboard show: counters over sliding windows
//! (the last minute, the last five, since start) and the tuning advice
//! computed from them.
//!
//! Events land in 10-second slots of a 5-minute ring; a window is the sum of
//! its slots. Recording is a few relaxed atomic adds; a slot is recycled by
//! the first event of its new period (a concurrent event may be lost then,
//! which a monitoring figure can afford).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::telemetry::LatencyHistogram;

const SLOT: Duration = Duration::from_secs(10);
const SLOTS: usize = 30;

/// One kind of event counted per slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Event {
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
pub enum Latency {
    Hit,
    Miss,
    /// The age of a record when served from the cache.
    Age,
}

/// The sliding-window ring.
pub struct Windows {
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

    pub fn count(&self, event: Event, n: u64) {
        self.slot().counts[event as usize].fetch_add(n, Ordering::Relaxed);
    }

    pub fn latency(&self, kind: Latency, d: Duration) {
        let slot = self.slot();
        match kind {
            Latency::Hit => slot.hit.record(d),
            Latency::Miss => slot.miss.record(d),
            Latency::Age => slot.age.record(d),
        }
    }

    /// Sums the slots of the last `span`, with quantiles merged over them.
    pub fn window(&self, span: Duration) -> WindowStats {
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
    pub fn series(&self) -> Vec<SeriesPoint> {
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

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Quantiles {
    pub p50: f64,
    pub p99: f64,
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
        let q = |h: &LatencyHistogram| Quantiles {
            p50: h.quantile_ms(0.5),
            p99: h.quantile_ms(0.99),
        };
        let age_q = q(age);
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
                hit: q(hit),
                miss: q(miss),
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

/// What the rules look at besides a window.
#[derive(Clone, Debug)]
pub struct Setup {
    pub ttl: Duration,
    pub idle_timeout: Duration,
    pub max_sessions: usize,
    pub live_sessions: usize,
    /// Whether changes made outside the service are pushed (PostgreSQL).
    pub push: bool,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Recommendation {
    pub level: &'static str,
    pub message: String,
}

/// Below this many lookups in the window, hit rates say nothing.
pub const MIN_LOOKUPS: u64 = 100;
/// Hit rate under which a short TTL is worth raising.
pub const LOW_HIT_RATE: f64 = 0.8;
/// A TTL under this is "short".
pub const SHORT_TTL: Duration = Duration::from_secs(300);
/// Miss latency (p99, ms) over which the database is called slow.
pub const SLOW_MISS_P99_MS: f64 = 50.0;

/// The tuning advice for what the last five minutes showed.
pub fn recommend(w: &WindowStats, s: &Setup) -> Vec<Recommendation> {
    let mut out = Vec::new();
    let lookups = w.hits + w.misses;
    let warn = |m: String| Recommendation {
        level: "warn",
        message: m,
    };
    let info = |m: String| Recommendation {
        level: "info",
        message: m,
    };
    if s.ttl.is_zero() {
        if lookups >= MIN_LOOKUPS {
            out.push(info(
                "the cache is off (--cache-ttl 0): every request reads the database; \
                 set --cache-ttl 5m to serve from the cache"
                    .into(),
            ));
        }
    } else if lookups >= MIN_LOOKUPS && w.hit_rate < LOW_HIT_RATE && s.ttl < SHORT_TTL {
        out.push(warn(format!(
            "hit rate {:.0}% with a {} TTL: raise --cache-ttl (changes are pushed at once, \
             so a longer TTL costs no freshness)",
            w.hit_rate * 100.0,
            crate::duration::show(s.ttl)
        )));
    }
    if w.misses >= 20 && w.latency_ms.miss.p99 > SLOW_MISS_P99_MS {
        out.push(warn(format!(
            "cache misses take {:.1} ms at p99: the database is slow (check its load, \
             indexes and the network to it)",
            w.latency_ms.miss.p99
        )));
    }
    if w.idle_passivations >= 20 && w.cold_misses * 2 >= w.idle_passivations {
        out.push(warn(format!(
            "{} sessions were passivated for idleness and users keep coming back cold: \
             raise --idle-timeout (now {})",
            w.idle_passivations,
            crate::duration::show(s.idle_timeout)
        )));
    }
    if w.cap_evictions > 0 || s.live_sessions >= s.max_sessions {
        out.push(warn(format!(
            "the session cap ({}) is reached ({} evicted): raise --max-sessions or add a node",
            s.max_sessions, w.cap_evictions
        )));
    }
    if w.invalidations >= 20 && w.invalidations as f64 >= s.live_sessions.max(1) as f64 {
        let push = if s.push {
            "changes are already pushed"
        } else {
            "use PostgreSQL so changes made anywhere are pushed"
        };
        out.push(info(format!(
            "{} invalidations for {} live sessions in 5 minutes: records rarely live out \
             the TTL, so the TTL buys little; rely on push invalidation ({push})",
            w.invalidations, s.live_sessions
        )));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> Setup {
        Setup {
            ttl: Duration::from_secs(300),
            idle_timeout: Duration::from_secs(600),
            max_sessions: 1000,
            live_sessions: 100,
            push: false,
        }
    }

    fn quiet() -> WindowStats {
        WindowStats {
            hits: 950,
            misses: 50,
            hit_rate: 0.95,
            ..WindowStats::default()
        }
    }

    fn has(r: &[Recommendation], needle: &str) -> bool {
        r.iter().any(|x| x.message.contains(needle))
    }

    #[test]
    fn a_healthy_node_gets_no_advice() {
        assert!(recommend(&quiet(), &setup()).is_empty());
    }

    #[test]
    fn low_hit_rate_with_short_ttl_says_raise_it() {
        let w = WindowStats {
            hits: 500,
            misses: 500,
            hit_rate: 0.5,
            ..quiet()
        };
        let short = Setup {
            ttl: Duration::from_secs(10),
            ..setup()
        };
        let r = recommend(&w, &short);
        assert!(has(&r, "raise --cache-ttl"), "{r:?}");
        // With the default 5 minutes, a low hit rate is not the TTL's fault.
        assert!(!has(&recommend(&w, &setup()), "raise --cache-ttl"));
        // Too few lookups to say anything.
        let few = WindowStats {
            hits: 5,
            misses: 5,
            hit_rate: 0.5,
            ..quiet()
        };
        assert!(!has(&recommend(&few, &short), "raise --cache-ttl"));
    }

    #[test]
    fn slow_misses_blame_the_database() {
        let mut w = quiet();
        w.latency_ms.miss = Quantiles {
            p50: 30.0,
            p99: 120.0,
        };
        assert!(has(&recommend(&w, &setup()), "database is slow"));
        w.latency_ms.miss.p99 = 4.0;
        assert!(!has(&recommend(&w, &setup()), "database is slow"));
    }

    #[test]
    fn passivation_churn_says_raise_idle_timeout() {
        let w = WindowStats {
            idle_passivations: 200,
            cold_misses: 150,
            ..quiet()
        };
        assert!(has(&recommend(&w, &setup()), "raise --idle-timeout"));
        let no_return = WindowStats {
            idle_passivations: 200,
            cold_misses: 10,
            ..quiet()
        };
        assert!(!has(
            &recommend(&no_return, &setup()),
            "raise --idle-timeout"
        ));
    }

    #[test]
    fn the_cap_reached_says_raise_it_or_add_a_node() {
        let w = WindowStats {
            cap_evictions: 15,
            ..quiet()
        };
        assert!(has(
            &recommend(&w, &setup()),
            "raise --max-sessions or add a node"
        ));
        let full = Setup {
            live_sessions: 1000,
            ..setup()
        };
        assert!(has(&recommend(&quiet(), &full), "raise --max-sessions"));
    }

    #[test]
    fn many_invalidations_per_user_say_rely_on_push() {
        let w = WindowStats {
            invalidations: 500,
            ..quiet()
        };
        let r = recommend(&w, &setup());
        assert!(has(&r, "rely on push"), "{r:?}");
        assert!(has(&r, "use PostgreSQL"));
        let pg = Setup {
            push: true,
            ..setup()
        };
        assert!(has(&recommend(&w, &pg), "already pushed"));
        let few = WindowStats {
            invalidations: 30,
            ..quiet()
        };
        assert!(!has(&recommend(&few, &setup()), "rely on push"));
    }

    #[test]
    fn cache_off_is_called_out() {
        let off = Setup {
            ttl: Duration::ZERO,
            ..setup()
        };
        assert!(has(&recommend(&quiet(), &off), "the cache is off"));
    }

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
