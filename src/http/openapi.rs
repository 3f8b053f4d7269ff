//! `GET /openapi.json`: the OpenAPI 3 description of the API, generated
//! from the code. The JSON shapes are derived (`utoipa::ToSchema`) from the
//! very structs the handlers serialize and parse (models.rs, error.rs), and
//! each route's method, path, body and statuses are declared by a
//! `#[utoipa::path]` on its handler (handlers.rs). The test
//! `tests/api/openapi.rs` holds this description against the live router,
//! both ways.
//!
//! Kept whole: the document's one list of paths, schemas and reusable
//! answers; split, a route could be served and left out of the list.
//!
//! The same description answers `Allow` on a 405 ([`allowed_methods`]), so
//! what the router advertises and what the document says are one list.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi, ToSchema};
use warp::http::StatusCode;
use warp::Reply;

use super::error::ErrorCode;
use super::handlers as h;
use super::reply::Answer;
use super::{admin, sessions};

/// The status of a user.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // a schema only: the field it describes is a `&str`
pub enum UserStatus {
    Active,
    Deactivated,
}

/// A user id, as the application spells it: an integer (a JSON number),
/// or a string (a UUID, a cuid, a nanoid...). Either form is accepted
/// wherever an id is read; `"42"` and `42` name the same user.
pub struct UserIdSchema;

/// What a text id may hold (`sessiond_actors::UserId`).
pub const USER_ID_PATTERN: &str = "^[A-Za-z0-9._~:@+=-]*[A-Za-z0-9][A-Za-z0-9._~:@+=-]*$";

impl utoipa::PartialSchema for UserIdSchema {
    fn schema() -> RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, OneOfBuilder, SchemaFormat};
        use utoipa::openapi::{ObjectBuilder, Type};
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64))),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .min_length(Some(1))
                    .max_length(Some(128))
                    .pattern(Some(USER_ID_PATTERN)),
            )
            .description(Some(
                "A user id: an integer, or a string of 1 to 128 ASCII letters, digits and \
                 `-_.~:@+=`, with at least one letter or digit (a UUID, a cuid, a nanoid...).",
            ))
            .into()
    }
}

impl ToSchema for UserIdSchema {
    fn name() -> std::borrow::Cow<'static, str> {
        "UserId".into()
    }
}

/// The document's list of error codes: those of [`ErrorCode::ALL`] that
/// [`ErrorCode::documented`] keeps, in that order.
impl utoipa::PartialSchema for ErrorCode {
    fn schema() -> RefOr<utoipa::openapi::schema::Schema> {
        let documented = ErrorCode::ALL.iter().filter(|c| c.documented());
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .description(Some("Every code of an error answer."))
            .enum_values(Some(documented.map(|c| c.as_str())))
            .into()
    }
}

impl ToSchema for ErrorCode {
    fn name() -> std::borrow::Cow<'static, str> {
        "ErrorCode".into()
    }
}

/// `GET /healthz`.
#[derive(ToSchema)]
#[allow(dead_code)] // a schema only: the handler answers `json!`
pub struct Health {
    #[schema(pattern = "^ok$")]
    status: String,
}

/// `GET /readyz`, when ready.
#[derive(ToSchema)]
#[allow(dead_code)] // a schema only: the handler answers `json!`
pub struct Ready {
    #[schema(pattern = "^ready$")]
    status: String,
    #[schema(pattern = "^ok$")]
    database: String,
    /// `alone` or `joined`.
    cluster: String,
    /// `held` (answers from its cache), `lost` (its freshness lease
    /// lapsed: it reads every lookup through to the database, which
    /// answers, so it stays ready) or `off` (`--lease 0`, a lone node).
    #[schema(pattern = "^(held|lost|off)$")]
    lease: String,
    /// The members this node sees; left out on the API listener when
    /// `--ops-listen` gives operations a listener of their own.
    #[schema(required = false)]
    members: Option<Vec<String>>,
}

/// The reusable error answers, each an [`super::error::ErrorBody`].
macro_rules! error_responses {
    ($($name:ident => $description:literal,)*) => {
        $(
            pub struct $name;
            impl<'r> utoipa::ToResponse<'r> for $name {
                fn response() -> (&'r str, RefOr<utoipa::openapi::Response>) {
                    let body = Content::new(Some(Ref::from_schema_name("Error")));
                    (
                        stringify!($name),
                        ResponseBuilder::new()
                            .description($description)
                            .content("application/json", body)
                            .into(),
                    )
                }
            }
        )*
    };
}

