//! `sessiond serve` as a child process on loopback, the way it is deployed.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{ADMIN_PASSWORD, JWT_SECRET};

/// A `sessiond serve` child process; SIGTERM on drop.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) addr: SocketAddr,
}

impl Server {
    pub(crate) fn start(database_url: &str, cache_ttl: &str) -> Server {
        Server::start_binary(
            Path::new(env!("CARGO_BIN_EXE_sessiond")),
            database_url,
            cache_ttl,
        )
    }

    /// The same with another `sessiond` binary (an earlier build).
    pub(crate) fn start_binary(binary: &Path, database_url: &str, cache_ttl: &str) -> Server {
        let mut child = Command::new(binary)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(["--database-url", database_url])
            .args(["--cache-ttl", cache_ttl])
            .env("SESSIOND_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("SESSIOND_JWT_SECRET", JWT_SECRET)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starts the sessiond binary");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut first = String::new();
        stdout.read_line(&mut first).expect("reads the first line");
        let addr = first
            .trim()
            .rsplit("http://")
            .next()
            .and_then(|a| a.trim_end_matches('/').parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line from sessiond: {first:?}"));
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = String::new();
            while stdout.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
                sink.clear();
            }
        });
        Server { child, addr }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
