//! The HTTP front (warp): filters compose routes, handlers are thin
//! adapters (parse, call one use case of [`crate::usecases`], render) that
//! never reject, one recover turns rejections into JSON errors, one log hook
//! records every request's metrics and access line. The listener
//! ([`server`]) gives each request its id ([`request_id`]).
//!
//! Kept whole: the route table and the caller every route extracts are
//! one place to read which routes exist and what each is given.
//!
//! - [`sessions`]: login, session, refresh, logout, password change.
//! - [`admin`]: the routes under `/api/admin/users`.
//! - [`appkeys`]: `POST /api/sessions`, an app key minting a user's token.
//! - [`better_auth`]: `GET /api/better-auth/get-session`, Better Auth's
//!   own session cookie answered (docs/better-auth.md).
//! - [`handlers`]: the operations routes (perf, metrics, health, dashboard).
//! - [`models`], [`reply`], [`error`]: JSON shapes in and out, errors.

pub mod admin;
pub mod appkeys;
pub mod better_auth;
pub mod client_addr;
mod conns;
pub mod drain;
pub mod error;
pub mod forward_auth;
pub mod handlers;
mod headers;
pub mod hot;
pub mod models;
pub mod openapi;
mod page;
pub mod reply;
pub mod request_id;
pub mod server;
pub mod sessions;
pub mod tls;

use std::net::IpAddr;
use std::sync::Arc;

use bytes::{Buf, BytesMut};
use futures_util::{Stream, StreamExt};
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use sessiond_actors::Router;

use crate::clock::Clock;
use crate::cluster::Cluster;
use crate::metrics::Telemetry;
use crate::store::Db;
use crate::usecases::appkeys::{self as app_keys, AppKeys, Scope};
use crate::usecases::authenticate::{bearer, AuthError, Authed, Authenticator};
use crate::usecases::login::Login;
use crate::usecases::users::Users;
use crate::usecases::{Audit, Origin, Principal};
use error::ApiError;
use handlers as h;
use reply::{Answer, Body};
use request_id::RequestId;

/// What every handler shares.
pub struct Ctx {
    pub db: Db,
    pub router: Router,
    pub telemetry: Arc<Telemetry>,
    pub clock: Clock,
    /// Cluster membership, when this node is part of one.
    pub cluster: Option<Cluster>,
    pub auth: Authenticator,
    pub login: Login,
    pub users: Users,
    /// App credentials: checked on each use; minting.
    pub appkeys: AppKeys,
    /// The audit trail (also held by `login` and `users`).
    pub audit: Audit,
    /// Whose forwarded client addresses are believed.
    pub trusted_proxies: client_addr::TrustedProxies,
    /// Set once the node is leaving (`/readyz` 503); counts what still comes.
    pub drain: Arc<drain::Drain>,
    /// The forward-auth route's cookie and identity headers.
    pub forward_auth: forward_auth::ForwardAuthArgs,
    /// Better Auth's sessions, when `[better_auth]` is on.
    pub better_auth: Option<Arc<crate::usecases::better_auth::BetterAuthSessions>>,
}

/// Who is calling: the `Authorization` header, the client address, the
/// request's id and what it asked for.
pub struct Caller {
    pub authorization: Option<String>,
    /// Resolved through trusted proxies (see [`client_addr`]).
    pub client: Option<IpAddr>,
    pub request_id: Option<RequestId>,
    pub method: warp::http::Method,
    pub path: warp::path::FullPath,
}

impl Caller {
    pub fn authorization(&self) -> Option<&str> {
        self.authorization.as_deref()
    }

    /// Where the request came from, as audit entries name it.
    pub fn origin(&self) -> Origin {
        origin(self.client, self.request_id.as_ref())
    }

    /// The caller, as audit entries name it.
    pub fn principal(&self, authed: &Authed) -> Principal {
        authed.principal(self.origin())
    }

    /// `METHOD /path`, as audit entries name a route.
    pub fn route(&self) -> String {
        format!("{} {}", self.method, self.path.as_str())
    }

