//! App credentials: the keys an application's own server holds to mint
//! sessiond's token for a user it signed in itself (OAuth, magic link,
//! passkey: any method), or to call the admin routes.
//!
//! A key is `sdk_<id>_<secret>`: the id finds its row (no scan), the secret
//! (about 250 bits) is checked against a keyed SHA-256 hash of it in
//! constant time. Only the hash is stored; the key is printed once, by
//! `sessiond appkey create` or `rotate`. After a rotation the previous
//! secret is accepted until the grace period ends, so an app switches to
//! the new one without a failed request.
//!
//! Every use reads the key's row by its primary key: no node holds keys in
//! memory, so a revocation is refused by every node from its next request,
//! with nothing to propagate. A key is used once per sign-in (and per admin
//! call), never on the session path, and each use also writes an audit row,
//! so the read is no part of the cost of resolving sessions.

use std::sync::Arc;

use jsonwebtoken::{Algorithm, EncodingKey};
use sessiond_actors::{Fetched, Lookup, ResolveError, Router, Status, StoreError, User, UserId};

use crate::auth::{self, Claims, Tokens};
use crate::store::{AppKeyRow, Db};

use super::{Audit, Origin};

/// What every key starts with: a leaked key is recognisable in a log or a
/// repository scanner.
pub const PREFIX: &str = "sdk_";
/// Characters of a key's id.
const ID_LEN: usize = 16;
/// Characters of a key's secret (a 57-letter alphabet: about 250 bits).
const SECRET_LEN: usize = 43;
/// The longest key looked up; a longer one is refused unread.
const MAX_KEY: usize = 128;

/// What a key may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// `POST /api/sessions`: mint a session token for a user.
    Mint,
    /// The admin routes, as an admin user's token may.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 2] = [Scope::Mint, Scope::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Mint => "mint",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|x| x.as_str() == s.trim())
    }
}

/// Scopes as given (`mint`, `admin`, comma-separated or repeated): at
/// least one, each known, stored in a fixed order without repeats.
pub fn parse_scopes<S: AsRef<str>>(given: &[S]) -> Result<String, String> {
    let mut wanted = Vec::new();
    for part in given.iter().flat_map(|g| g.as_ref().split(',')) {
        if part.trim().is_empty() {
            continue;
        }
        let scope = Scope::parse(part).ok_or_else(|| {
            format!(
                "unknown scope {:?} (the scopes are mint and admin)",
                part.trim()
            )
        })?;
        wanted.push(scope);
    }
    let kept: Vec<&str> = Scope::ALL
        .into_iter()
        .filter(|s| wanted.contains(s))
        .map(Scope::as_str)
        .collect();
    if kept.is_empty() {
        return Err("a key needs at least one scope: mint, admin".into());
    }
    Ok(kept.join(","))
}

/// Whether a bearer credential is an app key rather than a token (a JWT
/// starts with `eyJ`, never with the key prefix).
pub fn is_app_key(credential: &str) -> bool {
    credential.starts_with(PREFIX)
}

/// A key's id and secret, if it has the key's shape.
fn split(key: &str) -> Option<(&str, &str)> {
    if key.len() > MAX_KEY {
        return None;
    }
    let (id, secret) = key.strip_prefix(PREFIX)?.split_once('_')?;
    let fine = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric());
    (fine(id) && fine(secret)).then_some((id, secret))
}

/// The stored form of a key's secret: HMAC-SHA256 keyed with a fixed
/// label over the id and the secret. A fast hash is right for a secret of
/// about 250 random bits (no dictionary to try); binding the id means a
/// hash copied to another row matches nothing.
pub fn hash_secret(id: &str, secret: &str) -> String {
    let message = format!("{id}:{secret}");
    jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &EncodingKey::from_secret(b"sessiond app key"),
        Algorithm::HS256,
    )
    .unwrap_or_default()
}

/// Compares in time that depends on the length only.
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len()
        && !a.is_empty()
        && std::hint::black_box(a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y))) == 0
}

/// A new key: its id, the whole key (shown once) and the hash to store.
pub struct NewKey {
    pub id: String,
    pub key: String,
    pub hash: String,
}

