//! What every answer and every body must be, whatever the route: answers
//! that hold a token or a user are never stored by a cache, no answer is
//! content-sniffed, and bodies are JSON. Requiring
//! `Content-Type: application/json` also closes the cross-site "simple
//! request" path (a form posting `text/plain` to the login route).

use warp::http::header::{HeaderValue, CACHE_CONTROL, X_CONTENT_TYPE_OPTIONS};
use warp::reply::Response;

use super::error::ApiError;

/// The paths whose answers hold tokens or users (or errors about them).
const PRIVATE: [&str; 2] = ["/api/auth/", "/api/admin/"];

/// Adds the headers every answer carries.
pub(super) fn harden(path: &str, mut reply: Response) -> Response {
    let headers = reply.headers_mut();
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if PRIVATE.iter().any(|p| path.starts_with(p)) {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    reply
}

/// A non-empty body must be declared JSON (parameters such as `charset`
/// allowed); an empty one, where a route's body is optional, needs no type.
pub(super) fn json_body(content_type: Option<&str>, body: &[u8]) -> Result<(), ApiError> {
    if body.is_empty() {
        return Ok(());
    }
    let essence = content_type
        .and_then(|t| t.split(';').next())
        .map(str::trim)
        .unwrap_or("");
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_json_bodies_pass() {
        assert!(json_body(Some("application/json"), b"{}").is_ok());
        assert!(json_body(Some("Application/JSON; charset=utf-8"), b"{}").is_ok());
        assert!(json_body(None, b"").is_ok());
        assert!(json_body(Some("text/plain"), b"").is_ok());
        for kind in [
            None,
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("multipart/form-data; boundary=x"),
            Some("application/jsonx"),
        ] {
            assert!(
                matches!(json_body(kind, b"{}"), Err(ApiError::UnsupportedMediaType)),
                "{kind:?}"
            );
        }
    }
}
