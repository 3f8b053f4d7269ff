//! The nodes run the actors crate's membership policy, not a copy of it:
//! its own log lines (target `sessiond_actors::membership`, written only
//! by `Router::apply_view` and `Router::flush`) show a paused peer leaving
//! the view and coming back, the flush it is then told to make, and the
//! flush it makes itself for having been paused. The simulation's
//! counterpart is `simulation/tests/membership.rs`.

use std::path::Path;
use std::time::{Duration, Instant};

use super::*;
use crate::helpers::Backend;

const POLICY: &str = "sessiond_actors::membership:";

/// The policy's lines in a node's log that contain every one of `parts`.
fn policy_lines(log: &Path, parts: &[&str]) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(POLICY) && parts.iter().all(|p| l.contains(p)))
        .count()
}

/// Waits until `log` holds at least `at_least` such lines.
async fn wait_lines(log: &Path, parts: &[&str], at_least: usize, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while policy_lines(log, parts) < at_least {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

#[tokio::test]
async fn a_paused_node_leaves_returns_and_flushes_through_the_actors_policy() {
    let cluster = Cluster::new(Backend::Sqlite).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let (log1, log2) = (dir.path().join("m1.log"), dir.path().join("m2.log"));
    let filter = "warn,sessiond_actors=debug";
    let m1 = cluster.start_with("m1", free_port(), &[], COOKIE, &[], Some((&log1, filter)));
    let m2 = cluster.start_with(
        "m2",
        free_port(),
        &[&m1],
        COOKIE,
        &[],
        Some((&log2, filter)),
    );
    for n in [&m1, &m2] {
        assert!(wait_members(n, &["m1", "m2"], Duration::from_secs(20)).await);
    }
    let came = ["membership view applied", r#"came=["m2"]"#];
    let rejoined = ["cache flushed", "reason=rejoined"];
    // Each saw the other come and told it to flush.
    let wait = Duration::from_secs(5);
    assert!(
        wait_lines(&log1, &came, 1, wait).await,
        "m1 never applied m2's arrival"
    );
    assert!(
        wait_lines(&log2, &rejoined, 1, wait).await,
        "m2 never flushed on joining"
    );
    assert!(
        wait_lines(&log1, &rejoined, 1, wait).await,
        "m1 never flushed on joining"
    );
    let flushed_before = policy_lines(&log2, &rejoined);

    // Paused past the failure detector and past its own pause check
    // (six heartbeats).
    signal(&m2, "-STOP");
    let stopped = Instant::now();
    assert!(wait_members(&m1, &["m1"], Duration::from_secs(5)).await);
    tokio::time::sleep(Duration::from_millis(2_500).saturating_sub(stopped.elapsed())).await;
    signal(&m2, "-CONT");
    for n in [&m1, &m2] {
        assert!(wait_members(n, &["m1", "m2"], Duration::from_secs(10)).await);
    }
    let went = ["membership view applied", r#"went=["m2"]"#];
    assert!(
        wait_lines(&log1, &went, 1, wait).await,
        "m1 never applied m2's leaving"
    );
    assert!(
        wait_lines(&log1, &came, 2, wait).await,
        "m1 never applied m2's return"
    );
    assert!(
        wait_lines(&log2, &rejoined, flushed_before + 1, wait).await,
        "m2 was not told to flush when it came back"
    );
    assert!(
        wait_lines(&log2, &["cache flushed", "reason=paused"], 1, wait).await,
        "m2 did not flush after its pause"
    );
    cluster.finish(vec![m1, m2]).await;
}
