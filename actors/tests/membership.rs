//! The membership policy as the service and the simulation both run it:
//! `Router::apply_view` (who came and went, users no longer owned dropped),
//! `Router::flush` (the one way to drop a whole cache) and `PauseCheck`.
//! Both report to the observer, which is how the simulation's and the real
//! cluster's tests check that they go through this code.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sessiond_actors::memory::MemoryStore;
use sessiond_actors::{
    CacheConfig, FlushReason, Lookup, MissReason, Observer, PauseCheck, Router, ViewChange,
};

#[derive(Default)]
struct Seen {
    views: Mutex<Vec<ViewChange>>,
    flushes: Mutex<Vec<FlushReason>>,
    invalidated_misses: Mutex<u64>,
}

impl Observer for Seen {
    fn view_changed(&self, change: &ViewChange) {
        self.views.lock().expect("lock").push(change.clone());
    }
    fn flushed(&self, reason: FlushReason) {
        self.flushes.lock().expect("lock").push(reason);
    }
    fn miss(&self, reason: MissReason) {
        if reason == MissReason::Invalidated {
            *self.invalidated_misses.lock().expect("lock") += 1;
        }
    }
}

/// A node alone, whose cache holds users `1..=users`.
async fn warm_node(name: &str, users: i64) -> (Router, MemoryStore, Arc<Seen>) {
    let store = MemoryStore::new();
    for id in 1..=users {
        store.put(id, "user");
    }
    let seen = Arc::new(Seen::default());
    let router = Router::start(
        CacheConfig::default(),
        Arc::new(store.clone()),
        seen.clone(),
        name,
    )
    .await
    .expect("starts");
    for id in 1..=users {
        router.resolve(id, Lookup::Resolve).await.expect("resolves");
    }
    (router, store, seen)
}

fn names(v: &[Arc<str>]) -> Vec<&str> {
    v.iter().map(|n| &**n).collect()
}

#[tokio::test(start_paused = true)]
async fn a_view_says_who_came_and_went_and_drops_users_no_longer_owned() {
    let (n1, _store, seen) = warm_node("n1", 40).await;
    assert_eq!(n1.sessions(), 40);

    let change = n1.apply_view(&["n2", "n1", "n3"]);
    assert_eq!(names(&change.came), ["n2", "n3"]);
    assert!(change.went.is_empty());
    assert_eq!(names(change.must_flush()), ["n2", "n3"]);
    let owned = (1..=40).filter(|id| &*n1.owner_of(*id) == "n1").count();
    assert_eq!(change.moved, 40 - owned, "every user another node owns");
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(n1.sessions(), owned, "users no longer owned are dropped");

    // The same view again changes nothing and reports nothing.
    let same = n1.apply_view(&["n1", "n2", "n3"]);
    assert!(!same.changed());
    assert_eq!(same, ViewChange::default());

    let change = n1.apply_view(&["n1", "n3", "n4"]);
    assert_eq!(names(&change.came), ["n4"]);
    assert_eq!(names(&change.went), ["n2"]);
    // This node is always in its own view.
    let change = n1.apply_view::<&str>(&[]);
    assert_eq!(names(&change.went), ["n3", "n4"]);
    assert_eq!(names(&n1.members()), ["n1"]);

    let views = seen.views.lock().expect("lock").clone();
    assert_eq!(views.len(), 3, "one report per change, none for no change");
    assert!(
        seen.flushes.lock().expect("lock").is_empty(),
        "a view flushes nothing here"
    );
}

#[tokio::test(start_paused = true)]
async fn a_flush_makes_every_cached_record_be_read_again() {
    let (n1, store, seen) = warm_node("n1", 5).await;
    let before = store.queries();
    for id in 1..=5 {
        assert!(n1.resolve(id, Lookup::Resolve).await.expect("ok").hit);
    }
    assert_eq!(store.queries(), before);

    store.put(3, "admin");
    n1.flush(FlushReason::Rejoined);
    n1.flush(FlushReason::Rejoined);
    for id in 1..=5 {
        let s = n1.resolve(id, Lookup::Resolve).await.expect("ok");
        assert!(!s.hit, "user {id} served from the cache after a flush");
    }
    assert_eq!(
        store.queries(),
        before + 5,
        "one read each, a repeated flush included"
    );
    assert_eq!(*seen.invalidated_misses.lock().expect("lock"), 5);
    assert_eq!(
        *seen.flushes.lock().expect("lock"),
        [FlushReason::Rejoined, FlushReason::Rejoined]
    );
}

#[tokio::test(start_paused = true)]
async fn a_late_heartbeat_flushes_the_node() {
    let (n1, _store, seen) = warm_node("n1", 1).await;

    let period = Duration::from_millis(300);
    let mut check = PauseCheck::new(period);
    let mut now = tokio::time::Instant::now();
    assert!(
        !check.beat(now, &n1),
        "the first beat only starts the clock"
    );
    for _ in 0..5 {
        now += period;
        assert!(!check.beat(now, &n1));
    }
    // Exactly LATE_AFTER periods is still on time; one more is a pause.
    now += period * PauseCheck::LATE_AFTER;
    assert!(!check.beat(now, &n1));
    assert!(seen.flushes.lock().expect("lock").is_empty());
    now += period * PauseCheck::LATE_AFTER + Duration::from_millis(1);
    assert!(check.beat(now, &n1));
    assert_eq!(*seen.flushes.lock().expect("lock"), [FlushReason::Paused]);
    assert!(!n1.resolve(1, Lookup::Resolve).await.expect("ok").hit);
}
