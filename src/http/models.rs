//! The JSON shapes of the API (`GET /openapi.json`) and the parsing of what callers
//! send. The rules for a user's fields are the use case's
//! ([`crate::usecases::users`]).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use sessiond_actors::{User, UserId};

use super::error::ApiError;
use super::openapi::{UserIdSchema, UserStatus};

#[derive(Serialize, ToSchema)]
#[schema(as = User)]
pub struct UserJson<'a> {
    #[serde(with = "crate::ids")]
    #[schema(value_type = UserIdSchema)]
    pub id: UserId,
    pub email: &'a str,
    pub role: &'a str,
    #[schema(value_type = UserStatus)]
    pub status: &'static str,
}

impl<'a> From<&'a User> for UserJson<'a> {
    fn from(u: &'a User) -> Self {
        UserJson {
            id: u.id.clone(),
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
    /// How long after it was read this node serves the record: the cache
    /// TTL, or less when the record changes by itself sooner (a ban that
    /// ends at a set instant).
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
    /// On a password login: a new device token for this account (30 days).
    /// Keep it with the device (a cookie of its own) and send it with the
    /// account's next logins: while strangers' failures hold the account
    /// off, logins that present it are counted apart and let through.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
    /// The device token an earlier login of this account was answered
    /// with, if any. One that does not check (expired, another account's,
    /// forged) is ignored: the login counts as a stranger's.
    #[serde(default)]
    #[schema(max_length = 2048)]
    pub device: Option<String>,
}

/// `POST /api/sessions`: whose token an app key mints.
#[derive(Deserialize, ToSchema)]
pub struct MintRequest {
    /// A user the app signed in itself (by any method): its id as the
    /// app spells it (an integer, or a text id such as a UUID).
    #[serde(deserialize_with = "crate::ids::deserialize")]
    #[schema(value_type = UserIdSchema)]
    pub user_id: UserId,
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

/// A user's own password change.
#[derive(Deserialize, ToSchema)]
pub struct PasswordChangeRequest {
    #[schema(max_length = 1024)]
    pub current_password: String,
    /// 8 to 1024 characters.
    #[schema(min_length = 8, max_length = 1024)]
    pub new_password: String,
}

/// An admin's reset of a user's password.
#[derive(Deserialize, ToSchema)]
pub struct PasswordResetRequest {
    /// 8 to 1024 characters.
    #[schema(min_length = 8, max_length = 1024)]
    pub password: String,
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

/// A user id from a path segment, percent-decoded first (a client may
/// encode `:`, `@`, `+` or `=`).
pub fn parse_user_id(segment: &str) -> Result<UserId, ApiError> {
    let bad = |e: &dyn std::fmt::Display| ApiError::BadRequest(format!("invalid user id: {e}"));
    let decoded = percent_decode(segment).ok_or_else(|| bad(&"a malformed %-escape"))?;
    UserId::parse(&decoded).map_err(|e| bad(&e))
}

/// `%XX` escapes decoded; `None` for a malformed escape or bytes that are
/// not UTF-8.
fn percent_decode(s: &str) -> Option<std::borrow::Cow<'_, str>> {
    if !s.contains('%') {
        return Some(s.into());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok().map(Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        assert_eq!(parse_user_id("12").ok(), Some(UserId::from(12)));
        for text in [
            "abc",
            "550e8400-e29b-41d4-a716-446655440000",
            "clx3k9abc0000qzrmn1234567",
            "V1StGXR8_Z5jdHi6B-myT",
            "Zx9kQ2mN7pL4vR8sT1wY3uE6iO0aB5cD",
            "tenant:7@x+y=z~",
        ] {
            assert_eq!(parse_user_id(text).ok(), UserId::parse(text).ok(), "{text}");
            assert!(parse_user_id(text).is_ok(), "{text}");
        }
        // As a client's encodeURIComponent sends them.
        assert_eq!(
            parse_user_id("tenant%3A7%40x%2By%3Dz~").ok(),
            UserId::parse("tenant:7@x+y=z~").ok()
        );
        for bad in [
            "",
            "a%2Fb",
            "a%20b",
            "%",
            "%zz",
            "%C3",
            "a%00",
            "..",
            &"a".repeat(129),
        ] {
            assert!(parse_user_id(bad).is_err(), "{bad:?}");
        }
        assert!(parse_json::<RoleRequest>(b"").is_err());
        assert!(parse_json::<RoleRequest>(b"{\"role\": 5}").is_err());
        assert!(parse_json::<RoleRequest>(b"[\"admin\"]").is_err());
        assert!(parse_json::<RoleRequest>(b" {\"role\": \"admin\"}").is_ok());
    }
}
