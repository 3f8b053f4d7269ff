//! Login brute-force protection: failed logins are counted per account and
//! per client address over a sliding window; past the limit, logins are
//! refused with 429 `rate_limited` and a `Retry-After` until the oldest
//! counted failure leaves the window. A successful login clears the
//! account's count.
//!
//! An attempt is counted when it is let through, before the password is
//! checked ([`LoginLimiter::reserve`]), so however many logins arrive at
//! once, at most the limit are ever checked against the password.
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

    /// Reserves one attempt for this login, or `Err(retry_after)` when it
    /// must be refused without even checking the password.
    ///
    /// The attempt counts as a failure from this moment, under the same lock
    /// as the check: concurrent logins cannot all pass the check before any
    /// of them is counted (the password check takes far longer than the
    /// check). The reservation is given back on success, or when the
    /// password was never checked (see [`Attempt`]).
    pub fn reserve(&self, account: &str, address: Option<&str>) -> Result<Attempt<'_>, Duration> {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        // Read under the lock, so reservations are recorded in time order.
        let now = Instant::now();
        let window = self.limits.window;
        let all = Self::keys(account, address);
        let mut wait = Duration::ZERO;
        for key in &all {
            if let Some(f) = keys.get_mut(key) {
                while f
                    .times
                    .front()
                    .is_some_and(|t| now.saturating_duration_since(*t) >= window)
                {
                    f.times.pop_front();
                }
                if f.times.len() >= self.limit(key) {
                    if let Some(oldest) = f.times.front() {
                        let until = *oldest + window;
                        wait = wait.max(until.saturating_duration_since(now));
                    }
                }
            }
        }
        if !wait.is_zero() {
            // Round up: a client told 0 s would retry at once.
            return Err(wait.max(Duration::from_secs(1)));
        }
        for key in &all {
            if !keys.contains_key(key) && keys.len() >= self.limits.max_keys {
                self.make_room(&mut keys, now);
            }
            keys.entry(key.clone())
                .or_insert_with(|| Failures {
                    times: VecDeque::new(),
                })
                .times
                .push_back(now);
        }
        Ok(Attempt {
            limiter: self,
            keys: all,
            at: now,
            settled: false,
        })
    }

    /// Takes one reservation made at `at` back from `key`.
    fn release(&self, keys: &mut HashMap<Key, Failures>, key: &Key, at: Instant) {
        if let Some(f) = keys.get_mut(key) {
            if let Some(i) = f.times.iter().rposition(|t| *t == at) {
                f.times.remove(i);
            }
            if f.times.is_empty() {
                keys.remove(key);
            }
        }
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

/// One reserved login attempt. Say how it ended: [`Attempt::failed`]
/// keeps it counted, [`Attempt::succeeded`] clears the account's count.
/// Dropped without either (the password was never checked: a full queue, a
/// database error, a cancelled request), it is given back.
pub struct Attempt<'a> {
    limiter: &'a LoginLimiter,
    keys: Vec<Key>,
    at: Instant,
    settled: bool,
}

impl Attempt<'_> {
    /// The password was wrong: the reservation stays as the failure.
    pub fn failed(mut self) {
        self.settled = true;
    }

    /// The password was right: the account's count is cleared (not the
    /// address's, which only gives this attempt back).
    pub fn succeeded(mut self) {
        self.settled = true;
        let mut keys = self.limiter.keys.lock().unwrap_or_else(|e| e.into_inner());
        for key in &self.keys {
            match key {
                Key::Account(_) => {
                    keys.remove(key);
                }
                Key::Address(_) => self.limiter.release(&mut keys, key, self.at),
            }
        }
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let mut keys = self.limiter.keys.lock().unwrap_or_else(|e| e.into_inner());
        for key in &self.keys {
            self.limiter.release(&mut keys, key, self.at);
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

    fn fail(l: &LoginLimiter, account: &str, address: Option<&str>) {
        l.reserve(account, address).expect("let through").failed();
    }

    #[tokio::test(start_paused = true)]
    async fn an_account_is_held_off_after_its_limit_and_released_after_the_window() {
        let l = limiter();
        for _ in 0..3 {
            fail(&l, "a@x", Some("1.1.1.1"));
        }
        let wait = l.reserve("a@x", Some("2.2.2.2")).err().expect("held off");
        assert!(wait <= Duration::from_secs(60) && wait >= Duration::from_secs(59));
        // Other accounts are unaffected (from another address).
        assert!(l.reserve("b@x", Some("3.3.3.3")).is_ok());
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(l.reserve("a@x", Some("2.2.2.2")).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn attempts_in_flight_count_against_the_limit() {
        let l = limiter();
        // Three let through and not yet settled: the fourth is refused.
        let held: Vec<Attempt<'_>> = (0..3)
            .map(|i| {
                l.reserve("a@x", Some(&format!("1.1.1.{i}")))
                    .expect("let through")
            })
            .collect();
        assert!(l.reserve("a@x", Some("2.2.2.2")).is_err());
        // One given back unchecked (dropped) frees one place ...
        let mut held = held.into_iter();
        drop(held.next());
        let again = l
            .reserve("a@x", Some("2.2.2.2"))
            .expect("a place was freed");
        assert!(l.reserve("a@x", Some("2.2.2.3")).is_err());
        // ... and a success clears the account.
        again.succeeded();
        for a in held {
            a.failed();
        }
        assert!(l.reserve("a@x", Some("2.2.2.4")).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn an_address_is_held_off_across_accounts() {
        let l = limiter();
        for i in 0..5 {
            fail(&l, &format!("u{i}@x"), Some("9.9.9.9"));
        }
        assert!(l.reserve("fresh@x", Some("9.9.9.9")).is_err());
        assert!(l.reserve("fresh@x", Some("8.8.8.8")).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn success_clears_the_account() {
        let l = limiter();
        fail(&l, "a@x", None);
        fail(&l, "a@x", None);
        l.reserve("a@x", None).expect("let through").succeeded();
        fail(&l, "a@x", None);
        fail(&l, "a@x", None);
        assert!(l.reserve("a@x", None).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn memory_stays_bounded() {
        let l = limiter();
        for i in 0..10_000 {
            fail(
                &l,
                &format!("u{i}@x"),
                Some(&format!("10.0.{}.{}", i / 256, i % 256)),
            );
        }
        assert!(l.tracked() <= 100, "{}", l.tracked());
    }
}
