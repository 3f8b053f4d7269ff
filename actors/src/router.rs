//! The node's router: the one entry point for lookups and invalidations.
//!
//! A lookup for a user this node owns first reads the user's published
//! snapshot (no message, no queue); only a miss goes to the session actor,
//! and only a user with no live actor goes through the supervisor's mailbox.
//! A lookup for a user another node owns (rendezvous hash over the live
//! members) is forwarded over the [`Link`]; if that node cannot be reached,
//! this node serves the user itself rather than fail.
//!
//! `Router`'s methods are in four files, each an `impl Router` on the one
//! state ([`Inner`]): this one (start, lookups, forwarding), `near` (near
//! copies of other owners' records), `invalidation` (dropping a record on
//! every node, and the write confirmation) and `membership` (view changes
//! and flushes).

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::{Actor, ActorRef, MessagingErr};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::CacheConfig;
use crate::id::UserId;
use crate::lease::Lease;
use crate::link::{Link, LinkError};
use crate::lookup::{Lookup, ResolveError, Served};
use crate::message::SessionMsg;
use crate::nonce::process_nonce;
use crate::observer::{MissReason, Observer};
use crate::ownership;
use crate::registry::{Registry, Slot};
use crate::store::UserStore;
use crate::supervisor::{Supervisor, SupervisorArgs, SupervisorMsg};
use crate::sync::RwLockExt;

/// A cheap, clonable handle to this node's session machinery.
#[derive(Clone)]
pub struct Router {
    pub(crate) inner: Arc<Inner>,
}

/// The router's state, shared with the other files that hold `Router`'s
/// methods: near copies, invalidation and the membership policy.
pub(crate) struct Inner {
    pub(crate) registry: Arc<Registry>,
    pub(crate) supervisor: ActorRef<SupervisorMsg>,
    pub(crate) store: Arc<dyn UserStore>,
    pub(crate) observer: Arc<dyn Observer>,
    pub(crate) config: CacheConfig,
    pub(crate) node: Arc<str>,
    pub(crate) link: Option<Arc<dyn Link>>,
    /// Present when the node must hold a lease to answer from its cache.
    pub(crate) lease: Option<Lease>,
    /// Live members (this node included), sorted; replaced whole on change
    /// so a lookup reads one consistent view.
    pub(crate) members: RwLock<Arc<Vec<Arc<str>>>>,
    /// Forwarded lookups in flight for near copies, by user: later misses
    /// wait for the one call (single flight). Only calls in flight.
    pub(crate) flights: Mutex<HashMap<UserId, watch::Receiver<Option<bool>>>>,
    /// The registry millisecond at which an invalidation of each user last
    /// arrived: answers to calls sent within a hold of it are not kept as
    /// near copies (see `Router::near_held`); only recent invalidations.
    pub(crate) near_holds: Mutex<HashMap<UserId, u64>>,
    /// The same for every user, plus one (0: never): set by a flush, and
    /// when an owner turns out to count a longer lease than any known.
    pub(crate) near_hold_all: AtomicU64,
    /// The longest lease, in milliseconds, this node knows any node to
    /// count: its own, or one an owner reported with an answer. Only grows.
    pub(crate) longest_lease_ms: AtomicU64,
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
        let own_lease_ms = config
            .lease
            .map_or(0, |l| u64::try_from(l.as_millis()).unwrap_or(u64::MAX));
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
                longest_lease_ms: AtomicU64::new(own_lease_ms),
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
        Arc::clone(&self.inner.members.read_locked())
    }

    /// The node that owns `user_id` in the current view.
    pub fn owner_of(&self, user_id: impl Into<UserId>) -> Arc<str> {
        self.owner_of_id(&user_id.into())
    }

    fn owner_of_id(&self, user_id: &UserId) -> Arc<str> {
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
    pub async fn resolve(
        &self,
        user_id: impl Into<UserId>,
        lookup: Lookup,
    ) -> Result<Served, ResolveError> {
        let user_id = &user_id.into();
        if let Some(link) = &self.inner.link {
            let owner = self.owner_of_id(user_id);
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
        self.resolve_here(user_id, lookup).await
    }

    /// One forwarded lookup: the owner's answer, or `None` when it cannot
    /// give one by `deadline` (the caller then serves the user itself).
    pub(crate) async fn forward(
        &self,
        link: &Arc<dyn Link>,
        owner: &Arc<str>,
        user_id: &UserId,
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

    /// What this node answers a lookup another node forwarded to it:
    /// [`Router::resolve_local`], with the length of this node's lease
    /// ([`Served::owner_lease`]), which the asking node holds a near copy
    /// off for after an invalidation.
    pub async fn answer_forwarded(
        &self,
        user_id: impl Into<UserId>,
        lookup: Lookup,
    ) -> Result<Served, ResolveError> {
        let mut served = self.resolve_local(user_id, lookup).await?;
        served.owner_lease = self.inner.config.lease;
        Ok(served)
    }

    /// The user's current state from this node's own cache, whoever owns
    /// it.
    pub async fn resolve_local(
        &self,
        user_id: impl Into<UserId>,
        lookup: Lookup,
    ) -> Result<Served, ResolveError> {
        self.resolve_here(&user_id.into(), lookup).await
    }

    async fn resolve_here(&self, user_id: &UserId, lookup: Lookup) -> Result<Served, ResolveError> {
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
                    owner_lease: None,
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
                    // session was passivated): ask again. Dropped by a panic:
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
    async fn read_through(
        &self,
        user_id: &UserId,
        why: MissReason,
    ) -> Result<Served, ResolveError> {
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
            owner_lease: None,
        })
    }

    async fn acquire(&self, user_id: &UserId) -> Result<Arc<Slot>, ResolveError> {
        let inner = &*self.inner;
        let acquired = inner
            .supervisor
            .call(
                |reply| SupervisorMsg::Acquire {
                    user_id: user_id.clone(),
                    reply,
                },
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

    /// Stops the supervisor and every session actor.
    pub async fn stop(&self) {
        self.inner.supervisor.stop(None);
    }
}

/// A lease id for this process: random, so a node restarted under the
/// same name is another holder; positive, so it reads well in the database
/// and the logs.
fn random_instance() -> i64 {
    (process_nonce() >> 1) as i64
}
