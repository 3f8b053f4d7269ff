//! The node's router: the one entry point for lookups and invalidations.
//!
//! A lookup for a user this node owns first reads the user's published
//! snapshot (no message, no queue); only a miss goes to the session actor,
//! and only a user with no live actor goes through the supervisor's mailbox.
//! A lookup for a user another node owns (rendezvous hash over the live
//! members) is forwarded over the [`Link`]; if that node cannot be reached,
//! this node serves the user itself rather than fail.
//!
//! An invalidation is applied here and sent to every other member; it is
//! answered once every reachable node has dropped the old record.
//!
//! Kept whole: lookups and invalidations (with their lease
//! confirmation) share the router's state and read best together.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::{Actor, ActorRef, MessagingErr};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::lease::{self, Acks, Lease, LeaseStore, Unconfirmed};
use crate::link::{Link, LinkError};
use crate::observer::{InvalidationSource, MissReason, Observer};
use crate::ownership;
use crate::registry::{Registry, Slot};
use crate::session::{ResolveError, Served, SessionMsg};
use crate::store::UserStore;
use crate::supervisor::{Supervisor, SupervisorArgs, SupervisorMsg};
use crate::CacheConfig;

/// What a lookup asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The current record; cached if fresh.
    Resolve,
    /// Read the store now, whatever is cached.
    ForceRefresh,
}

/// A cheap, clonable handle to this node's session machinery.
#[derive(Clone)]
pub struct Router {
    pub(crate) inner: Arc<Inner>,
}

/// Shared with [`crate::membership`], which applies view changes and
/// flushes to the same registry and supervisor.
pub(crate) struct Inner {
    pub(crate) registry: Arc<Registry>,
    pub(crate) supervisor: ActorRef<SupervisorMsg>,
    store: Arc<dyn UserStore>,
    pub(crate) observer: Arc<dyn Observer>,
    config: CacheConfig,
    pub(crate) node: Arc<str>,
    link: Option<Arc<dyn Link>>,
    /// Present when the node must hold a lease to answer from its cache.
    lease: Option<Lease>,
    /// Live members (this node included), sorted; replaced whole on change
    /// so a lookup reads one consistent view.
    pub(crate) members: RwLock<Arc<Vec<Arc<str>>>>,
    /// Forwarded lookups in flight for near copies, by user: later misses
    /// wait for the one call (single flight). Only calls in flight.
    flights: Mutex<HashMap<i64, watch::Receiver<Option<bool>>>>,
    /// Users whose near copies are not kept until the given registry
    /// millisecond (see [`Router::near_held`]); only recent invalidations.
    near_holds: Mutex<HashMap<i64, u64>>,
    /// The same for every user: set by a flush.
    pub(crate) near_hold_all: AtomicU64,
}

/// A forwarded call for a near copy: lead it, or wait for it.
enum Flight<'a> {
    Lead(FlightGuard<'a>),
    Follow(watch::Receiver<Option<bool>>),
}

/// The leader's side of a flight: when dropped (done, failed or
/// cancelled) the flight is over and its followers wake.
struct FlightGuard<'a> {
    inner: &'a Inner,
    user_id: i64,
    tx: watch::Sender<Option<bool>>,
}

impl FlightGuard<'_> {
    /// Tells the followers whether the owner failed to answer (they then
    /// serve the user themselves, as the leader does).
    fn done(self, failed: bool) {
        self.tx.send_replace(Some(failed));
    }
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        // Only the leader removes its entry, and no other is inserted
        // while it is there.
        self.inner
            .flights
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.user_id);
    }
}

impl Router {
    /// Starts the supervisor and returns the router in front of it: a node
    /// on its own.
    pub async fn start(
        config: CacheConfig,
        store: Arc<dyn UserStore>,
        observer: Arc<dyn Observer>,
        node: impl Into<Arc<str>>,
    ) -> Result<Router, ractor::SpawnErr> {
        Self::start_linked(config, store, observer, node, None).await
    }

