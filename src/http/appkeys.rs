//! `POST /api/sessions`: an app's server, holding an app key with the
//! `mint` scope, gets sessiond's token for a user it signed in itself.

use std::sync::Arc;

use warp::http::StatusCode;

use super::error::ApiError;
use super::models::*;
use super::reply::{json, Answer, Body};
use super::{Caller, Ctx};
use crate::clock::rfc3339_ms;
use crate::usecases::appkeys::Scope;

#[utoipa::path(
    post,
    path = "/api/sessions",
    tag = "auth",
    security(("appKey" = [])),
    request_body = MintRequest,
    responses(
        (status = 200, description = "A new token for the user, as a login answers.", body = LoginJson),
        (status = 400, response = super::openapi::BadRequest),
        (status = 401, response = super::openapi::InvalidAppKey),
        (status = 403, description = "`forbidden`: the key does not have the `mint` scope, or the user is deactivated.", body = super::error::ErrorBody),
        (status = 404, response = super::openapi::NotFound),
        (status = 413, response = super::openapi::PayloadTooLarge),
        (status = 415, response = super::openapi::UnsupportedMediaType),
        (status = 503, response = super::openapi::Unavailable),
    )
)]
pub async fn mint(ctx: Arc<Ctx>, caller: Caller, body: Body) -> Answer {
    let Some(credential) = caller.app_key() else {
        return Err(ApiError::InvalidToken(
            "an app key is required: Authorization: Bearer sdk_…".into(),
        ));
    };
    let from = caller.origin();
    let key = ctx
        .appkeys
        .check(credential, Scope::Mint, &caller.route(), &from)
        .await?;
    let req: MintRequest = parse_json(&body?)?;
    let done = ctx.appkeys.mint(&key, &req.user_id, &from).await?;
    Ok(json(
        StatusCode::OK,
        &LoginJson {
            token: done.token,
            token_type: "Bearer",
            expires_at: rfc3339_ms(done.claims.exp.saturating_mul(1000)),
            user: UserJson::from(&done.user),
            device: None,
        },
    ))
}
