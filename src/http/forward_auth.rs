//! `GET /api/auth/forward`: the check a reverse proxy makes before it lets
//! a request through (NGINX `auth_request`, Caddy `forward_auth`, Traefik
//! `forwardAuth`, HAProxy through Lua, Envoy `ext_authz`). GET, HEAD,
//! POST, PUT, DELETE and PATCH are answered alike (Envoy's check carries the
//! original request's method), any other method is 405; a body is never
//! read.
//!
//! The credential is the `Authorization: Bearer` header, or else the cookie
//! named by `--forward-auth-cookie`; it is resolved by the same use case as
//! `GET /api/auth/session`, so a change acknowledged by an admin route is
//! seen by the next check. The answer is 200 with the identity headers the
//! operator named (`--forward-auth-headers`, none by default), 401 without
//! a valid session, 403 when the proxy asks for roles (`X-Required-Role`
//! or `?role=`, comma-separated: any one suffices) that the user does not
//! hold, 400 on unreadable or oversized input, 503 when the record cannot
//! be read. Every answer is `Cache-Control: no-store`. The original method
//! and URI the proxy sends (`X-Forwarded-Method`, `X-Forwarded-Uri`,
//! `X-Original-Method`, `X-Original-URI`) are written to the log and
//! decide nothing.
//!
//! Kept whole: the flags, the reading of the proxy's request and the answer
//! are one contract with the proxies' configurations in `deploy/proxies/`,
//! read best in one place; the unit tests at the end hold it.

use std::sync::Arc;

use clap::Args;
use warp::http::header::{HeaderName, HeaderValue, AUTHORIZATION, CACHE_CONTROL, COOKIE};
use warp::http::{HeaderMap, StatusCode};
use warp::reply::Response;

use sessiond_actors::Lookup;

use super::error::ApiError;
use super::reply::{no_content, Answer};
use super::{Caller, Ctx};
use crate::usecases::authenticate::Authed;

/// The request header a proxy names the roles it requires in.
pub const ROLE_HEADER: &str = "x-required-role";
/// The query parameter a proxy names the roles it requires in.
pub const ROLE_PARAMETER: &str = "role";
/// The longest header value (or query string) this route reads.
pub const MAX_VALUE: usize = 8 * 1024;
/// The most roles one check may name.
pub const MAX_ROLES: usize = 16;
/// The longest role name.
pub const MAX_ROLE_LEN: usize = 64;

/// The headers that carry the original request, logged only.
const ORIGINAL: [(&str, &str); 4] = [
    ("x-forwarded-method", "method"),
    ("x-original-method", "method"),
    ("x-forwarded-uri", "uri"),
    ("x-original-uri", "uri"),
];

/// The forward-auth flags of `sessiond serve`.
#[derive(Debug, Clone, Default, Args)]
pub struct ForwardAuthArgs {
    /// The cookie that carries a sessiond token to `/api/auth/forward`
    /// when the request has no `Authorization` header. Default: none (only
    /// `Authorization: Bearer` is read).
    #[arg(long, env = "SESSIOND_FORWARD_AUTH_COOKIE", value_name = "NAME",
          value_parser = parse_cookie_name)]
    pub forward_auth_cookie: Option<String>,
    /// The identity headers a 200 from `/api/auth/forward` carries, as
    /// FIELD=HEADER pairs, FIELD one of id, role, status, email (e.g.
    /// `id=X-User-Id,role=X-User-Role`). Default: none.
    #[arg(
        long,
        env = "SESSIOND_FORWARD_AUTH_HEADERS",
        value_name = "FIELD=HEADER,...",
        default_value = "",
        value_parser = parse_identity_headers
    )]
    pub forward_auth_headers: IdentityHeaders,
}

/// A user field a 200 can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Id,
    Role,
    Status,
    Email,
}

impl Field {
    fn parse(s: &str) -> Option<Field> {
        match s {
            "id" => Some(Field::Id),
            "role" => Some(Field::Role),
            "status" => Some(Field::Status),
            "email" => Some(Field::Email),
            _ => None,
        }
    }
}

/// Which user fields a 200 carries, and under which header names.
#[derive(Debug, Clone, Default)]
pub struct IdentityHeaders(Vec<(Field, HeaderName)>);

impl IdentityHeaders {
    /// The pairs, in the order given.
    pub fn pairs(&self) -> &[(Field, HeaderName)] {
        &self.0
    }
}

