//! The cluster: nodes joined with ractor_cluster over TCP.
//!
//! ```text
//!   NodeServer (ractor_cluster: TCP listener, one NodeSession per peer;
//!               TLS from `tls` when configured)
//!   PeerActor  (`peer`: the only cluster actor; joined to process group
//!               `sessiond-routers`; answers Ping / Resolve / Invalidate /
//!               FlushAll for this node's Router; messages in `wire`)
//!   monitor    (`membership`: heartbeat, membership view, pause check;
//!               `dial`: the reconnect loop, resolving --join names
//!               every round; `leave`: peers that said they are leaving)
//!   ClusterLink(`link`: the actors crate's `Link`, calling a peer's
//!               PeerActor by node name)
//! ```
//!
//! ractor_cluster has no failure detector and no reconnect, so this module
//! adds both: every `HEARTBEAT` each peer's PeerActor is pinged with a
//! timeout; a peer that misses `DOWN_AFTER` pings in a row leaves the view
//! (its users are re-homed by the rendezvous hash), and comes back with its
//! first answered ping. Configured and learned peer addresses are dialled
//! again whenever no session to them is open. Peers are always addressed by
//! node name, since remote actor ids change on every reconnection.
//!
//! Peers learn each other's addresses from the Ping answers (so a node
//! that joins any one member finds the rest) and dial them themselves —
//! with mutual TLS when `--cluster-tls-*` is given: every node presents a
//! certificate signed by the cluster CA and accepts only peers that do,
//! and the cookie is checked inside the encrypted channel.
//!
//! What a view change or a pause means for the cache (who must flush,
//! which users move) is the actors crate's membership policy
//! (`Router::apply_view`, `Router::flush`, `PauseCheck`), the same code the
//! simulation runs; this module only detects and delivers: it tells a
//! member that came into the view to flush (`FlushAll`).

mod dial;
mod guard;
mod leave;
mod link;
mod membership;
mod peer;
mod tls;
mod wire;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use ractor::{Actor, ActorRef};
use ractor_cluster::node::{NodeConnectionMode, NodeServerMessage};
use ractor_cluster::{IncomingEncryptionMode, NodeServer};
use sessiond_actors::Router;
use tokio::task::JoinHandle;

pub use guard::{AUTH_DEADLINE, MAX_CONNECTIONS, MAX_FRAME, MAX_HANDSHAKE_FRAME};
pub use link::ClusterLink;
pub use tls::ClusterTls;

use crate::metrics::Telemetry;
use leave::Departures;
use peer::{PeerActor, PeerState};
use wire::{LeaveNotice, PeerMsg};

/// The process group every node's PeerActor joins.
pub const GROUP: &str = "sessiond-routers";
/// How often peers are pinged.
pub const HEARTBEAT: Duration = Duration::from_millis(300);
/// How long a ping may take.
pub const PING_TIMEOUT: Duration = Duration::from_millis(500);
/// Missed pings in a row before a peer leaves the view (so a silent peer is
/// marked down within about DOWN_AFTER × (HEARTBEAT + PING_TIMEOUT)).
pub const DOWN_AFTER: u32 = 2;
/// How long a forwarded call may take before this node serves the user
/// itself.
pub const FORWARD_TIMEOUT: Duration = Duration::from_millis(800);

/// What a node needs to join a cluster.
#[derive(Clone)]
pub struct ClusterSettings {
    pub node_name: String,
    pub listen: SocketAddr,
    pub join: Vec<String>,
    pub cookie: String,
    /// Mutual TLS between nodes, when configured.
    pub tls: Option<ClusterTls>,
}

/// A running cluster membership.
pub struct Cluster {
    server: ActorRef<NodeServerMessage>,
    peer_actor: ActorRef<PeerMsg>,
    monitor: JoinHandle<()>,
    /// The accept loop on the cluster address.
    acceptor: Option<JoinHandle<()>>,
    joined: Arc<AtomicBool>,
    departures: Arc<Departures>,
    node_name: String,
}

