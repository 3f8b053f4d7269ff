//! Mutual TLS between nodes: only nodes of the cluster's CA join, and the
//! cluster port speaks TLS 1.3 with client certificates.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::helpers::Backend;
use crate::pki::Pki;

#[tokio::test]
async fn with_tls_only_nodes_of_the_cluster_ca_join_and_the_wire_is_encrypted() {
    let pki = Pki::new();
    pki.ca("ca");
    pki.ca("rogue-ca");
    for n in ["t1", "t2", "t3"] {
        pki.node(n, "ca");
    }
    pki.node("rogue", "rogue-ca");

    let cluster = Cluster::new(Backend::Sqlite).await;
    let p1 = free_port();
    let t1 = cluster.start_with("t1", p1, &[], COOKIE, &pki.flags("t1", "ca"), None);
    let t2 = cluster.start_with(
        "t2",
        free_port(),
        &[&t1],
        COOKIE,
        &pki.flags("t2", "ca"),
        None,
    );
    let t3 = cluster.start_with(
        "t3",
        free_port(),
        &[&t2],
        COOKIE,
        &pki.flags("t3", "ca"),
        None,
    );
    for n in [&t1, &t2, &t3] {
        assert!(
            wait_members(n, &["t1", "t2", "t3"], Duration::from_secs(20)).await,
            "{} sees {:?}",
            n.name,
            members(n).await
        );
    }
    // Lookups cross nodes over TLS.
    let ids = add_users(&cluster, 9).await;
    for id in &ids {
        let (s1, v1) = session(&t1, *id).await;
        let (s3, v3) = session(&t3, *id).await;
        assert_eq!((s1, s3), (200, 200));
        assert_eq!(v1["cache"]["node"], v3["cache"]["node"]);
    }

    // A certificate from another CA, and no TLS at all: never members.
    let rogue = cluster.start_with(
        "rogue",
        free_port(),
        &[&t1],
        COOKIE,
        &pki.flags("rogue", "ca"),
        None,
    );
    let plain = cluster.start("plain", free_port(), &[&t1], COOKIE);
    tokio::time::sleep(Duration::from_secs(4)).await;
    for n in [&t1, &t2, &t3] {
        let m = members(n).await;
        assert_eq!(m, vec!["t1", "t2", "t3"], "via {}", n.name);
    }
    assert_eq!(members(&rogue).await, vec!["rogue".to_string()]);
    assert_eq!(members(&plain).await, vec!["plain".to_string()]);

    // On the wire: the cluster port speaks TLS 1.3 with client certificates,
    // and plaintext gets nothing back.
    let mut raw = tokio::net::TcpStream::connect(("127.0.0.1", p1))
        .await
        .expect("connects");
    raw.write_all(b"\x00\x00\x00\x10plaintext hello!")
        .await
        .expect("writes");
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), raw.read(&mut buf))
        .await
        .map(|r| r.unwrap_or(0))
        .unwrap_or(0);
    // Whatever comes back (an alert or nothing) is not a cluster frame.
    assert!(
        n == 0 || buf[0] == 0x15,
        "plaintext answered: {:?}",
        &buf[..n]
    );
    let tls = sessiond::cluster::ClusterTls::load(
        &pki.path("t2.pem"),
        &pki.path("t2.key"),
        &pki.path("ca.pem"),
    )
    .expect("loads");
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", p1))
        .await
        .expect("connects");
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
    let stream = tls
        .connector
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    let (_, conn) = stream.get_ref();
    assert_eq!(
        conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    assert!(conn.peer_certificates().is_some_and(|c| !c.is_empty()));
    // And the rogue CA's certificate is refused at the handshake.
    let rogue_tls = sessiond::cluster::ClusterTls::load(
        &pki.path("rogue.pem"),
        &pki.path("rogue.key"),
        &pki.path("ca.pem"),
    )
    .expect("loads");
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", p1))
        .await
        .expect("connects");
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
    let refused = match rogue_tls.connector.connect(name, tcp).await {
        Err(_) => true,
        // TLS 1.3 reports a refused client certificate on the first read.
        Ok(mut s) => {
            let mut b = [0u8; 1];
            !matches!(
                tokio::time::timeout(Duration::from_secs(5), s.read(&mut b)).await,
                Ok(Ok(1))
            )
        }
    };
    assert!(refused, "a certificate from another CA was accepted");
    cluster.finish(vec![t1, t2, t3, rogue, plain]).await;
}

