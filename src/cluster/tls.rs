//! Mutual TLS between nodes, kept apart from the rest of the cluster code
//! because it is the one part that reads key material from files and builds
//! rustls configurations: the node server accepts with the result and the
//! dialler connects with it.

use std::sync::Arc;

use anyhow::Context as _;

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
