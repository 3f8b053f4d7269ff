//! A lease across a stop its monotonic clock did not count: the machine
//! suspended (or a guest whose CLOCK_MONOTONIC stood still) while real time
//! went on. Simulated with tokio's paused clock, which is the monotonic
//! clock the lease is counted on, held still while the thread sleeps for
//! real, so CLOCK_BOOTTIME (`sessiond_actors::clock`) advances alone.

use std::sync::Arc;
use std::time::Duration;

use sessiond_actors::memory::MemoryStore;
use sessiond_actors::{CacheConfig, LeaseKeeper, Lookup, NoopObserver, Router};
use tokio::time::Instant;

const LEASE: Duration = Duration::from_millis(300);

#[tokio::test(start_paused = true)]
async fn a_lease_ends_when_the_boot_clock_passes_it_though_the_monotonic_clock_stood_still() {
    let store = MemoryStore::new();
    store.put(1, "user");
    let config = CacheConfig {
        ttl: Duration::from_secs(300),
        lease: Some(LEASE),
        ..CacheConfig::default()
    };
    let router = Router::start(config, Arc::new(store.clone()), Arc::new(NoopObserver), "a")
        .await
        .expect("router starts");
    let mut keeper = LeaseKeeper::new(router.clone(), Arc::new(store.clone())).expect("a lease");
    assert!(keeper.renew().await.expect("granted"));
    router.resolve(1, Lookup::Resolve).await.expect("read");
    let hit = router.resolve(1, Lookup::Resolve).await.expect("cached");
    assert!(hit.hit, "served from the cache while the lease runs");

    // The stop: real time passes (a lease and a half), the monotonic clock
    // does not.
    let frozen = Instant::now();
    let boot_before = sessiond_actors::clock::since_boot();
    std::thread::sleep(LEASE + LEASE / 2);
    assert_eq!(Instant::now(), frozen, "the monotonic clock stood still");
    assert!(sessiond_actors::clock::since_boot().saturating_sub(boot_before) >= LEASE + LEASE / 2);

    let lease = router.lease().expect("a lease");
    assert!(
        !lease.valid_at(Instant::now()),
        "lease still valid after a stop longer than it"
    );
    assert_eq!(lease.remaining(Instant::now()), Duration::ZERO);
    assert!(!router.serves_from_cache());
    let after = router
        .resolve(1, Lookup::Resolve)
        .await
        .expect("read through");
    assert!(!after.hit, "answered from the cache after the stop");
    assert_eq!(store.queries(), 2, "the second read went to the store");

    // A renewal gives it back.
    assert!(keeper.renew().await.expect("granted"));
    assert!(router.serves_from_cache());
}
