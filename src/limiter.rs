//! Login brute-force protection.
//!
//! Kept whole: the three buckets and the byte budget are one state under
//! one lock, changed together by every attempt; a third
//! of the file is the tests that drive them together.
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
//! - **a known device of an account**: a login that presents a valid
//!   device token of the account — OWASP's "device cookie": every
//!   successful login is answered with a new one (`device` in the answer),
//!   signed with the token signing keys, valid for [`DEVICE_MEMORY`] (30
//!   days) on every node and across restarts, and bound to the account.
//!   Each device has a bucket of its own of the same size
//!   (`--login-max-failures`), so strangers who exhaust theirs do not lock
//!   the owner out, and a device that fails that often waits like a
//!   stranger (its token is locked out for the window). A device token
//!   that does not check (forged, expired, another account's) is ignored:
//!   the login is a stranger's.
//!
//!   These two buckets are also kept in the database every node shares:
//!   the login use case counts each attempt there too, in the strangers'
//!   bucket of the account or the device's (`Db::reserve_login`; a device
//!   is named by what its token names, `auth::device_bucket`), with the
//!   same window, limit and give-back rule. So a cluster allows an account's
//!   strangers, and each of its devices, no more guesses than one node
//!   does, and a restart forgets none of them; the buckets here are each
//!   node's own, and refuse before the database is asked.
//! - **an address**, across accounts: `--login-max-failures-per-address`
//!   (100) per window. IPv6 addresses count by their /64, which one host
//!   usually holds whole.
//!
//! An attempt is counted when it is let through, before the password is
//! checked ([`LoginLimiter::reserve`]), so however many logins arrive at
//! once, at most the limit are ever checked against the password. It is
//! given back on success, or when the service could not check it (a full
//! queue, a database error); otherwise it counts whatever happens to the
//! request, so a client that hangs up before its answer has still spent
//! the guess (and the check nobody waits for is skipped: see
//! `PasswordPool::submit`). Logins refused before any password
//! work (a password longer than the longest allowed, an email that cannot
//! be an account's) never reach the limiter: they teach an attacker
//! nothing and must not take its memory.
//!
//! # Memory
//!
//! Accounts and addresses are kept as 64-bit keyed hashes (an email of any
//! length costs the same), and the limiter counts the bytes it holds
//! against `max_bytes` (`--login-memory`, 16 MiB; counted as each entry's
//! size, its recency entry and its timestamps' capacity, the hash table's
//! own slack aside). When full it sheds rather than refuses: buckets whose
//! failures left the window first, then the least recently failed bucket,
//! whatever its count. Every bucket costs an attacker a password check
//! (counted per address too), so filling 16 MiB takes over a hundred
//! thousand checked guesses within one window. Entries are kept in recency
//! order (an ordered map beside the hash map), so shedding takes entries
//! off the front, a few per request, and never walks the whole state.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::BuildHasher;
use std::mem::size_of;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use sessiond_actors::sync::MutexExt;
use tokio::time::Instant;

/// How long the device token a successful login is answered with keeps
/// its holder a known device of the account.
pub const DEVICE_MEMORY: Duration = Duration::from_secs(30 * 86_400);

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
    /// Failures against an account from one of its known devices (the
    /// device token's id).
    Device(Tag, Tag),
    /// Failures from one address, across accounts.
    Address(Tag),
}

/// Where an entry stands in its recency order: when it was last touched,
/// and a sequence number that makes the place unique.
type Place = (Instant, u64);

/// One failure bucket: its failure times, oldest first (at most its
/// limit), and its place in the recency order.
struct Bucket {
    times: VecDeque<Instant>,
    place: Place,
}

/// What one failure bucket costs, besides its timestamps: the map entry
/// and the recency entry.
const ENTRY_BYTES: usize = size_of::<(Key, Bucket)>() + size_of::<(Place, Key)>() + 1;

fn bucket_bytes(times: &VecDeque<Instant>) -> usize {
    ENTRY_BYTES + times.capacity() * size_of::<Instant>()
}

