//! Mutual TLS between nodes: only nodes of the cluster's CA join, and the
//! cluster port speaks TLS 1.3 with client certificates.

use std::process::Command;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::helpers::Backend;

/// A CA and node certificates made with the openssl command line.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("runs openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn new() -> Pki {
        Pki {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn ca(&self, name: &str) {
        self.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
        ]);
    }

    /// A certificate for `node` signed by `ca`: its address (peers dial
    /// it) and its node name (the name it may announce).
    fn node(&self, node: &str, ca: &str) {
        std::fs::write(
            self.dir.path().join(format!("{node}.ext")),
            format!(
                "subjectAltName=IP:127.0.0.1,DNS:{node}\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n"
            ),
        )
        .expect("writes");
        self.openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{node}.key"),
            "-out",
            &format!("{node}.csr"),
            "-subj",
            &format!("/CN={node}"),
        ]);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &format!("{node}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            &format!("{node}.pem"),
            "-days",
            "2",
            "-extfile",
            &format!("{node}.ext"),
        ]);
    }

    fn path(&self, file: &str) -> String {
        self.dir.path().join(file).display().to_string()
    }

    /// The TLS flags of `node`, trusting `ca`.
    fn flags(&self, node: &str, ca: &str) -> Vec<String> {
        vec![
            "--cluster-tls-cert".into(),
            self.path(&format!("{node}.pem")),
            "--cluster-tls-key".into(),
            self.path(&format!("{node}.key")),
            "--cluster-tls-ca".into(),
            self.path(&format!("{ca}.pem")),
        ]
    }
}

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
