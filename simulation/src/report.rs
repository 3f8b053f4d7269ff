//! From raw runs to what a reader gets: per-run summaries with the closed
//! form and the invariant checks, the table on stdout, CSV, JSON and the
//! SVG chart. Everything here is a pure function of the runs, so the same
//! runs always give the same bytes.

use std::fmt::Write as _;
use std::time::Duration;

use sessiond_actors::MissReason;

use crate::args::{show_duration, Policy};
use crate::harness::{RawRun, Scenario};
use crate::measure::{quantile_sorted, Change, ChangeKind, SimObserver, ERROR_KINDS};

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
    pub misses: [u64; 4],
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
    }
}

fn pct(x: f64) -> String {
    format!("{:.2}", x * 100.0)
}

fn rate_per_hour(per_sec: f64) -> String {
    let h = per_sec * 3600.0;
    let s = format!("{h:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}/h")
}

/// The lines describing the scenario (also the chart's subtitle).
pub fn describe(scenario: &Scenario) -> Vec<String> {
    let w = &scenario.workload;
    let popularity = if w.zipf == 0.0 {
        "uniform popularity".to_string()
    } else {
        format!("Zipf({}) popularity", w.zipf)
    };
    let ramp = if w.diurnal > 0.0 {
        format!("daily ramp ±{:.0}%", w.diurnal * 100.0)
    } else {
        "flat rate".to_string()
    };
    let mut lines = vec![
        format!(
            "traffic: {} users, {} req/s, {}, {}; {} per run",
            w.users,
            w.rps,
            popularity,
            ramp,
            show_duration(scenario.duration())
        ),
        format!(
            "changes: roles {}, status {}, forced refreshes {}",
            rate_per_hour(w.role_change_rate),
            rate_per_hour(w.status_change_rate),
            rate_per_hour(w.force_refresh_rate)
        ),
    ];
    let mut system = format!(
        "store latency {}; {} node{}",
        scenario.store_latency,
        scenario.nodes,
        if scenario.nodes == 1 { "" } else { "s" }
    );
    if scenario.nodes > 1 {
        let _ = write!(
            system,
            ", link delay {}, loss {}%",
            scenario.link_delay,
            scenario.link_loss * 100.0
        );
    }
    let _ = write!(
        system,
        "; idle timeout {}",
        show_duration(scenario.idle_timeout)
    );
    if !scenario.replica_lag.is_zero() {
        let _ = write!(
            system,
            "; reads from a replica {} behind",
            show_duration(scenario.replica_lag)
        );
    }
    lines.push(system);
    for d in &scenario.disruptions {
        lines.push(format!(
            "{} {} at {} for {} (membership notices after {})",
            if d.crash { "crash" } else { "partition" },
            Scenario::node_name(d.node),
            show_duration(d.at),
            show_duration(d.length),
            show_duration(scenario.detect)
        ));
    }
    lines
}

fn ttl_cell(r: &RunSummary) -> String {
    if r.policy == Policy::None {
        "-".into()
    } else {
        show_duration(r.ttl)
    }
}

