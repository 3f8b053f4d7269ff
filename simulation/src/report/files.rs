//! The machine-readable outputs: `runs.csv` (one row per run, every
//! figure) and `runs.json` (the same, with the scenario and the
//! violations' texts).

use std::fmt::Write as _;
use std::time::Duration;

use super::{describe, RunSummary};
use crate::harness::Scenario;

const CSV_HEADER: &str = "policy,ttl_s,requests,hits,hit_rate,closed_form,queries,queries_per_s,queries_per_request,latency_p50_ms,latency_p99_ms,latency_max_ms,errors,remote_answers,changes,stale_answers,stale_changes,window_p50_s,window_p99_s,window_max_s,role_changes,role_window_p99_s,role_window_max_s,status_changes,status_window_p99_s,status_window_max_s,bound_s,disrupted_bound_s,violations,forced_refreshes,misses_cold,misses_expired,misses_forced,misses_invalidated,invalidations,passivated,evicted,hibernated,forwarded,forward_failed,peak_actors,link_messages,link_lost,link_refused,max_store_latency_ms,max_link_delay_ms";

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

fn s(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

/// The `lease` policy's figures: columns of their own, present only when a
/// sweep has a `lease` run (so that other sweeps' files stay as they were).
const LEASE_HEADER: &str = "lease_s,writes_acked,ack_p50_s,ack_p99_s,ack_max_s,writes_refused,writes_unconfirmed,answers_checked_after_ack,stale_after_ack,misses_unleased,lease_flushes";

fn lease_fields(r: &RunSummary) -> Vec<(&'static str, String)> {
    let values = match &r.lease {
        Some(l) => vec![
            s(l.lease),
            l.acked.to_string(),
            s(l.ack_p50),
            s(l.ack_p99),
            s(l.ack_max),
            l.refused.to_string(),
            l.unconfirmed.to_string(),
            l.checked.to_string(),
            l.stale_after_ack.to_string(),
            l.unleased.to_string(),
            l.lease_flushes.to_string(),
        ],
        None => vec!["null".to_string(); LEASE_HEADER.split(',').count()],
    };
    LEASE_HEADER.split(',').zip(values).collect()
}

fn has_lease(runs: &[RunSummary]) -> bool {
    runs.iter().any(|r| r.lease.is_some())
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
    let lease = has_lease(runs);
    let mut out = String::from(CSV_HEADER);
    if lease {
        out.push(',');
        out.push_str(LEASE_HEADER);
    }
    out.push('\n');
    for r in runs {
        let mut all = fields(r);
        if lease {
            all.extend(lease_fields(r));
        }
        let row: Vec<String> = all
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
        let mut all = fields(r);
        if r.lease.is_some() {
            all.extend(lease_fields(r));
        }
        let body: Vec<String> = all
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_str("a\"b\n"), "\"a\\\"b\\n\"");
    }
}
