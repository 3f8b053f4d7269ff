//! Freshness leases: the right to answer from this node's cache.
//!
//! `docs/freshness.md` states the invariant and the argument; in short:
//!
//! - Every write to a user is numbered by the database (a change log with
//!   one head counter, bumped by a trigger inside the writing transaction,
//!   so numbers follow commit order).
//! - A node may answer from its cache only while it holds a lease, which
//!   the database grants only to a node that has applied every change up
//!   to the head (`seen`). The node reads the changes after its `seen`,
//!   applies them, and asks for the lease *if the head has not moved*; a
//!   write that commits in between moves the head and the grant fails.
//! - The node counts its lease on its own monotonic clock from *before* it
//!   asked, minus a margin for clock rate; the database counts the same
//!   lease from *after* (its own clock, at the grant). So the node's lease
//!   always ends first, whatever the wall clocks say.
//! - A writer, after its commit, asks the database which leases are still
//!   running with a `seen` below its change. Each such holder must either
//!   confirm the invalidation (over the cluster link, or by renewing with a
//!   newer `seen`) or reach the end of its lease before the write is
//!   acknowledged. That wait is bounded by the lease duration.
//! - A node whose lease lapsed reads through to the store; when it gets a
//!   lease again it first drops everything it held (an O(1) flush).
//!
//! The lease, the database side it needs ([`LeaseStore`]) and the write
//! confirmation are here; the keeper that renews the lease is in `keeper`.
//! Both are generic over [`LeaseStore`], so the simulation runs the same
//! protocol as production.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::clock;
use crate::id::UserId;
use crate::store::{BoxFuture, StoreError};
use crate::sync::MutexExt;

/// The share of a lease a holder gives up to cover clocks that run at
/// different rates (real ones differ by well under 0.1%).
pub(crate) const RATE_MARGIN_DIV: u32 = 50;
/// How often a waiting writer looks for confirmations in the database.
const CONFIRM_POLL: Duration = Duration::from_millis(20);

/// This node's lease: until when it may answer from its cache. Read on
/// every cache hit: one atomic load compared with the millisecond the
/// lookup already computed for the registry, then one more against the
/// boot clock ([`crate::clock`]), which also counts a suspended machine.
#[derive(Debug)]
pub struct Lease {
    /// The registry's epoch: lease ends are counted from it, in whole
    /// milliseconds, so the hot path reuses its `now_ms`.
    base: Instant,
    /// Milliseconds after `base` until which the lease holds, rounded
    /// down (so a lease never holds past its end); 0: no lease.
    until_ms: AtomicU64,
    /// The same end on the boot clock ([`clock::since_boot_ms`]): a stop
    /// of the machine that the monotonic clock missed ends the lease too.
    boot_until_ms: AtomicU64,
    /// Identifies this process's lease in the database (a node restarted
    /// under the same name is another holder).
    instance: i64,
}

impl Lease {
    /// A lease not yet granted, counted from `base` (the registry's
    /// epoch): the node reads through until it is.
    pub(crate) fn new(instance: i64, base: Instant) -> Lease {
        Lease {
            base,
            until_ms: AtomicU64::new(0),
            boot_until_ms: AtomicU64::new(0),
            instance,
        }
    }

    pub fn instance(&self) -> i64 {
        self.instance
    }

    fn millis(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether the node may answer from its cache at `now`.
    pub fn valid_at(&self, now: Instant) -> bool {
        self.valid_at_ms(self.millis(now))
    }

    /// [`Lease::valid_at`] for `now_ms`, milliseconds since the registry's
    /// epoch rounded down: `now_ms < until_ms` implies `now < until`. The
    /// boot clock is read only when the monotonic one allows.
    #[inline]
    pub(crate) fn valid_at_ms(&self, now_ms: u64) -> bool {
        now_ms < self.until_ms.load(Ordering::Acquire)
            && clock::since_boot_ms() < self.boot_until_ms.load(Ordering::Acquire)
    }

    /// How much of the lease is left at `now` (the lesser of what the
    /// monotonic and the boot clock leave).
    pub fn remaining(&self, now: Instant) -> Duration {
        let until = self.until_ms.load(Ordering::Acquire);
        let boot_until = self.boot_until_ms.load(Ordering::Acquire);
        Duration::from_millis(
            until
                .saturating_sub(self.millis(now))
                .min(boot_until.saturating_sub(clock::since_boot_ms())),
        )
    }

    /// Holds the lease until `until` on the monotonic clock and
    /// `boot_until_ms` on the boot clock, never shortening it (renewals may
    /// finish out of order).
    pub(crate) fn hold_until(&self, until: Instant, boot_until_ms: u64) {
        self.boot_until_ms
            .fetch_max(boot_until_ms, Ordering::AcqRel);
        self.until_ms
            .fetch_max(self.millis(until), Ordering::AcqRel);
    }

    /// Whether this process was ever granted its lease (it may have
    /// lapsed since).
    pub fn ever_held(&self) -> bool {
        self.boot_until_ms.load(Ordering::Acquire) > 0
    }

    /// Gives the lease up at once (shutdown, or a test of lapses).
    pub fn expire(&self) {
        self.until_ms.store(0, Ordering::Release);
    }
}

/// Changes the database logged after a given point.
#[derive(Clone, Debug, Default)]
pub struct Changes {
    /// The number of the newest change (0: none yet).
    pub head: u64,
    /// `(user_id, version)` of every change after the asked-for point, in
    /// order; `None` when the row is gone.
    pub changes: Vec<(UserId, Option<i64>)>,
    /// The changes read cannot be every change after the asked-for point:
    /// the log no longer reaches back to it, or more than the asked-for
    /// limit follow it (then none are read). The caller must drop its
    /// whole cache instead, and start from `head`.
    pub truncated: bool,
}

/// A running lease that has not seen a given change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    pub instance: i64,
    pub node: String,
    /// The longest its holder may still count on it, from when the row was
    /// read: the whole length it was granted for, not what the
    /// database's clock says is left (that clock may step). An in-memory
    /// store, whose clock is the nodes' own, may report what is left.
    pub remaining: Duration,
}

