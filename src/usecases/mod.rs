//! The use cases between the HTTP front and the store: what the service
//! does, each rule written once. A handler parses, calls one of these,
//! renders; the CLI calls them too.
//!
//! - [`authenticate`]: token → revocation rule → the caller's current record.
//! - [`login`]: credentials → a new token (limiter, password check), every
//!   outcome that says something about the account audited.
//! - [`appkeys`]: app credentials: checking a key on each use, minting a
//!   session for a user an app signed in itself.
//! - [`users`]: the admin writes and logout, each run as write → invalidate
//!   → audit; and the validation of what a user is made of.
//! - [`Audit`] (here): the audit trail, and the budget that keeps a flood
//!   of refusals from becoming a flood of rows.

pub mod appkeys;
pub mod authenticate;
pub mod better_auth;
pub mod login;
pub mod users;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sessiond_actors::sync::MutexExt;
use sessiond_actors::UserId;
use tokio::time::Instant;
use tracing::Instrument;

use crate::clock::Clock;
use crate::store::{AuditEntry, Db};

/// Where a request came from: the client address (resolved through
/// trusted proxies) and the request's id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Origin {
    pub client: Option<String>,
    pub request_id: Option<String>,
}

/// Who did something: the authenticated caller (a user, or an app key),
/// the address the request came from and the request's id.
#[derive(Clone, Debug)]
pub struct Principal {
    /// The caller's user; none for an app key.
    pub id: Option<UserId>,
    /// The caller's email, or `appkey:ID` for an app key.
    pub email: String,
    pub client: Option<String>,
    /// Carried explicitly: an admin write finishes in a task of its own,
    /// which may outlive the request.
    pub request_id: Option<String>,
}

impl Principal {
    pub fn new(id: UserId, email: String, origin: Origin) -> Principal {
        Principal {
            id: Some(id),
            email,
            client: origin.client,
            request_id: origin.request_id,
        }
    }

    /// An app key as the caller.
    pub fn app_key(key: &appkeys::AppKey, origin: Origin) -> Principal {
        Principal {
            id: None,
            email: key.actor(),
            client: origin.client,
            request_id: origin.request_id,
        }
    }
}

/// Refusals stored per client address per minute (the rest are logged).
pub const REFUSALS_PER_ADDRESS: u32 = 10;
/// Refusals stored per minute in all.
pub const REFUSALS_IN_ALL: u32 = 600;
const BUDGET_WINDOW: Duration = Duration::from_secs(60);

/// The longest email (or route) an audit entry keeps of what a caller sent.
const MAX_SENT: usize = 254;

/// The audit trail: a structured log event (target `sessiond::audit`) and a
/// row in the database. Never holds a password or a token.
///
/// Admin actions and successful logins are always logged and stored.
/// Refusals (failed logins, lock-outs, 403s on admin routes) cost an
/// attacker little, so a flood of them must not become a flood of database
/// writes or of log lines: each is logged and stored only within a budget,
/// at most [`REFUSALS_PER_ADDRESS`] per client address and
/// [`REFUSALS_IN_ALL`] in all per minute; how many were left out is logged
/// (one line) as the minute ends.
/// Entries are written by tasks of their own (an admin write's audit is in
/// its write task already), instrumented with the request's span.
#[derive(Clone)]
pub struct Audit {
    db: Db,
    clock: Clock,
    budget: Arc<Budget>,
}

impl Audit {
    pub fn new(db: Db, clock: Clock) -> Self {
        Audit {
            db,
            clock,
            budget: Arc::new(Budget::default()),
        }
    }

    /// An admin action, stored before this returns.
    pub async fn record(
        &self,
        by: &Principal,
        action: &str,
        target: Option<UserId>,
        detail: Option<String>,
    ) {
        let entry = AuditEntry {
            at: self.clock.now_ms(),
            actor_id: by.id.clone(),
            actor_email: Some(by.email.clone()),
            action: action.to_string(),
            target_id: target,
            detail,
            client: by.client.clone(),
            request_id: by.request_id.clone(),
        };
        log(&entry);
        self.store(&entry).await;
    }

    /// A successful login by user `id`.
    pub fn logged_in(&self, id: &UserId, email: &str, from: &Origin) {
        let mut entry = self.entry(Some(id.clone()), email, "login", from, None);
        entry.target_id = Some(id.clone());
        log(&entry);
        self.spawn_store(entry);
    }

    /// A refused login: `action` is `login.failure` or `login.rate_limited`;
    /// `email` is what was tried (kept to `MAX_SENT` characters).
    pub fn login_refused(&self, email: &str, action: &str, from: &Origin, detail: Option<String>) {
        let entry = self.entry(None, email, action, from, detail);
        self.refused(entry);
    }

    /// A 403 on an admin route: who, and which route.
    pub fn forbidden(&self, who: &Principal, route: &str) {
        let origin = Origin {
            client: who.client.clone(),
            request_id: who.request_id.clone(),
        };
        let entry = self.entry(
            who.id.clone(),
            &who.email,
            "admin.forbidden",
            &origin,
            Some(bounded(route)),
        );
        self.refused(entry);
    }

