//! The warp side (feature `warp`): a filter that hands a handler the
//! request's current [`Session`], and the rendering of its rejections as
//! sessiond's own JSON errors.

use std::convert::Infallible;

use hyper::header::{HeaderMap, AUTHORIZATION};
use hyper::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::{Session, SessiondClient, SessiondError};

impl warp::reject::Reject for SessiondError {}

impl SessiondError {
    /// The error as sessiond renders it: `{"error": code, "message": text}`.
    pub fn to_response(&self) -> Response {
        let body = serde_json::json!({ "error": self.code, "message": self.message });
        warp::reply::with_status(warp::reply::json(&body), self.status).into_response()
    }
}

impl Reply for SessiondError {
    fn into_response(self) -> Response {
        self.to_response()
    }
}

/// A filter that resolves the request's bearer token against sessiond and
/// extracts the [`Session`]; rejects with a [`SessiondError`] otherwise.
/// Pair it with [`recover`].
pub fn session_filter(
    client: SessiondClient,
) -> impl Filter<Extract = (Session,), Error = Rejection> + Clone {
    warp::header::headers_cloned().and_then(move |headers: HeaderMap| {
        let client = client.clone();
        async move {
            client
                .resolve_header(headers.get(AUTHORIZATION))
                .await
                .map_err(warp::reject::custom)
        }
    })
}

/// [`session_filter`] that also requires the user's current role to be one
/// of `roles`: `forbidden` 403 otherwise.
pub fn require_role(
    client: SessiondClient,
    roles: &'static [&'static str],
) -> impl Filter<Extract = (Session,), Error = Rejection> + Clone {
    session_filter(client).and_then(move |session: Session| async move {
        if roles.contains(&session.user.role.as_str()) {
            Ok(session)
        } else {
            Err(warp::reject::custom(SessiondError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("this route needs the role {}", roles.join(" or ")),
            )))
        }
    })
}

/// Renders a [`SessiondError`] rejection as sessiond's JSON error; passes
/// every other rejection on (to the app's own `recover`, or warp's).
pub async fn recover(rejection: Rejection) -> Result<Response, Rejection> {
    match rejection.find::<SessiondError>() {
        Some(e) => Ok(e.to_response()),
        None => Err(rejection),
    }
}

/// Like [`recover`], and renders every other rejection as a JSON error too
/// (`not_found` 404, `method_not_allowed` 405, `bad_request` 400), for an
/// app that has no `recover` of its own.
pub async fn recover_all(rejection: Rejection) -> Result<Response, Infallible> {
    if let Some(e) = rejection.find::<SessiondError>() {
        return Ok(e.to_response());
    }
    let e = if rejection.is_not_found() {
        SessiondError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        SessiondError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this route does not take that method",
        )
    } else {
        SessiondError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the request could not be read",
        )
    };
    Ok(e.to_response())
}
