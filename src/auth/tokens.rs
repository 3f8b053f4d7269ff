//! Tokens: issued with the one active key of a [`KeySet`], which they name
//! in their header's `kid`, and verified with any key of the set; the set
//! is reloaded from its [`KeyStore`] on an interval and when a token names
//! a key this node has not seen.
//!
//! Kept whole: issuing, verifying and reloading share one key-set lock and
//! one validation, and the tests at the end exercise them together (a
//! rotation, then tokens of both keys, then forged key ids).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use jsonwebtoken::{Algorithm, Header, Validation};
use rand::Rng;
use serde::{Deserialize, Serialize};
use sessiond_actors::sync::RwLockExt;
use sessiond_actors::UserId;

use super::keyset::{KeySet, KeyStore, MAX_KID};
use super::remembered::Entry;
use crate::clock::Clock;

pub const ISSUER: &str = "sessiond";

/// How far in the future a token's `iat` may be (clock skew between nodes).
pub const IAT_LEEWAY_SECS: i64 = 60;

/// The least time between two reloads of the key set caused by tokens that
/// name an unknown key: forged key ids cost the database at most one read
/// per gap, whatever their rate.
pub const UNKNOWN_KID_GAP: Duration = Duration::from_secs(1);

/// How often every node reloads its key set: a rotation or a retirement
/// made anywhere is followed within this long.
pub const KEY_RELOAD: Duration = Duration::from_secs(5);
/// The claims of a sessiond token.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// The user id in its text form (`UserId`'s `Display`): `"42"`, a
    /// UUID, a cuid...
    pub sub: String,
    /// The token id: what logout revokes. Time-ordered (its first 12 hex
    /// digits are the issue time in ms) so "revoke all sessions" can compare
    /// it to a millisecond watermark.
    pub sid: String,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
    /// The audience, when one is configured (`--jwt-audience`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    /// The user's session epoch at issue: "revoke all sessions" raises the
    /// user's, which revokes every token issued under a lower one. Absent
    /// from tokens issued before epochs existed (the `sid` watermark then
    /// decides).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sep: Option<i64>,
}

/// The audience of device tokens: a session token never names it, and
/// a device token (which names no `sid`) never passes as a session token.
pub const DEVICE_AUDIENCE: &str = "sessiond-device";

/// The claims of a device token (OWASP's "device cookie"): issued on a
/// successful login, presented on the account's later logins, which are
/// then counted apart from strangers' (see `crate::limiter`).
#[derive(Debug, Serialize, Deserialize)]
struct DeviceClaims {
    iss: String,
    aud: String,
    /// A hash of the account's email (the email itself is not in the token).
    acct: String,
    /// The device's id: random, what its failures are counted under.
    dev: String,
    iat: i64,
    exp: i64,
}

/// The name a device's failed logins are counted under in the database
/// every node shares (beside the strangers' of each account, named by the
/// email): what the device's token names, the hash of the account's email
/// and the device id. It holds spaces, which no email that can log in
/// does, so it is never an account's.
pub fn device_bucket(email: &str, device: &str) -> String {
    format!("device {} {device}", account_hash(email))
}

/// The hash of an account's (normalized) email a device token names.
fn account_hash(email: &str) -> String {
    let d = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        format!("sessiond device\0{email}").as_bytes(),
    );
    d.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A token that passed every check.
#[derive(Clone, Debug)]
pub struct Verified {
    pub user_id: UserId,
    pub sid: String,
    pub issued_ms: i64,
    /// The session epoch the token was issued under, if it names one.
    pub epoch: Option<i64>,
    /// Expiry, unix seconds.
    pub exp: i64,
}

