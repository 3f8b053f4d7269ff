//! Near copies in paused tokio time: three routers on the in-memory
//! network; a non-owner keeps what the owner answered and answers the next
//! lookups itself, one forwarded call for concurrent misses, under the same
//! fences as the owner's copy.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sessiond_actors::memory::{MemoryNet, MemoryStore, Trip};
use sessiond_actors::{
    CacheConfig, Fetched, FlushReason, InvalidationSource, Lookup, Router, Served,
};

const NODES: [&str; 3] = ["n1", "n2", "n3"];

async fn join(net: &Arc<MemoryNet>, store: &MemoryStore) -> Vec<Router> {
    net.start_routers(store, CacheConfig::default())
        .await
        .expect("starts")
}

/// A store of users 1 to 100, each a plain user.
fn hundred_users() -> MemoryStore {
    let store = MemoryStore::new();
    for id in 1..=100 {
        store.put(id, "user");
    }
    store
}

/// A network on which the second message sent takes 100 ms and every
/// other 1 ms, and the count of messages sent so far.
fn second_message_slow() -> (Arc<MemoryNet>, Arc<AtomicU64>) {
    let sent = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&sent);
    let net = MemoryNet::with_trips(NODES.iter().map(|n| Arc::from(*n)).collect(), move || {
        let k = counter.fetch_add(1, Ordering::SeqCst);
        Trip {
            delay: Duration::from_millis(if k == 1 { 100 } else { 1 }),
            lost: false,
        }
    });
    (net, sent)
}

/// A network whose messages each take `delay`.
fn slow_net(delay: Duration) -> Arc<MemoryNet> {
    MemoryNet::with_trips(NODES.iter().map(|n| Arc::from(*n)).collect(), move || {
        Trip { delay, lost: false }
    })
}

fn role(s: &Served) -> String {
    match &s.fetched {
        Fetched::Found(u) => u.user.role.to_string(),
        Fetched::Missing => "<missing>".into(),
    }
}

/// A user `n2` owns.
fn owned_by_n2(routers: &[Router]) -> i64 {
    (1..=100)
        .find(|id| &*routers[0].owner_of(*id) == "n2")
        .expect("a user n2 owns")
}

#[tokio::test(start_paused = true)]
async fn a_non_owner_answers_from_its_near_copy_with_the_owners_age() {
    let store = hundred_users();
    let net = slow_net(Duration::from_millis(1));
    let routers = join(&net, &store).await;
    let id = owned_by_n2(&routers);

    // The owner reads it; 10 s later n1 asks for it (forwarded, kept).
    routers[1].resolve(id, Lookup::Resolve).await.expect("ok");
    tokio::time::sleep(Duration::from_secs(10)).await;
    let first = routers[0].resolve(id, Lookup::Resolve).await.expect("ok");
    assert_eq!(first.node.as_deref(), Some("n2"));
    assert!(first.hit && !first.near, "the owner's cache answered");
    assert!(first.age >= Duration::from_secs(10), "{:?}", first.age);
    let messages = net.stats().messages;

    let again = routers[0].resolve(id, Lookup::Resolve).await.expect("ok");
    assert!(again.near && again.hit, "answered from the near copy");
    assert_eq!(
        again.node.as_deref(),
        Some("n2"),
        "cache.node names the owner"
    );
    assert_eq!(net.stats().messages, messages, "no message for a near hit");
    // Counted from the owner's read, early by at most the round trip.
    assert!(again.age >= Duration::from_secs(10), "{:?}", again.age);
    assert!(
        again.age <= Duration::from_millis(10_010),
        "{:?}",
        again.age
    );
    assert_eq!(store.queries(), 1, "only the owner read the store");
    assert_eq!(routers[0].session_actors(), 0, "no actor for a near copy");

    // It expires no later than the owner's copy (TTL 300 s from the read).
    tokio::time::sleep(Duration::from_secs(290)).await;
    let late = routers[0].resolve(id, Lookup::Resolve).await.expect("ok");
    assert!(!late.near, "expired with the owner's copy");
    assert_eq!(store.queries(), 2, "the owner read it again, once");
}

