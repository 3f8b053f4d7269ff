//! The session actor's mailbox: what the router, the supervisor and the
//! actor's own tasks send it. Apart from the actor so that the registry,
//! which holds each session's actor reference, needs nothing else of it.

use ractor::RpcReplyPort;

use crate::lookup::{ResolveError, Served};
use crate::record::Fetched;
use crate::store::StoreError;

/// Where a lookup's answer goes.
pub(crate) type Reply = RpcReplyPort<Result<Served, ResolveError>>;

/// Messages of a session actor. Local only: session actors are never
/// advertised to other nodes.
pub(crate) enum SessionMsg {
    /// Answer the current record, fetching it if nothing fresh is cached.
    Resolve(Reply),
    /// Like `Resolve`; with `force`, read the store whatever is cached.
    Refresh { force: bool, reply: Reply },
    /// Stop once no caller is waiting: the session hibernates (its record
    /// stays in the registry), or is gone if the supervisor passivated it.
    Stop,
    /// A fetch task finished. Sent by the actor's own fetch task.
    FetchDone {
        flight: u64,
        result: Result<Fetched, StoreError>,
    },
    /// Time to read again after a refused fetch. Sent by the actor's own
    /// back-off timer.
    Retry { flight: u64 },
}

#[cfg(feature = "cluster")]
impl ractor::Message for SessionMsg {}
