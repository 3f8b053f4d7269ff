//! The calling side of the cluster: the production [`Link`] the router
//! forwards lookups and broadcasts invalidations through. Peers are
//! addressed by node name (remote actor ids change on every reconnection);
//! the membership monitor keeps the name → actor map current.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use ractor::rpc::CallResult;
use ractor::{ActorRef, RpcReplyPort};
use sessiond_actors::sync::RwLockExt;
use sessiond_actors::{BoxFuture, Link, LinkError, Lookup, Served, UserId};

use super::wire::{InvalidateReply, InvalidateRequest, PeerMsg, ResolveReply, ResolveRequest};
use super::FORWARD_TIMEOUT;
use crate::metrics::Telemetry;

/// The production [`Link`]: calls a peer's PeerActor by node name.
pub struct ClusterLink {
    peers: RwLock<HashMap<String, ActorRef<PeerMsg>>>,
    telemetry: Arc<Telemetry>,
}

impl ClusterLink {
    pub fn new(telemetry: Arc<Telemetry>) -> Arc<ClusterLink> {
        Arc::new(ClusterLink {
            peers: RwLock::new(HashMap::new()),
            telemetry,
        })
    }

    fn peer(&self, node: &str) -> Option<ActorRef<PeerMsg>> {
        self.peers.read_locked().get(node).cloned()
    }

    pub(super) fn set_peers(&self, peers: HashMap<String, ActorRef<PeerMsg>>) {
        *self.peers.write_locked() = peers;
    }
}

async fn call_peer(
    peer: Option<ActorRef<PeerMsg>>,
    build: impl FnOnce(RpcReplyPort<String>) -> PeerMsg,
) -> Result<String, LinkError> {
    let peer = peer.ok_or(LinkError::Unreachable)?;
    match peer.call(build, Some(FORWARD_TIMEOUT)).await {
        Ok(CallResult::Success(text)) => Ok(text),
        Ok(CallResult::Timeout) => Err(LinkError::Timeout),
        Ok(CallResult::SenderError) | Err(_) => Err(LinkError::Unreachable),
    }
}

impl Link for ClusterLink {
    fn resolve(
        &self,
        node: &str,
        user_id: &UserId,
        lookup: Lookup,
    ) -> BoxFuture<'static, Result<Served, LinkError>> {
        let peer = self.peer(node);
        let telemetry = Arc::clone(&self.telemetry);
        let user_id = user_id.clone();
        let request = serde_json::to_string(&ResolveRequest {
            user_id: user_id.clone(),
            force: lookup == Lookup::ForceRefresh,
        })
        .unwrap_or_default();
        Box::pin(async move {
            let started = std::time::Instant::now();
            let text = call_peer(peer, |reply| PeerMsg::Resolve(request, reply)).await;
            telemetry.forward_latency(started.elapsed());
            let reply: ResolveReply = serde_json::from_str(&text?)
                .map_err(|e| LinkError::Remote(format!("unreadable answer: {e}")))?;
            reply.into_served(&user_id)
        })
    }

    fn invalidate(
        &self,
        node: &str,
        user_id: &UserId,
        min_version: Option<i64>,
    ) -> BoxFuture<'static, Result<Option<i64>, LinkError>> {
        let peer = self.peer(node);
        let request = serde_json::to_string(&InvalidateRequest {
            user_id: user_id.clone(),
            min_version,
        })
        .unwrap_or_default();
        Box::pin(async move {
            let text = call_peer(peer, |reply| PeerMsg::Invalidate(request, reply)).await?;
            // An answer without a lease id (an older node) still confirms
            // the invalidation; the writer then waits for its lease.
            Ok(serde_json::from_str::<InvalidateReply>(&text)
                .ok()
                .and_then(|r| r.lease))
        })
    }
}
