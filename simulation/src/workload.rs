//! Seeded workloads: who asks, when, and what admins change meanwhile.
//!
//! Four independent Poisson streams, each with its own generator, merged in
//! time order: session lookups (popularity-weighted users, optional daily
//! ramp), role changes and status changes (uniformly chosen users), and
//! admin forced refreshes (popularity-weighted). Events are generated lazily,
//! so a day of traffic costs no memory.

use crate::rng::{stream, Rng};

const DAY_SECS: f64 = 86_400.0;

/// What happens at an instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A session lookup for `user`.
    Request,
    /// An admin changes the user's role.
    RoleChange,
    /// An admin deactivates the user (or reactivates a deactivated one).
    StatusChange,
    /// An admin forces a refresh of the user's cached record.
    ForceRefresh,
}

/// One workload event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// Nanoseconds since the start of the run.
    pub at_ns: u64,
    pub kind: EventKind,
    pub user: i64,
    /// Chooses the node the event enters at, among the live ones.
    pub pick: u32,
}

/// The shape of the traffic.
#[derive(Clone, Debug)]
pub struct WorkloadSpec {
    pub seed: u64,
    pub users: u64,
    /// Mean lookups per second over a whole day.
    pub rps: f64,
    /// Zipf exponent; 0 is uniform.
    pub zipf: f64,
    /// Amplitude of the daily ramp, in [0, 1).
    pub diurnal: f64,
    /// Per second, all users together.
    pub role_change_rate: f64,
    pub status_change_rate: f64,
    pub force_refresh_rate: f64,
    /// Events at or after this instant are not generated.
    pub duration_ns: u64,
}

impl WorkloadSpec {
    /// The request rate multiplier at `t` seconds (mean 1 over a day).
    pub fn ramp(&self, t: f64) -> f64 {
        1.0 - self.diurnal * (std::f64::consts::TAU * t / DAY_SECS).cos()
    }
}

/// User popularity: rank k (user id k) has weight k^-s.
#[derive(Clone, Debug)]
pub struct Popularity {
    users: u64,
    /// Cumulative probabilities; `None` when uniform.
    cdf: Option<Vec<f64>>,
}

impl Popularity {
    pub fn new(users: u64, zipf: f64) -> Popularity {
        if zipf == 0.0 {
            return Popularity { users, cdf: None };
        }
        let mut cdf = Vec::with_capacity(users as usize);
        let mut total = 0.0;
        for k in 1..=users {
            total += (k as f64).powf(-zipf);
            cdf.push(total);
        }
        for c in &mut cdf {
            *c /= total;
        }
        Popularity {
            users,
            cdf: Some(cdf),
        }
    }

    pub fn sample(&self, rng: &mut Rng) -> i64 {
        match &self.cdf {
            None => rng.below(self.users) as i64 + 1,
            Some(cdf) => {
                let u = rng.f64();
                let i = cdf.partition_point(|c| *c <= u).min(cdf.len() - 1);
                i as i64 + 1
            }
        }
    }

    /// The probability that a request is for user `id` (1-based).
    pub fn probability(&self, id: u64) -> f64 {
        match &self.cdf {
            None => 1.0 / self.users as f64,
            Some(cdf) => {
                let i = (id - 1) as usize;
                cdf[i] - if i == 0 { 0.0 } else { cdf[i - 1] }
            }
        }
    }
}

struct Stream {
    kind: EventKind,
    rng: Rng,
    /// Peak rate per second (the thinning envelope for a ramped stream).
    rate: f64,
    ramped: bool,
    /// Seconds since start of the pending event; infinite when none.
    t: f64,
}

/// The merged event streams of one run. Every run of a scenario, whatever
/// its policy, replays exactly the same events.
pub struct Workload {
    spec: WorkloadSpec,
    popularity: std::sync::Arc<Popularity>,
    streams: Vec<Stream>,
}

