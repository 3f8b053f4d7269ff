//! The simulated database: `sessiond_actors::memory::MemoryStore` (the same
//! table, versions and read-then-wait behaviour the actor tests use) behind
//! a latency model, plus an optional lagging read replica; its change log
//! and lease table for the `lease` policy; and each node's way to it
//! ([`NodeStore`]), which a cut-off or a pause interrupts.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sessiond_actors::memory::{text_id, MemoryStore};
use sessiond_actors::{
    BoxFuture, Changes, Fetched, Holder, LeaseStore, Status, StoreError, UserId, UserStore,
};
use tokio::time::Instant;

use crate::args::IdKind;
use crate::args::LatencyModel;
use crate::lock;
use crate::rng::Rng;

/// A write the harness makes, as an admin would.
#[derive(Clone, Debug)]
pub enum Write {
    Role(&'static str),
    Status(Status),
}

impl Write {
    fn apply(&self, store: &MemoryStore, id: &UserId) -> i64 {
        match self {
            Write::Role(r) => store.update(id, |s| s.user.role = sessiond_actors::Role::new(r)),
            Write::Status(st) => store.update(id, |s| s.user.status = *st),
        }
    }
}

struct Replica {
    table: MemoryStore,
    lag: Duration,
    /// Writes not yet applied to the replica, oldest first, with the instant
    /// they become visible there.
    pending: Mutex<VecDeque<(tokio::time::Instant, i64, Write)>>,
}

/// The store every node of a run reads through.
pub struct SimStore {
    /// User `n`'s id is `ids[n - 1]`.
    ids: Vec<UserId>,
    primary: MemoryStore,
    replica: Option<Replica>,
    latency: LatencyModel,
    rng: Mutex<Rng>,
    queries: AtomicU64,
    max_latency_ns: AtomicU64,
}

impl SimStore {
    /// `users` users with ids 1..=users, role `viewer`, active, version 1.
    pub fn new(
        users: u64,
        id_kind: IdKind,
        latency: LatencyModel,
        rng: Rng,
        replica_lag: Duration,
    ) -> SimStore {
        let primary = MemoryStore::new();
        let replica = (!replica_lag.is_zero()).then(|| Replica {
            table: MemoryStore::new(),
            lag: replica_lag,
            pending: Mutex::new(VecDeque::new()),
        });
        let ids: Vec<UserId> = (1..=users)
            .map(|n| match id_kind {
                IdKind::Int => UserId::from(n as i64),
                IdKind::Text => text_id(n),
            })
            .collect();
        for id in &ids {
            primary.put(id, "viewer");
            if let Some(r) = &replica {
                r.table.put(id, "viewer");
            }
        }
        SimStore {
            ids,
            primary,
            replica,
            latency,
            rng: Mutex::new(rng),
            queries: AtomicU64::new(0),
            max_latency_ns: AtomicU64::new(0),
        }
    }

    /// User `n`'s id (`n` from 1, as the workload numbers users).
    pub fn id(&self, n: i64) -> UserId {
        let i = usize::try_from(n - 1).unwrap_or(usize::MAX);
        self.ids.get(i).cloned().unwrap_or_else(|| UserId::from(n))
    }

    /// Commits a write on the primary; returns the user's new version.
    pub fn write(&self, id: i64, write: Write) -> i64 {
        let version = write.apply(&self.primary, &self.id(id));
        if let Some(r) = &self.replica {
            let due = tokio::time::Instant::now() + r.lag;
            lock(&r.pending).push_back((due, id, write));
        }
        version
    }

    /// Applies the replica's writes that are due: run by the harness's
    /// replication task.
    pub fn replicate_due(&self) -> Option<tokio::time::Instant> {
        let r = self.replica.as_ref()?;
        let now = tokio::time::Instant::now();
        let mut pending = lock(&r.pending);
        while let Some((due, id, write)) = pending.front() {
            if *due > now {
                return Some(*due);
            }
            write.apply(&r.table, &self.id(*id));
            pending.pop_front();
        }
        None
    }

    pub fn has_replica(&self) -> bool {
        self.replica.is_some()
    }

    /// Reads served so far.
    pub fn queries(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }

    /// The latency of one round trip to the database.
    fn draw_latency(&self) -> Duration {
        let latency = self.latency.sample(&mut lock(&self.rng));
        self.max_latency_ns
            .fetch_max(latency.as_nanos() as u64, Ordering::Relaxed);
        latency
    }

    /// Runs a lease-table or change-log call as the database would: at
    /// once, its answer then taking a round trip's latency to come back.
    fn call<'a, T: Send + 'a>(
        &'a self,
        op: BoxFuture<'a, Result<T, StoreError>>,
    ) -> BoxFuture<'a, Result<T, StoreError>> {
        let latency = self.draw_latency();
        Box::pin(async move {
            let answer = op.await;
            if !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
            answer
        })
    }

    /// The longest read latency drawn so far.
    pub fn max_latency(&self) -> Duration {
        Duration::from_nanos(self.max_latency_ns.load(Ordering::Relaxed))
    }
}

impl UserStore for SimStore {
    fn fetch(&self, user_id: &UserId) -> BoxFuture<'static, Result<Fetched, StoreError>> {
        self.queries.fetch_add(1, Ordering::Relaxed);
        let latency = self.draw_latency();
        let table = match &self.replica {
            Some(r) => &r.table,
            None => &self.primary,
        };
        // The memory store reads when first polled and has no latency of
        // its own: the answer is what the table held when the query ran,
        // and the latency is spent bringing it back.
        let read = table.fetch(user_id);
        Box::pin(async move {
            let answer = read.await;
            if !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
            answer
        })
    }
}

