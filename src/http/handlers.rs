//! Route handlers: plain async functions from inputs to a reply or an
//! [`ApiError`]. They never reject, so every failure has the API's shape.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Reply;

use sessiond_actors::{InvalidationSource, Lookup, Served, Status, TokenFacts, UserState};

use super::error::ApiError;
use super::models::*;
use crate::app::Ctx;
use crate::auth::{TokenError, Verified};
use crate::clock::rfc3339_ms;
use crate::metrics::Outcome;
use crate::store::{AuditEntry, UserRow, WriteError};

pub type Body = Result<Bytes, ApiError>;
pub type Answer = Result<Response, ApiError>;

fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response {
    warp::reply::with_status(warp::reply::json(value), status).into_response()
}

fn no_content(status: StatusCode) -> Response {
    warp::reply::with_status(warp::reply(), status).into_response()
}

fn user_json(row: &UserRow) -> Response {
    json(
        StatusCode::OK,
        &UserJson {
            id: row.id,
            email: &row.email,
            role: &row.role,
            status: row.status.as_str(),
        },
    )
}

/// The bearer token of an `Authorization` header.
pub fn bearer(header: Option<&str>) -> Result<&str, ApiError> {
    let value =
        header.ok_or_else(|| ApiError::InvalidToken("a bearer token is required".into()))?;
    let (scheme, token) = value.trim().split_once(' ').ok_or_else(|| {
        ApiError::InvalidToken("the Authorization header is not `Bearer <token>`".into())
    })?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::InvalidToken(
            "the Authorization header is not `Bearer <token>`".into(),
        ));
    }
    Ok(token.trim())
}

/// Who is calling: the `Authorization` header and the client address.
pub struct Caller {
    pub authorization: Option<String>,
    pub client: Option<SocketAddr>,
}

impl Caller {
    fn authorization(&self) -> Option<&str> {
        self.authorization.as_deref()
    }
}

/// A verified token and the current state of its user, admitted.
struct Authed {
    token: Verified,
    served: Served,
    state: Arc<UserState>,
}

impl Ctx {
    fn verify(&self, header: Option<&str>) -> Result<Verified, ApiError> {
        let token = bearer(header)?;
        self.tokens.verify(token).map_err(|e| match e {
            TokenError::Expired => ApiError::InvalidToken(e.to_string()),
            TokenError::Invalid => ApiError::InvalidToken(e.to_string()),
        })
    }

    async fn authenticate(&self, header: Option<&str>, lookup: Lookup) -> Result<Authed, ApiError> {
        let token = self.verify(header)?;
        let started = Instant::now();
        let result = self.router.resolve(token.user_id, lookup).await;
        let outcome = match &result {
            Ok(s) if s.hit => Outcome::Hit,
            Ok(_) => Outcome::Miss,
            Err(_) => Outcome::Error,
        };
        self.telemetry.resolved(outcome, started.elapsed());
        let served = result?;
        let facts = TokenFacts {
            sid: &token.sid,
            issued_ms: token.issued_ms,
        };
        let state = Arc::clone(served.fetched.admit(&facts)?);
        Ok(Authed {
            token,
            served,
            state,
        })
    }

    async fn admin(&self, header: Option<&str>) -> Result<Authed, ApiError> {
        let authed = self.authenticate(header, Lookup::Resolve).await?;
        if authed.state.user.role != "admin" {
            return Err(ApiError::Forbidden("this route needs the admin role"));
        }
        Ok(authed)
    }

    /// Records an admin action: a structured log event (target
    /// `sessiond::audit`) and a row of the audit trail. Never holds a
    /// password or a token.
    async fn audit(
        &self,
        admin: &Authed,
        caller: &Caller,
        action: &str,
        target: Option<i64>,
        detail: Option<String>,
    ) {
        let entry = AuditEntry {
            at: self.clock.now_ms(),
            actor_id: Some(admin.state.user.id),
            actor_email: Some(admin.state.user.email.clone()),
            action: action.to_string(),
            target_id: target,
            detail,
            client: caller.client.map(|c| c.ip().to_string()),
        };
        tracing::info!(
            target: "sessiond::audit",
            actor_id = admin.state.user.id,
            actor = %admin.state.user.email,
            action = %entry.action,
            target_id = ?entry.target_id,
            detail = entry.detail.as_deref().unwrap_or(""),
            client = entry.client.as_deref().unwrap_or(""),
            "admin action"
        );
        if let Err(e) = self.db.record_audit(&entry).await {
            tracing::warn!(error = %crate::store::describe(&e), "audit entry not stored");
        }
    }

    /// Write-through: the cached record is dropped before the write is
    /// acknowledged.
    async fn invalidate(&self, user_id: i64, min_version: Option<i64>) {
        self.router
            .invalidate(user_id, min_version, InvalidationSource::Api)
            .await;
    }