    /// Like [`Router::start`], for a member of a cluster reached through
    /// `link`. Until [`Router::apply_view`] says otherwise the node owns
    /// every user.
    pub async fn start_linked(
        config: CacheConfig,
        store: Arc<dyn UserStore>,
        observer: Arc<dyn Observer>,
        node: impl Into<Arc<str>>,
        link: Option<Arc<dyn Link>>,
    ) -> Result<Router, ractor::SpawnErr> {
        let node: Arc<str> = node.into();
        let registry = Arc::new(Registry::new());
        let args = SupervisorArgs {
            registry: Arc::clone(&registry),
            store: Arc::clone(&store),
            observer: Arc::clone(&observer),
            config: config.clone(),
        };
        let (supervisor, _) = Actor::spawn(None, Supervisor, args).await?;
        let lease = config
            .lease
            .map(|_| Lease::new(random_instance(), registry.epoch()));
        Ok(Router {
            inner: Arc::new(Inner {
                registry,
                supervisor,
                store,
                observer,
                config,
                members: RwLock::new(Arc::new(vec![Arc::clone(&node)])),
                node,
                link,
                lease,
                flights: Mutex::new(HashMap::new()),
                near_holds: Mutex::new(HashMap::new()),
                near_hold_all: AtomicU64::new(0),
            }),
        })
    }

    /// The name this node answers with in `Session.cache.node`.
    pub fn node(&self) -> &str {
        &self.inner.node
    }

    pub fn config(&self) -> &CacheConfig {
        &self.inner.config
    }

    /// This node's freshness lease, when it needs one.
    pub fn lease(&self) -> Option<&Lease> {
        self.inner.lease.as_ref()
    }

    /// Whether this node may answer from its cache now (it holds its lease,
    /// or needs none).
    pub fn serves_from_cache(&self) -> bool {
        self.inner
            .lease
            .as_ref()
            .map_or(true, |l| l.valid_at(Instant::now()))
    }

    pub(crate) fn observer(&self) -> &Arc<dyn Observer> {
        &self.inner.observer
    }

    /// Live session actors on this node.
    pub fn session_actors(&self) -> usize {
        self.inner.registry.live_actors()
    }

    /// Sessions cached on this node: with a live actor or hibernated.
    pub fn sessions(&self) -> usize {
        self.inner.registry.len()
    }

    /// Sessions whose record is kept without a live actor.
    pub fn hibernated(&self) -> usize {
        self.sessions().saturating_sub(self.session_actors())
    }

