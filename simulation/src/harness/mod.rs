//! One run: a policy and a TTL, played on a current-thread tokio runtime
//! with paused time against the real `sessiond-actors` routers.
//!
//! A single driver task walks the workload in time order. It sleeps (in
//! virtual time) until each event, then sends the lookup to the router of
//! the node the request entered at and polls it once: a cache hit answers
//! on that first poll and is recorded at once, without a task or a wake-up;
//! anything else (a miss waiting for the store, a hop to another node)
//! becomes a task of its own, so the driver never waits for an answer.
//! Admin writes go to the store, and under `push` to the entry node's
//! `Router::invalidate` (under `lease`, `Router::invalidate_confirmed`,
//! with each node's `LeaseKeeper` running). Node crashes, restarts,
//! partitions, cut-offs and pauses are applied
//! on their schedule; the membership, which production learns from its
//! cluster, is told by the harness after the detection delay, and what a
//! view change means for the cache is the production policy
//! (`Router::apply_view`, `Router::flush`), not a copy.
//!
//! - `cluster`: the simulated nodes (routers, network, views, serving set)
//!   and the virtual clock's moves.
//! - `drive`: the driver task: the schedule of disruptions merged with the
//!   workload, each event issued and its answer recorded.

mod cluster;
mod drive;

use std::sync::Arc;
use std::time::Duration;

use crate::args::{IdKind, LatencyModel, Policy};
use crate::measure::{Recorder, SimObserver};
use crate::workload::{Popularity, WorkloadSpec};
use crate::SimError;

/// What a scheduled disruption does to its node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Cut off from the other nodes (it still reaches the database).
    Partition,
    /// Stopped, then restarted with an empty cache.
    Crash,
    /// Cut off from the other nodes and from the database.
    CutOff,
    /// Paused: cut off from the other nodes; its database calls and the
    /// requests that reach it wait until it resumes.
    Pause,
}

impl Fault {
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::Partition => "partition",
            Fault::Crash => "crash",
            Fault::CutOff => "cut-off (peers and database)",
            Fault::Pause => "pause",
        }
    }
}

/// A scheduled disruption, resolved to a node index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scheduled {
    pub node: usize,
    pub kind: Fault,
    pub at: Duration,
    pub length: Duration,
}

impl Scheduled {
    /// From the disruption's start until the membership has settled again.
    pub fn span_ns(&self, detect: Duration) -> (u64, u64) {
        let start = self.at.as_nanos() as u64;
        (start, (self.at + self.length + detect).as_nanos() as u64)
    }
}

/// Everything a run needs besides its policy and TTL.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub workload: WorkloadSpec,
    pub popularity: Arc<Popularity>,
    pub store_latency: LatencyModel,
    pub nodes: usize,
    pub link_delay: LatencyModel,
    pub link_loss: f64,
    pub disruptions: Vec<Scheduled>,
    pub detect: Duration,
    pub idle_timeout: Duration,
    /// How long a session actor may go without a message before it
    /// hibernates.
    pub hibernate_after: Duration,
    pub replica_lag: Duration,
    pub call_timeout: Duration,
    /// The freshness lease under the `lease` policy.
    pub lease: Duration,
    /// Acknowledge `lease` writes without confirmation (a broken mode).
    pub ack_unconfirmed: bool,
    /// Nodes keep near copies of the owner's answers (as the service does
    /// by default).
    pub near: bool,
    pub max_sessions: usize,
    /// Wait for every event on a timer, never advancing the clock directly
    /// (slower; the results are the same, which a test checks).
    pub timer_per_event: bool,
    /// Integer or text user ids.
    pub id_kind: IdKind,
}

impl Scenario {
    pub fn duration(&self) -> Duration {
        Duration::from_nanos(self.workload.duration_ns)
    }

    pub fn node_name(i: usize) -> String {
        format!("n{}", i + 1)
    }
}

/// What one run produced, before it is summarised.
pub struct RawRun {
    pub recorder: Recorder,
    pub observer: Arc<SimObserver>,
    pub queries: u64,
    pub max_store_latency: Duration,
    pub max_link_delay: Duration,
    pub messages: u64,
    pub lost: u64,
    pub refused: u64,
}

/// Runs one policy × TTL on a fresh paused-time runtime. `progress` is
/// called with the share of virtual time done (0..=1).
pub fn run(
    scenario: &Scenario,
    policy: Policy,
    ttl: Duration,
    progress: &mut dyn FnMut(f64),
) -> Result<RawRun, SimError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .map_err(|e| SimError::Runtime(e.to_string()))?;
    rt.block_on(drive::drive(scenario, policy, ttl, progress))
}
