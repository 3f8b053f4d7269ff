//! Draining on shutdown: once the node is leaving, `/readyz` answers 503
//! so load balancers stop sending it traffic, but it goes on answering
//! whatever still arrives (a balancer acts on its last poll) until no
//! request has come for [`QUIET`], or the shutdown grace runs out. Only
//! then does it stop accepting connections.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

/// How long a leaving node waits for traffic to stop before it closes its
/// listener: longer than a load balancer's readiness poll plus a request.
pub const QUIET: Duration = Duration::from_secs(1);

/// Paths that do not count as traffic: probes and scrapes go on while a
/// node drains, and must not keep it open.
const PROBES: [&str; 3] = ["/readyz", "/healthz", "/metrics"];

/// Whether this node is leaving, and when its last request came.
#[derive(Debug)]
pub struct Drain {
    base: Instant,
    leaving: AtomicBool,
    /// Milliseconds after `base` of the latest request other than a probe,
    /// noted only while leaving (a load and a branch otherwise).
    last_ms: AtomicU64,
}

impl Drain {
    pub fn new() -> Arc<Drain> {
        Arc::new(Drain {
            base: Instant::now(),
            leaving: AtomicBool::new(false),
            last_ms: AtomicU64::new(0),
        })
    }

    fn millis(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether the node is leaving (`/readyz` then answers 503).
    pub fn leaving(&self) -> bool {
        self.leaving.load(Ordering::Acquire)
    }

    /// Turns the node unready; the quiet period starts now.
    pub fn start_leaving(&self) {
        self.last_ms
            .store(self.millis(Instant::now()), Ordering::Release);
        self.leaving.store(true, Ordering::Release);
    }

    /// Notes a request for `path` (called by the server for each one).
    pub fn request(&self, path: &str) {
        if self.leaving() && !PROBES.contains(&path) {
            self.last_ms
                .fetch_max(self.millis(Instant::now()), Ordering::AcqRel);
        }
    }

    /// Returns once no request (probes aside) has come for `quiet`, or at
    /// `deadline`.
    pub async fn quiet(&self, quiet: Duration, deadline: Instant) {
        loop {
            let last = self.base + Duration::from_millis(self.last_ms.load(Ordering::Acquire));
            let until = (last + quiet).min(deadline);
            if Instant::now() >= until {
                return;
            }
            tokio::time::sleep_until(until).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn draining_ends_after_a_quiet_period_or_at_the_deadline() {
        let drain = Drain::new();
        assert!(!drain.leaving());
        drain.request("/api/auth/session");
        drain.start_leaving();
        assert!(drain.leaving());
        let started = Instant::now();
        let deadline = started + Duration::from_secs(10);
        // Requests every 500 ms for 3 s keep it open; probes do not.
        let traffic = {
            let drain = Arc::clone(&drain);
            tokio::spawn(async move {
                for _ in 0..6 {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    drain.request("/api/auth/session");
                    drain.request("/readyz");
                }
                loop {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    drain.request("/readyz");
                    drain.request("/metrics");
                }
            })
        };
        drain.quiet(QUIET, deadline).await;
        assert_eq!(started.elapsed(), Duration::from_secs(3) + QUIET);
        // Traffic that never stops: the deadline.
        let drain2 = Drain::new();
        drain2.start_leaving();
        let busy = {
            let drain = Arc::clone(&drain2);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    drain.request("/api/auth/session");
                }
            })
        };
        let started = Instant::now();
        drain2.quiet(QUIET, started + Duration::from_secs(10)).await;
        assert_eq!(started.elapsed(), Duration::from_secs(10));
        traffic.abort();
        busy.abort();
    }
}
