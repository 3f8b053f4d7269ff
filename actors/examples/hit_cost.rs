//! Instructions per cache hit through `Router::resolve`, for counting under
//! `valgrind --tool=callgrind`: `hit_cost N [lease]` warms one user, then
//! resolves it N times on a current-thread runtime. Run it with two values
//! of N: the difference divided by the difference of N is the cost of one
//! hit, free of the start-up:
//!
//! ```sh
//! cargo build --release -p sessiond-actors --example hit_cost
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/examples/hit_cost 20000 lease
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/examples/hit_cost 20000 lease text
//! ```
//!
//! A third argument, `int` or `text`, spreads the hits over 1,000 users
//! named by integers or by 32-character text ids (`memory::text_id`), each
//! lookup parsing its id from the spelled form, as a request parses its
//! token's `sub`.

use std::sync::Arc;
use std::time::Duration;

use sessiond_actors::memory::{text_id, MemoryStore};
use sessiond_actors::{CacheConfig, LeaseKeeper, Lookup, NoopObserver, Router, UserId};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let lease = args.get(2).is_some_and(|s| s == "lease");
    let ids = args.get(3).cloned();
    let spelled: Vec<String> = match ids.as_deref() {
        Some("int") => (1..=1000u64).map(|n| n.to_string()).collect(),
        Some("text") => (1..=1000u64).map(|n| text_id(n).to_string()).collect(),
        _ => Vec::new(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let store = MemoryStore::new();
        store.put(1, "user");
        for id in &spelled {
            store.put(UserId::parse(id).expect("a valid id"), "user");
        }
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
        for id in &spelled {
            let id = UserId::parse(id).expect("a valid id");
            router.resolve(id, Lookup::Resolve).await.expect("warm");
        }
        let mut hits = 0u64;
        for i in 0..n as usize {
            let s = if spelled.is_empty() {
                router.resolve(1, Lookup::Resolve).await
            } else {
                let id = UserId::parse(&spelled[i % spelled.len()]).expect("a valid id");
                router.resolve(id, Lookup::Resolve).await
            }
            .expect("a hit");
            hits += u64::from(s.hit);
        }
        assert_eq!(hits, n, "every lookup a hit");
    });
}
