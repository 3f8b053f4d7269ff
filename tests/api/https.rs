//! HTTPS on the API (`--tls-cert`, `--tls-key`): the API answers over TLS
//! and only over TLS, and a certificate replaced on disk is served to new
//! connections without a restart.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

use sessiond::app::Application;
use sessiond::config::{HttpsFiles, Settings};

use crate::helpers::{ADMIN_EMAIL, ADMIN_PASSWORD, SECRET};
use crate::pki::Pki;

/// sessiond with HTTPS from `live.pem`/`live.key` in the PKI's directory.
struct HttpsApp {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl HttpsApp {
    async fn start(pki: &Pki, db: &tempfile::TempDir) -> HttpsApp {
        let settings = Settings {
            listen: "127.0.0.1:0".into(),
            database_url: format!("sqlite://{}", db.path().join("s.db").display()),
            jwt_secret: Some(SECRET.into()),
            admin_password: Some(ADMIN_PASSWORD.into()),
            tls: Some(HttpsFiles {
                cert: pki.path("live.pem"),
                key: pki.path("live.key"),
            }),
            ..Settings::default()
        };
        let app = Application::build(settings).await.expect("app builds");
        let addr = app.addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let done = tokio::spawn(app.run_until_stopped(async {
            let _ = stopped.await;
        }));
        HttpsApp {
            addr,
            stop: Some(stop),
            done: Some(done),
        }
    }

    async fn stop(mut self) {
        if let (Some(stop), Some(done)) = (self.stop.take(), self.done.take()) {
            let _ = stop.send(());
            done.await.expect("task").expect("stops cleanly");
        }
    }
}

/// Makes `live.pem`/`live.key` the certificate `name` (signed by its CA).
fn install(pki: &Pki, name: &str) {
    // The key first: for a moment the pair does not match, which the
    // reload must ride out.
    std::fs::copy(pki.path(&format!("{name}.key")), pki.path("live.key")).expect("copies");
    std::fs::copy(pki.path(&format!("{name}.pem")), pki.path("live.pem")).expect("copies");
}

/// One request over HTTPS trusting `ca` alone: the raw answer, and the
/// certificate the server presented.
async fn https(
    addr: SocketAddr,
    pki: &Pki,
    ca: &str,
    request: &str,
) -> Result<(String, CertificateDer<'static>), String> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(pki.path(&format!("{ca}.pem"))).expect("reads") {
        roots.add(c.expect("parses")).expect("adds");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from("127.0.0.1").expect("name");
    let mut tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let cert = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.clone().into_owned())
        .ok_or("no certificate")?;
    tls.write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut answer))
        .await
        .map_err(|_| "no answer in 10 s".to_string())?
        .map_err(|e| e.to_string())?;
    Ok((String::from_utf8_lossy(&answer).into_owned(), cert))
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n")
}

fn pem_cert(pki: &Pki, name: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_file(pki.path(&format!("{name}.pem"))).expect("reads")
}

#[tokio::test]
async fn the_api_speaks_https_and_serves_a_replaced_certificate_without_a_restart() {
    let pki = Pki::new();
    pki.ca("ca1");
    pki.ca("ca2");
    pki.node_with_names("s1", "ca1", "IP:127.0.0.1,DNS:localhost");
    pki.node_with_names("s2", "ca2", "IP:127.0.0.1,DNS:localhost");
    install(&pki, "s1");
    let db = tempfile::tempdir().expect("temp dir");
    let app = HttpsApp::start(&pki, &db).await;

    // HTTPS: the whole way through a login and a session lookup.
    let (answer, cert) = https(app.addr, &pki, "ca1", &get("/healthz"))
        .await
        .expect("HTTPS answers");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(cert, pem_cert(&pki, "s1"));
    let body = serde_json::json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD }).to_string();
    let login = format!(
        "POST /api/auth/login HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let (answer, _) = https(app.addr, &pki, "ca1", &login).await.expect("login");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let token = answer
        .split("\"token\":\"")
        .nth(1)
        .and_then(|t| t.split('"').next())
        .expect("a token")
        .to_string();
    let session = format!(
        "GET /api/auth/session HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {token}\r\nconnection: close\r\n\r\n"
    );
    let (answer, _) = https(app.addr, &pki, "ca1", &session)
        .await
        .expect("session");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(ADMIN_EMAIL), "{answer}");

    // Plain HTTP gets no HTTP answer.
    let mut plain = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connects");
    plain
        .write_all(get("/healthz").as_bytes())
        .await
        .expect("writes");
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut buf)).await;
    assert!(
        !String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 200"),
        "plain HTTP was answered"
    );
    // A client that trusts another CA refuses the server.
    assert!(https(app.addr, &pki, "ca2", &get("/healthz"))
        .await
        .is_err());

    // The certificate replaced on disk is served without a restart.
    install(&pki, "s2");
    let start = Instant::now();
    let served = loop {
        if let Ok((answer, cert)) = https(app.addr, &pki, "ca2", &get("/healthz")).await {
            break Some((answer, cert));
        }
        if start.elapsed() > Duration::from_secs(10) {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (answer, cert) = served.expect("the new certificate is served within 10 s");
    println!(
        "the new certificate was served {} ms after it was written",
        start.elapsed().as_millis()
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(cert, pem_cert(&pki, "s2"));
    assert!(
        https(app.addr, &pki, "ca1", &get("/healthz"))
            .await
            .is_err(),
        "the old certificate is still served"
    );

    // A broken pair on disk keeps the certificate in use.
    std::fs::write(pki.path("live.pem"), "not a certificate").expect("writes");
    tokio::time::sleep(sessiond::http::tls::RELOAD_EVERY * 3).await;
    let (answer, cert) = https(app.addr, &pki, "ca2", &get("/healthz"))
        .await
        .expect("still served");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(cert, pem_cert(&pki, "s2"));
    app.stop().await;
}

#[test]
fn a_certificate_that_cannot_be_read_stops_the_start() {
    let pki = Pki::new();
    pki.ca("ca1");
    pki.node_with_names("s1", "ca1", "IP:127.0.0.1");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sessiond"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(["--tls-cert", &pki.path("s1.pem")])
        .args(["--tls-key", &pki.path("ca1.key")])
        .env("DATABASE_URL", format!("sqlite://{}", pki.path("s.db")))
        .env("SESSIOND_JWT_SECRET", SECRET)
        .env("SESSIOND_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("do not make a pair"), "{err}");
}
