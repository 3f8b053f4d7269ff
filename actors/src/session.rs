//! `SessionActor`: the one owner of one user's cached record.
//!
//! The actor is the only writer of its record. It publishes each accepted
//! fetch to its cell (`SnapshotCell`) so lookups that find a fresh record
//! never queue behind its mailbox; everything else (a miss, expiry, a
//! forced refresh) goes through the mailbox, in order. An invalidation
//! goes to the cell alone: it takes the record away and fences the fetch
//! in flight, without a message.
//!
//! Fetches run in a task of their own, so the actor keeps taking messages
//! while the store answers: concurrent misses wait on the one fetch (single
//! flight). An invalidation that arrives meanwhile raises the cell's fence
//! (or generation), and the cell refuses to publish the fetch's answer if it
//! is older (version fencing): the actor then reads again, backing off while
//! the store keeps answering too old a version, until each caller's deadline.
//! A refused answer is never handed to anyone: it may predate a write that
//! was acknowledged before the caller even asked.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::time::Instant;

use crate::id::UserId;
use crate::lookup::{ResolveError, Served};
use crate::message::{Reply, SessionMsg};
use crate::observer::{MissReason, Observer};
use crate::record::Fetched;
use crate::registry::Slot;
use crate::store::{StoreError, UserStore};

/// The pause before the first re-read of a refused fetch, doubled for each
/// further refusal in a row up to [`MAX_RETRY_DELAY`]. The first re-read is
/// immediate: the write it raced has committed by the time its invalidation
/// arrives, so one more read normally sees it.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(10);

/// A store that keeps answering an old version (a lagging replica, a version
/// lowered by hand) is read at most this often per user.
const MAX_RETRY_DELAY: Duration = Duration::from_millis(250);

/// How long to wait before reading again after `refusals` refused fetches
/// in a row.
fn retry_delay(refusals: u32) -> Duration {
    match refusals {
        0 | 1 => Duration::ZERO,
        n => FIRST_RETRY_DELAY
            .saturating_mul(1 << (n - 2).min(16))
            .min(MAX_RETRY_DELAY),
    }
}

/// The fetched record with its id sharing the session's (the registry
/// key's) text, when it is the same id: a long text id is then kept once
/// per cached user, not once in the key and again in the record.
fn share_id(mut fetched: Fetched, id: &UserId) -> Fetched {
    if id.is_shared() {
        if let Fetched::Found(state) = &mut fetched {
            if let Some(s) = Arc::get_mut(state) {
                if s.user.id == *id {
                    s.user.id = id.clone();
                }
            }
        }
    }
    fetched
}

/// The behaviour; all state is in [`SessionState`].
pub(crate) struct SessionActor;

/// What the supervisor hands a new session actor.
pub(crate) struct SessionArgs {
    pub(crate) user_id: UserId,
    pub(crate) store: Arc<dyn UserStore>,
    pub(crate) observer: Arc<dyn Observer>,
    /// The user's slot. Its cell may already hold a record (a hibernated
    /// session waking up), which the actor then serves without a store read.
    pub(crate) slot: Arc<Slot>,
    pub(crate) ttl: Duration,
    /// How long a caller waits at most (`CacheConfig::call_timeout`): the
    /// actor reads again after refused fetches until then.
    pub(crate) call_timeout: Duration,
    /// To stamp the cell with the actor's activity.
    pub(crate) epoch: Instant,
    /// The registry's flush count: a record fetched before a flush is
    /// neither published nor served.
    pub(crate) flushes: Arc<AtomicU64>,
}

/// A caller waiting for the fetch in flight.
struct Waiter {
    reply: Reply,
    /// When the caller gives up: past it, the actor answers `Timeout`
    /// rather than keep reading for nobody.
    deadline: Instant,
}

pub(crate) struct SessionState {
    user_id: UserId,
    store: Arc<dyn UserStore>,
    observer: Arc<dyn Observer>,
    /// The record lives in the cell, not here: the cell is what the hot
    /// path reads and what invalidations clear, so there is no second copy
    /// to go stale. Its `fetched_at` is what the TTL counts from (the
    /// moment the data was true, not the moment someone asked) and its
    /// version is what invalidations are compared with.
    slot: Arc<Slot>,
    ttl: Duration,
    call_timeout: Duration,
    epoch: Instant,
    flushes: Arc<AtomicU64>,
    /// The cell generation the fetch in flight started under.
    fetch_generation: u64,
    /// Numbers each fetch and each back-off, so that the answer of a
    /// superseded fetch or a superseded timer is recognised and ignored.
    flight: u64,
    /// A fetch is in flight or a re-read is scheduled: callers wait for it
    /// (single flight).
    busy: bool,
    /// Fetches refused in a row, for the back-off.
    refusals: u32,
    waiters: Vec<Waiter>,
    /// The registry's flush count when the fetch in flight started.
    fetch_flush: u64,
    stop_when_idle: bool,
}

