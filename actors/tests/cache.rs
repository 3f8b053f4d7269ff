//! The cache semantics of the session actors, in paused tokio time against
//! the counting in-memory store.
//!
//! Kept whole: one node, one fixture (`config`, `router_with`) and one
//! subject, what a lookup answers and what it costs in store reads; each
//! test reads alone, and a split would only scatter the fixture.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sessiond_actors::memory::MemoryStore;
use sessiond_actors::{
    CacheConfig, Fetched, InvalidationSource, Lookup, MissReason, NoopObserver, Observer,
    ResolveError, Router, Status, StoreError,
};

const TTL: Duration = Duration::from_secs(300);

fn config() -> CacheConfig {
    CacheConfig {
        ttl: TTL,
        idle_timeout: Duration::from_secs(600),
        hibernate_after: None,
        max_sessions: 10_000,
        call_timeout: Duration::from_secs(5),
        lease: None,
        near: true,
    }
}

async fn router_with(config: CacheConfig, store: &MemoryStore) -> Router {
    Router::start(
        config,
        Arc::new(store.clone()),
        Arc::new(NoopObserver),
        "test",
    )
    .await
    .expect("router starts")
}

fn role(f: &Fetched) -> String {
    match f {
        Fetched::Found(s) => s.user.role.to_string(),
        Fetched::Missing => "<missing>".into(),
    }
}

async fn resolve_role(router: &Router, id: i64) -> (String, bool) {
    let served = router.resolve(id, Lookup::Resolve).await.expect("resolves");
    (role(&served.fetched), served.hit)
}

#[tokio::test(start_paused = true)]
async fn hit_within_ttl_costs_no_query_and_expiry_costs_one() {
    let store = MemoryStore::new();
    store.put(1, "admin");
    let router = router_with(config(), &store).await;

    assert_eq!(resolve_role(&router, 1).await, ("admin".into(), false));
    assert_eq!(store.queries(), 1);

    tokio::time::advance(TTL - Duration::from_secs(1)).await;
    for _ in 0..10 {
        assert_eq!(resolve_role(&router, 1).await, ("admin".into(), true));
    }
    assert_eq!(store.queries(), 1, "hits within the TTL read nothing");

    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(resolve_role(&router, 1).await, ("admin".into(), false));
    assert_eq!(
        store.queries(),
        2,
        "an expired record costs exactly one read"
    );
    assert_eq!(resolve_role(&router, 1).await, ("admin".into(), true));
    assert_eq!(store.queries(), 2);
}

#[tokio::test(start_paused = true)]
async fn change_in_store_shows_after_ttl_or_forced_refresh() {
    let store = MemoryStore::new();
    store.put(1, "user");
    let router = router_with(config(), &store).await;
    assert_eq!(resolve_role(&router, 1).await.0, "user");

    // Changed behind the cache's back: served from cache until the TTL ...
    store.put(1, "editor");
    assert_eq!(resolve_role(&router, 1).await, ("user".into(), true));

    // ... or at once on a forced refresh, which costs exactly one read.
    let forced = router.resolve(1, Lookup::ForceRefresh).await.expect("ok");
    assert!(!forced.hit);
    assert_eq!(role(&forced.fetched), "editor");
    assert_eq!(store.queries(), 2);
    assert_eq!(resolve_role(&router, 1).await, ("editor".into(), true));

    store.put(1, "viewer");
    tokio::time::advance(TTL).await;
    assert_eq!(resolve_role(&router, 1).await, ("viewer".into(), false));
}

#[tokio::test(start_paused = true)]
async fn thousand_concurrent_cold_requests_cost_one_query() {
    let store = MemoryStore::new();
    store.put(7, "user");
    store.set_latency(Duration::from_millis(50));
    let router = router_with(config(), &store).await;

    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let r = router.clone();
        tasks.push(tokio::spawn(
            async move { r.resolve(7, Lookup::Resolve).await },
        ));
    }
    let mut misses = 0;
    for t in tasks {
        let served = t.await.expect("task").expect("resolves");
        assert_eq!(role(&served.fetched), "user");
        if !served.hit {
            misses += 1;
        }
    }
    assert_eq!(store.queries(), 1, "single flight: one query for all");
    assert!(misses >= 1);
}

