//! [`SessiondClient`]: the calls of sessiond's API an app makes, each
//! bounded by a timeout, retried only where sending twice is harmless.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hyper::body::HttpBody;
use hyper::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Body, Method, Request, StatusCode, Uri};
use serde::Deserialize;

use crate::connect::Connector;
use crate::{Login, Session, SessiondError, UserId};

/// The largest answer read from sessiond (its answers are far smaller).
const MAX_ANSWER: usize = 64 * 1024;

/// A client of sessiond's HTTP API: plain HTTP ([`SessiondClient::new`]),
/// or HTTPS trusting given root certificates (`SessiondClient::with_tls`,
/// feature `tls`). Cheap to clone: clones share one connection pool.
#[derive(Clone, Debug)]
pub struct SessiondClient {
    base: Arc<str>,
    http: hyper::Client<Connector, Body>,
    timeout: Duration,
    retries: u32,
}

/// Whether a call may be sent again after a network error.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// After any network error: doing it twice has the effect of doing it once.
    Idempotent,
    /// Only when the connection failed, so the request was never sent.
    Unsent,
}

impl SessiondClient {
    /// A client of the sessiond at `base_url` (`http://host:port`, optionally
    /// with a path prefix). Timeout 5 s per attempt, one retry after a
    /// network error.
    pub fn new(base_url: &str) -> Result<Self, SessiondError> {
        Self::build(base_url, "http", Connector::plain())
    }

    /// A client of the sessiond at `base_url` (`https://host:port`) that
    /// trusts the root certificates in `roots_pem` (PEM: the CA that signed
    /// sessiond's certificate), and those alone. The certificate must name
    /// the URL's host.
    #[cfg(feature = "tls")]
    pub fn with_tls(base_url: &str, roots_pem: &[u8]) -> Result<Self, SessiondError> {
        let connector = Connector::tls(roots_pem)
            .map_err(|why| SessiondError::new(StatusCode::BAD_REQUEST, "bad_request", why))?;
        Self::build(base_url, "https", connector)
    }

