//! The per-node supervisor: spawns session actors on demand, links them,
//! forgets them when they stop, passivates idle ones and holds the cap.
//!
//! Nothing is restarted: a session actor holds only cache, so the next lookup
//! for that user simply spawns a fresh one. A panicking session actor is
//! removed like any other that stopped; its callers get an error, nobody else
//! notices.

use std::collections::HashMap;
use std::sync::Arc;

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tokio::time::Instant;

use crate::observer::Observer;
use crate::registry::{Registry, Slot, SnapshotCell};
use crate::session::{SessionActor, SessionArgs, SessionMsg};
use crate::store::UserStore;
use crate::CacheConfig;

pub enum SupervisorMsg {
    /// The user's live session actor, spawned if there is none.
    Acquire {
        user_id: i64,
        reply: RpcReplyPort<Result<Arc<Slot>, String>>,
    },
    /// Passivate every session idle for longer than the idle timeout.
    Sweep,
    /// Passivate these users' sessions (they moved to another node).
    Drop(Vec<i64>),
}

#[cfg(feature = "cluster")]
impl ractor::Message for SupervisorMsg {}

pub struct Supervisor;

pub struct SupervisorArgs {
    pub registry: Arc<Registry>,
    pub store: Arc<dyn UserStore>,
    pub observer: Arc<dyn Observer>,
    pub config: CacheConfig,
}

pub struct SupervisorState {
    registry: Arc<Registry>,
    store: Arc<dyn UserStore>,
    observer: Arc<dyn Observer>,
    config: CacheConfig,
    /// Which user each linked child serves, to forget it when it stops.
    children: HashMap<ActorId, i64>,
}

impl SupervisorState {
    /// Unregisters `user_id` and asks its actor to stop.
    fn passivate(&mut self, user_id: i64) {
        if let Some(slot) = self.registry.get(user_id) {
            if let Some(slot) = self.registry.remove_if(user_id, slot.actor.get_id()) {
                slot.cell.clear_older_than(None);
                let _ = slot.actor.cast(SessionMsg::Passivate);
            }
        }
    }

    /// Makes room for one more actor: evicts the least recently used
    /// sessions, a batch at a time so that a full node does not scan all its
    /// sessions on every spawn.
    fn make_room(&mut self) {
        let live = self.registry.len();
        if live < self.config.max_sessions {
            return;
        }
        let mut times = self.registry.access_times();
        let excess = live + 1 - self.config.max_sessions;
        let batch = excess.max(self.config.max_sessions / 64).min(times.len());
        if batch == 0 {
            return;
        }
        if batch < times.len() {
            times.select_nth_unstable_by_key(batch - 1, |(_, t)| *t);
        }
        for (user_id, _) in times.into_iter().take(batch) {
            self.passivate(user_id);
        }
        self.observer.passivated(batch, true);
    }

    fn forget(&mut self, actor: ActorId) {
        if let Some(user_id) = self.children.remove(&actor) {
            if let Some(slot) = self.registry.remove_if(user_id, actor) {
                slot.cell.clear_older_than(None);
            }
        }
        self.observer.session_actors(self.registry.len());
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
        let period = (args.config.idle_timeout / 4).clamp(
            std::time::Duration::from_millis(10),
            std::time::Duration::from_secs(30),
        );
        myself.send_interval(period, || SupervisorMsg::Sweep);
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
            slot.cell.clear_older_than(None);
            slot.actor.stop(None);
        }
        state.observer.session_actors(0);
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
                if let Some(slot) = state.registry.get(user_id) {
                    if slot.is_alive() {
                        let _ = reply.send(Ok(slot));
                        return Ok(());
                    }
                    state.forget(slot.actor.get_id());
                }
                state.make_room();
                let now_ms = state.registry.millis(Instant::now());
                let cell = Arc::new(SnapshotCell::new(now_ms));
                let args = SessionArgs {
                    user_id,
                    store: Arc::clone(&state.store),
                    observer: Arc::clone(&state.observer),
                    cell: Arc::clone(&cell),
                    ttl: state.config.ttl,
                };
                match Actor::spawn_linked(None, SessionActor, args, myself.get_cell()).await {
                    Ok((actor, _handle)) => {
                        state.children.insert(actor.get_id(), user_id);
                        let slot = Arc::new(Slot { actor, cell });
                        state.registry.insert(user_id, Arc::clone(&slot));
                        state.observer.session_actors(state.registry.len());
                        let _ = reply.send(Ok(slot));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e.to_string()));
                    }
                }
            }
            SupervisorMsg::Drop(users) => {
                for user_id in users {
                    state.passivate(user_id);
                }
                state.observer.session_actors(state.registry.len());
            }
            SupervisorMsg::Sweep => {
                let now_ms = state.registry.millis(Instant::now());
                let idle_ms = state.config.idle_timeout.as_millis() as u64;
                let idle: Vec<i64> = state
                    .registry
                    .access_times()
                    .into_iter()
                    .filter(|(_, t)| now_ms.saturating_sub(*t) >= idle_ms)
                    .map(|(id, _)| id)
                    .collect();
                if !idle.is_empty() {
                    for user_id in &idle {
                        state.passivate(*user_id);
                    }
                    state.observer.passivated(idle.len(), false);
                    state.observer.session_actors(state.registry.len());
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
            SupervisionEvent::ActorTerminated(cell, _, _) => state.forget(cell.get_id()),
            SupervisionEvent::ActorFailed(cell, err) => {
                tracing::warn!(actor = %cell.get_id(), error = %err, "session actor failed");
                state.forget(cell.get_id());
            }
            _ => {}
        }
        Ok(())
    }
}
