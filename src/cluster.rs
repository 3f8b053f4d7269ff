//! The cluster: nodes joined with ractor_cluster over TCP.
//!
//! ```text
//!   NodeServer (ractor_cluster: TCP listener, one NodeSession per peer)
//!   PeerActor  (the only cluster actor; joined to process group
//!               `sessiond-routers`; answers Ping / Resolve / Invalidate /
//!               FlushAll for this node's Router)
//!   monitor    (task: heartbeat, membership view, reconnect loop)
//!   ClusterLink(the actors crate's `Link`: calls a peer's PeerActor by
//!               node name)
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
//! A peer that comes (back) into the view may have missed invalidations
//! while it was away, so it is told to drop its whole cache (`FlushAll`);
//! a node that finds its own heartbeat badly late (it was paused) does the
//! same for itself.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use ractor::rpc::CallResult;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::node::{NodeConnectionMode, NodeServerMessage};
use ractor_cluster::{IncomingEncryptionMode, NodeServer, RactorClusterMessage};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use sessiond_actors::{
    BoxFuture, Fetched, InvalidationSource, Link, LinkError, Lookup, Router, Served, Status, User,
    UserState,
};

use crate::metrics::Telemetry;

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

/// TLS for inter-node traffic: every node presents a certificate signed by
/// the cluster's CA and accepts only peers that do.
#[derive(Clone)]
pub struct ClusterTls {
    pub acceptor: tokio_rustls::TlsAcceptor,
    pub connector: tokio_rustls::TlsConnector,
}

impl ClusterTls {
    /// Loads PEM files: this node's certificate chain and key, and the CA
    /// that signs every node's certificate.
    pub fn load(cert: &str, key: &str, ca: &str) -> anyhow::Result<ClusterTls> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .with_context(|| format!("cannot read the certificate {cert}"))?
            .collect::<Result<_, _>>()
            .with_context(|| format!("cannot parse the certificate {cert}"))?;
        let key = PrivateKeyDer::from_pem_file(key)
            .with_context(|| format!("cannot read the private key {key}"))?;
        let mut roots = rustls::RootCertStore::empty();
        for ca_cert in CertificateDer::pem_file_iter(ca)
            .with_context(|| format!("cannot read the CA certificate {ca}"))?
        {
            roots
                .add(ca_cert.with_context(|| format!("cannot parse the CA certificate {ca}"))?)
                .context("the CA certificate is not usable")?;
        }
        let roots = Arc::new(roots);
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::clone(&roots),
            Arc::clone(&provider),
        )
        .build()
        .context("cannot build the peer certificate verifier")?;
        let server = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs.clone(), key.clone_key())
            .context("the certificate and key do not match")?;
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_root_certificates(roots)
            .with_client_auth_cert(certs, key)
            .context("the certificate and key do not match")?;
        Ok(ClusterTls {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server)),
            connector: tokio_rustls::TlsConnector::from(Arc::new(client)),
        })
    }
}

/// Messages between nodes. The only cluster (remotable) message type: the
/// session actors' messages stay local.
#[derive(RactorClusterMessage)]
pub enum PeerMsg {
    /// Answers a JSON [`PingReply`]: this node's name and the cluster
    /// addresses it knows, so peers find each other through any one node.
    #[rpc]
    Ping(String, RpcReplyPort<String>),
    /// A JSON [`ResolveRequest`]; answers a JSON [`ResolveReply`].
    #[rpc]
    Resolve(String, RpcReplyPort<String>),
    /// A JSON [`InvalidateRequest`]; answers once done.
    #[rpc]
    Invalidate(String, RpcReplyPort<String>),
    /// Drop every cached record (sent by the named peer).
    FlushAll(String),
}

#[derive(Serialize, Deserialize)]
pub struct PingReply {
    pub name: String,
    pub addrs: Vec<String>,
}

#[derive(Serialize, Deserialize)]
pub struct ResolveRequest {
    pub user_id: i64,
    pub force: bool,
}

#[derive(Serialize, Deserialize)]
pub struct WireUser {
    pub id: i64,
    pub email: String,
    pub role: String,
    pub active: bool,
    pub version: i64,
    pub tokens_valid_after_ms: i64,
    pub revoked_sids: Vec<String>,
}

