//! Routers of several nodes joined by the crate's in-memory network: ownership,
//! forwarding, broadcast invalidation, fallback when an owner is down.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use sessiond_actors::memory::{MemoryNet, MemoryStore, Trip};
use sessiond_actors::{CacheConfig, Fetched, InvalidationSource, Lookup, Router, Served};

const NODES: [&str; 3] = ["n1", "n2", "n3"];

async fn cluster(store: &MemoryStore) -> (Arc<MemoryNet>, Vec<Router>) {
    let net = MemoryNet::new(NODES.iter().map(|n| Arc::from(*n)).collect());
    let routers = join(&net, store, CacheConfig::default()).await;
    (net, routers)
}

/// Starts a router per node on `net`, each seeing every node.
async fn join(net: &Arc<MemoryNet>, store: &MemoryStore, config: CacheConfig) -> Vec<Router> {
    net.start_routers(store, config).await.expect("starts")
}

fn role(s: &Served) -> String {
    match &s.fetched {
        Fetched::Found(u) => u.user.role.to_string(),
        Fetched::Missing => "<missing>".into(),
    }
}

#[tokio::test(start_paused = true)]
async fn every_node_answers_through_the_owner() {
    let store = MemoryStore::new();
    for id in 1..=60 {
        store.put(id, "user");
    }
    let (_net, routers) = cluster(&store).await;
    let mut owners = HashSet::new();
    for id in 1..=60 {
        let owner = routers[0].owner_of(id);
        owners.insert(owner.to_string());
        for r in &routers {
            let s = r.resolve(id, Lookup::Resolve).await.expect("resolves");
            let answered_by = s.node.clone().unwrap_or_else(|| Arc::from(r.node()));
            assert_eq!(answered_by, owner, "user {id} via {}", r.node());
        }
    }
    assert_eq!(owners.len(), 3, "users spread over all nodes");
    assert_eq!(store.queries(), 60, "one read per user, at its owner");
    let live: usize = routers.iter().map(|r| r.session_actors()).sum();
    assert_eq!(live, 60, "each user lives on one node only");
}

#[tokio::test(start_paused = true)]
async fn an_invalidation_reaches_every_node_before_it_returns() {
    let store = MemoryStore::new();
    store.put(5, "admin");
    let (net, routers) = cluster(&store).await;
    // Warm every node, including a local copy on a non-owner (as after a
    // fallback while the owner was unreachable).
    for r in &routers {
        r.resolve(5, Lookup::Resolve).await.expect("ok");
        r.resolve_local(5, Lookup::Resolve).await.expect("ok");
    }
    let v = store.put(5, "user");
    routers[2]
        .invalidate(5, Some(v), InvalidationSource::Api)
        .await;
    for r in &routers {
        assert_eq!(
            role(&r.resolve(5, Lookup::Resolve).await.expect("ok")),
            "user"
        );
        assert_eq!(
            role(&r.resolve_local(5, Lookup::Resolve).await.expect("ok")),
            "user"
        );
    }

    // With one node unreachable the others still acknowledge.
    net.set_isolated(0, true);
    let v = store.put(5, "viewer");
    routers[2]
        .invalidate(5, Some(v), InvalidationSource::Api)
        .await;
    for r in &routers[1..] {
        assert_eq!(
            role(&r.resolve(5, Lookup::Resolve).await.expect("ok")),
            "viewer"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_owner_is_served_around_and_a_view_change_rehomes() {
    let store = MemoryStore::new();
    for id in 1..=30 {
        store.put(id, "user");
    }
    let (net, routers) = cluster(&store).await;
    let owned_by_n1: Vec<i64> = (1..=30)
        .filter(|id| &*routers[0].owner_of(*id) == "n1")
        .collect();
    assert!(!owned_by_n1.is_empty());
    for id in &owned_by_n1 {
        routers[0].resolve(*id, Lookup::Resolve).await.expect("ok");
    }

    net.set_isolated(0, true);
    for id in &owned_by_n1 {
        let s = routers[1]
            .resolve(*id, Lookup::Resolve)
            .await
            .expect("served around");
        assert!(s.node.is_none(), "answered by n2 itself");
    }

    // The survivors drop n1 from their view: n2 and n3 now own its users.
    for r in &routers[1..] {
        r.apply_view(&["n2", "n3"]);
    }
    for id in 1..=30 {
        let owner = routers[1].owner_of(id);
        assert_ne!(&*owner, "n1");
    }

    // n1 comes back: every node agrees again, and users n2 held for n1 move back.
    net.set_isolated(0, false);
    for r in &routers {
        r.apply_view(&NODES);
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    for id in &owned_by_n1 {
        let s = routers[1].resolve(*id, Lookup::Resolve).await.expect("ok");
        assert_eq!(s.node.as_deref(), Some("n1"));
    }
    let n2_users = routers[1].session_actors();
    let n2_owned = (1..=30)
        .filter(|id| &*routers[1].owner_of(*id) == "n2")
        .count();
    assert!(n2_users <= n2_owned, "n2 dropped users it no longer owns");
}

#[tokio::test(start_paused = true)]
async fn the_networks_hook_delays_and_loses_messages() {
    let store = MemoryStore::new();
    for id in 1..=20 {
        store.put(id, "user");
    }
    // Every message takes 3 ms; while `lose` is set, every one is lost.
    let lose = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let drawn = Arc::clone(&lose);
    let net = MemoryNet::with_trips(NODES.iter().map(|n| Arc::from(*n)).collect(), move || {
        Trip {
            delay: Duration::from_millis(3),
            lost: drawn.load(std::sync::atomic::Ordering::Relaxed),
        }
    });
    // Every lookup is forwarded: no near copies.
    let config = CacheConfig {
        call_timeout: Duration::from_millis(200),
        near: false,
        ..CacheConfig::default()
    };
    let routers = join(&net, &store, config).await;
    let remote = (1..=20)
        .find(|id| &*routers[0].owner_of(*id) != "n1")
        .expect("a user another node owns");

    let started = tokio::time::Instant::now();
    let s = routers[0]
        .resolve(remote, Lookup::Resolve)
        .await
        .expect("ok");
    assert!(s.node.is_some(), "answered by its owner");
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(6),
        "there and back"
    );
    let stats = net.stats();
    assert_eq!((stats.messages, stats.lost, stats.refused), (2, 0, 0));
    assert_eq!(stats.max_delay, Duration::from_millis(3));

    // Lost on the way: the caller waits for its own timeout, then serves
    // the user itself.
    lose.store(true, std::sync::atomic::Ordering::Relaxed);
    let started = tokio::time::Instant::now();
    let s = routers[0]
        .resolve(remote, Lookup::Resolve)
        .await
        .expect("ok");
    assert!(s.node.is_none(), "served locally");
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(net.stats().lost, 1);

    // Cut off: refused at once, no message sent.
    lose.store(false, std::sync::atomic::Ordering::Relaxed);
    net.set_isolated(0, true);
    let started = tokio::time::Instant::now();
    routers[0]
        .resolve(remote, Lookup::Resolve)
        .await
        .expect("ok");
    assert!(started.elapsed() < Duration::from_millis(200));
    let stats = net.stats();
    assert_eq!((stats.messages, stats.refused), (3, 1));
}
