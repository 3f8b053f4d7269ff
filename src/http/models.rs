//! The JSON shapes of the API (DESIGN §7) and the validation of what
//! callers send.

use serde::{Deserialize, Serialize};

use sessiond_actors::User;

use super::error::ApiError;

#[derive(Serialize)]
pub struct UserJson<'a> {
    pub id: i64,
    pub email: &'a str,
    pub role: &'a str,
    pub status: &'static str,
}

impl<'a> From<&'a User> for UserJson<'a> {
    fn from(u: &'a User) -> Self {
        UserJson {
            id: u.id,
            email: &u.email,
            role: &u.role,
            status: u.status.as_str(),
        }
    }
}

#[derive(Serialize)]
pub struct CacheJson<'a> {
    pub hit: bool,
    pub age_ms: u64,
    pub ttl_ms: u64,
    pub version: i64,
    pub node: &'a str,
}

#[derive(Serialize)]
pub struct SessionJson<'a> {
    pub user: UserJson<'a>,
    pub expires: String,
    pub cache: CacheJson<'a>,
}

#[derive(Serialize)]
pub struct LoginJson<'a> {
    pub token: String,
    pub token_type: &'static str,
    pub expires_at: String,
    pub user: UserJson<'a>,
}

#[derive(Deserialize)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

#[derive(Deserialize, Default)]
pub struct RefreshRequest {
    #[serde(default)]
    pub force: bool,
}

#[derive(Deserialize)]
pub struct CreateUserRequest {
    pub email: String,
    pub password: String,
    #[serde(default)]
    pub role: Option<String>,
}

#[derive(Deserialize)]
pub struct RoleRequest {
    pub role: String,
}

#[derive(Serialize)]
pub struct Quantiles {
    pub p50: f64,
    pub p99: f64,
}

#[derive(Serialize)]
pub struct LatencyJson {
    pub hit: Quantiles,
    pub miss: Quantiles,
}

#[derive(Serialize)]
pub struct PerfJson {
    pub uptime_s: u64,
    pub requests: u64,
    pub hits: u64,
    pub misses: u64,
    pub hit_rate: f64,
    pub db_queries: u64,
    pub latency_ms: LatencyJson,
    pub session_actors: u64,
    pub invalidations: u64,
    pub node: String,
    pub members: Vec<String>,
    pub recommendations: Vec<crate::perf::Recommendation>,
    /// Store queries per second since start.
    pub db_queries_per_s: f64,
    /// Sessions kept as compact snapshots instead of live actors.
    pub hibernated_sessions: u64,
    pub max_sessions: u64,
    pub cache_ttl_ms: u64,
    /// The last minute and the last five minutes.
    pub windows: PerfWindows,
    /// 10-second slots of the last five minutes, oldest first.
    pub series: Vec<crate::perf::SeriesPoint>,
}

#[derive(Serialize)]
pub struct PerfWindows {
    #[serde(rename = "1m")]
    pub one_minute: crate::perf::WindowStats,
    #[serde(rename = "5m")]
    pub five_minutes: crate::perf::WindowStats,
}

pub const MAX_PASSWORD: usize = 1024;
pub const MIN_PASSWORD: usize = 8;

/// Parses a JSON body into `T`, with a message that says what is wrong.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest("a JSON body is required".into()));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
}

/// A user id from a path segment.
pub fn parse_user_id(segment: &str) -> Result<i64, ApiError> {
    match segment.parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(ApiError::BadRequest(
            "the user id must be a positive integer".into(),
        )),
    }
}

/// Roles are 1–64 characters of `[a-z0-9_-]`.
pub fn validate_role(role: &str) -> Result<(), ApiError> {
    let ok = (1..=64).contains(&role.len())
        && role
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::BadRequest(
            "a role is 1 to 64 characters of a-z, 0-9, '_' and '-'".into(),
        ))
    }
}

/// Emails are compared case-insensitively: stored trimmed and lower-cased.
pub fn normalize_email(email: &str) -> Result<String, ApiError> {
    let e = email.trim().to_lowercase();
    let valid = (3..=254).contains(&e.len())
        && e.split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
        && !e.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid {
        Ok(e)
    } else {
        Err(ApiError::BadRequest(
            "the email address is not valid".into(),
        ))
    }
}

pub fn validate_new_password(password: &str) -> Result<(), ApiError> {
    let n = password.chars().count();
    if (MIN_PASSWORD..=MAX_PASSWORD).contains(&n) {
        Ok(())
    } else {
        Err(ApiError::BadRequest(format!(
            "a password is {MIN_PASSWORD} to {MAX_PASSWORD} characters"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        assert!(validate_role("admin").is_ok());
        assert!(validate_role("read-only_2").is_ok());
        assert!(validate_role("").is_err());
        assert!(validate_role("Admin").is_err());
        assert!(validate_role(&"a".repeat(65)).is_err());
        assert!(validate_role("a b").is_err());
        assert_eq!(normalize_email(" A@B.c ").ok().as_deref(), Some("a@b.c"));
        assert!(normalize_email("nobody").is_err());
        assert!(normalize_email("@x").is_err());
        assert!(parse_user_id("12").is_ok());
        assert!(parse_user_id("0").is_err());
        assert!(parse_user_id("abc").is_err());
        assert!(parse_user_id("-3").is_err());
        assert!(validate_new_password("short").is_err());
        assert!(parse_json::<RoleRequest>(b"").is_err());
        assert!(parse_json::<RoleRequest>(b"{\"role\": 5}").is_err());
    }
}
