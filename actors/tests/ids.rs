//! Text ids (UUIDs, cuids, nanoids, 32-character strings) through the whole
//! cache: a node on its own (miss, hit, versioned invalidation, deletion,
//! hibernation) and three nodes on the in-memory network (placement,
//! forwarding, near copies, broadcast invalidation), beside integer ids
//! in the same maps.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use sessiond_actors::memory::{text_id, MemoryNet, MemoryStore};
use sessiond_actors::{
    CacheConfig, Fetched, InvalidationSource, Lookup, NoopObserver, Router, Served, UserId,
};

/// Ids of every shape an app's users table has, and integers.
fn ids() -> Vec<UserId> {
    let mut ids: Vec<UserId> = [
        "550e8400-e29b-41d4-a716-446655440000",
        "clx3k9abc0000qzrmn1234567",
        "tz4a98xxat96iws9zmbrgj3a",
        "V1StGXR8_Z5jdHi6B-myT",
        "tenant:7:user@x",
        "007",
        "42x",
    ]
    .iter()
    .map(|s| UserId::parse(s).expect("a valid id"))
    .collect();
    ids.extend((1..=40).map(text_id));
    ids.extend((1..=20).map(UserId::from));
    ids
}

fn user_of(s: &Served) -> Option<(UserId, String)> {
    match &s.fetched {
        Fetched::Found(u) => Some((u.user.id.clone(), u.user.role.to_string())),
        Fetched::Missing => None,
    }
}

#[tokio::test(start_paused = true)]
async fn text_ids_are_cached_invalidated_and_hibernated_on_one_node() {
    let store = MemoryStore::new();
    for id in ids() {
        store.put(&id, "viewer");
    }
    let config = CacheConfig {
        hibernate_after: Some(Duration::from_millis(200)),
        ..CacheConfig::default()
    };
    let router = Router::start(
        config,
        Arc::new(store.clone()),
        Arc::new(NoopObserver),
        "n1",
    )
    .await
    .expect("starts");
    for id in ids() {
        // Each lookup names the user by an id parsed afresh, as a token's
        // `sub` is: equal ids find the same session.
        let fresh = UserId::parse(&id.to_string()).expect("parses back");
        let first = router
            .resolve(&fresh, Lookup::Resolve)
            .await
            .expect("resolves");
        assert!(!first.hit);
        assert_eq!(user_of(&first), Some((id.clone(), "viewer".into())));
        let again = router
            .resolve(fresh, Lookup::Resolve)
            .await
            .expect("resolves");
        assert!(again.hit, "{id}: a hit");
    }
    let n = ids().len();
    assert_eq!(store.queries() as usize, n, "one read per user");
    assert_eq!(router.sessions(), n);

    // "007" and 7 are two users, each with its own record.
    let zero_seven = UserId::parse("007").expect("valid");
    let seven = router.resolve(7, Lookup::Resolve).await.expect("ok");
    let text = router
        .resolve(&zero_seven, Lookup::Resolve)
        .await
        .expect("ok");
    assert_eq!(user_of(&seven).map(|u| u.0), Some(UserId::from(7)));
    assert_eq!(user_of(&text).map(|u| u.0), Some(zero_seven.clone()));
    assert_eq!(store.queries() as usize, n, "both were cached apart");

    // A versioned invalidation of a text id drops exactly that user.
    let uuid = UserId::parse("550e8400-e29b-41d4-a716-446655440000").expect("valid");
    let v = store.put(&uuid, "admin");
    router
        .invalidate(&uuid, Some(v), InvalidationSource::Api)
        .await;
    let after = router.resolve(&uuid, Lookup::Resolve).await.expect("ok");
    assert_eq!(user_of(&after).map(|u| u.1), Some("admin".into()));
    assert!(
        router
            .resolve(text_id(1), Lookup::Resolve)
            .await
            .expect("ok")
            .hit
    );

    // Deleted: missing at once.
    let nano = UserId::parse("V1StGXR8_Z5jdHi6B-myT").expect("valid");
    store.remove(&nano);
    router
        .invalidate(&nano, None, InvalidationSource::Api)
        .await;
    assert_eq!(
        user_of(&router.resolve(&nano, Lookup::Resolve).await.expect("ok")),
        None
    );

    // Hibernated: the actors go, the records keep answering hits.
    // (The sweep runs every 30 s; the records live for the 5-minute TTL.)
    tokio::time::sleep(Duration::from_secs(65)).await;
    assert_eq!(router.session_actors(), 0, "every actor hibernated");
    let queries = store.queries();
    for id in ids().iter().filter(|i| **i != nano) {
        let s = router.resolve(id, Lookup::Resolve).await.expect("ok");
        assert!(s.hit, "{id}: a hibernated record answers");
    }
    assert_eq!(store.queries(), queries);
    router.stop().await;
}

#[tokio::test(start_paused = true)]
async fn text_ids_are_placed_forwarded_and_invalidated_across_nodes() {
    let store = MemoryStore::new();
    for id in ids() {
        store.put(&id, "viewer");
    }
    let net = MemoryNet::new(["n1", "n2", "n3"].iter().map(|n| Arc::from(*n)).collect());
    let routers = net
        .start_routers(&store, CacheConfig::default())
        .await
        .expect("starts");
    let mut owners = HashSet::new();
    for id in ids() {
        let owner = routers[0].owner_of(&id);
        owners.insert(owner.to_string());
        for r in &routers {
            assert_eq!(r.owner_of(&id), owner, "every node places {id} alike");
            let s = r.resolve(&id, Lookup::Resolve).await.expect("resolves");
            let answered_by = s.node.clone().unwrap_or_else(|| Arc::from(r.node()));
            assert_eq!(answered_by, owner, "{id} via {}", r.node());
            assert_eq!(user_of(&s).map(|u| u.0), Some(id.clone()));
        }
    }
    assert_eq!(owners.len(), 3, "text ids spread over every node");
    assert_eq!(
        store.queries() as usize,
        ids().len(),
        "one read per user, at its owner"
    );

    // Near copies on the other nodes answer the next lookups...
    let id = text_id(3);
    for r in &routers {
        let s = r.resolve(&id, Lookup::Resolve).await.expect("ok");
        assert!(s.hit, "{} answers {id} from its cache", r.node());
    }
    // ... until a write's invalidation, broadcast from any node, reaches
    // every one of them before it returns.
    let v = store.put(&id, "editor");
    routers[1]
        .invalidate(&id, Some(v), InvalidationSource::Api)
        .await;
    for r in &routers {
        let s = r.resolve(&id, Lookup::Resolve).await.expect("ok");
        assert_eq!(
            user_of(&s).map(|u| u.1),
            Some("editor".into()),
            "{}",
            r.node()
        );
    }
    for r in &routers {
        r.stop().await;
    }
}
