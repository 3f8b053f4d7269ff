//! The one error of every call and of the filter's rejection.

use hyper::StatusCode;

/// A failed call, and the filter's rejection: sessiond's status, `error`
/// code and message, or `unavailable` 503 when sessiond did not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code} ({status}): {message}")]
pub struct SessiondError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
}

impl SessiondError {
    pub(crate) fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        SessiondError {
            status,
            code: code.to_string(),
            message: message.into(),
        }
    }

    pub(crate) fn invalid_token(message: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_token", message)
    }

    pub(crate) fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// The token will never resolve again (`invalid_token`, `session_revoked`).
    pub fn is_signed_out(&self) -> bool {
        self.code == "invalid_token" || self.code == "session_revoked"
    }
}