    /// The caller, who must be an admin: a user with the admin role now,
    /// or an app key with the `admin` scope. A caller who is not is refused
    /// (403) and the refusal audited: who, and which route. An app key's
    /// every use is audited (`appkey.admin`, with the route).
    pub async fn admin(&self, ctx: &Ctx) -> Result<Principal, ApiError> {
        if let Some(key) = self.app_key() {
            let origin = self.origin();
            let route = self.route();
            let key = ctx
                .appkeys
                .check(key, Scope::Admin, &route, &origin)
                .await?;
            ctx.audit
                .app_key_used(&key, "appkey.admin", None, Some(route), &origin);
            return Ok(Principal::app_key(&key, origin));
        }
        match ctx.auth.admin(self.authorization()).await {
            Ok(authed) => Ok(self.principal(&authed)),
            Err(AuthError::NotAdmin { id, email }) => {
                let route = self.route();
                let who = Principal::new(id.clone(), email.clone(), self.origin());
                ctx.audit.forbidden(&who, &route);
                Err(AuthError::NotAdmin { id, email }.into())
            }
            Err(e) => Err(e.into()),
        }
    }
}

impl Caller {
    /// The bearer credential when it is an app key (`sdk_…`).
    pub fn app_key(&self) -> Option<&str> {
        bearer(self.authorization())
            .ok()
            .filter(|c| app_keys::is_app_key(c))
    }
}

/// A request's origin in the use cases' terms.
pub fn origin(client: Option<IpAddr>, request_id: Option<&RequestId>) -> Origin {
    Origin {
        client: client.map(|c| c.to_string()),
        request_id: request_id.map(|r| r.as_str().to_string()),
    }
}

/// Which routes a listener serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Front {
    /// Every route (no `--ops-listen`).
    Both,
    /// The API listener beside an operations listener: no `/metrics`,
    /// `/api/perf` or dashboard, and `/readyz` without the members.
    Api,
    /// The operations listener (`--ops-listen`): `/metrics`, `/api/perf`,
    /// the dashboard, `/healthz` and `/readyz` with the members.
    Ops,
}

/// The routes only the operations listener serves when there is one.
pub const OPS_ONLY: [&str; 3] = ["/metrics", "/api/perf", "/"];

impl Front {
    /// Whether this listener serves `path` (anything else is 404).
    pub fn serves(self, path: &str) -> bool {
        match self {
            Front::Both => true,
            Front::Api => !OPS_ONLY.contains(&path),
            Front::Ops => OPS_ONLY.contains(&path) || path == "/healthz" || path == "/readyz",
        }
    }
}

/// The largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;

/// Reads the body, refusing more than [`MAX_BODY`] bytes (by the declared
/// length when there is one, else while reading).
fn body() -> impl Filter<Extract = (Body,), Error = Rejection> + Clone {
    warp::header::optional::<u64>("content-length")
        .and(warp::header::optional::<String>("content-type"))
        .and(warp::body::stream())
        .then(
            |declared: Option<u64>, kind: Option<String>, stream| async move {
                let body = read_limited(declared, stream).await?;
                headers::json_body(kind.as_deref(), &body)?;
                Ok(body)
            },
        )
}

async fn read_limited<S, B>(declared: Option<u64>, stream: S) -> Body
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(ApiError::PayloadTooLarge(MAX_BODY));
    }
    let mut stream = std::pin::pin!(stream);
    let mut buf = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let mut chunk =
            chunk.map_err(|_| ApiError::BadRequest("the request body could not be read".into()))?;
        if buf.len() + chunk.remaining() > MAX_BODY {
            return Err(ApiError::PayloadTooLarge(MAX_BODY));
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            let n = part.len();
            buf.extend_from_slice(part);
            chunk.advance(n);
        }
    }
    Ok(buf.freeze())
}

