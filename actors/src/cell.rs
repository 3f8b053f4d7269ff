//! One user's publication point ([`SnapshotCell`]): the record a session
//! actor published, the fences that refuse a fetch an invalidation or a
//! flush has overtaken, and the access times the supervisor's sweep reads.
//!
//! Only a session actor (or the router, for a near copy) publishes into a
//! cell; an invalidation only takes the record away. Publishing and
//! invalidating take the cell's one lock, so they never interleave.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use tokio::time::Instant;

use crate::record::Fetched;
use crate::sync::RwLockExt;

/// A record as a session actor published it. Kept inline in its cell:
/// a hit copies it out (the user's state itself is shared, behind an `Arc`).
#[derive(Clone, Debug)]
pub(crate) struct Cached {
    pub(crate) fetched: Fetched,
    /// When the store answered. Freshness is `now - fetched_at < ttl`; it is a
    /// `tokio::time::Instant` so paused-time tests and the simulation control it.
    pub(crate) fetched_at: Instant,
    /// The registry's flush count when the fetch started: a record from
    /// before the last flush is never served (see `Registry::flush`).
    pub(crate) flush: u64,
}

/// What a cell holds, under one lock so that publishing a record and
/// invalidating it can never interleave.
#[derive(Debug, Default)]
struct CellState {
    cached: Option<Cached>,
    /// The lowest version a record may carry to be published: raised by
    /// every versioned invalidation, so a fetch that started before the
    /// write it races returns an older version and is refused.
    fence: i64,
    /// Bumped by every unversioned invalidation (and forced refresh): a
    /// fetch started under an older generation is refused.
    generation: u64,
    /// The last record was taken away by an invalidation (for miss reasons).
    invalidated: bool,
}

/// A fetched record was not published: it is older than the fence, or was
/// fetched under an older generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stale;

/// The publication point of one user's record.
pub(crate) struct SnapshotCell {
    state: RwLock<CellState>,
    /// Milliseconds since the registry's epoch at the last lookup: kept here,
    /// not in the actor, because cache hits never reach the actor and the
    /// sweep that passivates idle sessions must still see them.
    last_access_ms: AtomicU64,
    /// Milliseconds since the epoch at the actor's last message, to
    /// hibernate actors that only hits have needed lately.
    last_actor_ms: AtomicU64,
    /// Set by an actor that stops on purpose (hibernation): a lookup it
    /// dropped on the way out is retried, whereas one dropped by a panic
    /// fails.
    stopping: AtomicBool,
}

