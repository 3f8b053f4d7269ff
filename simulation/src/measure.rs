//! What a run records: every answer (hit or not, how long it took, which
//! version of the user it carried) and every change an admin made, so that
//! each change's stale window can be measured afterwards.
//!
//! A request is *stale* when it was sent after a change had been committed
//! and was answered with a version older than that change. A change's stale
//! window is the time from the change to the latest request that was still
//! answered with the old record (0 when there was none).
//!
//! Kept whole: the stale-window and stale-after-acknowledgement
//! checks share the recorded history, and their hand-fed tests stay beside them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sessiond_actors::stats;
use sessiond_actors::{
    FlushReason, InvalidationSource, MissReason, Observer, ResolveError, Served, ViewChange,
};

/// A log-linear histogram of nanosecond values: exact below 128 ns, then 64
/// buckets per power of two (relative error under 1.6%). Each bucket keeps
/// its largest value, so a percentile is never under-reported and a
/// distribution of few distinct values reads back exactly.
#[derive(Clone, Debug)]
pub struct Histogram {
    counts: Vec<u64>,
    maxes: Vec<u64>,
    total: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; Self::BUCKETS],
            maxes: vec![0; Self::BUCKETS],
            total: 0,
        }
    }
}

impl Histogram {
    const BUCKETS: usize = 128 + 57 * 64;

    fn index(v: u64) -> usize {
        if v < 128 {
            return v as usize;
        }
        let e = 63 - v.leading_zeros() as usize; // 7..=63
        let sub = ((v >> (e - 6)) - 64) as usize; // 0..64
        128 + (e - 7) * 64 + sub
    }

    pub fn record(&mut self, v: u64) {
        let i = Self::index(v);
        self.counts[i] += 1;
        self.maxes[i] = self.maxes[i].max(v);
        self.total += 1;
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    /// The nearest-rank `p` quantile (0 < p ≤ 1), as the largest value of its
    /// bucket; 0 when empty.
    pub fn quantile(&self, p: f64) -> u64 {
        stats::quantile_bucket(&self.counts, p).map_or(0, |i| self.maxes[i])
    }
}

/// The nearest-rank `p` quantile of sorted values; 0 when empty.
pub fn quantile_sorted(sorted: &[u64], p: f64) -> u64 {
    stats::quantile(sorted, p).unwrap_or(0)
}

/// What an admin changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    Role,
    Status,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Role => "role change",
            ChangeKind::Status => "status change",
        }
    }
}

/// The worst stale answer a change caused.
#[derive(Clone, Copy, Debug)]
pub struct StaleAnswer {
    /// When the request was sent (ns since the start).
    pub sent_ns: u64,
    /// The node it entered at.
    pub node: usize,
    /// The version it was answered with.
    pub served_version: i64,
}

/// One committed change.
#[derive(Clone, Debug)]
pub struct Change {
    pub user: i64,
    pub at_ns: u64,
    pub version: i64,
    pub kind: ChangeKind,
    /// The node whose admin request made it.
    pub node: usize,
    pub stale_answers: u64,
    pub worst: Option<StaleAnswer>,
    /// When the write was acknowledged (`lease` policy): the order of the
    /// acknowledgement among requests sent (see [`Sent::seq`]) and its
    /// time (ns since the start).
    pub acked: Option<(u64, u64)>,
}

impl Change {
    /// How long after the change the old record was still served.
    pub fn window_ns(&self) -> u64 {
        self.worst
            .map(|w| w.sent_ns.saturating_sub(self.at_ns))
            .unwrap_or(0)
    }
}

/// A request in flight, as the driver saw it when sending it.
#[derive(Clone, Copy, Debug)]
pub struct Sent {
    pub user: i64,
    pub node: usize,
    pub at_ns: u64,
    /// The user's version in the store when the request was sent.
    pub version: i64,
    /// Its place in the order of sends and acknowledgements: a request
    /// whose `seq` is above an acknowledgement's started after it.
    pub seq: u64,
}

/// An answer that showed an older version than a write acknowledged
/// before its request was sent: what the `lease` policy promises never
/// happens.
#[derive(Clone, Debug)]
pub struct StaleAfterAck {
    pub user: i64,
    /// The acknowledged write's version and when it was acknowledged.
    pub acked_version: i64,
    pub acked_ns: u64,
    pub sent_ns: u64,
    pub node: usize,
    pub served_version: i64,
}