impl std::str::FromStr for IdentityHeaders {
    type Err = String;

    /// `FIELD=HEADER,...`, as `--forward-auth-headers` takes it.
    fn from_str(s: &str) -> Result<Self, String> {
        parse_identity_headers(s)
    }
}

/// Headers the proxy or HTTP itself owns: never an identity header.
const RESERVED: [&str; 12] = [
    "authorization",
    "cookie",
    "set-cookie",
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "cache-control",
    "location",
    "www-authenticate",
    "x-request-id",
];

fn parse_identity_headers(s: &str) -> Result<IdentityHeaders, String> {
    let mut pairs: Vec<(Field, HeaderName)> = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (field, name) = item
            .split_once('=')
            .ok_or_else(|| format!("{item:?} is not FIELD=HEADER"))?;
        let field = Field::parse(field.trim()).ok_or_else(|| {
            format!(
                "unknown field {:?}: use id, role, status or email",
                field.trim()
            )
        })?;
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| format!("{:?} is not a header name", name.trim()))?;
        if RESERVED.contains(&name.as_str()) {
            return Err(format!("{name} cannot be an identity header"));
        }
        if pairs.iter().any(|(f, n)| *f == field || *n == name) {
            return Err(format!("{item:?}: each field and header may be named once"));
        }
        pairs.push((field, name));
    }
    Ok(IdentityHeaders(pairs))
}

fn parse_cookie_name(s: &str) -> Result<String, String> {
    // A cookie name is an RFC 6265 token.
    let ok = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!("{s:?} is not a cookie name"))
    }
}

/// The one value of a header this route reads: absent, or one value of at
/// most [`MAX_VALUE`] visible ASCII bytes.
fn single<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ApiError> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::BadRequest(format!("more than one {name} header")));
    }
    if value.len() > MAX_VALUE {
        return Err(ApiError::BadRequest(format!(
            "the {name} header is longer than {MAX_VALUE} bytes"
        )));
    }
    value
        .to_str()
        .map(Some)
        .map_err(|_| ApiError::BadRequest(format!("the {name} header is not visible ASCII")))
}

/// The value of cookie `name` in the request's `Cookie` header(s). Two
/// cookies of that name (one may have been planted for a parent domain or
/// another path) are refused rather than one picked.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ApiError> {
    let mut found = None;
    let mut total = 0;
    for value in headers.get_all(COOKIE) {
        total += value.len();
        if total > MAX_VALUE {
            return Err(ApiError::BadRequest(format!(
                "the cookie header is longer than {MAX_VALUE} bytes"
            )));
        }
        let value = value
            .to_str()
            .map_err(|_| ApiError::BadRequest("the cookie header is not visible ASCII".into()))?;
        for pair in value.split(';') {
            let Some((n, v)) = pair.trim().split_once('=') else {
                continue;
            };
            if n.trim() != name {
                continue;
            }
            if found.is_some() {
                return Err(ApiError::BadRequest(format!("more than one {name} cookie")));
            }
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            found = Some(v);
        }
    }
    Ok(found.filter(|v| !v.is_empty()))
}

/// The roles asked for, from the header and the query string together;
/// empty when none is.
fn required_roles(headers: &HeaderMap, query: &str) -> Result<Vec<String>, ApiError> {
    if query.len() > MAX_VALUE {
        return Err(ApiError::BadRequest(format!(
            "the query string is longer than {MAX_VALUE} bytes"
        )));
    }
    let mut lists: Vec<&str> = Vec::new();
    if let Some(h) = single(headers, ROLE_HEADER)? {
        lists.push(h);
    }
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key == ROLE_PARAMETER {
            lists.push(value);
        }
    }
    let mut roles: Vec<String> = Vec::new();
    for list in lists {
        for role in list.split(',').map(str::trim) {
            let valid = !role.is_empty()
                && role.len() <= MAX_ROLE_LEN
                && role
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b));
            if !valid {
                return Err(ApiError::BadRequest(format!(
                    "a required role is 1 to {MAX_ROLE_LEN} letters, digits or . _ : -, \
                     comma-separated"
                )));
            }
            if !roles.iter().any(|r| r == role) {
                roles.push(role.to_string());
            }
        }
    }
    if roles.len() > MAX_ROLES {
        return Err(ApiError::BadRequest(format!(
            "at most {MAX_ROLES} required roles"
        )));
    }
    Ok(roles)
}

