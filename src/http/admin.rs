//! The admin routes: `/api/admin/users…`. Each checks the caller is an
//! admin, parses, calls one [`Users`](crate::usecases::users::Users)
//! operation and renders its result.

use std::sync::Arc;

use warp::http::StatusCode;

use sessiond_actors::Status;

use super::models::*;
use super::reply::{no_content, user_json, Answer, Body};
use super::{Caller, Ctx};
use crate::usecases::users::PasswordAction;

#[utoipa::path(
    post,
    path = "/api/admin/users",
    tag = "admin",
    security(("bearer" = []), ("appKey" = [])),
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
        (status = 415, response = super::openapi::UnsupportedMediaType),
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

/// A handler of one `/api/admin/users/{id}…` route, documented with what
/// all of them share: the `admin` tag, the user id in the path, the bearer
/// token and the shared error answers. The route's own answers (and body,
/// if it takes one) come first.
macro_rules! user_route {
    ($method:ident $path:tt, $(body = $body:ident,)? [$($answers:tt)*], $handler:item) => {
        #[utoipa::path(
            $method,
            path = $path,
            tag = "admin",
            params(("id" = super::openapi::UserIdSchema, Path, description = "The user id: an integer, or a text id such as a UUID.")),
            security(("bearer" = []), ("appKey" = [])),
            $(request_body = $body,)?
            responses($($answers)* super::openapi::AdminUserErrors)
        )]
        $handler
    };
}

user_route!(get "/api/admin/users/{id}",
    [(status = 200, description = "The user.", body = UserJson),],
    pub async fn get_user(ctx: Arc<Ctx>, id: String, caller: Caller) -> Answer {
        caller.admin(&ctx).await?;
        let row = ctx.users.get(parse_user_id(&id)?).await?;
        Ok(user_json(StatusCode::OK, &row))
    }
);

user_route!(put "/api/admin/users/{id}/role", body = RoleRequest,
    [
        (status = 200, description = "The user; sessions show the role at once, on every node.", body = UserJson),
        (status = 409, response = super::openapi::LastAdmin),
        (status = 413, response = super::openapi::PayloadTooLarge),
        (status = 415, response = super::openapi::UnsupportedMediaType),
    ],
    pub async fn set_role(ctx: Arc<Ctx>, id: String, caller: Caller, body: Body) -> Answer {
        let by = caller.admin(&ctx).await?;
        let id = parse_user_id(&id)?;
        let req: RoleRequest = parse_json(&body?)?;
        let row = ctx.users.set_role(&by, id, &req.role).await?;
        Ok(user_json(StatusCode::OK, &row))
    }
);

user_route!(post "/api/admin/users/{id}/deactivate",
    [
        (status = 200, description = "The user; its tokens stop resolving at once.", body = UserJson),
        (status = 409, response = super::openapi::LastAdmin),
    ],
    pub async fn deactivate(ctx: Arc<Ctx>, id: String, caller: Caller) -> Answer {
        act(ctx, id, caller, Act::Status(Status::Deactivated)).await
    }
);

user_route!(post "/api/admin/users/{id}/activate",
    [(status = 200, description = "The user.", body = UserJson),],
    pub async fn activate(ctx: Arc<Ctx>, id: String, caller: Caller) -> Answer {
        act(ctx, id, caller, Act::Status(Status::Active)).await
    }
);

user_route!(delete "/api/admin/users/{id}",
    [
        (status = 204, description = "Deleted; its tokens stop resolving at once."),
        (status = 409, response = super::openapi::LastAdmin),
    ],
    pub async fn delete_user(ctx: Arc<Ctx>, id: String, caller: Caller) -> Answer {
        act(ctx, id, caller, Act::Delete).await
    }
);

user_route!(post "/api/admin/users/{id}/invalidate",
    [(status = 202, description = "The cached record is dropped on every node."),],
    pub async fn invalidate_user(ctx: Arc<Ctx>, id: String, caller: Caller) -> Answer {
        act(ctx, id, caller, Act::Invalidate).await
    }
);

user_route!(post "/api/admin/users/{id}/revoke-sessions",
    [(status = 204, description = "Tokens issued until now stop resolving."),],
    pub async fn revoke_sessions(ctx: Arc<Ctx>, id: String, caller: Caller) -> Answer {
        act(ctx, id, caller, Act::RevokeSessions).await
    }
);

user_route!(put "/api/admin/users/{id}/password", body = PasswordResetRequest,
    [
        (status = 200, description = "The user; the new password holds and every token issued until now stops resolving, on every node.", body = UserJson),
        (status = 413, response = super::openapi::PayloadTooLarge),
        (status = 415, response = super::openapi::UnsupportedMediaType),
    ],
    pub async fn reset_password(ctx: Arc<Ctx>, id: String, caller: Caller, body: Body) -> Answer {
        let by = caller.admin(&ctx).await?;
        let id = parse_user_id(&id)?;
        let req: PasswordResetRequest = parse_json(&body?)?;
        let row = ctx
            .users
            .set_password(&by, id, req.password, PasswordAction::Reset)
            .await?;
        Ok(user_json(StatusCode::OK, &row))
    }
);

/// The actions on one user that take no body.
enum Act {
    Status(Status),
    Delete,
    Invalidate,
    RevokeSessions,
}

async fn act(ctx: Arc<Ctx>, id: String, caller: Caller, act: Act) -> Answer {
    let by = caller.admin(&ctx).await?;
    let id = parse_user_id(&id)?;
    let users = &ctx.users;
    Ok(match act {
        Act::Status(status) => user_json(StatusCode::OK, &users.set_status(&by, id, status).await?),
        Act::Delete => {
            users.delete(&by, id).await?;
            no_content(StatusCode::NO_CONTENT)
        }
        Act::Invalidate => {
            users.invalidate(&by, id).await?;
            no_content(StatusCode::ACCEPTED)
        }
        Act::RevokeSessions => {
            users.revoke_sessions(&by, id).await?;
            no_content(StatusCode::NO_CONTENT)
        }
    })
}
