//! Graceful leave: a node that is shutting down says so, and its peers
//! drop it from their views at once instead of waiting for the failure
//! detector, so they take its users over and stop forwarding to it.
//!
//! Leaving is per process, not per name: a node restarted under the same
//! name is another instance, and comes back into the views with its first
//! answered ping. The instance travels in the [`super::wire::LeaveNotice`]
//! and in every Ping answer; a peer keeps a name out of its view only while
//! the instance that said it left is the one answering for that name.
//!
//! The leaving node itself (see `Application::run_until_stopped`) stops
//! answering from its cache and gives up its lease *before* it tells
//! anyone: from then on it answers by reading through or by forwarding to
//! a peer that holds a lease, so a writer that stops waiting for it loses
//! nothing (docs/freshness.md).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use sessiond_actors::sync::MutexExt;
use sessiond_actors::Router;

use super::wire::LeaveNotice;

/// This process's side of leaving, and what it knows of peers that left.
pub(super) struct Departures {
    /// This process's instance: random, so a restart under the same name
    /// is told apart from the process that left.
    pub instance: u64,
    /// Set once this node has started leaving; its Ping answers say so.
    leaving: AtomicBool,
    /// Peers that said they are leaving: name → the instance that left.
    /// Also the lock under which a view is computed and applied, so a
    /// departure and a heartbeat never apply views out of order.
    left: Mutex<HashMap<String, u64>>,
}

impl Departures {
    pub(crate) fn new() -> Arc<Departures> {
        Arc::new(Departures {
            instance: random_instance(),
            leaving: AtomicBool::new(false),
            left: Mutex::new(HashMap::new()),
        })
    }

    pub(crate) fn leaving(&self) -> bool {
        self.leaving.load(Ordering::Acquire)
    }

    pub(crate) fn start_leaving(&self) {
        self.leaving.store(true, Ordering::Release);
    }

    /// The peers that left, locked while a view is computed and applied.
    pub(crate) fn lock(&self) -> MutexGuard<'_, HashMap<String, u64>> {
        self.left.locked()
    }

    /// A peer says it is leaving: its users belong to the other members
    /// from now on, and no new lookup or invalidation goes to it.
    pub(crate) fn peer_left(&self, notice: &LeaveNotice, router: &Router) {
        if notice.name == router.node() {
            return;
        }
        let mut left = self.lock();
        left.insert(notice.name.clone(), notice.instance);
        // The link keeps the peer until the next heartbeat's view: a
        // lookup that picked it as owner from the view before this one
        // still reaches it (it answers until it exits).
        let view: Vec<Arc<str>> = router
            .members()
            .iter()
            .filter(|m| ***m != *notice.name)
            .cloned()
            .collect();
        let change = router.apply_view(&view);
        drop(left);
        if change.changed() {
            tracing::info!(peer = %notice.name, members = ?view, "peer left the cluster");
        }
    }
}

/// Whether a member answering as (`name`, `instance`) is one that said it
/// is leaving. A different instance under that name is a restart: the
/// departure is forgotten.
pub(super) fn has_left(left: &mut HashMap<String, u64>, name: &str, instance: u64) -> bool {
    match left.get(name) {
        Some(gone) if *gone == instance => true,
        Some(_) => {
            left.remove(name);
            false
        }
        None => false,
    }
}

fn random_instance() -> u64 {
    // Never 0: that is what an older node's Ping answer reads as.
    sessiond_actors::process_nonce().max(1)
}
