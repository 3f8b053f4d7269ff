//! Metric names (DESIGN §8) and the label values that may appear. The names are the contract with dashboards and alert
//! rules: a rename breaks them.

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
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    match parts.as_slice() {
        [] | [""] => "/",
        ["api", "auth", "login"] => ROUTES[0],
        ["api", "auth", "session"] => ROUTES[1],
        ["api", "auth", "refresh-session"] => ROUTES[2],
        ["api", "auth", "logout"] => ROUTES[3],
        ["api", "admin", "users"] => ROUTES[4],
        ["api", "admin", "users", _] => ROUTES[5],
        ["api", "admin", "users", _, "role"] => ROUTES[6],
        ["api", "admin", "users", _, "deactivate"] => ROUTES[7],
        ["api", "admin", "users", _, "activate"] => ROUTES[8],
        ["api", "admin", "users", _, "invalidate"] => ROUTES[9],
        ["api", "admin", "users", _, "revoke-sessions"] => ROUTES[10],
        ["api", "perf"] => ROUTES[11],
        ["metrics"] => ROUTES[12],
        ["healthz"] => ROUTES[13],
        ["readyz"] => ROUTES[14],
        _ => "other",
    }
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
    }
}
