//! In-memory stand-ins for what production reaches over the wire, shipped
//! with the crate so that its tests, the simulation and anyone embedding
//! the routers share one of each instead of writing their own: a user
//! table ([`MemoryStore`]) and a network between routers of one process
//! ([`MemoryNet`]), and the text ids tests, benches and the simulation
//! give their users ([`text_id`]).

mod net;
mod store;

pub use net::{MemoryNet, NetStats, Trip};
pub use store::MemoryStore;

use crate::id::UserId;

/// A 32-character text id made from `n` (the same `n`, the same id; two
/// numbers, two ids), shaped like Better Auth's: letters and digits.
pub fn text_id(n: u64) -> UserId {
    const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut text = [0u8; 32];
    // Two halves: `n` spelled out in base 62 (at most 11 characters,
    // zero-padded to 16: what makes ids distinct) after 16 characters of
    // a splitmix64 stream seeded by `n` (what makes them look random).
    let mut x = n;
    for c in text[..16].iter_mut() {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        *c = ALPHABET[((z ^ (z >> 31)) % 62) as usize];
    }
    let mut m = n;
    for c in text[16..].iter_mut().rev() {
        *c = ALPHABET[(m % 62) as usize];
        m /= 62;
    }
    let text = std::str::from_utf8(&text).unwrap_or_default();
    UserId::parse(text).unwrap_or_else(|_| UserId::from(n as i64))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn text_ids_are_32_characters_and_distinct() {
        let ids: HashSet<String> = (0..10_000).map(|n| text_id(n).to_string()).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(ids
            .iter()
            .all(|t| t.len() == 32 && t.bytes().all(|b| b.is_ascii_alphanumeric())));
        assert!(text_id(7).as_text().is_some());
        assert_eq!(text_id(u64::MAX).to_string().len(), 32);
    }
}
