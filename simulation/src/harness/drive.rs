//! The driver of one run: the schedule of disruptions merged with the
//! workload in time order, each lookup polled once (a hit is recorded on
//! the spot, anything else becomes a task), each admin write applied to the
//! store and, under `push`, invalidated through the entry node's router;
//! under `lease`, confirmed through it (`Router::invalidate_confirmed`),
//! its acknowledgement recorded for the stale-after-acknowledgement check.
//! A node cut off from the database, or paused, refuses admin writes; a
//! paused node takes the lookups sent to it when it resumes.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use sessiond_actors::{CacheConfig, InvalidationSource, Lookup, Status};
use tokio::time::Instant;

use super::cluster::{Action, Cluster};
use super::{Fault, RawRun, Scenario};
use crate::args::Policy;
use crate::measure::{Change, ChangeKind, Recorder, Sent, SimObserver};
use crate::net::network;
use crate::rng::{stream, Rng};
use crate::store::{SimStore, Write};
use crate::workload::{EventKind, Workload};
use crate::{lock, SimError};

/// The roles a role change cycles through.
const ROLES: [&str; 3] = ["viewer", "editor", "admin"];

fn timeline(scenario: &Scenario) -> Vec<(u64, usize, Action)> {
    let mut t = Vec::new();
    let detect = scenario.detect;
    for d in &scenario.disruptions {
        let ns = |x: Duration| x.as_nanos() as u64;
        let end = d.at + d.length;
        let (down, up) = match d.kind {
            Fault::Crash => (Action::Crash(d.node), Action::Restart(d.node)),
            Fault::Partition => (Action::Isolate(d.node), Action::Heal(d.node)),
            Fault::CutOff => (Action::CutOff(d.node, true), Action::CutOff(d.node, false)),
            Fault::Pause => (
                Action::Pause(d.node, Some(d.length)),
                Action::Pause(d.node, None),
            ),
        };
        t.push((ns(d.at), t.len(), down));
        t.push((ns(d.at + detect), t.len(), Action::Converge));
        t.push((ns(end), t.len(), up));
        t.push((ns(end + detect), t.len(), Action::Converge));
    }
    t.sort_by_key(|(at, seq, _)| (*at, *seq));
    t
}

/// Polls a future once with the caller's context.
async fn poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *f).poll(cx))).await
}