    fn build(base_url: &str, scheme: &str, connector: Connector) -> Result<Self, SessiondError> {
        let base = base_url.trim().trim_end_matches('/');
        let bad = |why: &str| {
            SessiondError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("the sessiond URL {why}"),
            )
        };
        let uri: Uri = base.parse().map_err(|_| bad("is not a URL"))?;
        if uri.scheme_str() != Some(scheme) || uri.authority().is_none() {
            return Err(bad(&format!("must be {scheme}://host:port")));
        }
        if uri.query().is_some() {
            return Err(bad("must not have a query"));
        }
        Ok(SessiondClient {
            base: Arc::from(base),
            http: hyper::Client::builder().build(connector),
            timeout: Duration::from_secs(5),
            retries: 1,
        })
    }

    /// The time allowed for one attempt (connect, answer and body).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Extra attempts after a network error (never after an HTTP answer,
    /// never after a timeout).
    pub fn with_retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// `GET /api/auth/session`: the token's user as of now.
    pub async fn session(&self, token: &str) -> Result<Session, SessiondError> {
        let answer = self
            .call(
                Method::GET,
                "/api/auth/session",
                Some(token),
                None,
                Retry::Idempotent,
            )
            .await?;
        json(&answer)
    }

    /// `POST /api/auth/refresh-session`; with `force` the database is read.
    pub async fn refresh_session(
        &self,
        token: &str,
        force: bool,
    ) -> Result<Session, SessiondError> {
        let body = serde_json::json!({ "force": force }).to_string();
        let answer = self
            .call(
                Method::POST,
                "/api/auth/refresh-session",
                Some(token),
                Some(body),
                Retry::Idempotent,
            )
            .await?;
        json(&answer)
    }

    /// `POST /api/auth/login`.
    pub async fn login(&self, email: &str, password: &str) -> Result<Login, SessiondError> {
        self.login_with_device(email, password, None).await
    }

    /// `POST /api/auth/login` with the device token an earlier login of
    /// this account answered ([`Login::device`]), relayed for the device
    /// that holds it: its logins are let through while strangers' failures
    /// hold the account off.
    pub async fn login_with_device(
        &self,
        email: &str,
        password: &str,
        device: Option<&str>,
    ) -> Result<Login, SessiondError> {
        let body = match device {
            Some(d) => serde_json::json!({ "email": email, "password": password, "device": d }),
            None => serde_json::json!({ "email": email, "password": password }),
        }
        .to_string();
        let answer = self
            .call(
                Method::POST,
                "/api/auth/login",
                None,
                Some(body),
                Retry::Idempotent,
            )
            .await?;
        json(&answer)
    }

    /// `POST /api/sessions` with an app key (`sdk_…`, scope `mint`):
    /// sessiond's token for a user the app signed in itself (OAuth, magic
    /// link, passkey), in the shape of a login's answer. An unknown user is
    /// `not_found`, a deactivated one `forbidden`, a revoked or wrong key
    /// `invalid_token`. Keep the key on the server.
    pub async fn mint_session(
        &self,
        app_key: &str,
        user_id: impl Into<UserId>,
    ) -> Result<Login, SessiondError> {
        let body = serde_json::json!({ "user_id": user_id.into() }).to_string();
        let answer = self
            .call(
                Method::POST,
                "/api/sessions",
                Some(app_key),
                Some(body),
                Retry::Idempotent,
            )
            .await?;
        json(&answer)
    }

    /// `POST /api/auth/logout`: the token stops resolving at once.
    pub async fn logout(&self, token: &str) -> Result<(), SessiondError> {
        self.call(
            Method::POST,
            "/api/auth/logout",
            Some(token),
            None,
            Retry::Unsent,
        )
        .await
        .map(|_| ())
    }

    /// `POST /api/auth/password`: the token's user changes their own
    /// password (the current one is checked, and counted as a login is).
    /// Every other token of the user stops resolving; the answer holds a
    /// new token for the caller. Not retried once sent.
    pub async fn change_password(
        &self,
        token: &str,
        current_password: &str,
        new_password: &str,
    ) -> Result<Login, SessiondError> {
        let body = serde_json::json!({
            "current_password": current_password,
            "new_password": new_password,
        })
        .to_string();
        let answer = self
            .call(
                Method::POST,
                "/api/auth/password",
                Some(token),
                Some(body),
                Retry::Unsent,
            )
            .await?;
        json(&answer)
    }

    /// Resolves an `Authorization` header's bearer token. A header that is
    /// missing or not `Bearer <token>` is refused without a call, as sessiond
    /// would refuse it.
    pub async fn resolve_header(
        &self,
        header: Option<&HeaderValue>,
    ) -> Result<Session, SessiondError> {
        let value =
            header.ok_or_else(|| SessiondError::invalid_token("a bearer token is required"))?;
        let token = bearer(value)?;
        self.session(token).await
    }

    /// One call: the answer's body when sessiond answered 2xx, its error
    /// when it answered one, `unavailable` when it did not answer.
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<String>,
        retry: Retry,
    ) -> Result<Bytes, SessiondError> {
        let auth = match token {
            Some(t) => Some(authorization(t)?),
            None => None,
        };
        let uri: Uri = format!("{}{path}", self.base)
            .parse()
            .map_err(|_| SessiondError::unavailable("the sessiond URL is not valid"))?;
        let mut attempt = 0;
        loop {
            let mut req = Request::builder()
                .method(method.clone())
                .uri(uri.clone())
                .header(ACCEPT, "application/json");
            if let Some(a) = &auth {
                req = req.header(AUTHORIZATION, a.clone());
            }
            if body.is_some() {
                req = req.header(CONTENT_TYPE, "application/json");
            }
            let req = req
                .body(body.clone().map(Body::from).unwrap_or_else(Body::empty))
                .map_err(|_| SessiondError::unavailable("the request could not be built"))?;
            let exchange = async {
                let res = self.http.request(req).await.map_err(Failure::Net)?;
                let status = res.status();
                let bytes = read_limited(res.into_body()).await?;
                Ok::<_, Failure>((status, bytes))
            };
            let failure = match tokio::time::timeout(self.timeout, exchange).await {
                Ok(Ok((status, bytes))) => return answer(status, bytes),
                Ok(Err(f)) => f,
                Err(_) => {
                    return Err(SessiondError::unavailable(format!(
                        "sessiond did not answer within {} ms",
                        self.timeout.as_millis()
                    )))
                }
            };
            let retryable = match &failure {
                Failure::Net(e) => retry == Retry::Idempotent || e.is_connect(),
                Failure::TooLarge => false,
            };
            if !retryable || attempt >= self.retries {
                return Err(match failure {
                    Failure::Net(e) => {
                        SessiondError::unavailable(format!("sessiond could not be reached: {e}"))
                    }
                    Failure::TooLarge => SessiondError::unavailable(format!(
                        "sessiond's answer is larger than {MAX_ANSWER} bytes"
                    )),
                });
            }
            tokio::time::sleep(Duration::from_millis(50u64 << attempt.min(6))).await;
            attempt += 1;
        }
    }
}