/// The change log and lease table every node of a `lease` run shares:
/// those of the primary (a replica has neither), behind the same latency
/// model as reads.
impl LeaseStore for SimStore {
    fn changes_since(&self, seen: u64, limit: u64) -> BoxFuture<'_, Result<Changes, StoreError>> {
        self.call(self.primary.changes_since(seen, limit))
    }

    fn grant<'a>(
        &'a self,
        instance: i64,
        node: &'a str,
        head: u64,
        duration: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        self.call(self.primary.grant(instance, node, head, duration))
    }

    fn unconfirmed(
        &self,
        me: i64,
        below: Option<u64>,
    ) -> BoxFuture<'_, Result<(u64, Vec<Holder>), StoreError>> {
        self.call(self.primary.unconfirmed(me, below))
    }

    fn release(&self, instance: i64) -> BoxFuture<'_, Result<(), StoreError>> {
        self.call(self.primary.release(instance))
    }

    fn prune(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        self.call(self.primary.prune())
    }
}

/// Which nodes can reach the database now: those cut off cannot, and a
/// paused node's calls wait until it resumes.
pub struct Reach {
    cut: Vec<AtomicBool>,
    paused_until: Mutex<Vec<Option<Instant>>>,
}

impl Reach {
    pub fn new(nodes: usize) -> Arc<Reach> {
        Arc::new(Reach {
            cut: (0..nodes).map(|_| AtomicBool::new(false)).collect(),
            paused_until: Mutex::new(vec![None; nodes]),
        })
    }

    pub fn set_cut(&self, node: usize, cut: bool) {
        self.cut[node].store(cut, Ordering::Relaxed);
    }

    pub fn is_cut(&self, node: usize) -> bool {
        self.cut[node].load(Ordering::Relaxed)
    }

    /// Pauses the node until `until`, or resumes it (`None`).
    pub fn set_paused(&self, node: usize, until: Option<Instant>) {
        lock(&self.paused_until)[node] = until;
    }

    /// When the node resumes, if it is paused now.
    pub fn paused_until(&self, node: usize) -> Option<Instant> {
        lock(&self.paused_until)[node].filter(|t| *t > Instant::now())
    }

    /// Whether the node can commit a write now.
    pub fn can_write(&self, node: usize) -> bool {
        !self.is_cut(node) && self.paused_until(node).is_none()
    }
}

/// One node's way to the database, through [`Reach`].
pub struct NodeStore {
    store: Arc<SimStore>,
    node: usize,
    reach: Arc<Reach>,
}

impl NodeStore {
    pub fn new(store: Arc<SimStore>, node: usize, reach: Arc<Reach>) -> NodeStore {
        NodeStore { store, node, reach }
    }

    /// Runs `op` (which does nothing until polled) once a pause is over,
    /// unless the node is cut off.
    fn gated<'a, T: Send + 'a>(
        &'a self,
        op: BoxFuture<'a, Result<T, StoreError>>,
    ) -> BoxFuture<'a, Result<T, StoreError>> {
        Box::pin(async move {
            if let Some(until) = self.reach.paused_until(self.node) {
                tokio::time::sleep_until(until).await;
            }
            self.reachable()?;
            op.await
        })
    }

    fn reachable(&self) -> Result<(), StoreError> {
        if self.reach.is_cut(self.node) {
            Err(StoreError::Unavailable("cut off from the database".into()))
        } else {
            Ok(())
        }
    }
}

impl UserStore for NodeStore {
    fn fetch(&self, user_id: &UserId) -> BoxFuture<'static, Result<Fetched, StoreError>> {
        if let Some(until) = self.reach.paused_until(self.node) {
            // The read starts when the process runs again.
            let store = Arc::clone(&self.store);
            let reach = Arc::clone(&self.reach);
            let node = self.node;
            let user_id = user_id.clone();
            return Box::pin(async move {
                tokio::time::sleep_until(until).await;
                if reach.is_cut(node) {
                    return Err(StoreError::Unavailable("cut off from the database".into()));
                }
                store.fetch(&user_id).await
            });
        }
        match self.reachable() {
            Ok(()) => self.store.fetch(user_id),
            Err(e) => Box::pin(async move { Err(e) }),
        }
    }
}

impl LeaseStore for NodeStore {
    fn changes_since(&self, seen: u64, limit: u64) -> BoxFuture<'_, Result<Changes, StoreError>> {
        self.gated(self.store.changes_since(seen, limit))
    }

    fn grant<'a>(
        &'a self,
        instance: i64,
        node: &'a str,
        head: u64,
        duration: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        self.gated(self.store.grant(instance, node, head, duration))
    }

    fn unconfirmed(
        &self,
        me: i64,
        below: Option<u64>,
    ) -> BoxFuture<'_, Result<(u64, Vec<Holder>), StoreError>> {
        self.gated(self.store.unconfirmed(me, below))
    }

    fn release(&self, instance: i64) -> BoxFuture<'_, Result<(), StoreError>> {
        self.gated(self.store.release(instance))
    }

    fn prune(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        self.gated(self.store.prune())
    }
}
