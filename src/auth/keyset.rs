//! The signing keys one node holds, where they are stored, and how their
//! ids are made.

use std::collections::HashMap;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use rand::Rng;
use sessiond_actors::BoxFuture;

use super::remembered::{Remembered, DEFAULT_CAPACITY};

/// The id of the key that was the one stored secret before key ids
/// existed: tokens that name no key are checked with it.
pub const LEGACY_KID: &str = "legacy";

/// The longest key id looked up; a longer one is refused unread.
pub(super) const MAX_KID: usize = 64;
/// A signing key as the store keeps it.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredKey {
    pub kid: String,
    pub secret: String,
    /// The one key that signs.
    pub active: bool,
}

/// Where signing keys live: the database (a fake in tests).
pub trait KeyStore: Send + Sync + 'static {
    /// Every key that still verifies, the active one among them.
    fn load_keys(&self) -> BoxFuture<'_, Result<Vec<StoredKey>, String>>;
}
/// The key id of a configured secret: a keyed hash of it, so the id says
/// which secret without revealing it, and every node given the same secret
/// names it alike.
pub fn configured_kid(secret: &[u8]) -> String {
    let mac = jsonwebtoken::crypto::sign(
        b"sessiond key id",
        &EncodingKey::from_secret(secret),
        Algorithm::HS256,
    )
    .unwrap_or_default();
    format!("cfg-{}", mac.get(..16).unwrap_or(&mac))
}

/// A new key id: 12 hex digits of the creation time in ms, 8 random.
pub fn new_kid(now_ms: i64) -> String {
    format!(
        "{:012x}{:08x}",
        now_ms.max(0) as u64 & 0xffff_ffff_ffff,
        rand::thread_rng().gen::<u32>()
    )
}

/// The keys one node holds: one signs, all verify.
pub struct KeySet {
    pub(super) signing_kid: String,
    pub(super) signing: EncodingKey,
    pub(super) verifying: HashMap<String, DecodingKey>,
    /// Checks tokens that name no key (issued before key ids existed).
    pub(super) legacy: Option<DecodingKey>,
    /// The stored keys it was built from, by key id: a reload that finds
    /// the same keeps this set, and with it what it remembers.
    source: Vec<StoredKey>,
    /// The tokens this set verified lately.
    pub(super) remembered: Remembered,
}

impl KeySet {
    /// The set from a configured secret (which signs and checks tokens
    /// that name no key) and stored keys (which verify; the active one
    /// signs when no secret is configured). `None` when nothing can sign.
    pub fn build(configured: Option<&[u8]>, stored: &[StoredKey]) -> Option<KeySet> {
        match configured {
            Some(secret) => Some(KeySet::from_secret(secret, stored)),
            None => KeySet::from_store(stored),
        }
    }

    /// Whether this set was built from the same stored keys as `other`
    /// (the configured secret is the process's, the same for both).
    pub(super) fn same_keys_as(&self, other: &KeySet) -> bool {
        self.source == other.source
    }

    fn source(stored: &[StoredKey]) -> Vec<StoredKey> {
        let mut source = stored.to_vec();
        source.sort_by(|a, b| a.kid.cmp(&b.kid));
        source
    }

    fn verifying(stored: &[StoredKey]) -> HashMap<String, DecodingKey> {
        stored
            .iter()
            .map(|k| (k.kid.clone(), DecodingKey::from_secret(k.secret.as_bytes())))
            .collect()
    }

    /// A configured secret signs; stored keys verify too.
    pub(super) fn from_secret(secret: &[u8], stored: &[StoredKey]) -> KeySet {
        let kid = configured_kid(secret);
        let mut verifying = KeySet::verifying(stored);
        verifying.insert(kid.clone(), DecodingKey::from_secret(secret));
        KeySet {
            signing_kid: kid,
            signing: EncodingKey::from_secret(secret),
            verifying,
            legacy: Some(DecodingKey::from_secret(secret)),
            source: KeySet::source(stored),
            remembered: Remembered::new(DEFAULT_CAPACITY),
        }
    }

    /// The active stored key signs; `None` when there is none.
    fn from_store(stored: &[StoredKey]) -> Option<KeySet> {
        let active = stored.iter().find(|k| k.active)?;
        let legacy = stored
            .iter()
            .find(|k| k.kid == LEGACY_KID)
            .map(|k| DecodingKey::from_secret(k.secret.as_bytes()));
        Some(KeySet {
            signing_kid: active.kid.clone(),
            signing: EncodingKey::from_secret(active.secret.as_bytes()),
            verifying: KeySet::verifying(stored),
            legacy,
            source: KeySet::source(stored),
            remembered: Remembered::new(DEFAULT_CAPACITY),
        })
    }

    /// The id of the key that signs.
    pub fn signing_kid(&self) -> &str {
        &self.signing_kid
    }
}
