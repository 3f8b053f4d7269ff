//! Freshness leases in paused tokio time: two nodes sharing one in-memory
//! store (its change log and lease table), each of which can be cut off
//! from it. See `docs/freshness.md` for the protocol.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sessiond_actors::memory::MemoryStore;
use sessiond_actors::{
    BoxFuture, CacheConfig, Fetched, InvalidationSource, LeaseKeeper, LeaseStore, Lookup,
    MissReason, Observer, Router, StoreError, UserStore,
};
use sessiond_actors::{Changes, Holder};
use tokio::time::Instant;

const LEASE: Duration = Duration::from_secs(2);

fn config() -> CacheConfig {
    CacheConfig {
        ttl: Duration::from_secs(300),
        lease: Some(LEASE),
        ..CacheConfig::default()
    }
}

/// One node's way to the shared store, which the test can cut.
#[derive(Clone)]
struct Reach {
    store: MemoryStore,
    cut: Arc<AtomicBool>,
}

impl Reach {
    fn new(store: &MemoryStore) -> Reach {
        Reach {
            store: store.clone(),
            cut: Arc::new(AtomicBool::new(false)),
        }
    }
    fn set_cut(&self, cut: bool) {
        self.cut.store(cut, Ordering::SeqCst);
    }
    fn check(&self) -> Result<(), StoreError> {
        if self.cut.load(Ordering::SeqCst) {
            Err(StoreError::Unavailable("cut off".into()))
        } else {
            Ok(())
        }
    }
}

impl UserStore for Reach {
    fn fetch(
        &self,
        user_id: &sessiond_actors::UserId,
    ) -> BoxFuture<'static, Result<Fetched, StoreError>> {
        match self.check() {
            Ok(()) => self.store.fetch(user_id),
            Err(e) => Box::pin(async move { Err(e) }),
        }
    }
}

impl LeaseStore for Reach {
    fn changes_since(&self, seen: u64, limit: u64) -> BoxFuture<'_, Result<Changes, StoreError>> {
        Box::pin(async move {
            self.check()?;
            self.store.changes_since(seen, limit).await
        })
    }
    fn grant<'a>(
        &'a self,
        instance: i64,
        node: &'a str,
        head: u64,
        duration: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            self.check()?;
            self.store.grant(instance, node, head, duration).await
        })
    }
    fn unconfirmed(
        &self,
        me: i64,
        below: Option<u64>,
    ) -> BoxFuture<'_, Result<(u64, Vec<Holder>), StoreError>> {
        Box::pin(async move {
            self.check()?;
            self.store.unconfirmed(me, below).await
        })
    }
    fn release(&self, instance: i64) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            self.check()?;
            self.store.release(instance).await
        })
    }
    fn prune(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            self.check()?;
            self.store.prune().await
        })
    }
}

#[derive(Default, Clone)]
struct Seen(Arc<SeenInner>);

#[derive(Default)]
struct SeenInner {
    misses: Mutex<Vec<MissReason>>,
    lost: Mutex<u32>,
    valid: Mutex<Option<bool>>,
}

impl Observer for Seen {
    fn miss(&self, reason: MissReason) {
        self.0.misses.lock().unwrap().push(reason);
    }
    fn lease_lost(&self) {
        *self.0.lost.lock().unwrap() += 1;
    }
    fn lease_valid(&self, valid: bool) {
        *self.0.valid.lock().unwrap() = Some(valid);
    }
}

struct Node {
    router: Router,
    reach: Reach,
    seen: Seen,
    keeper: Option<tokio::task::JoinHandle<()>>,
}

impl Node {
    async fn start(name: &str, store: &MemoryStore) -> Node {
        let reach = Reach::new(store);
        let seen = Seen::default();
        let router = Router::start(
            config(),
            Arc::new(reach.clone()),
            Arc::new(seen.clone()),
            name,
        )
        .await
        .expect("router starts");
        let keeper = LeaseKeeper::new(router.clone(), Arc::new(reach.clone())).expect("a lease");
        let keeper = Some(tokio::spawn(keeper.run()));
        Node {
            router,
            reach,
            seen,
            keeper,
        }
    }