    fn session_reply(&self, a: &Authed) -> Response {
        json(
            StatusCode::OK,
            &SessionJson {
                user: UserJson::from(&a.state.user),
                expires: rfc3339_ms(a.token.exp.saturating_mul(1000)),
                cache: CacheJson {
                    hit: a.served.hit,
                    age_ms: a.served.age.as_millis() as u64,
                    ttl_ms: self.router.config().ttl.as_millis() as u64,
                    version: a.state.version,
                    node: a.served.node.as_deref().unwrap_or(self.router.node()),
                },
            },
        )
    }
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
        (status = 403, description = "`forbidden`: the account is deactivated.", body = super::error::ErrorBody),
        (status = 413, response = super::openapi::PayloadTooLarge),
        (status = 429, response = super::openapi::RateLimited),
        (status = 503, response = super::openapi::Unavailable),
    )
)]
pub async fn login(ctx: Arc<Ctx>, client: Option<SocketAddr>, body: Body) -> Answer {
    let req: LoginRequest = parse_json(&body?)?;
    let email = req.email.trim().to_lowercase();
    let address = client.map(|c| c.ip().to_string());
    ctx.limiter
        .check(&email, address.as_deref())
        .map_err(ApiError::RateLimited)?;
    if req.password.len() > MAX_PASSWORD {
        ctx.limiter.failed(&email, address.as_deref());
        return Err(ApiError::InvalidCredentials);
    }
    let found = ctx.db.credentials(&email).await.map_err(ApiError::db)?;
    // An unknown email is checked against a dummy hash, so the answer takes
    // as long as for a known one.
    let (row, hash) = match found {
        Some((row, hash)) => (Some(row), hash),
        None => (None, ctx.dummy_hash.clone()),
    };
    let ok = ctx
        .verify_password(req.password, hash)
        .await
        .ok_or_else(|| ApiError::Unavailable("too many logins in progress; try again".into()))?;
    let row = match row {
        Some(row) if ok => row,
        _ => {
            ctx.limiter.failed(&email, address.as_deref());
            return Err(ApiError::InvalidCredentials);
        }
    };
    ctx.limiter.succeeded(&email);
    if row.status != Status::Active {
        return Err(ApiError::Forbidden("the account is deactivated"));
    }
    let (token, claims) = ctx
        .tokens
        .issue(row.id)
        .map_err(|e| ApiError::Internal(e.into()))?;
    let user = row.user();
    Ok(json(
        StatusCode::OK,
        &LoginJson {
            token,
            token_type: "Bearer",
            expires_at: rfc3339_ms(claims.exp.saturating_mul(1000)),
            user: UserJson::from(&user),
        },
    ))
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
    let a = ctx
        .authenticate(caller.authorization(), Lookup::Resolve)
        .await?;
    Ok(ctx.session_reply(&a))
}

#[utoipa::path(
    post,
    path = "/api/auth/refresh-session",
    tag = "auth",
    security(("bearer" = [])),
    request_body(content = Option<RefreshRequest>, description = "Optional; `force` reads the database."),
    responses(
        (status = 200, description = "The token's user as of now.", body = SessionJson),
        (status = 400, response = super::openapi::BadRequest),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 413, response = super::openapi::PayloadTooLarge),
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
    let a = ctx.authenticate(caller.authorization(), lookup).await?;
    Ok(ctx.session_reply(&a))
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
        .authenticate(caller.authorization(), Lookup::Resolve)
        .await?;
    let version = ctx
        .db
        .revoke_token(
            a.token.user_id,
            &a.token.sid,
            a.token.exp.saturating_mul(1000),
        )
        .await
        .map_err(ApiError::db)?;
    ctx.invalidate(a.token.user_id, version).await;
    Ok(no_content(StatusCode::NO_CONTENT))
}

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
    let admin = ctx.admin(caller.authorization()).await?;
    let req: CreateUserRequest = parse_json(&body?)?;
    let email = normalize_email(&req.email)?;
    validate_new_password(&req.password)?;
    let role = req.role.unwrap_or_else(|| "user".to_string());
    validate_role(&role)?;
    let hash = ctx.hash_password(req.password).await?;
    match ctx.db.create_user(&email, &hash, &role).await {
        Ok(row) => {
            ctx.audit(
                &admin,
                &caller,
                "user.create",
                Some(row.id),
                Some(format!("role={}", row.role)),
            )
            .await;
            let mut reply = user_json(&row);
            *reply.status_mut() = StatusCode::CREATED;
            Ok(reply)
        }
        Err(WriteError::EmailTaken) => Err(ApiError::Conflict(
            "a user with this email already exists".into(),
        )),
        Err(WriteError::Db(e)) => Err(ApiError::db(e)),
    }
}

fn not_found(id: i64) -> ApiError {
    ApiError::NotFound(format!("no user with id {id}"))
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
    ctx.admin(caller.authorization()).await?;
    let id = parse_user_id(&id)?;
    let row = ctx.db.user(id).await.map_err(ApiError::db)?;
    row.map(|r| user_json(&r)).ok_or_else(|| not_found(id))
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
    let admin = ctx.admin(caller.authorization()).await?;
    let id = parse_user_id(&id)?;
    let req: RoleRequest = parse_json(&body?)?;
    validate_role(&req.role)?;
    let row = ctx
        .db
        .set_role(id, &req.role)
        .await
        .map_err(ApiError::db)?
        .ok_or_else(|| not_found(id))?;
    ctx.invalidate(id, Some(row.version)).await;
    ctx.audit(
        &admin,
        &caller,
        "user.role",
        Some(id),
        Some(format!("role={}", row.role)),
    )
    .await;
    Ok(user_json(&row))
}