/// Plays the run on the current (paused-time) runtime.
pub(super) async fn drive(
    scenario: &Scenario,
    policy: Policy,
    ttl: Duration,
    progress: &mut dyn FnMut(f64),
) -> Result<RawRun, SimError> {
    let seed = scenario.workload.seed;
    let users = scenario.workload.users;
    let n = scenario.nodes;
    let config = CacheConfig {
        ttl: if policy == Policy::None {
            Duration::ZERO
        } else {
            ttl
        },
        idle_timeout: scenario.idle_timeout,
        hibernate_after: Some(scenario.hibernate_after),
        max_sessions: scenario.max_sessions,
        call_timeout: scenario.call_timeout,
        lease: (policy == Policy::Lease).then_some(scenario.lease),
        near: scenario.near,
    };
    let store = Arc::new(SimStore::new(
        users,
        scenario.id_kind,
        scenario.store_latency.clone(),
        Rng::stream(seed, stream::STORE_LATENCY),
        scenario.replica_lag,
    ));
    let observer = Arc::new(SimObserver::default());
    let names: Vec<Arc<str>> = (0..n).map(|i| Arc::from(Scenario::node_name(i))).collect();
    let net = (n > 1).then(|| {
        network(
            names.clone(),
            scenario.link_delay.clone(),
            scenario.link_loss,
            Rng::stream(seed, stream::LINK),
        )
    });
    let mut cluster = Cluster::new(
        names,
        net.clone(),
        config,
        Arc::clone(&store),
        Arc::clone(&observer),
    );
    cluster.start().await?;

    if store.has_replica() {
        let store = Arc::clone(&store);
        let lag = scenario.replica_lag;
        tokio::spawn(async move {
            loop {
                match store.replicate_due() {
                    Some(next) => tokio::time::sleep_until(next).await,
                    None => tokio::time::sleep(lag).await,
                }
            }
        });
    }

    let recorder = Arc::new(Mutex::new(Recorder::default()));
    let pending = Arc::new(AtomicU64::new(0));
    // Orders requests' sends and writes' acknowledgements, which may share
    // an instant of virtual time (one thread: the order of these calls).
    let order = Arc::new(AtomicU64::new(0));
    let mut versions = vec![1i64; users as usize + 1];
    let mut roles = vec![0usize; users as usize + 1];
    let mut active = vec![true; users as usize + 1];

    let start = Instant::now();
    cluster.now = start;
    let since_start = move |now: Instant| now.saturating_duration_since(start).as_nanos() as u64;
    let duration_ns = scenario.workload.duration_ns.max(1);
    let mut shown = 0u64;
    let mut actions = timeline(scenario).into_iter().peekable();
    let mut events =
        Workload::new(scenario.workload.clone(), Arc::clone(&scenario.popularity)).peekable();

    loop {
        let next_action = actions.peek().map(|a| a.0);
        let next_event = events.peek().map(|e| e.at_ns);
        let at = match (next_action, next_event) {
            (None, None) => break,
            (Some(a), Some(e)) => a.min(e),
            (Some(a), None) => a,
            (None, Some(e)) => e,
        };
        if at >= duration_ns {
            break;
        }
        // Lease keepers and writers waiting for leases run on timers of
        // their own: under `lease`, always wait on a timer.
        let quiet = !scenario.timer_per_event
            && pending.load(Ordering::Relaxed) == 0
            && !store.has_replica()
            && policy != Policy::Lease;
        let now = cluster.wait_until(start, at, quiet).await;
        let pct = at * 100 / duration_ns;
        if pct > shown {
            shown = pct;
            progress(pct as f64 / 100.0);
        }
        if next_action == Some(at) {
            if let Some((_, _, action)) = actions.next() {
                cluster.apply(action).await?;
            }
            // Stopping or starting nodes may have let time move.
            cluster.now = Instant::now();
            continue;
        }
        let Some(event) = events.next() else { break };
        let now_ns = since_start(now);
        let user = event.user;
        let id = store.id(user);
        let Some((node, router)) = cluster.entry(event.pick) else {
            if event.kind == EventKind::Request {
                lock(&recorder).answer(
                    Sent {
                        user,
                        node: 0,
                        at_ns: now_ns,
                        version: versions[user as usize],
                        seq: order.fetch_add(1, Ordering::Relaxed),
                    },
                    &Err(sessiond_actors::ResolveError::Stopped),
                    Duration::ZERO,
                );
            }
            continue;
        };
        match event.kind {
            EventKind::Request => {
                let sent = Sent {
                    user,
                    node,
                    at_ns: now_ns,
                    version: versions[user as usize],
                    seq: order.fetch_add(1, Ordering::Relaxed),
                };
                // A paused node takes the request when it runs again.
                let paused = cluster.reach().paused_until(node);
                let mut lookup = Box::pin(async move {
                    if let Some(until) = paused {
                        tokio::time::sleep_until(until).await;
                    }
                    router.resolve(id, Lookup::Resolve).await
                });
                match poll_once(&mut lookup).await {
                    Poll::Ready(result) => lock(&recorder).answer(sent, &result, Duration::ZERO),
                    Poll::Pending => {
                        let recorder = Arc::clone(&recorder);
                        let pending = Arc::clone(&pending);
                        pending.fetch_add(1, Ordering::Relaxed);
                        let sent_at = now;
                        tokio::spawn(async move {
                            let result = lookup.await;
                            lock(&recorder).answer(sent, &result, sent_at.elapsed());
                            pending.fetch_sub(1, Ordering::Relaxed);
                        });
                    }
                }
            }
            EventKind::ForceRefresh => {
                let recorder = Arc::clone(&recorder);
                let pending = Arc::clone(&pending);
                pending.fetch_add(1, Ordering::Relaxed);
                let paused = cluster.reach().paused_until(node);
                tokio::spawn(async move {
                    if let Some(until) = paused {
                        tokio::time::sleep_until(until).await;
                    }
                    let result = router.resolve(id, Lookup::ForceRefresh).await;
                    let mut rec = lock(&recorder);
                    rec.forced += 1;
                    if result.is_err() {
                        rec.forced_errors += 1;
                    }
                    drop(rec);
                    pending.fetch_sub(1, Ordering::Relaxed);
                });
            }
            EventKind::RoleChange | EventKind::StatusChange => {
                // A node cut off from the database, or paused, cannot
                // commit: the admin's write fails.
                if !cluster.reach().can_write(node) {
                    lock(&recorder).refused_writes += 1;
                    continue;
                }
                let u = user as usize;
                let (write, kind) = if event.kind == EventKind::RoleChange {
                    roles[u] = (roles[u] + 1) % ROLES.len();
                    (Write::Role(ROLES[roles[u]]), ChangeKind::Role)
                } else {
                    active[u] = !active[u];
                    let status = if active[u] {
                        Status::Active
                    } else {
                        Status::Deactivated
                    };
                    (Write::Status(status), ChangeKind::Status)
                };
                let version = store.write(user, write);
                versions[u] = version;
                let idx = lock(&recorder).change(Change {
                    user,
                    at_ns: now_ns,
                    version,
                    kind,
                    node,
                    stale_answers: 0,
                    worst: None,
                    acked: None,
                });
                if policy == Policy::Lease {
                    // Acknowledged when every other lease holder confirmed
                    // the invalidation or its lease ran out.
                    pending.fetch_add(1, Ordering::Relaxed);
                    let pending = Arc::clone(&pending);
                    let recorder = Arc::clone(&recorder);
                    let order = Arc::clone(&order);
                    let leases = cluster.node_store(node);
                    let unconfirmed = scenario.ack_unconfirmed;
                    tokio::spawn(async move {
                        let confirmed = if unconfirmed {
                            router
                                .invalidate(id, Some(version), InvalidationSource::Api)
                                .await;
                            Ok(())
                        } else {
                            router
                                .invalidate_confirmed(
                                    id,
                                    Some(version),
                                    InvalidationSource::Api,
                                    &*leases,
                                )
                                .await
                        };
                        let mut rec = lock(&recorder);
                        match confirmed {
                            Ok(()) => {
                                let seq = order.fetch_add(1, Ordering::Relaxed);
                                rec.acked(idx, seq, since_start(Instant::now()));
                            }
                            Err(_) => rec.unconfirmed_writes += 1,
                        }
                        drop(rec);
                        pending.fetch_sub(1, Ordering::Relaxed);
                    });
                } else if policy == Policy::Push {
                    pending.fetch_add(1, Ordering::Relaxed);
                    let pending = Arc::clone(&pending);
                    tokio::spawn(async move {
                        router
                            .invalidate(id, Some(version), InvalidationSource::Api)
                            .await;
                        pending.fetch_sub(1, Ordering::Relaxed);
                    });
                }
            }
        }
    }

    // Let the last answers come in.
    let end = start + scenario.duration();
    if end > Instant::now() {
        tokio::time::sleep_until(end).await;
    }
    let give_up = Instant::now() + scenario.call_timeout * 4 + Duration::from_secs(60);
    while pending.load(Ordering::Relaxed) > 0 && Instant::now() < give_up {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    progress(1.0);
    cluster.stop().await;
    let recorder = std::mem::take(&mut *lock(&recorder));
    let net = net.map(|net| net.stats()).unwrap_or_default();
    Ok(RawRun {
        recorder,
        observer,
        queries: store.queries(),
        max_store_latency: store.max_latency(),
        max_link_delay: net.max_delay,
        messages: net.messages,
        lost: net.lost,
        refused: net.refused,
    })
}
