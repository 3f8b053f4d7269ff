//! A user's id as the application spells it ([`UserId`]): an integer
//! (`42`), a UUID, or a string such as a cuid, a nanoid or Better Auth's
//! 32-character ids.
//!
//! One rule decides the representation, so that two ids are equal exactly
//! when their text forms are: the canonical decimal form of an `i64` (no
//! sign but `-`, no leading zero) is kept as an integer; any other valid
//! id of up to [`INLINE_LEN`] bytes (UUIDs, cuids, nanoids, Better Auth's)
//! is kept inline; a longer one as shared text. Only the last allocates:
//! parsing the id of a request's token costs no allocation.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use self::bytes::{inline_bytes, same_inline, valid_text, BLOCK};

mod bytes;

/// The longest text id, in bytes.
pub const MAX_USER_ID_LEN: usize = 128;

/// The longest text id kept inline, in bytes: a UUID's 36 and more.
pub const INLINE_LEN: usize = 38;

/// A user id: immutable, cheap to clone (an integer, up to
/// [`INLINE_LEN`] bytes of text inline, or a reference count on shared
/// text). Build one with [`UserId::parse`] or from an `i64`.
///
/// Text ids are 1 to [`MAX_USER_ID_LEN`] bytes of ASCII letters, digits and
/// `-_.~:@+=`, with at least one letter or digit (so no id is `.` or
/// `..`): safe in a URL path, a log line and a NOTIFY payload, and enough
/// for integers, UUIDs, cuid/cuid2, nanoid and Better Auth's ids.
#[derive(Clone)]
pub struct UserId(Repr);

#[derive(Clone)]
enum Repr {
    Int(i64),
    /// `len` bytes of text, the rest zero (so equality and hashing may
    /// read all of them).
    Inline {
        len: u8,
        bytes: [u8; INLINE_LEN],
    },
    Text(Arc<str>),
}

impl PartialEq for UserId {
    /// Field by field, as derived, but inline bytes compared in three
    /// 16-byte words rather than by a call to `bcmp`. Always inlined: a
    /// lookup's probe compares ids, and a call costs an integer id more
    /// than its compare.
    #[inline(always)]
    fn eq(&self, other: &UserId) -> bool {
        match &self.0 {
            Repr::Int(a) => matches!(&other.0, Repr::Int(b) if a == b),
            Repr::Inline { bytes: a, .. } => {
                matches!(&other.0, Repr::Inline { bytes: b, .. } if same_inline(a, b))
            }
            Repr::Text(a) => matches!(&other.0, Repr::Text(b) if a == b),
        }
    }
}

impl Eq for UserId {}

/// Why a string is not a user id. The text names the rule, never the
/// offending input (which may be anything a caller sent).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UserIdError {
    #[error("a user id cannot be empty")]
    Empty,
    #[error("a user id is at most {MAX_USER_ID_LEN} bytes")]
    TooLong,
    #[error("a user id is made of ASCII letters, digits and -_.~:@+=, with a letter or digit")]
    BadChar,
}

/// The integer `s` is the canonical decimal form of, if any.
#[inline]
fn canonical_int(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let digits = b.strip_prefix(b"-").unwrap_or(b);
    let canonical = match digits {
        [] => false,
        [b'0'] => digits.len() == b.len(), // "0" yes, "-0" no
        [first, ..] => *first != b'0' && digits.iter().all(u8::is_ascii_digit),
    };
    if canonical && digits.len() <= 19 {
        s.parse().ok()
    } else {
        None
    }
}

impl UserId {
    /// Parses an id: the integer form for the canonical decimal of an
    /// `i64`, the text form for any other valid id.
    pub fn parse(s: &str) -> Result<UserId, UserIdError> {
        if let Some(n) = canonical_int(s) {
            return Ok(UserId(Repr::Int(n)));
        }
        if s.is_empty() {
            return Err(UserIdError::Empty);
        }
        if s.len() > MAX_USER_ID_LEN {
            return Err(UserIdError::TooLong);
        }
        if (BLOCK..=INLINE_LEN).contains(&s.len()) {
            // UUIDs, cuids, Better Auth's: checked and copied in blocks.
            let (mut bytes, len) = ([0; INLINE_LEN], s.len() as u8);
            return match inline_bytes(s.as_bytes(), &mut bytes) {
                true => Ok(UserId(Repr::Inline { len, bytes })),
                false => Err(UserIdError::BadChar),
            };
        }
        if !valid_text(s.as_bytes()) {
            return Err(UserIdError::BadChar);
        }
        if s.len() <= INLINE_LEN {
            let mut bytes = [0u8; INLINE_LEN];
            bytes[..s.len()].copy_from_slice(s.as_bytes());
            return Ok(UserId(Repr::Inline {
                len: s.len() as u8,
                bytes,
            }));
        }
        Ok(UserId(Repr::Text(Arc::from(s))))
    }

    /// The stored text of a text id.
    #[inline]
    fn text(&self) -> Option<&str> {
        match &self.0 {
            Repr::Int(_) => None,
            // Only valid ids (ASCII) are ever stored.
            Repr::Inline { len, bytes } => std::str::from_utf8(&bytes[..usize::from(*len)]).ok(),
            Repr::Text(s) => Some(s),
        }
    }