#[tokio::test(start_paused = true)]
async fn versioned_invalidation_racing_a_fetch_wins() {
    let store = MemoryStore::new();
    store.put(3, "admin");
    store.set_latency(Duration::from_millis(100));
    let router = router_with(config(), &store).await;

    // The fetch reads "admin" at once and answers 100 ms later ...
    let r = router.clone();
    let pending = tokio::spawn(async move { r.resolve(3, Lookup::Resolve).await });
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(store.queries(), 1, "the fetch is in flight");
    // ... meanwhile the role is changed and the invalidation acknowledged.
    let v = store.put(3, "user");
    router.invalidate(3, Some(v), InvalidationSource::Api).await;

    let served = pending.await.expect("task").expect("resolves");
    assert_eq!(
        role(&served.fetched),
        "user",
        "the raced fetch was discarded"
    );
    assert_eq!(store.queries(), 2);
    assert_eq!(resolve_role(&router, 3).await, ("user".into(), true));
}

#[tokio::test(start_paused = true)]
async fn unversioned_invalidation_racing_a_fetch_wins() {
    let store = MemoryStore::new();
    store.put(4, "admin");
    store.set_latency(Duration::from_millis(100));
    let router = router_with(config(), &store).await;

    let r = router.clone();
    let pending = tokio::spawn(async move { r.resolve(4, Lookup::Resolve).await });
    tokio::time::sleep(Duration::from_millis(10)).await;
    store.put(4, "user");
    router.invalidate(4, None, InvalidationSource::Api).await;

    let served = pending.await.expect("task").expect("resolves");
    assert_eq!(role(&served.fetched), "user");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(resolve_role(&router, 4).await, ("user".into(), true));
}

#[tokio::test(start_paused = true)]
async fn invalidation_drops_cached_record_at_once() {
    let store = MemoryStore::new();
    store.put(5, "admin");
    let router = router_with(config(), &store).await;
    assert_eq!(resolve_role(&router, 5).await.0, "admin");

    let v = store.update(5, |s| s.user.status = Status::Deactivated);
    router.invalidate(5, Some(v), InvalidationSource::Api).await;
    let served = router.resolve(5, Lookup::Resolve).await.expect("ok");
    assert!(!served.hit);
    match &served.fetched {
        Fetched::Found(s) => assert_eq!(s.user.status, Status::Deactivated),
        Fetched::Missing => panic!("user is still there"),
    }

    // An invalidation older than what is cached changes nothing.
    router
        .invalidate(5, Some(v), InvalidationSource::Notify)
        .await;
    assert!(router.resolve(5, Lookup::Resolve).await.expect("ok").hit);

    store.remove(5);
    router.invalidate(5, None, InvalidationSource::Api).await;
    let served = router.resolve(5, Lookup::Resolve).await.expect("ok");
    assert_eq!(served.fetched, Fetched::Missing);
}

#[tokio::test(start_paused = true)]
async fn idle_sessions_are_passivated() {
    let store = MemoryStore::new();
    for id in 0..5 {
        store.put(id, "user");
    }
    let cfg = CacheConfig {
        idle_timeout: Duration::from_secs(60),
        hibernate_after: None,
        ..config()
    };
    let router = router_with(cfg, &store).await;
    for id in 0..5 {
        resolve_role(&router, id).await;
    }
    assert_eq!(router.session_actors(), 5);

    // User 0 keeps being used (through cache hits, which never reach the
    // actor); the others go idle.
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_secs(15)).await;
        assert!(resolve_role(&router, 0).await.1);
    }
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(router.sessions(), 1, "only the busy user stays cached");
    // Served by cache hits alone, its actor was not needed: hibernated.
    assert_eq!(router.session_actors(), 0);
    assert_eq!(router.hibernated(), 1);
    assert!(
        resolve_role(&router, 0).await.1,
        "a hibernated session still hits"
    );

    // A passivated user comes back with one read.
    let before = store.queries();
    assert_eq!(resolve_role(&router, 3).await, ("user".into(), false));
    assert_eq!(store.queries(), before + 1);
}

