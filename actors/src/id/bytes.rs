//! The bytes of text ids: the check of what a text id may hold, the copy of
//! a short one into its inline form, and the compare of two inline forms.
//! Run on every request that names a text id, so each is written for the
//! compiler to make it a few vector instructions: range compares and no
//! table, fixed 16-byte blocks, no call to `memcpy` or `bcmp`.

use super::INLINE_LEN;

/// Whether `b` may appear in a text id: the rule [`valid_text`] applies.
#[cfg(test)]
pub(super) const fn is_id_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b':' | b'@' | b'+' | b'=')
}

/// The rule for a whole text, byte by byte, as tests state it.
#[cfg(test)]
pub(super) fn rule(s: &[u8]) -> bool {
    s.iter().all(|&b| is_id_byte(b)) && s.iter().any(u8::is_ascii_alphanumeric)
}

/// Whether `b` is an ASCII letter or digit, by range compares only.
#[inline(always)]
fn is_alnum(b: u8) -> bool {
    ((b | 0x20).wrapping_sub(b'a') < 26) | (b.wrapping_sub(b'0') < 10)
}

/// Whether every byte of `s` may appear in a text id and one at least is
/// a letter or digit: the rule, for any length. Range compares and no
/// table, so the loop vectorises.
#[inline]
pub(super) fn valid_text(s: &[u8]) -> bool {
    let (mut bad, mut any) = (false, false);
    for &b in s {
        let alnum = is_alnum(b);
        let symbol = matches!(b, b'-' | b'_' | b'.' | b'~' | b':' | b'@' | b'+' | b'=');
        bad |= !(alnum | symbol);
        any |= alnum;
    }
    !bad && any
}

/// The shortest text [`inline_bytes`] takes: one block.
pub(super) const BLOCK: usize = 16;

/// The 16 bytes of `s` from `at`, as a fixed block (one load).
#[inline(always)]
fn block(s: &[u8], at: usize) -> [u8; BLOCK] {
    let mut b = [0u8; BLOCK];
    b.copy_from_slice(&s[at..at + BLOCK]);
    b
}

/// Whether the blocks hold only letters, digits, `-` and `_` (what
/// UUIDs, cuids, nanoids and Better Auth's ids are made of) and a letter
/// or digit at least. Sixteen lanes of the same branch-free arithmetic, so
/// the compiler makes it a few vector instructions a block. `false` says
/// only that the rule ([`valid_text`]) must decide.
#[inline(always)]
fn common_blocks<const N: usize>(blocks: [&[u8; BLOCK]; N]) -> bool {
    let (mut ok, mut any) = (true, false);
    for i in 0..BLOCK {
        for b in blocks {
            let x = b[i];
            let alnum = is_alnum(x);
            ok &= alnum | (x == b'-') | (x == b'_');
            any |= alnum;
        }
    }
    ok & any
}

/// Writes a valid text id of [`BLOCK`] to [`INLINE_LEN`] bytes into
/// `bytes` (zeros past its length when they were zeros); `false` for an
/// invalid one, or for another length. Checked and copied as 16-byte
/// blocks: the head and the tail, and, past 32 bytes, bytes 16 to 32. The
/// blocks overlap where the length is not a multiple of 16, which changes
/// neither the check (every byte is looked at, some twice) nor the copy
/// (the same byte written to the same place).
#[inline]
pub(super) fn inline_bytes(s: &[u8], bytes: &mut [u8; INLINE_LEN]) -> bool {
    let n = s.len();
    if !(BLOCK..=INLINE_LEN).contains(&n) {
        return false;
    }
    let (head, tail) = (block(s, 0), block(s, n - BLOCK));
    if n <= 2 * BLOCK {
        if !common_blocks([&head, &tail]) && !valid_text(s) {
            return false;
        }
    } else {
        let mid = block(s, BLOCK);
        if !common_blocks([&head, &mid, &tail]) && !valid_text(s) {
            return false;
        }
        bytes[BLOCK..2 * BLOCK].copy_from_slice(&mid);
    }
    bytes[..BLOCK].copy_from_slice(&head);
    bytes[n - BLOCK..n].copy_from_slice(&tail);
    true
}

