//! Metric names as `/metrics` shows them, what each one means, and the label values
//! that may appear. The names are the contract with dashboards and alert
//! rules: a rename breaks them.

use metrics::Unit;

pub const CACHE_HITS: &str = "sessiond_cache_hits_total";
pub const CACHE_MISSES: &str = "sessiond_cache_misses_total";
pub const DB_QUERIES: &str = "sessiond_db_queries_total";
pub const DB_ERRORS: &str = "sessiond_db_errors_total";
pub const RESOLVE_SECONDS: &str = "sessiond_resolve_seconds";
pub const HTTP_REQUESTS: &str = "sessiond_http_requests_total";
pub const HTTP_SECONDS: &str = "sessiond_http_request_seconds";
pub const SESSION_ACTORS: &str = "sessiond_session_actors";
pub const INVALIDATIONS: &str = "sessiond_invalidations_total";
pub const PASSIVATIONS: &str = "sessiond_passivations_total";
pub const HIBERNATIONS: &str = "sessiond_hibernations_total";
pub const FORWARDED: &str = "sessiond_forwarded_total";
pub const FORWARD_FAILED: &str = "sessiond_forward_failures_total";
pub const FORWARD_SECONDS: &str = "sessiond_forward_seconds";
pub const NOTIFY_RESYNCS: &str = "sessiond_notify_resyncs_total";
pub const NOTIFY_LISTENING: &str = "sessiond_notify_listening";
pub const CLUSTER_MEMBERS: &str = "sessiond_cluster_members";
pub const STALE_SERVED: &str = "sessiond_stale_served_seconds";
pub const LEASE_VALID: &str = "sessiond_lease_valid";
pub const LEASE_LOST: &str = "sessiond_lease_lost_total";
pub const WRITE_CONFIRM_SECONDS: &str = "sessiond_write_confirm_seconds";
pub const FLUSHES: &str = "sessiond_cache_flushes_total";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One name's `# HELP` text and unit. The Prometheus text format has no
/// unit line; the unit is the recorder's metadata and the name's suffix
/// already says it (`_seconds`, `_total`).
pub struct Description {
    pub name: &'static str,
    pub kind: Kind,
    pub unit: Unit,
    pub help: &'static str,
}

const fn describe(name: &'static str, kind: Kind, unit: Unit, help: &'static str) -> Description {
    Description {
        name,
        kind,
        unit,
        help,
    }
}

/// Every name the service exports, described; `promtool check metrics`
/// rejects a series without HELP text.
pub const DESCRIPTIONS: [Description; 22] = [
    describe(
        CACHE_HITS,
        Kind::Counter,
        Unit::Count,
        "Session lookups answered from the cached record, without the database.",
    ),
    describe(
        CACHE_MISSES,
        Kind::Counter,
        Unit::Count,
        "Session lookups that waited for the database, by reason: cold (nothing cached), \
         expired (older than the TTL), forced (refresh asked), invalidated, or unleased \
         (no freshness lease: read through).",
    ),
    describe(
        DB_QUERIES,
        Kind::Counter,
        Unit::Count,
        "User-record fetches sent to the database by the cache.",
    ),
    describe(
        DB_ERRORS,
        Kind::Counter,
        Unit::Count,
        "User-record fetches from the database that failed.",
    ),
    describe(
        RESOLVE_SECONDS,
        Kind::Histogram,
        Unit::Seconds,
        "Time to resolve a token to the user's current record, by outcome (hit, miss, error).",
    ),
    describe(
        HTTP_REQUESTS,
        Kind::Counter,
        Unit::Count,
        "HTTP requests answered, by route template and status code.",
    ),
    describe(
        HTTP_SECONDS,
        Kind::Histogram,
        Unit::Seconds,
        "Time from receiving an HTTP request to answering it, by route template.",
    ),
    describe(
        SESSION_ACTORS,
        Kind::Gauge,
        Unit::Count,
        "Live session actors on this node (one per recently seen user).",
    ),
    describe(
        INVALIDATIONS,
        Kind::Counter,
        Unit::Count,
        "Invalidations applied on this node, by source: api (a write through the API), \
         notify (a database notification), broadcast (another node) or log (the \
         database's change log, read at each lease renewal).",
    ),
    describe(
        PASSIVATIONS,
        Kind::Counter,
        Unit::Count,
        "Session actors stopped, by cause: idle (past the idle timeout) or cap \
         (evicted to stay under the session cap).",
    ),
    describe(
        HIBERNATIONS,
        Kind::Counter,
        Unit::Count,
        "Quiet session actors stopped with their record kept as a compact snapshot.",
    ),
    describe(
        FORWARDED,
        Kind::Counter,
        Unit::Count,
        "Session lookups sent to the node that owns the user.",
    ),
    describe(
        FORWARD_FAILED,
        Kind::Counter,
        Unit::Count,
        "Forwarded lookups that failed and were served on this node instead.",
    ),
    describe(
        FORWARD_SECONDS,
        Kind::Histogram,
        Unit::Seconds,
        "Time a lookup forwarded to its owner took, answered or not.",
    ),
    describe(
        NOTIFY_RESYNCS,
        Kind::Counter,
        Unit::Count,
        "Reconnections of the PostgreSQL notification listener, each of which marks \
         the whole cache stale.",
    ),
    describe(
        NOTIFY_LISTENING,
        Kind::Gauge,
        Unit::Count,
        "1 while the PostgreSQL notification listener is connected, else 0.",
    ),
    describe(
        CLUSTER_MEMBERS,
        Kind::Gauge,
        Unit::Count,
        "Live members in this node's view of the cluster, itself included.",
    ),
    describe(
        STALE_SERVED,
        Kind::Histogram,
        Unit::Seconds,
        "Age of the cached record when a lookup was served from the cache.",
    ),
    describe(
        LEASE_VALID,
        Kind::Gauge,
        Unit::Count,
        "1 while this node holds its freshness lease and may answer from its cache, else 0.",
    ),
    describe(
        LEASE_LOST,
        Kind::Counter,
        Unit::Count,
        "Freshness leases that ran out before they could be renewed (database unreachable, \
         process paused).",
    ),
    describe(
        WRITE_CONFIRM_SECONDS,
        Kind::Histogram,
        Unit::Seconds,
        "Time an admin write waited, after its commit, for every other node to confirm the \
         invalidation or for its lease to end.",
    ),
    describe(
        FLUSHES,
        Kind::Counter,
        Unit::Count,
        "Whole-cache flushes on this node, by reason: rejoined, paused, resync or lease.",
    ),
];

