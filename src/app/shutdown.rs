//! Leaving: the signals that start it, and the order a leaving node gives
//! up its lease, tells its peers and drains.

use std::future::Future;
use std::time::Duration;

use sessiond_actors::LeaseStore;

use crate::http::{self, Ctx};

/// Leaving, in an order that keeps "no stale answer after an
/// acknowledged write" (docs/freshness.md):
///
/// 1. `/readyz` answers 503: load balancers stop sending new traffic.
/// 2. The lease keeper stops, then the lease ends locally: from now on
///    this node reads through (or forwards to a peer holding a lease) and
///    never answers from its cache. Only then is the lease row deleted,
///    so writers stop waiting for this node only once it cannot serve
///    what they change.
/// 3. The peers are told, and drop this node from their views at once:
///    they take its users over and stop forwarding to it. It still
///    answers their calls (forwards, invalidations) until it exits.
/// 4. Whatever still arrives is answered, until nothing has come for
///    [`http::drain::QUIET`] or `deadline` passes, or `cut` completes
///    (then it returns `true`).
pub(super) async fn leave(
    ctx: &Ctx,
    keeper: Option<tokio::task::JoinHandle<()>>,
    deadline: tokio::time::Instant,
    cut: impl Future<Output = ()>,
) -> bool {
    ctx.drain.start_leaving();
    if let Some(k) = keeper {
        k.abort();
        // Awaited: a renewal finishing on another thread must not extend
        // the lease after it was given up.
        let _ = k.await;
    }
    give_up_lease(ctx).await;
    if let Some(c) = &ctx.cluster {
        c.leave().await;
    }
    tokio::select! {
        _ = ctx.drain.quiet(http::drain::QUIET, deadline) => {
            tracing::info!("no more traffic: closing");
            false
        }
        _ = cut => {
            tracing::warn!("stopped again: not waiting for traffic to stop");
            true
        }
    }
}

/// Stops answering from the cache, then deletes the lease row: writers
/// need not wait for a lease that is given up. The keeper must be stopped.
pub(super) async fn give_up_lease(ctx: &Ctx) {
    if let Some(lease) = ctx.router.lease() {
        lease.expire();
        match tokio::time::timeout(Duration::from_secs(2), ctx.db.release(lease.instance())).await {
            Ok(Ok(())) => tracing::info!("freshness lease released"),
            // Writers then wait for it to run out (one --lease at most).
            Ok(Err(e)) => tracing::warn!(error = %e, "releasing the freshness lease failed"),
            Err(_) => tracing::warn!("releasing the freshness lease timed out"),
        }
    }
}
/// Completes on SIGINT or SIGTERM (one that arrives after the call is first
/// polled).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