impl NewKey {
    pub fn generate() -> NewKey {
        NewKey::with_id(auth::random_secret(ID_LEN))
    }

    /// A new secret for an existing key id.
    pub fn with_id(id: String) -> NewKey {
        let secret = auth::random_secret(SECRET_LEN);
        let hash = hash_secret(&id, &secret);
        NewKey {
            key: format!("{PREFIX}{id}_{secret}"),
            id,
            hash,
        }
    }
}

/// A key that was checked: its id, name and scopes.
#[derive(Clone, Debug)]
pub struct AppKey {
    pub id: String,
    pub name: String,
    scopes: Vec<Scope>,
}

impl AppKey {
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }

    /// How audit entries name the key (in the actor's email column).
    pub fn actor(&self) -> String {
        actor(&self.id)
    }
}

/// How audit entries name a key by its id.
pub fn actor(id: &str) -> String {
    format!("appkey:{id}")
}

/// Why a key was refused. Messages are safe to show the caller.
#[derive(Debug, thiserror::Error)]
pub enum AppKeyError {
    /// Malformed, unknown, revoked, or a wrong secret: one answer for all.
    #[error("the app key is not valid (unknown, revoked, or a wrong secret)")]
    Invalid,
    /// The key is valid but lacks the scope the route needs.
    #[error("this app key does not have the {} scope", .0.as_str())]
    MissingScope(Scope),
    #[error(transparent)]
    Unavailable(StoreError),
}

/// Why a session was not minted.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    #[error("no user with id {0}")]
    NotFound(UserId),
    #[error("the user is deactivated")]
    Deactivated,
    #[error(transparent)]
    Unavailable(#[from] ResolveError),
    #[error("internal error")]
    Internal(anyhow::Error),
}

/// A minted token, its claims and its user.
pub struct Minted {
    pub token: String,
    pub claims: Claims,
    pub user: User,
}

/// Checks app keys and mints sessions with them.
pub struct AppKeys {
    db: Db,
    router: Router,
    tokens: Arc<Tokens>,
    audit: Audit,
}

impl AppKeys {
    pub fn new(db: Db, router: Router, tokens: Arc<Tokens>, audit: Audit) -> Self {
        AppKeys {
            db,
            router,
            tokens,
            audit,
        }
    }

    /// The key `credential` (from `Authorization: Bearer`), checked against
    /// its stored row, with `scope`. A refusal is audited (within the
    /// refusals' budget): the key's id as sent and why.
    pub async fn check(
        &self,
        credential: &str,
        scope: Scope,
        route: &str,
        from: &Origin,
    ) -> Result<AppKey, AppKeyError> {
        let Some((id, secret)) = split(credential) else {
            self.audit.app_key_refused(
                &actor("?"),
                "appkey.invalid",
                "not an app key's shape",
                from,
            );
            return Err(AppKeyError::Invalid);
        };
        let row = self
            .db
            .app_key(id)
            .await
            .map_err(AppKeyError::Unavailable)?;
        let now = self.db.clock().now_ms();
        let refused = |why: &str| {
            self.audit
                .app_key_refused(&actor(id), "appkey.invalid", why, from);
            Err(AppKeyError::Invalid)
        };
        let Some(row) = row else {
            return refused("unknown key");
        };
        if row.revoked_at.is_some() {
            return refused("revoked key");
        }
        if !accepts(&row, secret, now) {
            return refused("wrong secret");
        }
        let key = AppKey {
            id: row.id,
            name: row.name,
            scopes: row.scopes.split(',').filter_map(Scope::parse).collect(),
        };
        if !key.has(scope) {
            let action = match scope {
                Scope::Admin => "admin.forbidden",
                Scope::Mint => "appkey.forbidden",
            };
            self.audit
                .app_key_refused(&key.actor(), action, route, from);
            return Err(AppKeyError::MissingScope(scope));
        }
        Ok(key)
    }