enum Failure {
    Net(hyper::Error),
    TooLarge,
}

async fn read_limited(mut body: Body) -> Result<Bytes, Failure> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(Failure::Net)?;
        if buf.len() + chunk.len() > MAX_ANSWER {
            return Err(Failure::TooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

#[derive(Deserialize)]
struct ErrorBody {
    error: String,
    #[serde(default)]
    message: String,
}

fn answer(status: StatusCode, body: Bytes) -> Result<Bytes, SessiondError> {
    if status.is_success() {
        return Ok(body);
    }
    match serde_json::from_slice::<ErrorBody>(&body) {
        Ok(e) => {
            let message = if e.message.is_empty() {
                e.error.clone()
            } else {
                e.message
            };
            Err(SessiondError {
                status,
                code: e.error,
                message,
            })
        }
        Err(_) => Err(SessiondError::unavailable(format!(
            "sessiond answered HTTP {} without an API error",
            status.as_u16()
        ))),
    }
}

fn json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, SessiondError> {
    serde_json::from_slice(body).map_err(|e| {
        SessiondError::unavailable(format!("sessiond's answer could not be read: {e}"))
    })
}

/// `Bearer <token>` for a token that can be one (visible ASCII).
fn authorization(token: &str) -> Result<HeaderValue, SessiondError> {
    let ok =
        !token.is_empty() && token.len() <= 8192 && token.bytes().all(|b| b.is_ascii_graphic());
    if !ok {
        return Err(SessiondError::invalid_token(
            "the token is not a bearer token sessiond issued",
        ));
    }
    HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
        SessiondError::invalid_token("the token is not a bearer token sessiond issued")
    })
}

/// The token of an `Authorization: Bearer <token>` header.
fn bearer(value: &HeaderValue) -> Result<&str, SessiondError> {
    let not_bearer =
        || SessiondError::invalid_token("the Authorization header is not `Bearer <token>`");
    let value = value.to_str().map_err(|_| not_bearer())?;
    let (scheme, token) = value.trim().split_once(' ').ok_or_else(not_bearer)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(not_bearer());
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_header() {
        let v = |s: &str| HeaderValue::from_str(s).expect("header value");
        assert_eq!(bearer(&v("Bearer a.b.c")).ok(), Some("a.b.c"));
        assert_eq!(bearer(&v("bearer   a.b.c ")).ok(), Some("a.b.c"));
        assert!(bearer(&v("Basic abc")).is_err());
        assert!(bearer(&v("Bearer")).is_err());
        assert!(bearer(&v("Bearer  ")).is_err());
        let e = bearer(&v("Basic abc")).expect_err("refused");
        assert_eq!(
            (e.status, e.code.as_str()),
            (StatusCode::UNAUTHORIZED, "invalid_token")
        );
    }

    #[test]
    fn tokens_are_checked_before_sending() {
        assert!(authorization("a.b.c").is_ok());
        assert!(authorization("").is_err());
        assert!(authorization("a b").is_err());
        assert!(authorization("a\r\nx: y").is_err());
        assert!(authorization("é").is_err());
    }

    #[test]
    fn base_urls() {
        assert!(SessiondClient::new("http://127.0.0.1:8080/").is_ok());
        assert!(SessiondClient::new("http://127.0.0.1:8080/prefix").is_ok());
        assert!(SessiondClient::new("https://127.0.0.1:8080").is_err());
        assert!(SessiondClient::new("127.0.0.1:8080").is_err());
        assert!(SessiondClient::new("not a url").is_err());
    }

    #[cfg(feature = "tls")]
    #[test]
    fn https_needs_root_certificates() {
        assert!(SessiondClient::with_tls("https://127.0.0.1:8443", b"").is_err());
        assert!(SessiondClient::with_tls("https://127.0.0.1:8443", b"garbage").is_err());
    }

    #[test]
    fn answers() {
        let e = answer(
            StatusCode::UNAUTHORIZED,
            Bytes::from_static(br#"{"error":"session_revoked","message":"logged out"}"#),
        )
        .expect_err("an error");
        assert_eq!(e.code, "session_revoked");
        assert_eq!(e.message, "logged out");
        assert!(e.is_signed_out());
        let e = answer(StatusCode::BAD_GATEWAY, Bytes::from_static(b"<h1>502</h1>"))
            .expect_err("an error");
        assert_eq!(
            (e.status, e.code.as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
        );
        assert!(answer(StatusCode::OK, Bytes::from_static(b"{}")).is_ok());
    }
}
