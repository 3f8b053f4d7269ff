//! Certificates for the TLS tests, made with the openssl command line.

use std::process::Command;

/// A CA and node certificates made with the openssl command line.
pub(crate) struct Pki {
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

    pub(crate) fn new() -> Pki {
        Pki {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub(crate) fn ca(&self, name: &str) {
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
    pub(crate) fn node(&self, node: &str, ca: &str) {
        self.node_with_names(node, ca, &format!("IP:127.0.0.1,DNS:{node}"));
    }

    /// A certificate `node.pem` (key `node.key`) signed by `ca` with these
    /// subject alternative names (`IP:…,DNS:…`).
    pub(crate) fn node_with_names(&self, node: &str, ca: &str, names: &str) {
        std::fs::write(
            self.dir.path().join(format!("{node}.ext")),
            format!(
                "subjectAltName={names}\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n"
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

    pub(crate) fn path(&self, file: &str) -> String {
        self.dir.path().join(file).display().to_string()
    }

    /// The TLS flags of `node`, trusting `ca`.
    pub(crate) fn flags(&self, node: &str, ca: &str) -> Vec<String> {
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
