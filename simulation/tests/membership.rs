//! The simulation's cluster runs the production membership policy, not a
//! copy: every view change and every flush it makes is reported by the
//! actors crate's `Router::apply_view` and `Router::flush` (the only code
//! that reports them), in the numbers the policy implies for a schedule.
//! The service's counterpart is `tests/api/cluster/membership.rs`.

use std::time::Duration;

use sessiond_actors::{FlushReason, MissReason};
use sessiond_sim::harness::{self, RawRun};
use sessiond_sim::measure::SimObserver;
use sessiond_sim::{parse_args, scenario, Policy};

fn run(flags: &str) -> RawRun {
    let args = parse_args(flags.split_whitespace()).expect("flags parse");
    let scenario = scenario(&args).expect("scenario");
    harness::run(
        &scenario,
        Policy::Ttl,
        Duration::from_secs(120),
        &mut |_| {},
    )
    .expect("runs")
}

const BASE: &str = "--users 100 --rps 20 --duration 5m --nodes 3 --link-delay 1ms \
    --role-change-rate 0 --deactivation-rate 0 --seed 4";

#[test]
fn views_and_flushes_follow_the_production_policy() {
    let raw = run(&format!("{BASE} --partition n2@1m+1m --crash n3@3m+1m"));
    let o = &raw.observer;
    // Start: three views, each naming the two others (6 flushes).
    // n2 cut off, then back: three views twice; on return n2 must flush
    // (named by n1 and n3) and so must n1 and n3 (named by n2): 4.
    // n3 crashes: two views. It restarts seeing only itself, then all
    // converge: three views; n3 flushes twice, n1 and n2 once each: 4.
    assert_eq!(SimObserver::get(&o.view_changes), 3 + 3 + 3 + 2 + 3);
    assert_eq!(o.flushes(FlushReason::Rejoined), 6 + 4 + 4);
    assert_eq!(o.flushes(FlushReason::Paused), 0);
    // Under `ttl` nothing else invalidates: these misses are the flushes'.
    assert!(o.misses(MissReason::Invalidated) > 0);

    let calm = run(BASE);
    let o = &calm.observer;
    assert_eq!(SimObserver::get(&o.view_changes), 3);
    assert_eq!(
        o.flushes(FlushReason::Rejoined),
        6,
        "at start, of empty caches"
    );
    assert_eq!(o.misses(MissReason::Invalidated), 0);
}