/// The newest write to the user acknowledged before `sent` started, if the
/// answer (`served_version`) is older: the history checker of "no stale
/// answer after an acknowledgement".
pub fn stale_after_ack<'a>(
    changes: impl IntoIterator<Item = &'a Change>,
    sent: &Sent,
    served_version: i64,
) -> Option<StaleAfterAck> {
    let newest = changes
        .into_iter()
        .filter(|c| c.user == sent.user)
        .filter_map(|c| c.acked.map(|a| (c, a)))
        .filter(|(_, (seq, _))| *seq < sent.seq)
        .max_by_key(|(c, _)| c.version)?;
    let (c, (_, acked_ns)) = newest;
    (served_version < c.version).then_some(StaleAfterAck {
        user: sent.user,
        acked_version: c.version,
        acked_ns,
        sent_ns: sent.at_ns,
        node: sent.node,
        served_version,
    })
}

/// The causes of a failed lookup, as reported.
pub const ERROR_KINDS: [&str; 4] = ["store", "actor failed", "timeout", "stopped"];

fn error_kind(e: &ResolveError) -> usize {
    match e {
        ResolveError::Store(_) => 0,
        ResolveError::ActorFailed => 1,
        ResolveError::Timeout => 2,
        ResolveError::Stopped => 3,
    }
}

/// Everything one run records.
#[derive(Default)]
pub struct Recorder {
    pub requests: u64,
    pub hits: u64,
    pub errors: u64,
    /// Failed lookups by cause, in [`ERROR_KINDS`] order.
    pub error_kinds: [u64; 4],
    /// Requests answered by another node than the one they entered.
    pub remote_answers: u64,
    /// Requests answered from the entry node's near copy of the owner's
    /// record (also counted in `remote_answers`).
    pub near_answers: u64,
    pub stale_answers: u64,
    pub latency: Histogram,
    pub changes: Vec<Change>,
    /// Each user's changes, oldest first (indices into `changes`).
    user_changes: HashMap<i64, Vec<usize>>,
    pub forced: u64,
    pub forced_errors: u64,
    /// Answers checked against the acknowledged writes (`lease`).
    pub checked_after_ack: u64,
    pub stale_after_ack: u64,
    /// The first few, for the report.
    pub stale_after_ack_examples: Vec<StaleAfterAck>,
    /// Time from each acknowledged write's commit to its acknowledgement.
    pub ack_latencies: Vec<u64>,
    /// Writes refused: their node could not reach the database.
    pub refused_writes: u64,
    /// Writes committed but not acknowledged: their node could not tell
    /// who still held the old record.
    pub unconfirmed_writes: u64,
}

impl Recorder {
    /// Records the acknowledgement of change `idx`, `seq` in the order of
    /// sends, at `at_ns`.
    pub fn acked(&mut self, idx: usize, seq: u64, at_ns: u64) {
        let c = &mut self.changes[idx];
        c.acked = Some((seq, at_ns));
        self.ack_latencies.push(at_ns.saturating_sub(c.at_ns));
    }

    /// Records a committed change; returns its index.
    pub fn change(&mut self, change: Change) -> usize {
        let idx = self.changes.len();
        self.user_changes.entry(change.user).or_default().push(idx);
        self.changes.push(change);
        idx
    }

    /// Records the answer to a request.
    pub fn answer(&mut self, sent: Sent, result: &Result<Served, ResolveError>, latency: Duration) {
        self.requests += 1;
        self.latency.record(latency.as_nanos() as u64);
        let served = match result {
            Ok(s) => s,
            Err(e) => {
                self.errors += 1;
                self.error_kinds[error_kind(e)] += 1;
                return;
            }
        };
        if served.hit {
            self.hits += 1;
        }
        if served.node.is_some() {
            self.remote_answers += 1;
        }
        if served.near {
            self.near_answers += 1;
        }
        let version = served.fetched.version();
        if let Some(list) = self.user_changes.get(&sent.user) {
            if list.iter().any(|&i| self.changes[i].acked.is_some()) {
                self.checked_after_ack += 1;
                let changes = list.iter().map(|&i| &self.changes[i]);
                if let Some(stale) = stale_after_ack(changes, &sent, version) {
                    self.stale_after_ack += 1;
                    if self.stale_after_ack_examples.len() < 5 {
                        self.stale_after_ack_examples.push(stale);
                    }
                }
            }
        }
        if version >= sent.version {
            return;
        }
        self.stale_answers += 1;
        let Some(list) = self.user_changes.get(&sent.user) else {
            return;
        };
        // Every change the request should have seen and did not.
        for &idx in list.iter().rev() {
            let c = &mut self.changes[idx];
            if c.version > sent.version {
                continue;
            }
            if c.version <= version {
                break;
            }
            c.stale_answers += 1;
            let later = match c.worst {
                None => true,
                Some(w) => sent.at_ns > w.sent_ns,
            };
            if later {
                c.worst = Some(StaleAnswer {
                    sent_ns: sent.at_ns,
                    node: sent.node,
                    served_version: version,
                });
            }
        }
    }
}