#[derive(Default)]
struct State {
    buckets: HashMap<Key, Bucket>,
    /// The buckets, least recently touched first.
    bucket_order: BTreeMap<Place, Key>,
    /// Makes each [`Place`] unique.
    seq: u64,
    /// Bytes held, as counted by `bucket_bytes`.
    bytes: usize,
}

impl State {
    fn place(&mut self, now: Instant) -> Place {
        self.seq += 1;
        (now, self.seq)
    }

    /// Records one failure time in `key`'s bucket (opened if need be) and
    /// moves the bucket to the recent end of the order.
    fn push(&mut self, key: Key, now: Instant) {
        let place = self.place(now);
        let (before, after) = match self.buckets.get_mut(&key) {
            Some(bucket) => {
                let before = bucket_bytes(&bucket.times);
                bucket.times.push_back(now);
                self.bucket_order.remove(&bucket.place);
                bucket.place = place;
                (before, bucket_bytes(&bucket.times))
            }
            None => {
                let mut times = VecDeque::with_capacity(4);
                times.push_back(now);
                let after = bucket_bytes(&times);
                self.buckets.insert(key, Bucket { times, place });
                (0, after)
            }
        };
        self.bucket_order.insert(place, key);
        self.bytes = self.bytes + after - before;
    }

    /// Takes one reservation made at `at` back from `key`.
    fn release(&mut self, key: &Key, at: Instant) {
        let Some(bucket) = self.buckets.get_mut(key) else {
            return;
        };
        if let Some(i) = bucket.times.iter().rposition(|t| *t == at) {
            bucket.times.remove(i);
        }
        if bucket.times.is_empty() {
            self.drop_bucket(key);
        }
    }

    fn drop_bucket(&mut self, key: &Key) {
        if let Some(bucket) = self.buckets.remove(key) {
            self.bucket_order.remove(&bucket.place);
            self.bytes -= bucket_bytes(&bucket.times);
        }
    }

    /// Sheds entries until the bytes held are within `max_bytes`, in this
    /// order: the least recently failed bucket first (those whose failures
    /// left the window, then the others whatever their count: when full,
    /// the limiter sheds rather than refuses). Each step
    /// takes one entry off the front of an ordered map, so a request pays
    /// for what it sheds and never for a walk of the whole state.
    fn shed(&mut self, max_bytes: usize) -> usize {
        let mut shed = 0;
        while self.bytes > max_bytes {
            // The least recently touched bucket goes first: it is the one
            // whose failures left the window first.
            match self.bucket_order.first_key_value().map(|(_, k)| *k) {
                Some(key) => self.drop_bucket(&key),
                None => break,
            }
            shed += 1;
        }
        shed
    }
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
    /// must be refused without even checking the password. `device` is the
    /// id of a device token of this account the login presented, already
    /// checked (`Tokens::device_id`): the attempt counts in that device's
    /// bucket instead of the strangers'.
    ///
    /// The attempt counts as a failure from this moment, under the same lock
    /// as the check: concurrent logins cannot all pass the check before any
    /// of them is counted (the password check takes far longer than the
    /// check). The reservation is given back on success, or when the
    /// service could not check the password (see [`Attempt`]).
    pub fn reserve(
        &self,
        account: &str,
        address: Option<&str>,
        device: Option<&str>,
    ) -> Result<Attempt<'_>, Duration> {
        let account = self.account_tag(account);
        let address = address.map(|a| self.address_tag(a));
        let device = device.map(|d| self.hasher.hash_one((4u8, d)));
        let mut state = self.state.locked();
        // Read under the lock, so reservations are recorded in time order.
        let now = Instant::now();
        let window = self.limits.window;
        let mut keys = Vec::with_capacity(2);
        match device {
            Some(d) => keys.push(Key::Device(account, d)),
            None => keys.push(Key::Strangers(account)),
        }
        if let Some(a) = address {
            keys.push(Key::Address(a));
        }
        let mut wait = Duration::ZERO;
        for key in &keys {
            let limit = self.limit(key);
            if let Some(bucket) = state.buckets.get_mut(key) {
                let times = &mut bucket.times;
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
        for key in &keys {
            state.push(*key, now);
        }
        state.shed(self.limits.max_bytes);
        Ok(Attempt {
            limiter: self,
            keys,
            at: now,
        })
    }

    /// Buckets tracked now.
    pub fn tracked(&self) -> usize {
        self.state.locked().buckets.len()
    }

    /// Bytes held now, as counted against `max_bytes`.
    pub fn bytes(&self) -> usize {
        self.state.locked().bytes
    }
}

/// One reserved login attempt. Say how it ended: [`Attempt::failed`]
/// keeps it counted, [`Attempt::succeeded`] gives it back, [`Attempt::unchecked`] gives it
/// back when the service could not check the password (a full queue, a
/// database error). Dropped without any of them (the request was dropped:
/// a client that hung up), it stays counted as a failure.
pub struct Attempt<'a> {
    limiter: &'a LoginLimiter,
    keys: Vec<Key>,
    at: Instant,
}

