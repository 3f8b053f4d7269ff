//! Invalidation: dropping a user's record on this node and on every other
//! member, and, for a write that must not be acknowledged while any node
//! could still answer with what it changed, waiting for each lease holder
//! to confirm ([`Router::invalidate_confirmed`]). An `impl Router`, like
//! the membership policy.

use std::sync::Arc;

use tokio::time::Instant;

use crate::id::UserId;
use crate::lease::{confirm_write, Acks, LeaseStore, Unconfirmed};
use crate::observer::InvalidationSource;
use crate::router::Router;

/// The log target of these lines: the router's, like the rest of the
/// router's lines, so that one filter (`sessiond_actors::router`) shows
/// them all.
const LOG_TARGET: &str = "sessiond_actors::router";

impl Router {
    /// Drops the user's cached record on every node unless it is at least
    /// `min_version` (`None`: in any case). Returns once no lookup that
    /// starts afterwards, on any reachable node, can see the old record; a
    /// node that cannot be reached within the call timeout is passed over
    /// (it flushes its whole cache when it comes back: see
    /// [`ViewChange::must_flush`](crate::ViewChange::must_flush)).
    pub async fn invalidate(
        &self,
        user_id: impl Into<UserId>,
        min_version: Option<i64>,
        source: InvalidationSource,
    ) {
        let user_id = &user_id.into();
        self.invalidate_here(user_id, min_version, source);
        self.broadcast(user_id, min_version, None).await
    }

    /// Sends the invalidation to every other member in this node's view,
    /// noting in `acks` the lease of each that confirms.
    async fn broadcast(&self, user_id: &UserId, min_version: Option<i64>, acks: Option<&Acks>) {
        let Some(link) = &self.inner.link else {
            return;
        };
        let members = self.members();
        let timeout = self.inner.config.call_timeout;
        let remote = members.iter().filter(|m| **m != self.inner.node).map(|m| {
            let call = link.invalidate(m, user_id, min_version);
            let m = Arc::clone(m);
            async move {
                match tokio::time::timeout(timeout, call).await {
                    Ok(Ok(instance)) => {
                        if let (Some(acks), Some(i)) = (acks, instance) {
                            acks.ack(i);
                        }
                    }
                    Ok(Err(e)) => tracing::warn!(
                        target: LOG_TARGET,
                        node = %m,
                        error = %e,
                        "invalidation not delivered"
                    ),
                    Err(_) => tracing::warn!(
                        target: LOG_TARGET,
                        node = %m,
                        "invalidation not acknowledged in time"
                    ),
                }
            }
        });
        futures_join_all(remote.collect()).await;
    }

    /// [`Router::invalidate`] for a write that is acknowledged only once
    /// no node can answer with what it changed: every other lease holder
    /// has confirmed the invalidation (over the link, or by renewing its
    /// lease past the change) or its lease has run out. Bounded by the
    /// lease duration. Without a lease (a lone node) it is `invalidate`.
    pub async fn invalidate_confirmed(
        &self,
        user_id: impl Into<UserId>,
        min_version: Option<i64>,
        source: InvalidationSource,
        leases: &dyn LeaseStore,
    ) -> Result<(), Unconfirmed> {
        let user_id = &user_id.into();
        let Some(lease) = &self.inner.lease else {
            self.invalidate(user_id, min_version, source).await;
            return Ok(());
        };
        let started = Instant::now();
        self.invalidate_here(user_id, min_version, source);
        let acks = Acks::new();
        let broadcast = self.broadcast(user_id, min_version, Some(&acks));
        let confirm = confirm_write(leases, lease.instance(), &acks);
        tokio::pin!(broadcast, confirm);
        // Once the confirmation is done, members that did not answer yet
        // no longer matter: their leases are over, or they renewed past
        // the change.
        let mut delivered = false;
        let confirmed = loop {
            tokio::select! {
                c = &mut confirm => break c,
                _ = &mut broadcast, if !delivered => delivered = true,
            }
        }?;
        self.inner
            .observer
            .write_confirmed(started.elapsed(), confirmed.lapsed);
        Ok(())
    }

    /// Drops the user's cached record on this node only.
    pub async fn invalidate_local(
        &self,
        user_id: impl Into<UserId>,
        min_version: Option<i64>,
        source: InvalidationSource,
    ) {
        self.invalidate_here(&user_id.into(), min_version, source);
    }

    fn invalidate_here(
        &self,
        user_id: &UserId,
        min_version: Option<i64>,
        source: InvalidationSource,
    ) {
        let inner = &*self.inner;
        inner.observer.invalidation(source);
        // First: a near copy asked for after this point but answered by an
        // owner that has not applied this yet must not be kept.
        self.hold_near(Some(user_id));
        // The cell is where the record lives and where a fetch in flight
        // must publish: clearing and fencing it there, under its lock, is
        // the whole invalidation. No mailbox to queue behind.
        if let Some(slot) = inner.registry.get(user_id) {
            slot.cell.invalidate(min_version);
        }
    }
}

/// Awaits every future, concurrently, on the current task.
async fn futures_join_all<F: std::future::Future<Output = ()>>(futures: Vec<F>) {
    let mut set = Vec::with_capacity(futures.len());
    for f in futures {
        set.push(Box::pin(f));
    }
    std::future::poll_fn(move |cx| {
        set.retain_mut(|f| f.as_mut().poll(cx).is_pending());
        if set.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await
}
