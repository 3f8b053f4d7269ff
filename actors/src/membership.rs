//! The membership policy: what a node does when its view of the cluster
//! changes ([`Router::apply_view`]), when it must drop its whole cache
//! ([`Router::flush`]) and when it finds it was paused ([`PauseCheck`]).
//! The first two are methods of the router they act on; the words they
//! report in, [`ViewChange`] and [`FlushReason`], are in `view`. One copy,
//! so that the service's cluster (ractor_cluster) and the simulation's
//! membership apply the very same rules:
//!
//! - An invalidation goes only to the members in the writer's view, so a
//!   member that comes (back) into a node's view may have missed that
//!   node's invalidations while it was out of it: it must drop its whole
//!   cache ([`ViewChange::must_flush`], then [`Router::flush`] on that
//!   member).
//! - Users another member now owns are dropped here; the new owner simply
//!   fetches them ([`Router::apply_view`]).
//! - A node whose own heartbeat comes badly late was paused and may have
//!   missed anything: it flushes itself ([`PauseCheck`]).
//!
//! Every flush, whatever its reason, goes through [`Router::flush`], and
//! every view change through [`Router::apply_view`]; both report to the
//! [`Observer`](crate::Observer), which is how the tests see that the
//! service and the simulation run this code.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::id::UserId;
use crate::ownership;
use crate::router::Router;
use crate::supervisor::SupervisorMsg;
use crate::sync::RwLockExt;
use crate::view::{FlushReason, ViewChange};

impl Router {
    /// Replaces this node's membership view (this node is always in it)
    /// and says who came and went. Users that moved to another owner are
    /// dropped here. The caller owes each of [`ViewChange::must_flush`] a
    /// flush.
    pub fn apply_view<S: AsRef<str>>(&self, members: &[S]) -> ViewChange {
        let inner = &*self.inner;
        let mut view: Vec<Arc<str>> = members.iter().map(|m| Arc::from(m.as_ref())).collect();
        if !view.contains(&inner.node) {
            view.push(Arc::clone(&inner.node));
        }
        view.sort();
        view.dedup();
        let old = {
            let mut current = inner.members.write_locked();
            if **current == view {
                return ViewChange::default();
            }
            std::mem::replace(&mut *current, Arc::new(view.clone()))
        };
        let moved: Vec<UserId> = inner
            .registry
            .user_ids()
            .into_iter()
            .filter(|id| ownership::owner(id, &view) != Some(&*inner.node))
            .collect();
        let change = ViewChange {
            came: view.iter().filter(|m| !old.contains(m)).cloned().collect(),
            went: old.iter().filter(|m| !view.contains(m)).cloned().collect(),
            moved: moved.len(),
        };
        if !moved.is_empty() {
            let _ = inner.supervisor.cast(SupervisorMsg::Drop(moved));
        }
        tracing::debug!(
            node = %inner.node,
            came = ?change.came,
            went = ?change.went,
            moved = change.moved,
            "membership view applied"
        );
        inner.observer.view_changed(&change);
        change
    }

    /// Drops every record cached on this node: the one way a node drops
    /// its whole cache, whatever the reason. O(1) (a counter bump, see
    /// `Registry::flush`): nothing published, and no fetch started,
    /// before it is served afterwards.
    pub fn flush(&self, reason: FlushReason) {
        let inner = &*self.inner;
        inner.registry.flush();
        // Near copies asked for after this point may come from an owner
        // that has not applied what this node missed: not kept for a while.
        self.hold_near(None);
        tracing::debug!(node = %inner.node, reason = %reason.as_str(), "cache flushed");
        inner.observer.flushed(reason);
    }
}

/// Notices that this process was paused (SIGSTOP, a VM migration, a long
/// GC-like stall of the runtime): its periodic heartbeat comes far later
/// than its period. Invalidations sent meanwhile may have been lost, so it
/// flushes the node's cache.
#[derive(Debug)]
pub struct PauseCheck {
    period: Duration,
    last: Option<Instant>,
}

impl PauseCheck {
    /// A beat this many periods after the previous one means a pause.
    pub const LATE_AFTER: u32 = 6;

    pub fn new(period: Duration) -> PauseCheck {
        PauseCheck { period, last: None }
    }

    /// Called on every heartbeat; flushes `router` (and returns true) when
    /// this beat comes more than [`Self::LATE_AFTER`] periods after the
    /// previous one. The first beat only starts the clock.
    pub fn beat(&mut self, now: Instant, router: &Router) -> bool {
        let paused = self.last.is_some_and(|last| {
            now.saturating_duration_since(last) > self.period * Self::LATE_AFTER
        });
        self.last = Some(now);
        if paused {
            router.flush(FlushReason::Paused);
        }
        paused
    }
}
