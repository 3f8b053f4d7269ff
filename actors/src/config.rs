//! The cache policy of a node ([`CacheConfig`]) and the defaults it derives
//! from its idle timeout.

use std::time::Duration;

/// How long an actor may go without a message before it hibernates, unless
/// the configuration says otherwise: a tenth of the idle timeout, between
/// 100 ms and one minute. A session kept busy by cache hits alone needs no
/// actor until its record expires.
pub(crate) fn hibernate_after(idle_timeout: Duration) -> Duration {
    (idle_timeout / 10).clamp(Duration::from_millis(100), Duration::from_secs(60))
}

/// The cache policy of a node.
#[derive(Clone, Debug)]
pub struct CacheConfig {
    /// How long a fetched record is served without reading the store again.
    /// Zero disables the cache: every lookup reads the store.
    pub ttl: Duration,
    /// A session with no lookup for this long is passivated. Its actor
    /// hibernates much sooner (see `hibernate_after`): cache hits need only
    /// the record, not the actor.
    pub idle_timeout: Duration,
    /// How long an actor may go without a message before it hibernates.
    /// `None`: a tenth of the idle timeout, between 100 ms and one minute.
    /// Hibernation saves memory and changes no answer; the simulation waits
    /// the whole idle timeout, which saves it wall time.
    pub hibernate_after: Option<Duration>,
    /// The most sessions (live or hibernated) on this node at once; beyond
    /// it the least recently used are passivated.
    pub max_sessions: usize,
    /// The longest a lookup waits for an actor (and, through it, the store).
    pub call_timeout: Duration,
    /// The freshness lease this node must hold to answer from its cache
    /// (see [`Lease`](crate::Lease)). `None`: no lease, the cache always answers — for a
    /// node whose every write goes through itself, and for tests.
    pub lease: Option<Duration>,
    /// Keep near copies: a node that forwards a lookup to the user's owner
    /// keeps the owner's answer, under the same fences as the owner's own
    /// copy, and answers the next lookups itself (see
    /// [`Router::resolve`](crate::Router::resolve)).
    pub near: bool,
}

impl CacheConfig {
    /// The default [`CacheConfig::ttl`]: five minutes.
    pub const DEFAULT_TTL: Duration = Duration::from_secs(300);
    /// The default [`CacheConfig::idle_timeout`]: ten minutes.
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(600);
    /// The default [`CacheConfig::max_sessions`].
    pub const DEFAULT_MAX_SESSIONS: usize = 1_000_000;
    /// The default [`CacheConfig::call_timeout`].
    pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(5);

    /// How long an actor may go without a message before it hibernates.
    pub fn hibernate_delay(&self) -> Duration {
        self.hibernate_after
            .unwrap_or_else(|| hibernate_after(self.idle_timeout))
    }

    /// How often the supervisor sweeps its sessions (hibernating quiet
    /// actors, passivating idle sessions): half the default hibernation
    /// delay (a twentieth of the idle timeout), between 10 ms and 30 s.
    /// It follows the idle timeout alone, so that `hibernate_after` changes
    /// when actors stop and nothing else.
    pub fn sweep_period(&self) -> Duration {
        (hibernate_after(self.idle_timeout) / 2)
            .clamp(Duration::from_millis(10), Duration::from_secs(30))
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            ttl: Self::DEFAULT_TTL,
            idle_timeout: Self::DEFAULT_IDLE_TIMEOUT,
            hibernate_after: None,
            max_sessions: Self::DEFAULT_MAX_SESSIONS,
            call_timeout: Self::DEFAULT_CALL_TIMEOUT,
            lease: None,
            near: true,
        }
    }
}
