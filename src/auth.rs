//! Tokens (HS256 JWT) and passwords (argon2id).

use std::time::Duration;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::Argon2;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::clock::Clock;

pub const ISSUER: &str = "sessiond";

/// The claims of a sessiond token.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// The user id, as a string.
    pub sub: String,
    /// The token id: what logout revokes. Time-ordered (its first 12 hex
    /// digits are the issue time in ms) so "revoke all sessions" can compare
    /// it to a millisecond watermark.
    pub sid: String,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
    /// The user's session epoch at issue: "revoke all sessions" raises the
    /// user's, which revokes every token issued under a lower one. Absent
    /// from tokens issued before epochs existed (the `sid` watermark then
    /// decides).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sep: Option<i64>,
}

/// A token that passed every check.
#[derive(Clone, Debug)]
pub struct Verified {
    pub user_id: i64,
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
}

/// Issues and verifies tokens with one HS256 secret.
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
    clock: Clock,
}

impl Tokens {
    pub fn new(secret: &[u8], ttl: Duration, clock: Clock) -> Tokens {
        // The algorithm is pinned: a token whose header names any other
        // (or `none`) is refused before its signature is looked at.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        // Expiry is checked against `clock`, not the system time.
        validation.validate_exp = false;
        validation.leeway = 0;
        Tokens {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl,
            clock,
        }
    }

    /// A new token for `user_id` under session epoch `epoch`:
    /// `(token, claims)`.
    pub fn issue(
        &self,
        user_id: i64,
        epoch: i64,
    ) -> Result<(String, Claims), jsonwebtoken::errors::Error> {
        let now_ms = self.clock.now_ms();
        let claims = Claims {
            sub: user_id.to_string(),
            sid: new_sid(now_ms),
            iat: now_ms.div_euclid(1000),
            exp: (now_ms + self.ttl.as_millis() as i64).div_euclid(1000),
            iss: ISSUER.to_string(),
            sep: Some(epoch),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?;
        Ok((token, claims))
    }

    pub fn verify(&self, token: &str) -> Result<Verified, TokenError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_| TokenError::Invalid)?;
        let c = data.claims;
        if c.exp <= self.clock.now_secs() {
            return Err(TokenError::Expired);
        }
        let user_id: i64 = c.sub.parse().map_err(|_| TokenError::Invalid)?;
        if user_id <= 0 || c.sid.is_empty() || c.sid.len() > 64 {
            return Err(TokenError::Invalid);
        }
        let issued_ms = sid_issued_ms(&c.sid).unwrap_or(c.iat.saturating_mul(1000));
        Ok(Verified {
            user_id,
            sid: c.sid,
            issued_ms,
            epoch: c.sep,
            exp: c.exp,
        })
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

/// A random secret or password of `len` characters from a URL-safe alphabet.
pub fn random_secret(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// argon2id hash of `password` (PHC string). CPU-heavy: call it on the
/// blocking pool.
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

/// Work on passwords runs on a few dedicated threads, each with one
/// reusable argon2 memory buffer: argon2id needs ~19 MiB per run, and on
/// the blocking pool a burst of logins multiplied that across threads (and
/// the allocator kept it). Here memory is bounded by `threads` × 19 MiB,
/// CPU by `threads`, and a burst queues (up to a bound, then refused).
pub struct PasswordPool {
    jobs: std::sync::mpsc::SyncSender<Job>,
}

type Job = Box<dyn FnOnce(&mut Vec<argon2::Block>) + Send>;

/// Queued password checks beyond which logins are refused as busy.
const POOL_QUEUE: usize = 1024;

impl PasswordPool {
    pub fn new(threads: usize) -> PasswordPool {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(POOL_QUEUE);
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = std::sync::Arc::clone(&rx);
            let spawned = std::thread::Builder::new()
                .name(format!("sessiond-argon2-{i}"))
                .spawn(move || {
                    let mut blocks = Vec::new();
                    loop {
                        let job = match rx.lock() {
                            Ok(r) => r.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(&mut blocks),
                            // The pool was dropped: the application stopped.
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password thread");
            }
        }
        PasswordPool { jobs: tx }
    }

    /// Runs `f` on a pool thread; `None` when the queue is full or the pool
    /// is gone.
    pub async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Vec<argon2::Block>) -> R + Send + 'static,
    ) -> Option<R> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |blocks| {
            let _ = tx.send(f(blocks));
        });
        self.jobs.try_send(job).ok()?;
        rx.await.ok()
    }
}

/// The most argon2 memory a stored hash may ask for (256 MiB).
const MAX_BLOCKS: usize = 256 * 1024;

/// Checks `password` against a PHC hash with `blocks` as argon2's memory
/// (grown once, then reused); false for a malformed hash. The comparison
/// takes the same time wherever the outputs differ.
pub fn verify_password_in(password: &str, hash: &str, blocks: &mut Vec<argon2::Block>) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let Ok(algorithm) = argon2::Algorithm::try_from(parsed.algorithm) else {
        return false;
    };
    let version = match parsed.version.map(argon2::Version::try_from) {
        None => argon2::Version::V0x13,
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let Ok(params) = argon2::Params::try_from(&parsed) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let needed = params.block_count();
    if needed > MAX_BLOCKS {
        return false;
    }
    if blocks.len() < needed {
        blocks.resize(needed, argon2::Block::default());
    }
    let expected = expected.as_bytes();
    let mut out = vec![0u8; expected.len()];
    let argon = Argon2::new(algorithm, version, params);
    if argon
        .hash_password_into_with_memory(password.as_bytes(), salt, &mut out, &mut blocks[..needed])
        .is_err()
    {
        return false;
    }
    out.iter()
        .zip(expected)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(clock: &Clock) -> Tokens {
        Tokens::new(
            b"0123456789abcdef0123456789abcdef",
            Duration::from_secs(60),
            clock.clone(),
        )
    }

    #[test]
    fn issue_then_verify_then_expire() {
        let clock = Clock::new();
        let t = tokens(&clock);
        let (token, claims) = t.issue(42, 0).expect("issues");
        let v = t.verify(&token).expect("verifies");
        assert_eq!(v.user_id, 42);
        assert_eq!(v.sid, claims.sid);
        assert!((v.issued_ms - clock.now_ms()).abs() < 5_000);
        clock.advance(Duration::from_secs(61));
        assert_eq!(t.verify(&token).err(), Some(TokenError::Expired));
    }

    #[test]
    fn other_secret_and_garbage_are_invalid() {
        let clock = Clock::new();
        let (token, _) = tokens(&clock).issue(1, 0).expect("issues");
        let other = Tokens::new(
            b"another-secret-another-secret!!",
            Duration::from_secs(60),
            clock,
        );
        assert_eq!(other.verify(&token).err(), Some(TokenError::Invalid));
        assert_eq!(other.verify("a.b.c").err(), Some(TokenError::Invalid));
        assert_eq!(other.verify("").err(), Some(TokenError::Invalid));
    }

    #[test]
    fn verifying_with_reused_memory_agrees() {
        let h = hash_password("correct horse").expect("hashes");
        let mut blocks = Vec::new();
        assert!(verify_password_in("correct horse", &h, &mut blocks));
        assert!(!verify_password_in("wrong", &h, &mut blocks));
        assert!(verify_password_in("correct horse", &h, &mut blocks));
        assert!(!verify_password_in("x", "not a hash", &mut blocks));
        assert_eq!(blocks.len(), 19 * 1024);
    }

    #[test]
    fn passwords() {
        let h = hash_password("correct horse").expect("hashes");
        assert!(h.starts_with("$argon2id$"));
    }
}
