//! Tokens verified lately, remembered by their exact text, so that a token
//! presented again is not verified again: checking a token's signature and
//! reading its header and claims is half of what a cached session lookup
//! costs, and the same few tokens come back on every request of their
//! users.
//!
//! What is remembered is only what a full verification accepted, keyed by
//! the whole token: a token that differs in one byte is not found, and is
//! verified in full. The memory belongs to one [`super::keyset::KeySet`]:
//! when the keys change (a rotation, a retirement), the set is replaced and
//! what it remembered goes with it. The checks that depend on the time
//! (expiry, issue time in the future) are made on every use
//! ([`super::Tokens::verify`]).
//!
//! Bounded: each of [`SHARDS`] shards keeps two generations of at most
//! `capacity / SHARDS` tokens each; when the newer is full it becomes the
//! older and the older is dropped, and a token found in the older moves to
//! the newer. A token in use is therefore kept, and at most `2 × capacity`
//! are held.

use std::collections::HashMap;
use std::sync::Mutex;

use sessiond_actors::sync::MutexExt;

use super::tokens::Verified;

/// The shards, each under its own lock.
pub(super) const SHARDS: usize = 16;

/// Tokens per generation, over all shards, that a key set remembers.
pub(super) const DEFAULT_CAPACITY: usize = 131_072;

/// The longest token remembered (sessiond's own are a few hundred bytes).
const MAX_LEN: usize = 2048;

/// A remembered verification: what the token verified to and its issue
/// time (checked again on each use, against a clock that may have stepped).
#[derive(Clone, Debug)]
pub(super) struct Entry {
    pub(super) verified: Verified,
    pub(super) iat: i64,
}

#[derive(Default)]
struct Shard {
    newer: HashMap<Box<str>, Entry>,
    older: HashMap<Box<str>, Entry>,
}

impl Shard {
    fn insert(&mut self, token: Box<str>, entry: Entry, capacity: usize) {
        if self.newer.len() >= capacity {
            self.older = std::mem::take(&mut self.newer);
        }
        self.newer.insert(token, entry);
    }
}

/// Tokens verified lately (see the module's documentation).
pub(super) struct Remembered {
    shards: Vec<Mutex<Shard>>,
    /// Per shard and generation; 0: nothing is remembered.
    per_shard: usize,
}

impl Remembered {
    /// Remembers up to `capacity` tokens per generation (0: none).
    pub(super) fn new(capacity: usize) -> Remembered {
        let per_shard = capacity.div_ceil(SHARDS);
        let shards = if per_shard == 0 { 0 } else { SHARDS };
        Remembered {
            shards: (0..shards).map(|_| Mutex::new(Shard::default())).collect(),
            per_shard,
        }
    }

    /// A token's shard, from its last eight bytes (a signature's, random):
    /// mixed, since one base64 character alone takes few values (the last
    /// of an HS256 signature only 16, unevenly spread over the shards).
    fn shard(&self, token: &str) -> Option<&Mutex<Shard>> {
        if self.shards.is_empty() || token.len() > MAX_LEN {
            return None;
        }
        let bytes = token.as_bytes();
        let mut tail = [0u8; 8];
        let n = bytes.len().min(8);
        tail[8 - n..].copy_from_slice(&bytes[bytes.len() - n..]);
        let mixed = u64::from_le_bytes(tail).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.shards.get((mixed >> 58) as usize % self.shards.len())
    }

    /// What `token` verified to, if it is remembered.
    pub(super) fn get(&self, token: &str) -> Option<Entry> {
        let mut shard = self.shard(token)?.locked();
        if let Some(e) = shard.newer.get(token) {
            return Some(e.clone());
        }
        let (token, entry) = shard.older.remove_entry(token)?;
        let found = entry.clone();
        shard.insert(token, entry, self.per_shard);
        Some(found)
    }

    /// Remembers what `token` verified to.
    pub(super) fn put(&self, token: &str, entry: Entry) {
        if let Some(shard) = self.shard(token) {
            shard.locked().insert(token.into(), entry, self.per_shard);
        }
    }

    /// How many tokens are held now.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                let s = s.locked();
                s.newer.len() + s.older.len()
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use sessiond_actors::UserId;

    fn entry(n: i64) -> Entry {
        Entry {
            verified: Verified {
                user_id: UserId::from(n),
                sid: format!("sid-{n}"),
                issued_ms: n,
                epoch: Some(n),
                exp: n + 60,
            },
            iat: n,
        }
    }

    #[test]
    fn only_the_exact_text_is_found() {
        let r = Remembered::new(64);
        r.put("header.claims.signature", entry(1));
        let found = r.get("header.claims.signature").expect("remembered");
        assert_eq!(found.verified.user_id, UserId::from(1));
        assert_eq!(found.iat, 1);
        for other in [
            "header.claims.signaturf",
            "header.claims.signatur",
            "header.claimz.signature",
            "",
        ] {
            assert!(r.get(other).is_none(), "{other}");
        }
    }

    #[test]
    fn memory_is_bounded_and_tokens_in_use_stay() {
        let capacity = 16 * SHARDS;
        let r = Remembered::new(capacity);
        let token = |i: usize| format!("token-{i:06}");
        r.put(&token(0), entry(0));
        for i in 1..20 * capacity {
            r.put(&token(i), entry(i as i64));
            // The first token is used all along: it is never dropped.
            assert!(r.get(&token(0)).is_some(), "dropped after {i}");
            assert!(r.len() <= 2 * capacity, "{} held", r.len());
        }
        // The oldest of the others are gone, the latest are there.
        assert!(r.get(&token(1)).is_none());
        assert!(r.get(&token(20 * capacity - 1)).is_some());
    }

    #[test]
    fn signatures_spread_over_every_shard() {
        let r = Remembered::new(SHARDS * 1024);
        let mut counts = [0usize; SHARDS];
        for _ in 0..16_000usize {
            // An HS256 signature: 32 random bytes in unpadded base64url
            // (its last character takes only 16 values).
            let sig = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
            let token = format!("header.claims.{sig}");
            let shard = r.shard(&token).expect("a shard");
            let at = r
                .shards
                .iter()
                .position(|s| std::ptr::eq(s, shard))
                .expect("one of them");
            counts[at] += 1;
        }
        let (least, most) = (counts.iter().min(), counts.iter().max());
        // Even within a quarter of the mean (1,000 each).
        assert!(least >= Some(&750) && most <= Some(&1250), "{counts:?}");
    }

    #[test]
    fn capacity_zero_remembers_nothing_and_long_tokens_are_not_kept() {
        let r = Remembered::new(0);
        r.put("a.b.c", entry(1));
        assert!(r.get("a.b.c").is_none());
        let r = Remembered::new(64);
        let long = "x".repeat(MAX_LEN + 1);
        r.put(&long, entry(1));
        assert!(r.get(&long).is_none());
        assert_eq!(r.len(), 0);
    }
}
