//! The tuning advice: what the last five minutes say about the settings.

use std::time::Duration;

use serde::Serialize;

use super::WindowStats;

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
    use crate::perf::Quantiles;

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
}
