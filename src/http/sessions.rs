//! The routes of a token's holder: log in, resolve the session, log out,
//! change the password.

use std::net::IpAddr;
use std::sync::Arc;

use warp::http::StatusCode;
use warp::reply::Response;

use sessiond_actors::Lookup;

use super::models::*;
use super::reply::{json, no_content, Answer, Body};
use super::request_id::RequestId;
use super::{Caller, Ctx};
use crate::clock::rfc3339_ms;
use crate::usecases::authenticate::Authed;
use crate::usecases::login::LoggedIn;
use crate::usecases::users::{validate_new_password, PasswordAction};

fn session_reply(ctx: &Ctx, a: &Authed) -> Response {
    json(
        StatusCode::OK,
        &SessionJson {
            user: UserJson::from(&a.state.user),
            expires: rfc3339_ms(a.token.exp.saturating_mul(1000)),
            cache: CacheJson {
                hit: a.served.hit,
                age_ms: a.served.age.as_millis() as u64,
                ttl_ms: a.state.fresh_for(ctx.router.config().ttl).as_millis() as u64,
                version: a.state.version,
                node: a.served.node.as_deref().unwrap_or(ctx.router.node()),
                near: a.served.near,
            },
        },
    )
}

#[utoipa::path(
    post,
    path = "/api/auth/login",
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "A new token and its user.", body = LoginJson),
        (status = 400, response = super::openapi::BadRequest),
        (status = 401, response = super::openapi::InvalidCredentials),
        (status = 403, description = "`forbidden`: the account is deactivated, or password login is off (users live in the application's own table: the application signs them in).", body = super::error::ErrorBody),
        (status = 413, response = super::openapi::PayloadTooLarge),
        (status = 415, response = super::openapi::UnsupportedMediaType),
        (status = 429, response = super::openapi::RateLimited),
        (status = 503, response = super::openapi::Unavailable),
    )
)]
pub async fn login(
    ctx: Arc<Ctx>,
    client: Option<IpAddr>,
    request_id: Option<RequestId>,
    body: Body,
) -> Answer {
    let req: LoginRequest = parse_json(&body?)?;
    let from = super::origin(client, request_id.as_ref());
    let done = ctx
        .login
        .login(&req.email, req.password, req.device.as_deref(), &from)
        .await?;
    Ok(logged_in(&done))
}

fn logged_in(done: &LoggedIn) -> Response {
    json(
        StatusCode::OK,
        &LoginJson {
            token: done.token.clone(),
            token_type: "Bearer",
            expires_at: rfc3339_ms(done.claims.exp.saturating_mul(1000)),
            user: UserJson::from(&done.user),
            device: done.device.clone(),
        },
    )
}

#[utoipa::path(
    post,
    path = "/api/auth/password",
    tag = "auth",
    security(("bearer" = [])),
    request_body = PasswordChangeRequest,
    responses(
        (status = 200, description = "The password is changed and every other token of the user stops resolving, on every node; a new token for the caller.", body = LoginJson),
        (status = 400, response = super::openapi::BadRequest),
        (status = 401, description = "`invalid_token` or `session_revoked` (see the bearer token's other routes), or `invalid_credentials`: the current password is wrong.", body = super::error::ErrorBody),
        (status = 413, response = super::openapi::PayloadTooLarge),
        (status = 415, response = super::openapi::UnsupportedMediaType),
        (status = 429, response = super::openapi::RateLimited),
        (status = 503, response = super::openapi::Unavailable),
    )
)]
pub async fn change_password(ctx: Arc<Ctx>, caller: Caller, body: Body) -> Answer {
    let a = ctx
        .auth
        .authenticate(caller.authorization(), Lookup::Resolve)
        .await?;
    let req: PasswordChangeRequest = parse_json(&body?)?;
    validate_new_password(&req.new_password)?;
    let from = caller.origin();
    let user = &a.state.user;
    ctx.login
        .check_current_password(&user.email, req.current_password, &from)
        .await?;
    let row = ctx
        .users
        .set_password(
            &caller.principal(&a),
            user.id.clone(),
            req.new_password,
            PasswordAction::Change,
        )
        .await?;
    Ok(logged_in(&ctx.login.issue(&row)?))
}

#[utoipa::path(
    get,
    path = "/api/auth/session",
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The token's user as of now.", body = SessionJson),
        (status = 400, response = super::openapi::BadRequest),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 503, response = super::openapi::Unavailable),
    )
)]
pub async fn session(ctx: Arc<Ctx>, caller: Caller) -> Answer {
    session_of(&ctx, caller.authorization()).await
}

/// The session route's answer for an `Authorization` header: all it reads
/// of the request (the listener's direct route calls it too).
pub async fn session_of(ctx: &Ctx, authorization: Option<&str>) -> Answer {
    let a = ctx
        .auth
        .authenticate(authorization, Lookup::Resolve)
        .await?;
    Ok(session_reply(ctx, &a))
}

#[utoipa::path(
    post,
    path = "/api/auth/refresh-session",
    tag = "auth",
    security(("bearer" = [])),
    request_body(content = Option<RefreshRequest>, description = "Optional; `force` reads the database (at most 5 forced refreshes per user per second)."),
    responses(
        (status = 200, description = "The token's user as of now.", body = SessionJson),
        (status = 400, response = super::openapi::BadRequest),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 413, response = super::openapi::PayloadTooLarge),
        (status = 415, response = super::openapi::UnsupportedMediaType),
        (status = 429, description = "`rate_limited`: more forced refreshes of this user than allowed; `Retry-After` says when to try again.", body = super::error::ErrorBody),
        (status = 503, response = super::openapi::Unavailable),
    )
)]
pub async fn refresh_session(ctx: Arc<Ctx>, caller: Caller, body: Body) -> Answer {
    let body = body?;
    // The body is optional: absent, blank or `null` mean no options.
    let req: RefreshRequest = match body.trim_ascii() {
        b"" | b"null" => RefreshRequest::default(),
        _ => parse_json(&body)?,
    };
    let lookup = if req.force {
        Lookup::ForceRefresh
    } else {
        Lookup::Resolve
    };
    let a = ctx
        .auth
        .authenticate(caller.authorization(), lookup)
        .await?;
    Ok(session_reply(&ctx, &a))
}

#[utoipa::path(
    post,
    path = "/api/auth/logout",
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "This token stops resolving at once."),
        (status = 400, response = super::openapi::BadRequest),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 503, response = super::openapi::Unavailable),
    )
)]
pub async fn logout(ctx: Arc<Ctx>, caller: Caller) -> Answer {
    let a = ctx
        .auth
        .authenticate(caller.authorization(), Lookup::Resolve)
        .await?;
    ctx.users.logout(&caller.principal(&a), &a.token).await?;
    Ok(no_content(StatusCode::NO_CONTENT))
}
