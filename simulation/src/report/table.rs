//! The table `sessiond simulate` prints: the scenario in words, then one
//! row per run, then the invariants' verdict.

use std::fmt::Write as _;

use super::{run_name, RunSummary};
use crate::args::{show_duration, Policy};
use crate::harness::Scenario;
use crate::measure::ERROR_KINDS;

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
            d.kind.as_str(),
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
        let Some(l) = &r.lease else { continue };
        let _ = writeln!(
            out,
            "{}: lease {}; {} writes acknowledged (commit to acknowledgement p50 {}, p99 {}, max {}), {} refused (no database), {} unconfirmed; {} lookups read through without a lease, {} lease flushes",
            run_name(r.policy, r.ttl),
            show_duration(l.lease),
            l.acked,
            show_duration(l.ack_p50),
            show_duration(l.ack_p99),
            show_duration(l.ack_max),
            l.refused,
            l.unconfirmed,
            l.unleased,
            l.lease_flushes,
        );
        let _ = writeln!(
            out,
            "{}: stale answers after an acknowledgement: {} (of {} answers to users with an acknowledged write; {} answers from near copies in all)",
            run_name(r.policy, r.ttl),
            l.stale_after_ack,
            l.checked,
            l.near,
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