/// The credential: the `Authorization` header when there is one, else the
/// configured cookie as a bearer token.
fn credential(headers: &HeaderMap, args: &ForwardAuthArgs) -> Result<Option<String>, ApiError> {
    if let Some(h) = single(headers, AUTHORIZATION.as_str())? {
        return Ok(Some(h.to_string()));
    }
    let Some(name) = &args.forward_auth_cookie else {
        return Ok(None);
    };
    Ok(cookie(headers, name)?.map(|token| format!("Bearer {token}")))
}

/// What the proxy says the original request was, for the log.
fn original(headers: &HeaderMap) -> Result<(String, String), ApiError> {
    let (mut method, mut uri) = (String::new(), String::new());
    for (name, what) in ORIGINAL {
        if let Some(v) = single(headers, name)? {
            let slot = if what == "method" {
                &mut method
            } else {
                &mut uri
            };
            if slot.is_empty() {
                *slot = v.to_string();
            }
        }
    }
    Ok((method, uri))
}

fn field_value(a: &Authed, field: Field) -> Result<HeaderValue, ApiError> {
    let user = &a.state.user;
    let value = match field {
        // An id's characters are all valid in a header value.
        Field::Id => user
            .id
            .with_str(HeaderValue::from_str)
            .map_err(|_| anyhow::anyhow!("an id that cannot be a header value"))?,
        Field::Role => HeaderValue::from_bytes(user.role.as_bytes())
            .map_err(|_| anyhow::anyhow!("a role that cannot be a header value"))?,
        Field::Status => HeaderValue::from_static(user.status.as_str()),
        // An address with characters a header cannot carry is refused (500),
        // never sent altered.
        Field::Email => HeaderValue::from_bytes(user.email.as_bytes())
            .map_err(|_| anyhow::anyhow!("an email that cannot be a header value"))?,
    };
    Ok(value)
}

fn no_store(mut r: Response) -> Response {
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The proxy's check: see the module's description.
#[utoipa::path(
    method(get, head, post, put, delete, patch),
    path = "/api/auth/forward",
    tag = "auth",
    security(("bearer" = [])),
    params(
        ("role" = Option<String>, Query, description = "Roles the request needs, comma-separated: \
            the user must hold one of them (or of those in `X-Required-Role`)."),
        ("X-Required-Role" = Option<String>, Header, description = "As `role`."),
        ("X-Forwarded-Method" = Option<String>, Header, description = "The original method: logged only."),
        ("X-Forwarded-Uri" = Option<String>, Header, description = "The original URI: logged only."),
        ("X-Original-URI" = Option<String>, Header, description = "The original URI: logged only."),
    ),
    responses(
        (status = 200, description = "Let the request through. Carries the identity headers \
            named by `--forward-auth-headers` (none by default); no body."),
        (status = 400, response = super::openapi::BadRequest),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 403, description = "`forbidden`: the user holds none of the required roles.",
            body = super::error::ErrorBody),
        (status = 503, response = super::openapi::Unavailable),
    )
)]
pub async fn forward(ctx: Arc<Ctx>, caller: Caller, headers: HeaderMap, query: String) -> Answer {
    let answer = check(&ctx, &caller, &headers, &query).await;
    let mut reply = match answer {
        Ok(r) => r,
        Err(e) => {
            let unauthorized = e.code().0 == StatusCode::UNAUTHORIZED;
            let mut r = warp::Reply::into_response(e);
            if unauthorized {
                r.headers_mut().insert(
                    warp::http::header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer"),
                );
            }
            r
        }
    };
    reply = no_store(reply);
    Ok(reply)
}

