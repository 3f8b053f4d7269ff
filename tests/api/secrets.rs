//! Weak secrets are refused at start-up: an HS256 key under 32 bytes
//! (RFC 7518 §3.2), a cluster cookie under 32 bytes; so is a clear
//! cluster link beyond loopback unless the operator asks for it, and
//! placeholders and predictable values of every secret.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_sessiond");

/// `serve` with these variables: whether it failed, and its stderr.
fn serve_with(env: &[(&str, &str)], args: &[&str]) -> (bool, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("s.db").display()),
        )
        .env_remove("SESSIOND_JWT_SECRET")
        .env_remove("SESSIOND_CLUSTER_COOKIE")
        .env("SESSIOND_ADMIN_PASSWORD", "admin-password-for-tests");
    for (k, v) in env {
        cmd.env(k, v);
    }
    // A start that is not refused would serve forever: bound it.
    let mut child = cmd
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("runs");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().expect("waits") {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            return (!status.success(), err);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return (false, "still running after 20 s".into());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn a_jwt_secret_under_32_bytes_is_refused_from_the_environment() {
    let (failed, err) = serve_with(&[("SESSIOND_JWT_SECRET", "sixteen-bytes-00")], &[]);
    assert!(failed, "a 16-byte secret was accepted: {err}");
    assert!(err.contains("JWT secret") && err.contains("32"), "{err}");
}

#[test]
fn a_jwt_secret_under_32_bytes_is_refused_from_the_flag() {
    let short = "x".repeat(31);
    let (failed, err) = serve_with(&[], &["--jwt-secret", &short]);
    assert!(failed, "a 31-byte secret was accepted: {err}");
    assert!(err.contains("JWT secret") && err.contains("32"), "{err}");
}

#[test]
fn a_cluster_cookie_under_32_bytes_is_refused() {
    let secret = "a-jwt-secret-long-enough-0123456789-abcdef";
    let (failed, err) = serve_with(
        &[
            ("SESSIOND_JWT_SECRET", secret),
            ("SESSIOND_CLUSTER_COOKIE", "change-me"),
        ],
        &["--node-name", "n1", "--cluster-listen", "127.0.0.1:0"],
    );
    assert!(failed, "a 9-byte cookie was accepted: {err}");
    assert!(
        err.contains("cluster cookie") && err.contains("32"),
        "{err}"
    );
}

#[test]
fn a_clear_cluster_link_off_loopback_is_refused_without_cluster_insecure() {
    let (failed, err) = serve_with(
        &[
            (
                "SESSIOND_JWT_SECRET",
                "a-jwt-secret-long-enough-0123456789-abcdef",
            ),
            (
                "SESSIOND_CLUSTER_COOKIE",
                "a-cluster-cookie-long-enough-0123456789",
            ),
        ],
        &["--node-name", "n1", "--cluster-listen", "0.0.0.0:0"],
    );
    assert!(
        failed,
        "a clear cluster link on 0.0.0.0 was accepted: {err}"
    );
    assert!(
        err.contains("--cluster-insecure") && err.contains("--cluster-tls-cert"),
        "{err}"
    );
}

#[test]
fn a_clear_cluster_link_off_loopback_warns_at_start_with_cluster_insecure() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--node-name", "n1"])
        .args(["--cluster-listen", "0.0.0.0:0", "--cluster-insecure"])
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("s.db").display()),
        )
        .env(
            "SESSIOND_JWT_SECRET",
            "a-jwt-secret-long-enough-0123456789-abcdef",
        )
        .env(
            "SESSIOND_CLUSTER_COOKIE",
            "a-cluster-cookie-long-enough-0123456789",
        )
        .env("SESSIOND_ADMIN_PASSWORD", "admin-password-for-tests")
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("runs");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut seen = Vec::new();
    let mut warned = false;
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) => {
                if line.contains("WARN") && line.contains("NOT ENCRYPTED") {
                    warned = true;
                    break;
                }
                seen.push(line);
            }
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        warned,
        "no warning about plaintext cluster traffic: {seen:#?}"
    );
}

/// The value of `key:` in the example Secret manifest.
fn example_secret(key: &str) -> String {
    let manifest = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/kubernetes/secret.example.yaml"
    ))
    .expect("reads the example Secret");
    manifest
        .lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{key}:")))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("no {key} in the example Secret"))
}

#[test]
fn placeholders_and_predictable_secrets_are_refused_at_start() {
    let jwt = "a-jwt-secret-long-enough-0123456789-abcdef";
    let cluster = ["--node-name", "n1", "--cluster-listen", "127.0.0.1:0"];
    let cookies = [
        // The example Secret's placeholders, before and now.
        "CHANGE-ME-to-at-least-32-random-bytes".to_string(),
        example_secret("cluster-cookie"),
        // Long enough, and predictable.
        "c".repeat(48),
        "abc".repeat(16),
    ];
    for cookie in &cookies {
        let (failed, err) = serve_with(
            &[
                ("SESSIOND_JWT_SECRET", jwt),
                ("SESSIOND_CLUSTER_COOKIE", cookie.as_str()),
            ],
            &cluster,
        );
        assert!(failed, "the cookie {cookie:?} was accepted: {err}");
        assert!(err.contains("cluster cookie"), "{err}");
        assert!(
            !err.contains(cookie.as_str()),
            "the error shows the cookie: {err}"
        );
    }
    for password in ["CHANGE-ME".to_string(), example_secret("admin-password")] {
        let (failed, err) = serve_with(
            &[
                ("SESSIOND_JWT_SECRET", jwt),
                ("SESSIOND_ADMIN_PASSWORD", password.as_str()),
            ],
            &[],
        );
        assert!(
            failed,
            "the admin password {password:?} was accepted: {err}"
        );
        assert!(err.contains("SESSIOND_ADMIN_PASSWORD"), "{err}");
    }
    let (failed, err) = serve_with(&[("SESSIOND_JWT_SECRET", &"s".repeat(40))], &[]);
    assert!(
        failed,
        "a JWT secret of one repeated byte was accepted: {err}"
    );
    assert!(err.contains("JWT secret"), "{err}");
    // The example Secret's key-encryption key, as the StatefulSet mounts it.
    let dir = tempfile::tempdir().expect("a directory");
    let kek = dir.path().join("key");
    std::fs::write(&kek, example_secret("key-encryption-key")).expect("writes");
    let kek = kek.to_string_lossy().to_string();
    let (failed, err) = serve_with(
        &[
            ("SESSIOND_JWT_SECRET", jwt),
            ("SESSIOND_KEY_ENCRYPTION_KEY_FILE", kek.as_str()),
        ],
        &[],
    );
    assert!(failed, "the example key-encryption key was accepted: {err}");
    assert!(err.contains("key-encryption key file"), "{err}");
}
