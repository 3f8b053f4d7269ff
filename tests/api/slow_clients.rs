//! The HTTP front sheds slow clients: connections that never finish their
//! request head neither starve other clients nor stay open past
//! `--header-timeout`.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

/// Half a request head, never finished.
const HALF_HEAD: &[u8] = b"GET /healthz HTTP/1.1\r\nhost: sessiond\r\nx-slow: ";

/// `n` connections that each sent half a request head.
async fn open_slow(app: &TestApp, n: usize) -> Vec<(TcpStream, Instant)> {
    let mut slow = Vec::with_capacity(n);
    for i in 0..n {
        let mut s = TcpStream::connect(app.addr)
            .await
            .unwrap_or_else(|e| panic!("slow connection {i}: {e}"));
        s.write_all(HALF_HEAD).await.expect("half a head sent");
        slow.push((s, Instant::now()));
    }
    slow
}

/// Whether the server has closed `s` (EOF or reset) within `within`.
async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let read_to_end = async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                // An error page before the close is fine.
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(within, read_to_end).await.is_ok()
}

/// Several requests of a normal client, each on a fresh connection (the
/// listener must still accept): their latencies, sorted.
async fn normal_latencies(app: &TestApp, token: &str, n: usize) -> Vec<Duration> {
    let mut took = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        let reply = app.session(token).await;
        took.push(start.elapsed());
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    took.sort();
    took
}

#[tokio::test]
async fn a_normal_client_is_answered_while_1500_slow_ones_hang() {
    let app = spawn_app().await;
    let token = app.admin_token.clone();
    let slow = open_slow(&app, 1_500).await;
    let took = normal_latencies(&app, &token, 20).await;
    let (median, max) = (took[took.len() / 2], took[took.len() - 1]);
    println!(
        "with {} slow connections open: a session request took {:.2} ms median, {:.2} ms max",
        slow.len(),
        median.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3
    );
    // The goal is 100 ms; the bound leaves room for a busy CI machine.
    assert!(max < Duration::from_millis(500), "{took:?}");
    // The slow ones were still open all along (the default timeout is 10 s).
    let mut first = slow.into_iter().next().expect("one").0;
    assert!(!closed_within(&mut first, Duration::from_millis(10)).await);
    // A graceful stop waits for connections with a request under way.
    drop(first);
    app.stop().await;
}

#[tokio::test]
async fn slow_connections_are_closed_after_the_header_timeout() {
    let app = spawn_on(Backend::Sqlite, |s| {
        s.http.header_timeout = Duration::from_secs(1);
    })
    .await;
    let mut slow = open_slow(&app, 1_500).await;
    let mut longest = Duration::ZERO;
    for (i, (s, opened)) in slow.iter_mut().enumerate() {
        let left = Duration::from_millis(2_500).saturating_sub(opened.elapsed());
        assert!(
            closed_within(s, left).await,
            "slow connection {i} still open {} ms after it sent half a head",
            opened.elapsed().as_millis()
        );
        longest = longest.max(opened.elapsed());
    }
    println!(
        "header timeout 1 s: the last of {} slow connections closed at most {} ms after it opened",
        slow.len(),
        longest.as_millis()
    );
    // Shed connections gave their slots back: the service still answers.
    let reply = app.session(&app.admin_token).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    app.stop().await;
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_until_one_closes() {
    let app = spawn_on(Backend::Sqlite, |s| {
        s.http.max_connections = 4;
    })
    .await;
    let slow = open_slow(&app, 4).await;
    // The fifth connection is not served while four are held open…
    let blocked = tokio::time::timeout(Duration::from_millis(500), app.session(&app.admin_token));
    assert!(blocked.await.is_err(), "served beyond the cap");
    // …and is once one of them goes away.
    drop(slow);
    let reply = tokio::time::timeout(Duration::from_secs(5), app.session(&app.admin_token))
        .await
        .expect("served once a slot is free");
    assert_eq!(reply.status, 200, "{}", reply.text);
    app.stop().await;
}
