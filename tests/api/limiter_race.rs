//! The login limiter under concurrency: however many wrong-password logins
//! arrive at once, at most the limit are checked against the password.

use crate::helpers::*;

#[tokio::test]
async fn concurrent_guesses_get_at_most_the_limit_checked() {
    const LIMIT: usize = 10;
    const ATTEMPTS: usize = 300;
    let app = spawn_on(Backend::Sqlite, |s| {
        s.login_limits.per_account = LIMIT;
        s.login_limits.per_address = 10_000;
    })
    .await;
    let app = std::sync::Arc::new(app);
    let mut tasks = Vec::new();
    for i in 0..ATTEMPTS {
        let app = std::sync::Arc::clone(&app);
        tasks.push(tokio::spawn(async move {
            app.login(ADMIN_EMAIL, &format!("wrong-guess-{i}")).await
        }));
    }
    let (mut checked, mut limited, mut other) = (0, 0, Vec::new());
    for t in tasks {
        let r = t.await.expect("login task");
        match r.status {
            401 => {
                r.assert_error(401, "invalid_credentials");
                checked += 1;
            }
            429 => {
                r.assert_error(429, "rate_limited");
                limited += 1;
            }
            s => other.push(s),
        }
    }
    println!(
        "{ATTEMPTS} concurrent wrong-password logins, limit {LIMIT}: \
         {checked} checked against the password (401), {limited} refused (429)"
    );
    assert!(other.is_empty(), "unexpected answers: {other:?}");
    assert!(checked <= LIMIT, "{checked} guesses checked, limit {LIMIT}");
    assert!(checked >= 1, "the first guesses are checked");
    assert_eq!(checked + limited, ATTEMPTS);
}
