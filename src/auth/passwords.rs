//! Passwords: argon2id hashes, checked on a few dedicated threads that
//! reuse their memory.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::Argon2;

/// argon2id hash of `password` (PHC string). CPU-heavy: call it on the
/// blocking pool.
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}
/// [`hash_password`] on the blocking pool, for callers outside the
/// [`PasswordPool`] (the first administrator, `sessiond user add`).
pub async fn hash_password_blocking(password: String) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| anyhow::anyhow!("password hashing task failed: {e}"))?
        .map_err(|e| anyhow::anyhow!("password hashing failed: {e}"))
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
