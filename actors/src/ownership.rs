//! Which node owns a user: rendezvous (highest-random-weight) hashing over
//! the live members' names. Every node with the same view picks the same
//! owner, and adding or removing one of N nodes moves only ~1/N of users.

use crate::id::UserId;

/// FNV-1a over the bytes, then a 64-bit finaliser (splitmix64) so that
/// near-identical inputs spread well. Stable across processes and versions:
/// it decides placement, so it must never change silently.
///
/// An integer id weighs its little-endian bytes, a text id its text (see
/// `UserId::placement_bytes`).
fn weight(user_id: &UserId, node: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    user_id.placement_bytes(|id| {
        for b in id.iter().chain(node.as_bytes()) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    });
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The owner of `user_id` among `members` (`None` when there are none).
/// Ties, which need a 64-bit collision, go to the smaller name.
pub(crate) fn owner<'a, S: AsRef<str>>(user_id: &UserId, members: &'a [S]) -> Option<&'a str> {
    owner_entry(user_id, members).map(|m| m.as_ref())
}

/// [`owner`], as the member entry itself (an `Arc<str>` to clone, say).
pub(crate) fn owner_entry<'a, S: AsRef<str>>(user_id: &UserId, members: &'a [S]) -> Option<&'a S> {
    members.iter().max_by(|a, b| {
        let (a, b) = (a.as_ref(), b.as_ref());
        weight(user_id, a)
            .cmp(&weight(user_id, b))
            .then_with(|| b.cmp(a))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_evenly_and_moves_little() {
        let three = ["n1", "n2", "n3"];
        let four = ["n1", "n2", "n3", "n4"];
        let mut counts = [0usize; 3];
        let mut moved = 0;
        for id in 0..30_000 {
            let id = UserId::from(id);
            let o = owner(&id, &three).unwrap_or_default();
            counts[three.iter().position(|n| *n == o).unwrap_or(0)] += 1;
            let o4 = owner(&id, &four).unwrap_or_default();
            if o4 != o {
                assert_eq!(o4, "n4", "a user may only move to the new node");
                moved += 1;
            }
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "uneven spread: {counts:?}");
        }
        assert!((6_500..8_500).contains(&moved), "moved {moved} of 30000");
        assert_eq!(owner::<&str>(&UserId::from(1), &[]), None);
        // Order of the member list does not matter.
        let id = UserId::from(42);
        assert_eq!(owner(&id, &["a", "b", "c"]), owner(&id, &["c", "a", "b"]));
    }

    /// Text ids (32-character, as Better Auth makes them) spread as evenly.
    #[test]
    fn text_ids_spread_evenly() {
        let three = ["n1", "n2", "n3"];
        let mut counts = [0usize; 3];
        for i in 0..30_000 {
            let id = UserId::parse(&format!("Zx9kQ2mN7pL4vR8sT1wY3uE6iO{i:06}"));
            let Ok(id) = id else { panic!("valid id") };
            let o = owner(&id, &three).unwrap_or_default();
            counts[three.iter().position(|n| *n == o).unwrap_or(0)] += 1;
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "uneven spread: {counts:?}");
        }
    }

    /// Placement of integer ids is what it was before text ids: a mixed
    /// cluster during an upgrade, and every test that picks a user by its
    /// owner, agree.
    #[test]
    fn integer_placement_is_unchanged() {
        fn old_weight(user_id: i64, node: &str) -> u64 {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for b in user_id.to_le_bytes().iter().chain(node.as_bytes()) {
                h ^= u64::from(*b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
            h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            h ^ (h >> 31)
        }
        for id in [1i64, 2, 77, 123_456_789, -5] {
            assert_eq!(
                weight(&UserId::from(id), "node-a"),
                old_weight(id, "node-a")
            );
        }
    }
}
