//! End-to-end tests of sessiond: the real application (or the real binary)
//! on port 0, a SQLite file per test, requests over real sockets.

mod adopt;
mod answers;
mod appkeys;
mod audit;
mod bad_input;
mod better_auth;
mod cli;
mod cluster;
mod deploy;
mod epochs;
mod faults;
mod forward_auth;
mod fuzz;
mod hangups;
mod hardening;
mod helpers;
mod house;
mod https;
mod image;
mod keys;
mod last_admin;
mod limiter_race;
mod logs;
mod metrics_lint;
mod openapi;
mod ops_listener;
mod passwords;
mod pki;
mod postgres;
mod request_ids;
mod revocations;
mod secrets;
mod sessions;
#[cfg(feature = "simulate")]
mod simulate;
mod slow_clients;
mod trusted_proxies;
mod versions;
