//! API errors: the caller's fault vs the unexpected, and the one place that
//! turns them (and every warp rejection) into `{"error", "message"}`. The
//! use cases' errors carry their messages; here they only get a code.

use std::convert::Infallible;

use serde::Serialize;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Rejection, Reply};

use sessiond_actors::{ResolveError, StoreError};

use crate::store::DbError;
use crate::usecases::appkeys::{AppKeyError, MintError};
use crate::usecases::authenticate::AuthError;
use crate::usecases::login::LoginError;
use crate::usecases::users::UserError;

/// What a 503 caused by the database says.
pub const DB_UNAVAILABLE: &str = "the database is unavailable; try again later";

/// Every error an API call can answer.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidToken(String),
    #[error("{0}")]
    SessionRevoked(&'static str),
    #[error("wrong email or password")]
    InvalidCredentials,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("the request body must be JSON, sent as Content-Type: application/json")]
    UnsupportedMediaType,
    /// Too many failed logins, or forced refreshes of one user.
    #[error("too many attempts; try again in {} s", .0.as_secs())]
    RateLimited(std::time::Duration),
    #[error("{0}")]
    Unavailable(String),
    /// A write waited [`LOCK_TIMEOUT`](crate::store::LOCK_TIMEOUT) for a
    /// row another transaction holds, and gave up: nothing was written.
    #[error("a row this write needs is held by another transaction (for over {} ms); nothing was written; try again", crate::store::LOCK_TIMEOUT.as_millis())]
    Locked,
    /// Something that should not happen; details go to the log, not the
    /// caller.
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

/// Declares [`ErrorCode`] from one table: each code's variant, its text in
/// the `error` field, and the status it is always answered with.
macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident => $text:literal, $status:ident;)*) => {
        /// Every code of an error answer (the `error` field), each with the one
        /// status it is answered with. The handlers' answers ([`ApiError`],
        /// [`recover`]) and the OpenAPI document's list of codes are both
        /// derived from it.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)*
        }

        impl ErrorCode {
            /// Every code, in the order the OpenAPI document lists them.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The code as the `error` field spells it.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $text,)*
                }
            }

            /// The status of every answer with this code.
            pub const fn status(self) -> StatusCode {
                match self {
                    $(ErrorCode::$variant => StatusCode::$status,)*
                }
            }
        }
    };
}

error_codes! {
    /// A missing, malformed, forged or expired token.
    InvalidToken => "invalid_token", UNAUTHORIZED;
    /// The token's user is deactivated or deleted, or the token was logged
    /// out or revoked.
    SessionRevoked => "session_revoked", UNAUTHORIZED;
    /// Wrong email or password.
    InvalidCredentials => "invalid_credentials", UNAUTHORIZED;
    /// The caller may not do this.
    Forbidden => "forbidden", FORBIDDEN;
    /// No such route or no such user.
    NotFound => "not_found", NOT_FOUND;
    /// An unreadable body, id or header.
    BadRequest => "bad_request", BAD_REQUEST;
    /// The change contradicts the stored state.
    Conflict => "conflict", CONFLICT;
    /// The route does not take that method.
    MethodNotAllowed => "method_not_allowed", METHOD_NOT_ALLOWED;
    /// The request body is too large.
    PayloadTooLarge => "payload_too_large", PAYLOAD_TOO_LARGE;
    /// A body that is not `application/json`.
    UnsupportedMediaType => "unsupported_media_type", UNSUPPORTED_MEDIA_TYPE;
    /// Too many failed logins.
    RateLimited => "rate_limited", TOO_MANY_REQUESTS;
    /// The database cannot be reached, or the node is not ready.
    Unavailable => "unavailable", SERVICE_UNAVAILABLE;
    /// A write waited for a row another transaction holds (one left open in
    /// the database, say) and gave up: nothing was written; try again.
    Locked => "locked", SERVICE_UNAVAILABLE;
    /// A fault of the service itself.
    Internal => "internal", INTERNAL_SERVER_ERROR;
}

