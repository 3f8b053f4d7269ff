//! The simulated cluster of one run: each node's router, the network
//! between them, which nodes are up, cut off and serving, and the moves of
//! the virtual clock that must wait for them. The membership here is an
//! oracle (it knows who is reachable) told after the detection delay; what
//! a view change means for the cache is the production policy: each
//! router's `Router::apply_view`, and `Router::flush` on every member it
//! names, delivered at once. Under the `lease` policy each node also runs
//! the production `LeaseKeeper` through its own way to the database
//! (`store::NodeStore`), which a cut-off fails and a pause holds up.

use std::sync::Arc;
use std::time::Duration;

use sessiond_actors::memory::MemoryNet;
use sessiond_actors::{CacheConfig, FlushReason, LeaseKeeper, Observer, Router};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::measure::SimObserver;
use crate::store::{NodeStore, Reach, SimStore};
use crate::SimError;

/// A change to the cluster, on the disruptions' schedule.
pub(super) enum Action {
    Isolate(usize),
    Heal(usize),
    Crash(usize),
    Restart(usize),
    /// Cut off from the others and the database, or joined back.
    CutOff(usize, bool),
    /// Paused for so long, or resumed (`None`).
    Pause(usize, Option<Duration>),
    Converge,
}

pub(super) struct Cluster {
    names: Vec<Arc<str>>,
    routers: Vec<Option<Router>>,
    net: Option<Arc<MemoryNet>>,
    up: Vec<bool>,
    isolated: Vec<bool>,
    /// Takes client traffic (up, and known to the load balancer).
    serving: Vec<bool>,
    entries: Vec<usize>,
    config: CacheConfig,
    /// When each live node's supervisor started: its sweep ticks at
    /// that instant plus whole periods.
    sweep_from: Vec<Option<Instant>>,
    /// The virtual time as last read (or set) by the driver.
    pub(super) now: Instant,
    /// Time must not move before the runtime has gone idle once: a node has
    /// just started (its sweep timer starts when its task first runs), or a
    /// sweep may still be passivating.
    settling: bool,
    /// Which nodes reach the database; each node's way to it.
    reach: Arc<Reach>,
    node_stores: Vec<Arc<NodeStore>>,
    /// Each live node's lease keeper (`lease` policy).
    keepers: Vec<Option<JoinHandle<()>>>,
    observer: Arc<SimObserver>,
}

impl Cluster {
    /// The cluster of `names`, none of them started yet; `net` joins them
    /// when there are several.
    pub(super) fn new(
        names: Vec<Arc<str>>,
        net: Option<Arc<MemoryNet>>,
        config: CacheConfig,
        store: Arc<SimStore>,
        observer: Arc<SimObserver>,
    ) -> Cluster {
        let n = names.len();
        let reach = Reach::new(n);
        let node_stores = (0..n)
            .map(|i| Arc::new(NodeStore::new(Arc::clone(&store), i, Arc::clone(&reach))))
            .collect();
        Cluster {
            reach,
            node_stores,
            keepers: (0..n).map(|_| None).collect(),
            routers: vec![None; n],
            net,
            up: vec![false; n],
            isolated: vec![false; n],
            serving: vec![true; n],
            entries: Vec::new(),
            config,
            sweep_from: vec![None; n],
            settling: true,
            now: Instant::now(),
            observer,
            names,
        }
    }

    /// Starts every node and tells each its first view.
    pub(super) async fn start(&mut self) -> Result<(), SimError> {
        for i in 0..self.names.len() {
            self.start_node(i).await?;
        }
        self.converge();
        Ok(())
    }

    async fn start_node(&mut self, i: usize) -> Result<(), SimError> {
        let store: Arc<dyn sessiond_actors::UserStore> = self.node_stores[i].clone();
        let observer: Arc<dyn Observer> = self.observer.clone();
        let router = match &self.net {
            None => {
                Router::start(
                    self.config.clone(),
                    store,
                    observer,
                    Arc::clone(&self.names[i]),
                )
                .await
            }
            Some(net) => {
                Router::start_linked(
                    self.config.clone(),
                    store,
                    observer,
                    Arc::clone(&self.names[i]),
                    Some(net.link(i)),
                )
                .await
            }
        }
        .map_err(|e| SimError::Runtime(format!("starting node {}: {e}", self.names[i])))?;
        if let Some(net) = &self.net {
            net.set_router(i, Some(router.clone()));
        }
        // Under the `lease` policy, the keeper renews through the node's own
        // way to the database, which faults interrupt.
        if let Some(keeper) = LeaseKeeper::new(router.clone(), self.node_stores[i].clone()) {
            self.keepers[i] = Some(tokio::spawn(keeper.run()));
        }
        self.routers[i] = Some(router);
        self.up[i] = true;
        self.sweep_from[i] = Some(Instant::now());
        self.settling = true;
        Ok(())
    }

    /// The period of the supervisor's sweep (hibernation and idle
    /// sessions), the one `Supervisor::pre_start` uses.
    fn sweep_period(&self) -> Duration {
        self.config.sweep_period()
    }