/// Counts of what the actors reported through the [`Observer`] hooks.
#[derive(Default)]
pub struct SimObserver {
    pub hits: AtomicU64,
    pub misses: [AtomicU64; 5],
    pub store_queries: AtomicU64,
    pub store_errors: AtomicU64,
    pub invalidations: AtomicU64,
    pub passivated_idle: AtomicU64,
    pub evicted: AtomicU64,
    pub hibernated: AtomicU64,
    pub forwarded: AtomicU64,
    pub forward_failed: AtomicU64,
    pub peak_actors: AtomicU64,
    /// Membership views applied (`Router::apply_view` with a change).
    pub view_changes: AtomicU64,
    /// Whole-cache flushes, by [`FlushReason`] (in `FlushReason::ALL` order).
    pub flushes: [AtomicU64; 4],
}

impl SimObserver {
    pub fn get(a: &AtomicU64) -> u64 {
        a.load(Ordering::Relaxed)
    }

    pub fn misses(&self, reason: MissReason) -> u64 {
        Self::get(&self.misses[miss_index(reason)])
    }

    pub fn flushes(&self, reason: FlushReason) -> u64 {
        Self::get(&self.flushes[flush_index(reason)])
    }
}

fn flush_index(reason: FlushReason) -> usize {
    match reason {
        FlushReason::Rejoined => 0,
        FlushReason::Paused => 1,
        FlushReason::Resync => 2,
        FlushReason::Lease => 3,
    }
}

fn miss_index(reason: MissReason) -> usize {
    match reason {
        MissReason::Cold => 0,
        MissReason::Expired => 1,
        MissReason::Forced => 2,
        MissReason::Invalidated => 3,
        MissReason::Unleased => 4,
    }
}