/// The table on stdout.
pub fn table(seed: u64, scenario: &Scenario, runs: &[RunSummary]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "sessiond simulate, seed {seed}");
    for line in describe(scenario) {
        let _ = writeln!(out, "  {line}");
    }
    out.push('\n');
    let header = [
        "policy",
        "ttl",
        "hit%",
        "closed%",
        "queries/s",
        "q/req",
        "p50",
        "p99",
        "stale",
        "win p50",
        "win p99",
        "win max",
        "bound",
        "check",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for r in runs {
        let closed = match r.closed_form {
            Some(cf) if r.disagrees() => format!("{}!", pct(cf)),
            Some(cf) => pct(cf),
            None => "-".into(),
        };
        rows.push(vec![
            r.policy.as_str().into(),
            ttl_cell(r),
            pct(r.hit_rate),
            closed,
            format!("{:.2}", r.queries_per_sec),
            format!("{:.3}", r.queries_per_request),
            show_duration(r.latency_p50),
            show_duration(r.latency_p99),
            r.stale.stale_answers.to_string(),
            show_duration(r.stale.p50),
            show_duration(r.stale.p99),
            show_duration(r.stale.max),
            show_duration(r.bound),
            if r.violation_count == 0 {
                "ok".into()
            } else {
                format!("VIOLATED({})", r.violation_count)
            },
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    for row in &rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c > 0 {
                line.push_str("  ");
            }
            if c < 2 {
                let _ = write!(line, "{cell:<w$}", w = widths[c]);
            } else {
                let _ = write!(line, "{cell:>w$}", w = widths[c]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.push('\n');
    let changes = runs.first().map(|r| r.stale.changes).unwrap_or(0);
    let notes = [
        "hit%: lookups answered from the cache; closed%: 1 - 1/(1 + λ·TTL) per user, TTL only".to_string(),
        "(! = off by more than 1 point); p50/p99: lookup latency in virtual time; stale: lookups".to_string(),
        "answered with a record older than a change made before they were sent; win: over the".to_string(),
        format!("{changes} changes, the time from a change to its last stale answer; bound: the invariant's"),
        "limit on a window (push near a partition, a crash or over a lossy link: TTL + store latency).".to_string(),
    ];
    for line in notes {
        let _ = writeln!(out, "{line}");
    }
    for r in runs.iter().filter(|r| r.disagrees()) {
        let mut why = Vec::new();
        if r.ttl > scenario.idle_timeout {
            why.push("the TTL exceeds the idle timeout, so idle users are passivated first");
        }
        if scenario.workload.force_refresh_rate > 0.0 {
            why.push("forced refreshes renew records");
        }
        if !scenario.disruptions.is_empty() || scenario.link_loss > 0.0 {
            why.push("disruptions and lost messages change who caches what");
        }
        // Every user's first lookup misses: over a short run, that weighs.
        let w = &scenario.workload;
        let cycle = r.ttl.as_secs_f64() + w.users as f64 / w.rps;
        if scenario.duration().as_secs_f64() < 20.0 * cycle {
            why.push("the run is short next to a cache cycle (first lookups miss)");
        }
        let _ = writeln!(
            out,
            "closed form: {} measured {}% vs closed form {}% differ by more than 1 point{}{}",
            run_name(r.policy, r.ttl),
            pct(r.hit_rate),
            pct(r.closed_form.unwrap_or(0.0)),
            if why.is_empty() { "" } else { ": " },
            why.join("; ")
        );
    }
    for r in runs {
        if r.errors > 0 {
            let kinds: Vec<String> = ERROR_KINDS
                .iter()
                .zip(r.error_kinds)
                .filter(|(_, n)| *n > 0)
                .map(|(k, n)| format!("{n} {k}"))
                .collect();
            let _ = writeln!(
                out,
                "{}: {} lookups failed ({})",
                run_name(r.policy, r.ttl),
                r.errors,
                kinds.join(", ")
            );
        }
    }
    let total: u64 = runs.iter().map(|r| r.violation_count).sum();
    if total > 0 {
        let _ = writeln!(out, "INVARIANT VIOLATED in {total} change(s):");
        for r in runs {
            for v in &r.violations {
                let _ = writeln!(out, "  {}", v.text);
            }
        }
    } else {
        let _ = writeln!(out, "invariants: all hold.");
    }
    out
}

const CSV_HEADER: &str = "policy,ttl_s,requests,hits,hit_rate,closed_form,queries,queries_per_s,queries_per_request,latency_p50_ms,latency_p99_ms,latency_max_ms,errors,remote_answers,changes,stale_answers,stale_changes,window_p50_s,window_p99_s,window_max_s,role_changes,role_window_p99_s,role_window_max_s,status_changes,status_window_p99_s,status_window_max_s,bound_s,disrupted_bound_s,violations,forced_refreshes,misses_cold,misses_expired,misses_forced,misses_invalidated,invalidations,passivated,evicted,hibernated,forwarded,forward_failed,peak_actors,link_messages,link_lost,link_refused,max_store_latency_ms,max_link_delay_ms";

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

fn s(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

fn fields(r: &RunSummary) -> Vec<(&'static str, String)> {
    let names: Vec<&str> = CSV_HEADER.split(',').collect();
    let values = vec![
        format!("\"{}\"", r.policy.as_str()),
        s(r.ttl),
        r.requests.to_string(),
        r.hits.to_string(),
        format!("{:.6}", r.hit_rate),
        r.closed_form
            .map(|c| format!("{c:.6}"))
            .unwrap_or_else(|| "null".into()),
        r.queries.to_string(),
        format!("{:.3}", r.queries_per_sec),
        format!("{:.6}", r.queries_per_request),
        ms(r.latency_p50),
        ms(r.latency_p99),
        ms(r.latency_max),
        r.errors.to_string(),
        r.remote_answers.to_string(),
        r.stale.changes.to_string(),
        r.stale.stale_answers.to_string(),
        r.stale.stale_changes.to_string(),
        s(r.stale.p50),
        s(r.stale.p99),
        s(r.stale.max),
        r.role.changes.to_string(),
        s(r.role.p99),
        s(r.role.max),
        r.status.changes.to_string(),
        s(r.status.p99),
        s(r.status.max),
        s(r.bound),
        s(r.disrupted_bound),
        r.violation_count.to_string(),
        r.forced.to_string(),
        r.misses[0].to_string(),
        r.misses[1].to_string(),
        r.misses[2].to_string(),
        r.misses[3].to_string(),
        r.invalidations.to_string(),
        r.passivated.to_string(),
        r.evicted.to_string(),
        r.hibernated.to_string(),
        r.forwarded.to_string(),
        r.forward_failed.to_string(),
        r.peak_actors.to_string(),
        r.messages.to_string(),
        r.lost.to_string(),
        r.refused.to_string(),
        ms(r.max_store_latency),
        ms(r.max_link_delay),
    ];
    names.into_iter().zip(values).collect()
}

/// One line per run.
pub fn csv(runs: &[RunSummary]) -> String {
    let mut out = String::from(CSV_HEADER);
    out.push('\n');
    for r in runs {
        let row: Vec<String> = fields(r)
            .into_iter()
            .map(|(_, v)| {
                if v == "null" {
                    String::new()
                } else {
                    v.trim_matches('"').to_string()
                }
            })
            .collect();
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The scenario and every run, as JSON.
pub fn json(seed: u64, scenario: &Scenario, runs: &[RunSummary]) -> String {
    let mut out = String::from("{\n");
    let _ = writeln!(out, "  \"seed\": {seed},");
    let lines: Vec<String> = describe(scenario).iter().map(|l| json_str(l)).collect();
    let _ = writeln!(out, "  \"scenario\": [{}],", lines.join(", "));
    out.push_str("  \"runs\": [\n");
    for (i, r) in runs.iter().enumerate() {
        let body: Vec<String> = fields(r)
            .into_iter()
            .map(|(k, v)| format!("\"{k}\": {v}"))
            .collect();
        let violations: Vec<String> = r.violations.iter().map(|v| json_str(&v.text)).collect();
        let _ = write!(
            out,
            "    {{{}, \"violation_examples\": [{}]}}",
            body.join(", "),
            violations.join(", ")
        );
        out.push_str(if i + 1 < runs.len() { ",\n" } else { "\n" });
    }
    out.push_str("  ]\n}\n");
    out
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A "nice" axis step for a range up to `max` in about five steps.
fn nice_step(max: f64) -> f64 {
    if max <= 0.0 {
        return 1.0;
    }
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if raw <= m * mag {
            return m * mag;
        }
    }
    10.0 * mag
}

/// Step sizes for a time axis in seconds, so that ticks read 30s, 1m, 5m….
fn time_step(max_s: f64) -> f64 {
    let steps = [
        0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0,
        60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 14_400.0, 21_600.0, 43_200.0,
        86_400.0,
    ];
    steps
        .iter()
        .copied()
        .find(|s| max_s / s <= 6.0)
        .unwrap_or_else(|| nice_step(max_s))
}

/// A duration rounded for a chart label: `2.5ms`, `24.6s`, `4m45s`.
fn short_duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        show_duration(d)
    } else if d < Duration::from_secs(60) {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        show_duration(Duration::from_secs(d.as_secs_f64().round() as u64))
    }
}

struct Panel {
    x0: f64,
    y0: f64,
    w: f64,
    h: f64,
}

/// Colour, dash pattern and width of each policy's line; `push` is drawn
/// first and wider, so that `ttl` on top of it stays visible where the two
/// coincide.
const POLICY_STYLE: [(Policy, &str, &str, f64); 3] = [
    (Policy::Push, "#1b7837", "", 5.0),
    (Policy::None, "#7f7f7f", "6 4", 2.0),
    (Policy::Ttl, "#d95f02", "", 2.0),
];

/// The chart: hit rate and p99 stale window against TTL, one line per
/// policy (`none` has no TTL: it is drawn flat across).
pub fn svg(seed: u64, scenario: &Scenario, runs: &[RunSummary]) -> String {
    let mut ttls: Vec<Duration> = runs
        .iter()
        .filter(|r| r.policy != Policy::None)
        .map(|r| r.ttl)
        .collect();
    ttls.sort();
    ttls.dedup();
    let (lo, hi) = match (ttls.first(), ttls.last()) {
        (Some(a), Some(b)) => (a.as_secs_f64().max(1e-3), b.as_secs_f64().max(1e-3)),
        _ => (1.0, 1.0),
    };
    let log = hi / lo >= 4.0;
    let xpos = |p: &Panel, ttl: f64| -> f64 {
        let f = if hi <= lo {
            0.5
        } else if log {
            (ttl.max(1e-3).ln() - lo.ln()) / (hi.ln() - lo.ln())
        } else {
            (ttl - lo) / (hi - lo)
        };
        p.x0 + 20.0 + f * (p.w - 40.0)
    };
    let (width, height) = (980.0, 430.0);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"12\">"
    );
    let _ = writeln!(
        out,
        "<rect width=\"{width}\" height=\"{height}\" fill=\"white\"/>"
    );
    let _ = writeln!(
        out,
        "<text x=\"20\" y=\"24\" font-size=\"15\" font-weight=\"bold\">sessiond simulate (seed {seed}): hit rate and p99 stale window against TTL</text>"
    );
    for (i, line) in describe(scenario).iter().take(3).enumerate() {
        let _ = writeln!(
            out,
            "<text x=\"20\" y=\"{}\" fill=\"#444\">{}</text>",
            44 + 16 * i,
            xml(line)
        );
    }
    let panels = [
        Panel {
            x0: 70.0,
            y0: 110.0,
            w: 380.0,
            h: 250.0,
        },
        Panel {
            x0: 560.0,
            y0: 110.0,
            w: 380.0,
            h: 250.0,
        },
    ];
    let stale_max = runs
        .iter()
        .map(|r| r.stale.p99.as_secs_f64())
        .fold(0.0, f64::max);
    let stale_step = time_step(stale_max.max(0.001));
    let stale_top = (stale_max / stale_step).ceil().max(1.0) * stale_step;
    for (k, p) in panels.iter().enumerate() {
        let (title, top, step) = if k == 0 {
            ("hit rate (%)", 100.0, 20.0)
        } else {
            ("p99 stale window", stale_top, stale_step)
        };
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{}\" font-weight=\"bold\">{title}</text>",
            p.x0,
            p.y0 - 12.0
        );
        let _ = writeln!(
            out,
            "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#999\"/>",
            p.x0, p.y0, p.w, p.h
        );
        let ticks = (top / step).round() as usize;
        for t in 0..=ticks {
            let v = step * t as f64;
            let y = p.y0 + p.h - v / top * p.h;
            let label = if k == 0 {
                format!("{v:.0}")
            } else {
                show_duration(Duration::from_secs_f64(v))
            };
            let _ = writeln!(
                out,
                "<line x1=\"{}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" stroke=\"#eee\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{label}</text>",
                p.x0,
                p.x0 + p.w,
                p.x0 - 6.0,
                y + 4.0
            );
        }
        for ttl in &ttls {
            let x = xpos(p, ttl.as_secs_f64());
            let _ = writeln!(
                out,
                "<line x1=\"{x:.1}\" y1=\"{}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"#eee\"/><text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                p.y0,
                p.y0 + p.h,
                p.y0 + p.h + 16.0,
                show_duration(*ttl)
            );
        }
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#444\">TTL{}</text>",
            p.x0 + p.w / 2.0,
            p.y0 + p.h + 34.0,
            if log { " (log scale)" } else { "" }
        );
        for (policy, color, dash, stroke) in POLICY_STYLE {
            let value = |r: &RunSummary| {
                if k == 0 {
                    r.hit_rate * 100.0
                } else {
                    r.stale.p99.as_secs_f64()
                }
            };
            let pts: Vec<(f64, f64)> = if policy == Policy::None {
                match runs.iter().find(|r| r.policy == Policy::None) {
                    Some(r) if !ttls.is_empty() => {
                        let v = value(r);
                        vec![(p.x0 + 20.0, v), (p.x0 + p.w - 20.0, v)]
                    }
                    _ => Vec::new(),
                }
            } else {
                runs.iter()
                    .filter(|r| r.policy == policy)
                    .map(|r| (xpos(p, r.ttl.as_secs_f64()), value(r)))
                    .collect()
            };
            if pts.is_empty() {
                continue;
            }
            let coords: Vec<(f64, f64)> = pts
                .iter()
                .map(|(x, v)| (*x, p.y0 + p.h - v.min(top) / top * p.h))
                .collect();
            let dash_attr = if dash.is_empty() {
                String::new()
            } else {
                format!(" stroke-dasharray=\"{dash}\"")
            };
            let points: Vec<String> = coords
                .iter()
                .map(|(x, y)| format!("{x:.1},{y:.1}"))
                .collect();
            let _ = writeln!(
                out,
                "<polyline points=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"{stroke}\"{dash_attr}/>",
                points.join(" ")
            );
            if policy == Policy::None {
                continue;
            }
            let of_policy = runs.iter().filter(|r| r.policy == policy);
            for ((x, y), r) in coords.iter().zip(of_policy) {
                let _ = writeln!(
                    out,
                    "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"{:.1}\" fill=\"{color}\"/>",
                    stroke / 2.0 + 1.5
                );
                if k == 1 {
                    // The windows themselves: push's are too short to see.
                    let (dx, anchor) = if policy == Policy::Push {
                        (4.0, "start")
                    } else {
                        (-4.0, "end")
                    };
                    let _ = writeln!(
                        out,
                        "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" fill=\"{color}\" text-anchor=\"{anchor}\">{}</text>",
                        x + dx,
                        y - 8.0,
                        short_duration(r.stale.p99)
                    );
                }
            }
        }
    }
    let mut lx = 70.0;
    for policy in [Policy::None, Policy::Ttl, Policy::Push] {
        let Some((_, color, dash, _)) = POLICY_STYLE.iter().find(|s| s.0 == policy) else {
            continue;
        };
        if !runs.iter().any(|r| r.policy == policy) {
            continue;
        }
        let dash_attr = if dash.is_empty() {
            String::new()
        } else {
            format!(" stroke-dasharray=\"{dash}\"")
        };
        let label = match policy {
            Policy::None => "none (no cache)",
            Policy::Ttl => "ttl (TTL only)",
            Policy::Push => "push (TTL + invalidation)",
        };
        let _ = writeln!(
            out,
            "<line x1=\"{lx}\" y1=\"412\" x2=\"{}\" y2=\"412\" stroke=\"{color}\" stroke-width=\"2\"{dash_attr}/><text x=\"{}\" y=\"416\">{label}</text>",
            lx + 24.0,
            lx + 30.0
        );
        lx += 230.0;
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_steps() {
        assert_eq!(time_step(300.0), 60.0);
        assert_eq!(time_step(0.004), 0.001);
        assert_eq!(nice_step(100.0), 20.0);
        assert_eq!(xml("a<b&c"), "a&lt;b&amp;c");
        assert_eq!(json_str("a\"b\n"), "\"a\\\"b\\n\"");
    }
}
