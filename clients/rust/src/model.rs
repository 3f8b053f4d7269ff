//! What sessiond answers, as the client reads it.

use serde::{Deserialize, Serialize};

/// A user as sessiond answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: i64,
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
}