    /// The live members as this node sees them (itself included), sorted.
    pub fn members(&self) -> Arc<Vec<Arc<str>>> {
        Arc::clone(&self.inner.members.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// The node that owns `user_id` in the current view.
    pub fn owner_of(&self, user_id: i64) -> Arc<str> {
        let members = self.members();
        // The member's own name: no allocation on the lookup path.
        ownership::owner_entry(user_id, &members)
            .map(Arc::clone)
            .unwrap_or_else(|| Arc::clone(&self.inner.node))
    }

    /// The user's current state: forwarded to its owner when that is
    /// another reachable node, else from this node's cache.
    ///
    /// With near copies on ([`CacheConfig::near`]), a node keeps what the
    /// owner answered in the user's cell here, as the owner keeps its own
    /// (no actor: a near copy is a hibernated session's record), and
    /// answers the next lookups from it for the rest of its TTL, counted
    /// from when the owner read it. The same fences hold it as the owner's
    /// copy: this node's lease, versioned invalidations (every invalidation
    /// reaches every node), flushes and ownership changes. Concurrent misses
    /// here make one forwarded call (single flight); only the owner reads
    /// the database.
    pub async fn resolve(&self, user_id: i64, lookup: Lookup) -> Result<Served, ResolveError> {
        if let Some(link) = &self.inner.link {
            let owner = self.owner_of(user_id);
            if owner != self.inner.node {
                let near = self.inner.config.near && !self.inner.config.ttl.is_zero();
                let deadline = Instant::now() + self.inner.config.call_timeout;
                let answer = if near {
                    self.resolve_near(link, &owner, user_id, lookup, deadline)
                        .await
                } else {
                    self.forward(link, &owner, user_id, lookup, deadline)
                        .await
                        .map(Ok)
                };
                if let Some(answer) = answer {
                    return answer;
                }
                self.inner.observer.forward_failed();
            }
        }
        self.resolve_local(user_id, lookup).await
    }

    /// One forwarded lookup: the owner's answer, or `None` when it cannot
    /// give one by `deadline` (the caller then serves the user itself).
    async fn forward(
        &self,
        link: &Arc<dyn Link>,
        owner: &Arc<str>,
        user_id: i64,
        lookup: Lookup,
        deadline: Instant,
    ) -> Option<Served> {
        self.inner.observer.forwarded();
        let call = link.resolve(owner, user_id, lookup);
        match tokio::time::timeout_at(deadline, call).await {
            Ok(Ok(mut served)) => {
                served.node.get_or_insert_with(|| Arc::clone(owner));
                Some(served)
            }
            Ok(Err(LinkError::Remote(e))) => {
                tracing::debug!(%owner, error = %e, "owner failed; serving locally");
                None
            }
            Ok(Err(e)) => {
                tracing::debug!(%owner, error = %e, "owner unreachable; serving locally");
                None
            }
            Err(_) => {
                tracing::debug!(%owner, "owner timed out; serving locally");
                None
            }
        }
    }

    /// Whether this node holds its lease at `now_ms` (or needs none).
    #[inline]
    fn leased_at(&self, now_ms: u64) -> bool {
        self.inner
            .lease
            .as_ref()
            .map_or(true, |l| l.valid_at_ms(now_ms))
    }

    /// A lookup of a user another node owns, with near copies: the near
    /// copy if fresh, else the owner's answer (one call for every lookup
    /// that misses meanwhile). `None`: the owner could not answer.
    async fn resolve_near(
        &self,
        link: &Arc<dyn Link>,
        owner: &Arc<str>,
        user_id: i64,
        lookup: Lookup,
        deadline: Instant,
    ) -> Option<Result<Served, ResolveError>> {
        let inner = &*self.inner;
        if lookup == Lookup::ForceRefresh {
            // To the owner (which reads the store), and kept here: both
            // copies are the new read.
            return self
                .fetch_near(link, owner, user_id, lookup, deadline)
                .await
                .map(Ok);
        }
        loop {
            let now = Instant::now();
            let now_ms = inner.registry.millis(now);
            if !self.leased_at(now_ms) {
                // A node without its lease may have missed invalidations:
                // nothing kept, no flight to join; each lookup asks the
                // owner, whose lease covers its answer.
                return self
                    .forward(link, owner, user_id, lookup, deadline)
                    .await
                    .map(Ok);
            }
            // The hit path: the same snapshot read as a local hit.
            let flush = inner.registry.flushes();
            let hit = inner
                .registry
                .with(user_id, |s| {
                    s.cell.touch(now_ms);
                    s.cell.fresh(now, inner.config.ttl, flush)
                })
                .flatten();
            if let Some(c) = hit {
                let age = now.saturating_duration_since(c.fetched_at);
                inner.observer.hit(age);
                return Some(Ok(Served {
                    fetched: c.fetched,
                    hit: true,
                    age,
                    node: Some(Arc::clone(owner)),
                    near: true,
                }));
            }
            if self.near_held(user_id, now) {
                // Nothing would be kept: no flight to join either.
                return self
                    .forward(link, owner, user_id, lookup, deadline)
                    .await
                    .map(Ok);
            }
            match self.join_flight(user_id) {
                Flight::Lead(flight) => {
                    let served = self
                        .fetch_near(link, owner, user_id, lookup, deadline)
                        .await;
                    flight.done(served.is_none());
                    return served.map(Ok);
                }
                Flight::Follow(mut done) => {
                    // Woken when the leader is done (or gone): then the
                    // cell says what there is to serve, with every fence
                    // applied since, not the leader's answer.
                    if tokio::time::timeout_at(deadline, done.changed())
                        .await
                        .is_err()
                    {
                        return Some(Err(ResolveError::Timeout));
                    }
                    if *done.borrow() == Some(true) {
                        return None;
                    }
                    if Instant::now() >= deadline {
                        return Some(Err(ResolveError::Timeout));
                    }
                }
            }
        }
    }

    /// Asks the owner and keeps its answer here unless an invalidation, a
    /// flush or a lost lease since the call started (or a recent one the
    /// owner may not have applied yet) says it may be old. The caller gets
    /// the answer either way: the call started after its lookup arrived,
    /// so the owner's answer is as new as a forwarded one always was.
    async fn fetch_near(
        &self,
        link: &Arc<dyn Link>,
        owner: &Arc<str>,
        user_id: i64,
        lookup: Lookup,
        deadline: Instant,
    ) -> Option<Served> {
        let inner = &*self.inner;
        let slot = self.near_slot(user_id);
        if lookup == Lookup::ForceRefresh {
            // Whatever was kept, or is being fetched, predates the refresh.
            slot.cell.supersede();
            inner.observer.miss(MissReason::Forced);
        } else {
            let reason = if slot.cell.was_invalidated(inner.registry.flushes()) {
                MissReason::Invalidated
            } else if slot.cell.has_record(inner.registry.flushes()) {
                MissReason::Expired
            } else {
                MissReason::Cold
            };
            inner.observer.miss(reason);
        }
        let started = (slot.cell.generation(), inner.registry.flushes());
        let sent = Instant::now();
        let mut served = self.forward(link, owner, user_id, lookup, deadline).await?;
        let now = Instant::now();
        // The owner's read instant on this node's clock, early by at most
        // the round trip: the near copy expires no later than the owner's.
        let fetched_at = sent.checked_sub(served.age).unwrap_or(sent);
        // Held: sent too soon after an invalidation (or a flush) here for
        // the owner to have surely applied it when it answered.
        let keep = self.leased_at(inner.registry.millis(now)) && !self.near_held(user_id, sent);
        let flush_now = inner.registry.flushes();
        // Refused or not, the answer goes to this caller (see above).
        let _ = slot
            .cell
            .publish(&served.fetched, started, flush_now, fetched_at, keep);
        served.near = false;
        Some(served)
    }

    /// The user's slot for a near copy, inserted (no actor) if missing.
    fn near_slot(&self, user_id: i64) -> Arc<Slot> {
        let inner = &*self.inner;
        if let Some(slot) = inner.registry.get(user_id) {
            return slot;
        }
        let slot = inner.registry.get_or_insert(user_id, Instant::now());
        if inner.registry.len() >= inner.config.max_sessions {
            let _ = inner.supervisor.cast(SupervisorMsg::MakeRoom);
        }
        slot
    }

    /// Joins the forwarded call in flight for `user_id`, or starts one.
    fn join_flight(&self, user_id: i64) -> Flight<'_> {
        let mut flights = self.inner.flights.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(done) = flights.get(&user_id) {
            return Flight::Follow(done.clone());
        }
        let (tx, rx) = tokio::sync::watch::channel(None);
        flights.insert(user_id, rx);
        Flight::Lead(FlightGuard {
            inner: &self.inner,
            user_id,
            tx,
        })
    }

    /// Whether the owner's answer to a call sent at `at` may not be kept
    /// here: an invalidation of `user_id` (or a flush) arrived here so
    /// shortly before that the owner may not have applied it yet when it
    /// answered. Its change committed before the invalidation was sent; an
    /// owner that still holds a lease one lease (plus the drift margin)
    /// after that renewed it after the commit, so it had applied it (or it
    /// no longer answers from its cache). An invalidation that arrives
    /// after the call was sent is the cell's business (its fence).
    fn near_held(&self, user_id: i64, at: Instant) -> bool {
        let inner = &*self.inner;
        let now_ms = inner.registry.millis(at);
        if now_ms
            < inner
                .near_hold_all
                .load(std::sync::atomic::Ordering::Acquire)
        {
            return true;
        }
        let mut held = inner.near_holds.lock().unwrap_or_else(|e| e.into_inner());
        match held.get(&user_id) {
            Some(&until) if now_ms < until => true,
            Some(_) => {
                held.remove(&user_id);
                false
            }
            None => false,
        }
    }

    /// How long an invalidation or a flush holds off near copies: a lease
    /// and its drift margin (see [`Router::near_held`]), and a little more.
    /// Without leases, the longest a writer waits for the owner to apply
    /// an invalidation: the call timeout.
    pub(crate) fn near_hold_ms(&self) -> u64 {
        let config = &self.inner.config;
        let hold = config.lease.map_or(config.call_timeout, |l| l + l / 50);
        (hold + Duration::from_millis(100)).as_millis() as u64
    }

    /// Holds off near copies of `user_id` (`None`: of every user) for
    /// [`Router::near_hold_ms`].
    pub(crate) fn hold_near(&self, user_id: Option<i64>) {
        let inner = &*self.inner;
        if !inner.config.near || inner.link.is_none() {
            return;
        }
        let now_ms = inner.registry.millis(Instant::now());
        let until = now_ms + self.near_hold_ms();
        match user_id {
            None => {
                inner
                    .near_hold_all
                    .fetch_max(until, std::sync::atomic::Ordering::AcqRel);
            }
            Some(id) => {
                let mut held = inner.near_holds.lock().unwrap_or_else(|e| e.into_inner());
                if held.len() >= 1024 {
                    held.retain(|_, u| *u > now_ms);
                }
                held.insert(id, until);
            }
        }
    }

    /// The user's current state from this node's own cache, whoever owns
    /// it: what a node answers when another forwards a lookup to it.
    pub async fn resolve_local(
        &self,
        user_id: i64,
        lookup: Lookup,
    ) -> Result<Served, ResolveError> {
        let inner = &*self.inner;
        if inner.config.ttl.is_zero() {
            return self.read_through(user_id, MissReason::Cold).await;
        }
        let now = Instant::now();
        let now_ms = inner.registry.millis(now);
        // A node that cannot prove its cache fresh does not use it.
        if let Some(lease) = &inner.lease {
            if !lease.valid_at_ms(now_ms) {
                return self.read_through(user_id, MissReason::Unleased).await;
            }
        }
        // The hot path: under the registry's read lock, no clone of the
        // slot, no message. A miss takes the actor (if any) out with it.
        let flush = inner.registry.flushes();
        let looked = inner.registry.with(user_id, |s| {
            s.cell.touch(now_ms);
            if lookup == Lookup::Resolve {
                if let Some(c) = s.cell.fresh(now, inner.config.ttl, flush) {
                    return Ok(c);
                }
            }
            Err(s.actor())
        });
        let mut actor = match looked {
            Some(Ok(c)) => {
                let age = now.saturating_duration_since(c.fetched_at);
                inner.observer.hit(age);
                return Ok(Served {
                    fetched: c.fetched,
                    hit: true,
                    age,
                    node: None,
                    near: false,
                });
            }
            // A session may have no actor (hibernated) or one that has
            // just stopped: then ask the supervisor for a live one.
            Some(Err(actor)) => actor,
            None => None,
        };
        for _ in 0..3 {
            let a = match actor.take() {
                Some(a) => a,
                None => match self.acquire(user_id).await?.actor() {
                    Some(a) => a,
                    None => continue,
                },
            };
            let result = match lookup {
                Lookup::Resolve => {
                    a.call(SessionMsg::Resolve, Some(inner.config.call_timeout))
                        .await
                }
                Lookup::ForceRefresh => {
                    a.call(
                        |reply| SessionMsg::Refresh { force: true, reply },
                        Some(inner.config.call_timeout),
                    )
                    .await
                }
            };
            match result {
                Ok(CallResult::Success(answer)) => return answer,
                Ok(CallResult::Timeout) => return Err(ResolveError::Timeout),
                Ok(CallResult::SenderError) => {
                    // Dropped by an actor hibernating on purpose (or whose
                    // session was forgotten): ask again. Dropped by a panic:
                    // this request fails, the next gets a fresh actor.
                    let on_purpose = inner
                        .registry
                        .with(user_id, |s| s.cell.stopping())
                        .unwrap_or(true);
                    if on_purpose {
                        continue;
                    }
                    return Err(ResolveError::ActorFailed);
                }
                Err(MessagingErr::SendErr(_) | MessagingErr::ChannelClosed) => continue,
                Err(_) => return Err(ResolveError::ActorFailed),
            }
        }
        Err(ResolveError::ActorFailed)
    }

    /// No cache (`ttl = 0`): every lookup reads the store.
    async fn read_through(&self, user_id: i64, why: MissReason) -> Result<Served, ResolveError> {
        let inner = &*self.inner;
        inner.observer.miss(why);
        inner.observer.store_query();
        let fetched = tokio::time::timeout(inner.config.call_timeout, inner.store.fetch(user_id))
            .await
            .map_err(|_| ResolveError::Timeout)?
            .inspect_err(|_| inner.observer.store_error())?;
        Ok(Served {
            fetched,
            hit: false,
            age: Duration::ZERO,
            node: None,
            near: false,
        })
    }

    async fn acquire(&self, user_id: i64) -> Result<Arc<Slot>, ResolveError> {
        let inner = &*self.inner;
        let acquired = inner
            .supervisor
            .call(
                |reply| SupervisorMsg::Acquire { user_id, reply },
                Some(inner.config.call_timeout),
            )
            .await;
        match acquired {
            Ok(CallResult::Success(Ok(slot))) => Ok(slot),
            Ok(CallResult::Success(Err(e))) => {
                tracing::error!(error = %e, "spawning a session actor failed");
                Err(ResolveError::ActorFailed)
            }
            Ok(CallResult::Timeout) => Err(ResolveError::Timeout),
            Ok(CallResult::SenderError) | Err(_) => Err(ResolveError::Stopped),
        }
    }

    /// Drops the user's cached record on every node unless it is at least
    /// `min_version` (`None`: in any case). Returns once no lookup that
    /// starts afterwards, on any reachable node, can see the old record; a
    /// node that cannot be reached within the call timeout is passed over
    /// (it flushes its whole cache when it comes back: see
    /// `membership`).
    pub async fn invalidate(
        &self,
        user_id: i64,
        min_version: Option<i64>,
        source: InvalidationSource,
    ) {
        self.invalidate_local(user_id, min_version, source).await;
        self.broadcast(user_id, min_version, None).await
    }

    /// Sends the invalidation to every other member in this node's view,
    /// noting in `acks` the lease of each that confirms.
    async fn broadcast(&self, user_id: i64, min_version: Option<i64>, acks: Option<&Acks>) {
        let Some(link) = &self.inner.link else {
            return;
        };
        let members = self.members();
        let timeout = self.inner.config.call_timeout;
        let remote = members.iter().filter(|m| **m != self.inner.node).map(|m| {
            let call = link.invalidate(m, user_id, min_version);
            let m = Arc::clone(m);
            async move {
                match tokio::time::timeout(timeout, call).await {
                    Ok(Ok(instance)) => {
                        if let (Some(acks), Some(i)) = (acks, instance) {
                            acks.ack(i);
                        }
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(node = %m, error = %e, "invalidation not delivered")
                    }
                    Err(_) => tracing::warn!(node = %m, "invalidation not acknowledged in time"),
                }
            }
        });
        futures_join_all(remote.collect()).await;
    }

    /// [`Router::invalidate`] for a write that is acknowledged only once
    /// no node can answer with what it changed: every other lease holder
    /// has confirmed the invalidation (over the link, or by renewing its
    /// lease past the change) or its lease has run out. Bounded by the
    /// lease duration. Without a lease (a lone node) it is `invalidate`.
    pub async fn invalidate_confirmed(
        &self,
        user_id: i64,
        min_version: Option<i64>,
        source: InvalidationSource,
        leases: &dyn LeaseStore,
    ) -> Result<(), Unconfirmed> {
        let Some(lease) = &self.inner.lease else {
            self.invalidate(user_id, min_version, source).await;
            return Ok(());
        };
        let started = Instant::now();
        self.invalidate_local(user_id, min_version, source).await;
        let acks = Acks::new();
        let broadcast = self.broadcast(user_id, min_version, Some(&acks));
        let confirm = lease::confirm_write(leases, lease.instance(), &acks);
        tokio::pin!(broadcast, confirm);
        // Once the confirmation is done, members that did not answer yet
        // no longer matter: their leases are over, or they renewed past
        // the change.
        let mut delivered = false;
        let confirmed = loop {
            tokio::select! {
                c = &mut confirm => break c,
                _ = &mut broadcast, if !delivered => delivered = true,
            }
        }?;
        self.inner
            .observer
            .write_confirmed(started.elapsed(), confirmed.lapsed);
        Ok(())
    }

    /// Drops the user's cached record on this node only.
    pub async fn invalidate_local(
        &self,
        user_id: i64,
        min_version: Option<i64>,
        source: InvalidationSource,
    ) {
        let inner = &*self.inner;
        inner.observer.invalidation(source);
        // First: a near copy asked for after this point but answered by an
        // owner that has not applied this yet must not be kept.
        self.hold_near(Some(user_id));
        // The cell is where the record lives and where a fetch in flight
        // must publish: clearing and fencing it there, under its lock, is
        // the whole invalidation. No mailbox to queue behind.
        if let Some(slot) = inner.registry.get(user_id) {
            slot.cell.invalidate(min_version);
        }
    }

    /// Stops the supervisor and every session actor.
    pub async fn stop(&self) {
        self.inner.supervisor.stop(None);
    }
}

/// A lease id for this process: random, so a node restarted under the
/// same name is another holder; positive, so it reads well in the database
/// and the logs.
fn random_instance() -> i64 {
    (crate::process_nonce() >> 1) as i64
}

/// Awaits every future, concurrently, on the current task.
async fn futures_join_all<F: std::future::Future<Output = ()>>(futures: Vec<F>) {
    let mut set = Vec::with_capacity(futures.len());
    for f in futures {
        set.push(Box::pin(f));
    }
    std::future::poll_fn(move |cx| {
        set.retain_mut(|f| f.as_mut().poll(cx).is_pending());
        if set.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await
}