impl Observer for SimObserver {
    fn hit(&self, _age: Duration) {
        self.hits.fetch_add(1, Ordering::Relaxed);
    }
    fn miss(&self, reason: MissReason) {
        self.misses[miss_index(reason)].fetch_add(1, Ordering::Relaxed);
    }
    fn store_query(&self) {
        self.store_queries.fetch_add(1, Ordering::Relaxed);
    }
    fn store_error(&self) {
        self.store_errors.fetch_add(1, Ordering::Relaxed);
    }
    fn invalidation(&self, _source: InvalidationSource) {
        self.invalidations.fetch_add(1, Ordering::Relaxed);
    }
    fn session_actors(&self, live: usize) {
        self.peak_actors.fetch_max(live as u64, Ordering::Relaxed);
    }
    fn passivated(&self, count: usize, at_cap: bool) {
        let counter = if at_cap {
            &self.evicted
        } else {
            &self.passivated_idle
        };
        counter.fetch_add(count as u64, Ordering::Relaxed);
    }
    fn hibernated(&self, count: usize) {
        self.hibernated.fetch_add(count as u64, Ordering::Relaxed);
    }
    fn forwarded(&self) {
        self.forwarded.fetch_add(1, Ordering::Relaxed);
    }
    fn forward_failed(&self) {
        self.forward_failed.fetch_add(1, Ordering::Relaxed);
    }
    fn view_changed(&self, _change: &ViewChange) {
        self.view_changes.fetch_add(1, Ordering::Relaxed);
    }
    fn flushed(&self, reason: FlushReason) {
        self.flushes[flush_index(reason)].fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles() {
        let mut h = Histogram::default();
        assert_eq!(h.quantile(0.5), 0);
        for _ in 0..98 {
            h.record(0);
        }
        h.record(2_000_000);
        h.record(7_345_678);
        assert_eq!(h.quantile(0.5), 0);
        assert_eq!(h.quantile(0.99), 2_000_000);
        assert_eq!(h.quantile(1.0), 7_345_678);
        let mut h = Histogram::default();
        for v in 1..=10_000u64 {
            h.record(v * 1000);
        }
        let p50 = h.quantile(0.5) as f64;
        assert!((p50 / 5_000_000.0 - 1.0).abs() < 0.016, "{p50}");
        assert_eq!(Histogram::index(u64::MAX), Histogram::BUCKETS - 1);
    }

    fn change(user: i64, version: i64, acked: Option<(u64, u64)>) -> Change {
        Change {
            user,
            at_ns: 0,
            version,
            kind: ChangeKind::Role,
            node: 0,
            stale_answers: 0,
            worst: None,
            acked,
        }
    }

    fn sent(user: i64, seq: u64) -> Sent {
        Sent {
            user,
            node: 1,
            at_ns: seq * 1000,
            version: 0,
            seq,
        }
    }

    #[test]
    fn the_history_checker_fails_an_answer_older_than_an_acknowledged_write() {
        // v2 acknowledged at seq 10; v3 committed, not yet acknowledged.
        let history = [
            change(7, 2, Some((10, 10_000))),
            change(7, 3, None),
            change(8, 5, Some((1, 1_000))),
        ];
        // Sent after the acknowledgement, answered with v1: stale.
        let stale = stale_after_ack(&history, &sent(7, 11), 1).expect("caught");
        assert_eq!((stale.acked_version, stale.served_version), (2, 1));
        assert_eq!(
            (stale.acked_ns, stale.sent_ns, stale.node),
            (10_000, 11_000, 1)
        );
        // Sent before it (concurrent with the write): either is fine.
        assert!(stale_after_ack(&history, &sent(7, 9), 1).is_none());
        // The acknowledged version, or a newer unacknowledged one: fine.
        assert!(stale_after_ack(&history, &sent(7, 11), 2).is_none());
        assert!(stale_after_ack(&history, &sent(7, 11), 3).is_none());
        // Another user's acknowledgement does not apply.
        assert!(stale_after_ack(&history[..2], &sent(8, 20), 1).is_none());
        assert!(stale_after_ack(&history, &sent(8, 20), 4).is_some());

        // Through the recorder, as a run records it.
        let mut rec = Recorder::default();
        let idx = rec.change(change(7, 2, None));
        let v1 = |seq| {
            let mut s = sent(7, seq);
            s.version = 2;
            s
        };
        // A cache hit on version 1.
        let record = std::sync::Arc::new(sessiond_actors::UserState {
            user: sessiond_actors::User {
                id: 7.into(),
                email: "u7@example.test".into(),
                role: "viewer".into(),
                status: sessiond_actors::Status::Active,
            },
            version: 1,
            tokens_valid_after_ms: 0,
            session_epoch: 0,
            revoked_sids: Vec::new(),
            attached: None,
        });
        let served = Ok(Served {
            fetched: sessiond_actors::Fetched::Found(record),
            hit: true,
            age: Duration::ZERO,
            node: None,
            near: false,
            owner_lease: None,
        });
        rec.answer(v1(5), &served, Duration::ZERO);
        assert_eq!(rec.stale_after_ack, 0, "not acknowledged yet");
        rec.acked(idx, 6, 6_000);
        rec.answer(v1(5), &served, Duration::ZERO);
        assert_eq!(rec.stale_after_ack, 0, "sent before the acknowledgement");
        rec.answer(v1(7), &served, Duration::ZERO);
        assert_eq!(rec.stale_after_ack, 1);
        assert_eq!(rec.stale_after_ack_examples[0].sent_ns, 7_000);
        assert_eq!(rec.ack_latencies, vec![6_000]);
    }

    #[test]
    fn quantiles_of_sorted_values() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(quantile_sorted(&v, 0.5), 50);
        assert_eq!(quantile_sorted(&v, 0.99), 99);
        assert_eq!(quantile_sorted(&v, 1.0), 100);
        assert_eq!(quantile_sorted(&[], 0.5), 0);
    }
}
