//! The acceptance checks of the simulation harness, on scenarios small
//! enough for a debug build: determinism, agreement with the closed form,
//! and the stale-window invariants (held, and caught when broken).

use std::time::Duration;

use sessiond_sim::report::{self, RunSummary};
use sessiond_sim::{execute, parse_args, Policy, Report, SimError};

fn args(flags: &str) -> sessiond_sim::SimArgs {
    parse_args(flags.split_whitespace()).expect("flags parse")
}

fn run(flags: &str) -> (Result<Report, SimError>, String) {
    let mut out = Vec::new();
    let result = execute(&args(flags), &mut out, false);
    (result, String::from_utf8(out).expect("utf-8 table"))
}

fn files(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    ["runs.csv", "runs.json", "simulation.svg"]
        .iter()
        .map(|f| {
            let bytes = std::fs::read(dir.join(f)).expect("file written");
            (f.to_string(), bytes)
        })
        .collect()
}

/// A scenario that touches every source of randomness and every kind of
/// event: Zipf popularity, a daily ramp, three nodes over a jittery lossy
/// link, a partition and a crash, log-normal store latency, role and status
/// changes and forced refreshes.
const BUSY: &str = "--users 300 --rps 30 --duration 20m --ttl 1m,3m --zipf 0.9 --diurnal 0.5 \
    --nodes 3 --link-delay uniform:1ms:4ms --link-loss 0.002 --partition n2@5m+2m \
    --crash 12m+1m --store-latency lognormal:2ms:0.6 --role-change-rate 120/h \
    --deactivation-rate 30/h --force-refresh-rate 60/h";

#[test]
fn same_seed_same_bytes() {
    let dirs = [
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    ];
    let mut outputs = Vec::new();
    // One run at a time, then three at once: the same bytes.
    for (dir, jobs) in dirs.iter().zip([1, 3]) {
        let path = dir.path().to_str().expect("utf-8 path");
        let (result, table) = run(&format!("{BUSY} --seed 7 --jobs {jobs} --out {path}"));
        let report = result.expect("invariants hold");
        assert_eq!(report.runs.len(), 5, "none + ttl/push at two TTLs");
        outputs.push((table, files(dir.path())));
    }
    assert!(outputs[0].0.contains("seed 7"), "the seed is printed");
    assert_eq!(outputs[0].0, outputs[1].0, "stdout differs between runs");
    assert_eq!(outputs[0].1, outputs[1].1, "files differ between runs");
    let svg = String::from_utf8_lossy(&outputs[0].1[2].1).to_string();
    assert!(svg.starts_with("<svg") && svg.contains("polyline"));

    let (_, other) = run(&format!("{BUSY} --seed 8"));
    assert_ne!(outputs[0].0, other, "another seed, another workload");
}

#[test]
fn ttl_only_agrees_with_the_closed_form_on_uniform_traffic() {
    // λ = 0.1/s per user; λ·TTL = 3 and 12: 75.0% and 92.3%.
    let (result, table) = run(
        "--users 200 --rps 20 --duration 2h --policy ttl --ttl 30s,2m \
         --role-change-rate 0 --deactivation-rate 0 --seed 3",
    );
    let report = result.expect("runs");
    assert!(table.contains("closed%"));
    for r in &report.runs {
        assert_eq!(r.policy, Policy::Ttl);
        let cf = r.closed_form.expect("closed form for ttl runs");
        assert!(
            (r.hit_rate - cf).abs() <= 0.01,
            "ttl {:?}: measured {} vs closed form {}\n{table}",
            r.ttl,
            r.hit_rate,
            cf
        );
        assert!(!r.disagrees());
    }
}

