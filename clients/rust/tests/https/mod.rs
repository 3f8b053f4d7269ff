//! The client over HTTPS: sessiond served with `--tls-cert`/`--tls-key`,
//! the client trusting the CA that signed it (and nothing else), a
//! certificate replaced on disk picked up without a restart.

use std::process::Command;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use sessiond::app::Application;
use sessiond::config::{HttpsFiles, Settings};
use sessiond_client::SessiondClient;

use crate::server::{ADMIN_EMAIL, ADMIN_PASSWORD};

fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("runs openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA `ca.pem` and a server certificate `name.pem`/`name.key` it signs,
/// for 127.0.0.1 and localhost.
fn issue(dir: &std::path::Path, ca: &str, name: &str) {
    if !dir.join(format!("{ca}.pem")).exists() {
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.pem"),
                "-days",
                "2",
                "-subj",
                &format!("/CN={ca}"),
            ],
        );
    }
    std::fs::write(
        dir.join(format!("{name}.ext")),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .expect("writes");
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={name}"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
        ],
    );
}

fn install(dir: &std::path::Path, name: &str) {
    std::fs::copy(dir.join(format!("{name}.key")), dir.join("live.key")).expect("copies");
    std::fs::copy(dir.join(format!("{name}.pem")), dir.join("live.pem")).expect("copies");
}

fn ca(dir: &std::path::Path, ca: &str) -> Vec<u8> {
    std::fs::read(dir.join(format!("{ca}.pem"))).expect("reads the CA")
}

#[tokio::test]
async fn the_client_speaks_https_with_the_ca_it_is_given() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    issue(d, "ca1", "s1");
    issue(d, "ca2", "s2");
    install(d, "s1");
    let settings = Settings {
        listen: "127.0.0.1:0".into(),
        database_url: format!("sqlite://{}", d.join("sessiond.db").display()),
        jwt_secret: Some("client-test-secret-0123456789abcdef".into()),
        admin_password: Some(ADMIN_PASSWORD.into()),
        tls: Some(HttpsFiles {
            cert: d.join("live.pem").display().to_string(),
            key: d.join("live.key").display().to_string(),
        }),
        ..Settings::default()
    };
    let app = Application::build(settings).await.expect("sessiond builds");
    let url = format!("https://127.0.0.1:{}", app.port());
    let (stop, stopped) = oneshot::channel::<()>();
    let done = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));

    let client = SessiondClient::with_tls(&url, &ca(d, "ca1")).expect("a client");
    let login = client
        .login(ADMIN_EMAIL, ADMIN_PASSWORD)
        .await
        .expect("logs in over HTTPS");
    let session = client.session(&login.token).await.expect("resolves");
    assert_eq!(session.user.email, ADMIN_EMAIL);
    // Trusting another CA: refused, as sessiond being unreachable is.
    let stranger = SessiondClient::with_tls(&url, &ca(d, "ca2")).expect("a client");
    let e = stranger
        .session(&login.token)
        .await
        .expect_err("another CA's client refuses the server");
    assert_eq!(e.code, "unavailable");
    // Plain HTTP to the HTTPS port gets no answer.
    let plain = SessiondClient::new(&url.replace("https", "http"))
        .expect("a client")
        .with_timeout(Duration::from_secs(3));
    assert!(plain.session(&login.token).await.is_err());
    // An https URL needs the TLS constructor; garbage is no CA.
    assert!(SessiondClient::new(&url).is_err());
    assert!(SessiondClient::with_tls(&url, b"not a certificate").is_err());

    // The certificate replaced on disk: served without a restart.
    install(d, "s2");
    let start = Instant::now();
    let fresh = loop {
        match stranger.session(&login.token).await {
            Ok(s) => break Some(s),
            Err(_) if start.elapsed() < Duration::from_secs(10) => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(_) => break None,
        }
    };
    let fresh = fresh.expect("the new certificate is served within 10 s");
    assert_eq!(fresh.user.email, ADMIN_EMAIL);
    // New connections of the first client meet a certificate it does not
    // trust.
    let first = SessiondClient::with_tls(&url, &ca(d, "ca1")).expect("a client");
    assert!(first.session(&login.token).await.is_err());

    let _ = stop.send(());
    done.await.expect("task").expect("stops cleanly");
}
