//! What every handler takes and gives: the body as read, the answer, and
//! the JSON renderings they share.

use bytes::Bytes;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Reply;

use super::error::ApiError;
use super::models::UserJson;
use crate::store::UserRow;

pub type Body = Result<Bytes, ApiError>;
pub type Answer = Result<Response, ApiError>;

pub fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response {
    warp::reply::with_status(warp::reply::json(value), status).into_response()
}

pub fn no_content(status: StatusCode) -> Response {
    warp::reply::with_status(warp::reply(), status).into_response()
}

pub fn user_json(status: StatusCode, row: &UserRow) -> Response {
    json(
        status,
        &UserJson {
            id: row.id.clone(),
            email: &row.email,
            role: &row.role,
            status: row.status.as_str(),
        },
    )
}
