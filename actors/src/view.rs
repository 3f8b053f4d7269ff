//! The words of the membership policy that its observers share: what a
//! view change did ([`ViewChange`]) and why a node dropped its whole cache
//! ([`FlushReason`]). The policy itself is [`Router::apply_view`] and
//! [`Router::flush`].
//!
//! [`Router::apply_view`]: crate::Router::apply_view
//! [`Router::flush`]: crate::Router::flush

use std::sync::Arc;

/// What a new membership view changed on this node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ViewChange {
    /// Members of the new view that were not in the old one, sorted.
    pub came: Vec<Arc<str>>,
    /// Members of the old view that are not in the new one, sorted.
    pub went: Vec<Arc<str>>,
    /// Users cached here that another member owns now: dropped.
    pub moved: usize,
}

impl ViewChange {
    /// Whether the view changed at all.
    pub fn changed(&self) -> bool {
        !self.came.is_empty() || !self.went.is_empty()
    }

    /// The members that must flush their cache ([`Router::flush`] with
    /// [`FlushReason::Rejoined`]): every member that came, since this
    /// node's invalidations passed them by while they were out of its view.
    ///
    /// [`Router::flush`]: crate::Router::flush
    pub fn must_flush(&self) -> &[Arc<str>] {
        &self.came
    }
}

/// Why a node dropped its whole cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FlushReason {
    /// It came (back) into another member's view (see
    /// [`ViewChange::must_flush`]).
    Rejoined,
    /// Its own heartbeat came badly late: the process was paused.
    Paused,
    /// Its source of database notifications reconnected: whatever changed
    /// while nobody listened is unknown.
    Resync,
    /// It regained its freshness lease after a lapse (or the change log no
    /// longer reached back to what it had applied): writers stopped waiting
    /// for it meanwhile.
    Lease,
}

impl FlushReason {
    pub const ALL: [FlushReason; 4] = [
        FlushReason::Rejoined,
        FlushReason::Paused,
        FlushReason::Resync,
        FlushReason::Lease,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FlushReason::Rejoined => "rejoined",
            FlushReason::Paused => "paused",
            FlushReason::Resync => "resync",
            FlushReason::Lease => "lease",
        }
    }
}
