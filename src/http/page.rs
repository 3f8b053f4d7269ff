//! `GET /`: the live dashboard, one self-contained page embedded in the
//! binary (no CDN, no external asset). Its script polls `/api/perf` every
//! two seconds and draws the last five minutes.

/// The page, as served.
pub(super) const DASHBOARD: &str = include_str!("dashboard.html");
