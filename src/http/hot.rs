//! The routes most requests take, answered by the listener without going
//! through warp's filters: `GET /healthz` and `GET /api/auth/session`.
//!
//! warp tries the routes one after another, each try moving a future as
//! large as the largest handler's; a request for the last route tried pays
//! for every route before it. These two are matched on the exact path and
//! method first and call the same handlers, with the same headers
//! (`headers::harden`), metrics and access line (`http::record`) as
//! through the filters. Anything else, or anything these routes would
//! answer differently through warp (another method, a path with a
//! trailing slash, an `Authorization` header that is not visible ASCII),
//! goes through the filters as before.

use std::sync::Arc;
use std::time::Instant;

use hyper::{Body, Request};
use warp::http::{header::AUTHORIZATION, HeaderValue, Method};
use warp::reply::Response;

use super::{done, handlers, headers, record, sessions, Ctx, Front};

/// The paths answered directly.
pub const HEALTHZ: &str = "/healthz";
/// See [`HEALTHZ`].
pub const SESSION: &str = "/api/auth/session";

/// A route the listener answers itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Healthz,
    Session,
}

impl Route {
    fn path(self) -> &'static str {
        match self {
            Route::Healthz => HEALTHZ,
            Route::Session => SESSION,
        }
    }
}

/// The direct routes of one listener.
pub struct Hot {
    ctx: Arc<Ctx>,
    front: Front,
}

impl Hot {
    pub fn new(ctx: Arc<Ctx>, front: Front) -> Arc<Hot> {
        Arc::new(Hot { ctx, front })
    }

    /// The direct route `req` takes, if it takes one; `None` sends it
    /// through the filters.
    pub fn route<B>(&self, req: &Request<B>) -> Option<Route> {
        route_of(
            self.front,
            req.method(),
            req.uri().path(),
            req.headers().get(AUTHORIZATION),
        )
    }

    /// Answers `req` on `route` (which [`Hot::route`] gave for it).
    pub async fn answer(self: Arc<Self>, route: Route, req: Request<Body>) -> Response {
        let start = Instant::now();
        let reply = match route {
            Route::Healthz => done(handlers::healthz().await),
            Route::Session => {
                // Checked by `route_of`: ASCII, so UTF-8 at once.
                let authorization = req
                    .headers()
                    .get(AUTHORIZATION)
                    .and_then(|v| std::str::from_utf8(v.as_bytes()).ok());
                done(sessions::session_of(&self.ctx, authorization).await)
            }
        };
        let reply = headers::harden(route.path(), reply);
        record(
            &self.ctx.telemetry,
            &Method::GET,
            route.path(),
            reply.status().as_u16(),
            start.elapsed(),
        );
        reply
    }
}

/// The direct route of a request, from what decides it.
fn route_of(
    front: Front,
    method: &Method,
    path: &str,
    authorization: Option<&HeaderValue>,
) -> Option<Route> {
    if method != Method::GET {
        return None;
    }
    let route = match path {
        HEALTHZ => Route::Healthz,
        SESSION => Route::Session,
        _ => return None,
    };
    if !front.serves(route.path()) {
        return None;
    }
    // warp refuses a header it cannot read as text (400): leave that
    // answer to it.
    if route == Route::Session && authorization.is_some_and(|v| !visible_ascii(v.as_bytes())) {
        return None;
    }
    Some(route)
}

/// What `HeaderValue::to_str` accepts (visible ASCII and tab), checked
/// without a branch per byte so that it vectorises: a token is a few
/// hundred bytes, checked on every session lookup.
fn visible_ascii(bytes: &[u8]) -> bool {
    bytes.iter().fold(true, |ok, &b| {
        ok & (((32..127).contains(&b)) | (b == b'\t'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_exact_gets_of_the_two_paths_are_taken() {
        let get = Method::GET;
        let taken = |front, method: &Method, path: &str| route_of(front, method, path, None);
        assert_eq!(taken(Front::Both, &get, HEALTHZ), Some(Route::Healthz));
        assert_eq!(taken(Front::Ops, &get, HEALTHZ), Some(Route::Healthz));
        assert_eq!(taken(Front::Api, &get, SESSION), Some(Route::Session));
        assert_eq!(taken(Front::Ops, &get, SESSION), None);
        for (method, path) in [
            (Method::HEAD, HEALTHZ),
            (Method::POST, HEALTHZ),
            (Method::POST, SESSION),
            (get.clone(), "/healthz/"),
            (get.clone(), "/api/auth/session/"),
            (get.clone(), "/api/auth/sessions"),
            (get.clone(), "/"),
        ] {
            assert_eq!(taken(Front::Both, &method, path), None, "{method} {path}");
        }
        let text = HeaderValue::from_static("Bearer x");
        let opaque = HeaderValue::from_bytes(b"Bearer \xff").expect("a header value");
        assert_eq!(
            route_of(Front::Both, &get, SESSION, Some(&text)),
            Some(Route::Session)
        );
        assert_eq!(route_of(Front::Both, &get, SESSION, Some(&opaque)), None);
        assert_eq!(
            route_of(Front::Both, &get, HEALTHZ, Some(&opaque)),
            Some(Route::Healthz)
        );
    }

    #[test]
    fn the_text_check_is_header_values_own() {
        for b in 0..=255u8 {
            let bytes = [b'a', b, b'z'];
            if let Ok(v) = HeaderValue::from_bytes(&bytes) {
                assert_eq!(visible_ascii(v.as_bytes()), v.to_str().is_ok(), "{b}");
            }
        }
        assert!(visible_ascii(b""));
    }
}
