//! # sessiond-sim
//!
//! A deterministic, virtual-time simulation of sessiond's cache: it will run
//! the real `sessiond-actors` code (router, supervisor, session actors) on a
//! current-thread tokio runtime with paused time, against the in-memory
//! store of `sessiond_actors::memory`, to predict hit rate, database load and
//! stale-role windows for a traffic shape and policy.
//!
//! ## Layout
//!
//! Nothing yet beyond this crate root: the harness, workloads, policies and
//! reports arrive with the simulation work.
