//! Routers of several nodes joined by an in-memory [`Link`]: ownership,
//! forwarding, broadcast invalidation, fallback when an owner is down.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sessiond_actors::memory::MemoryStore;
use sessiond_actors::{
    BoxFuture, CacheConfig, Fetched, InvalidationSource, Link, LinkError, Lookup, NoopObserver,
    Router, Served,
};

#[derive(Default)]
struct MemLink {
    nodes: Mutex<HashMap<String, Router>>,
    down: Mutex<HashSet<String>>,
}

impl MemLink {
    fn router(&self, node: &str) -> Result<Router, LinkError> {
        if self.down.lock().map(|d| d.contains(node)).unwrap_or(true) {
            return Err(LinkError::Unreachable);
        }
        self.nodes
            .lock()
            .ok()
            .and_then(|n| n.get(node).cloned())
            .ok_or(LinkError::Unreachable)
    }
}

impl Link for MemLink {
    fn resolve(
        &self,
        node: &str,
        user_id: i64,
        lookup: Lookup,
    ) -> BoxFuture<'static, Result<Served, LinkError>> {
        let router = self.router(node);
        Box::pin(async move {
            router?
                .resolve_local(user_id, lookup)
                .await
                .map_err(|e| LinkError::Remote(e.to_string()))
        })
    }

    fn invalidate(
        &self,
        node: &str,
        user_id: i64,
        min_version: Option<i64>,
    ) -> BoxFuture<'static, Result<(), LinkError>> {
        let router = self.router(node);
        Box::pin(async move {
            router?
                .invalidate_local(user_id, min_version, InvalidationSource::Broadcast)
                .await;
            Ok(())
        })
    }
}

const NODES: [&str; 3] = ["n1", "n2", "n3"];

async fn cluster(store: &MemoryStore) -> (Arc<MemLink>, Vec<Router>) {
    let link = Arc::new(MemLink::default());
    let mut routers = Vec::new();
    for name in NODES {
        let r = Router::start_linked(
            CacheConfig::default(),
            Arc::new(store.clone()),
            Arc::new(NoopObserver),
            name,
            Some(link.clone() as Arc<dyn Link>),
        )
        .await
        .expect("starts");
        link.nodes
            .lock()
            .expect("lock")
            .insert(name.to_string(), r.clone());
        routers.push(r);
    }
    for r in &routers {
        r.set_members(&NODES);
    }
    (link, routers)
}

fn role(s: &Served) -> String {
    match &s.fetched {
        Fetched::Found(u) => u.user.role.clone(),
        Fetched::Missing => "<missing>".into(),
    }
}

#[tokio::test(start_paused = true)]
async fn every_node_answers_through_the_owner() {
    let store = MemoryStore::new();
    for id in 1..=60 {
        store.put(id, "user");
    }
    let (_link, routers) = cluster(&store).await;
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
    let (link, routers) = cluster(&store).await;
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
    link.down.lock().expect("lock").insert("n1".into());
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
    let (link, routers) = cluster(&store).await;
    let owned_by_n1: Vec<i64> = (1..=30)
        .filter(|id| &*routers[0].owner_of(*id) == "n1")
        .collect();
    assert!(!owned_by_n1.is_empty());
    for id in &owned_by_n1 {
        routers[0].resolve(*id, Lookup::Resolve).await.expect("ok");
    }

    link.down.lock().expect("lock").insert("n1".into());
    for id in &owned_by_n1 {
        let s = routers[1]
            .resolve(*id, Lookup::Resolve)
            .await
            .expect("served around");
        assert!(s.node.is_none(), "answered by n2 itself");
    }

    // The survivors drop n1 from their view: n2 and n3 now own its users.
    for r in &routers[1..] {
        r.set_members(&["n2", "n3"]);
    }
    for id in 1..=30 {
        let owner = routers[1].owner_of(id);
        assert_ne!(&*owner, "n1");
    }

    // n1 comes back: every node agrees again, and users n2 held for n1 move back.
    link.down.lock().expect("lock").clear();
    for r in &routers {
        r.set_members(&NODES);
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