impl Attempt<'_> {
    /// The service could not check the password (its fault, not the
    /// caller's): the reservation is given back.
    pub fn unchecked(self) {
        let mut state = self.limiter.state.locked();
        for key in &self.keys {
            state.release(key, self.at);
        }
    }

    /// The password was wrong: the reservation stays as the failure.
    pub fn failed(self) {}

    /// The password was right: the reservation is given back (the login
    /// is answered with a device token). The strangers' count stays: it
    /// bounds guesses per hour.
    pub fn succeeded(self) {
        let mut state = self.limiter.state.locked();
        for key in &self.keys {
            state.release(key, self.at);
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
        l.reserve(account, address, None)
            .expect("let through")
            .failed();
    }

    #[tokio::test(start_paused = true)]
    async fn an_account_is_held_off_after_its_limit_and_released_after_the_window() {
        let l = limiter();
        for _ in 0..3 {
            fail(&l, "a@x", Some("1.1.1.1"));
        }
        let wait = l
            .reserve("a@x", Some("2.2.2.2"), None)
            .err()
            .expect("held off");
        assert!(wait <= Duration::from_secs(60) && wait >= Duration::from_secs(59));
        // Other accounts are unaffected (from another address).
        assert!(l.reserve("b@x", Some("3.3.3.3"), None).is_ok());
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(l.reserve("a@x", Some("2.2.2.2"), None).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn attempts_in_flight_count_against_the_limit() {
        let l = limiter();
        // Three let through and not yet settled: the fourth is refused.
        let held: Vec<Attempt<'_>> = (0..3)
            .map(|i| {
                l.reserve("a@x", Some(&format!("1.1.1.{i}")), None)
                    .expect("let through")
            })
            .collect();
        assert!(l.reserve("a@x", Some("2.2.2.2"), None).is_err());
        // One given back unchecked frees one place ...
        let mut held = held.into_iter();
        if let Some(a) = held.next() {
            a.unchecked();
        }
        let again = l
            .reserve("a@x", Some("2.2.2.2"), None)
            .expect("a place was freed");
        assert!(l.reserve("a@x", Some("2.2.2.3"), None).is_err());
        // ... a success gives it back (and earns a device token) ...
        again.succeeded();
        for a in held {
            a.failed();
        }
        assert!(l.reserve("a@x", Some("2.2.2.2"), Some("dev-1")).is_ok());
        // ... while the strangers' count stays where the failures left it
        // (two): one more stranger, and they are held off.
        fail(&l, "a@x", Some("2.2.2.4"));
        assert!(l.reserve("a@x", Some("2.2.2.5"), None).is_err());
        assert!(l.reserve("a@x", Some("2.2.2.2"), Some("dev-1")).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn an_address_is_held_off_across_accounts() {
        let l = limiter();
        for i in 0..5 {
            fail(&l, &format!("u{i}@x"), Some("9.9.9.9"));
        }
        assert!(l.reserve("fresh@x", Some("9.9.9.9"), None).is_err());
        assert!(l.reserve("fresh@x", Some("8.8.8.8"), None).is_ok());
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
        assert!(l
            .reserve("fresh@x", Some("2001:db8:1:2:ffff::9"), None)
            .is_err());
        assert!(l.reserve("fresh@x", Some("2001:db8:1:3::1"), None).is_ok());
        // A mapped IPv4 address is that IPv4 address.
        for i in 0..5 {
            fail(&l, &format!("v{i}@x"), Some("::ffff:10.0.0.1"));
        }
        assert!(l.reserve("fresh2@x", Some("10.0.0.1"), None).is_err());
    }

    /// (b): strangers who exhaust an account's count do not lock out its
    /// owner's device (whatever its address); the device has a count of
    /// its own, and another device of the account has another.
    #[tokio::test(start_paused = true)]
    async fn the_owner_is_not_locked_out_by_strangers() {
        let l = limiter();
        for i in 0..3 {
            fail(&l, "a@x", Some(&format!("6.6.6.{i}")));
        }
        assert!(
            l.reserve("a@x", Some("6.6.6.9"), None).is_err(),
            "strangers held off"
        );
        // The owner, from the strangers' own address even.
        l.reserve("a@x", Some("6.6.6.0"), Some("dev-a"))
            .expect("the owner's device is let through")
            .succeeded();
        // The device's own count: three typos and it waits too ...
        for _ in 0..3 {
            let a = l.reserve("a@x", Some("5.5.5.5"), Some("dev-a"));
            a.expect("let through").failed();
        }
        assert!(l.reserve("a@x", Some("5.5.5.5"), Some("dev-a")).is_err());
        // ... while another device of the account is let through.
        assert!(l.reserve("a@x", Some("5.5.5.5"), Some("dev-b")).is_ok());
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
            if let Ok(a) = l.reserve("victim@x", Some(&address), None) {
                checked += 1;
                a.failed();
            }
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        assert_eq!(checked, 40);
    }

    /// When full, the limiter sheds the least recently failed buckets a
    /// few at a time: it never refuses a login for want of memory, and no
    /// request pays for a walk of the whole state.
    #[tokio::test(start_paused = true)]
    async fn when_full_it_sheds_a_few_entries_per_login_and_refuses_none() {
        let l = LoginLimiter::new(Limits {
            max_bytes: 64 << 10,
            ..limiter().limits
        });
        let mut peak = 0;
        let mut most_shed = 0;
        for i in 0..20_000 {
            let before = l.tracked();
            let attempt = l
                .reserve(
                    &format!("u{i}@x"),
                    Some(&format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255)),
                    None,
                )
                .expect("never refused for want of memory");
            attempt.failed();
            // Two buckets opened, so at most a few more shed.
            most_shed = most_shed.max((before + 2).saturating_sub(l.tracked()));
            peak = peak.max(l.bytes());
        }
        assert!(peak <= 64 << 10, "{peak} bytes");
        assert!(most_shed <= 4, "{most_shed} entries shed by one login");
        // The most recent buckets are the ones kept.
        for _ in 0..2 {
            fail(&l, "u19999@x", Some("1.2.3.4"));
        }
        assert!(l.reserve("u19999@x", Some("1.2.3.5"), None).is_err());
    }

    /// An attempt dropped unsaid (its request dropped: a client that hung
    /// up) stays counted; one the service could not check is given back.
    #[tokio::test(start_paused = true)]
    async fn an_attempt_whose_request_is_dropped_stays_counted() {
        let l = limiter();
        for i in 0..3 {
            drop(
                l.reserve("a@x", Some(&format!("1.1.1.{i}")), None)
                    .expect("let through"),
            );
        }
        assert!(l.reserve("a@x", Some("2.2.2.2"), None).is_err());
        let l = limiter();
        for i in 0..3 {
            l.reserve("a@x", Some(&format!("1.1.1.{i}")), None)
                .expect("let through")
                .unchecked();
        }
        assert!(l.reserve("a@x", Some("2.2.2.2"), None).is_ok());
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
            .map(|i| l.reserve(&format!("u{i}@x"), Some(&format!("1.1.{i}.1")), None))
            .collect();
        assert!(l.bytes() > 0);
        for a in held {
            a.expect("let through").unchecked();
        }
        assert_eq!(l.bytes(), 0);
    }
}