error_responses! {
    BadRequest => "`bad_request`: an unreadable body, id or header.",
    Unauthorized => "`invalid_token` (missing, malformed, forged or expired token; a `kid` \
        naming an unknown or retired signing key; `iat` in the future, `exp − iat` beyond the \
        token lifetime, or an `aud` other than the configured one) or `session_revoked` (user \
        deactivated or deleted, token logged out or revoked).",
    InvalidCredentials => "`invalid_credentials`: wrong email or password.",
    InvalidAppKey => "`invalid_token`: no app key, or one that is malformed, unknown, revoked, \
        or whose secret is wrong (a previous secret after its rotation's grace period). \
        Every refusal is audited.",
    Forbidden => "`forbidden`: the caller's user does not have the admin role now, or the \
        caller's app key does not have the `admin` scope; or users live in the application's \
        own table, where sessiond only reads them (create, role, activate, deactivate and \
        delete are the application's; get, invalidate and revoke-sessions work).",
    NotFound => "`not_found`: no user with this id.",
    Conflict => "`conflict`: a user with this email exists.",
    LastAdmin => "`conflict`: the user is the last active administrator; demoting, \
        deactivating or deleting them would leave no one able to administer users.",
    PayloadTooLarge => "`payload_too_large`: a body over 64 KiB.",
    UnsupportedMediaType => "`unsupported_media_type`: a body whose `Content-Type` is not \
        `application/json`.",
    RateLimited => "`rate_limited`: too many failed logins for this account or from this \
        address (a guess whose client hangs up counts too); `Retry-After` says when to try \
        again.",
    Unavailable => "`unavailable`: the database cannot be reached and no fresh record is \
        cached (or, for `/readyz`, the node is not ready). For a write, also `locked`: a row \
        the write needs was held by another transaction (one left open in the database) for \
        over a second; nothing was written, and `Retry-After` says when to try again.",
}

/// The errors every admin route on one user (`/api/admin/users/{id}…`) can
/// answer: 400, 401, 403, 404 and 503, each the reusable answer above.
pub struct AdminUserErrors;

impl utoipa::IntoResponses for AdminUserErrors {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        [
            ("400", "BadRequest"),
            ("401", "Unauthorized"),
            ("403", "Forbidden"),
            ("404", "NotFound"),
            ("503", "Unavailable"),
        ]
        .into_iter()
        .map(|(status, name)| (status.to_string(), Ref::from_response_name(name).into()))
        .collect()
    }
}

/// `X-Request-Id`: a header of every answer, and a request header that
/// only a trusted proxy may set.
struct RequestIdHeader;

impl Modify for RequestIdHeader {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::header::HeaderBuilder;
        use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
        use utoipa::openapi::{Object, Required, Type};

        let answer = HeaderBuilder::new()
            .schema(Object::with_type(Type::String))
            .description(Some(
                "This request's id: the one a trusted proxy sent, else a new one (32 hex \
             digits). Every log line and audit entry of the request carries it.",
            ))
            .build();
        let with_header = |r: &mut RefOr<utoipa::openapi::Response>| {
            if let RefOr::T(r) = r {
                r.headers.insert("X-Request-Id".into(), answer.clone());
            }
        };
        let asked = ParameterBuilder::new()
            .name("X-Request-Id")
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .description(Some(
                "Kept as the request's id only from a peer listed in `--trusted-proxies`, \
                 and only when it is 1 to 128 visible ASCII characters; otherwise ignored.",
            ))
            // Any value is accepted (an unusable one is replaced, not
            // refused), so the schema constrains nothing.
            .schema(Some(Object::builder().schema_type(Type::String)))
            .build();
        for item in openapi.paths.paths.values_mut() {
            let ops = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for op in ops.into_iter().flatten() {
                op.parameters
                    .get_or_insert_with(Vec::new)
                    .push(asked.clone());
                op.responses.responses.values_mut().for_each(with_header);
            }
        }
        if let Some(components) = openapi.components.as_mut() {
            components.responses.values_mut().for_each(with_header);
        }
    }
}

/// The schemes `security(("bearer" = []))` and `security(("appKey" = []))`
/// refer to.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A token from `POST /api/auth/login`: an HS256 JWT whose header's \
                         `kid` names the signing key. Admin routes need a token whose user has \
                         the admin role now.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "appKey",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("sdk_<id>_<secret>")
                    .description(Some(
                        "An app credential from `sessiond appkey create`, for an app's own \
                         server: the `mint` scope mints sessions (`POST /api/sessions`), the \
                         `admin` scope calls the admin routes. Checked against the database on \
                         every use (a revocation holds on every node from the next request); \
                         every use and every refusal is audited.",
                    ))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "sessiond",
        description = "Who is this token's user, and what may they do right now? \
            Errors are always `{\"error\": CODE, \"message\": TEXT}`. Every answer \
            carries `X-Request-Id`."
    ),
    paths(
        sessions::login,
        sessions::session,
        sessions::refresh_session,
        sessions::logout,
        sessions::change_password,
        super::appkeys::mint,
        super::forward_auth::forward,
        super::better_auth::get_session,
        admin::create_user,
        admin::get_user,
        admin::delete_user,
        admin::set_role,
        admin::deactivate,
        admin::activate,
        admin::invalidate_user,
        admin::revoke_sessions,
        admin::reset_password,
        h::perf,
        h::metrics,
        h::healthz,
        h::readyz,
        h::dashboard,
        openapi_json,
    ),
    components(
        schemas(super::error::ErrorBody, ErrorCode),
        responses(
            BadRequest,
            Unauthorized,
            InvalidCredentials,
            InvalidAppKey,
            Forbidden,
            NotFound,
            Conflict,
            LastAdmin,
            PayloadTooLarge,
            UnsupportedMediaType,
            RateLimited,
            Unavailable
        )
    ),
    modifiers(&BearerScheme, &RequestIdHeader),
    tags(
        (name = "auth", description = "Logging in and resolving sessions."),
        (name = "better-auth", description = "Better Auth's own sessions, resolved from the cache (docs/better-auth.md)."),
        (name = "admin", description = "User administration: admin tokens, or app keys with the `admin` scope."),
        (name = "ops", description = "Health, readiness, metrics, the dashboard.")
    )
)]
pub struct ApiDoc;