    async fn role(&self, id: i64) -> Result<(String, bool, i64), String> {
        let served = self
            .router
            .resolve(id, Lookup::Resolve)
            .await
            .map_err(|e| e.to_string())?;
        Ok(match served.fetched {
            Fetched::Found(s) => (s.user.role.to_string(), served.hit, s.version),
            Fetched::Missing => ("<missing>".into(), served.hit, 0),
        })
    }

    fn last_miss(&self) -> Option<MissReason> {
        self.seen.0.misses.lock().unwrap().last().copied()
    }

    /// A write through this node: the store, then the confirmed
    /// invalidation. Returns how long the acknowledgement took.
    async fn write_role(&self, store: &MemoryStore, id: i64, role: &str) -> Duration {
        let started = Instant::now();
        let version = store.put(id, role);
        self.router
            .invalidate_confirmed(id, Some(version), InvalidationSource::Api, &self.reach)
            .await
            .expect("confirmed");
        started.elapsed()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(k) = self.keeper.take() {
            k.abort();
        }
    }
}

async fn settle() {
    // Two renewal periods: every keeper has renewed at least once.
    tokio::time::sleep(LEASE / 2).await;
}

#[tokio::test(start_paused = true)]
async fn no_lease_no_cache_then_hits_once_granted() {
    let store = MemoryStore::new();
    store.put(1, "user");
    let reach = Reach::new(&store);
    let router = Router::start(
        config(),
        Arc::new(reach.clone()),
        Arc::new(Seen::default()),
        "a",
    )
    .await
    .unwrap();
    // Not yet granted: every lookup reads the store.
    for _ in 0..3 {
        router.resolve(1, Lookup::Resolve).await.unwrap();
    }
    assert_eq!(store.queries(), 3);
    assert!(!router.serves_from_cache());

    let mut keeper = LeaseKeeper::new(router.clone(), Arc::new(reach)).unwrap();
    assert!(keeper.renew().await.unwrap());
    assert!(router.serves_from_cache());
    router.resolve(1, Lookup::Resolve).await.unwrap();
    let hit = router.resolve(1, Lookup::Resolve).await.unwrap();
    assert!(hit.hit);
    assert_eq!(store.queries(), 4);
}

#[tokio::test(start_paused = true)]
async fn a_change_missed_by_every_message_is_applied_from_the_log() {
    let store = MemoryStore::new();
    store.put(1, "user");
    let b = Node::start("b", &store).await;
    settle().await;
    assert_eq!(b.role(1).await.unwrap().0, "user");
    assert!(b.role(1).await.unwrap().1, "cached");

    // A write nobody tells b about (no link, no notification).
    store.put(1, "admin");
    settle().await;
    let (role, hit, _) = b.role(1).await.unwrap();
    assert_eq!(role, "admin", "the renewal applied the change log");
    assert!(!hit);
    assert_eq!(b.last_miss(), Some(MissReason::Invalidated));
}

#[tokio::test(start_paused = true)]
async fn a_cut_off_node_stops_serving_its_cache_within_the_lease() {
    let store = MemoryStore::new();
    store.put(1, "user");
    let a = Node::start("a", &store).await;
    let b = Node::start("b", &store).await;
    settle().await;
    assert!(b.role(1).await.unwrap().1 || b.role(1).await.unwrap().1);

    b.reach.set_cut(true);
    let cut_at = Instant::now();
    // The write through a: b holds a lease and cannot confirm, so a waits
    // for b's lease to end, and no longer.
    let took = a.write_role(&store, 1, "admin").await;
    assert!(took <= LEASE + Duration::from_millis(100), "took {took:?}");
    assert!(took >= LEASE / 2, "it did wait for b's lease: {took:?}");

    // From the acknowledgement on, b does not answer the old role.
    assert!(!b.router.serves_from_cache());
    assert!(cut_at.elapsed() <= LEASE);
    match b.role(1).await {
        Ok((role, _, _)) => assert_eq!(role, "admin"),
        Err(e) => assert!(e.contains("unavailable") || e.contains("cut off"), "{e}"),
    }
    assert_eq!(b.last_miss(), Some(MissReason::Unleased));
    assert_eq!(
        *b.seen.0.lost.lock().unwrap(),
        1,
        "the lapse is reported once"
    );
    assert_eq!(*b.seen.0.valid.lock().unwrap(), Some(false));

    // Healed: b renews, flushes what it held, and serves the new record.
    b.reach.set_cut(false);
    settle().await;
    assert!(b.router.serves_from_cache());
    let (role, hit, _) = b.role(1).await.unwrap();
    assert_eq!(role, "admin");
    assert!(!hit, "the record held before the lapse was flushed");
    assert_eq!(*b.seen.0.valid.lock().unwrap(), Some(true));
}

