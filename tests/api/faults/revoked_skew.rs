//! A logged-out token stays refused on every node until it cannot verify on
//! any of them, whatever their wall clocks say within the allowed skew: a
//! node whose clock runs ahead must not forget the revocation (its cleanup
//! or its filter) while a node with a slower clock still accepts the token.

use std::time::Duration;

use crate::helpers::*;
use crate::on_both_stores;

/// How far the second node's clock runs ahead: within the skew the service
/// allows between nodes (`iat` may be up to a minute in the future).
const AHEAD: Duration = Duration::from_secs(30);
/// The first node's token lifetime: shorter than `AHEAD`, so by the second
/// node's clock the token is over while the first still accepts it.
const SHORT_TTL: Duration = Duration::from_secs(20);

async fn a_logged_out_token_stays_refused_near_the_end_of_its_life(backend: Backend) {
    let writer = spawn_on(backend, |s| s.token_ttl = SHORT_TTL).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let ahead = spawn_at(backend, writer.db_url.clone(), None, dir, |_| {}).await;
    ahead.ctx.clock.advance(AHEAD);

    writer
        .create_user("skew@example.test", "password-123", "user")
        .await;
    let old = writer.login_ok("skew@example.test", "password-123").await;
    let other = ahead.login_ok("skew@example.test", "password-123").await;
    assert_eq!(writer.session(&old).await.status, 200);

    let r = writer
        .request("POST", "/api/auth/logout", Some(&old), None)
        .await;
    assert_eq!(r.status, 204, "logout: {}", r.text);
    writer
        .session(&old)
        .await
        .assert_error(401, "session_revoked");

    // Another logout of the same user, through the node whose clock says
    // the first token is already over (it cleans up revocations by its own
    // clock). The user's record changes, so every cache reads it again.
    let r = ahead
        .request("POST", "/api/auth/logout", Some(&other), None)
        .await;
    assert_eq!(r.status, 204, "logout: {}", r.text);

    // The first node's clock says the token has ~20 s left: it must stay
    // refused, not be admitted again.
    let r = writer.session(&old).await;
    assert_eq!(
        r.status, 401,
        "a logged-out token was admitted again after a node whose clock runs \
         {AHEAD:?} ahead cleaned up revocations: {}",
        r.text
    );
    ahead.stop().await;
    writer.stop().await;
}

on_both_stores!(a_logged_out_token_stays_refused_near_the_end_of_its_life);
