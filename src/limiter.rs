//! Login brute-force protection: failed logins are counted per account and
//! per client address over a sliding window; past the limit, logins are
//! refused with 429 `rate_limited` and a `Retry-After` until the oldest
//! counted failure leaves the window. A successful login clears the
//! account's count.
//!
//! Memory is bounded: at most `max_keys` keys are tracked; when full,
//! expired keys are dropped first, then the least recently failed.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// The limits (all configurable from the command line).
#[derive(Clone, Debug)]
pub struct Limits {
    /// Failed logins per account within the window before refusing.
    pub per_account: usize,
    /// Failed logins per client address within the window before refusing.
    pub per_address: usize,
    pub window: Duration,
    /// Most keys (accounts + addresses) tracked at once.
    pub max_keys: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            per_account: 10,
            per_address: 100,
            window: Duration::from_secs(15 * 60),
            max_keys: 100_000,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    Account(String),
    Address(String),
}

/// Failure times of one key, oldest first (at most its limit are kept).
struct Failures {
    times: VecDeque<Instant>,
}

pub struct LoginLimiter {
    limits: Limits,
    keys: Mutex<HashMap<Key, Failures>>,
}

impl LoginLimiter {
    pub fn new(limits: Limits) -> LoginLimiter {
        LoginLimiter {
            limits,
            keys: Mutex::new(HashMap::new()),
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    fn limit(&self, key: &Key) -> usize {
        match key {
            Key::Account(_) => self.limits.per_account,
            Key::Address(_) => self.limits.per_address,
        }
        .max(1)
    }

    fn keys(account: &str, address: Option<&str>) -> Vec<Key> {
        let mut keys = vec![Key::Account(account.to_string())];
        if let Some(a) = address {
            keys.push(Key::Address(a.to_string()));
        }
        keys
    }

    /// `Err(retry_after)` when this login must be refused without even
    /// checking the password.
    pub fn check(&self, account: &str, address: Option<&str>) -> Result<(), Duration> {
        let now = Instant::now();
        let keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        let mut wait = Duration::ZERO;
        for key in Self::keys(account, address) {
            if let Some(f) = keys.get(&key) {
                let recent: Vec<&Instant> = f
                    .times
                    .iter()
                    .filter(|t| now.saturating_duration_since(**t) < self.limits.window)
                    .collect();
                if recent.len() >= self.limit(&key) {
                    if let Some(oldest) = recent.first() {
                        let until = **oldest + self.limits.window;
                        wait = wait.max(until.saturating_duration_since(now));
                    }
                }
            }
        }
        if wait.is_zero() {
            Ok(())
        } else {
            // Round up: a client told 0 s would retry at once.
            Err(wait.max(Duration::from_secs(1)))
        }
    }

    /// Counts a failed login.
    pub fn failed(&self, account: &str, address: Option<&str>) {
        let now = Instant::now();
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        for key in Self::keys(account, address) {
            if !keys.contains_key(&key) && keys.len() >= self.limits.max_keys {
                self.make_room(&mut keys, now);
            }
            let limit = self.limit(&key);
            let f = keys.entry(key).or_insert_with(|| Failures {
                times: VecDeque::new(),
            });
            f.times.push_back(now);
            while f.times.len() > limit {
                f.times.pop_front();
            }
        }
    }

    /// A successful login clears the account's count (not the address's).
    pub fn succeeded(&self, account: &str) {
        self.keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&Key::Account(account.to_string()));
    }

    /// Keys tracked now.
    pub fn tracked(&self) -> usize {
        self.keys.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    fn make_room(&self, keys: &mut HashMap<Key, Failures>, now: Instant) {
        let window = self.limits.window;
        keys.retain(|_, f| {
            f.times
                .back()
                .is_some_and(|t| now.saturating_duration_since(*t) < window)
        });
        if keys.len() < self.limits.max_keys {
            return;
        }
        // Still full: forget the tenth that failed longest ago.
        let mut last: Vec<(Instant, Key)> = keys
            .iter()
            .filter_map(|(k, f)| f.times.back().map(|t| (*t, k.clone())))
            .collect();
        let n = (last.len() / 10).max(1);
        last.select_nth_unstable_by_key(n - 1, |(t, _)| *t);
        for (_, k) in last.into_iter().take(n) {
            keys.remove(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter() -> LoginLimiter {
        LoginLimiter::new(Limits {
            per_account: 3,
            per_address: 5,
            window: Duration::from_secs(60),
            max_keys: 100,
        })
    }

    #[tokio::test(start_paused = true)]
    async fn an_account_is_held_off_after_its_limit_and_released_after_the_window() {
        let l = limiter();
        for _ in 0..3 {
            assert!(l.check("a@x", Some("1.1.1.1")).is_ok());
            l.failed("a@x", Some("1.1.1.1"));
        }
        let wait = l.check("a@x", Some("2.2.2.2")).expect_err("held off");
        assert!(wait <= Duration::from_secs(60) && wait >= Duration::from_secs(59));
        // Other accounts are unaffected (from another address).
        assert!(l.check("b@x", Some("3.3.3.3")).is_ok());
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(l.check("a@x", Some("2.2.2.2")).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn an_address_is_held_off_across_accounts() {
        let l = limiter();
        for i in 0..5 {
            l.failed(&format!("u{i}@x"), Some("9.9.9.9"));
        }
        assert!(l.check("fresh@x", Some("9.9.9.9")).is_err());
        assert!(l.check("fresh@x", Some("8.8.8.8")).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn success_clears_the_account() {
        let l = limiter();
        l.failed("a@x", None);
        l.failed("a@x", None);
        l.succeeded("a@x");
        l.failed("a@x", None);
        l.failed("a@x", None);
        assert!(l.check("a@x", None).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn memory_stays_bounded() {
        let l = limiter();
        for i in 0..10_000 {
            l.failed(
                &format!("u{i}@x"),
                Some(&format!("10.0.{}.{}", i / 256, i % 256)),
            );
        }
        assert!(l.tracked() <= 100, "{}", l.tracked());
    }
}
