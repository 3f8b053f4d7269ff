//! Better Auth's `getSession`, answered by sessiond (docs/better-auth.md).
//! `cookie`: the signed cookie and bearer token, as Better Auth and
//! `better-call` make them. Here, credential to answer: the session
//! token's user is found (a hint kept per node, else the database), the
//! user's record and session rows come from the user's actor (on the owner
//! node, through the cache), and the session row with this token is
//! checked (expiry) and refreshed as Better Auth refreshes it. A hint is
//! only a guess: the answer always comes from the actor's rows.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::{Map, Value};
use sqlx::Row;

use sessiond_actors::sync::MutexExt;
use sessiond_actors::{Fetched, Lookup, ResolveError, Router, Status, UserId};

mod cookie;

pub use cookie::{credential, sign, signed_value, Credential, Refused};

use crate::clock::Clock;
use crate::source::better_auth::{BetterAuth, Secret, Statements};

/// Token hints kept per node; the map is emptied when it is full.
const MAX_HINTS: usize = 100_000;

/// Why no session is answered. Messages are safe to show the caller.
#[derive(Debug, thiserror::Error)]
pub enum BaError {
    /// No credential, or one whose signature does not check.
    #[error("{0}")]
    InvalidToken(&'static str),
    /// A signed token whose session or user is gone, expired or banned.
    #[error("{0}")]
    Revoked(&'static str),
    /// The record could not be read.
    #[error(transparent)]
    Unavailable(#[from] ResolveError),
    /// The database did not answer.
    #[error("{0}")]
    Db(String),
}

impl From<sqlx::Error> for BaError {
    fn from(e: sqlx::Error) -> Self {
        BaError::Db(crate::store::describe(&e))
    }
}

/// A session answered: Better Auth's `getSession` body and, when the
/// session was refreshed, the cookie to set again.
#[derive(Debug)]
pub struct Answer {
    pub body: Value,
    /// `Set-Cookie`, on a refresh.
    pub set_cookie: Option<String>,
    /// `set-auth-token` (the bearer plugin's header), on a refresh of a
    /// bearer credential.
    pub auth_token: Option<String>,
}

/// What the actor holds beside the user's record.
#[derive(Deserialize)]
struct Attached {
    user: Option<Map<String, Value>>,
    sessions: Vec<SessionRow>,
    /// More rows than are kept.
    #[serde(default)]
    full: bool,
}

#[derive(Deserialize)]
struct SessionRow {
    /// `expiresAt`, unix ms.
    exp: i64,
    row: Map<String, Value>,
}

/// Better Auth's sessions, served.
pub struct BetterAuthSessions {
    ba: BetterAuth,
    secret: Secret,
    st: Statements,
    pool: sqlx::PgPool,
    router: Router,
    clock: Clock,
    hints: Mutex<HashMap<String, UserId>>,
}

/// What the record says of one session.
enum Found {
    Row(Map<String, Value>, Map<String, Value>, i64),
    NotHeld { full: bool },
}

fn iso(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_millis(t).to_string()
}

impl BetterAuthSessions {
    /// Built when the database serves Better Auth's sessions.
    pub fn new(db: &crate::store::Db, router: Router, clock: Clock) -> Option<BetterAuthSessions> {
        let (ba, st, pool) = db.better_auth()?;
        let secret = ba.secret.clone()?;
        Some(BetterAuthSessions {
            ba: ba.clone(),
            secret,
            st: st.clone(),
            pool: pool.clone(),
            router,
            clock,
            hints: Mutex::new(HashMap::new()),
        })
    }

    /// Now, unix ms (the service's wall clock).
    fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The request's credential.
    pub fn credential<'a>(
        &self,
        authorization: Option<&str>,
        cookie_headers: impl Iterator<Item = &'a str>,
    ) -> Result<Credential, BaError> {
        credential(
            &self.ba,
            self.secret.expose(),
            authorization,
            cookie_headers,
        )
        .map_err(|r| {
            BaError::InvalidToken(match r {
                Refused::Missing => "no Better Auth session cookie or bearer token",
                Refused::Forged => "the Better Auth session token's signature does not check",
            })
        })
    }

    fn hint(&self, token: &str) -> Option<UserId> {
        self.hints.locked().get(token).cloned()
    }

    fn remember(&self, token: &str, user: &UserId) {
        let mut h = self.hints.locked();
        if h.len() >= MAX_HINTS {
            h.clear();
        }
        h.insert(token.to_string(), user.clone());
    }

    fn forget(&self, token: &str) {
        self.hints.locked().remove(token);
    }

    /// The user of the session with `token`, read from the table.
    async fn user_of(&self, token: &str) -> Result<Option<UserId>, BaError> {
        let row = sqlx::query(&self.st.user_of_token)
            .bind(token)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let uid: String = row.try_get("uid")?;
        Ok(UserId::parse(&uid).ok())
    }

    /// The session with `token` in what the actor serves.
    ///
    /// A ban refuses only the sessions the record holds: a session it does
    /// not hold was made after the record was read, so after any ban the
    /// record shows (an app that unbans a user and signs them in again may
    /// do both before the change reaches this node), and is answered from a
    /// fresh read instead.
    fn find(fetched: &Fetched, token: &str) -> Result<Found, BaError> {
        let state = match fetched {
            Fetched::Missing => return Err(BaError::Revoked("the user no longer exists")),
            Fetched::Found(s) => s,
        };
        let Some(text) = state.attached.as_deref() else {
            return Err(BaError::Db(
                "the user's record was read without Better Auth's rows".into(),
            ));
        };
        let attached: Attached = serde_json::from_str(text)
            .map_err(|e| BaError::Db(format!("Better Auth's rows do not read: {e}")))?;
        let Some(user) = attached.user else {
            return Err(BaError::Revoked("the user no longer exists"));
        };
        for s in attached.sessions {
            if s.row.get("token").and_then(Value::as_str) == Some(token) {
                if state.user.status != Status::Active {
                    return Err(BaError::Revoked("the user is banned"));
                }
                return Ok(Found::Row(s.row, user, s.exp));
            }
        }
        Ok(Found::NotHeld {
            full: attached.full,
        })
    }

    /// The session of `token` as the user's actor holds it; the table is
    /// read again only when the actor does not hold it (a session made
    /// since its rows were read, or one beyond the rows kept).
    async fn session(
        &self,
        token: &str,
        force: bool,
    ) -> Result<(Map<String, Value>, Map<String, Value>, i64, UserId), BaError> {
        let (user, from_table) = match self.hint(token) {
            Some(u) => (u, false),
            None => match self.user_of(token).await? {
                Some(u) => {
                    self.remember(token, &u);
                    (u, true)
                }
                None => return Err(BaError::Revoked("no such session")),
            },
        };
        let how = if force {
            Lookup::ForceRefresh
        } else {
            Lookup::Resolve
        };
        let served = self.router.resolve(&user, how).await?;
        match Self::find(&served.fetched, token) {
            Ok(Found::Row(s, u, exp)) => return Ok((s, u, exp, user)),
            Ok(Found::NotHeld { .. }) => {}
            Err(e) => {
                self.forget(token);
                return Err(e);
            }
        };
        // Not among the rows held: gone, new since, or beyond the cap.
        let user = if from_table {
            user
        } else {
            match self.user_of(token).await? {
                Some(u) => u,
                None => {
                    self.forget(token);
                    return Err(BaError::Revoked("no such session"));
                }
            }
        };
        let served = self.router.resolve(&user, Lookup::ForceRefresh).await?;
        match Self::find(&served.fetched, token) {
            Ok(Found::Row(s, u, exp)) => Ok((s, u, exp, user)),
            Ok(Found::NotHeld { full: true }) => {
                // Beyond the rows kept: read this one, if the user (as
                // just read) may have sessions at all.
                if let Fetched::Found(st) = &served.fetched {
                    if st.user.status != Status::Active {
                        self.forget(token);
                        return Err(BaError::Revoked("the user is banned"));
                    }
                }
                let Some(user_row) = (match &served.fetched {
                    Fetched::Found(st) => st
                        .attached
                        .as_deref()
                        .and_then(|t| serde_json::from_str::<Attached>(t).ok())
                        .and_then(|a| a.user),
                    Fetched::Missing => None,
                }) else {
                    return Err(BaError::Revoked("the user no longer exists"));
                };
                let row = sqlx::query(&self.st.one_session)
                    .bind(token)
                    .fetch_optional(&self.pool)
                    .await?;
                let Some(row) = row else {
                    self.forget(token);
                    return Err(BaError::Revoked("no such session"));
                };
                let text: String = row.try_get("o")?;
                let s: SessionRow = serde_json::from_str(&text).map_err(|e| {
                    BaError::Db(format!("Better Auth's session does not read: {e}"))
                })?;
                Ok((s.row, user_row, s.exp, user))
            }
            Ok(Found::NotHeld { full: false }) => {
                self.forget(token);
                Err(BaError::Revoked("no such session"))
            }
            Err(e) => {
                self.forget(token);
                Err(e)
            }
        }
    }

    /// The cookie Better Auth sets on a refresh.
    fn cookie(&self, c: &Credential) -> String {
        format!(
            "{}={}; Max-Age={}; Path=/; HttpOnly{}; SameSite=Lax",
            c.cookie_name,
            signed_value(self.secret.expose(), &c.token),
            self.ba.expires_in.as_secs(),
            if c.secure { "; Secure" } else { "" }
        )
    }

    /// Better Auth's `getSession` for this credential.
    pub async fn get_session(&self, c: &Credential) -> Result<Answer, BaError> {
        let (mut session, user, exp, _) = self.session(&c.token, false).await?;
        let now = self.now_ms();
        if exp < now {
            return Err(BaError::Revoked("the session expired"));
        }
        let expires_in = i64::try_from(self.ba.expires_in.as_millis()).unwrap_or(i64::MAX);
        let update_age = i64::try_from(self.ba.update_age.as_millis()).unwrap_or(i64::MAX);
        let mut set_cookie = None;
        let mut auth_token = None;
        if !c.dont_remember && exp.saturating_sub(expires_in).saturating_add(update_age) <= now {
            let new_exp = now.saturating_add(expires_in);
            // Only while the row still needs it: of concurrent refreshes
            // (on any node) one writes.
            let done = sqlx::query(&self.st.refresh)
                .bind(&c.token)
                .bind(new_exp)
                .bind(now)
                .bind(now.saturating_add(expires_in).saturating_sub(update_age))
                .execute(&self.pool)
                .await?
                .rows_affected();
            if done == 1 {
                session.insert("expiresAt".into(), Value::String(iso(new_exp)));
                session.insert("updatedAt".into(), Value::String(iso(now)));
            } else {
                // Refreshed (or removed) by another request since the rows
                // were read: answer the row as it is now.
                let (s, _, exp, _) = self.session(&c.token, true).await?;
                if exp < now {
                    return Err(BaError::Revoked("the session expired"));
                }
                session = s;
            }
            set_cookie = Some(self.cookie(c));
            if c.bearer {
                auth_token = Some(signed_value(self.secret.expose(), &c.token));
            }
        }
        let mut body = Map::new();
        body.insert("session".into(), Value::Object(session));
        body.insert("user".into(), Value::Object(user));
        Ok(Answer {
            body: Value::Object(body),
            set_cookie,
            auth_token,
        })
    }
}
