//! From raw runs to what a reader gets: per-run summaries with the closed
//! form and the invariant checks, the table on stdout, CSV, JSON and the
//! SVG chart. Everything here is a pure function of the runs, so the same
//! runs always give the same bytes.
//!
//! This file holds the summaries (the closed form, the stale windows, the
//! invariant checks); `table` the text on stdout, `files` the CSV and JSON,
//! `svg` the chart.

mod files;
mod svg;
mod table;

use std::time::Duration;

use sessiond_actors::MissReason;

use crate::args::{show_duration, Policy};
use crate::harness::{RawRun, Scenario};
use crate::measure::{quantile_sorted, Change, ChangeKind, SimObserver};

pub use files::{csv, json};
pub use svg::svg;
pub use table::{describe, table};

/// Stale windows of a set of changes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WindowStats {
    /// Changes committed.
    pub changes: u64,
    /// Changes that were answered stale at least once.
    pub stale_changes: u64,
    /// Requests answered with a record older than a change they followed.
    pub stale_answers: u64,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl WindowStats {
    fn of<'a>(changes: impl Iterator<Item = &'a Change>) -> WindowStats {
        let mut windows = Vec::new();
        let mut stats = WindowStats::default();
        for c in changes {
            stats.changes += 1;
            stats.stale_answers += c.stale_answers;
            if c.stale_answers > 0 {
                stats.stale_changes += 1;
            }
            windows.push(c.window_ns());
        }
        windows.sort_unstable();
        stats.p50 = Duration::from_nanos(quantile_sorted(&windows, 0.5));
        stats.p99 = Duration::from_nanos(quantile_sorted(&windows, 0.99));
        stats.max = Duration::from_nanos(windows.last().copied().unwrap_or(0));
        stats
    }
}

/// A change served stale for longer than its policy allows.
#[derive(Clone, Debug)]
pub struct Violation {
    pub text: String,
}

/// What the `lease` policy adds to a run's summary.
#[derive(Clone, Debug, Default)]
pub struct LeaseFigures {
    pub lease: Duration,
    /// Writes acknowledged, and from commit to acknowledgement.
    pub acked: u64,
    pub ack_p50: Duration,
    pub ack_p99: Duration,
    pub ack_max: Duration,
    /// Writes refused (their node could not reach the database) and
    /// committed but not confirmed (503 to the admin).
    pub refused: u64,
    pub unconfirmed: u64,
    /// Answers to users with an acknowledged write, and those of them that
    /// showed an older version than a write acknowledged before the
    /// request was sent (must be 0).
    pub checked: u64,
    pub stale_after_ack: u64,
    /// Lookups read through for want of a lease.
    pub unleased: u64,
    pub lease_flushes: u64,
    /// Answers from a near copy (the entry node's copy of the owner's
    /// answer), all checked like the rest.
    pub near: u64,
}

/// One run, summarised.
#[derive(Clone, Debug)]
pub struct RunSummary {
    pub policy: Policy,
    pub ttl: Duration,
    pub requests: u64,
    pub hits: u64,
    pub errors: u64,
    pub error_kinds: [u64; 4],
    pub remote_answers: u64,
    pub hit_rate: f64,
    /// TTL-only closed form, for `ttl` runs.
    pub closed_form: Option<f64>,
    pub queries: u64,
    pub queries_per_sec: f64,
    pub queries_per_request: f64,
    pub latency_p50: Duration,
    pub latency_p99: Duration,
    pub latency_max: Duration,
    pub stale: WindowStats,
    pub role: WindowStats,
    pub status: WindowStats,
    /// The stale-window bound of a change made while every node was
    /// reachable, and of one made during a disruption (or over a lossy link).
    pub bound: Duration,
    pub disrupted_bound: Duration,
    pub bound_rule: &'static str,
    pub violations: Vec<Violation>,
    pub violation_count: u64,
    pub forced: u64,
    pub forced_errors: u64,
    pub misses: [u64; 5],
    pub invalidations: u64,
    pub passivated: u64,
    pub evicted: u64,
    pub hibernated: u64,
    pub forwarded: u64,
    pub forward_failed: u64,
    pub peak_actors: u64,
    pub messages: u64,
    pub lost: u64,
    pub refused: u64,
    pub max_store_latency: Duration,
    pub max_link_delay: Duration,
    /// `lease` runs only.
    pub lease: Option<LeaseFigures>,
}

