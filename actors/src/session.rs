//! `SessionActor`: the one owner of one user's cached record.
//!
//! The actor is the only writer of its record. It publishes each accepted
//! fetch to its [`SnapshotCell`] so lookups that find a fresh record never
//! queue behind its mailbox; everything else (a miss, expiry, a forced
//! refresh, an invalidation) goes through the mailbox, in order.
//!
//! Fetches run in a task of their own, so the actor keeps taking messages
//! while the store answers: concurrent misses wait on the one fetch (single
//! flight). An invalidation that arrives meanwhile raises the cell's fence
//! (or generation), and the cell refuses to publish the fetch's answer if it
//! is older (version fencing): the actor then reads again.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::time::Instant;

use crate::observer::{MissReason, Observer};
use crate::record::Fetched;
use crate::registry::Slot;
use crate::store::{StoreError, UserStore};

/// How many times a fetch that came back older than the fence is retried
/// before its answer is handed to the waiting callers without being cached.
const FENCE_RETRIES: u32 = 3;

/// A lookup's answer.
#[derive(Clone, Debug)]
pub struct Served {
    pub fetched: Fetched,
    /// Answered from the cache without a store read.
    pub hit: bool,
    /// How old the record was when served.
    pub age: Duration,
    /// The node that answered, when it was not this one.
    pub node: Option<Arc<str>>,
}

/// Why a lookup failed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("the session actor failed while serving this request")]
    ActorFailed,
    #[error("the session actor did not answer in time")]
    Timeout,
    #[error("the session supervisor is not running")]
    Stopped,
}

type Reply = RpcReplyPort<Result<Served, ResolveError>>;

/// Messages of a session actor. Local only: session actors are never
/// advertised to other nodes.
pub enum SessionMsg {
    /// Answer the current record, fetching it if nothing fresh is cached.
    Resolve(Reply),
    /// Like `Resolve`; with `force`, read the store whatever is cached.
    Refresh { force: bool, reply: Reply },
    /// Stop once no caller is waiting (idle passivation, eviction at the cap).
    Passivate,
    /// A fetch task finished. Sent by the actor's own fetch task.
    FetchDone {
        generation: u64,
        result: Result<Fetched, StoreError>,
    },
}

#[cfg(feature = "cluster")]
impl ractor::Message for SessionMsg {}

/// The behaviour; all state is in [`SessionState`].
pub struct SessionActor;

/// What the supervisor hands a new session actor.
pub struct SessionArgs {
    pub user_id: i64,
    pub store: Arc<dyn UserStore>,
    pub observer: Arc<dyn Observer>,
    /// The user's slot. Its cell may already hold a record (a hibernated
    /// session waking up), which the actor then serves without a store read.
    pub slot: Arc<Slot>,
    pub ttl: Duration,
    /// To stamp the cell with the actor's activity.
    pub epoch: Instant,
    /// The registry's flush count: a record fetched before a flush is
    /// neither published nor served.
    pub flushes: Arc<AtomicU64>,
}

pub struct SessionState {
    user_id: i64,
    store: Arc<dyn UserStore>,
    observer: Arc<dyn Observer>,
    /// The record lives in the cell, not here: the cell is what the hot
    /// path reads and what invalidations clear, so there is no second copy
    /// to go stale. Its `fetched_at` is what the TTL counts from (the
    /// moment the data was true, not the moment someone asked) and its
    /// version is what invalidations are compared with.
    slot: Arc<Slot>,
    ttl: Duration,
    epoch: Instant,
    flushes: Arc<AtomicU64>,
    /// The cell generation the fetch in flight started under.
    fetch_generation: u64,
    /// The registry's flush count when the fetch in flight started.
    fetch_flush: u64,
    in_flight: bool,
    fence_retries: u32,
    waiters: Vec<Reply>,
    passivate_when_idle: bool,
}

impl SessionState {
    fn start_fetch(&mut self, myself: &ActorRef<SessionMsg>) {
        self.fetch_generation = self.slot.cell.generation();
        self.fetch_flush = self.flushes.load(Ordering::Acquire);
        self.in_flight = true;
        self.observer.store_query();
        // Building the future runs the store's synchronous part inside this
        // actor: a panic there fails this actor (and only its callers).
        let fetch = self.store.fetch(self.user_id);
        let me = myself.clone();
        let generation = self.fetch_generation;
        tokio::spawn(async move {
            let result = catching_panics(fetch).await;
            // The actor may have stopped meanwhile; nobody is left to tell.
            let _ = me.cast(SessionMsg::FetchDone { generation, result });
        });
    }

