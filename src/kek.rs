//! Signing keys encrypted at rest: a key-encryption key, held outside the
//! database (`--key-encryption-key-file`), seals every stored signing key
//! with AES-256-GCM, so a backup, a replica or a read-only role on the
//! database cannot mint tokens.
//!
//! A sealed value is `sealed:v1:<kek id>:<base64url(nonce ‖ ciphertext ‖ tag)>`:
//! the id (a keyed hash of the key-encryption key, never the key) says which
//! key sealed it, so a wrong key is named as such and `sessiond keys rewrap`
//! can move every key to a new one. The signing key's id is the additional
//! data: a sealed value copied onto another key's row does not open.
//!
//! Values that do not start with `sealed:` are keys stored in clear (before
//! a key-encryption key was configured); `serve` seals them when it starts
//! with one.

use std::fmt;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use base64::Engine as _;

use crate::config::KekArgs;

/// What every sealed value starts with.
const SEALED: &str = "sealed:v1:";
/// Bytes of a key-encryption key.
pub const KEK_LEN: usize = 32;

/// One key-encryption key and its id.
pub struct Kek {
    id: String,
    key: LessSafeKey,
}

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Kek({})", self.id)
    }
}

impl Kek {
    /// A key from its text: 32 bytes as base64 (standard or URL-safe,
    /// padded or not) or as 64 hex digits, surrounding blanks ignored.
    pub fn parse(text: &str) -> Result<Kek, String> {
        let text = text.trim();
        let bytes = decode_hex(text)
            .or_else(|| base64::engine::general_purpose::STANDARD.decode(text).ok())
            .or_else(|| {
                base64::engine::general_purpose::STANDARD_NO_PAD
                    .decode(text)
                    .ok()
            })
            .or_else(|| base64::engine::general_purpose::URL_SAFE.decode(text).ok())
            .or_else(|| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(text)
                    .ok()
            })
            .ok_or_else(|| {
                format!(
                    "is neither base64 nor hex: it must hold {KEK_LEN} random bytes \
                     (make one with `openssl rand -base64 {KEK_LEN}`)"
                )
            })?;
        Kek::from_bytes(&bytes)
    }

    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Kek, String> {
        if bytes.len() != KEK_LEN {
            return Err(format!(
                "holds {} bytes, not {KEK_LEN} (make one with `openssl rand -base64 {KEK_LEN}`)",
                bytes.len()
            ));
        }
        if bytes.iter().all(|b| *b == bytes[0]) {
            return Err("is one byte repeated: it must be random".into());
        }
        let key = UnboundKey::new(&AES_256_GCM, bytes)
            .map_err(|_| "is not an AES-256 key".to_string())?;
        let tag = aws_lc_rs::hmac::sign(
            &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, bytes),
            b"sessiond key-encryption key id",
        );
        let id = tag.as_ref()[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(Kek {
            id,
            key: LessSafeKey::new(key),
        })
    }

    /// A key from the file at `path`.
    pub fn from_file(path: &str) -> Result<Kek, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the key-encryption key file {path}: {e}"))?;
        Kek::parse(&text).map_err(|e| format!("the key-encryption key file {path} {e}"))
    }

    /// The key's id: a keyed hash of it (12 hex digits), safe to show.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn seal(&self, kid: &str, secret: &str) -> Result<String, String> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| "no random bytes for a nonce")?;
        let mut data = secret.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(kid.as_bytes()),
                &mut data,
            )
            .map_err(|_| "cannot encrypt a signing key".to_string())?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        Ok(format!(
            "{SEALED}{}:{}",
            self.id,
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(out)
        ))
    }

    fn open(&self, kid: &str, sealed: &[u8]) -> Option<String> {
        if sealed.len() < NONCE_LEN {
            return None;
        }
        let (nonce, data) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut data = data.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(kid.as_bytes()), &mut data)
            .ok()?;
        String::from_utf8(plain.to_vec()).ok()
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() != KEK_LEN * 2 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// How a stored value is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AtRest {
    Clear,
    /// Sealed with the key-encryption key of this id.
    Sealed(String),
}

/// How `stored` is kept.
pub fn at_rest(stored: &str) -> AtRest {
    match stored
        .strip_prefix(SEALED)
        .and_then(|rest| rest.split_once(':'))
    {
        Some((id, _)) => AtRest::Sealed(id.to_string()),
        None => AtRest::Clear,
    }
}

/// The key-encryption keys a process holds: the current one seals (and
/// opens), previous ones only open (while `keys rewrap` moves every key
/// to the current one).
#[derive(Debug, Default)]
pub struct Keyring {
    current: Option<Kek>,
    previous: Vec<Kek>,
}

impl Keyring {
    /// The keys named by the flags (none: signing keys stay in clear).
    pub fn from_args(args: &KekArgs) -> anyhow::Result<Keyring> {
        let current = args
            .key_encryption_key_file
            .as_deref()
            .filter(|p| !p.is_empty())
            .map(Kek::from_file)
            .transpose()
            .map_err(anyhow::Error::msg)?;
        let previous = args
            .previous_key_encryption_key_file
            .iter()
            .filter(|p| !p.is_empty())
            .map(|p| Kek::from_file(p))
            .collect::<Result<Vec<_>, _>>()
            .map_err(anyhow::Error::msg)?;
        if current.is_none() && !previous.is_empty() {
            anyhow::bail!(
                "--previous-key-encryption-key-file needs --key-encryption-key-file \
                 (the key every signing key is encrypted with from now on)"
            );
        }
        Ok(Keyring { current, previous })
    }

