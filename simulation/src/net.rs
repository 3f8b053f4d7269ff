//! The simulated network between nodes: the actors crate's in-memory
//! network ([`MemoryNet`]: partitions, crashed nodes, lost messages never
//! answered), with each message's delay drawn from the run's latency model
//! and its loss from the run's loss rate, both from the seeded `LINK`
//! stream, so that a seed replays the same network.

use std::sync::{Arc, Mutex};

use sessiond_actors::memory::{MemoryNet, Trip};

use crate::args::LatencyModel;
use crate::lock;
use crate::rng::Rng;

/// The network of a run with the named nodes.
pub fn network(names: Vec<Arc<str>>, delay: LatencyModel, loss: f64, rng: Rng) -> Arc<MemoryNet> {
    let rng = Mutex::new(rng);
    MemoryNet::with_trips(names, move || {
        let mut rng = lock(&rng);
        let delay = delay.sample(&mut rng);
        Trip {
            delay,
            lost: rng.chance(loss),
        }
    })
}