/// A node's name is bound to its certificate: a node with a valid
/// certificate of the cluster's CA for `a` that announces itself as `b` is
/// refused, while the same certificate under its own name joins.
#[tokio::test]
async fn with_tls_a_node_cannot_claim_a_name_its_certificate_does_not_bear() {
    let pki = Pki::new();
    pki.ca("ca");
    for n in ["t1", "a"] {
        pki.node(n, "ca");
    }
    let cluster = Cluster::new(Backend::Sqlite).await;
    let t1 = cluster.start_with("t1", free_port(), &[], COOKIE, &pki.flags("t1", "ca"), None);
    // Joins t1 (t1 accepts) and is dialled back (t1 connects).
    let liar = cluster.start_with(
        "b",
        free_port(),
        &[&t1],
        COOKIE,
        &pki.flags("a", "ca"),
        None,
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(members(&t1).await, vec!["t1".to_string()]);
    assert_eq!(members(&liar).await, vec!["b".to_string()]);
    // The certificate itself is good: under its own name it joins.
    let honest = cluster.start_with(
        "a",
        free_port(),
        &[&t1],
        COOKIE,
        &pki.flags("a", "ca"),
        None,
    );
    for n in [&t1, &honest] {
        assert!(
            wait_members(n, &["a", "t1"], Duration::from_secs(20)).await,
            "{} sees {:?}",
            n.name,
            members(n).await
        );
    }
    assert_eq!(members(&liar).await, vec!["b".to_string()]);
    cluster.finish(vec![t1, liar, honest]).await;
}

/// A ractor_cluster frame carrying a name message: `NetworkMessage { auth
/// { name { name } } }`, length-prefixed.
fn name_frame(name: &str) -> Vec<u8> {
    fn field(number: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![(number << 3) | 2, u8::try_from(body.len()).expect("short")];
        v.extend_from_slice(body);
        v
    }
    let payload = field(1, &field(1, &field(1, name.as_bytes())));
    let mut frame = (payload.len() as u64).to_be_bytes().to_vec();
    frame.extend(payload);
    frame
}

/// What comes back on `s` within `within` before it closes: the bytes
/// read (empty if it closed, or stayed silent).
async fn answer_of<S: tokio::io::AsyncRead + Unpin>(s: &mut S, within: Duration) -> Vec<u8> {
    let mut buf = vec![0u8; 256];
    match tokio::time::timeout(within, s.read(&mut buf)).await {
        Ok(Ok(n)) => buf[..n].to_vec(),
        _ => Vec::new(),
    }
}

/// A TLS connection to a cluster port with the client certificate `cert`.
async fn tls_to(
    pki: &Pki,
    port: u16,
    cert: &str,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let tls = sessiond::cluster::ClusterTls::load(
        &pki.path(&format!("{cert}.pem")),
        &pki.path(&format!("{cert}.key")),
        &pki.path("ca.pem"),
    )
    .expect("loads");
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connects");
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
    tls.connector
        .connect(name, tcp)
        .await
        .expect("TLS handshake")
}

/// A peer with the cookie and a good certificate for `a` that announces an
/// existing member's name is closed before ractor_cluster reads the name,
/// so it cannot make ractor_cluster settle a "duplicate" session with the
/// real member; the same connection announcing its own name is answered.
#[tokio::test]
async fn with_tls_a_name_is_checked_before_ractor_cluster_reads_it() {
    let pki = Pki::new();
    pki.ca("ca");
    for n in ["t1", "t2", "a"] {
        pki.node(n, "ca");
    }
    let cluster = Cluster::new(Backend::Sqlite).await;
    let p1 = free_port();
    let t1 = cluster.start_with("t1", p1, &[], COOKIE, &pki.flags("t1", "ca"), None);
    let t2 = cluster.start_with(
        "t2",
        free_port(),
        &[&t1],
        COOKIE,
        &pki.flags("t2", "ca"),
        None,
    );
    assert!(wait_members(&t1, &["t1", "t2"], Duration::from_secs(20)).await);

    // Announcing t2 with a's certificate: closed, nothing answered.
    let mut liar = tls_to(&pki, p1, "a").await;
    liar.write_all(&name_frame("t2@127.0.0.1"))
        .await
        .expect("writes");
    let answered = answer_of(&mut liar, Duration::from_secs(3)).await;
    assert!(
        answered.is_empty(),
        "the node answered a name the certificate does not bear: {answered:?}"
    );
    // Announcing its own name: the handshake goes on (a status comes back).
    let mut honest = tls_to(&pki, p1, "a").await;
    honest
        .write_all(&name_frame("a@127.0.0.1"))
        .await
        .expect("writes");
    let answered = answer_of(&mut honest, Duration::from_secs(3)).await;
    assert!(answered.len() > 8, "no handshake answer: {answered:?}");
    drop(honest);
    // t2's session was never disturbed.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(members(&t1).await, vec!["t1", "t2"]);
    assert_eq!(members(&t2).await, vec!["t1", "t2"]);
    cluster.finish(vec![t1, t2]).await;
}

/// The cluster port refuses TLS 1.2; before authentication it bounds the
/// frame size and the time a peer may take, with or without TLS.
#[tokio::test]
async fn the_cluster_port_bounds_what_comes_before_authentication() {
    let pki = Pki::new();
    pki.ca("ca");
    for n in ["t1", "a"] {
        pki.node(n, "ca");
    }
    let cluster = Cluster::new(Backend::Sqlite).await;
    let p1 = free_port();
    let t1 = cluster.start_with("t1", p1, &[], COOKIE, &pki.flags("t1", "ca"), None);
    let pp = free_port();
    let plain = cluster.start("plain", pp, &[], COOKIE);
    tokio::time::sleep(Duration::from_secs(2)).await;

    // TLS 1.2 only: no handshake.
    {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(pki.path("ca.pem")).expect("ca"))
            .expect("adds");
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS12])
            .expect("TLS 1.2")
            .with_root_certificates(roots)
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_file(pki.path("a.pem")).expect("cert")],
                PrivateKeyDer::from_pem_file(pki.path("a.key")).expect("key"),
            )
            .expect("config");
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", p1))
            .await
            .expect("connects");
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
        let tls12 = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
            .connect(name, tcp)
            .await;
        assert!(tls12.is_err(), "a TLS 1.2 handshake was accepted");
    }

    for port in [p1, pp] {
        let tls = port == p1;
        // A first frame announced at 1 MiB: closed at once.
        let huge = (1u64 << 20).to_be_bytes();
        let closed_fast = if tls {
            let mut s = tls_to(&pki, port, "a").await;
            s.write_all(&huge).await.expect("writes");
            let start = std::time::Instant::now();
            answer_of(&mut s, Duration::from_secs(4)).await.is_empty()
                && start.elapsed() < Duration::from_secs(2)
        } else {
            let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .expect("connects");
            s.write_all(&huge).await.expect("writes");
            let start = std::time::Instant::now();
            answer_of(&mut s, Duration::from_secs(4)).await.is_empty()
                && start.elapsed() < Duration::from_secs(2)
        };
        assert!(
            closed_fast,
            "an oversized first frame was read (TLS: {tls})"
        );
        // Silence: closed at the authentication deadline.
        let start = std::time::Instant::now();
        let within = sessiond::cluster::AUTH_DEADLINE + Duration::from_secs(3);
        let closed = if tls {
            let mut s = tls_to(&pki, port, "a").await;
            let mut b = [0u8; 16];
            matches!(
                tokio::time::timeout(within, s.read(&mut b)).await,
                Ok(Ok(0) | Err(_))
            )
        } else {
            let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .expect("connects");
            let mut b = [0u8; 16];
            matches!(
                tokio::time::timeout(within, s.read(&mut b)).await,
                Ok(Ok(0) | Err(_))
            )
        };
        assert!(
            closed,
            "a silent connection outlived the deadline (TLS: {tls})"
        );
        println!(
            "a silent cluster connection (TLS: {tls}) was closed after {} ms",
            start.elapsed().as_millis()
        );
    }
    cluster.finish(vec![t1, plain]).await;
}

