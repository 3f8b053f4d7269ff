//! An in-memory [`UserStore`] for this crate's tests and for the simulation:
//! it counts fetches, can be given a latency, made to fail, made to panic, or
//! made to lag behind its own writes (as a stale replica would).
//! Production uses the SQL stores of `sessiond`.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::id::UserId;
use crate::lease::{Changes, Holder, LeaseStore};
use crate::record::{Fetched, Role, Status, User, UserState};
use crate::store::{BoxFuture, StoreError, UserStore};
use crate::sync::MutexExt;

#[derive(Default)]
struct Inner {
    users: Mutex<HashMap<UserId, UserState>>,
    queries: AtomicU64,
    latency_ms: AtomicU64,
    down: AtomicBool,
    panic_for: Mutex<HashSet<UserId>>,
    panic_polled_for: Mutex<HashSet<UserId>>,
    /// Users whose fetches answer this snapshot instead of the table.
    frozen: Mutex<HashMap<UserId, Fetched>>,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
    /// The change log and the lease table (see [`LeaseStore`]).
    log: Mutex<Log>,
}

#[derive(Default)]
struct Log {
    head: u64,
    /// `(seq, user_id, version)`, oldest first.
    entries: std::collections::VecDeque<(u64, UserId, Option<i64>)>,
    /// Every change up to here has been pruned.
    pruned_through: u64,
    /// instance → (node, seen, end by the store's clock).
    leases: HashMap<i64, (String, u64, tokio::time::Instant)>,
}

impl Log {
    fn record(&mut self, user_id: UserId, version: Option<i64>) {
        self.head += 1;
        self.entries.push_back((self.head, user_id, version));
    }
}

/// A shared, clonable in-memory user table.
#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Inserts or replaces a user with `role`, active, at version 1 (or one
    /// past the previous version).
    pub fn put(&self, id: impl Into<UserId>, role: &str) -> i64 {
        self.update(id, |s| s.user.role = Role::new(role))
    }

    /// Applies `change` to the user (created if absent) and bumps its
    /// version, as every write does. Returns the new version.
    pub fn update(&self, id: impl Into<UserId>, change: impl FnOnce(&mut UserState)) -> i64 {
        let id = id.into();
        let mut users = self.inner.users.locked();
        let state = users.entry(id.clone()).or_insert_with(|| UserState {
            user: User {
                id: id.clone(),
                email: format!("user{id}@example.test"),
                role: "user".into(),
                status: Status::Active,
            },
            version: 0,
            tokens_valid_after_ms: 0,
            session_epoch: 0,
            revoked_sids: Vec::new(),
            changes_in_ms: None,
            attached: None,
        });
        change(state);
        state.version += 1;
        // Logged under the table's lock, so log order is commit order.
        self.log().record(id, Some(state.version));
        state.version
    }

    pub fn remove(&self, id: impl Into<UserId>) {
        let id = id.into();
        let mut users = self.inner.users.locked();
        users.remove(&id);
        self.log().record(id, None);
    }

    fn log(&self) -> std::sync::MutexGuard<'_, Log> {
        self.inner.log.locked()
    }

    /// The running leases (instance, node, seen), for tests.
    pub fn leases(&self) -> Vec<(i64, String, u64)> {
        let now = tokio::time::Instant::now();
        let mut v: Vec<_> = self
            .log()
            .leases
            .iter()
            .filter(|(_, (_, _, end))| *end > now)
            .map(|(i, (n, seen, _))| (*i, n.clone(), *seen))
            .collect();
        v.sort();
        v
    }

    /// Fetches served so far.
    pub fn queries(&self) -> u64 {
        self.inner.queries.load(Ordering::SeqCst)
    }

    /// Every fetch sleeps this long (in tokio time) before reading.
    pub fn set_latency(&self, latency: Duration) {
        self.inner
            .latency_ms
            .store(latency.as_millis() as u64, Ordering::SeqCst);
    }

    /// While down, every fetch fails.
    pub fn set_down(&self, down: bool) {
        self.inner.down.store(down, Ordering::SeqCst);
    }

    /// The next fetch of this user panics, synchronously, inside the caller.
    pub fn panic_once(&self, id: impl Into<UserId>) {
        self.inner.panic_for.locked().insert(id.into());
    }
}

impl MemoryStore {
    /// The next fetch of this user panics later, while its future is
    /// polled (as a driver bug would, mid-query).
    pub fn panic_polled_once(&self, id: impl Into<UserId>) {
        self.inner.panic_polled_for.locked().insert(id.into());
    }
}

impl MemoryStore {
    /// From now on, fetches of this user answer what the table holds now,
    /// whatever is written later, until [`MemoryStore::thaw`]: a store that
    /// lags behind a write it has acknowledged.
    pub fn freeze(&self, id: impl Into<UserId>) {
        let id = id.into();
        let now = read(&self.inner, &id);
        self.inner.frozen.locked().insert(id, now);
    }

    /// Fetches of this user read the table again.
    pub fn thaw(&self, id: impl Into<UserId>) {
        self.inner.frozen.locked().remove(&id.into());
    }

    /// The most fetches that were ever running at the same time.
    pub fn max_concurrent_fetches(&self) -> u64 {
        self.inner.max_in_flight.load(Ordering::SeqCst)
    }
}