    /// Whether the text is shared (an id longer than [`INLINE_LEN`]): a
    /// copy of it is then a reference, not the bytes.
    #[inline]
    pub fn is_shared(&self) -> bool {
        matches!(self.0, Repr::Text(_))
    }

    /// The integer, for an integer id.
    #[inline]
    pub fn as_int(&self) -> Option<i64> {
        match &self.0 {
            Repr::Int(n) => Some(*n),
            _ => None,
        }
    }

    /// The text, for a text id (an integer id has no stored text: use
    /// `Display` or [`UserId::with_str`]).
    #[inline]
    pub fn as_text(&self) -> Option<&str> {
        self.text()
    }

    /// Runs `f` on the text form, without allocating (an integer is
    /// written on the stack).
    pub fn with_str<R>(&self, f: impl FnOnce(&str) -> R) -> R {
        match (&self.0, self.text()) {
            (Repr::Int(n), _) => {
                let mut buf = IntBuf::new();
                f(buf.format(*n))
            }
            (_, t) => f(t.unwrap_or_default()),
        }
    }

    /// The bytes placement hashes: the integer's little-endian bytes for an
    /// integer id (as before text ids existed, so no integer user moves),
    /// the text's bytes for a text id.
    #[inline]
    pub(crate) fn placement_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        match &self.0 {
            Repr::Int(n) => f(&n.to_le_bytes()),
            _ => f(self.text().unwrap_or_default().as_bytes()),
        }
    }
}

/// An `i64` in decimal on the stack.
struct IntBuf([u8; 20]);

impl IntBuf {
    fn new() -> Self {
        IntBuf([0; 20])
    }

    fn format(&mut self, n: i64) -> &str {
        let mut i = self.0.len();
        let mut v = n.unsigned_abs();
        loop {
            i -= 1;
            self.0[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        if n < 0 {
            i -= 1;
            self.0[i] = b'-';
        }
        // Only ASCII digits and '-' were written.
        std::str::from_utf8(&self.0[i..]).unwrap_or("0")
    }
}

impl From<i64> for UserId {
    #[inline]
    fn from(n: i64) -> Self {
        UserId(Repr::Int(n))
    }
}

impl From<&UserId> for UserId {
    #[inline]
    fn from(id: &UserId) -> Self {
        id.clone()
    }
}

impl std::str::FromStr for UserId {
    type Err = UserIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        UserId::parse(s)
    }
}

impl Hash for UserId {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        // The variants never hold the same text (canonical parsing), so
        // they need not hash alike.
        // The stored bytes, not `text()`: no UTF-8 check on every hash.
        // All 38 bytes of an inline id, zeros past its length too (equal ids
        // have equal bytes): a fixed length, so a hasher's loop unrolls.
        match &self.0 {
            Repr::Int(n) => state.write_i64(*n),
            Repr::Inline { bytes, .. } => state.write(bytes),
            Repr::Text(s) => state.write(s.as_bytes()),
        }
    }
}

impl Ord for UserId {
    /// The order of the text forms, byte by byte.
    fn cmp(&self, other: &Self) -> Ordering {
        self.with_str(|a| other.with_str(|b| a.as_bytes().cmp(b.as_bytes())))
    }
}

impl PartialOrd for UserId {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Int(n) => fmt::Display::fmt(n, f),
            _ => f.write_str(self.text().unwrap_or_default()),
        }
    }
}

impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Int(n) => fmt::Debug::fmt(n, f),
            _ => fmt::Debug::fmt(self.text().unwrap_or_default(), f),
        }
    }
}

