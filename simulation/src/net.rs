//! The simulated network between nodes: an in-memory [`Link`] per node that
//! delays each message by a drawn latency, loses some, refuses to cross a
//! partition and cannot reach a crashed node.
//!
//! A lost message is never answered: its sender waits for its own timeout,
//! as over a real connection. A message towards a node that is known to be
//! down or cut off fails at once (`Unreachable`), as a closed connection
//! does.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sessiond_actors::{BoxFuture, InvalidationSource, Link, LinkError, Lookup, Router, Served};

use crate::args::LatencyModel;
use crate::lock;
use crate::rng::Rng;

#[derive(Default)]
struct NodeState {
    router: Option<Router>,
    /// Cut off from every other node.
    isolated: bool,
}

/// Counters of what crossed the network.
#[derive(Default)]
pub struct NetStats {
    pub messages: AtomicU64,
    pub lost: AtomicU64,
    pub refused: AtomicU64,
    pub max_delay_ns: AtomicU64,
}

/// The network: the nodes' routers and the state of the wires.
pub struct SimNet {
    names: Vec<Arc<str>>,
    nodes: Mutex<Vec<NodeState>>,
    delay: LatencyModel,
    loss: f64,
    rng: Mutex<Rng>,
    pub stats: NetStats,
}

impl SimNet {
    pub fn new(names: Vec<Arc<str>>, delay: LatencyModel, loss: f64, rng: Rng) -> Arc<SimNet> {
        let nodes = names.iter().map(|_| NodeState::default()).collect();
        Arc::new(SimNet {
            names,
            nodes: Mutex::new(nodes),
            delay,
            loss,
            rng: Mutex::new(rng),
            stats: NetStats::default(),
        })
    }

    /// The link node `from` hands its router.
    pub fn link(self: &Arc<Self>, from: usize) -> Arc<dyn Link> {
        Arc::new(NodeLink {
            from,
            net: Arc::clone(self),
        })
    }

    /// Puts a (re)started node's router on the network, or takes a crashed
    /// one off it (`None`).
    pub fn set_router(&self, node: usize, router: Option<Router>) {
        lock(&self.nodes)[node].router = router;
    }

    pub fn set_isolated(&self, node: usize, isolated: bool) {
        lock(&self.nodes)[node].isolated = isolated;
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| &**n == name)
    }

    /// Whether a message from `from` can reach `to` now.
    fn connected(&self, from: usize, to: usize) -> bool {
        let nodes = lock(&self.nodes);
        from == to || (nodes[to].router.is_some() && !nodes[from].isolated && !nodes[to].isolated)
    }

    fn router(&self, node: usize) -> Option<Router> {
        lock(&self.nodes)[node].router.clone()
    }

    /// Carries one message from `from` to `to`: fails at once when there is
    /// no connection, never completes when the message is lost or the
    /// connection broke while it travelled.
    async fn hop(&self, from: usize, to: usize) -> Result<(), LinkError> {
        if !self.connected(from, to) {
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
            return Err(LinkError::Unreachable);
        }
        self.stats.messages.fetch_add(1, Ordering::Relaxed);
        let (delay, lost) = {
            let mut rng = lock(&self.rng);
            let delay = self.delay.sample(&mut rng);
            (delay, rng.chance(self.loss))
        };
        self.stats
            .max_delay_ns
            .fetch_max(delay.as_nanos() as u64, Ordering::Relaxed);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if lost || !self.connected(from, to) {
            self.stats.lost.fetch_add(1, Ordering::Relaxed);
            std::future::pending::<()>().await;
        }
        Ok(())
    }

    /// The longest one-way delay drawn so far.
    pub fn max_delay(&self) -> Duration {
        Duration::from_nanos(self.stats.max_delay_ns.load(Ordering::Relaxed))
    }
}

/// One node's end of the network.
struct NodeLink {
    from: usize,
    net: Arc<SimNet>,
}

impl Link for NodeLink {
    fn resolve(
        &self,
        node: &str,
        user_id: i64,
        lookup: Lookup,
    ) -> BoxFuture<'static, Result<Served, LinkError>> {
        let net = Arc::clone(&self.net);
        let from = self.from;
        let to = net.index(node);
        Box::pin(async move {
            let to = to.ok_or(LinkError::Unreachable)?;
            net.hop(from, to).await?;
            let router = net.router(to).ok_or(LinkError::Unreachable)?;
            let served = router
                .resolve_local(user_id, lookup)
                .await
                .map_err(|e| LinkError::Remote(e.to_string()))?;
            net.hop(to, from).await?;
            Ok(served)
        })
    }

    fn invalidate(
        &self,
        node: &str,
        user_id: i64,
        min_version: Option<i64>,
    ) -> BoxFuture<'static, Result<(), LinkError>> {
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
            net.hop(to, from).await
        })
    }
}