fn done(answer: Answer) -> Response {
    match answer {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

/// Every route of the API, with errors as JSON and metrics recorded.
pub fn routes(ctx: Arc<Ctx>) -> BoxedFilter<(impl Reply,)> {
    routes_of(ctx, Front::Both)
}

/// The routes `front` serves; the others answer 404.
pub fn routes_of(ctx: Arc<Ctx>, front: Front) -> BoxedFilter<(impl Reply,)> {
    let c = {
        let ctx = Arc::clone(&ctx);
        warp::any().map(move || Arc::clone(&ctx))
    };
    let client = client_addr::client();
    let request_id = || warp::ext::optional::<RequestId>();
    let auth = || {
        warp::header::optional::<String>("authorization")
            .and(client.clone())
            .and(request_id())
            .and(warp::method())
            .and(warp::path::full())
            .map(|authorization, client, request_id, method, path| Caller {
                authorization,
                client,
                request_id,
                method,
                path,
            })
    };
    let users = || {
        warp::path("api")
            .and(warp::path("admin"))
            .and(warp::path("users"))
    };

    // Each handler's future is boxed when its route is taken: the routes'
    // future (an enum as large as its largest handler's future) stays a few
    // words, so that trying the routes one after another, and hyper, move
    // pointers rather than KiBs. Left inline: the handlers that hold nothing
    // across an await (`/healthz`, the OpenAPI document, the dashboard), and
    // the session lookup, the route most taken, whose future is large
    // enough that boxing it costs more in malloc than the moves it saves.
    let login = warp::path!("api" / "auth" / "login")
        .and(warp::post())
        .and(c.clone())
        .and(client.clone())
        .and(request_id())
        .and(body())
        .then(|c, client, id, body| Box::pin(sessions::login(c, client, id, body)));
    let session = warp::path!("api" / "auth" / "session")
        .and(warp::get())
        .and(c.clone())
        .and(auth())
        .then(sessions::session);
    let refresh = warp::path!("api" / "auth" / "refresh-session")
        .and(warp::post())
        .and(c.clone())
        .and(auth())
        .and(body())
        .then(|c, auth, body| Box::pin(sessions::refresh_session(c, auth, body)));
    let logout = warp::path!("api" / "auth" / "logout")
        .and(warp::post())
        .and(c.clone())
        .and(auth())
        .then(|c, auth| Box::pin(sessions::logout(c, auth)));
    let password = warp::path!("api" / "auth" / "password")
        .and(warp::post())
        .and(c.clone())
        .and(auth())
        .and(body())
        .then(|c, auth, body| Box::pin(sessions::change_password(c, auth, body)));
    // The methods of the requests a proxy checks (Envoy's check carries the
    // original request's); any other is 405, as on every route.
    let forward_methods = warp::get()
        .or(warp::head())
        .unify()
        .or(warp::post())
        .unify()
        .or(warp::put())
        .unify()
        .or(warp::delete())
        .unify()
        .or(warp::patch())
        .unify();
    let forward = warp::path!("api" / "auth" / "forward")
        .and(forward_methods)
        .and(c.clone())
        .and(auth())
        .and(warp::header::headers_cloned())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .then(|c, auth, headers, query| Box::pin(forward_auth::forward(c, auth, headers, query)));
    let better_auth = warp::path!("api" / "better-auth" / "get-session")
        .and(warp::get())
        .and(c.clone())
        .and(auth())
        .and(warp::header::headers_cloned())
        .then(|c, auth, headers| Box::pin(better_auth::get_session(c, auth, headers)));
    let mint = warp::path!("api" / "sessions")
        .and(warp::post())
        .and(c.clone())
        .and(auth())
        .and(body())
        .then(|c, auth, body| Box::pin(appkeys::mint(c, auth, body)));
    // Minting after the session routes: a session lookup never tries it.
    let auth_routes = login
        .or(session)
        .unify()
        .or(forward)
        .unify()
        .or(refresh)
        .unify()
        .or(logout)
        .unify()
        .or(password)
        .unify()
        .or(better_auth)
        .unify()
        .or(mint)
        .unify()
        .map(done);

    let create = users()
        .and(warp::path::end())
        .and(warp::post())
        .and(c.clone())
        .and(auth())
        .and(body())
        .then(|c, auth, body| Box::pin(admin::create_user(c, auth, body)));
    let get = users()
        .and(warp::path::param::<String>())
        .and(warp::path::end())
        .and(warp::get())
        .and(c.clone())
        .and(auth())
        .then(|id, ctx, auth| Box::pin(admin::get_user(ctx, id, auth)));
    let delete = users()
        .and(warp::path::param::<String>())
        .and(warp::path::end())
        .and(warp::delete())
        .and(c.clone())
        .and(auth())
        .then(|id, ctx, auth| Box::pin(admin::delete_user(ctx, id, auth)));
    let role = users()
        .and(warp::path::param::<String>())
        .and(warp::path("role"))
        .and(warp::path::end())
        .and(warp::put())
        .and(c.clone())
        .and(auth())
        .and(body())
        .then(|id, ctx, auth, body| Box::pin(admin::set_role(ctx, id, auth, body)));
    let reset_password = users()
        .and(warp::path::param::<String>())
        .and(warp::path("password"))
        .and(warp::path::end())
        .and(warp::put())
        .and(c.clone())
        .and(auth())
        .and(body())
        .then(|id, ctx, auth, body| Box::pin(admin::reset_password(ctx, id, auth, body)));
    let action = |name: &'static str| {
        users()
            .and(warp::path::param::<String>())
            .and(warp::path(name))
            .and(warp::path::end())
            .and(warp::post())
            .and(c.clone())
            .and(auth())
    };
    let deactivate =
        action("deactivate").then(|id, ctx, auth| Box::pin(admin::deactivate(ctx, id, auth)));
    let activate =
        action("activate").then(|id, ctx, auth| Box::pin(admin::activate(ctx, id, auth)));
    let invalidate =
        action("invalidate").then(|id, ctx, auth| Box::pin(admin::invalidate_user(ctx, id, auth)));
    let revoke = action("revoke-sessions")
        .then(|id, ctx, auth| Box::pin(admin::revoke_sessions(ctx, id, auth)));
    let admin_routes = create
        .or(get)
        .unify()
        .or(delete)
        .unify()
        .or(role)
        .unify()
        .or(deactivate)
        .unify()
        .or(activate)
        .unify()
        .or(invalidate)
        .unify()
        .or(revoke)
        .unify()
        .or(reset_password)
        .unify()
        .map(done);

    let perf = warp::path!("api" / "perf")
        .and(warp::get())
        .and(c.clone())
        .then(|c| Box::pin(h::perf(c)));
    let metrics = warp::path!("metrics")
        .and(warp::get())
        .and(c.clone())
        .then(|c| Box::pin(h::metrics(c)));
    let healthz = warp::path!("healthz").and(warp::get()).then(h::healthz);
    let readyz = warp::path!("readyz")
        .and(warp::get())
        .and(c.clone())
        .and(warp::any().map(move || front))
        .then(|c, front| Box::pin(h::readyz(c, front)));
    let openapi = warp::path!("openapi.json")
        .and(warp::get())
        .then(openapi::openapi_json);
    let dashboard = warp::path::end().and(warp::get()).then(h::dashboard);
    let ops_routes = perf
        .or(metrics)
        .unify()
        .or(healthz)
        .unify()
        .or(readyz)
        .unify()
        .or(openapi)
        .unify()
        .or(dashboard)
        .unify()
        .map(done);

    let telemetry = Arc::clone(&ctx.telemetry);
    // Inside the request's span: the access log line carries its id.
    let record = warp::log::custom(move |info| {
        record(
            &telemetry,
            info.method(),
            info.path(),
            info.status().as_u16(),
            info.elapsed(),
        )
    });
    // Checked first: a path this listener does not serve is 404 whatever
    // its method. Every route on a listener that serves them all.
    let here = warp::path::full()
        .and_then(move |p: warp::path::FullPath| {
            std::future::ready(if front.serves(p.as_str()) {
                Ok(())
            } else {
                Err(warp::reject::not_found())
            })
        })
        .untuple_one();
    let api = here
        .and(auth_routes.or(admin_routes).unify().or(ops_routes).unify())
        .recover(error::recover)
        .unify();
    warp::path::full()
        .and(api)
        .map(|path: warp::path::FullPath, reply| {
            headers::harden(path.as_str(), with_allow(&path, reply))
        })
        .with(record)
        .boxed()
}

/// One request answered: its metrics and its access log line (written
/// inside the request's span, so the line carries the request's id).
pub(crate) fn record(
    telemetry: &Telemetry,
    method: &warp::http::Method,
    path: &str,
    status: u16,
    elapsed: std::time::Duration,
) {
    telemetry.http(path, status, elapsed);
    tracing::info!(
        target: "sessiond::access",
        method = %method,
        route = crate::metrics::route_label(path),
        status,
        duration_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        "request"
    );
}

/// A 405 names the methods the path takes (RFC 9110), as the OpenAPI
/// description lists them.
fn with_allow(path: &warp::path::FullPath, mut reply: Response) -> Response {
    if reply.status() == warp::http::StatusCode::METHOD_NOT_ALLOWED {
        if let Some(allow) = openapi::allowed_methods(path.as_str())
            .and_then(|a| warp::http::HeaderValue::from_str(&a).ok())
        {
            reply.headers_mut().insert(warp::http::header::ALLOW, allow);
        }
    }
    reply
}
