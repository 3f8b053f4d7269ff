//! The node's router: the one entry point for lookups and invalidations.
//!
//! A lookup first reads the user's published snapshot (no message, no
//! queue); only a miss goes to the session actor, and only a user with no
//! live actor goes through the supervisor's mailbox. An invalidation is
//! applied to the user's actor and answered once the old record is gone.

use std::sync::Arc;
use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::{Actor, ActorRef, MessagingErr};
use tokio::time::Instant;

use crate::observer::{InvalidationSource, MissReason, Observer};
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
    inner: Arc<Inner>,
}

struct Inner {
    registry: Arc<Registry>,
    supervisor: ActorRef<SupervisorMsg>,
    store: Arc<dyn UserStore>,
    observer: Arc<dyn Observer>,
    config: CacheConfig,
    node: Arc<str>,
}

impl Router {
    /// Starts the supervisor and returns the router in front of it.
    pub async fn start(
        config: CacheConfig,
        store: Arc<dyn UserStore>,
        observer: Arc<dyn Observer>,
        node: impl Into<Arc<str>>,
    ) -> Result<Router, ractor::SpawnErr> {
        let registry = Arc::new(Registry::new());
        let args = SupervisorArgs {
            registry: Arc::clone(&registry),
            store: Arc::clone(&store),
            observer: Arc::clone(&observer),
            config: config.clone(),
        };
        let (supervisor, _) = Actor::spawn(None, Supervisor, args).await?;
        Ok(Router {
            inner: Arc::new(Inner {
                registry,
                supervisor,
                store,
                observer,
                config,
                node: node.into(),
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

    /// Live session actors on this node.
    pub fn session_actors(&self) -> usize {
        self.inner.registry.len()
    }

    /// The user's current state, from the cache when fresh.
    pub async fn resolve(&self, user_id: i64, lookup: Lookup) -> Result<Served, ResolveError> {
        let inner = &*self.inner;
        if inner.config.ttl.is_zero() {
            return self.read_through(user_id).await;
        }
        let now = Instant::now();
        let mut slot = inner.registry.get(user_id);
        if let Some(s) = &slot {
            s.cell.touch(inner.registry.millis(now));
            if lookup == Lookup::Resolve {
                if let Some(c) = s.cell.fresh(now, inner.config.ttl) {
                    let age = now.saturating_duration_since(c.fetched_at);
                    inner.observer.hit(age);
                    return Ok(Served {
                        fetched: c.fetched.clone(),
                        hit: true,
                        age,
                    });
                }
            }
        }
        // A slot may name an actor that has just stopped (passivated,
        // evicted): then ask the supervisor for a live one and try again.
        for _ in 0..3 {
            let s = match slot.take() {
                Some(s) => s,
                None => self.acquire(user_id).await?,
            };
            let result = match lookup {
                Lookup::Resolve => {
                    s.actor
                        .call(SessionMsg::Resolve, Some(inner.config.call_timeout))
                        .await
                }
                Lookup::ForceRefresh => {
                    s.actor
                        .call(
                            |reply| SessionMsg::Refresh { force: true, reply },
                            Some(inner.config.call_timeout),
                        )
                        .await
                }
            };
            match result {
                Ok(CallResult::Success(answer)) => return answer,
                Ok(CallResult::Timeout) => return Err(ResolveError::Timeout),
                Ok(CallResult::SenderError) => return Err(ResolveError::ActorFailed),
                Err(MessagingErr::SendErr(_) | MessagingErr::ChannelClosed) => continue,
                Err(_) => return Err(ResolveError::ActorFailed),
            }
        }
        Err(ResolveError::ActorFailed)
    }

    /// No cache (`ttl = 0`): every lookup reads the store.
    async fn read_through(&self, user_id: i64) -> Result<Served, ResolveError> {
        let inner = &*self.inner;
        inner.observer.miss(MissReason::Cold);
        inner.observer.store_query();
        let fetched = tokio::time::timeout(inner.config.call_timeout, inner.store.fetch(user_id))
            .await
            .map_err(|_| ResolveError::Timeout)?
            .inspect_err(|_| inner.observer.store_error())?;
        Ok(Served {
            fetched,
            hit: false,
            age: Duration::ZERO,
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

    /// Drops the user's cached record on this node unless it is at least
    /// `min_version` (`None`: in any case). Returns once no lookup that starts
    /// afterwards can see the old record.
    pub async fn invalidate(
        &self,
        user_id: i64,
        min_version: Option<i64>,
        source: InvalidationSource,
    ) {
        let inner = &*self.inner;
        inner.observer.invalidation(source);
        let Some(slot) = inner.registry.get(user_id) else {
            return;
        };
        slot.cell.clear_older_than(min_version);
        // The actor too must forget it, and fence off a fetch in flight. If
        // it has stopped meanwhile, the cleared cell is all that was left.
        let _ = slot
            .actor
            .call(
                |reply| SessionMsg::Invalidate { min_version, reply },
                Some(inner.config.call_timeout),
            )
            .await;
    }

    /// Stops the supervisor and every session actor.
    pub async fn stop(&self) {
        self.inner.supervisor.stop(None);
    }
}