impl RunSummary {
    /// Whether the closed form and the run disagree by more than a point.
    pub fn disagrees(&self) -> bool {
        self.closed_form
            .is_some_and(|cf| (cf - self.hit_rate).abs() > 0.01)
    }
}

/// The TTL-only closed form: a user asking at rate λ misses once per cycle
/// of 1 + λ·TTL requests, so hit = 1 − 1/(1 + λ·TTL), weighted by each
/// user's share of the requests (and, with a daily ramp, over time).
pub fn closed_form(scenario: &Scenario, ttl: Duration) -> f64 {
    let w = &scenario.workload;
    let ttl = ttl.as_secs_f64();
    let steps = if w.diurnal > 0.0 { 240 } else { 1 };
    let span = w.duration_ns as f64 / 1e9;
    let (mut num, mut den) = (0.0, 0.0);
    for k in 0..steps {
        let t = span * (k as f64 + 0.5) / steps as f64;
        let ramp = w.ramp(t);
        let hit = if w.zipf == 0.0 {
            let lambda = w.rps * ramp / w.users as f64;
            1.0 - 1.0 / (1.0 + lambda * ttl)
        } else {
            (1..=w.users)
                .map(|id| {
                    let p = scenario.popularity.probability(id);
                    p * (1.0 - 1.0 / (1.0 + w.rps * ramp * p * ttl))
                })
                .sum()
        };
        num += ramp * hit;
        den += ramp;
    }
    num / den
}

/// `none`, `ttl 5m`, `push 5m`.
pub fn run_name(policy: Policy, ttl: Duration) -> String {
    match policy {
        Policy::None => "none".into(),
        p => format!("{} {}", p.as_str(), show_duration(ttl)),
    }
}

fn near_disruption(scenario: &Scenario, at_ns: u64, reach_ns: u64) -> bool {
    scenario.disruptions.iter().any(|d| {
        let (start, end) = d.span_ns(scenario.detect);
        at_ns <= end && at_ns.saturating_add(reach_ns) >= start
    })
}

fn describe_change(c: &Change, window: Duration) -> String {
    let w = c.worst;
    format!(
        "{} of user {} (v{}) at {} on {} was still answered with v{} to a request sent at {} on {}: stale for {}",
        c.kind.as_str(),
        c.user,
        c.version,
        show_duration(Duration::from_nanos(c.at_ns)),
        Scenario::node_name(c.node),
        w.map(|w| w.served_version).unwrap_or(0),
        show_duration(Duration::from_nanos(w.map(|w| w.sent_ns).unwrap_or(0))),
        Scenario::node_name(w.map(|w| w.node).unwrap_or(0)),
        show_duration(window),
    )
}