#[test]
fn invariants_hold_and_push_is_bounded_by_the_link() {
    let (result, table) = run(
        "--users 200 --rps 40 --duration 30m --ttl 2m --nodes 3 --link-delay uniform:1ms:5ms \
         --store-latency uniform:1ms:3ms --role-change-rate 600/h --deactivation-rate 120/h \
         --seed 11",
    );
    let report = result.unwrap_or_else(|e| panic!("{e}\n{table}"));
    assert!(table.contains("invariants: all hold."));
    let (none, ttl, push) = (&report.runs[0], &report.runs[1], &report.runs[2]);
    assert_eq!(
        (none.policy, ttl.policy, push.policy),
        (Policy::None, Policy::Ttl, Policy::Push)
    );
    assert_eq!(none.stale.stale_answers, 0, "no cache, never stale");
    assert!(
        ttl.stale.stale_answers > 0,
        "TTL only serves changed roles\n{table}"
    );
    assert!(ttl.stale.max <= ttl.bound);
    // Push: within one link delay plus one store read.
    assert!(push.stale.max <= Duration::from_millis(8), "{table}");
    assert!(push.hit_rate > ttl.hit_rate - 0.005, "{table}");
}

#[test]
fn a_lagging_replica_is_caught() {
    let (result, table) = run(
        "--users 100 --rps 20 --duration 15m --ttl 1m --policy push \
         --role-change-rate 600/h --replica-lag 3s --seed 5",
    );
    match result {
        Err(SimError::Invariant { count, first }) => {
            assert!(count > 0);
            assert!(first.contains("was still answered with"), "{first}");
        }
        other => panic!("expected a violation, got {:?}\n{table}", other.map(|_| ())),
    }
    assert!(table.contains("INVARIANT VIOLATED"), "{table}");
}

#[test]
fn bad_flags_are_refused() {
    assert!(
        parse_args(["--ttl", "5"]).is_err(),
        "a bare number has no unit"
    );
    assert!(parse_args(["--link-loss", "1.5"]).is_err());
    assert!(parse_args(["--policy", "sometimes"]).is_err());
    assert!(matches!(
        sessiond_sim::scenario(&args("--crash 1m+1m")),
        Err(SimError::Invalid(_))
    ));
}

#[test]
fn advancing_the_clock_directly_changes_nothing() {
    // The driver skips the timer when nothing else can be waiting on one.
    // Sweeps every 50 ms (idle timeout 1 s) and records that outlive idle
    // sessions (TTL 5 s) make a late sweep show in the hit counts.
    let a = args(
        "--users 60 --rps 60 --duration 4m --ttl 5s --zipf 1.0 --nodes 3 \
         --link-delay uniform:1ms:3ms --crash 1m+20s --idle-timeout 1s \
         --role-change-rate 600/h --force-refresh-rate 300/h \
         --store-latency uniform:1ms:4ms --seed 13 --hibernate-after 100ms",
    );
    let plan = sessiond_sim::plan(&a);
    let mut scenario = sessiond_sim::scenario(&a).expect("scenario");
    let fast = sessiond_sim::run_plan(&scenario, &plan, false, 1).expect("runs");
    scenario.timer_per_event = true;
    let exact = sessiond_sim::run_plan(&scenario, &plan, false, 1).expect("runs");
    let table = |runs: &[RunSummary]| report::table(13, &scenario, runs);
    assert_eq!(table(&fast), table(&exact));
    assert_eq!(report::csv(&fast), report::csv(&exact));
}

#[test]
fn hibernating_actors_changes_no_answer() {
    // The simulation lets an actor go quiet for the whole idle timeout
    // before it hibernates; production stops it after a tenth of that.
    // Only memory may differ: every figure of the table must be the same.
    let flags = "--users 200 --rps 40 --duration 10m --ttl 20s,2m --zipf 0.8 --nodes 3 \
         --link-delay uniform:1ms:3ms --crash 4m+30s --idle-timeout 1m \
         --role-change-rate 600/h --force-refresh-rate 120/h --seed 21";
    let (kept, kept_table) = run(flags);
    let (hibernating, hibernating_table) = run(&format!("{flags} --hibernate-after 6s"));
    let (kept, hibernating) = (kept.expect("runs"), hibernating.expect("runs"));
    let hibernated = |r: &Report| r.runs.iter().map(|run| run.hibernated).sum::<u64>();
    let (few, many) = (hibernated(&kept), hibernated(&hibernating));
    assert!(
        many > 2 * few + 100,
        "the scenario must make actors hibernate far more often: {few} vs {many}"
    );
    assert_eq!(kept_table, hibernating_table);
}