    /// A use of an app key (`appkey.mint`, `appkey.admin`): always stored,
    /// as a login is, by a task of its own.
    pub fn app_key_used(
        &self,
        key: &appkeys::AppKey,
        action: &str,
        target: Option<UserId>,
        detail: Option<String>,
        from: &Origin,
    ) {
        let mut entry = self.entry(None, &key.actor(), action, from, detail);
        entry.target_id = target;
        log(&entry);
        self.spawn_store(entry);
    }

    /// A refused app key (`appkey.invalid`: unknown, revoked, wrong
    /// secret; a missing scope): stored within the refusals' budget.
    pub fn app_key_refused(&self, actor: &str, action: &str, why: &str, from: &Origin) {
        let entry = self.entry(None, actor, action, from, Some(bounded(why)));
        self.refused(entry);
    }

    fn entry(
        &self,
        actor: Option<UserId>,
        email: &str,
        action: &str,
        from: &Origin,
        detail: Option<String>,
    ) -> AuditEntry {
        AuditEntry {
            at: self.clock.now_ms(),
            actor_id: actor,
            actor_email: Some(bounded(email)),
            action: action.to_string(),
            target_id: None,
            detail,
            client: from.client.clone(),
            request_id: from.request_id.clone(),
        }
    }

    fn refused(&self, entry: AuditEntry) {
        if self.budget.admit(entry.client.as_deref()) {
            log(&entry);
            self.spawn_store(entry);
        }
    }

    fn spawn_store(&self, entry: AuditEntry) {
        let audit = self.clone();
        tokio::spawn(async move { audit.store(&entry).await }.instrument(tracing::Span::current()));
    }

    async fn store(&self, entry: &AuditEntry) {
        if let Err(e) = self.db.record_audit(entry).await {
            tracing::warn!(error = %e, "audit entry not stored");
        }
    }
}

fn log(entry: &AuditEntry) {
    tracing::info!(
        target: "sessiond::audit",
        action = %entry.action,
        actor_id = entry.actor_id.as_ref().map(tracing::field::display),
        actor = entry.actor_email.as_deref(),
        target_id = entry.target_id.as_ref().map(tracing::field::display),
        detail = entry.detail.as_deref(),
        client = entry.client.as_deref(),
        request_id = entry.request_id.as_deref(),
        "audit"
    );
}

/// What a caller sent, kept short and free of control characters.
fn bounded(sent: &str) -> String {
    sent.chars()
        .take(MAX_SENT)
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

/// The refusals stored in the current minute (see [`Audit`]).
#[derive(Default)]
struct Budget(Mutex<BudgetState>);

#[derive(Default)]
struct BudgetState {
    started: Option<Instant>,
    stored: u32,
    /// At most [`REFUSALS_IN_ALL`] addresses: one enters only when stored.
    by_address: HashMap<String, u32>,
    dropped: u64,
}

impl Budget {
    /// Whether one more refusal from `client` is stored.
    fn admit(&self, client: Option<&str>) -> bool {
        let mut s = self.0.locked();
        let now = Instant::now();
        if !matches!(s.started, Some(t) if now.saturating_duration_since(t) < BUDGET_WINDOW) {
            if s.dropped > 0 {
                tracing::warn!(
                    target: "sessiond::audit",
                    dropped = s.dropped,
                    "refusals neither logged nor stored in the audit table (over the per-minute budget)"
                );
            }
            *s = BudgetState {
                started: Some(now),
                ..BudgetState::default()
            };
        }
        let client = client.unwrap_or("");
        let seen = s.by_address.get(client).copied().unwrap_or(0);
        if s.stored >= REFUSALS_IN_ALL || seen >= REFUSALS_PER_ADDRESS {
            s.dropped += 1;
            return false;
        }
        s.stored += 1;
        s.by_address.insert(client.to_string(), seen + 1);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn refusals_are_stored_within_the_budget() {
        let budget = Budget::default();
        let stored = |from: &str, n: u32| (0..n).filter(|_| budget.admit(Some(from))).count();
        assert_eq!(stored("192.0.2.1", 50), REFUSALS_PER_ADDRESS as usize);
        // Another address has its own share.
        assert_eq!(stored("192.0.2.2", 3), 3);
        // Many addresses: at most the total.
        let many = (0..2 * REFUSALS_IN_ALL)
            .filter(|i| budget.admit(Some(&format!("198.51.100.{i}"))))
            .count();
        assert_eq!(
            many as u32,
            REFUSALS_IN_ALL - REFUSALS_PER_ADDRESS - 3,
            "the total per minute"
        );
        assert!(budget.0.lock().expect("lock").by_address.len() <= REFUSALS_IN_ALL as usize);
        // A minute later, the budget is back.
        tokio::time::advance(BUDGET_WINDOW).await;
        assert_eq!(stored("192.0.2.1", 50), REFUSALS_PER_ADDRESS as usize);
    }

    #[test]
    fn what_a_caller_sent_is_kept_short_and_on_one_line() {
        assert_eq!(bounded("a@b\nFAKE"), "a@b\u{fffd}FAKE");
        assert_eq!(bounded(&"é".repeat(1000)).chars().count(), MAX_SENT);
    }
}