/// Summarises a run and checks its stale windows against the invariants:
/// no cache never serves a changed record; TTL-only never longer than TTL +
/// store latency; push with a delivering link never longer than the link
/// delay + one store read; push over a lossy link or a partition never
/// longer than TTL + store latency.
pub fn summarise(scenario: &Scenario, policy: Policy, ttl: Duration, raw: RawRun) -> RunSummary {
    let rec = &raw.recorder;
    let obs = &raw.observer;
    let store = raw.max_store_latency;
    let link = raw.max_link_delay;
    let ttl_bound = ttl + store;
    let (bound, disrupted_bound, rule) = match policy {
        Policy::None => (Duration::ZERO, Duration::ZERO, "never stale"),
        Policy::Ttl => (ttl_bound, ttl_bound, "TTL + store latency"),
        Policy::Push if scenario.link_loss > 0.0 => {
            (ttl_bound, ttl_bound, "TTL + store latency (lossy link)")
        }
        Policy::Push => (link + store, ttl_bound, "link delay + store latency"),
        // A change is answered stale only until it is acknowledged, which
        // takes at most the longest lease (plus the holder's margin).
        Policy::Lease if scenario.link_loss > 0.0 => (
            lease_bound(scenario.lease, link, store),
            lease_bound(scenario.lease, link, store),
            "lease + link delay + store latency (lossy link)",
        ),
        Policy::Lease => (
            link + store,
            lease_bound(scenario.lease, link, store),
            "link delay + store latency",
        ),
    };
    let reach = (link + store).as_nanos() as u64;
    let mut violations = Vec::new();
    let mut violation_count = 0;
    for c in &rec.changes {
        let window = Duration::from_nanos(c.window_ns());
        if c.stale_answers == 0 {
            continue;
        }
        let allowed = if near_disruption(scenario, c.at_ns, reach) {
            disrupted_bound
        } else {
            bound
        };
        let over = if policy == Policy::None {
            true
        } else {
            window > allowed
        };
        if over {
            violation_count += 1;
            if violations.len() < 5 {
                violations.push(Violation {
                    text: format!(
                        "{}: {} > bound {} ({})",
                        run_name(policy, ttl),
                        describe_change(c, window),
                        show_duration(allowed),
                        rule
                    ),
                });
            }
        }
    }
    let lease = (policy == Policy::Lease).then(|| {
        // Named first: the promise the policy exists for.
        let mut first = Vec::new();
        for stale in &rec.stale_after_ack_examples {
            if first.len() < 5 {
                first.push(Violation {
                    text: format!(
                        "{}: user {} answered with v{} on {} to a request sent at {}, after v{} was acknowledged at {}: stale after an acknowledgement",
                        run_name(policy, ttl),
                        stale.user,
                        stale.served_version,
                        Scenario::node_name(stale.node),
                        show_duration(Duration::from_nanos(stale.sent_ns)),
                        stale.acked_version,
                        show_duration(Duration::from_nanos(stale.acked_ns)),
                    ),
                });
            }
        }
        violations.splice(0..0, first);
        violations.truncate(5);
        violation_count += rec.stale_after_ack;
        let mut acks = rec.ack_latencies.clone();
        acks.sort_unstable();
        let q = |p| Duration::from_nanos(quantile_sorted(&acks, p));
        LeaseFigures {
            lease: scenario.lease,
            acked: acks.len() as u64,
            ack_p50: q(0.5),
            ack_p99: q(0.99),
            ack_max: Duration::from_nanos(acks.last().copied().unwrap_or(0)),
            refused: rec.refused_writes,
            unconfirmed: rec.unconfirmed_writes,
            checked: rec.checked_after_ack,
            stale_after_ack: rec.stale_after_ack,
            unleased: obs.misses(MissReason::Unleased),
            lease_flushes: obs.flushes(sessiond_actors::FlushReason::Lease),
            near: rec.near_answers,
        }
    });
    let secs = scenario.duration().as_secs_f64().max(1e-9);
    let requests = rec.requests.max(1) as f64;
    let g = SimObserver::get;
    RunSummary {
        policy,
        ttl,
        requests: rec.requests,
        hits: rec.hits,
        errors: rec.errors,
        error_kinds: rec.error_kinds,
        remote_answers: rec.remote_answers,
        hit_rate: rec.hits as f64 / requests,
        closed_form: (policy == Policy::Ttl).then(|| closed_form(scenario, ttl)),
        queries: raw.queries,
        queries_per_sec: raw.queries as f64 / secs,
        queries_per_request: raw.queries as f64 / requests,
        latency_p50: Duration::from_nanos(rec.latency.quantile(0.5)),
        latency_p99: Duration::from_nanos(rec.latency.quantile(0.99)),
        latency_max: Duration::from_nanos(rec.latency.quantile(1.0)),
        stale: WindowStats::of(rec.changes.iter()),
        role: WindowStats::of(rec.changes.iter().filter(|c| c.kind == ChangeKind::Role)),
        status: WindowStats::of(rec.changes.iter().filter(|c| c.kind == ChangeKind::Status)),
        bound,
        disrupted_bound,
        bound_rule: rule,
        violations,
        violation_count,
        forced: rec.forced,
        forced_errors: rec.forced_errors,
        misses: MissReason::ALL.map(|r| obs.misses(r)),
        invalidations: g(&obs.invalidations),
        passivated: g(&obs.passivated_idle),
        evicted: g(&obs.evicted),
        hibernated: g(&obs.hibernated),
        forwarded: g(&obs.forwarded),
        forward_failed: g(&obs.forward_failed),
        peak_actors: g(&obs.peak_actors),
        messages: raw.messages,
        lost: raw.lost,
        refused: raw.refused,
        max_store_latency: store,
        max_link_delay: link,
        lease,
    }
}

/// The longest a `lease` write can be answered stale: a holder's lease
/// (the writer waits the database's remaining time plus a fiftieth and
/// 5 ms), a link trip and a store read.
fn lease_bound(lease: Duration, link: Duration, store: Duration) -> Duration {
    lease + lease / 50 + Duration::from_millis(5) + link + store
}
