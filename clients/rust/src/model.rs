//! What sessiond answers, as the client reads it.

use serde::{Deserialize, Serialize};

/// A user id as the application spells it: sessiond answers an integer id
/// as a JSON number and any other (a UUID, a cuid, a nanoid, Better Auth's
/// ids) as a JSON string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum UserId {
    Int(i64),
    Text(String),
}

impl UserId {
    /// The integer, for an integer id.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            UserId::Int(n) => Some(*n),
            UserId::Text(_) => None,
        }
    }
}

impl std::fmt::Display for UserId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UserId::Int(n) => write!(f, "{n}"),
            UserId::Text(s) => f.write_str(s),
        }
    }
}

impl From<i64> for UserId {
    fn from(n: i64) -> Self {
        UserId::Int(n)
    }
}

impl From<&str> for UserId {
    fn from(s: &str) -> Self {
        UserId::Text(s.to_string())
    }
}

impl From<String> for UserId {
    fn from(s: String) -> Self {
        UserId::Text(s)
    }
}

impl PartialEq<i64> for UserId {
    fn eq(&self, other: &i64) -> bool {
        self.as_int() == Some(*other)
    }
}

impl PartialEq<&str> for UserId {
    fn eq(&self, other: &&str) -> bool {
        matches!(self, UserId::Text(s) if s == other)
    }
}

/// A user as sessiond answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub role: String,
    pub status: UserStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserStatus {
    Active,
    Deactivated,
}

/// How the session was answered: from the cache or from the database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheInfo {
    pub hit: bool,
    pub age_ms: u64,
    pub ttl_ms: u64,
    pub version: i64,
    /// The node that owns the user.
    pub node: String,
    /// Answered from the near copy of the node the request reached (absent
    /// from older servers: false).
    #[serde(default)]
    pub near: bool,
}

/// The answer of `GET /api/auth/session`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub user: User,
    /// The token's expiry, RFC 3339.
    pub expires: String,
    pub cache: CacheInfo,
}

/// The answer of `POST /api/auth/login`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Login {
    pub token: String,
    pub token_type: String,
    pub expires_at: String,
    pub user: User,
    /// On a password login: a device token for this account. Keep it with
    /// the device and pass it to the account's next
    /// [`SessiondClient::login_with_device`](crate::SessiondClient::login_with_device):
    /// while strangers' failed guesses hold the account off, such logins
    /// are let through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(json: &str) -> Option<User> {
        serde_json::from_str(json).ok()
    }

    #[test]
    fn ids_are_numbers_or_strings() {
        let int = user(r#"{"id":42,"email":"a@b","role":"user","status":"active"}"#);
        assert_eq!(int.as_ref().map(|u| u.id.clone()), Some(UserId::Int(42)));
        assert!(int.is_some_and(|u| u.id == 42));
        let uuid = "550e8400-e29b-41d4-a716-446655440000";
        let text = user(&format!(
            r#"{{"id":"{uuid}","email":"a@b","role":"user","status":"active"}}"#
        ));
        let id = text.map(|u| u.id);
        assert_eq!(id, Some(UserId::from(uuid)));
        assert_eq!(id.map(|i| i.to_string()), Some(uuid.to_string()));
        assert_eq!(
            serde_json::to_string(&UserId::from(7)).ok().as_deref(),
            Some("7")
        );
        assert_eq!(
            serde_json::to_string(&UserId::from("abc")).ok().as_deref(),
            Some("\"abc\"")
        );
    }
}