impl ErrorCode {
    /// Whether the OpenAPI document lists this code. `internal` is answered
    /// only for a fault of the service itself, and no operation documents a
    /// 500, so the document leaves it out.
    pub const fn documented(self) -> bool {
        !matches!(self, ErrorCode::Internal)
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// The body of every error answer.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    pub error: ErrorCode,
    pub message: String,
}

impl ApiError {
    /// This error's code.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            ApiError::InvalidToken(_) => ErrorCode::InvalidToken,
            ApiError::SessionRevoked(_) => ErrorCode::SessionRevoked,
            ApiError::InvalidCredentials => ErrorCode::InvalidCredentials,
            ApiError::Forbidden(_) => ErrorCode::Forbidden,
            ApiError::NotFound(_) => ErrorCode::NotFound,
            ApiError::BadRequest(_) => ErrorCode::BadRequest,
            ApiError::Conflict(_) => ErrorCode::Conflict,
            ApiError::PayloadTooLarge(_) => ErrorCode::PayloadTooLarge,
            ApiError::UnsupportedMediaType => ErrorCode::UnsupportedMediaType,
            ApiError::RateLimited(_) => ErrorCode::RateLimited,
            ApiError::Unavailable(_) => ErrorCode::Unavailable,
            ApiError::Locked => ErrorCode::Locked,
            ApiError::Internal(_) => ErrorCode::Internal,
        }
    }

    /// This error's status and code, as answered.
    pub fn code(&self) -> (StatusCode, &'static str) {
        let code = self.error_code();
        (code.status(), code.as_str())
    }

    /// The database failed: the driver's text (host names, SQL, schema)
    /// goes to the log, the caller gets [`DB_UNAVAILABLE`].
    pub fn db(e: DbError) -> ApiError {
        tracing::warn!(error = %e, "database error");
        ApiError::Unavailable(DB_UNAVAILABLE.into())
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::InvalidToken(m) => ApiError::InvalidToken(m),
            AuthError::Revoked(r) => ApiError::SessionRevoked(r.message()),
            AuthError::NotAdmin { .. } => ApiError::Forbidden(e.to_string()),
            AuthError::TooManyRefreshes(wait) => ApiError::RateLimited(wait),
            AuthError::Unavailable(e) => e.into(),
        }
    }
}

impl From<UserError> for ApiError {
    fn from(e: UserError) -> Self {
        match e {
            UserError::Invalid(m) => ApiError::BadRequest(m),
            UserError::NotFound(_) => ApiError::NotFound(e.to_string()),
            UserError::EmailTaken | UserError::LastAdmin(_) => ApiError::Conflict(e.to_string()),
            UserError::Busy | UserError::Unconfirmed => ApiError::Unavailable(e.to_string()),
            UserError::AppManaged(_) => ApiError::Forbidden(e.to_string()),
            UserError::Db(e) if e.is_lock_timeout() => {
                tracing::warn!(error = %e, "a write gave up waiting for a lock");
                ApiError::Locked
            }
            UserError::Db(e) => ApiError::db(e),
            UserError::Internal(e) => ApiError::Internal(e),
        }
    }
}

impl From<LoginError> for ApiError {
    fn from(e: LoginError) -> Self {
        match e {
            LoginError::RateLimited(wait) => ApiError::RateLimited(wait),
            LoginError::InvalidCredentials => ApiError::InvalidCredentials,
            LoginError::Deactivated | LoginError::PasswordLoginOff => {
                ApiError::Forbidden(e.to_string())
            }
            LoginError::Busy => ApiError::Unavailable(e.to_string()),
            LoginError::Db(e) => ApiError::db(e),
            LoginError::Internal(e) => ApiError::Internal(e),
        }
    }
}

impl From<AppKeyError> for ApiError {
    fn from(e: AppKeyError) -> Self {
        match e {
            AppKeyError::Invalid => ApiError::InvalidToken(e.to_string()),
            AppKeyError::MissingScope(_) => ApiError::Forbidden(e.to_string()),
            AppKeyError::Unavailable(e) => ResolveError::Store(e).into(),
        }
    }
}

