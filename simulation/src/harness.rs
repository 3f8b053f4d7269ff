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
//! `Router::invalidate`. Node crashes, restarts and partitions are applied
//! on their schedule; the membership, which production learns from its
//! cluster, is told by the harness after the detection delay.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use sessiond_actors::{CacheConfig, InvalidationSource, Lookup, Observer, Router, Status};
use tokio::time::Instant;

use crate::args::{LatencyModel, Policy};
use crate::measure::{Change, ChangeKind, Recorder, Sent, SimObserver};
use crate::net::SimNet;
use crate::rng::{stream, Rng};
use crate::store::{SimStore, Write};
use crate::workload::{EventKind, Popularity, Workload, WorkloadSpec};
use crate::{lock, SimError};

/// The roles a role change cycles through.
const ROLES: [&str; 3] = ["viewer", "editor", "admin"];

/// A scheduled disruption, resolved to a node index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scheduled {
    pub node: usize,
    pub crash: bool,
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
    pub max_sessions: usize,
    /// Wait for every event on a timer, never advancing the clock directly
    /// (slower; the results are the same, which a test checks).
    pub timer_per_event: bool,
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
    rt.block_on(drive(scenario, policy, ttl, progress))
}

enum Action {
    Isolate(usize),
    Heal(usize),
    Crash(usize),
    Restart(usize),
    Converge,
}

struct Cluster {
    names: Vec<Arc<str>>,
    routers: Vec<Option<Router>>,
    net: Option<Arc<SimNet>>,
    up: Vec<bool>,
    isolated: Vec<bool>,
    /// Takes client traffic (up, and known to the load balancer).
    serving: Vec<bool>,
    /// Each node's membership view, as last told.
    views: Vec<Vec<usize>>,
    entries: Vec<usize>,
    config: CacheConfig,
    /// When each live node's supervisor started: its sweep ticks at
    /// that instant plus whole periods.
    sweep_from: Vec<Option<Instant>>,
    /// The virtual time as last read (or set) by the driver.
    now: Instant,
    /// Time must not move before the runtime has gone idle once: a node has
    /// just started (its sweep timer starts when its task first runs), or a
    /// sweep may still be passivating.
    settling: bool,
    store: Arc<SimStore>,
    observer: Arc<SimObserver>,
}

impl Cluster {
    async fn start_node(&mut self, i: usize) -> Result<(), SimError> {
        let store: Arc<dyn sessiond_actors::UserStore> = self.store.clone();
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
    async fn wait_until(&mut self, start: Instant, at: u64, quiet: bool) -> Instant {
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

    fn tell_view(&mut self, i: usize, view: Vec<usize>) {
        if let Some(r) = &self.routers[i] {
            let names: Vec<&str> = view.iter().map(|j| &*self.names[*j]).collect();
            r.set_members(&names);
        }
        self.views[i] = view;
    }

    fn refresh_entries(&mut self) {
        self.entries = (0..self.names.len()).filter(|i| self.serving[*i]).collect();
    }

    /// A node that sees members it did not see before may have missed
    /// their invalidations: it drops its whole cache.
    async fn drop_cache(&self, i: usize) {
        if let Some(r) = &self.routers[i] {
            r.invalidate_all_local().await;
        }
    }

    async fn apply(&mut self, action: Action) -> Result<(), SimError> {
        match action {
            Action::Isolate(i) | Action::Heal(i) => {
                let cut = matches!(action, Action::Isolate(_));
                self.isolated[i] = cut;
                if let Some(net) = &self.net {
                    net.set_isolated(i, cut);
                }
            }
            Action::Crash(i) => {
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
            Action::Restart(i) => {
                if !self.up[i] {
                    self.start_node(i).await?;
                    let view = self.reachable(i);
                    self.tell_view(i, view);
                }
            }
            Action::Converge => {
                for i in 0..self.names.len() {
                    if !self.up[i] {
                        continue;
                    }
                    let view = self.reachable(i);
                    if view == self.views[i] {
                        continue;
                    }
                    let gained = view.iter().any(|j| !self.views[i].contains(j));
                    self.tell_view(i, view);
                    if gained {
                        self.drop_cache(i).await;
                    }
                }
                self.serving.clone_from(&self.up);
                self.refresh_entries();
            }
        }
        // Stopping actors, dropped sessions: let them finish before time moves.
        self.settling = true;
        Ok(())
    }

    fn entry(&self, pick: u32) -> Option<(usize, Router)> {
        if self.entries.is_empty() {
            return None;
        }
        let i = self.entries[pick as usize % self.entries.len()];
        self.routers[i].clone().map(|r| (i, r))
    }
}

fn timeline(scenario: &Scenario) -> Vec<(u64, usize, Action)> {
    let mut t = Vec::new();
    let detect = scenario.detect;
    for d in &scenario.disruptions {
        let ns = |x: Duration| x.as_nanos() as u64;
        let end = d.at + d.length;
        let (down, up) = if d.crash {
            (Action::Crash(d.node), Action::Restart(d.node))
        } else {
            (Action::Isolate(d.node), Action::Heal(d.node))
        };
        t.push((ns(d.at), t.len(), down));
        t.push((ns(d.at + detect), t.len(), Action::Converge));
        t.push((ns(end), t.len(), up));
        t.push((ns(end + detect), t.len(), Action::Converge));
    }
    t.sort_by_key(|(at, seq, _)| (*at, *seq));
    t
}

/// Polls a future once with the caller's context.
async fn poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *f).poll(cx))).await
}

