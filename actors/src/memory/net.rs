//! An in-memory network between routers of one process: one [`Link`] per
//! node, which refuses to cross a partition, cannot reach a crashed node,
//! and carries each message with a delay and a chance of loss drawn by a
//! hook (the simulation plugs its seeded latency model in; by default
//! messages arrive at once).
//!
//! A lost message is never answered: its sender waits for its own timeout,
//! as over a real connection. A message towards a node that is known to be
//! down or cut off fails at once (`Unreachable`), as a closed connection
//! does.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::config::CacheConfig;
use crate::id::UserId;
use crate::link::{Link, LinkError};
use crate::lookup::{Lookup, Served};
use crate::observer::{InvalidationSource, NoopObserver};
use crate::router::Router;
use crate::store::BoxFuture;
use crate::sync::MutexExt;

/// One message's trip over a connection, as the hook draws it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Trip {
    /// How long the message travels.
    pub delay: Duration,
    /// Whether it is lost on the way.
    pub lost: bool,
}

/// What crossed the network so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Messages sent over a connection (lost ones included).
    pub messages: u64,
    /// Messages that never arrived.
    pub lost: u64,
    /// Messages refused at once: no connection to their destination.
    pub refused: u64,
    /// The longest delay drawn.
    pub max_delay: Duration,
}

#[derive(Default)]
struct NodeState {
    router: Option<Router>,
    /// Cut off from every other node.
    isolated: bool,
}

type TripHook = Box<dyn Fn() -> Trip + Send + Sync>;

/// The network: the nodes' routers, by index, and the state of the wires.
pub struct MemoryNet {
    names: Vec<Arc<str>>,
    nodes: Mutex<Vec<NodeState>>,
    trip: TripHook,
    messages: AtomicU64,
    lost: AtomicU64,
    refused: AtomicU64,
    max_delay_ns: AtomicU64,
}

impl MemoryNet {
    /// A network of the named nodes (none on it yet: see
    /// [`MemoryNet::set_router`]) whose messages arrive at once.
    pub fn new(names: Vec<Arc<str>>) -> Arc<MemoryNet> {
        Self::with_trips(names, Trip::default)
    }

    /// Like [`MemoryNet::new`], with `trip` drawing each message's delay
    /// and loss. It is called once per message that has a connection to
    /// cross, in the order messages are sent.
    pub fn with_trips(
        names: Vec<Arc<str>>,
        trip: impl Fn() -> Trip + Send + Sync + 'static,
    ) -> Arc<MemoryNet> {
        let nodes = names.iter().map(|_| NodeState::default()).collect();
        Arc::new(MemoryNet {
            names,
            nodes: Mutex::new(nodes),
            trip: Box::new(trip),
            messages: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            max_delay_ns: AtomicU64::new(0),
        })
    }

    /// Starts a router per named node on `store` with `config`, puts each
    /// on the network and gives each the view of every node.
    pub async fn start_routers(
        self: &Arc<Self>,
        store: &super::MemoryStore,
        config: CacheConfig,
    ) -> Result<Vec<Router>, ractor::SpawnErr> {
        let mut routers = Vec::new();
        for (i, name) in self.names.iter().enumerate() {
            let router = Router::start_linked(
                config.clone(),
                Arc::new(store.clone()),
                Arc::new(NoopObserver),
                Arc::clone(name),
                Some(self.link(i)),
            )
            .await?;
            self.set_router(i, Some(router.clone()));
            routers.push(router);
        }
        for router in &routers {
            router.apply_view(&self.names);
        }
        Ok(routers)
    }

    /// The link node `from` (an index into the names) hands its router.
    pub fn link(self: &Arc<Self>, from: usize) -> Arc<dyn Link> {
        Arc::new(NodeLink {
            from,
            net: Arc::clone(self),
        })
    }

    /// Puts a (re)started node's router on the network, or takes a crashed
    /// one off it (`None`).
    pub fn set_router(&self, node: usize, router: Option<Router>) {
        self.nodes()[node].router = router;
    }

    /// Cuts a node off from every other node, or joins it back.
    pub fn set_isolated(&self, node: usize, isolated: bool) {
        self.nodes()[node].isolated = isolated;
    }

    pub fn stats(&self) -> NetStats {
        NetStats {
            messages: self.messages.load(Ordering::Relaxed),
            lost: self.lost.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            max_delay: Duration::from_nanos(self.max_delay_ns.load(Ordering::Relaxed)),
        }
    }

    fn nodes(&self) -> MutexGuard<'_, Vec<NodeState>> {
        self.nodes.locked()
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| &**n == name)
    }

    /// Whether a message from `from` can reach `to` now.
    fn connected(&self, from: usize, to: usize) -> bool {
        let nodes = self.nodes();
        from == to || (nodes[to].router.is_some() && !nodes[from].isolated && !nodes[to].isolated)
    }

    fn router(&self, node: usize) -> Option<Router> {
        self.nodes()[node].router.clone()
    }

    /// Carries one message from `from` to `to`: fails at once when there is
    /// no connection, never completes when the message is lost or the
    /// connection broke while it travelled.
    async fn hop(&self, from: usize, to: usize) -> Result<(), LinkError> {
        if !self.connected(from, to) {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(LinkError::Unreachable);
        }
        self.messages.fetch_add(1, Ordering::Relaxed);
        let trip = (self.trip)();
        self.max_delay_ns
            .fetch_max(trip.delay.as_nanos() as u64, Ordering::Relaxed);
        if !trip.delay.is_zero() {
            tokio::time::sleep(trip.delay).await;
        }
        if trip.lost || !self.connected(from, to) {
            self.lost.fetch_add(1, Ordering::Relaxed);
            std::future::pending::<()>().await;
        }
        Ok(())
    }
}

/// One node's end of the network.
struct NodeLink {
    from: usize,
    net: Arc<MemoryNet>,
}

impl Link for NodeLink {
    fn resolve(
        &self,
        node: &str,
        user_id: &UserId,
        lookup: Lookup,
    ) -> BoxFuture<'static, Result<Served, LinkError>> {
        let user_id = user_id.clone();
        let net = Arc::clone(&self.net);
        let from = self.from;
        let to = net.index(node);
        Box::pin(async move {
            let to = to.ok_or(LinkError::Unreachable)?;
            net.hop(from, to).await?;
            let router = net.router(to).ok_or(LinkError::Unreachable)?;
            let served = router
                .answer_forwarded(user_id, lookup)
                .await
                .map_err(|e| LinkError::Remote(e.to_string()))?;
            net.hop(to, from).await?;
            Ok(served)
        })
    }

    fn invalidate(
        &self,
        node: &str,
        user_id: &UserId,
        min_version: Option<i64>,
    ) -> BoxFuture<'static, Result<Option<i64>, LinkError>> {
        let user_id = user_id.clone();
        let net = Arc::clone(&self.net);
        let from = self.from;
        let to = net.index(node);
        Box::pin(async move {
            let to = to.ok_or(LinkError::Unreachable)?;
            net.hop(from, to).await?;
            let router = net.router(to).ok_or(LinkError::Unreachable)?;
            router
                .invalidate_local(user_id, min_version, InvalidationSource::Broadcast)
                .await;
            let lease = router.lease().map(|l| l.instance());
            net.hop(to, from).await?;
            Ok(lease)
        })
    }
}
