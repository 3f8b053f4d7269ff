//! Instructions per cache hit through `Router::resolve`, for counting under
//! `valgrind --tool=callgrind`: `hit_cost N [lease]` warms one user, then
//! resolves it N times on a current-thread runtime. Run it with two values
//! of N: the difference divided by the difference of N is the cost of one
//! hit, free of the start-up:
//!
//! ```sh
//! cargo build --release -p sessiond-actors --example hit_cost
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/examples/hit_cost 20000 lease
//! ```

use std::sync::Arc;
use std::time::Duration;

use sessiond_actors::memory::MemoryStore;
use sessiond_actors::{CacheConfig, LeaseKeeper, Lookup, NoopObserver, Router};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let lease = args.get(2).is_some_and(|s| s == "lease");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let store = MemoryStore::new();
        store.put(1, "user");
        let mut config = CacheConfig {
            ttl: Duration::from_secs(3600),
            ..CacheConfig::default()
        };
        if lease {
            config.lease = Some(Duration::from_secs(3600));
        }
        let router = Router::start(
            config,
            Arc::new(store.clone()),
            Arc::new(NoopObserver),
            "hit",
        )
        .await
        .expect("the router starts");
        if lease {
            let mut keeper =
                LeaseKeeper::new(router.clone(), Arc::new(store.clone())).expect("a lease");
            assert!(keeper.renew().await.expect("granted"), "the lease is held");
        }
        router.resolve(1, Lookup::Resolve).await.expect("warm");
        let mut hits = 0u64;
        for _ in 0..n {
            let s = router.resolve(1, Lookup::Resolve).await.expect("a hit");
            hits += u64::from(s.hit);
        }
        assert_eq!(hits, n, "every lookup a hit");
    });
}
