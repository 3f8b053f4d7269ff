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
/// Whether a stored hash was made with other parameters than
/// [`hash_password`] uses today (algorithm, version, memory, passes,
/// lanes, output length): checked on a successful login, which then
/// stores a new hash of the password it has in hand. A hash that cannot be
/// read is left alone (it never verifies anyway).
pub fn needs_rehash(hash: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let Ok(params) = argon2::Params::try_from(&parsed) else {
        return false;
    };
    let today = argon2::Params::default();
    let version = parsed.version.unwrap_or(0x13);
    parsed.algorithm != argon2::Algorithm::Argon2id.ident()
        || version != argon2::Version::V0x13 as u32
        || params.m_cost() != today.m_cost()
        || params.t_cost() != today.t_cost()
        || params.p_cost() != today.p_cost()
        || parsed.hash.map(|h| h.len()) != Some(today.output_len().unwrap_or(32))
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
        self.submit(f)?.await.ok()
    }

    /// Queues `f` for a pool thread and returns where its result comes;
    /// `None` when the queue is full or the pool is gone. Work nobody waits
    /// for is skipped: when the receiver is dropped before a thread takes
    /// the job (a client that hung up), `f` never runs.
    pub fn submit<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Vec<argon2::Block>) -> R + Send + 'static,
    ) -> Option<tokio::sync::oneshot::Receiver<R>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |blocks| {
            if tx.is_closed() {
                return;
            }
            let _ = tx.send(f(blocks));
        });
        self.jobs.try_send(job).ok()?;
        Some(rx)
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

    /// A job whose receiver is gone before a thread takes it never runs.
    #[tokio::test]
    async fn work_nobody_waits_for_is_skipped() {
        let pool = PasswordPool::new(1);
        let ran = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        // The one thread is held until `release` is sent.
        let (release, held) = std::sync::mpsc::channel::<()>();
        let busy = pool.submit(move |_| {
            let _ = held.recv();
        });
        let mut waiting = Vec::new();
        for dropped in [true, false, true] {
            let ran = std::sync::Arc::clone(&ran);
            let rx = pool
                .submit(move |_| {
                    ran.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                })
                .expect("queued");
            if !dropped {
                waiting.push(rx);
            }
        }
        let _ = release.send(());
        assert!(busy.expect("queued").await.is_ok());
        for rx in waiting {
            assert!(rx.await.is_ok());
        }
        assert!(pool.run(|_| ()).await.is_some());
        assert_eq!(ran.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[test]
    fn hashes_with_other_parameters_need_a_new_hash() {
        let today = hash_password("correct horse").expect("hashes");
        assert!(!needs_rehash(&today));
        let salt = SaltString::generate(&mut OsRng);
        let weak = Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            argon2::Params::new(8, 1, 1, None).expect("valid parameters"),
        )
        .hash_password(b"correct horse", &salt)
        .expect("hashes")
        .to_string();
        assert!(needs_rehash(&weak));
        let argon2i = Argon2::new(
            argon2::Algorithm::Argon2i,
            argon2::Version::V0x13,
            argon2::Params::default(),
        )
        .hash_password(b"correct horse", &salt)
        .expect("hashes")
        .to_string();
        assert!(needs_rehash(&argon2i));
        assert!(!needs_rehash("not a hash"));
    }

    #[test]
    fn passwords() {
        let h = hash_password("correct horse").expect("hashes");
        assert!(h.starts_with("$argon2id$"));
    }
}
