//! # sessiond-testkit
//!
//! What sessiond's end-to-end tests, benchmarks and examples share, so that
//! each exists once (a dev-dependency only; never published):
//!
//! - [`http`]: one raw HTTP/1.1 client: a request written byte for byte, a
//!   call on a connection of its own, a keep-alive connection for load.
//! - [`postgres_db`]: a throwaway PostgreSQL database per test or run.
//! - [`netns`]: real network partitions (namespaces, veth links cut without
//!   a reset), for the fault tests and the history checker.
//! - [`relay`]: a TCP relay, through which a node reaches the database on a
//!   link that can be cut.
//! - [`process`]: `sessiond serve` processes started, paused, killed and
//!   restarted, and what they say about themselves.

pub mod http;
pub mod netns;
pub mod postgres_db;
pub mod process;
pub mod relay;