#[tokio::test(start_paused = true)]
async fn concurrent_misses_on_a_non_owner_make_one_forwarded_call() {
    let store = hundred_users();
    store.set_latency(Duration::from_millis(50));
    let net = slow_net(Duration::from_millis(2));
    let routers = join(&net, &store).await;
    let id = owned_by_n2(&routers);

    let calls: Vec<_> = (0..20)
        .map(|_| {
            let r = routers[0].clone();
            tokio::spawn(async move { r.resolve(id, Lookup::Resolve).await })
        })
        .collect();
    for c in calls {
        let s = c.await.expect("joined").expect("ok");
        assert_eq!(role(&s), "user");
        assert_eq!(s.node.as_deref(), Some("n2"));
    }
    assert_eq!(net.stats().messages, 2, "one call there and back");
    assert_eq!(store.queries(), 1, "one read, at the owner");
}

#[tokio::test(start_paused = true)]
async fn an_invalidation_that_arrives_during_the_forward_wins() {
    let store = hundred_users();
    // Every message takes 10 ms: n1's call reaches the owner at 10 ms and
    // is answered from its cache, with the old record; the write's
    // invalidation, sent by n3 at 5 ms, reaches n1 and the owner at 15 ms,
    // before the answer is back at n1 (20 ms).
    let net = slow_net(Duration::from_millis(10));
    let routers = join(&net, &store).await;
    let id = owned_by_n2(&routers);
    routers[1].resolve(id, Lookup::Resolve).await.expect("ok");

    let n1 = routers[0].clone();
    let lookup = tokio::spawn(async move { n1.resolve(id, Lookup::Resolve).await });
    tokio::time::sleep(Duration::from_millis(5)).await;
    let v = store.put(id, "admin");
    routers[2]
        .invalidate(id, Some(v), InvalidationSource::Api)
        .await;
    // Acknowledged. The lookup sent before it may see either record.
    let raced = lookup.await.expect("joined").expect("ok");
    assert_eq!(role(&raced), "user", "the race took place");

    for r in &routers {
        let s = r.resolve(id, Lookup::Resolve).await.expect("ok");
        assert_eq!(role(&s), "admin", "via {}", r.node());
    }
    let s = routers[0].resolve(id, Lookup::Resolve).await.expect("ok");
    assert_eq!(role(&s), "admin");
}

#[tokio::test(start_paused = true)]
async fn a_lookup_that_joins_a_flight_after_the_ack_never_gets_its_old_answer() {
    let store = hundred_users();
    // Message k (in send order) takes the k-th delay: n1's call reaches
    // the owner at once and is answered with the old record, which then
    // takes 100 ms to come back; the write's invalidation and its
    // confirmations cross in 1 ms, so the write is acknowledged while the
    // answer is still on its way.
    let (net, sent) = second_message_slow();
    let routers = join(&net, &store).await;
    let id = owned_by_n2(&routers);
    routers[1].resolve(id, Lookup::Resolve).await.expect("ok");
    assert_eq!(sent.load(Ordering::SeqCst), 0);

    let n1 = routers[0].clone();
    let leader = tokio::spawn(async move { n1.resolve(id, Lookup::Resolve).await });
    tokio::time::sleep(Duration::from_millis(10)).await;
    let v = store.put(id, "admin");
    routers[2]
        .invalidate(id, Some(v), InvalidationSource::Api)
        .await;
    // Acknowledged; the leader's call is still in flight. A lookup now
    // must see the write.
    let after = routers[0].resolve(id, Lookup::Resolve).await.expect("ok");
    assert_eq!(role(&after), "admin");
    let _ = leader.await.expect("joined").expect("ok");
    let again = routers[0].resolve(id, Lookup::Resolve).await.expect("ok");
    assert_eq!(role(&again), "admin", "the old answer was not kept");
}