async fn check(ctx: &Ctx, caller: &Caller, headers: &HeaderMap, query: &str) -> Answer {
    let args = &ctx.forward_auth;
    let credential = credential(headers, args)?;
    let parsed = original(headers)
        .and_then(|(method, uri)| Ok((method, uri, required_roles(headers, query)?)));
    let (method, uri, roles) = match parsed {
        Ok(p) => p,
        // Without a credential the answer is 401 whatever else is wrong
        // with the request: there is no session to check a role against.
        Err(_) if credential.is_none() => (String::new(), String::new(), Vec::new()),
        Err(e) => return Err(e),
    };
    let result = ctx
        .auth
        .authenticate(credential.as_deref(), Lookup::Resolve)
        .await;
    let a = match result {
        Ok(a) => a,
        Err(e) => {
            let e = ApiError::from(e);
            tracing::info!(
                target: "sessiond::forward_auth",
                status = e.code().0.as_u16(),
                original_method = ?method,
                original_uri = ?uri,
                client = ?caller.client,
                "denied: {e}"
            );
            return Err(e);
        }
    };
    let user = &a.state.user;
    if !roles.is_empty() && !roles.iter().any(|r| *r == user.role) {
        tracing::info!(
            target: "sessiond::forward_auth",
            status = 403,
            user_id = %user.id,
            role = %user.role,
            required = %roles.join(","),
            original_method = ?method,
            original_uri = ?uri,
            client = ?caller.client,
            "denied: role not held"
        );
        return Err(ApiError::Forbidden(format!(
            "this request needs the role {}",
            roles.join(" or ")
        )));
    }
    let mut reply = no_content(StatusCode::OK);
    for (field, name) in args.forward_auth_headers.pairs() {
        reply
            .headers_mut()
            .insert(name.clone(), field_value(&a, *field)?);
    }
    tracing::debug!(
        target: "sessiond::forward_auth",
        status = 200,
        user_id = %user.id,
        original_method = ?method,
        original_uri = ?uri,
        client = ?caller.client,
        "allowed"
    );
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap_or_else(|_| panic!("{n}")),
                HeaderValue::from_str(v).unwrap_or_else(|_| panic!("{v}")),
            );
        }
        h
    }

    #[test]
    fn identity_headers_parse_and_refuse_nonsense() {
        let h = parse_identity_headers("id=X-User-Id, role=X-User-Role").map(|h| h.0);
        assert_eq!(
            h.ok().map(|p| p
                .iter()
                .map(|(f, n)| (*f, n.as_str().to_string()))
                .collect::<Vec<_>>()),
            Some(vec![
                (Field::Id, "x-user-id".to_string()),
                (Field::Role, "x-user-role".to_string())
            ])
        );
        assert!(parse_identity_headers("").is_ok_and(|h| h.0.is_empty()));
        assert!(parse_identity_headers("name=X-Name").is_err());
        assert!(parse_identity_headers("id").is_err());
        assert!(parse_identity_headers("id=Bad Header").is_err());
        assert!(parse_identity_headers("id=Authorization").is_err());
        assert!(parse_identity_headers("id=X-A,id=X-B").is_err());
        assert!(parse_identity_headers("id=X-A,role=X-A").is_err());
    }

    #[test]
    fn the_cookie_is_found_once_or_refused() {
        let h = headers(&[("cookie", "a=1; tok=abc; b=2")]);
        assert_eq!(cookie(&h, "tok").ok().flatten(), Some("abc"));
        let h = headers(&[("cookie", "a=1"), ("cookie", "tok=\"abc\"")]);
        assert_eq!(cookie(&h, "tok").ok().flatten(), Some("abc"));
        let h = headers(&[("cookie", "tok=abc; tok=def")]);
        assert!(cookie(&h, "tok").is_err());
        let h = headers(&[("cookie", "xtok=abc")]);
        assert_eq!(cookie(&h, "tok").ok().flatten(), None);
        let big = format!("tok={}", "a".repeat(MAX_VALUE));
        let h = headers(&[("cookie", &big)]);
        assert!(cookie(&h, "tok").is_err());
    }

    #[test]
    fn roles_come_from_the_header_and_the_query() {
        let h = headers(&[("x-required-role", "admin, ops")]);
        assert_eq!(
            required_roles(&h, "x=1&role=auditor").ok(),
            Some(vec!["admin".into(), "ops".into(), "auditor".into()])
        );
        assert_eq!(required_roles(&HeaderMap::new(), "").ok(), Some(Vec::new()));
        assert!(required_roles(&HeaderMap::new(), "role=").is_err());
        assert!(required_roles(&HeaderMap::new(), "role=a%20b").is_err());
        assert!(required_roles(&headers(&[("x-required-role", "a b")]), "").is_err());
        let many: Vec<String> = (0..=MAX_ROLES).map(|i| format!("r{i}")).collect();
        assert!(required_roles(&HeaderMap::new(), &format!("role={}", many.join(","))).is_err());
        let two = headers(&[("x-required-role", "a"), ("x-required-role", "b")]);
        assert!(required_roles(&two, "").is_err());
    }
}
