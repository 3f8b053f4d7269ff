//! PostgreSQL LISTEN/NOTIFY: the database announces every change to a user
//! (a trigger, whoever made the change: this node, another node, psql), and
//! every node drops its cached copy within milliseconds.
//!
//! Notifications sent while the listening connection is down are lost, so
//! each (re)connection marks every record cached on this node stale. A
//! connection that hangs without closing is found by a periodic ping.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool};
use tokio::task::JoinHandle;

use sessiond_actors::{FlushReason, InvalidationSource, Router, UserId};

use crate::metrics::Telemetry;

/// The channel the migrations' triggers notify on.
pub const CHANNEL: &str = "sessiond_users";
const PING_EVERY: Duration = Duration::from_secs(2);
const PING_TIMEOUT: Duration = Duration::from_secs(2);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// `ID:VERSION` or `ID:` → (id, version). Split at the last colon: an id
/// may hold colons itself, a version never does.
pub fn parse_payload(payload: &str) -> Option<(UserId, Option<i64>)> {
    let (id, version) = payload.rsplit_once(':')?;
    let id = UserId::parse(id.trim()).ok()?;
    let version = version.trim();
    if version.is_empty() {
        Some((id, None))
    } else {
        Some((id, Some(version.parse().ok()?)))
    }
}

/// Runs the listener until the task is aborted.
/// Each notification also nudges the lease keeper (`nudge`), so that the
/// node confirms a change through its lease within milliseconds.
pub fn spawn(
    pool: PgPool,
    router: Router,
    telemetry: Arc<Telemetry>,
    nudge: Option<Arc<tokio::sync::Notify>>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut connected_before = false;
        let mut backoff = Duration::from_millis(50);
        loop {
            let mut listener = match connect(&pool).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %crate::store::describe(&e), "cannot LISTEN; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            };
            backoff = Duration::from_millis(50);
            // Whatever changed while nobody listened is unknown: forget it all.
            router.flush(FlushReason::Resync);
            if connected_before {
                telemetry.notify_resync();
                tracing::warn!("notification listener reconnected; cached records marked stale");
            }
            connected_before = true;
            telemetry.notify_listening(true);
            listen(&mut listener, &router, nudge.as_deref()).await;
            telemetry.notify_listening(false);
        }
    })
}

async fn connect(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    sqlx::query("SET application_name = 'sessiond-listen'")
        .execute(&mut listener)
        .await?;
    // Reconnection is ours to do (and to follow with a resync), not the
    // listener's.
    listener.ignore_pool_close_event(true);
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// Applies notifications until the connection fails.
async fn listen(listener: &mut PgListener, router: &Router, nudge: Option<&tokio::sync::Notify>) {
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    loop {
        tokio::select! {
            received = listener.try_recv() => match received {
                Ok(Some(n)) => match parse_payload(n.payload()) {
                    Some((id, version)) => {
                        router.invalidate_local(id, version, InvalidationSource::Notify).await;
                        if let Some(n) = nudge {
                            n.notify_one();
                        }
                    }
                    None => tracing::warn!("ignoring a malformed notification"),
                },
                Ok(None) => {
                    tracing::warn!("notification connection lost");
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %crate::store::describe(&e), "notification connection failed");
                    return;
                }
            },
            _ = ping.tick() => {
                let alive = tokio::time::timeout(
                    PING_TIMEOUT,
                    sqlx::query("SELECT 1").execute(&mut *listener),
                )
                .await;
                if !matches!(alive, Ok(Ok(_))) {
                    tracing::warn!("notification connection stopped answering");
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads() {
        let id = |s: &str| UserId::parse(s).ok();
        assert_eq!(parse_payload("12:7"), Some((UserId::from(12), Some(7))));
        assert_eq!(parse_payload("12:"), Some((UserId::from(12), None)));
        assert_eq!(parse_payload("12:y"), None);
        assert_eq!(parse_payload("12"), None);
        assert_eq!(parse_payload(":1"), None);
        assert_eq!(parse_payload("a b:1"), None);
        // Text ids, colons in them included.
        let uuid = "550e8400-e29b-41d4-a716-446655440000";
        assert_eq!(
            parse_payload(&format!("{uuid}:3")),
            Some((id(uuid).unwrap_or(UserId::from(0)), Some(3)))
        );
        assert_eq!(
            parse_payload("tenant:7:user:42:"),
            id("tenant:7:user:42").map(|i| (i, None))
        );
        assert_eq!(
            parse_payload("tenant:7:user:42:9"),
            id("tenant:7:user:42").map(|i| (i, Some(9)))
        );
        assert_eq!(parse_payload("x:1"), id("x").map(|i| (i, Some(1))));
    }
}