#[tokio::test(start_paused = true)]
async fn a_hibernated_session_keeps_its_record_and_wakes_without_a_read() {
    let store = MemoryStore::new();
    store.put(1, "editor");
    let router = router_with(config(), &store).await;
    assert_eq!(resolve_role(&router, 1).await, ("editor".into(), false));
    assert_eq!(router.session_actors(), 1);

    // The actor goes quiet (hits do not reach it) and hibernates.
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(resolve_role(&router, 1).await.1);
    }
    assert_eq!((router.session_actors(), router.hibernated()), (0, 1));
    assert_eq!(store.queries(), 1, "hibernation cost no read");

    // An invalidation reaches a hibernated session too.
    let v = store.put(1, "viewer");
    router.invalidate(1, Some(v), InvalidationSource::Api).await;
    assert_eq!(resolve_role(&router, 1).await, ("viewer".into(), false));
    assert_eq!(store.queries(), 2);
    assert_eq!(router.session_actors(), 1, "the miss woke an actor");

    // At expiry a hibernated session is read again, once.
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_secs(10)).await;
        resolve_role(&router, 1).await;
    }
    assert_eq!(router.session_actors(), 0);
    tokio::time::advance(TTL).await;
    assert_eq!(resolve_role(&router, 1).await, ("viewer".into(), false));
    assert_eq!(store.queries(), 3);
}