#[tokio::test(start_paused = true)]
async fn a_healthy_holder_confirms_by_renewing_well_before_its_lease_ends() {
    let store = MemoryStore::new();
    store.put(1, "user");
    let a = Node::start("a", &store).await;
    let b = Node::start("b", &store).await;
    settle().await;
    b.role(1).await.unwrap();
    // No link between a and b: b confirms through its next renewal.
    let took = a.write_role(&store, 1, "admin").await;
    assert!(
        took <= LEASE / 4 + Duration::from_millis(50),
        "took {took:?}"
    );
    assert_eq!(b.role(1).await.unwrap().0, "admin");
}

#[tokio::test(start_paused = true)]
async fn a_write_without_other_holders_does_not_wait() {
    let store = MemoryStore::new();
    store.put(1, "user");
    let a = Node::start("a", &store).await;
    settle().await;
    let took = a.write_role(&store, 1, "admin").await;
    assert_eq!(took, Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn a_writer_that_cannot_reach_the_store_cannot_confirm() {
    let store = MemoryStore::new();
    store.put(1, "user");
    let a = Node::start("a", &store).await;
    settle().await;
    a.reach.set_cut(true);
    let r = a
        .router
        .invalidate_confirmed(1, Some(2), InvalidationSource::Api, &a.reach)
        .await;
    assert!(r.is_err());
}

#[tokio::test(start_paused = true)]
async fn a_flush_drops_every_record_and_refuses_fetches_in_flight() {
    let store = MemoryStore::new();
    store.put(1, "user");
    store.put(2, "user");
    let a = Node::start("a", &store).await;
    settle().await;
    a.role(1).await.unwrap();
    assert!(a.role(1).await.unwrap().1);

    // A fetch of user 2 in flight across a flush is not published: the
    // actor reads again.
    store.set_latency(Duration::from_millis(100));
    let before = store.queries();
    let r = a.router.clone();
    let lookup = tokio::spawn(async move { r.resolve(2, Lookup::Resolve).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    a.router.flush(sessiond_actors::FlushReason::Lease);
    lookup.await.unwrap().unwrap();
    assert_eq!(
        store.queries(),
        before + 2,
        "the straddling fetch was refused"
    );
    store.set_latency(Duration::ZERO);
    let (_, hit, _) = a.role(2).await.unwrap();
    assert!(hit, "the fetch after the flush was cached");
    let (_, hit, _) = a.role(1).await.unwrap();
    assert!(!hit, "records from before the flush are gone");
    assert_eq!(store.queries(), before + 3);
}

#[tokio::test(start_paused = true)]
async fn a_paused_holder_makes_writers_wait_at_most_one_lease() {
    let store = MemoryStore::new();
    store.put(1, "user");
    let a = Node::start("a", &store).await;
    let mut b = Node::start("b", &store).await;
    settle().await;
    b.role(1).await.unwrap();
    // b's keeper stops (as if the process were paused); its lease runs on.
    b.keeper.take().unwrap().abort();
    let took = a.write_role(&store, 1, "admin").await;
    assert!(took <= LEASE + Duration::from_millis(100), "took {took:?}");
    // b "resumes" after the acknowledgement: its lease is over, so it
    // cannot answer the old role from its cache.
    assert!(!b.router.serves_from_cache());
    assert_eq!(b.role(1).await.unwrap().0, "admin");
}