impl SnapshotCell {
    pub(crate) fn new(now_ms: u64) -> Self {
        SnapshotCell {
            state: RwLock::new(CellState::default()),
            last_access_ms: AtomicU64::new(now_ms),
            last_actor_ms: AtomicU64::new(now_ms),
            stopping: AtomicBool::new(false),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, CellState> {
        self.state.read_locked()
    }

    fn write(&self) -> RwLockWriteGuard<'_, CellState> {
        self.state.write_locked()
    }

    /// The published record if it is still fresh at `now` (younger than
    /// the TTL, and than the instant it changes by itself, if it says one)
    /// and was fetched since the registry's last flush (`flush`, its
    /// current count).
    pub(crate) fn fresh(&self, now: Instant, ttl: Duration, flush: u64) -> Option<Cached> {
        let guard = self.read();
        let cached = guard.cached.as_ref()?;
        if cached.flush == flush
            && now.saturating_duration_since(cached.fetched_at) < cached.fetched.fresh_for(ttl)
        {
            Some(cached.clone())
        } else {
            None
        }
    }

    /// Whether a record (fresh or not) is published since the last flush.
    pub(crate) fn has_record(&self, flush: u64) -> bool {
        self.read()
            .cached
            .as_ref()
            .is_some_and(|c| c.flush == flush)
    }

    /// Whether the last record was taken by an invalidation, or dropped by
    /// a flush since (`flush`: the registry's count now).
    pub(crate) fn was_invalidated(&self, flush: u64) -> bool {
        let s = self.read();
        s.invalidated || s.cached.as_ref().is_some_and(|c| c.flush != flush)
    }

    /// The generation a fetch starting now runs under.
    pub(crate) fn generation(&self) -> u64 {
        self.read().generation
    }

    /// Publishes `fetched` unless an invalidation since `generation` (or a
    /// fence above its version, or a flush since `flush`, the registry's
    /// flush count when the fetch started; `flush_now` is the count now)
    /// says it is already stale: lemma FENCE of docs/freshness.md.
    pub(crate) fn publish(
        &self,
        fetched: &Fetched,
        (generation, flush): (u64, u64),
        flush_now: u64,
        at: Instant,
        keep: bool,
    ) -> Result<(), Stale> {
        let mut s = self.write();
        if generation != s.generation || flush != flush_now || fetched.version() < s.fence {
            return Err(Stale);
        }
        if keep {
            // Stamped with the count at the fetch's start: a flush that
            // lands between `flush_now` being read and this write still
            // keeps the record from being served.
            s.cached = Some(Cached {
                fetched: fetched.clone(),
                fetched_at: at,
                flush,
            });
            s.invalidated = false;
        }
        Ok(())
    }

    /// Takes the record away unless it is at least `min_version`, and
    /// fences off any fetch in flight that could bring an older one back
    /// (`None`: in any case).
    pub(crate) fn invalidate(&self, min_version: Option<i64>) {
        let mut s = self.write();
        let keep = match (&s.cached, min_version) {
            (Some(c), Some(v)) => c.fetched.version() >= v,
            _ => false,
        };
        match min_version {
            Some(v) => s.fence = s.fence.max(v),
            None => s.generation += 1,
        }
        if !keep && s.cached.take().is_some() {
            s.invalidated = true;
        }
    }

    /// Drops the record (a forced refresh): not an invalidation.
    pub(crate) fn supersede(&self) {
        let mut s = self.write();
        s.generation += 1;
        s.cached = None;
        s.invalidated = false;
    }

    pub(crate) fn touch(&self, now_ms: u64) {
        // Written only when it changes: under load most lookups of a user
        // fall in the same millisecond, and a store would dirty the line
        // for every other core reading it.
        if self.last_access_ms.load(Ordering::Relaxed) != now_ms {
            self.last_access_ms.store(now_ms, Ordering::Relaxed);
        }
    }

    pub(crate) fn last_access_ms(&self) -> u64 {
        self.last_access_ms.load(Ordering::Relaxed)
    }

    pub(crate) fn set_stopping(&self, stopping: bool) {
        self.stopping.store(stopping, Ordering::SeqCst);
    }

    pub(crate) fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    pub(crate) fn actor_touch(&self, now_ms: u64) {
        self.last_actor_ms.store(now_ms, Ordering::Relaxed);
    }

    pub(crate) fn last_actor_ms(&self) -> u64 {
        self.last_actor_ms.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::record::{Status, User, UserState};

    fn record(changes_in_ms: Option<u32>) -> Fetched {
        Fetched::Found(Arc::new(UserState {
            user: User {
                id: 1.into(),
                email: "a@example.test".into(),
                role: "user".into(),
                status: Status::Deactivated,
            },
            version: 1,
            tokens_valid_after_ms: 0,
            session_epoch: 0,
            revoked_sids: Vec::new(),
            changes_in_ms,
            attached: None,
        }))
    }

    #[test]
    fn a_record_that_changes_by_itself_is_served_until_then_only() {
        let ttl = Duration::from_secs(300);
        let at = Instant::now();
        for (changes_in, fresh_at_1s, fresh_at_3s) in [
            (None, true, true),
            (Some(2_000), true, false),
            (Some(0), false, false),
        ] {
            let cell = SnapshotCell::new(0);
            assert_eq!(
                cell.publish(&record(changes_in), (0, 0), 0, at, true),
                Ok(())
            );
            let fresh = |after: u64| {
                cell.fresh(at + Duration::from_secs(after), ttl, 0)
                    .is_some()
            };
            assert_eq!(fresh(1), fresh_at_1s, "{changes_in:?}");
            assert_eq!(fresh(3), fresh_at_3s, "{changes_in:?}");
        }
    }
}
