//! The admin routes: `/api/admin/users…`. Each checks the caller is an
//! admin, parses, calls one [`Users`](crate::usecases::users::Users)
//! operation and renders its result.

use std::sync::Arc;

use warp::http::StatusCode;

use sessiond_actors::Status;

use super::models::*;
use super::reply::{no_content, user_json, Answer, Body};
use super::{Caller, Ctx};

#[utoipa::path(
    post,
    path = "/api/admin/users",
    tag = "admin",
    security(("bearer" = [])),
    request_body = CreateUserRequest,
    responses(
        (status = 201, description = "The new user.", body = UserJson, links(
                ("GetUser" = (operation_id = "get_user", parameters(("id" = "$response.body#/id")))),
                ("SetRole" = (operation_id = "set_role", parameters(("id" = "$response.body#/id")))),
                ("Deactivate" = (operation_id = "deactivate", parameters(("id" = "$response.body#/id")))),
                ("Activate" = (operation_id = "activate", parameters(("id" = "$response.body#/id")))),
                ("Invalidate" = (operation_id = "invalidate_user", parameters(("id" = "$response.body#/id")))),
                ("RevokeSessions" = (operation_id = "revoke_sessions", parameters(("id" = "$response.body#/id")))),
                ("DeleteUser" = (operation_id = "delete_user", parameters(("id" = "$response.body#/id"))))
        )),
        (status = 400, response = super::openapi::BadRequest),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 403, response = super::openapi::Forbidden),
        (status = 409, response = super::openapi::Conflict),
        (status = 413, response = super::openapi::PayloadTooLarge),
        (status = 503, response = super::openapi::Unavailable),
    )
)]
pub async fn create_user(ctx: Arc<Ctx>, caller: Caller, body: Body) -> Answer {
    let by = caller.admin(&ctx).await?;
    let req: CreateUserRequest = parse_json(&body?)?;
    let row = ctx
        .users
        .create(&by, &req.email, req.password, req.role)
        .await?;
    Ok(user_json(StatusCode::CREATED, &row))
}

#[utoipa::path(
    get,
    path = "/api/admin/users/{id}",
    tag = "admin",
    params(("id" = i64, Path, minimum = 1, description = "The user id.")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The user.", body = UserJson),
        super::openapi::AdminUserErrors,
    )
)]
pub async fn get_user(ctx: Arc<Ctx>, id: String, caller: Caller) -> Answer {
    caller.admin(&ctx).await?;
    let row = ctx.users.get(parse_user_id(&id)?).await?;
    Ok(user_json(StatusCode::OK, &row))
}

#[utoipa::path(
    put,
    path = "/api/admin/users/{id}/role",
    tag = "admin",
    params(("id" = i64, Path, minimum = 1, description = "The user id.")),
    security(("bearer" = [])),
    request_body = RoleRequest,
    responses(
        (status = 200, description = "The user; sessions show the role at once, on every node.", body = UserJson),
        (status = 413, response = super::openapi::PayloadTooLarge),
        super::openapi::AdminUserErrors,
    )
)]
pub async fn set_role(ctx: Arc<Ctx>, id: String, caller: Caller, body: Body) -> Answer {
    let by = caller.admin(&ctx).await?;
    let id = parse_user_id(&id)?;
    let req: RoleRequest = parse_json(&body?)?;
    let row = ctx.users.set_role(&by, id, &req.role).await?;
    Ok(user_json(StatusCode::OK, &row))
}

async fn set_status(ctx: Arc<Ctx>, id: String, caller: Caller, status: Status) -> Answer {
    let by = caller.admin(&ctx).await?;
    let row = ctx
        .users
        .set_status(&by, parse_user_id(&id)?, status)
        .await?;
    Ok(user_json(StatusCode::OK, &row))
}

#[utoipa::path(
    post,
    path = "/api/admin/users/{id}/deactivate",
    tag = "admin",
    params(("id" = i64, Path, minimum = 1, description = "The user id.")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The user; its tokens stop resolving at once.", body = UserJson),
        super::openapi::AdminUserErrors,
    )
)]
pub async fn deactivate(ctx: Arc<Ctx>, id: String, caller: Caller) -> Answer {
    set_status(ctx, id, caller, Status::Deactivated).await
}

#[utoipa::path(
    post,
    path = "/api/admin/users/{id}/activate",
    tag = "admin",
    params(("id" = i64, Path, minimum = 1, description = "The user id.")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The user.", body = UserJson),
        super::openapi::AdminUserErrors,
    )
)]
pub async fn activate(ctx: Arc<Ctx>, id: String, caller: Caller) -> Answer {
    set_status(ctx, id, caller, Status::Active).await
}

#[utoipa::path(
    delete,
    path = "/api/admin/users/{id}",
    tag = "admin",
    params(("id" = i64, Path, minimum = 1, description = "The user id.")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted; its tokens stop resolving at once."),
        super::openapi::AdminUserErrors,
    )
)]
pub async fn delete_user(ctx: Arc<Ctx>, id: String, caller: Caller) -> Answer {
    let by = caller.admin(&ctx).await?;
    ctx.users.delete(&by, parse_user_id(&id)?).await?;
    Ok(no_content(StatusCode::NO_CONTENT))
}

#[utoipa::path(
    post,
    path = "/api/admin/users/{id}/invalidate",
    tag = "admin",
    params(("id" = i64, Path, minimum = 1, description = "The user id.")),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "The cached record is dropped on every node."),
        super::openapi::AdminUserErrors,
    )
)]
pub async fn invalidate_user(ctx: Arc<Ctx>, id: String, caller: Caller) -> Answer {
    let by = caller.admin(&ctx).await?;
    ctx.users.invalidate(&by, parse_user_id(&id)?).await?;
    Ok(no_content(StatusCode::ACCEPTED))
}

#[utoipa::path(
    post,
    path = "/api/admin/users/{id}/revoke-sessions",
    tag = "admin",
    params(("id" = i64, Path, minimum = 1, description = "The user id.")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Tokens issued until now stop resolving."),
        super::openapi::AdminUserErrors,
    )
)]
pub async fn revoke_sessions(ctx: Arc<Ctx>, id: String, caller: Caller) -> Answer {
    let by = caller.admin(&ctx).await?;
    ctx.users.revoke_sessions(&by, parse_user_id(&id)?).await?;
    Ok(no_content(StatusCode::NO_CONTENT))
}