/// Why a token was refused. Messages are safe to show the caller.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the token has expired")]
    Expired,
    #[error("the token is not a valid sessiond token")]
    Invalid,
    #[error("the token's signing key is unknown or retired")]
    UnknownKey,
    #[error("the token is issued in the future")]
    IssuedInFuture,
    #[error("the token's lifetime is longer than this service issues")]
    TooLong,
}
/// What tokens are issued with and checked against.
#[derive(Clone, Debug)]
pub struct TokenPolicy {
    /// Lifetime of issued tokens, and the longest `exp − iat` accepted.
    pub ttl: Duration,
    /// When set, tokens are issued for this audience and must name it.
    pub audience: Option<String>,
}
/// Issues and verifies tokens with the current [`KeySet`].
pub struct Tokens {
    /// Read on every verification: a read lock held for one `Arc` clone.
    keys: RwLock<Arc<KeySet>>,
    /// Bumped by every reload attempt, so callers that waited for one
    /// reload do not start another.
    generation: AtomicU64,
    /// Held by the one reload in flight; the time of the last reload.
    gate: tokio::sync::Mutex<Option<tokio::time::Instant>>,
    store: Option<Arc<dyn KeyStore>>,
    configured: Option<Vec<u8>>,
    validation: Validation,
    device_validation: Validation,
    policy: TokenPolicy,
    clock: Clock,
}

impl Tokens {
    /// Tokens with one fixed secret and no store (tests, tools).
    pub fn new(secret: &[u8], ttl: Duration, clock: Clock) -> Tokens {
        let policy = TokenPolicy {
            ttl,
            audience: None,
        };
        let keys = KeySet::from_secret(secret, &[]);
        Tokens::with(keys, None, Some(secret.to_vec()), policy, clock)
    }

    /// Tokens whose keys come from `store` (and `configured`, which then
    /// signs): the set is read once now; call [`Tokens::reload`] on an
    /// interval to follow rotations.
    pub async fn load(
        store: Arc<dyn KeyStore>,
        configured: Option<Vec<u8>>,
        policy: TokenPolicy,
        clock: Clock,
    ) -> anyhow::Result<Tokens> {
        let stored = store
            .load_keys()
            .await
            .map_err(|e| anyhow::anyhow!("cannot read the signing keys: {e}"))?;
        let keys = KeySet::build(configured.as_deref(), &stored)
            .ok_or_else(|| anyhow::anyhow!("the database holds no active signing key"))?;
        Ok(Tokens::with(keys, Some(store), configured, policy, clock))
    }

    fn with(
        keys: KeySet,
        store: Option<Arc<dyn KeyStore>>,
        configured: Option<Vec<u8>>,
        policy: TokenPolicy,
        clock: Clock,
    ) -> Tokens {
        // The algorithm is pinned: a token whose header names any other
        // (or `none`) is refused before its signature is looked at.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        let mut required = vec!["exp", "iss", "sub"];
        // Without a configured audience, a token that names one is for
        // someone else and is refused (jsonwebtoken's rule).
        if let Some(aud) = &policy.audience {
            validation.set_audience(&[aud]);
            required.push("aud");
        }
        validation.set_required_spec_claims(&required);
        // Expiry is checked against `clock`, not the system time.
        validation.validate_exp = false;
        validation.leeway = 0;
        let mut device_validation = Validation::new(Algorithm::HS256);
        device_validation.set_issuer(&[ISSUER]);
        device_validation.set_audience(&[DEVICE_AUDIENCE]);
        device_validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        device_validation.validate_exp = false;
        device_validation.leeway = 0;
        Tokens {
            keys: RwLock::new(Arc::new(keys)),
            generation: AtomicU64::new(0),
            gate: tokio::sync::Mutex::new(None),
            store,
            configured,
            validation,
            device_validation,
            policy,
            clock,
        }
    }

    /// The current key set.
    pub fn keys(&self) -> Arc<KeySet> {
        Arc::clone(&*self.keys.read_locked())
    }

    /// Reads the key set from the store again; on failure the current set
    /// stays.
    pub async fn reload(&self) -> Result<(), String> {
        let _gate = self.gate.lock().await;
        self.reload_now().await
    }

    async fn reload_now(&self) -> Result<(), String> {
        self.generation.fetch_add(1, Ordering::AcqRel);
        let Some(store) = &self.store else {
            return Ok(());
        };
        let stored = store.load_keys().await?;
        let keys = KeySet::build(self.configured.as_deref(), &stored)
            .ok_or_else(|| "the database holds no active signing key".to_string())?;
        let mut current = self.keys.write_locked();
        // The same keys: the set stays, with the tokens it remembers.
        if !current.same_keys_as(&keys) {
            *current = Arc::new(keys);
        }
        Ok(())
    }