impl From<MintError> for ApiError {
    fn from(e: MintError) -> Self {
        match e {
            MintError::NotFound(_) => ApiError::NotFound(e.to_string()),
            MintError::Deactivated => ApiError::Forbidden(e.to_string()),
            MintError::Unavailable(e) => e.into(),
            MintError::Internal(e) => ApiError::Internal(e),
        }
    }
}

impl From<ResolveError> for ApiError {
    fn from(e: ResolveError) -> Self {
        match e {
            ResolveError::Store(StoreError::Unavailable(text)) => {
                tracing::warn!(error = %text, "database error");
                ApiError::Unavailable(DB_UNAVAILABLE.into())
            }
            // The other causes are this service's own fixed sentences.
            e => ApiError::Unavailable(e.to_string()),
        }
    }
}

/// The answer of `code` with `message`, at the code's status.
pub fn error_response(code: ErrorCode, message: String) -> Response {
    let body = ErrorBody {
        error: code,
        message,
    };
    warp::reply::with_status(warp::reply::json(&body), code.status()).into_response()
}

impl Reply for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(e) = &self {
            tracing::error!(error = %e, "internal error");
        }
        let mut response = error_response(self.error_code(), self.to_string());
        if let ApiError::RateLimited(wait) = &self {
            if let Ok(v) = warp::http::HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
                response
                    .headers_mut()
                    .insert(warp::http::header::RETRY_AFTER, v);
            }
        }
        if let ApiError::Locked = &self {
            response.headers_mut().insert(
                warp::http::header::RETRY_AFTER,
                warp::http::HeaderValue::from_static("1"),
            );
        }
        response
    }
}

/// Turns every rejection into the API's JSON error. Route handlers never
/// reject (their errors are `ApiError` replies), so what arrives here is
/// warp's own: no route, wrong method, unreadable header.
pub async fn recover(r: Rejection) -> Result<Response, Infallible> {
    let (code, message) = if r.is_not_found() {
        (ErrorCode::NotFound, "no such route".to_string())
    } else if r.find::<warp::reject::MethodNotAllowed>().is_some() {
        (
            ErrorCode::MethodNotAllowed,
            "this route does not take that method".to_string(),
        )
    } else if let Some(e) = r.find::<warp::reject::InvalidHeader>() {
        (ErrorCode::BadRequest, e.to_string())
    } else if let Some(e) = r.find::<warp::reject::MissingHeader>() {
        (ErrorCode::BadRequest, e.to_string())
    } else if r.find::<warp::reject::PayloadTooLarge>().is_some() {
        (
            ErrorCode::PayloadTooLarge,
            "the request body is too large".to_string(),
        )
    } else {
        tracing::warn!(rejection = ?r, "unhandled rejection");
        (
            ErrorCode::BadRequest,
            "the request could not be read".to_string(),
        )
    };
    Ok(error_response(code, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(e: ApiError) -> (u16, String) {
        let r = e.into_response();
        let status = r.status().as_u16();
        let bytes = warp::hyper::body::to_bytes(r.into_body())
            .await
            .unwrap_or_default();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    #[tokio::test]
    async fn a_database_error_answers_a_fixed_message() {
        let driver = "error connecting to db-secret-host:5432: password authentication failed";
        let e = ApiError::db(DbError::from(sqlx::Error::Protocol(driver.into())));
        let (status, body) = body_of(e).await;
        assert_eq!(status, 503);
        assert!(!body.contains("db-secret-host"), "{body}");
        assert!(body.contains(DB_UNAVAILABLE), "{body}");
    }

    #[tokio::test]
    async fn a_store_failure_behind_a_lookup_answers_a_fixed_message() {
        let e = ApiError::from(ResolveError::Store(StoreError::Unavailable(
            "pool timed out: relation \"users\" on db-secret-host".into(),
        )));
        let (status, body) = body_of(e).await;
        assert_eq!(status, 503);
        assert!(!body.contains("db-secret-host"), "{body}");
        assert!(body.contains(DB_UNAVAILABLE), "{body}");
    }
}