/// The description, built once.
pub fn document() -> &'static utoipa::openapi::OpenApi {
    static DOC: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOC.get_or_init(ApiDoc::openapi)
}

fn document_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        let mut value = serde_json::to_value(document()).unwrap_or_else(|e| {
            tracing::error!(error = %e, "the OpenAPI description does not serialize");
            serde_json::Value::Null
        });
        camel_case_links(&mut value);
        value.to_string()
    })
}

/// utoipa 5 writes a Link object's fields in snake case (`operation_id`);
/// OpenAPI spells them `operationId`, `operationRef`, `requestBody`.
fn camel_case_links(value: &mut serde_json::Value) {
    let Some(paths) = value.get_mut("paths").and_then(|p| p.as_object_mut()) else {
        return;
    };
    let links = paths
        .values_mut()
        .filter_map(|item| item.as_object_mut())
        .flat_map(|item| item.values_mut())
        .filter_map(|op| op.get_mut("responses")?.as_object_mut())
        .flat_map(|responses| responses.values_mut())
        .filter_map(|r| r.get_mut("links")?.as_object_mut())
        .flat_map(|links| links.values_mut())
        .filter_map(|link| link.as_object_mut());
    for link in links {
        for (from, to) in [
            ("operation_id", "operationId"),
            ("operation_ref", "operationRef"),
            ("request_body", "requestBody"),
        ] {
            if let Some(v) = link.remove(from) {
                link.insert(to.to_string(), v);
            }
        }
    }
}

/// The `Allow` header for `path`: the methods the description lists for the
/// path template it matches (`{…}` matches any one segment), or `None`
/// when it matches none.
pub fn allowed_methods(path: &str) -> Option<String> {
    static TABLE: OnceLock<Vec<(Vec<String>, String)>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        document()
            .paths
            .paths
            .iter()
            .map(|(template, item)| {
                let methods = [
                    ("GET", item.get.is_some()),
                    ("PUT", item.put.is_some()),
                    ("POST", item.post.is_some()),
                    ("DELETE", item.delete.is_some()),
                    ("PATCH", item.patch.is_some()),
                ];
                let allow: Vec<&str> = methods
                    .iter()
                    .filter(|(_, on)| *on)
                    .map(|(m, _)| *m)
                    .collect();
                (segments(template), allow.join(", "))
            })
            .collect()
    });
    let wanted = segments(path);
    table.iter().find_map(|(template, allow)| {
        let same = template.len() == wanted.len()
            && template
                .iter()
                .zip(&wanted)
                .all(|(t, w)| (t.starts_with('{') && t.ends_with('}') && !w.is_empty()) || t == w);
        same.then(|| allow.clone())
    })
}

/// A path's segments, one trailing slash ignored (as the router does).
fn segments(path: &str) -> Vec<String> {
    let path = path.strip_prefix('/').unwrap_or(path);
    let path = path.strip_suffix('/').unwrap_or(path);
    if path.is_empty() {
        return Vec::new();
    }
    path.split('/').map(str::to_string).collect()
}

/// This description.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "ops",
    responses((status = 200, description = "This OpenAPI description.", body = Object))
)]
pub async fn openapi_json() -> Answer {
    let mut reply = warp::reply::with_header(document_json(), "content-type", "application/json")
        .into_response();
    *reply.status_mut() = StatusCode::OK;
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_lists_the_documented_methods() {
        assert_eq!(allowed_methods("/healthz").as_deref(), Some("GET"));
        assert_eq!(
            allowed_methods("/api/admin/users/17").as_deref(),
            Some("GET, DELETE")
        );
        assert_eq!(
            allowed_methods("/api/admin/users/x/role/").as_deref(),
            Some("PUT")
        );
        assert_eq!(allowed_methods("/").as_deref(), Some("GET"));
        assert_eq!(allowed_methods("/nowhere"), None);
        assert_eq!(allowed_methods("/api/admin/users//role"), None);
    }
}
