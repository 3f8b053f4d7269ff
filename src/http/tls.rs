//! HTTPS on the API (`--tls-cert`, `--tls-key`): rustls, TLS 1.2 and 1.3,
//! HTTP/1.1 only. The certificate and key are read again every
//! [`RELOAD_EVERY`]; when either file changed and the pair is good, new
//! handshakes present the new certificate (connections already open keep
//! theirs). A pair that cannot be read or does not match is logged and the
//! certificate in use kept, so a renewal written one file at a time never
//! takes the listener down.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sessiond_actors::sync::RwLockExt;

/// How often the certificate and key files are read again.
pub const RELOAD_EVERY: Duration = Duration::from_secs(1);

/// The PEM files of the API's certificate (chain, leaf first) and key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: String,
    pub key: String,
}

/// The certificate new handshakes present, replaced when the files change.
#[derive(Debug)]
struct Current {
    key: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.key.read_locked()))
    }
}

/// The files' bytes, as last read.
type Snapshot = (Vec<u8>, Vec<u8>);

fn read(files: &TlsFiles) -> anyhow::Result<Snapshot> {
    let cert = std::fs::read(&files.cert)
        .with_context(|| format!("cannot read the certificate {}", files.cert))?;
    let key =
        std::fs::read(&files.key).with_context(|| format!("cannot read the key {}", files.key))?;
    Ok((cert, key))
}

fn parse(
    files: &TlsFiles,
    (cert, key): &Snapshot,
    provider: &CryptoProvider,
) -> anyhow::Result<CertifiedKey> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert)
        .collect::<Result<_, _>>()
        .with_context(|| format!("cannot parse the certificate {}", files.cert))?;
    if chain.is_empty() {
        anyhow::bail!("no certificate in {}", files.cert);
    }
    let key = PrivateKeyDer::from_pem_slice(key)
        .with_context(|| format!("cannot parse the key {}", files.key))?;
    CertifiedKey::from_der(chain, key, provider)
        .with_context(|| format!("{} and {} do not make a pair", files.cert, files.key))
}

/// The API's TLS: the acceptor the listener hands each connection to, and
/// the task that reloads the certificate.
pub struct Https {
    pub acceptor: tokio_rustls::TlsAcceptor,
    reloader: tokio::task::JoinHandle<()>,
}

impl Drop for Https {
    fn drop(&mut self) {
        self.reloader.abort();
    }
}

impl Https {
    /// Loads the pair (an unusable one stops the start) and starts
    /// watching the files.
    pub fn load(files: TlsFiles) -> anyhow::Result<Https> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let snapshot = read(&files)?;
        let current = Arc::new(Current {
            key: RwLock::new(Arc::new(parse(&files, &snapshot, &provider)?)),
        });
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&current) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let reloader = tokio::spawn(reload(files, snapshot, current, provider));
        Ok(Https {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            reloader,
        })
    }
}

async fn reload(
    files: TlsFiles,
    mut last: Snapshot,
    current: Arc<Current>,
    provider: Arc<CryptoProvider>,
) {
    let mut every = tokio::time::interval(RELOAD_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let files2 = files.clone();
        let Ok(now) = tokio::task::spawn_blocking(move || read(&files2)).await else {
            continue;
        };
        let now = match now {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "TLS certificate not reloaded");
                continue;
            }
        };
        if now == last {
            continue;
        }
        match parse(&files, &now, &provider) {
            Ok(key) => {
                *current.key.write_locked() = Arc::new(key);
                tracing::info!(cert = %files.cert, "TLS certificate reloaded");
                last = now;
            }
            // Not remembered: tried again on the next round, so the second
            // file of a renewal written one at a time completes the pair.
            Err(e) => tracing::warn!(error = %format!("{e:#}"), "TLS certificate not reloaded"),
        }
    }
}