/// Every route label; anything else is `other`. A fixed set keeps the
/// number of series bounded whatever paths clients send.
pub const ROUTES: [&str; 17] = [
    "/api/auth/login",
    "/api/auth/session",
    "/api/auth/refresh-session",
    "/api/auth/logout",
    "/api/admin/users",
    "/api/admin/users/{id}",
    "/api/admin/users/{id}/role",
    "/api/admin/users/{id}/deactivate",
    "/api/admin/users/{id}/activate",
    "/api/admin/users/{id}/invalidate",
    "/api/admin/users/{id}/revoke-sessions",
    "/api/perf",
    "/metrics",
    "/healthz",
    "/readyz",
    "/",
    "other",
];

/// The status labels with series of their own; others count as `other`.
pub const STATUSES: [u16; 13] = [
    200, 201, 202, 204, 400, 401, 403, 404, 405, 413, 429, 500, 503,
];

/// The route label of a request path.
pub fn route_label(path: &str) -> &'static str {
    ROUTES[route_index(path)]
}

/// The index in [`ROUTES`] of a request path's label. Called for every
/// request: the path's segments are matched in place, without allocating.
pub fn route_index(path: &str) -> usize {
    const OTHER: usize = ROUTES.len() - 1;
    let mut parts = [""; 5];
    let mut n = 0;
    for part in path.trim_end_matches('/').split('/').skip(1) {
        match parts.get_mut(n) {
            Some(p) => *p = part,
            // Longer than any route.
            None => return OTHER,
        }
        n += 1;
    }
    match &parts[..n] {
        [] | [""] => 15,
        ["api", "auth", "login"] => 0,
        ["api", "auth", "session"] => 1,
        ["api", "auth", "refresh-session"] => 2,
        ["api", "auth", "logout"] => 3,
        ["api", "admin", "users"] => 4,
        ["api", "admin", "users", _] => 5,
        ["api", "admin", "users", _, "role"] => 6,
        ["api", "admin", "users", _, "deactivate"] => 7,
        ["api", "admin", "users", _, "activate"] => 8,
        ["api", "admin", "users", _, "invalidate"] => 9,
        ["api", "admin", "users", _, "revoke-sessions"] => 10,
        ["api", "perf"] => 11,
        ["metrics"] => 12,
        ["healthz"] => 13,
        ["readyz"] => 14,
        _ => OTHER,
    }
}

/// The index in [`STATUSES`] of a status with a series of its own.
pub fn status_index(status: u16) -> Option<usize> {
    STATUSES.iter().position(|&s| s == status)
}

/// The status label of a status code.
pub fn status_str(status: u16) -> &'static str {
    match status {
        200 => "200",
        201 => "201",
        202 => "202",
        204 => "204",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        413 => "413",
        429 => "429",
        500 => "500",
        503 => "503",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_labels_are_templates() {
        assert_eq!(
            route_label("/api/admin/users/17/role"),
            "/api/admin/users/{id}/role"
        );
        assert_eq!(route_label("/api/admin/users/abc"), "/api/admin/users/{id}");
        assert_eq!(route_label("/"), "/");
        assert_eq!(route_label("/nope/x"), "other");
        assert_eq!(route_label(""), "/");
        assert_eq!(route_label("/healthz/"), "/healthz");
        assert_eq!(route_label("/api/auth/session"), "/api/auth/session");
        assert_eq!(route_label("/api/admin/users/1/role/x"), "other");
        assert_eq!(route_label("/api/admin/users/1/role/x/y/z"), "other");
        for (i, route) in ROUTES.iter().enumerate() {
            let path = route.replace("{id}", "u1");
            if *route != "other" {
                assert_eq!(route_index(&path), i, "{route}");
            }
        }
        for (i, status) in STATUSES.iter().enumerate() {
            assert_eq!(status_index(*status), Some(i));
        }
        assert_eq!(status_index(418), None);
    }
}