    /// sessiond's token for `user_id`, on behalf of an app that signed the
    /// user in itself: refused for an unknown or deactivated user. The
    /// record comes through the cache (so from whichever user source the
    /// node reads), and the token is issued under its session epoch, as a
    /// login's is. Audited as `appkey.mint`.
    pub async fn mint(
        &self,
        key: &AppKey,
        user_id: &UserId,
        from: &Origin,
    ) -> Result<Minted, MintError> {
        let served = self.router.resolve(user_id, Lookup::Resolve).await?;
        let state = match &served.fetched {
            Fetched::Found(s) => Arc::clone(s),
            Fetched::Missing => return Err(MintError::NotFound(user_id.clone())),
        };
        if state.user.status != Status::Active {
            self.audit.app_key_refused(
                &key.actor(),
                "appkey.mint_refused",
                &format!("user {user_id} is deactivated"),
                from,
            );
            return Err(MintError::Deactivated);
        }
        let (token, claims) = self
            .tokens
            .issue(user_id, state.session_epoch)
            .map_err(|e| MintError::Internal(e.into()))?;
        self.audit
            .app_key_used(key, "appkey.mint", Some(user_id.clone()), None, from);
        Ok(Minted {
            token,
            claims,
            user: state.user.clone(),
        })
    }
}

/// Whether `secret` is the key's current one, or its previous one within
/// the rotation's grace period.
fn accepts(row: &AppKeyRow, secret: &str, now: i64) -> bool {
    let hash = hash_secret(&row.id, secret);
    let current = same(&hash, &row.secret_hash);
    let previous = match (&row.previous_hash, row.previous_until) {
        (Some(p), Some(until)) => same(&hash, p) && now < until,
        _ => false,
    };
    current | previous
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(key: &NewKey) -> AppKeyRow {
        AppKeyRow {
            id: key.id.clone(),
            name: "app".into(),
            scopes: "mint".into(),
            secret_hash: key.hash.clone(),
            previous_hash: None,
            previous_until: None,
            created_at: 0,
            rotated_at: None,
            revoked_at: None,
        }
    }

    fn secret(key: &NewKey) -> &str {
        split(&key.key).expect("a key's shape").1
    }

    #[test]
    fn keys_have_a_prefix_an_id_and_a_secret() {
        let k = NewKey::generate();
        assert!(is_app_key(&k.key));
        let (id, s) = split(&k.key).expect("splits");
        assert_eq!(id, k.id);
        assert_eq!((id.len(), s.len()), (ID_LEN, SECRET_LEN));
        assert_ne!(NewKey::generate().key, k.key);
        assert!(split("sdk_abc").is_none());
        assert!(split("sdk__x").is_none());
        assert!(split("sdk_a_b c").is_none());
        assert!(split(&format!("sdk_a_{}", "x".repeat(MAX_KEY))).is_none());
        assert!(!is_app_key("eyJhbGciOi"));
    }

    #[test]
    fn only_the_right_secret_is_accepted_and_the_previous_one_within_its_grace() {
        let k = NewKey::generate();
        let mut r = row(&k);
        assert!(accepts(&r, secret(&k), 0));
        assert!(!accepts(&r, "wrong", 0));
        // Another key's secret under this id does not match.
        assert!(!accepts(&r, secret(&NewKey::generate()), 0));
        // Rotated: the old secret until `previous_until`, the new one always.
        let new = NewKey::with_id(k.id.clone());
        r.previous_hash = Some(r.secret_hash.clone());
        r.previous_until = Some(1000);
        r.secret_hash = new.hash.clone();
        assert!(accepts(&r, secret(&new), 5000));
        assert!(accepts(&r, secret(&k), 999));
        assert!(!accepts(&r, secret(&k), 1000));
    }

    #[test]
    fn scopes_parse() {
        assert_eq!(parse_scopes(&["admin,mint"]).as_deref(), Ok("mint,admin"));
        assert_eq!(parse_scopes(&["mint", "mint"]).as_deref(), Ok("mint"));
        assert!(parse_scopes(&["mint,root"]).is_err());
        assert!(parse_scopes::<&str>(&[]).is_err());
        assert!(parse_scopes(&[","]).is_err());
    }

    #[test]
    fn comparison() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
        assert!(!same("", ""));
    }
}
