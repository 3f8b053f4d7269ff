//! The `lease` policy under faults: a partition from the peers, a cut-off
//! from peers and database, and pauses shorter and longer than the lease.
//! Every answer is checked against the writes acknowledged before its
//! request was sent ("no stale answer after an acknowledgement"); the
//! check is shown to fail on a store that lags behind its writes.

use std::time::Duration;

use sessiond_sim::report::LeaseFigures;
use sessiond_sim::{execute, parse_args, Report, SimError};

const LEASE: Duration = Duration::from_secs(2);

/// A partition of n1 (peers only), a cut-off of n2 (peers and database),
/// a pause of n3 longer than the lease and one of n1 shorter than it,
/// with writes every half second or so.
fn faults(nodes: u32) -> String {
    format!(
        "--users 100 --rps 50 --duration 2m --ttl 1m --policy lease --nodes {nodes} \
         --partition n1@10s+15s --cut-off n2@40s+20s --pause n3@70s+5s --pause n1@90s+1200ms \
         --role-change-rate 7200/h --deactivation-rate 1800/h --seed 3"
    )
}

fn run(flags: &str) -> (Result<Report, SimError>, String) {
    let args = parse_args(flags.split_whitespace()).expect("flags parse");
    let mut out = Vec::new();
    let result = execute(&args, &mut out, false);
    (result, String::from_utf8(out).expect("utf-8 table"))
}

fn lease_run(flags: &str) -> (LeaseFigures, String) {
    let (result, table) = run(flags);
    let report = result.unwrap_or_else(|e| panic!("{e}\n{table}"));
    assert_eq!(report.runs.len(), 1, "{table}");
    let figures = report.runs[0].lease.clone().expect("a lease run");
    (figures, table)
}

/// What every faulty lease run must show: no stale answer after an
/// acknowledgement, among many checked; the faults bit (writes refused
/// by the cut-off or paused node, lookups read through without a lease,
/// leases lost and regained, writers that waited for a lease to end);
/// and no acknowledgement later than a lease allows.
fn check(l: &LeaseFigures, nodes: u64, table: &str) {
    assert_eq!(l.stale_after_ack, 0, "{table}");
    // Near copies are on, as in the service: many answers came from them,
    // all checked like the rest.
    assert!(
        l.near > 500,
        "answers from near copies: {}\n{table}",
        l.near
    );
    assert!(l.checked > 1000, "answers checked: {}\n{table}", l.checked);
    assert!(l.acked > 200, "{table}");
    assert_eq!(l.unconfirmed, 0, "{table}");
    assert!(
        l.refused > 0,
        "the cut-off or paused node refused writes\n{table}"
    );
    assert!(
        l.unleased > 0,
        "a node read through without a lease\n{table}"
    );
    // Each node's first lease, then n2 (cut off) and n3 (paused beyond
    // its lease) regain theirs after a lapse.
    assert!(l.lease_flushes >= nodes + 2, "{table}");
    assert!(
        l.ack_max > LEASE / 4,
        "some write waited for a holder that could not confirm\n{table}"
    );
    assert!(
        l.ack_max <= LEASE + LEASE / 50 + Duration::from_millis(30),
        "{table}"
    );
    assert!(
        table.contains("stale answers after an acknowledgement: 0"),
        "{table}"
    );
    assert!(table.contains("invariants: all hold."), "{table}");
}

#[test]
fn three_nodes_under_partition_cut_off_and_pauses_answer_nothing_stale_after_an_ack() {
    let (l, table) = lease_run(&format!("{} --jobs 1", faults(3)));
    check(&l, 3, &table);
}

#[test]
fn twenty_nodes_under_the_same_faults_answer_nothing_stale_after_an_ack() {
    let (l, table) = lease_run(&format!("{} --jobs 1", faults(20)));
    check(&l, 20, &table);
}

/// The same faults with 32-character text ids (as Better Auth makes
/// them): placement, the registry, every message and the change log carry
/// text, and nothing stale is answered after an acknowledgement.
#[test]
fn text_ids_under_the_same_faults_answer_nothing_stale_after_an_ack() {
    let (l, table) = lease_run(&format!("{} --id-kind text --jobs 1", faults(3)));
    check(&l, 3, &table);
}