/// The 16 bytes of an inline form from `at`, as one integer.
#[inline(always)]
fn word16(b: &[u8; INLINE_LEN], at: usize) -> u128 {
    let mut w = [0u8; 16];
    w.copy_from_slice(&b[at..at + 16]);
    u128::from_le_bytes(w)
}

/// Whether two inline forms are the same bytes: three 16-byte compares
/// (bytes 0-16, 16-32 and 22-38), no call. Their lengths need no compare:
/// past its length an id's bytes are zero and no id byte is, so equal
/// bytes mean equal lengths.
#[inline(always)]
pub(super) fn same_inline(a: &[u8; INLINE_LEN], b: &[u8; INLINE_LEN]) -> bool {
    let head = word16(a, 0) ^ word16(b, 0);
    let mid = word16(a, 16) ^ word16(b, 16);
    let tail = word16(a, INLINE_LEN - 16) ^ word16(b, INLINE_LEN - 16);
    (head | mid | tail) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectorised check is the rule, byte for byte: alone (a letter
    /// or digit needed) and beside a letter (any allowed byte).
    #[test]
    fn the_fast_check_is_the_rule_for_every_byte() {
        for b in 0..=255u8 {
            assert_eq!(valid_text(&[b]), b.is_ascii_alphanumeric(), "{b}");
            assert_eq!(valid_text(&[b, b'a']), is_id_byte(b), "{b}");
            assert_eq!(valid_text(&[b'7', b, b'x', b'.']), is_id_byte(b), "{b}");
        }
        assert!(!valid_text(b""));
        assert!(!valid_text(b"-_.~"));
    }

    /// The block check and copy of 16- to 38-byte ids against the rule:
    /// every byte value at every place of every such length, beside
    /// letters, digits, `-` and `_` (the fast path) and beside the other
    /// symbols (the exact rule).
    #[test]
    fn the_block_check_is_the_rule_for_every_byte_at_every_place() {
        for n in BLOCK..=INLINE_LEN {
            for fill in [b'a', b'7', b'-', b'_', b'~', b'='] {
                for at in 0..n {
                    for b in 0..=255u8 {
                        let mut s = vec![fill; n];
                        s[at] = b;
                        let mut bytes = [0; INLINE_LEN];
                        let got = inline_bytes(&s, &mut bytes);
                        assert_eq!(got, rule(&s), "{n} {fill} {at} {b}");
                        if got {
                            assert_eq!(&bytes[..n], &s[..], "{n} {fill} {at} {b}");
                            assert!(bytes[n..].iter().all(|&z| z == 0), "{n} {at} {b}");
                        }
                    }
                }
            }
        }
    }

    /// The inline form of `s`, if it has one.
    fn form(s: &[u8]) -> Option<[u8; INLINE_LEN]> {
        let mut bytes = [0; INLINE_LEN];
        inline_bytes(s, &mut bytes).then_some(bytes)
    }

    /// Other lengths are not taken; two forms are the same exactly when
    /// their texts are, whichever 16-byte word a difference falls in.
    #[test]
    fn other_lengths_are_refused_and_forms_compare_by_every_byte() {
        assert_eq!(form(&[b'a'; BLOCK - 1]), None);
        assert_eq!(form(&[b'a'; INLINE_LEN + 1]), None);
        for n in BLOCK..=INLINE_LEN {
            let text = vec![b'k'; n];
            let Some(a) = form(&text) else {
                panic!("{n}: valid")
            };
            assert!(same_inline(&a, &a));
            for at in 0..n {
                let mut other = text.clone();
                other[at] = b'Q';
                let Some(b) = form(&other) else {
                    panic!("{n} {at}: valid")
                };
                assert!(!same_inline(&a, &b), "{n} {at}");
            }
            if n < INLINE_LEN {
                let longer = form(&vec![b'k'; n + 1]);
                assert!(longer.is_some_and(|l| !same_inline(&a, &l)), "{n}");
            }
        }
    }
}