/// What the table holds for `id` now.
fn read(inner: &Inner, id: &UserId) -> Fetched {
    match inner.users.locked().get(id) {
        Some(s) => Fetched::Found(Arc::new(s.clone())),
        None => Fetched::Missing,
    }
}

/// Counts a fetch as running while it lives, however it ends.
struct Running<'a>(&'a Inner);

impl<'a> Running<'a> {
    fn start(inner: &'a Inner) -> Self {
        let now = inner.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        inner.max_in_flight.fetch_max(now, Ordering::SeqCst);
        Running(inner)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Removes `id` from a one-shot set; whether it was there.
fn take(set: &Mutex<HashSet<UserId>>, id: &UserId) -> bool {
    set.locked().remove(id)
}

impl UserStore for MemoryStore {
    fn fetch(&self, user_id: &UserId) -> BoxFuture<'static, Result<Fetched, StoreError>> {
        let user_id = user_id.clone();
        if take(&self.inner.panic_for, &user_id) {
            panic!("memory store told to panic for user {user_id}");
        }
        let panics_polled = take(&self.inner.panic_polled_for, &user_id);
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            inner.queries.fetch_add(1, Ordering::SeqCst);
            let _running = Running::start(&inner);
            if panics_polled {
                panic!("memory store told to panic while fetching user {user_id}");
            }
            // Read first, then take the latency: the answer is what the
            // table held when the query ran, as with a real database, so a
            // write made while the answer travels back is not in it.
            let answer = if inner.down.load(Ordering::SeqCst) {
                Err(StoreError::Unavailable("memory store is down".into()))
            } else if let Some(snapshot) = inner.frozen.locked().get(&user_id) {
                Ok(snapshot.clone())
            } else {
                Ok(read(&inner, &user_id))
            };
            let latency = inner.latency_ms.load(Ordering::SeqCst);
            if latency > 0 {
                tokio::time::sleep(Duration::from_millis(latency)).await;
            }
            answer
        })
    }
}

impl MemoryStore {
    fn unavailable(&self) -> Option<StoreError> {
        self.inner
            .down
            .load(Ordering::SeqCst)
            .then(|| StoreError::Unavailable("memory store is down".into()))
    }
}

impl LeaseStore for MemoryStore {
    fn changes_since(&self, seen: u64, limit: u64) -> BoxFuture<'_, Result<Changes, StoreError>> {
        Box::pin(async move {
            if let Some(e) = self.unavailable() {
                return Err(e);
            }
            let log = self.log();
            if log.head.saturating_sub(seen) > limit {
                return Ok(Changes {
                    head: log.head,
                    changes: Vec::new(),
                    truncated: true,
                });
            }
            Ok(Changes {
                head: log.head,
                changes: log
                    .entries
                    .iter()
                    .filter(|(seq, _, _)| *seq > seen)
                    .map(|(_, u, v)| (u.clone(), *v))
                    .collect(),
                truncated: log.pruned_through > seen,
            })
        })
    }

    fn grant<'a>(
        &'a self,
        instance: i64,
        node: &'a str,
        head: u64,
        duration: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            if let Some(e) = self.unavailable() {
                return Err(e);
            }
            let mut log = self.log();
            if log.head != head {
                return Ok(false);
            }
            let end = tokio::time::Instant::now() + duration;
            log.leases.insert(instance, (node.to_string(), head, end));
            Ok(true)
        })
    }

    fn unconfirmed(
        &self,
        me: i64,
        below: Option<u64>,
    ) -> BoxFuture<'_, Result<(u64, Vec<Holder>), StoreError>> {
        Box::pin(async move {
            if let Some(e) = self.unavailable() {
                return Err(e);
            }
            let log = self.log();
            let below = below.unwrap_or(log.head);
            let now = tokio::time::Instant::now();
            let mut holders: Vec<_> = log
                .leases
                .iter()
                .filter(|(i, (_, seen, end))| **i != me && *seen < below && *end > now)
                .map(|(i, (node, _, end))| Holder {
                    instance: *i,
                    node: node.clone(),
                    remaining: end.saturating_duration_since(now),
                })
                .collect();
            holders.sort_by_key(|h| h.instance);
            Ok((log.head, holders))
        })
    }

    fn release(&self, instance: i64) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            if let Some(e) = self.unavailable() {
                return Err(e);
            }
            self.log().leases.remove(&instance);
            Ok(())
        })
    }

    fn prune(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            if let Some(e) = self.unavailable() {
                return Err(e);
            }
            let now = tokio::time::Instant::now();
            let mut log = self.log();
            let head = log.head;
            let keep_after = log
                .leases
                .values()
                .filter(|(_, _, end)| *end > now)
                .map(|(_, seen, _)| *seen)
                .min()
                .unwrap_or(head);
            while log
                .entries
                .front()
                .is_some_and(|(seq, _, _)| *seq <= keep_after)
            {
                log.entries.pop_front();
            }
            log.pruned_through = log.pruned_through.max(keep_after);
            log.leases
                .retain(|_, (_, _, end)| *end + Duration::from_secs(60) > now);
            Ok(())
        })
    }
}
