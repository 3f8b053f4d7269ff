//! Login brute-force protection.
//!
//! # The policy
//!
//! Failed logins are counted over a sliding window (`--login-window`, 15
//! minutes), in three kinds of bucket:
//!
//! - **strangers of an account**: every address that has not logged in to
//!   this account successfully, together: `--login-max-failures` (10) per
//!   window. So, however many addresses an attacker spreads over, an account
//!   gets at most 10 guesses per window from them: 40 per hour with the
//!   defaults. A success does not reset this bucket (that would hand the
//!   attacker more guesses whenever the owner logs in).
//! - **a known device of an account**: an address that logged in to the
//!   account successfully within `DEVICE_MEMORY` (30 days) — OWASP's
//!   "device cookie", keyed by the client address (as resolved through
//!   `--trusted-proxies`). It has a bucket of its own of the same size, so
//!   strangers who exhaust theirs do not lock the owner out from there.
//! - **an address**, across accounts: `--login-max-failures-per-address`
//!   (100) per window. IPv6 addresses count by their /64, which one host
//!   usually holds whole.
//!
//! An attempt is counted when it is let through, before the password is
//! checked ([`LoginLimiter::reserve`]), so however many logins arrive at
//! once, at most the limit are ever checked against the password; it is
//! given back on success or when the password was never checked.
//!
//! # Memory
//!
//! Accounts and addresses are kept as 64-bit keyed hashes (an email of any
//! length costs the same), and the limiter counts the bytes it holds
//! against `max_bytes` (`--login-memory`, 16 MiB; counted as each entry's
//! size and its timestamps' capacity, the hash table's own slack aside).
//! When full it drops expired entries, then buckets below their limit,
//! least recently failed first. A bucket at its limit is never dropped: a
//! flood of cheap failures cannot unlock an account. If buckets at their
//! limit alone fill the budget, logins that would need a new bucket are
//! refused until the window frees room; known devices still get in.
//!
//! Kept whole: the three buckets, the device memory and the byte budget are
//! one state under one lock, changed together by every attempt; a third
//! of the file is the tests that drive them together.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::mem::size_of;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use sessiond_actors::sync::MutexExt;
use tokio::time::Instant;

/// How long a successful login keeps its address a known device of the
/// account.
pub const DEVICE_MEMORY: Duration = Duration::from_secs(30 * 86_400);

/// Known devices kept per account (the most recent).
const DEVICES_PER_ACCOUNT: usize = 4;

/// The limits (all configurable from the command line).
#[derive(Clone, Debug)]
pub struct Limits {
    /// Failed logins per account within the window before refusing, for
    /// strangers together and for each known device.
    pub per_account: usize,
    /// Failed logins per client address within the window before refusing.
    pub per_address: usize,
    pub window: Duration,
    /// Most bytes the limiter holds.
    pub max_bytes: usize,
}

impl Limits {
    /// The default [`Limits::per_account`].
    pub const DEFAULT_PER_ACCOUNT: usize = 10;
    /// The default [`Limits::per_address`].
    pub const DEFAULT_PER_ADDRESS: usize = 100;
    /// The default [`Limits::window`]: fifteen minutes.
    pub const DEFAULT_WINDOW: Duration = Duration::from_secs(15 * 60);
    /// The default [`Limits::max_bytes`]: 16 MiB.
    pub const DEFAULT_MAX_BYTES: usize = 16 << 20;
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            per_account: Self::DEFAULT_PER_ACCOUNT,
            per_address: Self::DEFAULT_PER_ADDRESS,
            window: Self::DEFAULT_WINDOW,
            max_bytes: Self::DEFAULT_MAX_BYTES,
        }
    }
}

/// A keyed 64-bit hash of an account or an address.
type Tag = u64;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Key {
    /// Failures against an account from addresses it does not know.
    Strangers(Tag),
    /// Failures against an account from one of its known devices.
    Device(Tag, Tag),
    /// Failures from one address, across accounts.
    Address(Tag),
}

/// What one failure bucket costs, besides its timestamps.
const ENTRY_BYTES: usize = size_of::<(Key, VecDeque<Instant>)>() + 1;
/// What one account's known devices cost, besides the list itself.
const DEVICES_BYTES: usize = size_of::<(Tag, Vec<(Tag, Instant)>)>() + 1;

fn bucket_bytes(times: &VecDeque<Instant>) -> usize {
    ENTRY_BYTES + times.capacity() * size_of::<Instant>()
}