async fn drive(
    scenario: &Scenario,
    policy: Policy,
    ttl: Duration,
    progress: &mut dyn FnMut(f64),
) -> Result<RawRun, SimError> {
    let seed = scenario.workload.seed;
    let users = scenario.workload.users;
    let n = scenario.nodes;
    let config = CacheConfig {
        ttl: if policy == Policy::None {
            Duration::ZERO
        } else {
            ttl
        },
        idle_timeout: scenario.idle_timeout,
        hibernate_after: Some(scenario.hibernate_after),
        max_sessions: scenario.max_sessions,
        call_timeout: scenario.call_timeout,
    };
    let store = Arc::new(SimStore::new(
        users,
        scenario.store_latency.clone(),
        Rng::stream(seed, stream::STORE_LATENCY),
        scenario.replica_lag,
    ));
    let observer = Arc::new(SimObserver::default());
    let names: Vec<Arc<str>> = (0..n).map(|i| Arc::from(Scenario::node_name(i))).collect();
    let net = (n > 1).then(|| {
        SimNet::new(
            names.clone(),
            scenario.link_delay.clone(),
            scenario.link_loss,
            Rng::stream(seed, stream::LINK),
        )
    });
    let mut cluster = Cluster {
        routers: vec![None; n],
        net: net.clone(),
        up: vec![false; n],
        isolated: vec![false; n],
        serving: vec![true; n],
        views: vec![Vec::new(); n],
        entries: Vec::new(),
        config,
        sweep_from: vec![None; n],
        settling: true,
        now: Instant::now(),
        store: Arc::clone(&store),
        observer: Arc::clone(&observer),
        names,
    };
    for i in 0..n {
        cluster.start_node(i).await?;
    }
    if n > 1 {
        for i in 0..n {
            let view = cluster.reachable(i);
            cluster.tell_view(i, view);
        }
    }
    cluster.refresh_entries();

    if store.has_replica() {
        let store = Arc::clone(&store);
        let lag = scenario.replica_lag;
        tokio::spawn(async move {
            loop {
                match store.replicate_due() {
                    Some(next) => tokio::time::sleep_until(next).await,
                    None => tokio::time::sleep(lag).await,
                }
            }
        });
    }

    let recorder = Arc::new(Mutex::new(Recorder::default()));
    let pending = Arc::new(AtomicU64::new(0));
    let mut versions = vec![1i64; users as usize + 1];
    let mut roles = vec![0usize; users as usize + 1];
    let mut active = vec![true; users as usize + 1];

    let start = Instant::now();
    cluster.now = start;
    let since_start = |now: Instant| now.saturating_duration_since(start).as_nanos() as u64;
    let duration_ns = scenario.workload.duration_ns.max(1);
    let mut shown = 0u64;
    let mut actions = timeline(scenario).into_iter().peekable();
    let mut events =
        Workload::new(scenario.workload.clone(), Arc::clone(&scenario.popularity)).peekable();

    loop {
        let next_action = actions.peek().map(|a| a.0);
        let next_event = events.peek().map(|e| e.at_ns);
        let at = match (next_action, next_event) {
            (None, None) => break,
            (Some(a), Some(e)) => a.min(e),
            (Some(a), None) => a,
            (None, Some(e)) => e,
        };
        if at >= duration_ns {
            break;
        }
        let quiet = !scenario.timer_per_event
            && pending.load(Ordering::Relaxed) == 0
            && !store.has_replica();
        let now = cluster.wait_until(start, at, quiet).await;
        let pct = at * 100 / duration_ns;
        if pct > shown {
            shown = pct;
            progress(pct as f64 / 100.0);
        }
        if next_action == Some(at) {
            if let Some((_, _, action)) = actions.next() {
                cluster.apply(action).await?;
            }
            // Stopping or starting nodes may have let time move.
            cluster.now = Instant::now();
            continue;
        }
        let Some(event) = events.next() else { break };
        let now_ns = since_start(now);
        let user = event.user;
        let Some((node, router)) = cluster.entry(event.pick) else {
            if event.kind == EventKind::Request {
                lock(&recorder).answer(
                    Sent {
                        user,
                        node: 0,
                        at_ns: now_ns,
                        version: versions[user as usize],
                    },
                    &Err(sessiond_actors::ResolveError::Stopped),
                    Duration::ZERO,
                );
            }
            continue;
        };
        match event.kind {
            EventKind::Request => {
                let sent = Sent {
                    user,
                    node,
                    at_ns: now_ns,
                    version: versions[user as usize],
                };
                let mut lookup =
                    Box::pin(async move { router.resolve(user, Lookup::Resolve).await });
                match poll_once(&mut lookup).await {
                    Poll::Ready(result) => lock(&recorder).answer(sent, &result, Duration::ZERO),
                    Poll::Pending => {
                        let recorder = Arc::clone(&recorder);
                        let pending = Arc::clone(&pending);
                        pending.fetch_add(1, Ordering::Relaxed);
                        let sent_at = now;
                        tokio::spawn(async move {
                            let result = lookup.await;
                            lock(&recorder).answer(sent, &result, sent_at.elapsed());
                            pending.fetch_sub(1, Ordering::Relaxed);
                        });
                    }
                }
            }
            EventKind::ForceRefresh => {
                let recorder = Arc::clone(&recorder);
                let pending = Arc::clone(&pending);
                pending.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    let result = router.resolve(user, Lookup::ForceRefresh).await;
                    let mut rec = lock(&recorder);
                    rec.forced += 1;
                    if result.is_err() {
                        rec.forced_errors += 1;
                    }
                    drop(rec);
                    pending.fetch_sub(1, Ordering::Relaxed);
                });
            }
            EventKind::RoleChange | EventKind::StatusChange => {
                let u = user as usize;
                let (write, kind) = if event.kind == EventKind::RoleChange {
                    roles[u] = (roles[u] + 1) % ROLES.len();
                    (Write::Role(ROLES[roles[u]]), ChangeKind::Role)
                } else {
                    active[u] = !active[u];
                    let status = if active[u] {
                        Status::Active
                    } else {
                        Status::Deactivated
                    };
                    (Write::Status(status), ChangeKind::Status)
                };
                let version = store.write(user, write);
                versions[u] = version;
                lock(&recorder).change(Change {
                    user,
                    at_ns: now_ns,
                    version,
                    kind,
                    node,
                    stale_answers: 0,
                    worst: None,
                });
                if policy == Policy::Push {
                    pending.fetch_add(1, Ordering::Relaxed);
                    let pending = Arc::clone(&pending);
                    tokio::spawn(async move {
                        router
                            .invalidate(user, Some(version), InvalidationSource::Api)
                            .await;
                        pending.fetch_sub(1, Ordering::Relaxed);
                    });
                }
            }
        }
    }

    // Let the last answers come in.
    let end = start + scenario.duration();
    if end > Instant::now() {
        tokio::time::sleep_until(end).await;
    }
    let give_up = Instant::now() + scenario.call_timeout * 4 + Duration::from_secs(60);
    while pending.load(Ordering::Relaxed) > 0 && Instant::now() < give_up {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    progress(1.0);
    for r in cluster.routers.iter().flatten() {
        r.stop().await;
    }
    let recorder = std::mem::take(&mut *lock(&recorder));
    let (messages, lost, refused, max_link_delay) = match &net {
        Some(net) => (
            net.stats.messages.load(Ordering::Relaxed),
            net.stats.lost.load(Ordering::Relaxed),
            net.stats.refused.load(Ordering::Relaxed),
            net.max_delay(),
        ),
        None => (0, 0, 0, Duration::ZERO),
    };
    Ok(RawRun {
        recorder,
        observer,
        queries: store.queries(),
        max_store_latency: store.max_latency(),
        max_link_delay,
        messages,
        lost,
        refused,
    })
}