    fn wait(&mut self, myself: &ActorRef<SessionMsg>, reply: Reply, reason: MissReason) {
        self.observer.miss(reason);
        self.waiters.push(reply);
        if !self.in_flight {
            self.start_fetch(myself);
        }
    }

    fn miss_reason(&self) -> MissReason {
        if self.slot.cell.has_record() {
            MissReason::Expired
        } else if self.slot.cell.was_invalidated() {
            MissReason::Invalidated
        } else {
            MissReason::Cold
        }
    }

    fn answer_waiters(&mut self, result: Result<Served, ResolveError>) {
        for w in self.waiters.drain(..) {
            // A caller that gave up (timeout) has dropped its port; fine.
            let _ = w.send(result.clone());
        }
    }
}

/// Runs a store's fetch, turning a panic inside it into an error for its
/// callers: the same task, no second one to catch it.
async fn catching_panics<F>(fetch: F) -> Result<Fetched, StoreError>
where
    F: Future<Output = Result<Fetched, StoreError>>,
{
    let mut fetch = std::pin::pin!(fetch);
    std::future::poll_fn(move |cx| {
        match std::panic::catch_unwind(AssertUnwindSafe(|| fetch.as_mut().poll(cx))) {
            Ok(poll) => poll,
            Err(_) => std::task::Poll::Ready(Err(StoreError::Panicked)),
        }
    })
    .await
}

impl Actor for SessionActor {
    type Msg = SessionMsg;
    type State = SessionState;
    type Arguments = SessionArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: SessionArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(SessionState {
            user_id: args.user_id,
            store: args.store,
            observer: args.observer,
            slot: args.slot,
            ttl: args.ttl,
            epoch: args.epoch,
            flushes: args.flushes,
            fetch_generation: 0,
            fetch_flush: 0,
            in_flight: false,
            fence_retries: 0,
            waiters: Vec::new(),
            passivate_when_idle: false,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let now = Instant::now();
        state
            .slot
            .cell
            .actor_touch(now.saturating_duration_since(state.epoch).as_millis() as u64);
        match message {
            SessionMsg::Resolve(reply)
            | SessionMsg::Refresh {
                force: false,
                reply,
            } => {
                let flush = state.flushes.load(Ordering::Acquire);
                if let Some(c) = state.slot.cell.fresh(now, state.ttl, flush) {
                    let age = now.saturating_duration_since(c.fetched_at);
                    state.observer.hit(age);
                    let _ = reply.send(Ok(Served {
                        fetched: c.fetched,
                        hit: true,
                        age,
                        node: None,
                    }));
                } else {
                    let reason = state.miss_reason();
                    state.wait(&myself, reply, reason);
                }
            }
            SessionMsg::Refresh { force: true, reply } => {
                // A fetch already in flight may have started before whatever
                // made the caller force a refresh: supersede it.
                state.slot.cell.supersede();
                state.observer.miss(MissReason::Forced);
                state.waiters.push(reply);
                state.start_fetch(&myself);
            }
            SessionMsg::Passivate => {
                if state.waiters.is_empty() && !state.in_flight {
                    state.slot.cell.set_stopping(true);
                    myself.stop(None);
                } else {
                    state.passivate_when_idle = true;
                }
            }
            SessionMsg::FetchDone { generation, result } => {
                if generation != state.fetch_generation || !state.in_flight {
                    return Ok(());
                }
                state.in_flight = false;
                match result {
                    Err(e) => {
                        state.observer.store_error();
                        state.answer_waiters(Err(ResolveError::Store(e)));
                    }
                    Ok(fetched) => {
                        let keep = !state.ttl.is_zero();
                        let started = (generation, state.fetch_flush);
                        let flush_now = state.flushes.load(Ordering::Acquire);
                        match state.slot.cell.publish(
                            &fetched,
                            started,
                            flush_now,
                            Instant::now(),
                            keep,
                        ) {
                            Ok(()) => state.fence_retries = 0,
                            Err(_) if state.fence_retries < FENCE_RETRIES => {
                                // Raced an invalidation: read again, the
                                // callers keep waiting.
                                state.fence_retries += 1;
                                state.start_fetch(&myself);
                                return Ok(());
                            }
                            // Still refused: answer, but cache nothing.
                            Err(_) => state.fence_retries = 0,
                        }
                        state.answer_waiters(Ok(Served {
                            fetched,
                            hit: false,
                            age: Duration::ZERO,
                            node: None,
                        }));
                    }
                }
                if state.passivate_when_idle && state.waiters.is_empty() {
                    state.slot.cell.set_stopping(true);
                    myself.stop(None);
                }
            }
        }
        Ok(())
    }
}