    /// Moves virtual time to `at` (ns after `start`) and returns the
    /// instant reached.
    ///
    /// Sleeping until `at` wakes at the next whole millisecond (tokio's
    /// timer wheel) once every runnable task has run. When nothing else can
    /// be due before then and nothing is left to run (`quiet`: no request,
    /// refresh or invalidation in flight; no node just started; no
    /// supervisor sweep due now or at the last wake-up, whose passivations
    /// may still be under way), the clock is advanced to that same instant
    /// directly: cheaper than a timer, and the same result.
    pub(super) async fn wait_until(&mut self, start: Instant, at: u64, quiet: bool) -> Instant {
        let now = self.now;
        let target = start + Duration::from_nanos(at);
        if target <= now {
            return now;
        }
        let rounded = start + Duration::from_millis(at.div_ceil(1_000_000));
        let sweep_due = self.next_sweep(now).is_some_and(|s| s <= rounded);
        if quiet && !self.settling && !sweep_due && rounded > now {
            // Nothing can run while the clock moves: it lands on `rounded`
            // exactly, which saves reading it (a lock, in paused time).
            tokio::time::advance(rounded - now).await;
            debug_assert_eq!(Instant::now(), rounded);
            self.now = rounded;
        } else {
            tokio::time::sleep_until(target).await;
            self.settling = sweep_due;
            self.now = Instant::now();
        }
        self.now
    }

    /// The first sweep tick of any node after `now`.
    fn next_sweep(&self, now: Instant) -> Option<Instant> {
        let period = self.sweep_period().as_nanos().max(1);
        self.sweep_from
            .iter()
            .flatten()
            .map(|from| {
                let since = now.saturating_duration_since(*from).as_nanos();
                let k = since / period + 1;
                *from + Duration::from_nanos((k * period) as u64)
            })
            .min()
    }

    /// The members node `i` can see now.
    fn reachable(&self, i: usize) -> Vec<usize> {
        if self.isolated[i] {
            return vec![i];
        }
        (0..self.names.len())
            .filter(|j| self.up[*j] && !self.isolated[*j])
            .collect()
    }

    fn refresh_entries(&mut self) {
        self.entries = (0..self.names.len()).filter(|i| self.serving[*i]).collect();
    }

    /// Tells every live node the members it can reach, through the
    /// production policy, and delivers the flushes it asks for; then every
    /// live node takes traffic.
    fn converge(&mut self) {
        for i in 0..self.names.len() {
            let Some(router) = &self.routers[i] else {
                continue;
            };
            let view: Vec<&str> = self
                .reachable(i)
                .into_iter()
                .map(|j| &*self.names[j])
                .collect();
            let change = router.apply_view(&view);
            for name in change.must_flush() {
                self.flush(name);
            }
        }
        self.serving.clone_from(&self.up);
        self.refresh_entries();
    }

    fn flush(&self, name: &str) {
        let node = self.names.iter().position(|n| &**n == name);
        if let Some(router) = node.and_then(|j| self.routers[j].as_ref()) {
            router.flush(FlushReason::Rejoined);
        }
    }

    pub(super) async fn apply(&mut self, action: Action) -> Result<(), SimError> {
        match action {
            Action::Isolate(i) | Action::Heal(i) => {
                let cut = matches!(action, Action::Isolate(_));
                self.isolated[i] = cut;
                if let Some(net) = &self.net {
                    net.set_isolated(i, cut);
                }
            }
            Action::CutOff(i, cut) => {
                self.reach.set_cut(i, cut);
                self.isolated[i] = cut;
                if let Some(net) = &self.net {
                    net.set_isolated(i, cut);
                }
            }
            Action::Pause(i, length) => {
                let until = length.map(|l| Instant::now() + l);
                self.reach.set_paused(i, until);
                self.isolated[i] = until.is_some();
                if let Some(net) = &self.net {
                    net.set_isolated(i, until.is_some());
                }
            }
            Action::Crash(i) => {
                if let Some(k) = self.keepers[i].take() {
                    k.abort();
                }
                if let Some(r) = self.routers[i].take() {
                    r.stop().await;
                }
                if let Some(net) = &self.net {
                    net.set_router(i, None);
                }
                self.sweep_from[i] = None;
                self.up[i] = false;
                self.serving[i] = false;
                self.refresh_entries();
            }
            // A restarted node sees only itself, as a fresh process does,
            // until the membership converges.
            Action::Restart(i) => {
                if !self.up[i] {
                    self.start_node(i).await?;
                }
            }
            Action::Converge => self.converge(),
        }
        // Stopping actors, dropped sessions: let them finish before time moves.
        self.settling = true;
        Ok(())
    }

    /// Stops every live node.
    pub(super) async fn stop(&mut self) {
        for k in self.keepers.iter_mut().filter_map(Option::take) {
            k.abort();
        }
        for r in self.routers.iter().flatten() {
            r.stop().await;
        }
    }

    /// Node `i`'s way to the database (for its writes' confirmations).
    pub(super) fn node_store(&self, i: usize) -> Arc<NodeStore> {
        Arc::clone(&self.node_stores[i])
    }

    pub(super) fn reach(&self) -> &Reach {
        &self.reach
    }

    pub(super) fn entry(&self, pick: u32) -> Option<(usize, Router)> {
        if self.entries.is_empty() {
            return None;
        }
        let i = self.entries[pick as usize % self.entries.len()];
        self.routers[i].clone().map(|r| (i, r))
    }
}
