//! The keeper of this node's freshness lease ([`LeaseKeeper`]): it applies
//! the database's logged changes to the router and then renews the lease
//! (see `lease` for the protocol), flushing the cache when it regains the
//! lease after a lapse or the log no longer reaches back far enough.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::clock;
use crate::lease::{LeaseStore, RATE_MARGIN_DIV};
use crate::observer::InvalidationSource;
use crate::router::Router;
use crate::store::StoreError;
use crate::view::FlushReason;

/// The most logged changes one renewal reads and applies one by one, by
/// default: a node further behind (a bulk change of many users) drops its
/// whole cache and starts from the head instead.
pub const DEFAULT_CATCH_UP: u64 = 10_000;

/// Renewals between two prunes of the change log (about 30 s at the
/// default lease of 2 s).
const PRUNE_EVERY: u64 = 60;

/// Keeps this node's lease: renews it every quarter of its duration (and
/// at once when nudged, e.g. by a database notification), applying the
/// logged changes first.
pub struct LeaseKeeper {
    router: Router,
    store: Arc<dyn LeaseStore>,
    duration: Duration,
    /// The newest change this node has applied.
    seen: u64,
    /// Whether this node held a lease at its last renewal: a node that
    /// regains one after a lapse drops what it held first.
    held: bool,
    rounds: u64,
    /// The most changes one renewal reads ([`LeaseKeeper::catch_up`]).
    catch_up: u64,
    nudge: Arc<Notify>,
}

impl LeaseKeeper {
    /// The keeper of `router`'s lease. `router` must have been started
    /// with a lease ([`crate::CacheConfig::lease`]).
    pub fn new(router: Router, store: Arc<dyn LeaseStore>) -> Option<LeaseKeeper> {
        let duration = router.config().lease?;
        router.lease()?;
        Some(LeaseKeeper {
            router,
            store,
            duration,
            seen: 0,
            held: false,
            rounds: 0,
            catch_up: DEFAULT_CATCH_UP,
            nudge: Arc::new(Notify::new()),
        })
    }

    /// Reads at most `changes` logged changes per renewal: a node further
    /// behind drops its whole cache and takes the head instead (a flush
    /// costs O(1); reading and applying a million changes could outlast
    /// every renewal, and the node would never hold its lease again).
    pub fn catch_up(mut self, changes: u64) -> LeaseKeeper {
        self.catch_up = changes;
        self
    }

    /// Wakes the keeper for an early renewal.
    pub fn nudge(&self) -> Arc<Notify> {
        Arc::clone(&self.nudge)
    }

    /// Renews until the task is dropped.
    pub async fn run(mut self) {
        let period = self.duration / 4;
        loop {
            let started = Instant::now();
            let attempt = tokio::time::timeout(period.max(Duration::from_millis(1)), self.renew());
            match attempt.await {
                Ok(Ok(true)) => {}
                Ok(Ok(false)) => {
                    // The head moved under us: read again right away.
                    tokio::task::yield_now().await;
                    continue;
                }
                Ok(Err(e)) => tracing::debug!(error = %e, "lease renewal failed"),
                Err(_) => tracing::debug!("lease renewal timed out"),
            }
            let now = Instant::now();
            self.check_lapse(now);
            // Wake at the lease's end too, so a lapse is reported when it
            // happens, not at the next round.
            let mut next = started + period;
            if let Some(lease) = self.router.lease().filter(|_| self.held) {
                next = next.min(now + lease.remaining(now));
            }
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {}
                _ = self.nudge.notified() => {}
            }
            self.check_lapse(Instant::now());
        }
    }

    /// Notices a lease that ran out without a renewal.
    fn check_lapse(&mut self, now: Instant) {
        let Some(lease) = self.router.lease() else {
            return;
        };
        if self.held && !lease.valid_at(now) {
            self.held = false;
            tracing::warn!("freshness lease lapsed: not answering from the cache");
            self.router.observer().lease_lost();
            self.router.observer().lease_valid(false);
        }
    }

    /// One renewal: apply the changes since `seen`, then ask for the lease
    /// at that head. `Ok(false)` when the head moved meanwhile.
    pub async fn renew(&mut self) -> Result<bool, StoreError> {
        let Some(lease) = self.router.lease() else {
            return Ok(true);
        };
        // Counted from before the request: the database counts from later.
        // On both clocks: the boot clock also counts a suspended machine.
        let asked = Instant::now();
        let asked_boot_ms = clock::since_boot_ms();
        let lapsed = !self.held || !lease.valid_at(asked);
        let changes = self.store.changes_since(self.seen, self.catch_up).await?;
        if lapsed || changes.truncated {
            // What this node held may have missed changes the log no longer
            // has (or, after a lapse, that writers stopped waiting for; or
            // more of them than a renewal reads): drop it all. Fetches
            // started before are refused too. The grant below then records
            // `seen = head`: lemma SEEN holds, as nothing is cached.
            self.router.flush(FlushReason::Lease);
        } else {
            for (user_id, version) in &changes.changes {
                self.router
                    .invalidate_local(user_id, *version, InvalidationSource::Log)
                    .await;
            }
        }
        self.seen = changes.head;
        // Granted only if the head is still `changes.head` (lemma GRANT);
        // every change up to it is applied above (lemma SEEN).
        let granted = self
            .store
            .grant(
                lease.instance(),
                self.router.node(),
                changes.head,
                self.duration,
            )
            .await?;
        if !granted {
            return Ok(false);
        }
        // Counted from `asked`, before the grant: lemma END.
        let margin = self.duration / RATE_MARGIN_DIV;
        let held = self.duration.saturating_sub(margin);
        lease.hold_until(
            asked + held,
            asked_boot_ms.saturating_add(u64::try_from(held.as_millis()).unwrap_or(u64::MAX)),
        );
        if !self.held && lease.valid_at(Instant::now()) {
            self.held = true;
            tracing::info!("freshness lease held");
            self.router.observer().lease_valid(true);
        }
        self.rounds += 1;
        if self.rounds % PRUNE_EVERY == 0 {
            if let Err(e) = self.store.prune().await {
                tracing::debug!(error = %e, "pruning the change log failed");
            }
        }
        Ok(true)
    }

    /// Gives the lease up (clean shutdown): writers stop waiting for it.
    pub async fn release(&self) {
        if let Some(lease) = self.router.lease() {
            lease.expire();
            if let Err(e) = self.store.release(lease.instance()).await {
                tracing::debug!(error = %e, "releasing the lease failed");
            }
        }
    }
}
