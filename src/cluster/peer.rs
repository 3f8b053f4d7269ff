//! The serving side of the cluster: the one actor other nodes can call,
//! joined to the process group every node's peer actor joins. It only
//! translates wire messages into calls on this node's router, so a slow
//! peer or a slow database never holds up its mailbox.

use std::sync::{Arc, RwLock};

use ractor::{Actor, ActorProcessingErr, ActorRef};
use sessiond_actors::sync::RwLockExt;
use sessiond_actors::{FlushReason, InvalidationSource, Lookup, Router};

use super::leave::Departures;
use super::wire::{
    InvalidateReply, InvalidateRequest, LeaveNotice, PeerMsg, PingReply, ResolveReply,
    ResolveRequest,
};
use super::GROUP;

/// The PeerActor: serves other nodes' calls into this node's router. Each
/// call runs in a task of its own so a slow database read never holds up
/// the mailbox.
pub(super) struct PeerActor;

pub(super) struct PeerState {
    pub router: Router,
    pub node: String,
    /// Cluster addresses this node knows (its own first), shared by the
    /// monitor.
    pub known: Arc<RwLock<Vec<String>>>,
    /// Whether this node is leaving, and which peers left.
    pub departures: Arc<Departures>,
}

impl Actor for PeerActor {
    type Msg = PeerMsg;
    type State = PeerState;
    type Arguments = PeerState;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: PeerState,
    ) -> Result<Self::State, ActorProcessingErr> {
        ractor::pg::join(GROUP.to_string(), vec![myself.get_cell()]);
        Ok(args)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            PeerMsg::Ping(_, reply) => {
                let addrs = state.known.read_locked().clone();
                let answer = PingReply {
                    name: state.node.clone(),
                    addrs,
                    instance: state.departures.instance,
                    leaving: state.departures.leaving(),
                };
                let _ = reply.send(serde_json::to_string(&answer).unwrap_or_default());
            }
            PeerMsg::Resolve(request, reply) => {
                let router = state.router.clone();
                tokio::spawn(async move {
                    let answer = match serde_json::from_str::<ResolveRequest>(&request) {
                        Ok(req) => {
                            let lookup = if req.force {
                                Lookup::ForceRefresh
                            } else {
                                Lookup::Resolve
                            };
                            match router.answer_forwarded(req.user_id, lookup).await {
                                Ok(served) => ResolveReply::from_served(&served),
                                Err(e) => ResolveReply::Failed(e.to_string()),
                            }
                        }
                        Err(e) => ResolveReply::Failed(format!("bad request: {e}")),
                    };
                    let text = serde_json::to_string(&answer).unwrap_or_default();
                    let _ = reply.send(text);
                });
            }
            PeerMsg::Invalidate(request, reply) => {
                let router = state.router.clone();
                tokio::spawn(async move {
                    if let Ok(req) = serde_json::from_str::<InvalidateRequest>(&request) {
                        router
                            .invalidate_local(
                                req.user_id,
                                req.min_version,
                                InvalidationSource::Broadcast,
                            )
                            .await;
                        // The lease id tells the writer this node needs no
                        // waiting for (docs/freshness.md §3.5).
                        let answer = InvalidateReply {
                            lease: router.lease().map(|l| l.instance()),
                        };
                        let _ = reply.send(serde_json::to_string(&answer).unwrap_or_default());
                    }
                });
            }
            PeerMsg::Leave(notice, reply) => {
                if let Ok(notice) = serde_json::from_str::<LeaveNotice>(&notice) {
                    state.departures.peer_left(&notice, &state.router);
                }
                let _ = reply.send(String::new());
            }
            PeerMsg::FlushAll(from) => {
                tracing::info!(peer = %from, "peer asked for a cache flush");
                let router = state.router.clone();
                tokio::spawn(async move { router.flush(FlushReason::Rejoined) });
            }
        }
        Ok(())
    }
}
