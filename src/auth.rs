//! Tokens (HS256 JWT) and passwords (argon2id), one concern a file:
//!
//! - `keyset`: the signing keys one node holds ([`KeySet`]: one signs, all
//!   verify), where they are stored ([`KeyStore`]) and how key ids are made.
//! - `tokens`: [`Tokens`] issues and verifies tokens with the current key
//!   set. The set comes from a [`KeyStore`] (the database: `sessiond keys
//!   list|rotate|retire`) and is reloaded on an interval and when a token
//!   names a key this node has not seen (single flight, at most once per
//!   [`UNKNOWN_KID_GAP`]), so a rotation made anywhere reaches every node
//!   without the hot path ever touching the database for a key it knows.
//! - `remembered`: the tokens a key set verified lately, by their exact
//!   text, so that a token presented again is not verified again.
//! - `passwords`: argon2id hashing, and the [`PasswordPool`] of threads
//!   that checks passwords with reused memory.

mod keyset;
mod passwords;
mod remembered;
mod tokens;

use rand::Rng;

pub use keyset::{configured_kid, new_kid, KeySet, KeyStore, StoredKey, LEGACY_KID};
pub use passwords::{
    hash_password, hash_password_blocking, needs_rehash, verify_password_in, PasswordPool,
};
pub use tokens::{
    device_bucket, Claims, TokenError, TokenPolicy, Tokens, Verified, DEVICE_AUDIENCE,
    IAT_LEEWAY_SECS, ISSUER, KEY_RELOAD, UNKNOWN_KID_GAP,
};

/// A random secret or password of `len` characters from a URL-safe alphabet.
pub fn random_secret(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}