/// What the lease protocol needs from the database: its change log and
/// its table of leases. Every node of a deployment must use the same one.
pub trait LeaseStore: Send + Sync + 'static {
    /// The changes after `seen`, and the head; when more than `limit`
    /// follow `seen`, none are read and the answer is `truncated`.
    fn changes_since(&self, seen: u64, limit: u64) -> BoxFuture<'_, Result<Changes, StoreError>>;

    /// Grants (or renews) `instance`'s lease for `duration` with `seen =
    /// head`, atomically with checking that the head is still `head`.
    /// `Ok(false)`: a change came in between; read the changes again.
    fn grant<'a>(
        &'a self,
        instance: i64,
        node: &'a str,
        head: u64,
        duration: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// The head, and the other running leases whose `seen` is below
    /// `below` (`None`: below the head).
    fn unconfirmed(
        &self,
        me: i64,
        below: Option<u64>,
    ) -> BoxFuture<'_, Result<(u64, Vec<Holder>), StoreError>>;

    /// Ends `instance`'s lease (a clean shutdown): writers stop waiting
    /// for it.
    fn release(&self, instance: i64) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Drops the changes every running lease has seen, and leases long over.
    fn prune(&self) -> BoxFuture<'_, Result<(), StoreError>>;

    /// `instance`'s lease, read with `seen` below `below`, has run out
    /// (a writer waited it out on its own clock): the store may drop that
    /// grant, so later writers do not wait for it again. A newer grant of
    /// the same instance has `seen` at or past `below` and stays.
    fn lapsed(&self, instance: i64, below: u64) -> BoxFuture<'_, Result<(), StoreError>> {
        let _ = (instance, below);
        Box::pin(async { Ok(()) })
    }
}

/// The instances that confirmed an invalidation over the cluster link.
#[derive(Default, Debug)]
pub struct Acks {
    acked: Mutex<HashSet<i64>>,
    changed: Notify,
}

impl Acks {
    pub fn new() -> Arc<Acks> {
        Arc::new(Acks::default())
    }

    pub fn ack(&self, instance: i64) {
        self.acked.locked().insert(instance);
        self.changed.notify_waiters();
    }

    fn has(&self, instance: i64) -> bool {
        self.acked.locked().contains(&instance)
    }
}

/// Why a write could not be confirmed everywhere.
#[derive(Clone, Debug, thiserror::Error)]
pub enum Unconfirmed {
    #[error("cannot tell which nodes still hold the old record: {0}")]
    Store(#[from] StoreError),
}

/// What a confirmation waited for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Confirmed {
    /// Holders that confirmed (over the link or through the database).
    pub(crate) confirmed: usize,
    /// Holders whose lease had to run out.
    pub(crate) lapsed: usize,
}

/// Waits until no lease but `me`'s can still answer with what a write the
/// caller has just committed changed: each holder that has not seen it
/// either confirms (in `acks`, or by renewing past it) or its lease runs
/// out. Bounded by the longest remaining lease.
pub(crate) async fn confirm_write(
    store: &dyn LeaseStore,
    me: i64,
    acks: &Acks,
) -> Result<Confirmed, Unconfirmed> {
    let (head, holders) = store.unconfirmed(me, None).await?;
    let start = Instant::now();
    let mut pending: Vec<(Holder, Instant)> = holders
        .into_iter()
        .map(|h| {
            // The holder counted its lease from before its grant, which
            // came before this read: it ends before `remaining` (plus the
            // rate margin) from now, on this node's monotonic clock
            // (lemma END of docs/freshness.md). A grant after the read
            // has seen this write's change (lemma GRANT).
            let margin = h.remaining / RATE_MARGIN_DIV + Duration::from_millis(5);
            let until = start + h.remaining + margin;
            (h, until)
        })
        .collect();
    let mut done = Confirmed::default();
    loop {
        // Registered before the acks are read: an ack that lands between
        // the read and the wait must wake it (`notify_waiters` wakes only
        // registered waiters), or the write waits a poll and a query.
        let acked = acks.changed.notified();
        tokio::pin!(acked);
        acked.as_mut().enable();
        let before = pending.len();
        pending.retain(|(h, _)| !acks.has(h.instance));
        done.confirmed += before - pending.len();
        let now = Instant::now();
        for (h, _) in pending.iter().filter(|(_, until)| *until <= now) {
            if let Err(e) = store.lapsed(h.instance, head).await {
                tracing::debug!(error = %e, "dropping a lapsed lease failed");
            }
        }
        let before = pending.len();
        pending.retain(|(_, until)| *until > now);
        done.lapsed += before - pending.len();
        if pending.is_empty() {
            return Ok(done);
        }
        let wake = pending
            .iter()
            .map(|(_, until)| *until)
            .min()
            .unwrap_or(now)
            .min(now + CONFIRM_POLL);
        tokio::select! {
            _ = tokio::time::sleep_until(wake) => {}
            _ = &mut acked => continue,
        }
        // Holders that renewed past the write have applied it. A database
        // that stopped answering only means waiting for the leases to end.
        if let Ok((_, still)) = store.unconfirmed(me, Some(head)).await {
            let before = pending.len();
            pending.retain(|(h, _)| still.iter().any(|s| s.instance == h.instance));
            done.confirmed += before - pending.len();
        }
    }
}