fn devices_bytes(list: &[(Tag, Instant)]) -> usize {
    DEVICES_BYTES
        + DEVICES_PER_ACCOUNT * size_of::<(Tag, Instant)>() * usize::from(!list.is_empty())
}

#[derive(Default)]
struct State {
    /// Failure times of each bucket, oldest first (at most its limit).
    buckets: HashMap<Key, VecDeque<Instant>>,
    /// Each account's known devices with their last successful login.
    devices: HashMap<Tag, Vec<(Tag, Instant)>>,
    /// Bytes held, as counted by `bucket_bytes` and `devices_bytes`.
    bytes: usize,
}

pub struct LoginLimiter {
    limits: Limits,
    hasher: RandomState,
    state: Mutex<State>,
}

impl LoginLimiter {
    pub fn new(limits: Limits) -> LoginLimiter {
        LoginLimiter {
            limits,
            hasher: RandomState::new(),
            state: Mutex::new(State::default()),
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    fn limit(&self, key: &Key) -> usize {
        match key {
            Key::Strangers(_) | Key::Device(..) => self.limits.per_account,
            Key::Address(_) => self.limits.per_address,
        }
        .max(1)
    }

    fn account_tag(&self, account: &str) -> Tag {
        self.hasher.hash_one((0u8, account))
    }

    /// IPv6 addresses count by their /64; anything unparsable as itself.
    fn address_tag(&self, address: &str) -> Tag {
        match address.parse::<IpAddr>().map(|ip| ip.to_canonical()) {
            Ok(IpAddr::V6(v6)) => {
                let net = u128::from(v6) >> 64;
                self.hasher.hash_one((1u8, net))
            }
            Ok(IpAddr::V4(v4)) => self.hasher.hash_one((2u8, u32::from(v4))),
            Err(_) => self.hasher.hash_one((3u8, address)),
        }
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
        let account = self.account_tag(account);
        let address = address.map(|a| self.address_tag(a));
        let mut state = self.state.locked();
        // Read under the lock, so reservations are recorded in time order.
        let now = Instant::now();
        let window = self.limits.window;
        let known = address.is_some_and(|a| {
            state.devices.get(&account).is_some_and(|list| {
                list.iter()
                    .any(|(d, at)| *d == a && now.saturating_duration_since(*at) < DEVICE_MEMORY)
            })
        });
        let mut keys = Vec::with_capacity(2);
        match (known, address) {
            (true, Some(a)) => keys.push(Key::Device(account, a)),
            _ => keys.push(Key::Strangers(account)),
        }
        if let Some(a) = address {
            keys.push(Key::Address(a));
        }
        let mut wait = Duration::ZERO;
        for key in &keys {
            let limit = self.limit(key);
            if let Some(times) = state.buckets.get_mut(key) {
                while times
                    .front()
                    .is_some_and(|t| now.saturating_duration_since(*t) >= window)
                {
                    times.pop_front();
                }
                if times.len() >= limit {
                    if let Some(oldest) = times.front() {
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
        // Room for the buckets this attempt opens (known devices always
        // get in: only a successful login makes one).
        let new: usize = keys
            .iter()
            .filter(|k| !state.buckets.contains_key(k))
            .map(|_| ENTRY_BYTES + 4 * size_of::<Instant>())
            .sum();
        if new > 0 && state.bytes + new > self.limits.max_bytes {
            self.make_room(&mut state, now, new);
            if state.bytes + new > self.limits.max_bytes && !known {
                return Err(window.max(Duration::from_secs(1)));
            }
        }
        for key in &keys {
            let times = state.buckets.entry(*key).or_default();
            let before = if times.capacity() == 0 && times.is_empty() {
                0
            } else {
                bucket_bytes(times)
            };
            times.push_back(now);
            let after = bucket_bytes(times);
            state.bytes = state.bytes + after - before;
        }
        Ok(Attempt {
            limiter: self,
            keys,
            account,
            address,
            at: now,
            settled: false,
        })
    }

    /// Takes one reservation made at `at` back from `key`.
    fn release(state: &mut State, key: &Key, at: Instant) {
        let Some(times) = state.buckets.get_mut(key) else {
            return;
        };
        if let Some(i) = times.iter().rposition(|t| *t == at) {
            times.remove(i);
        }
        if times.is_empty() {
            let bytes = bucket_bytes(times);
            state.buckets.remove(key);
            state.bytes -= bytes;
        }
    }

    /// Buckets and accounts with known devices tracked now.
    pub fn tracked(&self) -> usize {
        let state = self.state.locked();
        state.buckets.len() + state.devices.len()
    }

    /// Bytes held now, as counted against `max_bytes`.
    pub fn bytes(&self) -> usize {
        self.state.locked().bytes
    }

    /// Frees at least `need` bytes below the budget if it can without
    /// dropping a bucket at its limit: expired entries first, then
    /// buckets below their limit, least recently failed first, down to
    /// 90% of the budget so that this walk stays rare.
    fn make_room(&self, state: &mut State, now: Instant, need: usize) {
        let window = self.limits.window;
        let State {
            buckets,
            devices,
            bytes,
        } = state;
        buckets.retain(|_, times| {
            let live = times
                .back()
                .is_some_and(|t| now.saturating_duration_since(*t) < window);
            if !live {
                *bytes -= bucket_bytes(times);
            }
            live
        });
        devices.retain(|_, list| {
            let before = devices_bytes(list);
            list.retain(|(_, at)| now.saturating_duration_since(*at) < DEVICE_MEMORY);
            *bytes -= before;
            if list.is_empty() {
                false
            } else {
                *bytes += devices_bytes(list);
                true
            }
        });
        let target = (self.limits.max_bytes / 10 * 9).saturating_sub(need);
        if *bytes <= target {
            return;
        }
        let mut open: Vec<(Instant, Key)> = buckets
            .iter()
            .filter(|(k, times)| times.len() < self.limit(k))
            .filter_map(|(k, times)| times.back().map(|t| (*t, *k)))
            .collect();
        open.sort_unstable_by_key(|(t, _)| *t);
        for (_, key) in open {
            if *bytes <= target {
                break;
            }
            if let Some(times) = buckets.remove(&key) {
                *bytes -= bucket_bytes(&times);
            }
        }
    }
}

/// One reserved login attempt. Say how it ended: [`Attempt::failed`]
/// keeps it counted, [`Attempt::succeeded`] gives it back and makes the
/// address a known device of the account. Dropped without either (the
/// password was never checked: a full queue, a database error, a cancelled
/// request), it is given back.
pub struct Attempt<'a> {
    limiter: &'a LoginLimiter,
    keys: Vec<Key>,
    account: Tag,
    address: Option<Tag>,
    at: Instant,
    settled: bool,
}

impl Attempt<'_> {
    /// The password was wrong: the reservation stays as the failure.
    pub fn failed(mut self) {
        self.settled = true;
    }

    /// The password was right: the reservation is given back, and the
    /// address becomes (or stays) a known device of the account. The
    /// strangers' count stays: it bounds guesses per hour.
    pub fn succeeded(mut self) {
        self.settled = true;
        let mut state = self.limiter.state.locked();
        for key in &self.keys {
            LoginLimiter::release(&mut state, key, self.at);
        }
        let Some(address) = self.address else {
            return;
        };
        let now = Instant::now();
        let State { devices, bytes, .. } = &mut *state;
        let list = devices.entry(self.account).or_default();
        let before = if list.is_empty() {
            0
        } else {
            devices_bytes(list)
        };
        if let Some(seen) = list.iter_mut().find(|(d, _)| *d == address) {
            seen.1 = now;
        } else {
            if list.len() >= DEVICES_PER_ACCOUNT {
                // Forget the device that logged in least recently.
                if let Some(i) = list
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, (_, at))| *at)
                    .map(|(i, _)| i)
                {
                    list.swap_remove(i);
                }
            }
            list.reserve_exact(DEVICES_PER_ACCOUNT.saturating_sub(list.len()));
            list.push((address, now));
        }
        *bytes = *bytes + devices_bytes(list) - before;
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let mut state = self.limiter.state.locked();
        for key in &self.keys {
            LoginLimiter::release(&mut state, key, self.at);
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
            max_bytes: 1 << 20,
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
        // ... a success gives it back and makes the address known ...
        again.succeeded();
        for a in held {
            a.failed();
        }
        assert!(l.reserve("a@x", Some("2.2.2.2")).is_ok());
        // ... while the strangers' count stays where the failures left it
        // (two): one more stranger, and they are held off.
        fail(&l, "a@x", Some("2.2.2.4"));
        assert!(l.reserve("a@x", Some("2.2.2.5")).is_err());
        assert!(l.reserve("a@x", Some("2.2.2.2")).is_ok());
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
    async fn ipv6_addresses_count_by_their_64() {
        let l = limiter();
        for i in 1..=5 {
            fail(
                &l,
                &format!("u{i}@x"),
                Some(&format!("2001:db8:1:2::{i:x}")),
            );
        }
        assert!(l.reserve("fresh@x", Some("2001:db8:1:2:ffff::9")).is_err());
        assert!(l.reserve("fresh@x", Some("2001:db8:1:3::1")).is_ok());
        // A mapped IPv4 address is that IPv4 address.
        for i in 0..5 {
            fail(&l, &format!("v{i}@x"), Some("::ffff:10.0.0.1"));
        }
        assert!(l.reserve("fresh2@x", Some("10.0.0.1")).is_err());
    }

    /// (b): strangers who exhaust an account's count do not lock out its
    /// owner from an address that logged in to it before; the owner's
    /// address has a count of its own.
    #[tokio::test(start_paused = true)]
    async fn the_owner_is_not_locked_out_by_strangers() {
        let l = limiter();
        l.reserve("a@x", Some("5.5.5.5"))
            .expect("let through")
            .succeeded();
        for i in 0..3 {
            fail(&l, "a@x", Some(&format!("6.6.6.{i}")));
        }
        assert!(
            l.reserve("a@x", Some("7.7.7.7")).is_err(),
            "strangers held off"
        );
        tokio::time::advance(Duration::from_secs(30)).await;
        l.reserve("a@x", Some("5.5.5.5"))
            .expect("the owner's device is let through")
            .succeeded();
        // The device's own count: three typos and it waits too.
        for _ in 0..3 {
            fail(&l, "a@x", Some("5.5.5.5"));
        }
        assert!(l.reserve("a@x", Some("5.5.5.5")).is_err());
        // A device is the account's, not everyone's.
        assert!(l.reserve("b@x", Some("5.5.5.5")).is_ok());
    }

    /// (a): with the default limits, strangers spread over as many
    /// addresses as they like get at most 40 guesses per account per hour
    /// (10 per 15-minute window).
    #[tokio::test(start_paused = true)]
    async fn many_addresses_get_at_most_the_stated_guesses_per_hour() {
        let l = LoginLimiter::new(Limits::default());
        let mut checked = 0;
        for s in 0..3600u32 {
            let address = format!("10.{}.{}.{}", s >> 16, (s >> 8) & 255, s & 255);
            if let Ok(a) = l.reserve("victim@x", Some(&address)) {
                checked += 1;
                a.failed();
            }
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        assert_eq!(checked, 40);
    }

    #[tokio::test(start_paused = true)]
    async fn memory_is_bounded_in_bytes_and_a_flood_unlocks_nothing() {
        let l = LoginLimiter::new(Limits {
            max_bytes: 64 << 10,
            ..limiter().limits
        });
        for _ in 0..3 {
            fail(&l, "locked@x", Some("1.1.1.1"));
        }
        // The locked bucket is now the one that failed longest ago: the
        // first an eviction by age alone would drop.
        tokio::time::advance(Duration::from_secs(1)).await;
        let mut peak = 0;
        for i in 0..20_000 {
            let _ = l
                .reserve(
                    &format!("u{i}@x"),
                    Some(&format!("10.0.{}.{}", i / 256, i % 256)),
                )
                .map(Attempt::failed);
            peak = peak.max(l.bytes());
        }
        assert!(peak <= 64 << 10, "{peak} bytes");
        assert!(
            l.reserve("locked@x", Some("2.2.2.2")).is_err(),
            "the locked account stays locked"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_email_costs_what_a_short_one_does() {
        let (a, b) = (limiter(), limiter());
        fail(&a, "s@x", Some("1.1.1.1"));
        fail(&b, &"x".repeat(100_000), Some("1.1.1.1"));
        assert_eq!(a.bytes(), b.bytes());
        assert!(a.bytes() > 0);
    }

    #[tokio::test(start_paused = true)]
    async fn bytes_go_back_to_zero_when_attempts_are_given_back() {
        let l = limiter();
        let held: Vec<_> = (0..50)
            .map(|i| l.reserve(&format!("u{i}@x"), Some(&format!("1.1.{i}.1"))))
            .collect();
        assert!(l.bytes() > 0);
        drop(held);
        assert_eq!(l.bytes(), 0);
    }
}