impl Workload {
    pub fn new(spec: WorkloadSpec, popularity: std::sync::Arc<Popularity>) -> Workload {
        let peak = 1.0 + spec.diurnal;
        let defs = [
            (EventKind::Request, stream::REQUESTS, spec.rps * peak, true),
            (
                EventKind::RoleChange,
                stream::ROLE_CHANGES,
                spec.role_change_rate,
                false,
            ),
            (
                EventKind::StatusChange,
                stream::STATUS_CHANGES,
                spec.status_change_rate,
                false,
            ),
            (
                EventKind::ForceRefresh,
                stream::FORCE_REFRESHES,
                spec.force_refresh_rate,
                false,
            ),
        ];
        let mut w = Workload {
            streams: defs
                .into_iter()
                .map(|(kind, tag, rate, ramped)| Stream {
                    kind,
                    rng: Rng::stream(spec.seed, tag),
                    rate,
                    ramped: ramped && spec.diurnal > 0.0,
                    t: 0.0,
                })
                .collect(),
            spec,
            popularity,
        };
        for i in 0..w.streams.len() {
            w.advance(i);
        }
        w
    }

    /// Moves stream `i` to its next event time.
    fn advance(&mut self, i: usize) {
        let peak = 1.0 + self.spec.diurnal;
        let s = &mut self.streams[i];
        if s.rate <= 0.0 {
            s.t = f64::INFINITY;
            return;
        }
        loop {
            s.t += s.rng.exp(s.rate);
            // Thinning: keep a candidate with probability ramp(t) / peak.
            if !s.ramped || s.rng.f64() * peak < self.spec.ramp(s.t) {
                break;
            }
        }
    }
}

impl Iterator for Workload {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        let (i, t) = self.streams.iter().enumerate().map(|(i, s)| (i, s.t)).fold(
            (0, f64::INFINITY),
            |best, cur| {
                if cur.1 < best.1 {
                    cur
                } else {
                    best
                }
            },
        );
        let at_ns = t * 1e9;
        if !at_ns.is_finite() || at_ns >= self.spec.duration_ns as f64 {
            return None;
        }
        let s = &mut self.streams[i];
        let kind = s.kind;
        let user = match kind {
            EventKind::Request | EventKind::ForceRefresh => self.popularity.sample(&mut s.rng),
            EventKind::RoleChange | EventKind::StatusChange => {
                s.rng.below(self.spec.users) as i64 + 1
            }
        };
        let pick = (s.rng.next_u64() >> 32) as u32;
        self.advance(i);
        Some(Event {
            at_ns: at_ns as u64,
            kind,
            user,
            pick,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn spec(zipf: f64, diurnal: f64) -> WorkloadSpec {
        WorkloadSpec {
            seed: 3,
            users: 100,
            rps: 50.0,
            zipf,
            diurnal,
            role_change_rate: 0.5,
            status_change_rate: 0.1,
            force_refresh_rate: 0.0,
            duration_ns: 86_400 * 1_000_000_000,
        }
    }

    fn events(spec: WorkloadSpec) -> Vec<Event> {
        let pop = Arc::new(Popularity::new(spec.users, spec.zipf));
        Workload::new(spec, pop).collect()
    }

    #[test]
    fn rates_order_and_determinism() {
        let a = events(spec(0.0, 0.0));
        assert_eq!(a, events(spec(0.0, 0.0)));
        assert!(a.windows(2).all(|w| w[0].at_ns <= w[1].at_ns));
        let count = |k| a.iter().filter(|e| e.kind == k).count() as f64;
        let day = 86_400.0;
        assert!((count(EventKind::Request) / day - 50.0).abs() < 0.5);
        assert!((count(EventKind::RoleChange) / day - 0.5).abs() < 0.02);
        assert_eq!(count(EventKind::ForceRefresh), 0.0);
    }

    #[test]
    fn zipf_and_ramp_shape_the_traffic() {
        let e = events(spec(1.0, 0.0));
        let top = e
            .iter()
            .filter(|e| e.kind == EventKind::Request && e.user == 1)
            .count();
        let total = e.iter().filter(|e| e.kind == EventKind::Request).count();
        let p1 = Popularity::new(100, 1.0).probability(1);
        assert!(((top as f64 / total as f64) - p1).abs() < 0.01);

        let e = events(spec(0.0, 0.8));
        let hour = |h: u64| {
            e.iter()
                .filter(|e| e.kind == EventKind::Request && e.at_ns / 3_600_000_000_000 == h)
                .count() as f64
                / 3600.0
        };
        // Lowest at midnight (rate ≈ 50·0.2), highest at noon (≈ 50·1.8).
        assert!(hour(0) < 15.0, "{}", hour(0));
        assert!(hour(11) > 80.0, "{}", hour(11));
    }
}