impl SessionState {
    fn start_fetch(&mut self, myself: &ActorRef<SessionMsg>) {
        self.fetch_generation = self.slot.cell.generation();
        self.flight += 1;
        self.busy = true;
        self.fetch_flush = self.flushes.load(Ordering::Acquire);
        self.observer.store_query();
        // Building the future runs the store's synchronous part inside this
        // actor: a panic there fails this actor (and only its callers).
        let fetch = self.store.fetch(&self.user_id);
        let me = myself.clone();
        let flight = self.flight;
        tokio::spawn(async move {
            let result = catching_panics(fetch).await;
            // The actor may have stopped meanwhile; nobody is left to tell.
            let _ = me.cast(SessionMsg::FetchDone { flight, result });
        });
    }

    /// After a refused fetch: read again, after a back-off, while someone
    /// still waits; the callers keep waiting meanwhile.
    fn retry(&mut self, myself: &ActorRef<SessionMsg>) {
        let now = Instant::now();
        if !self.anyone_still_waits(now) {
            return;
        }
        self.refusals += 1;
        let delay = retry_delay(self.refusals);
        if delay.is_zero() {
            self.start_fetch(myself);
            return;
        }
        // Wake no later than the first caller's deadline, to answer it then.
        let earliest = self.waiters.iter().map(|w| w.deadline).min();
        let at = earliest.map_or(now + delay, |d| d.min(now + delay));
        self.flight += 1;
        self.busy = true;
        let flight = self.flight;
        let me = myself.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            let _ = me.cast(SessionMsg::Retry { flight });
        });
    }

    /// Answers `Timeout` to the callers whose deadline has passed (they
    /// have given up, or are about to, and nothing fresh is there to give)
    /// and says whether any other still waits; if none does, stops reading.
    fn anyone_still_waits(&mut self, now: Instant) -> bool {
        let (late, waiting): (Vec<Waiter>, Vec<Waiter>) =
            self.waiters.drain(..).partition(|w| w.deadline <= now);
        self.waiters = waiting;
        for w in late {
            let _ = w.reply.send(Err(ResolveError::Timeout));
        }
        if self.waiters.is_empty() {
            self.busy = false;
            self.refusals = 0;
        }
        !self.waiters.is_empty()
    }

    fn wait(&mut self, myself: &ActorRef<SessionMsg>, reply: Reply, reason: MissReason) {
        self.observer.miss(reason);
        self.push_waiter(reply);
        if !self.busy {
            self.start_fetch(myself);
        }
    }

    fn push_waiter(&mut self, reply: Reply) {
        self.waiters.push(Waiter {
            reply,
            deadline: Instant::now() + self.call_timeout,
        });
    }

    fn stop_if_idle(&mut self, myself: &ActorRef<SessionMsg>) {
        if self.stop_when_idle && self.waiters.is_empty() && !self.busy {
            self.slot.cell.set_stopping(true);
            myself.stop(None);
        }
    }

    fn miss_reason(&self) -> MissReason {
        let flush = self.flushes.load(Ordering::Acquire);
        if self.slot.cell.has_record(flush) {
            MissReason::Expired
        } else if self.slot.cell.was_invalidated(flush) {
            MissReason::Invalidated
        } else {
            MissReason::Cold
        }
    }

    fn answer_waiters(&mut self, result: Result<Served, ResolveError>) {
        for w in self.waiters.drain(..) {
            // A caller that gave up (timeout) has dropped its port; fine.
            let _ = w.reply.send(result.clone());
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
            call_timeout: args.call_timeout,
            epoch: args.epoch,
            flushes: args.flushes,
            fetch_generation: 0,
            flight: 0,
            busy: false,
            refusals: 0,
            fetch_flush: 0,
            waiters: Vec::new(),
            stop_when_idle: false,
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
                        near: false,
                        owner_lease: None,
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
                state.push_waiter(reply);
                state.start_fetch(&myself);
            }
            SessionMsg::Stop => {
                state.stop_when_idle = true;
                state.stop_if_idle(&myself);
            }
            SessionMsg::Retry { flight } => {
                if flight != state.flight || !state.busy {
                    return Ok(());
                }
                if state.anyone_still_waits(Instant::now()) {
                    state.start_fetch(&myself);
                }
                state.stop_if_idle(&myself);
            }
            SessionMsg::FetchDone { flight, result } => {
                if flight != state.flight || !state.busy {
                    return Ok(());
                }
                state.busy = false;
                match result {
                    Err(e) => {
                        state.refusals = 0;
                        state.observer.store_error();
                        state.answer_waiters(Err(ResolveError::Store(e)));
                    }
                    Ok(fetched) => {
                        let fetched = share_id(fetched, &state.user_id);
                        let keep = !state.ttl.is_zero();
                        let started = (state.fetch_generation, state.fetch_flush);
                        let flush_now = state.flushes.load(Ordering::Acquire);
                        match state.slot.cell.publish(
                            &fetched,
                            started,
                            flush_now,
                            Instant::now(),
                            keep,
                        ) {
                            Ok(()) => {
                                state.refusals = 0;
                                state.answer_waiters(Ok(Served {
                                    fetched,
                                    hit: false,
                                    age: Duration::ZERO,
                                    node: None,
                                    near: false,
                                    owner_lease: None,
                                }));
                            }
                            // Raced an invalidation, or the store is behind
                            // one: this answer may predate an acknowledged
                            // write, so nobody gets it. Read again.
                            Err(_) => state.retry(&myself),
                        }
                    }
                }
                state.stop_if_idle(&myself);
            }
        }
        Ok(())
    }
}
