//! Near copies: a node that forwards a lookup to the user's owner keeps
//! the owner's answer in the user's cell here and answers the next lookups
//! from it (see [`Router::resolve`]). Concurrent misses make one forwarded
//! call (single flight); a recent invalidation or flush holds copies off
//! for as long as the owner may not have applied it.
//!
//! An `impl Router`, like the membership policy: the same state as the
//! lookups, a concern of its own.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::id::UserId;
use crate::link::Link;
use crate::lookup::{Lookup, ResolveError, Served};
use crate::observer::MissReason;
use crate::registry::Slot;
use crate::router::{Inner, Router};
use crate::supervisor::SupervisorMsg;
use crate::sync::MutexExt;

/// A forwarded call for a near copy: lead it, or wait for it.
enum Flight<'a> {
    Lead(FlightGuard<'a>),
    Follow(watch::Receiver<Option<bool>>),
}

/// The leader's side of a flight: when dropped (done, failed or
/// cancelled) the flight is over and its followers wake.
struct FlightGuard<'a> {
    inner: &'a Inner,
    user_id: UserId,
    tx: watch::Sender<Option<bool>>,
}

impl FlightGuard<'_> {
    /// Tells the followers whether the owner failed to answer (they then
    /// serve the user themselves, as the leader does).
    fn done(self, failed: bool) {
        self.tx.send_replace(Some(failed));
    }
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        // Only the leader removes its entry, and no other is inserted
        // while it is there.
        self.inner.flights.locked().remove(&self.user_id);
    }
}

impl Router {
    /// Whether this node holds its lease at `now_ms` (or needs none).
    #[inline]
    fn leased_at(&self, now_ms: u64) -> bool {
        self.inner
            .lease
            .as_ref()
            .map_or(true, |l| l.valid_at_ms(now_ms))
    }

    /// A lookup of a user another node owns, with near copies: the near
    /// copy if fresh, else the owner's answer (one call for every lookup
    /// that misses meanwhile). `None`: the owner could not answer.
    pub(crate) async fn resolve_near(
        &self,
        link: &Arc<dyn Link>,
        owner: &Arc<str>,
        user_id: &UserId,
        lookup: Lookup,
        deadline: Instant,
    ) -> Option<Result<Served, ResolveError>> {
        let inner = &*self.inner;
        if lookup == Lookup::ForceRefresh {
            // To the owner (which reads the store), and kept here: both
            // copies are the new read.
            return self
                .fetch_near(link, owner, user_id, lookup, deadline)
                .await
                .map(Ok);
        }
        loop {
            let now = Instant::now();
            let now_ms = inner.registry.millis(now);
            if !self.leased_at(now_ms) {
                // A node without its lease may have missed invalidations:
                // nothing kept, no flight to join; each lookup asks the
                // owner, whose lease covers its answer.
                return self
                    .forward(link, owner, user_id, lookup, deadline)
                    .await
                    .map(Ok);
            }
            // The hit path: the same snapshot read as a local hit.
            let flush = inner.registry.flushes();
            let hit = inner
                .registry
                .with(user_id, |s| {
                    s.cell.touch(now_ms);
                    s.cell.fresh(now, inner.config.ttl, flush)
                })
                .flatten();
            if let Some(c) = hit {
                let age = now.saturating_duration_since(c.fetched_at);
                inner.observer.hit(age);
                return Some(Ok(Served {
                    fetched: c.fetched,
                    hit: true,
                    age,
                    node: Some(Arc::clone(owner)),
                    near: true,
                    owner_lease: None,
                }));
            }
            if self.near_held(user_id, now, self.near_hold_ms(None)) {
                // Nothing would be kept: no flight to join either.
                return self
                    .forward(link, owner, user_id, lookup, deadline)
                    .await
                    .map(Ok);
            }
            match self.join_flight(user_id) {
                Flight::Lead(flight) => {
                    let served = self
                        .fetch_near(link, owner, user_id, lookup, deadline)
                        .await;
                    flight.done(served.is_none());
                    return served.map(Ok);
                }
                Flight::Follow(mut done) => {
                    // Woken when the leader is done (or gone): then the
                    // cell says what there is to serve, with every fence
                    // applied since, not the leader's answer.
                    if tokio::time::timeout_at(deadline, done.changed())
                        .await
                        .is_err()
                    {
                        return Some(Err(ResolveError::Timeout));
                    }
                    if *done.borrow() == Some(true) {
                        return None;
                    }
                    if Instant::now() >= deadline {
                        return Some(Err(ResolveError::Timeout));
                    }
                }
            }
        }
    }

    /// Asks the owner and keeps its answer here unless an invalidation, a
    /// flush or a lost lease since the call started (or a recent one the
    /// owner may not have applied yet) says it may be old. The caller gets
    /// the answer either way: the call started after its lookup arrived,
    /// so the owner's answer is as new as a forwarded one always was.
    async fn fetch_near(
        &self,
        link: &Arc<dyn Link>,
        owner: &Arc<str>,
        user_id: &UserId,
        lookup: Lookup,
        deadline: Instant,
    ) -> Option<Served> {
        let inner = &*self.inner;
        let slot = self.near_slot(user_id);
        if lookup == Lookup::ForceRefresh {
            // Whatever was kept, or is being fetched, predates the refresh.
            slot.cell.supersede();
            inner.observer.miss(MissReason::Forced);
        } else {
            let reason = if slot.cell.was_invalidated(inner.registry.flushes()) {
                MissReason::Invalidated
            } else if slot.cell.has_record(inner.registry.flushes()) {
                MissReason::Expired
            } else {
                MissReason::Cold
            };
            inner.observer.miss(reason);
        }
        let started = (slot.cell.generation(), inner.registry.flushes());
        let sent = Instant::now();
        let mut served = self.forward(link, owner, user_id, lookup, deadline).await?;
        let now = Instant::now();
        // The owner's read instant on this node's clock, early by at most
        // the round trip: the near copy expires no later than the owner's.
        let fetched_at = sent.checked_sub(served.age).unwrap_or(sent);
        // Held: sent too soon after an invalidation (or a flush) here for
        // the owner to have surely applied it when it answered, counted
        // with the owner's own lease length (lemma HOLD). An owner that
        // counts a longer lease than any known here holds every copy off
        // first: a hold already dropped was not that long.
        self.learn_lease(served.owner_lease);
        let hold = self.near_hold_ms(served.owner_lease);
        let keep =
            self.leased_at(inner.registry.millis(now)) && !self.near_held(user_id, sent, hold);
        let flush_now = inner.registry.flushes();
        // Refused or not, the answer goes to this caller (see above).
        let _ = slot
            .cell
            .publish(&served.fetched, started, flush_now, fetched_at, keep);
        served.near = false;
        Some(served)
    }

