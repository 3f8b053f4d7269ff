//! The container image: the repository's `Dockerfile` built with podman
//! and run, answering `/readyz` against a real PostgreSQL.
//!
//! No image registry is reachable here, so both base images come from
//! Debian 12's packages (`scripts/container-base.sh`: debootstrap, then
//! `podman import`), passed as the Dockerfile's `RUST_IMAGE` and
//! `RUNTIME_IMAGE`. Rust is the host's, mounted into the build stage, and
//! the build stage's target directory is kept in this build's `target/tmp`
//! so a second run builds only what changed. The build uses the dev
//! profile to keep CI short; the stages, the user and the entry point are
//! the ones a release build gets.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use sessiond_testkit::http::Client;

use crate::helpers::*;

const IMAGE: &str = "localhost/sessiond:test";
const BASE: &str = "localhost/sessiond-base:bookworm";
const BUILDER: &str = "localhost/sessiond-builder:bookworm";

/// podman as it runs on this kind of machine (as root, without systemd).
fn podman() -> Command {
    let mut c = Command::new("podman");
    c.args(["--runtime", "runc", "--cgroup-manager=cgroupfs"]);
    c
}

/// `podman run` with limits the sandbox lets a container set (podman's
/// defaults raise them beyond what it may).
fn podman_run() -> Command {
    let mut c = podman();
    c.args([
        "run",
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=1024:1024",
    ]);
    c
}

#[track_caller]
fn ok(cmd: &mut Command, what: &str) -> Output {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        tail(&out.stdout),
        tail(&out.stderr)
    );
    out
}

fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

fn home_dir(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| {
        Path::new(&std::env::var("HOME").unwrap_or_else(|_| "/root".into())).join(default)
    })
}

/// Removes the container, whatever the test's outcome.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman()
            .args(["rm", "--force", "--time", "2", &self.0])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on loopback")
}

#[tokio::test]
#[cfg_attr(
    not(pg_tests),
    ignore = "set SESSIOND_TEST_POSTGRES_URL to run the PostgreSQL tests"
)]
async fn the_image_builds_runs_as_non_root_and_answers_readyz() {
    let install = "apt-get install podman runc debootstrap";
    if !tool_present("podman", "--version", "the container image test", install)
        || !tool_present(
            "debootstrap",
            "--version",
            "the container image test",
            install,
        )
    {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let started = Instant::now();
    ok(
        Command::new("bash").arg(root.join("scripts/container-base.sh")),
        "scripts/container-base.sh",
    );

    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("image-target");
    std::fs::create_dir_all(&target).expect("creates the image build's target directory");
    let cargo_home = home_dir("CARGO_HOME", ".cargo");
    let rustup_home = home_dir("RUSTUP_HOME", ".rustup");
    let volume = |from: &Path, to: &str, mode: &str| format!("{}:{to}:{mode}", from.display());
    ok(
        podman()
            .arg("build")
            .args(["--file", "Dockerfile", "--tag", IMAGE])
            .args(["--build-arg", &format!("RUST_IMAGE={BUILDER}")])
            .args(["--build-arg", &format!("RUNTIME_IMAGE={BASE}")])
            .args(["--build-arg", "PROFILE=dev"])
            .args(["--volume", &volume(&cargo_home, "/root/.cargo", "rw")])
            .args(["--volume", &volume(&rustup_home, "/root/.rustup", "ro")])
            .args(["--volume", &volume(&target, "/src/target", "rw")])
            .arg(".")
            .current_dir(root),
        "podman build",
    );
    let built = started.elapsed();

    // What the Kubernetes manifests rely on: a numeric non-root user and
    // the binary itself as the entry point (no shell in between).
    let config = ok(
        podman().args([
            "image",
            "inspect",
            "--format",
            "{{.Config.User}}|{{json .Config.Entrypoint}}",
            IMAGE,
        ]),
        "podman image inspect",
    );
    assert_eq!(
        String::from_utf8_lossy(&config.stdout).trim(),
        r#"65532:65532|["/usr/local/bin/sessiond"]"#
    );
    // The binary in the image is this tree's.
    let inside = ok(
        podman_run().args(["--rm", IMAGE, "--version"]),
        "sessiond --version in the image",
    );
    let here = ok(
        Command::new(env!("CARGO_BIN_EXE_sessiond")).arg("--version"),
        "sessiond --version",
    );
    assert_eq!(inside.stdout, here.stdout);

    // Run as the StatefulSet runs it: read-only root, no capabilities, on
    // PostgreSQL.
    let (db_url, db_name) = fresh_postgres_database().await;
    let port = free_port();
    let name = format!("sessiond-image-test-{port}");
    let listen = format!("127.0.0.1:{port}");
    let _container = Container(name.clone());
    ok(
        podman_run()
            .args(["--detach", "--name", &name])
            .args(["--network", "host", "--read-only", "--cap-drop", "ALL"])
            .args(["--security-opt", "no-new-privileges"])
            .args(["--env", &format!("DATABASE_URL={db_url}")])
            .args([
                "--env",
                "SESSIOND_ADMIN_PASSWORD=image-test-Xq7vR2mK9pL4wZ8n",
            ])
            .args([IMAGE, "serve", "--listen", &listen]),
        "podman run",
    );
    let client = Client::new(Duration::from_secs(2));
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = None;
    while Instant::now() < deadline {
        let reply = client.get(&listen, "/readyz", None).await;
        if reply.status == 200 {
            last = None;
            break;
        }
        last = Some(reply.status);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    if let Some(status) = last {
        let logs = podman().args(["logs", &name]).output().ok();
        panic!(
            "the container never answered /readyz 200 (last {status}):\n{}",
            logs.map(|o| tail(&o.stderr) + &tail(&o.stdout))
                .unwrap_or_default()
        );
    }
    let user = ok(
        podman().args(["exec", &name, "/usr/local/bin/sessiond", "--version"]),
        "podman exec",
    );
    assert!(!user.stdout.is_empty());
    let top = ok(podman().args(["top", &name, "user", "huser"]), "podman top");
    let top = String::from_utf8_lossy(&top.stdout).to_string();
    assert!(
        top.lines()
            .skip(1)
            .all(|l| l.split_whitespace().next() == Some("65532")),
        "every process in the container runs as 65532:\n{top}"
    );
    drop(_container);
    drop_postgres_database(&db_name).await;
    eprintln!("image built in {:.0?}", built);
}
