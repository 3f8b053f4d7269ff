//! The failure detector ractor_cluster lacks: a heartbeat that pings every
//! peer, marks the silent ones down, brings them back on their first
//! answer, and hands the resulting view to the router. What a view change
//! means for the cache (who must flush, which users move) and what a pause
//! means is decided by the actors crate's membership policy
//! (`Router::apply_view`, `Router::flush`, `PauseCheck`), the same code the
//! simulation runs; this module only detects, and delivers the flushes the
//! policy asks of other members (`FlushAll`).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use ractor::rpc::CallResult;
use ractor::ActorRef;
use ractor_cluster::node::NodeServerMessage;
use sessiond_actors::sync::RwLockExt;
use sessiond_actors::{PauseCheck, Router};

use super::dial::redial;
use super::leave::{self, Departures};
use super::wire::{PeerMsg, PingReply};
use super::{ClusterLink, ClusterSettings, DOWN_AFTER, GROUP, HEARTBEAT, PING_TIMEOUT};
use crate::metrics::Telemetry;

/// What the heartbeat knows of one peer.
struct PeerHealth {
    actor: ActorRef<PeerMsg>,
    misses: u32,
    up: bool,
    /// The process answering for this name, and whether it is leaving.
    instance: u64,
    leaving: bool,
}

/// Everything the monitor task holds between heartbeats.
pub(super) struct Monitor {
    pub settings: ClusterSettings,
    pub server: ActorRef<NodeServerMessage>,
    pub router: Router,
    pub link: Arc<ClusterLink>,
    pub telemetry: Arc<Telemetry>,
    pub joined: Arc<AtomicBool>,
    /// The addresses this node knows, as its Ping answers hand them out.
    pub shared_known: Arc<RwLock<Vec<String>>>,
    /// Peers that said they are leaving: kept out of the view.
    pub departures: Arc<Departures>,
}

/// Heartbeat, membership view and reconnection, forever.
pub(super) async fn monitor(m: Monitor) {
    // Learned addresses; the --join names are resolved again every round.
    let mut known: HashSet<String> = HashSet::new();
    known.insert(m.settings.listen.to_string());
    let mut health: HashMap<String, PeerHealth> = HashMap::new();
    let mut pause = PauseCheck::new(HEARTBEAT);
    let mut tick = tokio::time::interval(HEARTBEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut round: u64 = 0;
    loop {
        tick.tick().await;
        round += 1;
        if pause.beat(tokio::time::Instant::now(), &m.router) {
            tracing::warn!("this node was paused; its cache may have missed invalidations");
        }

        // Dial every known address with no open session (every ~1 s).
        if round % 3 == 1 {
            redial(&m.server, &m.settings, &mut known).await;
            let mut list: Vec<String> = known.iter().cloned().collect();
            list.sort();
            *m.shared_known.write_locked() = list;
        }

        let mut results = ping_members(&m.settings.node_name).await;
        if let Some(tls) = &m.settings.tls {
            tls.vouch(&mut results);
        }
        for (_, reply) in &results {
            if let Some(r) = reply {
                known.extend(r.addrs.iter().cloned());
            }
        }
        update_health(&mut health, results, &m.settings.node_name);
        apply_view(&m, &health);
    }
}

/// Pings every member of the group (other than this node) at once; `None`
/// for those that did not answer in time.
async fn ping_members(me: &str) -> Vec<(ActorRef<PeerMsg>, Option<PingReply>)> {
    let members: Vec<ActorRef<PeerMsg>> = ractor::pg::get_members(&GROUP.to_string())
        .into_iter()
        .filter(|c| !c.get_id().is_local())
        .map(ActorRef::<PeerMsg>::from)
        .collect();
    let pings = members.into_iter().map(|actor| {
        let me = me.to_string();
        async move {
            let answer = actor
                .call(|r| PeerMsg::Ping(me, r), Some(PING_TIMEOUT))
                .await;
            match answer {
                Ok(CallResult::Success(text)) => {
                    (actor, serde_json::from_str::<PingReply>(&text).ok())
                }
                _ => (actor, None),
            }
        }
    });
    futures_util::future::join_all(pings).await
}

/// Counts answers and misses: a peer is up from its first answer until it
/// misses `DOWN_AFTER` pings in a row; a peer whose session closed (gone
/// from the group) is forgotten.
fn update_health(
    health: &mut HashMap<String, PeerHealth>,
    results: Vec<(ActorRef<PeerMsg>, Option<PingReply>)>,
    me: &str,
) {
    let mut seen: HashSet<String> = HashSet::new();
    for (actor, reply) in results {
        match reply {
            Some(r) if r.name != me => {
                seen.insert(r.name.clone());
                let entry = health.entry(r.name).or_insert(PeerHealth {
                    actor: actor.clone(),
                    misses: 0,
                    up: false,
                    instance: r.instance,
                    leaving: r.leaving,
                });
                entry.actor = actor;
                entry.misses = 0;
                entry.up = true;
                entry.instance = r.instance;
                entry.leaving = r.leaving;
            }
            Some(_) => {}
            None => {
                // Unanswered: find which peer it was by actor id.
                if let Some((name, h)) = health
                    .iter_mut()
                    .find(|(_, h)| h.actor.get_id() == actor.get_id())
                {
                    seen.insert(name.clone());
                    h.misses += 1;
                    if h.up && h.misses >= DOWN_AFTER {
                        h.up = false;
                        tracing::warn!(peer = %name, "peer stopped answering; marked down");
                    }
                }
            }
        }
    }
    health.retain(|name, _| {
        let keep = seen.contains(name);
        if !keep {
            tracing::warn!(peer = %name, "peer disconnected");
        }
        keep
    });
}

/// Hands the peers that are up (and not leaving) to the link and, as the
/// view, to the router's membership policy; delivers the flushes it asks
/// for.
fn apply_view(m: &Monitor, health: &HashMap<String, PeerHealth>) {
    let me = &m.settings.node_name;
    // Held until the view is applied: a departure applied meanwhile by the
    // peer actor is not undone by a view computed before it.
    let mut left = m.departures.lock();
    let up: HashMap<String, ActorRef<PeerMsg>> = health
        .iter()
        .filter(|(n, h)| h.up && !h.leaving && !leave::has_left(&mut left, n, h.instance))
        .map(|(n, h)| (n.clone(), h.actor.clone()))
        .collect();
    let mut view: Vec<String> = up.keys().cloned().collect();
    view.push(me.clone());
    m.link.set_peers(up);
    let change = m.router.apply_view(&view);
    drop(left);
    if change.changed() {
        tracing::info!(members = ?view, "cluster membership changed");
    }
    m.telemetry.cluster_members(view.len());
    if view.len() > 1 {
        m.joined.store(true, Ordering::Relaxed);
    }
    for name in change.must_flush() {
        tracing::info!(peer = %name, "peer joined");
        if let Some(h) = health.get(&**name) {
            let _ = h.actor.cast(PeerMsg::FlushAll(me.clone()));
        }
    }
}
