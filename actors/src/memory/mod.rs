//! In-memory stand-ins for what production reaches over the wire, shipped
//! with the crate so that its tests, the simulation and anyone embedding
//! the routers share one of each instead of writing their own: a user
//! table ([`MemoryStore`]) and a network between routers of one process
//! ([`MemoryNet`]).

mod net;
mod store;

pub use net::{MemoryNet, NetStats, Trip};
pub use store::MemoryStore;
