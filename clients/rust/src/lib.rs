//! # sessiond-client
//!
//! Use sessiond from a Rust service: a small HTTP client of its API and a
//! warp filter that resolves each incoming request's bearer token against
//! sessiond and hands the handler the [`Session`].
//!
//! ```no_run
//! use sessiond_client::{self as client, SessiondClient};
//! use warp::Filter;
//!
//! # async fn run() -> Result<(), client::SessiondError> {
//! let sessiond = SessiondClient::new("http://127.0.0.1:8080")?;
//! let me = warp::path!("me")
//!     .and(client::session_filter(sessiond.clone()))
//!     .map(|s: client::Session| warp::reply::json(&s.user));
//! let admin = warp::path!("admin")
//!     .and(client::require_role(sessiond, &["admin"]))
//!     .map(|s: client::Session| format!("hello, admin {}", s.user.email));
//! let routes = me.or(admin).recover(client::recover);
//! warp::serve(routes).run(([127, 0, 0, 1], 3001)).await;
//! # Ok(())
//! # }
//! ```
//!
//! A request whose token does not resolve is rejected with a
//! [`SessiondError`] carrying sessiond's own status and code
//! (`invalid_token` 401, `session_revoked` 401, ...); [`recover`] renders it
//! as sessiond's JSON error `{"error": code, "message": text}`. When sessiond
//! cannot be reached the rejection is `unavailable` 503: the request is
//! denied, never let through.
//!
//! Nothing here logs a token or a password.
//!
//! ## Layout
//!
//! - [`SessiondClient`] (`client.rs`): the calls, their timeout and retry
//!   rules, and how an answer becomes a value or a [`SessiondError`].
//! - `model.rs`: what sessiond answers ([`Session`], [`User`], [`Login`]).
//! - `error.rs`: [`SessiondError`], sessiond's status, code and message.
//! - `filter.rs` (feature `warp`, on by default): [`session_filter`],
//!   [`require_role`], [`recover`] and [`recover_all`]. Without it the
//!   crate needs neither warp nor a server framework, only hyper's client.
//! - `connect.rs`: plain TCP, and (feature `tls`, on by default) HTTPS
//!   with rustls, trusting the root certificates given to
//!   `SessiondClient::with_tls` (sessiond served with `--tls-cert`).
//!
//! This crate shares no code with the server: it speaks the HTTP API that
//! `GET /openapi.json` describes, so an app that uses it compiles no
//! database driver and no actor runtime (and no TLS stack with
//! `default-features = false`).

mod client;
mod connect;
mod error;
#[cfg(feature = "warp")]
mod filter;
mod model;

pub use client::SessiondClient;
pub use error::SessiondError;
#[cfg(feature = "warp")]
pub use filter::{recover, recover_all, require_role, session_filter};
pub use model::{CacheInfo, Login, Session, User, UserId, UserStatus};
