//! The use cases between the HTTP front and the store: what the service
//! does, each rule written once. A handler parses, calls one of these,
//! renders; the CLI calls them too.
//!
//! - [`authenticate`]: token → revocation rule → the caller's current record.
//! - [`login`]: credentials → a new token (limiter, password check).
//! - [`users`]: the admin writes and logout, each run as write → invalidate
//!   → audit; and the validation of what a user is made of.

pub mod authenticate;
pub mod login;
pub mod users;

use crate::clock::Clock;
use crate::store::{AuditEntry, Db};

/// Who did something: the authenticated caller and the address the request
/// came from.
#[derive(Clone, Debug)]
pub struct Actor {
    pub id: i64,
    pub email: String,
    pub client: Option<String>,
}

/// The audit trail: a structured log event (target `sessiond::audit`) and a
/// row in the database. Never holds a password or a token.
#[derive(Clone)]
pub struct Audit {
    db: Db,
    clock: Clock,
}

impl Audit {
    pub fn new(db: Db, clock: Clock) -> Self {
        Audit { db, clock }
    }

    pub async fn record(
        &self,
        by: &Actor,
        action: &str,
        target: Option<i64>,
        detail: Option<String>,
    ) {
        let entry = AuditEntry {
            at: self.clock.now_ms(),
            actor_id: Some(by.id),
            actor_email: Some(by.email.clone()),
            action: action.to_string(),
            target_id: target,
            detail,
            client: by.client.clone(),
        };
        tracing::info!(
            target: "sessiond::audit",
            actor_id = by.id,
            actor = %by.email,
            action = %entry.action,
            target_id = ?entry.target_id,
            detail = entry.detail.as_deref().unwrap_or(""),
            client = entry.client.as_deref().unwrap_or(""),
            "admin action"
        );
        if let Err(e) = self.db.record_audit(&entry).await {
            tracing::warn!(error = %e, "audit entry not stored");
        }
    }
}