#[derive(Serialize, Deserialize)]
pub enum ResolveReply {
    Found {
        user: WireUser,
        hit: bool,
        age_ms: u64,
    },
    Missing {
        hit: bool,
        age_ms: u64,
    },
    Failed(String),
}

#[derive(Serialize, Deserialize)]
pub struct InvalidateRequest {
    pub user_id: i64,
    pub min_version: Option<i64>,
}

impl ResolveReply {
    fn from_served(s: &Served) -> ResolveReply {
        let age_ms = s.age.as_millis() as u64;
        match &s.fetched {
            Fetched::Missing => ResolveReply::Missing { hit: s.hit, age_ms },
            Fetched::Found(u) => ResolveReply::Found {
                user: WireUser {
                    id: u.user.id,
                    email: u.user.email.clone(),
                    role: u.user.role.clone(),
                    active: u.user.status == Status::Active,
                    version: u.version,
                    tokens_valid_after_ms: u.tokens_valid_after_ms,
                    revoked_sids: u.revoked_sids.clone(),
                },
                hit: s.hit,
                age_ms,
            },
        }
    }

    fn into_served(self) -> Result<Served, LinkError> {
        match self {
            ResolveReply::Missing { hit, age_ms } => Ok(Served {
                fetched: Fetched::Missing,
                hit,
                age: Duration::from_millis(age_ms),
                node: None,
            }),
            ResolveReply::Found { user, hit, age_ms } => Ok(Served {
                fetched: Fetched::Found(Arc::new(UserState {
                    user: User {
                        id: user.id,
                        email: user.email,
                        role: user.role,
                        status: if user.active {
                            Status::Active
                        } else {
                            Status::Deactivated
                        },
                    },
                    version: user.version,
                    tokens_valid_after_ms: user.tokens_valid_after_ms,
                    revoked_sids: user.revoked_sids,
                })),
                hit,
                age: Duration::from_millis(age_ms),
                node: None,
            }),
            ResolveReply::Failed(e) => Err(LinkError::Remote(e)),
        }
    }
}

/// The PeerActor: serves other nodes' calls into this node's router. Each
/// call runs in a task of its own so a slow database read never holds up
/// the mailbox.
struct PeerActor;

struct PeerState {
    router: Router,
    node: String,
    /// Cluster addresses this node knows (its own first), shared by the
    /// monitor.
    known: Arc<RwLock<Vec<String>>>,
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
                let addrs = state.known.read().map(|k| k.clone()).unwrap_or_default();
                let answer = PingReply {
                    name: state.node.clone(),
                    addrs,
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
                            match router.resolve_local(req.user_id, lookup).await {
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
                        let _ = reply.send("ok".into());
                    }
                });
            }
            PeerMsg::FlushAll(from) => {
                tracing::info!(peer = %from, "peer asked for a cache flush");
                let router = state.router.clone();
                tokio::spawn(async move { router.invalidate_all_local().await });
            }
        }
        Ok(())
    }
}

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
        self.peers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(node)
            .cloned()
    }

    fn set_peers(&self, peers: HashMap<String, ActorRef<PeerMsg>>) {
        *self.peers.write().unwrap_or_else(|e| e.into_inner()) = peers;
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
        user_id: i64,
        lookup: Lookup,
    ) -> BoxFuture<'static, Result<Served, LinkError>> {
        let peer = self.peer(node);
        let telemetry = Arc::clone(&self.telemetry);
        let request = serde_json::to_string(&ResolveRequest {
            user_id,
            force: lookup == Lookup::ForceRefresh,
        })
        .unwrap_or_default();
        Box::pin(async move {
            let started = std::time::Instant::now();
            let text = call_peer(peer, |reply| PeerMsg::Resolve(request, reply)).await;
            telemetry.forward_latency(started.elapsed());
            let reply: ResolveReply = serde_json::from_str(&text?)
                .map_err(|e| LinkError::Remote(format!("unreadable answer: {e}")))?;
            reply.into_served()
        })
    }

    fn invalidate(
        &self,
        node: &str,
        user_id: i64,
        min_version: Option<i64>,
    ) -> BoxFuture<'static, Result<(), LinkError>> {
        let peer = self.peer(node);
        let request = serde_json::to_string(&InvalidateRequest {
            user_id,
            min_version,
        })
        .unwrap_or_default();
        Box::pin(async move {
            call_peer(peer, |reply| PeerMsg::Invalidate(request, reply)).await?;
            Ok(())
        })
    }
}