    /// The user's slot for a near copy, inserted (no actor) if missing.
    fn near_slot(&self, user_id: &UserId) -> Arc<Slot> {
        let inner = &*self.inner;
        if let Some(slot) = inner.registry.get(user_id) {
            return slot;
        }
        let slot = inner.registry.get_or_insert(user_id, Instant::now());
        if inner.registry.len() >= inner.config.max_sessions {
            let _ = inner.supervisor.cast(SupervisorMsg::MakeRoom);
        }
        slot
    }

    /// Joins the forwarded call in flight for `user_id`, or starts one.
    fn join_flight(&self, user_id: &UserId) -> Flight<'_> {
        let mut flights = self.inner.flights.locked();
        if let Some(done) = flights.get(user_id) {
            return Flight::Follow(done.clone());
        }
        let (tx, rx) = watch::channel(None);
        flights.insert(user_id.clone(), rx);
        Flight::Lead(FlightGuard {
            inner: &self.inner,
            user_id: user_id.clone(),
            tx,
        })
    }

    /// Whether the owner's answer to a call sent at `at` may not be kept
    /// here, the owner counting a lease held off for `hold_ms`: an
    /// invalidation of `user_id` (or a flush) arrived here so shortly
    /// before that the owner may not have applied it yet when it answered.
    /// Its change committed before the invalidation was sent; an owner that
    /// still holds a lease one of its leases (plus the drift margin) after
    /// that renewed it after the commit, so it had applied it (or it no
    /// longer answers from its cache): lemma HOLD of docs/freshness.md.
    /// An invalidation that arrives after the call was sent is the cell's
    /// business (its fence).
    fn near_held(&self, user_id: &UserId, at: Instant, hold_ms: u64) -> bool {
        let inner = &*self.inner;
        let at_ms = inner.registry.millis(at);
        let all = inner.near_hold_all.load(Ordering::Acquire);
        if all > 0 && at_ms < (all - 1).saturating_add(hold_ms) {
            return true;
        }
        let mut held = inner.near_holds.locked();
        match held.get(user_id) {
            Some(&since) if at_ms < since.saturating_add(hold_ms) => true,
            Some(&since) => {
                // Dropped only once no owner's hold can still cover it.
                if at_ms >= since.saturating_add(self.near_hold_ms(None)) {
                    held.remove(user_id);
                }
                false
            }
            None => false,
        }
    }

    /// How long an invalidation or a flush holds off near copies of an
    /// owner that counts `owner_lease` (`None`: the longest lease known
    /// here): that lease and its drift margin (see [`Router::near_held`]),
    /// and a little more. Without leases, the longest a writer waits for
    /// the owner to apply an invalidation: the call timeout.
    pub(crate) fn near_hold_ms(&self, owner_lease: Option<Duration>) -> u64 {
        let config = &self.inner.config;
        let longest = self.inner.longest_lease_ms.load(Ordering::Acquire);
        let lease = owner_lease
            .or((longest > 0).then(|| Duration::from_millis(longest)))
            .or(config.lease);
        let hold = lease.map_or(config.call_timeout, |l| l + l / 50);
        u64::try_from((hold + Duration::from_millis(100)).as_millis()).unwrap_or(u64::MAX)
    }

    /// Notes an owner's lease length. One longer than any known before
    /// holds off every near copy from now, as a flush does: the holds of
    /// invalidations already forgotten were counted shorter.
    fn learn_lease(&self, owner_lease: Option<Duration>) {
        let Some(lease) = owner_lease else {
            return;
        };
        let inner = &*self.inner;
        let ms = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX);
        if inner.longest_lease_ms.fetch_max(ms, Ordering::AcqRel) < ms {
            let now_ms = inner.registry.millis(Instant::now());
            inner
                .near_hold_all
                .fetch_max(now_ms.saturating_add(1), Ordering::AcqRel);
        }
    }

    /// Holds off near copies of `user_id` (`None`: of every user) from
    /// now, for as long as [`Router::near_held`] says.
    pub(crate) fn hold_near(&self, user_id: Option<&UserId>) {
        let inner = &*self.inner;
        if !inner.config.near || inner.link.is_none() {
            return;
        }
        let now_ms = inner.registry.millis(Instant::now());
        match user_id {
            None => {
                inner
                    .near_hold_all
                    .fetch_max(now_ms.saturating_add(1), Ordering::AcqRel);
            }
            Some(id) => {
                let longest = self.near_hold_ms(None);
                let mut held = inner.near_holds.locked();
                if held.len() >= 1024 {
                    held.retain(|_, since| since.saturating_add(longest) > now_ms);
                }
                held.insert(id.clone(), now_ms);
            }
        }
    }
}
