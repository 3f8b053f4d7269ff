//! The per-node supervisor: attaches session actors to sessions on demand,
//! links them, detaches them when they stop, hibernates actors that only
//! cache hits have needed lately (the record stays), and passivates
//! sessions (record and actor gone): idle ones, the least recently used at
//! the cap, and those another node owns now.
//!
//! Nothing is restarted: a session actor holds no state of its own (the
//! record is in its cell), so the next miss for that user simply attaches a
//! fresh one. A panicking session actor is detached like any other that
//! stopped; its callers get an error, nobody else notices.

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::time::Instant;

use crate::config::CacheConfig;
use crate::id::UserId;
use crate::message::SessionMsg;
use crate::observer::Observer;
use crate::registry::{Registry, Slot};
use crate::session::{SessionActor, SessionArgs};
use crate::store::UserStore;

/// Messages of the supervisor.
pub(crate) enum SupervisorMsg {
    /// The user's session with a live actor, attached if there is none.
    Acquire {
        user_id: UserId,
        reply: RpcReplyPort<Result<Arc<Slot>, String>>,
    },
    /// Hibernate quiet actors, passivate idle sessions.
    Sweep,
    /// Passivate these users' sessions (they moved to another node).
    Drop(Vec<UserId>),
    /// Make room for the near copies the router adds (it inserts them
    /// itself, with no actor): passivate the least recently used at the cap.
    MakeRoom,
}

#[cfg(feature = "cluster")]
impl ractor::Message for SupervisorMsg {}

/// The behaviour; all state is in [`SupervisorState`].
pub(crate) struct Supervisor;

/// What the router hands its supervisor.
pub(crate) struct SupervisorArgs {
    pub(crate) registry: Arc<Registry>,
    pub(crate) store: Arc<dyn UserStore>,
    pub(crate) observer: Arc<dyn Observer>,
    pub(crate) config: CacheConfig,
}

pub(crate) struct SupervisorState {
    registry: Arc<Registry>,
    store: Arc<dyn UserStore>,
    observer: Arc<dyn Observer>,
    config: CacheConfig,
    /// Which user each linked child serves, to detach it when it stops.
    children: HashMap<ActorId, UserId>,
}

impl SupervisorState {
    fn report(&self) {
        self.registry.set_live_actors(self.children.len());
        self.observer.session_actors(self.children.len());
    }

    /// Passivates `user_id`'s session: its slot goes, its record is
    /// dropped, its actor (if any) stops once no caller waits.
    fn passivate(&mut self, user_id: &UserId) {
        if let Some(slot) = self.registry.remove(user_id) {
            slot.cell.invalidate(None);
            if let Some(actor) = slot.actor() {
                let _ = actor.cast(SessionMsg::Stop);
            }
        }
    }

    /// Makes room for one more session: passivates the least recently used,
    /// a batch at a time so that a full node does not scan all its
    /// sessions on every new one.
    fn make_room(&mut self) {
        let known = self.registry.len();
        if known < self.config.max_sessions {
            return;
        }
        let mut times: Vec<(UserId, u64)> = self
            .registry
            .all()
            .into_iter()
            .map(|(id, s)| (id, s.cell.last_access_ms()))
            .collect();
        let excess = known + 1 - self.config.max_sessions;
        let batch = excess.max(self.config.max_sessions / 64).min(times.len());
        if batch == 0 {
            return;
        }
        if batch < times.len() {
            times.select_nth_unstable_by_key(batch - 1, |(_, t)| *t);
        }
        for (user_id, _) in times.into_iter().take(batch) {
            self.passivate(&user_id);
        }
        self.observer.passivated(batch, true);
    }

    /// A child stopped: detach it from its session (which stays, with its
    /// record, hibernated).
    fn detach(&mut self, actor: ActorId) {
        if let Some(user_id) = self.children.remove(&actor) {
            if let Some(slot) = self.registry.get(&user_id) {
                slot.detach(actor);
            }
        }
        self.report();
    }
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: SupervisorArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        myself.send_interval(args.config.sweep_period(), || SupervisorMsg::Sweep);
        Ok(SupervisorState {
            registry: args.registry,
            store: args.store,
            observer: args.observer,
            config: args.config,
            children: HashMap::new(),
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        for slot in state.registry.drain() {
            slot.cell.invalidate(None);
            if let Some(actor) = slot.actor() {
                actor.stop(None);
            }
        }
        state.children.clear();
        state.report();
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SupervisorMsg::Acquire { user_id, reply } => {
                let now = Instant::now();
                if state.registry.get(&user_id).is_none() {
                    state.make_room();
                }
                let slot = state.registry.get_or_insert(&user_id, now);
                if slot.live_actor().is_some() {
                    let _ = reply.send(Ok(slot));
                    return Ok(());
                }
                if let Some(dead) = slot.actor() {
                    state.detach(dead.get_id());
                }
                let args = SessionArgs {
                    user_id: user_id.clone(),
                    store: Arc::clone(&state.store),
                    observer: Arc::clone(&state.observer),
                    slot: Arc::clone(&slot),
                    ttl: state.config.ttl,
                    call_timeout: state.config.call_timeout,
                    epoch: state.registry.epoch(),
                    flushes: state.registry.flush_counter(),
                };
                match Actor::spawn_linked(None, SessionActor, args, myself.get_cell()).await {
                    Ok((actor, _handle)) => {
                        state.children.insert(actor.get_id(), user_id);
                        slot.cell.set_stopping(false);
                        slot.set_actor(Some(actor));
                        state.report();
                        let _ = reply.send(Ok(slot));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e.to_string()));
                    }
                }
            }
            SupervisorMsg::MakeRoom => state.make_room(),
            SupervisorMsg::Drop(users) => {
                for user_id in users {
                    state.passivate(&user_id);
                }
            }
            SupervisorMsg::Sweep => {
                let now = Instant::now();
                let now_ms = state.registry.millis(now);
                let idle_ms = state.config.idle_timeout.as_millis() as u64;
                let quiet_ms = state.config.hibernate_delay().as_millis() as u64;
                let ttl = state.config.ttl;
                let flush = state.registry.flushes();
                let (mut idle, mut quiet) = (Vec::new(), Vec::new());
                state.registry.for_each(|user_id, slot| {
                    let cell = &slot.cell;
                    if now_ms.saturating_sub(cell.last_access_ms()) >= idle_ms {
                        idle.push(user_id.clone());
                    } else if slot.has_actor() {
                        if now_ms.saturating_sub(cell.last_actor_ms()) >= quiet_ms {
                            quiet.extend(slot.actor());
                        }
                    } else if cell.fresh(now, ttl, flush).is_none() {
                        // Hibernated with nothing left to serve.
                        idle.push(user_id.clone());
                    }
                });
                let (passivated, hibernated) = (idle.len(), quiet.len());
                for user_id in idle {
                    state.passivate(&user_id);
                }
                for actor in quiet {
                    let _ = actor.cast(SessionMsg::Stop);
                }
                if passivated > 0 {
                    state.observer.passivated(passivated, false);
                }
                if hibernated > 0 {
                    state.observer.hibernated(hibernated);
                }
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorTerminated(cell, _, _) => state.detach(cell.get_id()),
            SupervisionEvent::ActorFailed(cell, err) => {
                tracing::warn!(actor = %cell.get_id(), error = %err, "session actor failed");
                state.detach(cell.get_id());
            }
            _ => {}
        }
        Ok(())
    }
}
