//! The JSON shapes of the API (`GET /openapi.json`) and the parsing of what callers
//! send. The rules for a user's fields are the use case's
//! ([`crate::usecases::users`]).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use sessiond_actors::User;

use super::error::ApiError;
use super::openapi::UserStatus;

#[derive(Serialize, ToSchema)]
#[schema(as = User)]
pub struct UserJson<'a> {
    pub id: i64,
    pub email: &'a str,
    pub role: &'a str,
    #[schema(value_type = UserStatus)]
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

#[derive(Serialize, ToSchema)]
#[schema(as = Cache)]
pub struct CacheJson<'a> {
    pub hit: bool,
    pub age_ms: u64,
    pub ttl_ms: u64,
    pub version: i64,
    /// The node that owns the user (and answered, or whose answer this
    /// node kept).
    pub node: &'a str,
    /// Answered from this node's near copy of the owner's record.
    pub near: bool,
}

#[derive(Serialize, ToSchema)]
#[schema(as = Session)]
pub struct SessionJson<'a> {
    pub user: UserJson<'a>,
    /// The token's expiry.
    #[schema(format = DateTime)]
    pub expires: String,
    pub cache: CacheJson<'a>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = Login)]
pub struct LoginJson<'a> {
    pub token: String,
    #[schema(value_type = String, pattern = "^Bearer$")]
    pub token_type: &'static str,
    #[schema(format = DateTime)]
    pub expires_at: String,
    pub user: UserJson<'a>,
}

#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

/// `POST /api/sessions`: whose token an app key mints.
#[derive(Deserialize, ToSchema)]
pub struct MintRequest {
    /// A user the app signed in itself (by any method).
    #[schema(minimum = 1)]
    pub user_id: i64,
}

#[derive(Deserialize, Default, ToSchema)]
pub struct RefreshRequest {
    #[serde(default)]
    pub force: bool,
}

#[derive(Deserialize, ToSchema)]
pub struct CreateUserRequest {
    /// Stored trimmed and lower-cased; at most 254 bytes then.
    #[schema(min_length = 3, pattern = r"^\s*[^\s@]+@\S+\s*$")]
    pub email: String,
    #[schema(min_length = 8, max_length = 1024)]
    pub password: String,
    /// Absent or null: `user`.
    #[serde(default)]
    #[schema(pattern = "^[a-z0-9_-]{1,64}$", min_length = 1, max_length = 64)]
    pub role: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct RoleRequest {
    #[schema(pattern = "^[a-z0-9_-]{1,64}$", min_length = 1, max_length = 64)]
    pub role: String,
}

// The `/api/perf` document is `perf`'s; the API's models include it.
pub use crate::perf::{LatencyJson, PerfJson, PerfWindows, Quantiles};

/// Parses a JSON object body into `T`, with a message that says what is
/// wrong. Only an object: serde would also fill a struct from an array
/// (`["a@b", "pw"]`), which the API does not document.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        None => return Err(ApiError::BadRequest("a JSON body is required".into())),
        Some(b'{') => {}
        Some(_) => {
            return Err(ApiError::BadRequest(
                "the JSON body must be an object".into(),
            ))
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        assert!(parse_user_id("12").is_ok());
        assert!(parse_user_id("0").is_err());
        assert!(parse_user_id("abc").is_err());
        assert!(parse_user_id("-3").is_err());
        assert!(parse_json::<RoleRequest>(b"").is_err());
        assert!(parse_json::<RoleRequest>(b"{\"role\": 5}").is_err());
        assert!(parse_json::<RoleRequest>(b"[\"admin\"]").is_err());
        assert!(parse_json::<RoleRequest>(b" {\"role\": \"admin\"}").is_ok());
    }
}