/// cert-manager's certificates for a StatefulSet's pods name them under
/// the headless Service's domain, with no address: nodes given that domain
/// join with them.
#[tokio::test]
async fn with_tls_statefulset_dns_names_are_accepted_under_the_cluster_domain() {
    const DOMAIN: &str = "sessiond-peers.sessiond.svc.cluster.local";
    let pki = Pki::new();
    pki.ca("ca");
    for n in ["sessiond-0", "sessiond-1"] {
        pki.node_with_names(n, "ca", &format!("DNS:{n}.{DOMAIN}"));
    }
    let flags = |n: &str| {
        let mut f = pki.flags(n, "ca");
        f.extend(["--cluster-tls-domain".to_string(), DOMAIN.to_string()]);
        f
    };
    let cluster = Cluster::new(Backend::Sqlite).await;
    let n0 = cluster.start_with(
        "sessiond-0",
        free_port(),
        &[],
        COOKIE,
        &flags("sessiond-0"),
        None,
    );
    let n1 = cluster.start_with(
        "sessiond-1",
        free_port(),
        &[&n0],
        COOKIE,
        &flags("sessiond-1"),
        None,
    );
    for n in [&n0, &n1] {
        assert!(
            wait_members(n, &["sessiond-0", "sessiond-1"], Duration::from_secs(20)).await,
            "{} sees {:?}",
            n.name,
            members(n).await
        );
    }
    cluster.finish(vec![n0, n1]).await;
}
