//! # sessiond
//!
//! Answers, for every request of a web application, *who is this token's
//! user and what may they do right now*: it verifies the bearer JWT and
//! answers the user's current record from a per-user actor cache that
//! writes invalidate at once.
//!
//! ## Layout
//!
//! - [`config`]: the command line, its defaults (each written once), the checks a
//!   parser cannot make, and the [`config::Settings`] an app is built from.
//! - [`app`]: [`app::Application`]: builds everything from settings, binds,
//!   runs until a shutdown signal, then leaves gracefully (unready, lease
//!   released, peers told, requests drained). `main` is a thin shell around it.
//!   The first administrator, `sessiond user add` and leaving have files of their own.
//! - [`http`]: the warp front: routes, thin handlers (`sessions`, `admin`,
//!   the ops `handlers`), JSON models, errors, and the `Ctx` they share.
//! - [`usecases`]: what the service does, between `http` (and the CLI) and
//!   the store: `authenticate` (token → revocation rule → record), `login`,
//!   `users` (each admin write as write → invalidate → audit).
//! - [`auth`]: HS256 tokens with a pinned algorithm and key ids (the tokens, the key
//!   set), and argon2id passwords with their thread pool, one file each.
//! - [`keys`]: the signing keys a node starts with; `sessiond keys list|rotate|retire`.
//! - [`appkeys`]: `sessiond appkey create|list|rotate|revoke`: app credentials.
//! - [`store`]: the database (SQLite or PostgreSQL) behind one `Db` type; it is also the
//!   actors' `UserStore`. Queries written once (`store/sql.rs`); per backend
//!   only connect options, dialect and migrations.
//! - [`source`]: where users live: sessiond's own table, or the app's own
//!   user table (`--config`'s `[source]`), its start-up checks, and
//!   `sessiond source install|uninstall` (the change-capture triggers).
//! - [`limiter`]: login brute-force protection (per account, per address).
//! - [`notify`]: PostgreSQL LISTEN/NOTIFY: changes made anywhere reach the cache.
//! - [`metrics`]: metric names with their HELP text, the Prometheus recorder,
//!   and the actors' `Observer`: every measured event enters here and feeds
//!   both Prometheus and [`perf`].
//! - [`perf`]: `/api/perf`: counters, sliding windows (1 min, 5 min), the
//!   tuning advice and the snapshot the dashboard draws; it knows nothing of
//!   Prometheus.
//! - [`cluster`]: ractor_cluster wiring, one file per concern: `tls`
//!   (mutual TLS from PEM files), `wire` (the one remotable message and its
//!   JSON bodies), `peer` (the actor answering other nodes), `link` (the
//!   `Link` the router forwards through), `membership` (heartbeat, failure
//!   detection, pause check; the policy itself is the actors crate's
//!   `Router::apply_view` / `Router::flush`), `dial` (reconnection,
//!   resolving `--join` names every round), `leave` (graceful leave:
//!   peers that said they are leaving).
//! - [`logging`]: `--log-format text|json`: the subscriber, and the JSON
//!   lines that carry every span field (the request id) at the top level.
//! - [`clock`]: the one wall clock (token times), movable in tests.
//! - [`duration`]: human-readable durations for flags.
//! - [`ids`]: user ids in JSON (a number for an integer id, a string for
//!   any other), for the API, the cluster wire and the audit lines.
//!
//! The cache itself (session actors, supervisor, router) is the
//! `sessiond-actors` crate.

pub mod app;
pub mod appkeys;
pub mod auth;
pub mod betterauth;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod duration;
pub mod http;
pub mod ids;
pub mod keys;
pub mod limiter;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod perf;
pub mod source;
pub mod store;
pub mod usecases;
