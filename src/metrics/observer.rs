//! The service's `Observer`: the actors crate reports cache events here,
//! and each one is counted for Prometheus and for `/api/perf`.

use std::time::Duration;

use sessiond_actors::{InvalidationSource, MissReason, Observer};

use super::Telemetry;

impl Observer for Telemetry {
    fn hit(&self, age: Duration) {
        self.perf.hit(age);
        self.h.hits.increment(1);
        self.h.stale_served.record(age.as_secs_f64());
    }

    fn miss(&self, reason: MissReason) {
        self.perf.miss(reason == MissReason::Cold);
        let i = MissReason::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(0);
        self.h.misses[i].increment(1);
    }

    fn store_query(&self) {
        self.perf.db_query();
        self.h.db_queries.increment(1);
    }

    fn store_error(&self) {
        self.h.db_errors.increment(1);
    }

    fn invalidation(&self, source: InvalidationSource) {
        self.perf.invalidation();
        let i = InvalidationSource::ALL
            .iter()
            .position(|s| *s == source)
            .unwrap_or(0);
        self.h.invalidations[i].increment(1);
    }

    fn session_actors(&self, live: usize) {
        self.h.session_actors.set(live as f64);
    }

    fn passivated(&self, count: usize, at_cap: bool) {
        self.h.passivations[usize::from(at_cap)].increment(count as u64);
        self.perf.passivated(count, at_cap);
    }

    fn hibernated(&self, count: usize) {
        self.h.hibernations.increment(count as u64);
    }

    fn forwarded(&self) {
        self.h.forwarded.increment(1);
    }

    fn forward_failed(&self) {
        self.h.forward_failed.increment(1);
    }
}
