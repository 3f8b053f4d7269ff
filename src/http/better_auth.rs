//! `GET /api/better-auth/get-session`: Better Auth's `getSession`, answered
//! by sessiond from the user's actor (docs/better-auth.md).

use std::sync::Arc;

use warp::http::header::{CACHE_CONTROL, COOKIE, SET_COOKIE};
use warp::http::{HeaderMap, HeaderValue, StatusCode};

use super::error::ApiError;
use super::reply::{json, Answer};
use super::{Caller, Ctx};
use crate::betterauth::BaError;

impl From<BaError> for ApiError {
    fn from(e: BaError) -> Self {
        match e {
            BaError::InvalidToken(m) => ApiError::InvalidToken(m.into()),
            BaError::Revoked(m) => ApiError::SessionRevoked(m),
            BaError::Unavailable(e) => e.into(),
            BaError::Db(text) => {
                tracing::warn!(error = %text, "database error");
                ApiError::Unavailable(super::error::DB_UNAVAILABLE.into())
            }
        }
    }
}

#[utoipa::path(
    get,
    path = "/api/better-auth/get-session",
    tag = "better-auth",
    params(
        ("Cookie" = Option<String>, Header, description = "`better-auth.session_token` (or `__Secure-better-auth.session_token`; the prefix is `[better_auth] cookie_prefix`): Better Auth's signed session cookie, as the browser sends it."),
        ("Authorization" = Option<String>, Header, description = "`Bearer <token>` or `Bearer <token.signature>` (Better Auth's bearer plugin); a valid bearer token is taken before the cookie."),
    ),
    responses(
        (status = 200, description = "Better Auth's `getSession` body: `{\"session\": {...}, \"user\": {...}}`, every column of the session row and of the user row as Better Auth names them, dates as ISO-8601 UTC strings. When the session was refreshed (Better Auth's `updateAge` passed), `Set-Cookie` sets the same cookie again with `Max-Age` = `expires_in` (and `set-auth-token` for a bearer token).", body = Object),
        (status = 401, description = "`invalid_token`: no session cookie or bearer token, or its signature does not check; `session_revoked`: no such session (signed out, revoked), it expired, or its user is gone or banned.", body = super::error::ErrorBody),
        (status = 404, description = "`not_found`: Better Auth's sessions are not served by this deployment (no `[better_auth]`).", body = super::error::ErrorBody),
        (status = 503, response = super::openapi::Unavailable),
    )
)]
pub async fn get_session(ctx: Arc<Ctx>, caller: Caller, headers: HeaderMap) -> Answer {
    let Some(ba) = &ctx.better_auth else {
        return Err(ApiError::NotFound(
            "Better Auth's sessions are not served here (no [better_auth] configuration)".into(),
        ));
    };
    let cookies = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok());
    let credential = ba.credential(caller.authorization(), cookies)?;
    let answer = ba.get_session(&credential).await?;
    let mut r = json(StatusCode::OK, &answer.body);
    let h = r.headers_mut();
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(c) = answer
        .set_cookie
        .and_then(|c| HeaderValue::from_str(&c).ok())
    {
        h.insert(SET_COOKIE, c);
    }
    if let Some(t) = answer
        .auth_token
        .and_then(|t| HeaderValue::from_str(&t).ok())
    {
        h.insert("set-auth-token", t);
        h.insert(
            "access-control-expose-headers",
            HeaderValue::from_static("set-auth-token"),
        );
    }
    Ok(r)
}