    /// The set after one reload for a key this node does not know: single
    /// flight (callers that waited for a reload in flight take its result),
    /// and at most one per [`UNKNOWN_KID_GAP`].
    async fn reload_for_unknown(&self) -> Arc<KeySet> {
        if self.store.is_none() {
            return self.keys();
        }
        let seen = self.generation.load(Ordering::Acquire);
        let mut last = self.gate.lock().await;
        if self.generation.load(Ordering::Acquire) != seen {
            return self.keys();
        }
        if let Some(at) = *last {
            tokio::time::sleep_until(at + UNKNOWN_KID_GAP).await;
        }
        if let Err(e) = self.reload_now().await {
            tracing::warn!(error = %e, "cannot reload the signing keys");
        }
        *last = Some(tokio::time::Instant::now());
        self.keys()
    }

    /// Reloads the key set every `every` while `tokens` lives.
    pub fn spawn_reloader(tokens: &Arc<Tokens>, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(tokens);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(tokens) = weak.upgrade() else {
                    return;
                };
                if let Err(e) = tokens.reload().await {
                    tracing::warn!(error = %e, "cannot reload the signing keys");
                }
            }
        })
    }

    /// A new token for `user_id` under session epoch `epoch`:
    /// `(token, claims)`.
    pub fn issue(
        &self,
        user_id: &UserId,
        epoch: i64,
    ) -> Result<(String, Claims), jsonwebtoken::errors::Error> {
        let now_ms = self.clock.now_ms();
        let claims = Claims {
            sub: user_id.to_string(),
            sid: new_sid(now_ms),
            iat: now_ms.div_euclid(1000),
            exp: (now_ms + self.policy.ttl.as_millis() as i64).div_euclid(1000),
            iss: ISSUER.to_string(),
            aud: self.policy.audience.clone(),
            sep: Some(epoch),
        };
        let keys = self.keys();
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(keys.signing_kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &keys.signing)?;
        Ok((token, claims))
    }

    /// A new device token for the account `email` (normalized), valid for
    /// `life`, signed with the key that signs sessions.
    pub fn issue_device(
        &self,
        email: &str,
        life: Duration,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let now_ms = self.clock.now_ms();
        let claims = DeviceClaims {
            iss: ISSUER.to_string(),
            aud: DEVICE_AUDIENCE.to_string(),
            acct: account_hash(email),
            dev: new_sid(now_ms),
            iat: now_ms.div_euclid(1000),
            exp: (now_ms + life.as_millis() as i64).div_euclid(1000),
        };
        let keys = self.keys();
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(keys.signing_kid.clone());
        jsonwebtoken::encode(&header, &claims, &keys.signing)
    }

    /// The device id of `token` if it is a valid, unexpired device token
    /// of the account `email`, checked with the keys this node holds
    /// (never a reload: a stranger's junk costs no database read).
    pub fn device_id(&self, token: &str, email: &str) -> Option<String> {
        if token.len() > 2048 {
            return None;
        }
        let keys = self.keys();
        let header = jsonwebtoken::decode_header(token).ok()?;
        let key = keys.verifying.get(header.kid.as_deref()?)?;
        let c = jsonwebtoken::decode::<DeviceClaims>(token, key, &self.device_validation)
            .ok()?
            .claims;
        let now = self.clock.now_secs();
        let fresh = c.exp > now && c.iat <= now.saturating_add(IAT_LEEWAY_SECS);
        (fresh && c.acct == account_hash(email) && !c.dev.is_empty() && c.dev.len() <= 64)
            .then_some(c.dev)
    }

    /// Checks a token; a key id this node does not know makes it reload
    /// its key set once (single flight, at most once per [`UNKNOWN_KID_GAP`]).
    pub async fn verify(&self, token: &str) -> Result<Verified, TokenError> {
        match self.verify_known(token) {
            Err(TokenError::UnknownKey) => {
                let keys = self.reload_for_unknown().await;
                self.verify_with(&keys, token)
            }
            other => other,
        }
    }

    /// Checks a token against the keys this node holds now, without
    /// reading the store.
    pub fn verify_known(&self, token: &str) -> Result<Verified, TokenError> {
        self.verify_with(&self.keys(), token)
    }

    fn verify_with(&self, keys: &KeySet, token: &str) -> Result<Verified, TokenError> {
        match keys.remembered.get(token) {
            Some(seen) => self.in_time(seen.verified, seen.iat),
            None => {
                let (verified, iat) = self.verify_in_full(keys, token)?;
                let entry = Entry { verified, iat };
                keys.remembered.put(token, entry.clone());
                Ok(entry.verified)
            }
        }
    }

    /// The checks that depend on the time, made on every use of a token
    /// (the clock may have moved either way since it was verified).
    fn in_time(&self, verified: Verified, iat: i64) -> Result<Verified, TokenError> {
        let now = self.clock.now_secs();
        if iat > now.saturating_add(IAT_LEEWAY_SECS) {
            return Err(TokenError::IssuedInFuture);
        }
        if verified.exp <= now {
            return Err(TokenError::Expired);
        }
        Ok(verified)
    }

    /// Every check: signature, issuer, audience, lifetime, times, claims.
    fn verify_in_full(&self, keys: &KeySet, token: &str) -> Result<(Verified, i64), TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        let key = match header.kid.as_deref() {
            Some(kid) if kid.len() > MAX_KID => return Err(TokenError::Invalid),
            Some(kid) => keys.verifying.get(kid).ok_or(TokenError::UnknownKey)?,
            None => keys.legacy.as_ref().ok_or(TokenError::UnknownKey)?,
        };
        let data = jsonwebtoken::decode::<Claims>(token, key, &self.validation)
            .map_err(|_| TokenError::Invalid)?;
        let c = data.claims;
        let now = self.clock.now_secs();
        if c.iat > now.saturating_add(IAT_LEEWAY_SECS) {
            return Err(TokenError::IssuedInFuture);
        }
        // A token is issued with exp = iat + ttl (rounded to seconds): one
        // that claims longer was not issued under this policy.
        let longest = (self.policy.ttl.as_millis() as i64 + 999) / 1000;
        if c.exp.saturating_sub(c.iat) > longest {
            return Err(TokenError::TooLong);
        }
        if c.exp <= now {
            return Err(TokenError::Expired);
        }
        let user_id = UserId::parse(&c.sub).map_err(|_| TokenError::Invalid)?;
        if c.sid.is_empty() || c.sid.len() > 64 {
            return Err(TokenError::Invalid);
        }
        let issued_ms = sid_issued_ms(&c.sid).unwrap_or(c.iat.saturating_mul(1000));
        let verified = Verified {
            user_id,
            sid: c.sid,
            issued_ms,
            epoch: c.sep,
            exp: c.exp,
        };
        Ok((verified, c.iat))
    }
}