#[tokio::test(start_paused = true)]
async fn the_cap_holds() {
    let store = MemoryStore::new();
    let cfg = CacheConfig {
        max_sessions: 16,
        ..config()
    };
    let router = router_with(cfg, &store).await;
    for id in 0..200 {
        store.put(id, "user");
        assert_eq!(resolve_role(&router, id).await.0, "user");
        assert!(
            router.session_actors() <= 16,
            "{} live actors",
            router.session_actors()
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // The most recent user is still cached; the oldest was passivated.
    assert!(resolve_role(&router, 199).await.1);
    assert!(!resolve_role(&router, 0).await.1);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_actor_fails_only_its_request() {
    let store = MemoryStore::new();
    store.put(1, "user");
    store.put(2, "admin");
    let router = router_with(config(), &store).await;
    assert_eq!(resolve_role(&router, 2).await.0, "admin");

    store.panic_once(1);
    let failed = router.resolve(1, Lookup::Resolve).await;
    assert!(
        matches!(failed, Err(ResolveError::ActorFailed)),
        "{failed:?}"
    );

    // Other users are untouched, still cached.
    assert_eq!(resolve_role(&router, 2).await, ("admin".into(), true));
    // The next request for the same user gets a fresh actor.
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(resolve_role(&router, 1).await, ("user".into(), false));
}

#[tokio::test(start_paused = true)]
async fn a_store_panicking_mid_fetch_fails_that_lookup_only() {
    let store = MemoryStore::new();
    store.put(1, "user");
    let router = router_with(config(), &store).await;
    store.panic_polled_once(1);
    let failed = router.resolve(1, Lookup::Resolve).await;
    assert!(
        matches!(failed, Err(ResolveError::Store(StoreError::Panicked))),
        "{failed:?}"
    );
    // Nothing was cached; the same actor reads again on the next lookup.
    assert_eq!(resolve_role(&router, 1).await, ("user".into(), false));
    assert_eq!(resolve_role(&router, 1).await, ("user".into(), true));
}

#[tokio::test(start_paused = true)]
async fn a_failing_store_is_reported_not_cached() {
    let store = MemoryStore::new();
    store.put(1, "user");
    let router = router_with(config(), &store).await;
    store.set_down(true);
    assert!(matches!(
        router.resolve(1, Lookup::Resolve).await,
        Err(ResolveError::Store(_))
    ));
    store.set_down(false);
    assert_eq!(resolve_role(&router, 1).await, ("user".into(), false));
}

#[tokio::test(start_paused = true)]
async fn ttl_zero_reads_the_store_every_time() {
    let store = MemoryStore::new();
    store.put(1, "user");
    let cfg = CacheConfig {
        ttl: Duration::ZERO,
        ..config()
    };
    let router = router_with(cfg, &store).await;
    for n in 1..=5 {
        assert_eq!(resolve_role(&router, 1).await, ("user".into(), false));
        assert_eq!(store.queries(), n);
    }
    assert_eq!(router.session_actors(), 0);
}

#[derive(Default)]
struct Counting {
    hits: AtomicUsize,
    misses: [AtomicUsize; 4],
}

impl Observer for Counting {
    fn hit(&self, _age: Duration) {
        self.hits.fetch_add(1, Ordering::SeqCst);
    }
    fn miss(&self, reason: MissReason) {
        let i = MissReason::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(0);
        self.misses[i].fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn misses_are_reported_with_their_reason() {
    let store = MemoryStore::new();
    store.put(1, "user");
    let obs = Arc::new(Counting::default());
    let router = Router::start(config(), Arc::new(store.clone()), obs.clone(), "n")
        .await
        .expect("starts");
    resolve_role(&router, 1).await; // cold
    resolve_role(&router, 1).await; // hit
    tokio::time::advance(TTL).await;
    resolve_role(&router, 1).await; // expired
    router.resolve(1, Lookup::ForceRefresh).await.expect("ok"); // forced
    router.invalidate(1, None, InvalidationSource::Api).await;
    resolve_role(&router, 1).await; // invalidated
    let m: Vec<usize> = obs
        .misses
        .iter()
        .map(|a| a.load(Ordering::SeqCst))
        .collect();
    assert_eq!(m, vec![1, 1, 1, 1], "cold, expired, forced, invalidated");
    assert_eq!(obs.hits.load(Ordering::SeqCst), 1);
}

fn version(f: &Fetched) -> i64 {
    match f {
        Fetched::Found(s) => s.version,
        Fetched::Missing => i64::MAX,
    }
}

/// Caches `id` as `admin`, then writes `user` and acknowledges its
/// invalidation while the store goes on answering the old version.
async fn acknowledged_write_the_store_lags_behind(
    store: &MemoryStore,
    router: &Router,
    id: i64,
) -> i64 {
    store.put(id, "admin");
    assert_eq!(resolve_role(router, id).await, ("admin".into(), false));
    store.freeze(id);
    let v = store.put(id, "user");
    router
        .invalidate(id, Some(v), InvalidationSource::Api)
        .await;
    v
}

#[tokio::test(start_paused = true)]
async fn a_fenced_out_fetch_is_never_served_and_is_read_again_until_new_enough() {
    let store = MemoryStore::new();
    let router = router_with(config(), &store).await;
    let v = acknowledged_write_the_store_lags_behind(&store, &router, 1).await;
    let before = store.queries();

    // A lookup that starts after the acknowledgement ...
    let r = router.clone();
    let pending = tokio::spawn(async move { r.resolve(1, Lookup::Resolve).await });
    tokio::time::sleep(Duration::from_secs(1)).await;
    if pending.is_finished() {
        let answered = pending.await.expect("task");
        panic!("answered while the store still shows the old version: {answered:?}");
    }
    // ... keeps reading, more often than a fixed few times, but backing off.
    let reads = store.queries() - before;
    assert!(
        (5..=15).contains(&reads),
        "{reads} reads in the first second"
    );

    // The store catches up: the lookup answers the new record, promptly.
    store.thaw(1);
    let served = tokio::time::timeout(Duration::from_millis(300), pending)
        .await
        .expect("answered within one back-off step")
        .expect("task")
        .expect("resolves");
    assert_eq!(
        (role(&served.fetched), version(&served.fetched)),
        ("user".into(), v)
    );
    assert!(!served.hit);
    assert_eq!(resolve_role(&router, 1).await, ("user".into(), true));
    assert_eq!(store.max_concurrent_fetches(), 1, "single flight");
}

#[tokio::test(start_paused = true)]
async fn a_store_that_never_catches_up_fails_the_lookups_at_their_deadline() {
    let store = MemoryStore::new();
    let router = router_with(config(), &store).await;
    acknowledged_write_the_store_lags_behind(&store, &router, 2).await;
    store.set_latency(Duration::from_millis(20));
    let deadline = config().call_timeout;
    let before = store.queries();

    let lookup = |router: &Router| {
        let r = router.clone();
        tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            (r.resolve(2, Lookup::Resolve).await, started.elapsed())
        })
    };
    let first: Vec<_> = (0..50).map(|_| lookup(&router)).collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let late = lookup(&router);

    for task in first.into_iter().chain([late]) {
        let (answer, took) = task.await.expect("task");
        assert!(
            matches!(answer, Err(ResolveError::Timeout)),
            "after {took:?}: {answer:?}"
        );
        assert!(
            took >= deadline && took <= deadline + Duration::from_millis(300),
            "failed after {took:?}"
        );
    }
    let reads = store.queries() - before;
    assert!(
        (10..=60).contains(&reads),
        "{reads} reads in 7 s for 51 lookups"
    );
    assert_eq!(store.max_concurrent_fetches(), 1, "single flight");

    // Nobody waits any more: the actor stops reading.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let settled = store.queries();
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(store.queries(), settled, "no reads once nobody waits");

    // The store catches up: the next lookup answers the new record.
    store.thaw(2);
    assert_eq!(resolve_role(&router, 2).await, ("user".into(), false));
}