#[tokio::test(start_paused = true)]
async fn a_forced_refresh_through_a_non_owner_refreshes_both_copies() {
    let store = hundred_users();
    let net = MemoryNet::new(NODES.iter().map(|n| Arc::from(*n)).collect());
    let routers = join(&net, &store).await;
    let id = owned_by_n2(&routers);
    routers[0].resolve(id, Lookup::Resolve).await.expect("ok");
    // Changed behind the cache's back (no invalidation): only a forced
    // refresh sees it.
    store.put(id, "admin");
    let before = store.queries();
    let stale = routers[0].resolve(id, Lookup::Resolve).await.expect("ok");
    assert!(stale.near && role(&stale) == "user");

    let forced = routers[0]
        .resolve(id, Lookup::ForceRefresh)
        .await
        .expect("ok");
    assert_eq!(role(&forced), "admin");
    assert!(!forced.hit && !forced.near, "read by the owner");
    assert_eq!(store.queries(), before + 1, "one read");

    let near = routers[0].resolve(id, Lookup::Resolve).await.expect("ok");
    assert!(near.near && near.hit && role(&near) == "admin", "{near:?}");
    let owner = routers[1].resolve(id, Lookup::Resolve).await.expect("ok");
    assert!(owner.hit && role(&owner) == "admin", "{owner:?}");
    assert_eq!(store.queries(), before + 1);
}

#[tokio::test(start_paused = true)]
async fn flushes_and_view_changes_drop_near_copies() {
    let store = hundred_users();
    let net = MemoryNet::new(NODES.iter().map(|n| Arc::from(*n)).collect());
    let routers = join(&net, &store).await;
    let id = owned_by_n2(&routers);
    routers[0].resolve(id, Lookup::Resolve).await.expect("ok");
    assert!(
        routers[0]
            .resolve(id, Lookup::Resolve)
            .await
            .expect("ok")
            .near
    );

    routers[0].flush(FlushReason::Paused);
    let s = routers[0].resolve(id, Lookup::Resolve).await.expect("ok");
    assert!(!s.near, "flushed");
    // For a while after a flush nothing is kept (the owner may not have
    // applied what this node missed); then near copies come back.
    assert!(
        !routers[0]
            .resolve(id, Lookup::Resolve)
            .await
            .expect("ok")
            .near
    );
    tokio::time::sleep(Duration::from_secs(10)).await;
    routers[0].resolve(id, Lookup::Resolve).await.expect("ok");
    assert!(
        routers[0]
            .resolve(id, Lookup::Resolve)
            .await
            .expect("ok")
            .near
    );

    // A view change: every near copy is dropped, whoever owns it now.
    routers[0].apply_view(&["n1", "n2"]);
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(routers[0].sessions(), 0, "near copies dropped");
}

#[tokio::test(start_paused = true)]
async fn an_answer_to_a_call_sent_just_after_an_invalidation_is_not_kept() {
    let store = hundred_users();
    // The write's invalidation reaches n1 in 1 ms but the owner n2 only
    // after 100 ms (the second message sent); everything else takes 1 ms.
    // n1 asks the owner in between: the owner still answers the old
    // record, and n1 must not keep it past the acknowledgement.
    let (net, sent) = second_message_slow();
    let routers = join(&net, &store).await;
    let id = owned_by_n2(&routers);
    routers[1].resolve(id, Lookup::Resolve).await.expect("ok");
    assert_eq!(sent.load(Ordering::SeqCst), 0);

    let v = store.put(id, "admin");
    let writer = routers[2].clone();
    let write = tokio::spawn(async move {
        writer
            .invalidate(id, Some(v), InvalidationSource::Api)
            .await
    });
    tokio::time::sleep(Duration::from_millis(5)).await;
    let raced = routers[0].resolve(id, Lookup::Resolve).await.expect("ok");
    assert_eq!(role(&raced), "user", "the owner had not applied it yet");
    write.await.expect("acknowledged");
    let after = routers[0].resolve(id, Lookup::Resolve).await.expect("ok");
    assert_eq!(role(&after), "admin", "{after:?}");
}