impl PartialEq<i64> for UserId {
    fn eq(&self, other: &i64) -> bool {
        self.as_int() == Some(*other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> bool {
        UserId::parse(s).is_ok_and(|id| id.as_text() == Some(s))
    }

    #[test]
    fn canonical_integers_are_integers() {
        for (s, n) in [
            ("0", 0),
            ("42", 42),
            ("-7", -7),
            ("9223372036854775807", i64::MAX),
            ("-9223372036854775808", i64::MIN),
        ] {
            assert_eq!(
                UserId::parse(s).ok().and_then(|id| id.as_int()),
                Some(n),
                "{s}"
            );
            assert_eq!(UserId::from(n).to_string(), s);
            UserId::from(n).with_str(|t| assert_eq!(t, s));
        }
        // Not canonical, or out of range: text, so "007" and "7" differ.
        for s in ["007", "-0", "+5", "9223372036854775808", "00", "1e3"] {
            assert!(text(s), "{s}");
        }
        assert_ne!(UserId::parse("007").ok(), UserId::parse("7").ok());
    }

    #[test]
    fn what_apps_use_is_accepted() {
        for s in [
            "550e8400-e29b-41d4-a716-446655440000", // UUID
            "clx3k9abc0000qzrmn1234567",            // cuid
            "tz4a98xxat96iws9zmbrgj3a",             // cuid2
            "V1StGXR8_Z5jdHi6B-myT",                // nanoid
            "Zx9kQ2mN7pL4vR8sT1wY3uE6iO0aB5cD",     // Better Auth (32)
            "auth0:123@x.y+z=~",
        ] {
            assert!(text(s), "{s}");
        }
        assert_eq!(UserId::parse(""), Err(UserIdError::Empty));
        assert_eq!(UserId::parse(&"a".repeat(129)), Err(UserIdError::TooLong));
        assert!(text(&"a".repeat(128)));
        for s in [
            "a b", "a/b", "é", "a\0", "a%20", "a|b", "a\n", "a?b", "a#b", ".", "..", "-", "+=",
        ] {
            assert_eq!(UserId::parse(s), Err(UserIdError::BadChar), "{s:?}");
        }
    }

    /// An id's hash under the standard library's hasher.
    fn default_hash(id: &UserId) -> u64 {
        let mut s = std::collections::hash_map::DefaultHasher::new();
        id.hash(&mut s);
        s.finish()
    }

    #[test]
    fn equality_hash_and_order_follow_the_text() {
        let h = default_hash;
        let a = UserId::parse("42").ok();
        assert_eq!(a, Some(UserId::from(42)));
        assert_eq!(a.as_ref().map(h), Some(h(&UserId::from(42))));
        let t = UserId::parse("user_1").ok();
        assert_eq!(t, UserId::parse("user_1").ok());
        let mut ids: Vec<UserId> = ["b", "10", "9", "a", "-1"]
            .iter()
            .filter_map(|s| UserId::parse(s).ok())
            .collect();
        ids.sort();
        let sorted: Vec<String> = ids.iter().map(ToString::to_string).collect();
        assert_eq!(sorted, ["-1", "10", "9", "a", "b"]);
    }

    #[test]
    fn an_id_is_five_words_and_short_text_is_inline() {
        assert_eq!(std::mem::size_of::<UserId>(), 40);
        let uuid = "550e8400-e29b-41d4-a716-446655440000";
        let better_auth = "Zx9kQ2mN7pL4vR8sT1wY3uE6iO0aB5cD";
        let long = "x".repeat(INLINE_LEN + 1);
        for (s, shared) in [(uuid, false), (better_auth, false), (long.as_str(), true)] {
            let id = UserId::parse(s).ok();
            assert_eq!(id.as_ref().map(UserId::is_shared), Some(shared), "{s}");
            assert_eq!(id.as_ref().and_then(UserId::as_text), Some(s));
            assert_eq!(id.map(|i| i.to_string()).as_deref(), Some(s));
        }
    }

    /// Through `parse`, at every length from 1 to past the inline bytes:
    /// the same ids valid, the same errors, the same text back.
    #[test]
    fn parse_keeps_the_rule_at_every_length() {
        for n in 1..=MAX_USER_ID_LEN + 1 {
            for (fill, odd) in [('x', '-'), ('-', '-'), ('-', 'x'), ('x', '/'), ('.', '9')] {
                for at in [0, n / 2, n - 1] {
                    let mut s: Vec<char> = vec![fill; n];
                    s[at] = odd;
                    let s: String = s.into_iter().collect();
                    let want = if n > MAX_USER_ID_LEN {
                        Err(UserIdError::TooLong)
                    } else if canonical_int(&s).is_some() {
                        continue;
                    } else if bytes::rule(s.as_bytes()) {
                        Ok(s.clone())
                    } else {
                        Err(UserIdError::BadChar)
                    };
                    let got = UserId::parse(&s).map(|id| id.to_string());
                    assert_eq!(got, want, "{s:?}");
                }
            }
        }
    }

    /// Equal exactly when the text is, and equal ids hash alike, at every
    /// length on both sides of the inline limit: the same text parsed
    /// twice, one byte changed at each place, one byte more or fewer.
    #[test]
    fn equality_and_hash_agree_at_every_length() {
        let h = default_hash;
        let id = |s: &str| UserId::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"));
        let texts: Vec<String> = (1..=INLINE_LEN + 3)
            .map(|n| (0..n).map(|i| (b'a' + (i % 26) as u8) as char).collect())
            .collect();
        for a in &texts {
            let x = id(a);
            assert_eq!(x, id(a), "{a}");
            assert_eq!(x, x.clone(), "{a}");
            assert_eq!(h(&x), h(&id(a)), "{a}");
            for b in &texts {
                assert_eq!(x == id(b), a == b, "{a} {b}");
            }
            for at in 0..a.len() {
                let mut c = a.clone().into_bytes();
                c[at] = if c[at] == b'z' { b'y' } else { b'z' };
                let c = String::from_utf8(c).unwrap_or_default();
                assert_ne!(x, id(&c), "{a} {c}");
                assert_ne!(h(&x), h(&id(&c)), "{a} {c}");
            }
            assert_ne!(x, id(&format!("{a}-")), "{a}");
            assert_ne!(x, id(&format!("-{a}")), "{a}");
        }
        assert_ne!(id("abc"), UserId::from(1));
        assert_ne!(UserId::from(1), id("abc"));
        assert_ne!(UserId::from(1), UserId::from(2));
    }
}