impl Cluster {
    /// Starts the node server, the PeerActor and the monitor, and dials the
    /// configured peers.
    pub async fn start(
        settings: ClusterSettings,
        router: Router,
        link: Arc<ClusterLink>,
        telemetry: Arc<Telemetry>,
    ) -> anyhow::Result<Cluster> {
        if settings.cookie.is_empty() {
            anyhow::bail!("a cluster needs --cluster-cookie");
        }
        // Peers are found through our own Ping (which carries known
        // addresses) and dialled by the monitor, with TLS when configured:
        // ractor_cluster's transitive mode would dial them in plain TCP.
        // This node accepts on the cluster address itself (`guard`: a
        // connection cap, a deadline and bounded frames before
        // authentication; with TLS, each peer's certificate kept and its
        // name checked). ractor_cluster's own listener is on an ephemeral
        // loopback port; with TLS a session it accepts has no certificate
        // kept, so the name check closes it.
        let loopback = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
        let encryption = settings
            .tls
            .as_ref()
            .map(|t| IncomingEncryptionMode::Tls(t.acceptor.clone()));
        let server = NodeServer::new(
            0,
            settings.cookie.clone(),
            settings.node_name.clone(),
            settings.listen.ip().to_string(),
            encryption,
            Some(NodeConnectionMode::Isolated),
        )
        .with_listen_addr(loopback)
        .with_max_inbound_frame_size(guard::MAX_FRAME);
        let known = Arc::new(RwLock::new(vec![settings.listen.to_string()]));
        let (server, _) = Actor::spawn(None, server, ())
            .await
            .context("cannot start the cluster node server")?;
        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        let port = listener.local_addr().map(|a| a.port())?;
        // The address peers learn is this one, not the loopback's.
        let stopped = |_| anyhow::anyhow!("the cluster node server stopped");
        server
            .cast(NodeServerMessage::PortChanged { port })
            .map_err(stopped)?;
        server
            .cast(NodeServerMessage::SubscribeToEvents {
                id: "auth-deadline".into(),
                subscription: Box::new(guard::AuthDeadline::default()),
            })
            .map_err(stopped)?;
        if let Some(tls) = &settings.tls {
            server
                .cast(NodeServerMessage::SubscribeToEvents {
                    id: "certificate-names".into(),
                    subscription: Box::new(tls.name_check()),
                })
                .map_err(stopped)?;
        }
        let acceptor = Some(accept(listener, server.clone(), settings.tls.clone()));
        let departures = Departures::new();
        let node_name = settings.node_name.clone();
        let (peer_actor, _) = Actor::spawn(
            None,
            PeerActor,
            PeerState {
                router: router.clone(),
                node: settings.node_name.clone(),
                known: Arc::clone(&known),
                departures: Arc::clone(&departures),
            },
        )
        .await
        .context("cannot start the cluster peer actor")?;
        let joined = Arc::new(AtomicBool::new(settings.join.is_empty()));
        let monitor = tokio::spawn(membership::monitor(membership::Monitor {
            settings,
            server: server.clone(),
            router,
            link,
            telemetry,
            joined: Arc::clone(&joined),
            shared_known: known,
            departures: Arc::clone(&departures),
        }));
        Ok(Cluster {
            server,
            peer_actor,
            monitor,
            acceptor,
            joined,
            departures,
            node_name,
        })
    }

    /// Tells every peer this node is leaving, so each drops it from its
    /// view at once (no wait for the failure detector) and stops
    /// forwarding to it; from now on its Ping answers say so too. Waits
    /// for the peers' answers, each for at most [`PING_TIMEOUT`]. The
    /// node keeps answering the peers' calls until [`Cluster::stop`].
    pub async fn leave(&self) {
        self.departures.start_leaving();
        let notice = serde_json::to_string(&LeaveNotice {
            name: self.node_name.clone(),
            instance: self.departures.instance,
        })
        .unwrap_or_default();
        let peers = ractor::pg::get_members(&GROUP.to_string())
            .into_iter()
            .filter(|c| !c.get_id().is_local())
            .map(ActorRef::<PeerMsg>::from);
        let told = peers.map(|peer| {
            let notice = notice.clone();
            async move {
                let answer = peer
                    .call(|r| PeerMsg::Leave(notice, r), Some(PING_TIMEOUT))
                    .await;
                matches!(answer, Ok(ractor::rpc::CallResult::Success(_)))
            }
        });
        let told = futures_util::future::join_all(told).await;
        tracing::info!(
            peers = told.len(),
            confirmed = told.iter().filter(|t| **t).count(),
            "told the peers this node is leaving"
        );
    }

    /// Whether [`Cluster::leave`] was called.
    pub fn leaving(&self) -> bool {
        self.departures.leaving()
    }

    /// True once this node has seen a peer (or needs none).
    pub fn joined(&self) -> bool {
        self.joined.load(Ordering::Relaxed)
    }

    pub fn stop(&self) {
        self.monitor.abort();
        if let Some(a) = &self.acceptor {
            a.abort();
        }
        self.peer_actor.stop(None);
        self.server.stop(None);
    }
}

/// Accepts cluster connections on the cluster address, at most
/// [`MAX_CONNECTIONS`] open at once, and hands each (after its TLS
/// handshake, when configured) to the node server, gated.
fn accept(
    listener: tokio::net::TcpListener,
    server: ActorRef<NodeServerMessage>,
    tls: Option<ClusterTls>,
) -> JoinHandle<()> {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        loop {
            let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
                return;
            };
            let (tcp, peer_addr) = match listener.accept().await {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot accept a cluster connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            match &tls {
                Some(tls) => {
                    let (tls, server) = (tls.clone(), server.clone());
                    tokio::spawn(async move { tls.accept(tcp, peer_addr, server, permit).await });
                }
                None => {
                    let Ok(local_addr) = tcp.local_addr() else {
                        continue;
                    };
                    let _ = server.cast(NodeServerMessage::ConnectionOpenedExternal {
                        stream: Box::new(guard::Guarded {
                            stream: tcp,
                            peer: peer_addr.to_string(),
                            local: local_addr.to_string(),
                            cert: None,
                            permit: Some(permit),
                        }),
                        is_server: true,
                    });
                }
            }
        }
    })
}
