//! Mutual TLS between nodes, kept apart from the rest of the cluster code
//! because it is the one part that reads key material from files and builds
//! rustls configurations.
//!
//! A node's name is bound to its certificate: sessiond accepts and dials
//! the TLS connections itself ([`ClusterTls::serve`], [`ClusterTls::connect`])
//! and keeps each one's peer certificate, then hands the stream to
//! ractor_cluster. Once a session has authenticated (the cookie) and so
//! announced its node name, [`NameCheck`] closes it unless the certificate
//! is valid for that name as a DNS name (a subjectAltName entry, as webpki
//! checks a server name); the heartbeat then believes a peer's Ping answer
//! only when it names the node its session was verified for
//! ([`ClusterTls::vouch`]). A node with a valid certificate for `a` cannot
//! join as `b`, nor answer as `b`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use ractor::ActorRef;
use ractor_cluster::node::{NodeServerMessage, NodeServerSessionInformation};
use ractor_cluster::{NetworkStream, NodeEventSubscription};
use rustls::pki_types::{CertificateDer, ServerName};
use sessiond_actors::sync::MutexExt;

use super::wire::{PeerMsg, PingReply};

/// The longest a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// TLS for inter-node traffic: every node presents a certificate signed by
/// the cluster's CA and accepts only peers that do.
#[derive(Clone)]
pub struct ClusterTls {
    pub acceptor: tokio_rustls::TlsAcceptor,
    pub connector: tokio_rustls::TlsConnector,
    peers: Arc<PeerCerts>,
}

/// The peer certificate of each open connection, and the node name each
/// verified session is bound to.
#[derive(Default)]
struct PeerCerts {
    /// (incoming, peer address) → the peer's end-entity certificate.
    certs: Mutex<HashMap<(bool, String), CertificateDer<'static>>>,
    /// ractor node id of a verified session → its node name.
    verified: Mutex<HashMap<u64, String>>,
}

/// The node name in a ractor_cluster name (`name@host`).
fn node_name(announced: &str) -> &str {
    announced
        .rsplit_once('@')
        .map(|(n, _)| n)
        .unwrap_or(announced)
}

/// The certificate a TLS peer presented (its first, the leaf), kept.
fn leaf_certificate(conn: &rustls::CommonState) -> Option<CertificateDer<'static>> {
    conn.peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.clone().into_owned())
}

/// Whether `cert` is valid for `name` as a DNS name.
pub(crate) fn cert_names(cert: &CertificateDer<'_>, name: &str) -> bool {
    let Ok(server_name) = ServerName::try_from(name) else {
        return false;
    };
    match webpki::EndEntityCert::try_from(cert) {
        Ok(ee) => ee.verify_is_valid_for_subject_name(&server_name).is_ok(),
        Err(_) => false,
    }
}

impl ClusterTls {
    /// Accepts cluster connections on `listener` forever: each TLS
    /// handshake runs in a task of its own, and a stream that completes one
    /// is handed to the node server with its certificate kept.
    pub fn serve(
        &self,
        listener: tokio::net::TcpListener,
        server: ActorRef<NodeServerMessage>,
    ) -> tokio::task::JoinHandle<()> {
        let tls = self.clone();
        tokio::spawn(async move {
            loop {
                let (tcp, peer_addr) = match listener.accept().await {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot accept a cluster connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let (tls, server) = (tls.clone(), server.clone());
                tokio::spawn(async move {
                    let _ = tcp.set_nodelay(true);
                    let Ok(local_addr) = tcp.local_addr() else {
                        return;
                    };
                    let stream = match tokio::time::timeout(
                        HANDSHAKE_TIMEOUT,
                        tls.acceptor.accept(tcp),
                    )
                    .await
                    {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::warn!(peer = %peer_addr, error = %e, "cluster TLS handshake failed");
                            return;
                        }
                        Err(_) => return,
                    };
                    tls.opened(true, peer_addr, leaf_certificate(stream.get_ref().1));
                    let _ = server.cast(NodeServerMessage::ConnectionOpened {
                        stream: Box::new(NetworkStream::TlsServer {
                            peer_addr,
                            local_addr,
                            stream,
                        }),
                        is_server: true,
                    });
                });
            }
        })
    }

    /// Dials `addr` with TLS, expecting a certificate for `host` (the
    /// `--join` name it was resolved from, or the address's own host), and
    /// hands the stream to the node server, its certificate kept.
    pub async fn connect(
        &self,
        server: &ActorRef<NodeServerMessage>,
        addr: &str,
        host: &str,
    ) -> Result<(), String> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?;
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        let _ = tcp.set_nodelay(true);
        let peer_addr = tcp.peer_addr().map_err(|e| e.to_string())?;
        let local_addr = tcp.local_addr().map_err(|e| e.to_string())?;
        let stream = self
            .connector
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        self.opened(false, peer_addr, leaf_certificate(stream.get_ref().1));
        server
            .cast(NodeServerMessage::ConnectionOpened {
                stream: Box::new(NetworkStream::TlsClient {
                    peer_addr,
                    local_addr,
                    stream,
                }),
                is_server: false,
            })
            .map_err(|_| "the cluster node server stopped".to_string())
    }

    fn opened(&self, incoming: bool, peer: SocketAddr, cert: Option<CertificateDer<'static>>) {
        if let Some(cert) = cert {
            self.peers
                .certs
                .locked()
                .insert((incoming, peer.to_string()), cert);
        }
    }

    /// The subscription that closes a session whose certificate does not
    /// name the node it announced.
    pub fn name_check(&self) -> NameCheck {
        NameCheck {
            peers: Arc::clone(&self.peers),
        }
    }

    /// Treats as unanswered every Ping answer whose name is not the one
    /// its session was verified for.
    pub(super) fn vouch(&self, results: &mut [(ActorRef<PeerMsg>, Option<PingReply>)]) {
        let verified = self.peers.verified.locked();
        for (actor, reply) in results.iter_mut() {
            let bound = verified.get(&actor.get_id().node());
            if reply.as_ref().is_some_and(|r| bound != Some(&r.name)) {
                tracing::warn!(
                    peer = ?bound,
                    "a peer answered under a name its certificate does not bind; ignored"
                );
                *reply = None;
            }
        }
    }
}

/// Closes cluster sessions whose peer certificate is not valid for the
/// node name they announced (see the module documentation).
pub struct NameCheck {
    peers: Arc<PeerCerts>,
}

impl NodeEventSubscription for NameCheck {
    fn node_session_opened(&self, _ses: NodeServerSessionInformation) {}

    fn node_session_disconnected(&self, ses: NodeServerSessionInformation) {
        self.peers
            .certs
            .locked()
            .remove(&(ses.is_server, ses.peer_addr.clone()));
        self.peers.verified.locked().remove(&ses.node_id);
    }

    fn node_session_authenticated(&self, ses: NodeServerSessionInformation) {
        let announced = ses
            .peer_name
            .as_ref()
            .map(|n| node_name(&n.name).to_string())
            .unwrap_or_default();
        let matches = self
            .peers
            .certs
            .locked()
            .get(&(ses.is_server, ses.peer_addr.clone()))
            .cloned()
            .is_some_and(|cert| cert_names(&cert, &announced));
        if matches {
            self.peers.verified.locked().insert(ses.node_id, announced);
        } else {
            tracing::warn!(
                peer = %ses.peer_addr,
                announced = %announced,
                "refused a cluster peer: its certificate is not valid for the node name it announced"
            );
            ses.actor
                .stop(Some("certificate name mismatch".to_string()));
        }
    }
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
            peers: Arc::new(PeerCerts::default()),
        })
    }
}
