//! Human-readable durations for flags and variables: `300ms`, `5s`, `5m`,
//! `30d`, `1h 30m`, and a bare `0`. The parser is the actors crate's, shared
//! with the simulation's command line; messages show durations this way.

use std::time::Duration;

pub use sessiond_actors::duration::parse;

/// The compact form used in messages (`5m`, `300ms`).
pub fn show(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}
