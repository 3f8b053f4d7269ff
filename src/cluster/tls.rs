//! Mutual TLS between nodes, kept apart from the rest of the cluster code
//! because it is the one part that reads key material from files and builds
//! rustls configurations.
//!
//! Only TLS 1.3 is spoken. A node's name is bound to its certificate:
//! sessiond accepts and dials the TLS connections itself
//! ([`ClusterTls::accept`], [`ClusterTls::connect`]) and keeps each one's
//! peer certificate, then hands the stream to ractor_cluster through the
//! [`super::guard`], which checks the first name the peer sends against
//! the certificate before ractor_cluster reads it. Once a session has
//! authenticated (the cookie), [`NameCheck`] checks the name again; the
//! heartbeat then believes a peer's Ping answer only when it names the node
//! its session was verified for ([`ClusterTls::vouch`]). A node with a
//! valid certificate for `a` cannot join as `b`, nor answer as `b`.
//!
//! A certificate names node `n` when it is valid for the DNS name `n`, or,
//! with `--cluster-tls-domain D`, for `n.D` (what cert-manager issues for
//! a StatefulSet's pods: `sessiond-0.sessiond-peers.NS.svc.cluster.local`).
//! The address a node is dialled at need not be in its certificate (pod
//! addresses change); the name it announces must.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use ractor::ActorRef;
use ractor_cluster::node::{NodeServerMessage, NodeServerSessionInformation};
use ractor_cluster::NodeEventSubscription;
use rustls::pki_types::{CertificateDer, ServerName};
use sessiond_actors::sync::MutexExt;

use super::guard::Guarded;
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
    rule: NameRule,
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
pub(super) fn node_name(announced: &str) -> &str {
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

/// Which DNS names a certificate must bear for a node name: the name
/// itself, or the name under a domain.
#[derive(Clone, Debug, Default)]
pub(crate) struct NameRule {
    domain: Option<String>,
}

impl NameRule {
    /// Whether `cert` names the node `name`.
    pub(crate) fn names(&self, cert: &CertificateDer<'_>, name: &str) -> bool {
        // A bare name with a dot would let `a.D` pass for a node named `a.D`
        // under the domain rule twice over; node names are single labels
        // in the domain form.
        cert_names(cert, name)
            || self
                .domain
                .as_deref()
                .is_some_and(|d| !name.contains('.') && cert_names(cert, &format!("{name}.{d}")))
    }
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
    /// The TLS handshake of an accepted cluster connection (within
    /// [`HANDSHAKE_TIMEOUT`]), then the stream is handed to the node
    /// server, gated, its certificate kept.
    pub(super) async fn accept(
        &self,
        tcp: tokio::net::TcpStream,
        peer_addr: SocketAddr,
        server: ActorRef<NodeServerMessage>,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) {
        let Ok(local_addr) = tcp.local_addr() else {
            return;
        };
        let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(tcp)).await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::warn!(peer = %peer_addr, error = %e, "cluster TLS handshake failed");
                return;
            }
            Err(_) => return,
        };
        let cert = leaf_certificate(stream.get_ref().1);
        self.opened(true, peer_addr, cert.clone());
        let guarded = Guarded {
            stream,
            peer: peer_addr.to_string(),
            local: local_addr.to_string(),
            cert: cert.map(|c| (c, self.rule.clone())),
            permit: Some(permit),
        };
        let _ = server.cast(NodeServerMessage::ConnectionOpenedExternal {
            stream: Box::new(guarded),
            is_server: true,
        });
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
        let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, self.connector.connect(name, tcp))
            .await
            .map_err(|_| "the TLS handshake timed out".to_string())?
            .map_err(|e| e.to_string())?;
        let cert = leaf_certificate(stream.get_ref().1);
        self.opened(false, peer_addr, cert.clone());
        let guarded = Guarded {
            stream,
            peer: peer_addr.to_string(),
            local: local_addr.to_string(),
            cert: cert.map(|c| (c, self.rule.clone())),
            permit: None,
        };
        server
            .cast(NodeServerMessage::ConnectionOpenedExternal {
                stream: Box::new(guarded),
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
            rule: self.rule.clone(),
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
    rule: NameRule,
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
            .is_some_and(|cert| self.rule.names(&cert, &announced));
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
    /// that signs every node's certificate. Names are checked by the
    /// node name alone.
    pub fn load(cert: &str, key: &str, ca: &str) -> anyhow::Result<ClusterTls> {
        Self::load_with_domain(cert, key, ca, None)
    }

    /// [`ClusterTls::load`], a node `n`'s certificate also being good
    /// when it names `n.DOMAIN`.
    pub fn load_with_domain(
        cert: &str,
        key: &str,
        ca: &str,
        domain: Option<&str>,
    ) -> anyhow::Result<ClusterTls> {
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
            .with_protocol_versions(&[&rustls::version::TLS13])
            .context("TLS protocol versions")?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs.clone(), key.clone_key())
            .context("the certificate and key do not match")?;
        let server_verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            roots,
            Arc::clone(&provider),
        )
        .build()
        .context("cannot build the peer certificate verifier")?;
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .context("TLS protocol versions")?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyAddress(server_verifier)))
            .with_client_auth_cert(certs, key)
            .context("the certificate and key do not match")?;
        Ok(ClusterTls {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server)),
            connector: tokio_rustls::TlsConnector::from(Arc::new(client)),
            peers: Arc::new(PeerCerts::default()),
            rule: NameRule {
                domain: domain
                    .map(|d| d.trim_matches('.').to_string())
                    .filter(|d| !d.is_empty()),
            },
        })
    }
}

/// Checks a dialled node's certificate chain against the cluster's CA but
/// not against the address dialled: the node name it announces is checked
/// against the certificate instead (see the module documentation).
#[derive(Debug)]
struct AnyAddress(Arc<rustls::client::WebPkiServerVerifier>);

impl rustls::client::danger::ServerCertVerifier for AnyAddress {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        use rustls::CertificateError::{NotValidForName, NotValidForNameContext};
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                NotValidForName | NotValidForNameContext { .. },
            )) => Ok(rustls::client::danger::ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
