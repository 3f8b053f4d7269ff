//! One number per process, to tell a restarted node from the one before it
//! under the same name (its lease holder id, the service's cluster
//! identity).

/// A number that tells this process apart from any other, earlier or later,
/// under the same node name: the wall clock and the process id through a
/// randomly keyed hash. Not a secret.
pub fn process_nonce() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.finish()
}