    /// A ring with these keys (tests, tools).
    pub fn new(current: Option<Kek>, previous: Vec<Kek>) -> Keyring {
        Keyring { current, previous }
    }

    /// The key that seals, if any.
    pub fn current(&self) -> Option<&Kek> {
        self.current.as_ref()
    }

    /// `secret` as it is stored: sealed with the current key, else clear.
    pub fn seal(&self, kid: &str, secret: &str) -> Result<String, String> {
        match &self.current {
            Some(k) => k.seal(kid, secret),
            None => Ok(secret.to_string()),
        }
    }

    /// The secret of the signing key `kid` from its stored value.
    pub fn open(&self, kid: &str, stored: &str) -> Result<String, String> {
        let Some(rest) = stored.strip_prefix(SEALED) else {
            return Ok(stored.to_string());
        };
        let Some((id, data)) = rest.split_once(':') else {
            return Err(format!("signing key {kid}: the stored value is malformed"));
        };
        let Some(kek) = self
            .current
            .iter()
            .chain(&self.previous)
            .find(|k| k.id == id)
        else {
            return Err(match &self.current {
                None => format!(
                    "signing key {kid} is encrypted at rest (key-encryption key {id}) and no \
                     --key-encryption-key-file is given"
                ),
                Some(c) => format!(
                    "signing key {kid} is encrypted with key-encryption key {id}, not with the \
                     configured one ({}): wrong --key-encryption-key-file? (while rewrapping, \
                     give the old one as --previous-key-encryption-key-file)",
                    c.id
                ),
            });
        };
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(data)
            .ok()
            .and_then(|sealed| kek.open(kid, &sealed))
            .ok_or_else(|| {
                format!(
                    "signing key {kid} does not decrypt with key-encryption key {id}: its stored \
                     value was altered"
                )
            })
    }

    /// Whether `stored` should be sealed again with the current key: it is
    /// clear, or sealed with another key.
    pub fn needs_sealing(&self, stored: &str) -> bool {
        match (&self.current, at_rest(stored)) {
            (None, _) => false,
            (Some(_), AtRest::Clear) => true,
            (Some(c), AtRest::Sealed(id)) => id != c.id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kek(seed: u8) -> Kek {
        let bytes: Vec<u8> = (0..KEK_LEN as u8)
            .map(|i| i.wrapping_mul(7) ^ seed)
            .collect();
        Kek::from_bytes(&bytes).expect("a key")
    }

    #[test]
    fn sealed_values_open_with_their_key_only() {
        let ring = Keyring::new(Some(kek(1)), vec![]);
        let sealed = ring.seal("k1", "the-signing-secret").expect("seals");
        assert!(!sealed.contains("the-signing-secret"), "{sealed}");
        assert_eq!(at_rest(&sealed), AtRest::Sealed(kek(1).id().to_string()));
        assert_eq!(
            ring.open("k1", &sealed).as_deref(),
            Ok("the-signing-secret")
        );
        // Another key id's row: the additional data differs.
        assert!(ring.open("k2", &sealed).is_err());
        // Another key-encryption key: named as such.
        let other = Keyring::new(Some(kek(2)), vec![]);
        let e = other.open("k1", &sealed).expect_err("wrong key");
        assert!(e.contains("not with the configured one"), "{e}");
        // None configured.
        let e = Keyring::default().open("k1", &sealed).expect_err("no key");
        assert!(e.contains("--key-encryption-key-file"), "{e}");
        // The old one as previous opens it, and it needs sealing again.
        let rotating = Keyring::new(Some(kek(2)), vec![kek(1)]);
        assert_eq!(
            rotating.open("k1", &sealed).as_deref(),
            Ok("the-signing-secret")
        );
        assert!(rotating.needs_sealing(&sealed));
        assert!(!ring.needs_sealing(&sealed));
        // Altered: refused.
        let mut altered = sealed.clone();
        altered.pop();
        altered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert!(ring.open("k1", &altered).is_err());
        // Two seals of one secret differ (fresh nonces).
        assert_ne!(ring.seal("k1", "s").ok(), ring.seal("k1", "s").ok());
    }

    #[test]
    fn key_text_is_base64_or_hex_of_32_bytes() {
        let mut bytes = [5u8; KEK_LEN];
        bytes[0] = 9;
        let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
        assert!(Kek::parse(&format!("{b64}\n")).is_ok());
        assert!(Kek::parse(&format!("{}cd", "ab".repeat(31))).is_ok());
        assert!(Kek::parse("c2hvcnQ=").is_err());
        assert!(Kek::parse(&"00".repeat(32)).is_err());
        assert!(Kek::parse("not a key at all!").is_err());
    }
}