/// 12 hex digits of the issue time in ms, then 20 of randomness.
fn new_sid(now_ms: i64) -> String {
    let random: u128 = rand::thread_rng().gen::<u128>() >> 48;
    format!(
        "{:012x}{:020x}",
        now_ms.max(0) as u64 & 0xffff_ffff_ffff,
        random
    )
}

fn sid_issued_ms(sid: &str) -> Option<i64> {
    if sid.len() != 32 {
        return None;
    }
    i64::from_str_radix(sid.get(..12)?, 16).ok()
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::EncodingKey;
    use sessiond_actors::BoxFuture;

    use super::super::keyset::{configured_kid, StoredKey};
    use super::*;

    fn tokens(clock: &Clock) -> Tokens {
        Tokens::new(SECRET, Duration::from_secs(60), clock.clone())
    }

    #[test]
    fn issue_then_verify_then_expire() {
        let clock = Clock::new();
        let t = tokens(&clock);
        let (token, claims) = t.issue(&UserId::from(42), 0).expect("issues");
        assert_eq!(claims.sub, "42");
        let v = t.verify_known(&token).expect("verifies");
        assert_eq!(v.user_id, UserId::from(42));
        assert_eq!(v.sid, claims.sid);
        assert!((v.issued_ms - clock.now_ms()).abs() < 5_000);
        clock.advance(Duration::from_secs(61));
        assert_eq!(t.verify_known(&token).err(), Some(TokenError::Expired));
    }

    #[test]
    fn other_secret_and_garbage_are_invalid() {
        let clock = Clock::new();
        let (token, _) = tokens(&clock).issue(&UserId::from(1), 0).expect("issues");
        let other = Tokens::new(
            b"another-secret-another-secret!!",
            Duration::from_secs(60),
            clock,
        );
        // Another secret has another key id.
        assert_eq!(
            other.verify_known(&token).err(),
            Some(TokenError::UnknownKey)
        );
        assert_eq!(other.verify_known("a.b.c").err(), Some(TokenError::Invalid));
        assert_eq!(other.verify_known("").err(), Some(TokenError::Invalid));
    }

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    /// A device token names its account and expires; it is no session
    /// token, and a session token is no device token.
    #[test]
    fn device_tokens_are_bound_to_their_account_and_to_nothing_else() {
        let clock = Clock::new();
        let t = tokens(&clock);
        let device = t
            .issue_device("a@example.test", Duration::from_secs(60))
            .expect("issues");
        let id = t.device_id(&device, "a@example.test").expect("checks");
        assert_eq!(id.len(), 32);
        assert_eq!(t.device_id(&device, "b@example.test"), None);
        assert_eq!(t.verify_known(&device).err(), Some(TokenError::Invalid));
        let (session, _) = t.issue(&UserId::from(1), 0).expect("issues");
        assert_eq!(t.device_id(&session, "a@example.test"), None);
        let other = Tokens::new(
            b"another-secret-another-secret!!",
            Duration::from_secs(60),
            clock.clone(),
        );
        assert_eq!(other.device_id(&device, "a@example.test"), None);
        clock.advance(Duration::from_secs(61));
        assert_eq!(t.device_id(&device, "a@example.test"), None);
    }

    /// A token with these claims and header, signed with `secret`.
    fn forge(secret: &[u8], kid: Option<&str>, claims: serde_json::Value) -> String {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(secret)).expect("signs")
    }

    fn claims(iat: i64, exp: i64) -> serde_json::Value {
        serde_json::json!({"sub": "7", "sid": "s1", "iat": iat, "exp": exp, "iss": ISSUER})
    }

    /// `sub` is the id's text form, whatever the app's ids look like; a
    /// `sub` that is no valid id is an invalid token.
    #[test]
    fn text_ids_are_the_subject() {
        let clock = Clock::new();
        let t = tokens(&clock);
        for text in [
            "550e8400-e29b-41d4-a716-446655440000",
            "clx3k9abc0000qzrmn1234567",
            "V1StGXR8_Z5jdHi6B-myT",
            "Zx9kQ2mN7pL4vR8sT1wY3uE6iO0aB5cD",
            "007",
        ] {
            let id = UserId::parse(text).expect("valid");
            let (token, claims) = t.issue(&id, 0).expect("issues");
            assert_eq!(claims.sub, text);
            assert_eq!(t.verify_known(&token).expect("verifies").user_id, id);
        }
        let now = clock.now_secs();
        let long = "a".repeat(129);
        for bad in ["", "a b", "ü", "a/b", long.as_str()] {
            let token = forge(
                SECRET,
                Some(&configured_kid(SECRET)),
                serde_json::json!({"sub": bad, "sid": "s1", "iat": now, "exp": now + 30, "iss": ISSUER}),
            );
            assert_eq!(
                t.verify_known(&token).err(),
                Some(TokenError::Invalid),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn tokens_name_their_key_and_an_unnamed_one_checks_with_the_configured_secret() {
        let clock = Clock::new();
        let t = tokens(&clock);
        let (token, _) = t.issue(&UserId::from(1), 0).expect("issues");
        let header = jsonwebtoken::decode_header(&token).expect("header");
        assert_eq!(header.kid.as_deref(), Some(configured_kid(SECRET).as_str()));
        assert!(configured_kid(SECRET).starts_with("cfg-"));
        // Issued before key ids: no kid, the same secret.
        let now = clock.now_secs();
        let old = forge(SECRET, None, claims(now, now + 30));
        assert_eq!(
            t.verify_known(&old).expect("verifies").user_id,
            UserId::from(7)
        );
        let forged = forge(
            b"someone-else-secret-0123456789abcd",
            None,
            claims(now, now + 30),
        );
        assert_eq!(t.verify_known(&forged).err(), Some(TokenError::Invalid));
        // A known key id on a token signed with another secret.
        let kid = configured_kid(SECRET);
        let forged = forge(
            b"someone-else-secret-0123456789abcd",
            Some(&kid),
            claims(now, now + 30),
        );
        assert_eq!(t.verify_known(&forged).err(), Some(TokenError::Invalid));
    }

    #[test]
    fn iat_in_the_future_and_lifetimes_beyond_policy_are_refused() {
        let clock = Clock::new();
        let t = tokens(&clock);
        let kid = configured_kid(SECRET);
        let now = clock.now_secs();
        let within_leeway = forge(SECRET, Some(&kid), claims(now + 50, now + 60));
        assert!(t.verify_known(&within_leeway).is_ok());
        let future = forge(SECRET, Some(&kid), claims(now + 120, now + 150));
        assert_eq!(
            t.verify_known(&future).err(),
            Some(TokenError::IssuedInFuture)
        );
        // The policy is 60 s: a year-long token made with the key is not one
        // this service issued.
        let long = forge(SECRET, Some(&kid), claims(now, now + 365 * 86_400));
        assert_eq!(t.verify_known(&long).err(), Some(TokenError::TooLong));
        let exact = forge(SECRET, Some(&kid), claims(now, now + 60));
        assert!(t.verify_known(&exact).is_ok());
    }

    #[tokio::test]
    async fn an_audience_is_issued_and_required() {
        let clock = Clock::new();
        let store: Arc<dyn KeyStore> = Arc::new(Fake::default());
        let policy = |aud: Option<&str>| TokenPolicy {
            ttl: Duration::from_secs(60),
            audience: aud.map(str::to_owned),
        };
        let with = Tokens::load(
            Arc::clone(&store),
            Some(SECRET.to_vec()),
            policy(Some("app")),
            clock.clone(),
        )
        .await
        .expect("loads");
        let other = Tokens::load(
            Arc::clone(&store),
            Some(SECRET.to_vec()),
            policy(Some("other")),
            clock.clone(),
        )
        .await
        .expect("loads");
        let none = Tokens::load(store, Some(SECRET.to_vec()), policy(None), clock.clone())
            .await
            .expect("loads");
        let (token, c) = with.issue(&UserId::from(3), 0).expect("issues");
        assert_eq!(c.aud.as_deref(), Some("app"));
        assert!(with.verify(&token).await.is_ok());
        assert_eq!(other.verify(&token).await.err(), Some(TokenError::Invalid));
        assert_eq!(none.verify(&token).await.err(), Some(TokenError::Invalid));
        // Configured: a token without one is refused.
        let (plain, _) = none.issue(&UserId::from(3), 0).expect("issues");
        assert_eq!(with.verify(&plain).await.err(), Some(TokenError::Invalid));
    }

    /// A key store in memory that counts its reads.
    #[derive(Default)]
    struct Fake {
        keys: std::sync::Mutex<Vec<StoredKey>>,
        reads: AtomicU64,
    }

    impl KeyStore for Fake {
        fn load_keys(&self) -> BoxFuture<'_, Result<Vec<StoredKey>, String>> {
            self.reads.fetch_add(1, Ordering::Relaxed);
            let keys = self.keys.lock().map(|k| k.clone()).unwrap_or_default();
            Box::pin(async move { Ok(keys) })
        }
    }

    fn key(kid: &str, active: bool) -> StoredKey {
        StoredKey {
            kid: kid.into(),
            secret: format!("secret-of-{kid}-0123456789abcdef0123456789"),
            active,
        }
    }

    /// Tokens over `fake`'s keys, 60 s tokens, no audience.
    async fn loaded(fake: &Arc<Fake>, clock: &Clock) -> Tokens {
        let policy = TokenPolicy {
            ttl: Duration::from_secs(60),
            audience: None,
        };
        Tokens::load(fake.clone(), None, policy, clock.clone())
            .await
            .expect("loads")
    }

    #[tokio::test(start_paused = true)]
    async fn a_rotation_is_found_on_first_sight_and_forged_kids_cost_one_read_per_gap() {
        let clock = Clock::new();
        let fake = Arc::new(Fake::default());
        *fake.keys.lock().expect("lock") = vec![key("k1", true)];
        let a = loaded(&fake, &clock).await;
        let b = Arc::new(loaded(&fake, &clock).await);
        let (old, _) = a.issue(&UserId::from(1), 0).expect("issues");
        // Rotation: k2 signs, k1 verifies. `a` reloads; `b` has not yet.
        *fake.keys.lock().expect("lock") = vec![key("k1", false), key("k2", true)];
        a.reload().await.expect("reloads");
        let (new, _) = a.issue(&UserId::from(1), 0).expect("issues");
        assert_eq!(
            jsonwebtoken::decode_header(&new)
                .expect("header")
                .kid
                .as_deref(),
            Some("k2")
        );
        let reads = fake.reads.load(Ordering::Relaxed);
        assert!(b.verify(&old).await.is_ok(), "known key: no read");
        assert_eq!(fake.reads.load(Ordering::Relaxed), reads);
        assert!(
            b.verify(&new).await.is_ok(),
            "unknown key: one reload finds it"
        );
        assert_eq!(fake.reads.load(Ordering::Relaxed), reads + 1);

        // Hundreds of forged kids at once: single flight, one read per gap.
        let now = clock.now_secs();
        let reads = fake.reads.load(Ordering::Relaxed);
        let started = tokio::time::Instant::now();
        let forged: Vec<_> = (0..300)
            .map(|i| forge(SECRET, Some(&format!("forged-{i}")), claims(now, now + 30)))
            .collect();
        let checks = forged.iter().map(|f| {
            let b = Arc::clone(&b);
            async move { b.verify(f).await }
        });
        for r in futures_util::future::join_all(checks).await {
            assert_eq!(r.err(), Some(TokenError::UnknownKey));
        }
        let waited = started.elapsed();
        let extra = fake.reads.load(Ordering::Relaxed) - reads;
        assert!(extra <= 1 + waited.as_secs(), "{extra} reads in {waited:?}");

        // Retired: gone from the store, gone at the next reload, though
        // `b` verified and remembered it.
        *fake.keys.lock().expect("lock") = vec![key("k2", true)];
        b.reload().await.expect("reloads");
        assert_eq!(b.verify(&old).await.err(), Some(TokenError::UnknownKey));
        assert!(b.verify(&new).await.is_ok());
    }

    #[tokio::test]
    async fn a_remembered_token_is_checked_against_the_time_and_kept_while_the_keys_are() {
        let clock = Clock::new();
        let fake = Arc::new(Fake::default());
        *fake.keys.lock().expect("lock") = vec![key("k1", true)];
        let t = loaded(&fake, &clock).await;
        let (token, claims) = t.issue(&UserId::from(7), 3).expect("issues");
        let first = t.verify(&token).await.expect("verifies");
        let again = t.verify(&token).await.expect("verifies");
        assert_eq!(again.user_id, first.user_id);
        assert_eq!(again.sid, claims.sid);
        assert_eq!(again.epoch, Some(3));
        assert_eq!(
            t.keys().remembered.get(&token).map(|e| e.iat),
            Some(claims.iat)
        );

        // A reload that finds the same keys keeps the set and its memory;
        // one that finds others replaces both.
        let before = t.keys();
        t.reload().await.expect("reloads");
        assert!(Arc::ptr_eq(&before, &t.keys()));
        *fake.keys.lock().expect("lock") = vec![key("k1", true), key("k2", false)];
        t.reload().await.expect("reloads");
        assert!(!Arc::ptr_eq(&before, &t.keys()));
        assert!(t.keys().remembered.get(&token).is_none());
        assert!(t.verify(&token).await.is_ok());

        // The times are checked on every use: a clock stepped back before
        // the issue time (beyond the leeway), then past the expiry.
        let back = IAT_LEEWAY_SECS + 5;
        clock.rewind(Duration::from_secs(back as u64));
        assert_eq!(
            t.verify(&token).await.err(),
            Some(TokenError::IssuedInFuture)
        );
        clock.advance(Duration::from_secs(back as u64 + 61));
        assert_eq!(t.verify(&token).await.err(), Some(TokenError::Expired));
    }
}
