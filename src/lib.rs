//! # sessiond
//!
//! Answers, for every request of a web application, *who is this token's
//! user and what may they do right now*: it verifies the bearer JWT and
//! answers the user's current record from a per-user actor cache that
//! writes invalidate at once.
//!
//! ## Layout
//!
//! - [`config`]: the command line and the [`config::Settings`] an app is built from.
//! - [`app`]: [`app::Application`]: builds everything from settings, binds,
//!   runs until a shutdown signal. `main` is a thin shell around it.
//! - [`http`]: the warp front: routes, handlers, JSON models, errors.
//! - [`auth`]: HS256 tokens with a pinned algorithm; argon2id passwords.
//! - [`store`]: the database (SQLite or PostgreSQL) behind one `Db` type; it is also the
//!   actors' `UserStore`.
//! - [`limiter`]: login brute-force protection (per account, per address).
//! - [`notify`]: PostgreSQL LISTEN/NOTIFY: changes made anywhere reach the cache.
//! - [`perf`]: sliding windows (1 min, 5 min) and the tuning advice of `/api/perf`.
//! - [`telemetry`]: metric names, the Prometheus recorder, `/api/perf` counters.
//! - [`cluster`]: ractor_cluster wiring: the peer actor, heartbeat,
//!   membership, reconnection, and the `Link` the router forwards through.
//! - [`clock`]: the one wall clock (token times), movable in tests.
//! - [`duration`]: human-readable durations for flags.
//!
//! The cache itself (session actors, supervisor, router) is the
//! `sessiond-actors` crate.

pub mod app;
pub mod auth;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod duration;
pub mod http;
pub mod limiter;
pub mod notify;
pub mod perf;
pub mod store;
pub mod telemetry;