/// Near copies change where lookups are answered, not what the database
/// sees: with them on, the same run reads it no more often than with them
/// off (every lookup forwarded to the owner), and answers most lookups of
/// other nodes' users from the entry node.
#[test]
fn near_copies_read_the_database_no_more_than_forwarding() {
    let base = "--users 100 --rps 50 --duration 5m --ttl 30s --policy lease --nodes 3 \
                --role-change-rate 600/h --deactivation-rate 60/h --seed 5 --jobs 1";
    let (on_report, on_table) = run(base);
    let on = on_report.unwrap_or_else(|e| panic!("{e}\n{on_table}"));
    let (off_report, off_table) = run(&format!("{base} --near-cache off"));
    let off = off_report.unwrap_or_else(|e| panic!("{e}\n{off_table}"));
    let (on, off) = (&on.runs[0], &off.runs[0]);
    let near = on.lease.as_ref().map_or(0, |l| l.near);
    assert_eq!(off.lease.as_ref().map_or(0, |l| l.near), 0, "{off_table}");
    assert!(
        near * 2 > on.remote_answers,
        "most answers about other nodes' users came from near copies: {near} of {}\n{on_table}",
        on.remote_answers
    );
    assert!(
        on.queries <= off.queries + off.queries / 50,
        "database reads with near copies {} vs without {}\n{on_table}\n{off_table}",
        on.queries,
        off.queries
    );
    assert!(
        on.forwarded * 3 < off.forwarded,
        "forwarded {} vs {}",
        on.forwarded,
        off.forwarded
    );
    for r in [on, off] {
        assert_eq!(r.lease.as_ref().map(|l| l.stale_after_ack), Some(0));
    }
}

#[test]
fn a_lease_run_gives_the_same_bytes_for_the_same_seed() {
    let dirs = [
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    ];
    let mut outputs = Vec::new();
    for (dir, jobs) in dirs.iter().zip([1, 3]) {
        let path = dir.path().to_str().expect("utf-8 path");
        let flags = format!(
            "{} --policy none,push,lease --ttl 30s,1m --link-delay uniform:1ms:4ms \
             --store-latency lognormal:2ms:0.6 --jobs {jobs} --out {path}",
            faults(3)
        );
        let (result, table) = run(&flags);
        result.unwrap_or_else(|e| panic!("{e}\n{table}"));
        let files: Vec<Vec<u8>> = ["runs.csv", "runs.json", "simulation.svg"]
            .iter()
            .map(|f| std::fs::read(dir.path().join(f)).expect("file written"))
            .collect();
        outputs.push((table, files));
    }
    assert_eq!(outputs[0].0, outputs[1].0, "stdout differs between runs");
    assert_eq!(outputs[0].1, outputs[1].1, "files differ between runs");
    let json = String::from_utf8_lossy(&outputs[0].1[1]);
    assert!(json.contains("\"stale_after_ack\": 0"), "{json}");
}

#[test]
fn a_store_lagging_behind_acknowledged_writes_is_caught() {
    // Reads from a replica 3 s behind: a node that fetches a user after a
    // write was acknowledged gets the old record. The run must fail and
    // name the stale answer.
    let (result, table) = run(
        "--users 100 --rps 20 --duration 15m --ttl 1m --policy lease --nodes 3 \
         --role-change-rate 600/h --replica-lag 3s --seed 5 --jobs 1",
    );
    match result {
        Err(SimError::Invariant { count, first }) => {
            assert!(count > 0);
            assert!(first.contains("stale after an acknowledgement"), "{first}");
        }
        other => panic!("expected a violation, got {:?}\n{table}", other.map(|_| ())),
    }
    assert!(table.contains("INVARIANT VIOLATED"), "{table}");
    assert!(
        !table.contains("stale answers after an acknowledgement: 0 "),
        "{table}"
    );
}

#[test]
fn acknowledging_without_confirmation_is_caught_under_the_same_faults() {
    // The bug the leases fix: a writer that acknowledges once it has sent
    // its invalidation. A node that did not receive it (cut off, paused,
    // or on the far side of the writer's partition) answers the old
    // record after the acknowledgement.
    let (result, table) = run(&format!("{} --ack-unconfirmed --jobs 1", faults(3)));
    match result {
        Err(SimError::Invariant { count, first }) => {
            assert!(count > 0);
            assert!(first.contains("stale after an acknowledgement"), "{first}");
        }
        other => panic!("expected a violation, got {:?}\n{table}", other.map(|_| ())),
    }
    assert!(table.contains("INVARIANT VIOLATED"), "{table}");
}