/// A running cluster membership.
pub struct Cluster {
    server: ActorRef<NodeServerMessage>,
    peer_actor: ActorRef<PeerMsg>,
    monitor: JoinHandle<()>,
    joined: Arc<AtomicBool>,
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
        let encryption = settings
            .tls
            .as_ref()
            .map(|t| IncomingEncryptionMode::Tls(t.acceptor.clone()));
        let server = NodeServer::new(
            settings.listen.port(),
            settings.cookie.clone(),
            settings.node_name.clone(),
            settings.listen.ip().to_string(),
            encryption,
            Some(NodeConnectionMode::Isolated),
        )
        .with_listen_addr(settings.listen.ip());
        let known = Arc::new(RwLock::new(vec![settings.listen.to_string()]));
        let (server, _) = Actor::spawn(None, server, ())
            .await
            .context("cannot start the cluster node server")?;
        let (peer_actor, _) = Actor::spawn(
            None,
            PeerActor,
            PeerState {
                router: router.clone(),
                node: settings.node_name.clone(),
                known: Arc::clone(&known),
            },
        )
        .await
        .context("cannot start the cluster peer actor")?;
        let joined = Arc::new(AtomicBool::new(settings.join.is_empty()));
        let monitor = tokio::spawn(monitor(
            settings,
            server.clone(),
            router,
            link,
            telemetry,
            Arc::clone(&joined),
            known,
        ));
        Ok(Cluster {
            server,
            peer_actor,
            monitor,
            joined,
        })
    }

    /// True once this node has seen a peer (or needs none).
    pub fn joined(&self) -> bool {
        self.joined.load(Ordering::Relaxed)
    }

    pub fn stop(&self) {
        self.monitor.abort();
        self.peer_actor.stop(None);
        self.server.stop(None);
    }
}

struct PeerHealth {
    actor: ActorRef<PeerMsg>,
    misses: u32,
    up: bool,
}

