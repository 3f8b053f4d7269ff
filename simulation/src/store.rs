//! The simulated database: `sessiond_actors::memory::MemoryStore` (the same
//! table, versions and read-then-wait behaviour the actor tests use) behind
//! a latency model, plus an optional lagging read replica.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use sessiond_actors::memory::MemoryStore;
use sessiond_actors::{BoxFuture, Fetched, Status, StoreError, UserStore};

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
    fn apply(&self, store: &MemoryStore, id: i64) -> i64 {
        match self {
            Write::Role(r) => store.update(id, |s| s.user.role = (*r).to_string()),
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
    primary: MemoryStore,
    replica: Option<Replica>,
    latency: LatencyModel,
    rng: Mutex<Rng>,
    queries: AtomicU64,
    max_latency_ns: AtomicU64,
}

impl SimStore {
    /// `users` users with ids 1..=users, role `viewer`, active, version 1.
    pub fn new(users: u64, latency: LatencyModel, rng: Rng, replica_lag: Duration) -> SimStore {
        let primary = MemoryStore::new();
        let replica = (!replica_lag.is_zero()).then(|| Replica {
            table: MemoryStore::new(),
            lag: replica_lag,
            pending: Mutex::new(VecDeque::new()),
        });
        for id in 1..=users as i64 {
            primary.put(id, "viewer");
            if let Some(r) = &replica {
                r.table.put(id, "viewer");
            }
        }
        SimStore {
            primary,
            replica,
            latency,
            rng: Mutex::new(rng),
            queries: AtomicU64::new(0),
            max_latency_ns: AtomicU64::new(0),
        }
    }

    /// Commits a write on the primary; returns the user's new version.
    pub fn write(&self, id: i64, write: Write) -> i64 {
        let version = write.apply(&self.primary, id);
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
            write.apply(&r.table, *id);
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

    /// The longest read latency drawn so far.
    pub fn max_latency(&self) -> Duration {
        Duration::from_nanos(self.max_latency_ns.load(Ordering::Relaxed))
    }
}

impl UserStore for SimStore {
    fn fetch(&self, user_id: i64) -> BoxFuture<'static, Result<Fetched, StoreError>> {
        self.queries.fetch_add(1, Ordering::Relaxed);
        let latency = self.latency.sample(&mut lock(&self.rng));
        self.max_latency_ns
            .fetch_max(latency.as_nanos() as u64, Ordering::Relaxed);
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