pub async fn set_status(ctx: Arc<Ctx>, id: String, caller: Caller, status: Status) -> Answer {
    let admin = ctx.admin(caller.authorization()).await?;
    let id = parse_user_id(&id)?;
    let row = ctx
        .db
        .set_status(id, status)
        .await
        .map_err(ApiError::db)?
        .ok_or_else(|| not_found(id))?;
    ctx.invalidate(id, Some(row.version)).await;
    let action = match status {
        Status::Active => "user.activate",
        Status::Deactivated => "user.deactivate",
    };
    ctx.audit(&admin, &caller, action, Some(id), None).await;
    Ok(user_json(&row))
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
    let admin = ctx.admin(caller.authorization()).await?;
    let id = parse_user_id(&id)?;
    if !ctx.db.delete_user(id).await.map_err(ApiError::db)? {
        return Err(not_found(id));
    }
    ctx.invalidate(id, None).await;
    ctx.audit(&admin, &caller, "user.delete", Some(id), None)
        .await;
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
    let admin = ctx.admin(caller.authorization()).await?;
    let id = parse_user_id(&id)?;
    ctx.invalidate(id, None).await;
    ctx.audit(&admin, &caller, "user.invalidate", Some(id), None)
        .await;
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
    let admin = ctx.admin(caller.authorization()).await?;
    let id = parse_user_id(&id)?;
    let version = ctx
        .db
        .revoke_all(id)
        .await
        .map_err(ApiError::db)?
        .ok_or_else(|| not_found(id))?;
    ctx.invalidate(id, Some(version)).await;
    ctx.audit(&admin, &caller, "user.revoke_sessions", Some(id), None)
        .await;
    Ok(no_content(StatusCode::NO_CONTENT))
}

#[utoipa::path(
    get,
    path = "/api/perf",
    tag = "ops",
    responses((status = 200, description = "Cache performance and advice.", body = PerfJson))
)]
pub async fn perf(ctx: Arc<Ctx>) -> Answer {
    Ok(json(StatusCode::OK, &perf_json(&ctx)))
}

/// Everything `/api/perf` and the dashboard show.
pub fn perf_json(ctx: &Ctx) -> PerfJson {
    crate::perf::snapshot(
        ctx.telemetry.perf(),
        &ctx.router,
        ctx.db.postgres().is_some(),
    )
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "ops",
    responses((status = 200, description = "Prometheus text exposition.", body = String, content_type = "text/plain"))
)]
pub async fn metrics(ctx: Arc<Ctx>) -> Answer {
    let mut reply = warp::reply::with_header(
        ctx.telemetry.render(),
        "content-type",
        "text/plain; version=0.0.4; charset=utf-8",
    )
    .into_response();
    *reply.status_mut() = StatusCode::OK;
    Ok(reply)
}

#[utoipa::path(
    get,
    path = "/healthz",
    tag = "ops",
    responses((status = 200, description = "The process is alive.", body = super::openapi::Health))
)]
pub async fn healthz() -> Answer {
    Ok(json(StatusCode::OK, &serde_json::json!({"status": "ok"})))
}

#[utoipa::path(
    get,
    path = "/readyz",
    tag = "ops",
    responses(
        (status = 200, description = "The database answers and the cluster (if any) is joined.", body = super::openapi::Ready),
        (status = 503, response = super::openapi::Unavailable),
    )
)]
pub async fn readyz(ctx: Arc<Ctx>) -> Answer {
    let cluster = match &ctx.cluster {
        None => "alone",
        Some(c) if c.joined() => "joined",
        Some(_) => {
            return Err(ApiError::Unavailable(
                "this node has not joined its cluster yet".into(),
            ))
        }
    };
    match tokio::time::timeout(Duration::from_secs(2), ctx.db.ping()).await {
        Ok(Ok(())) => Ok(json(
            StatusCode::OK,
            &serde_json::json!({
                "status": "ready",
                "database": "ok",
                "cluster": cluster,
                "members": ctx.router.members().iter().map(|m| m.to_string()).collect::<Vec<_>>(),
            }),
        )),
        Ok(Err(e)) => Err(ApiError::db(e)),
        Err(_) => Err(ApiError::Unavailable(
            "the database did not answer within 2 s".into(),
        )),
    }
}

#[utoipa::path(
    get,
    path = "/",
    tag = "ops",
    responses((status = 200, description = "The live dashboard page.", body = String, content_type = "text/html"))
)]
pub async fn dashboard() -> Answer {
    Ok(warp::reply::html(super::page::DASHBOARD).into_response())
}