/// Heartbeat, membership view and reconnection, forever.
async fn monitor(
    settings: ClusterSettings,
    server: ActorRef<NodeServerMessage>,
    router: Router,
    link: Arc<ClusterLink>,
    telemetry: Arc<Telemetry>,
    joined: Arc<AtomicBool>,
    shared_known: Arc<RwLock<Vec<String>>>,
) {
    let me = settings.node_name.clone();
    let mut known: HashSet<String> = settings.join.iter().cloned().collect();
    known.insert(settings.listen.to_string());
    let mut health: HashMap<String, PeerHealth> = HashMap::new();
    let mut tick = tokio::time::interval(HEARTBEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = tokio::time::Instant::now();
    let mut round: u64 = 0;
    loop {
        tick.tick().await;
        round += 1;
        let now = tokio::time::Instant::now();
        if now.saturating_duration_since(last) > HEARTBEAT * 6 && round > 1 {
            tracing::warn!("this node was paused; its cache may have missed invalidations");
            router.invalidate_all_local().await;
        }
        last = now;

        // Dial every known address with no open session (every ~1 s).
        if round % 3 == 1 {
            redial(&server, &settings, &mut known).await;
            if let Ok(mut shared) = shared_known.write() {
                let mut list: Vec<String> = known.iter().cloned().collect();
                list.sort();
                *shared = list;
            }
        }

        // Ping every member of the group (other than this node) at once.
        let members: Vec<ActorRef<PeerMsg>> = ractor::pg::get_members(&GROUP.to_string())
            .into_iter()
            .filter(|c| !c.get_id().is_local())
            .map(ActorRef::<PeerMsg>::from)
            .collect();
        let pings = members.into_iter().map(|actor| {
            let me = me.clone();
            async move {
                let answer = actor
                    .call(|r| PeerMsg::Ping(me, r), Some(PING_TIMEOUT))
                    .await;
                match answer {
                    Ok(CallResult::Success(text)) => {
                        (actor, serde_json::from_str::<PingReply>(&text).ok())
                    }
                    _ => (actor, None),
                }
            }
        });
        let results = futures_util::future::join_all(pings).await;

        let mut seen: HashSet<String> = HashSet::new();
        let mut came_up = Vec::new();
        for (actor, reply) in results {
            if let Some(r) = &reply {
                known.extend(r.addrs.iter().cloned());
            }
            match reply.map(|r| r.name) {
                Some(name) if name != me => {
                    seen.insert(name.clone());
                    let entry = health.entry(name.clone()).or_insert(PeerHealth {
                        actor: actor.clone(),
                        misses: 0,
                        up: false,
                    });
                    entry.actor = actor;
                    entry.misses = 0;
                    if !entry.up {
                        entry.up = true;
                        came_up.push(name);
                    }
                }
                Some(_) => {}
                None => {
                    // Unanswered: find which peer it was by actor id.
                    if let Some((name, h)) = health
                        .iter_mut()
                        .find(|(_, h)| h.actor.get_id() == actor.get_id())
                    {
                        seen.insert(name.clone());
                        h.misses += 1;
                        if h.up && h.misses >= DOWN_AFTER {
                            h.up = false;
                            tracing::warn!(peer = %name, "peer stopped answering; marked down");
                        }
                    }
                }
            }
        }
        // Peers whose session closed are gone from the group.
        health.retain(|name, _| {
            let keep = seen.contains(name);
            if !keep {
                tracing::warn!(peer = %name, "peer disconnected");
            }
            keep
        });

        let up: HashMap<String, ActorRef<PeerMsg>> = health
            .iter()
            .filter(|(_, h)| h.up)
            .map(|(n, h)| (n.clone(), h.actor.clone()))
            .collect();
        let mut view: Vec<String> = up.keys().cloned().collect();
        view.push(me.clone());
        link.set_peers(up);
        if router.set_members(&view) {
            tracing::info!(members = ?view, "cluster membership changed");
        }
        telemetry.cluster_members(view.len());
        if view.len() > 1 {
            joined.store(true, Ordering::Relaxed);
        }
        for name in came_up {
            tracing::info!(peer = %name, "peer joined");
            if let Some(h) = health.get(&name) {
                let _ = h.actor.cast(PeerMsg::FlushAll(me.clone()));
            }
        }
    }
}

/// Dials every known address that has no open session, and learns the
/// addresses of the peers it is connected to.
async fn redial(
    server: &ActorRef<NodeServerMessage>,
    settings: &ClusterSettings,
    known: &mut HashSet<String>,
) {
    let sessions = server
        .call(NodeServerMessage::GetSessions, Some(Duration::from_secs(1)))
        .await;
    let mut connected: HashSet<String> = HashSet::new();
    if let Ok(CallResult::Success(sessions)) = sessions {
        for info in sessions.values() {
            connected.insert(info.peer_addr.clone());
            if let Some(name) = &info.peer_name {
                if name.name != settings.node_name && !name.connection_string.is_empty() {
                    connected.insert(name.connection_string.clone());
                    known.insert(name.connection_string.clone());
                }
            }
        }
    }
    let me = settings.listen.to_string();
    for addr in known.iter() {
        if *addr == me || connected.contains(addr) {
            continue;
        }
        let dial = async {
            match &settings.tls {
                None => ractor_cluster::client_connect(server, addr.as_str())
                    .await
                    .map_err(|e| e.to_string()),
                Some(tls) => {
                    let host = addr.rsplit_once(':').map(|(h, _)| h).unwrap_or(addr);
                    let name = rustls::pki_types::ServerName::try_from(host.to_string())
                        .map_err(|e| e.to_string())?;
                    ractor_cluster::node::client::connect_enc(
                        server,
                        addr.as_str(),
                        tls.connector.clone(),
                        name,
                    )
                    .await
                    .map_err(|e| e.to_string())
                }
            }
        };
        match tokio::time::timeout(Duration::from_secs(1), dial).await {
            Ok(Ok(())) => tracing::info!(peer = %addr, "dialled peer"),
            Ok(Err(e)) => tracing::debug!(peer = %addr, error = %e, "peer not reachable"),
            Err(_) => tracing::debug!(peer = %addr, "dialling timed out"),
        }
    }
}
