//! The HTTP front sheds slow clients: connections that never finish their
//! request head neither starve other clients nor stay open past
//! `--header-timeout`; a body that trickles in is cut off at
//! `--request-timeout`; one address holds at most
//! `--max-connections-per-address` connections.

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
    // All from one address here: the per-address cap is raised.
    let app = spawn_on(Backend::Sqlite, |s| {
        s.http.max_connections_per_address = 2_000;
    })
    .await;
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
        s.http.max_connections_per_address = 2_000;
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

/// A login whose body is announced whole and sent a byte at a time, each
/// byte well within the idle timeout.
#[tokio::test]
async fn a_body_that_trickles_in_is_cut_off_at_the_request_timeout() {
    let app = spawn_on(Backend::Sqlite, |s| {
        s.http.request_timeout = Duration::from_secs(2);
    })
    .await;
    let mut s = TcpStream::connect(app.addr).await.expect("connects");
    let opened = Instant::now();
    s.write_all(
        b"POST /api/auth/login HTTP/1.1\r\nhost: sessiond\r\ncontent-type: application/json\r\ncontent-length: 4000\r\n\r\n",
    )
    .await
    .expect("head sent");
    let mut cut = None;
    for _ in 0..40 {
        if s.write_all(b" ").await.is_err() {
            cut = Some(opened.elapsed());
            break;
        }
        if closed_within(&mut s, Duration::from_millis(250)).await {
            cut = Some(opened.elapsed());
            break;
        }
    }
    let cut = cut.expect("the trickling request was never cut off (10 s)");
    println!(
        "request timeout 2 s: a body sent a byte every 250 ms was cut off after {} ms",
        cut.as_millis()
    );
    assert!(
        cut >= Duration::from_millis(1_900),
        "cut off early: {cut:?}"
    );
    assert!(cut < Duration::from_secs(4), "cut off late: {cut:?}");
    // Requests that finish in time are not affected, on the same settings.
    let reply = app.session(&app.admin_token).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    app.stop().await;
}

/// A connection from 127.0.0.2 (another loopback address).
async fn connect_from(ip: [u8; 4], to: std::net::SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind((std::net::Ipv4Addr::from(ip), 0).into())
        .expect("binds");
    socket.connect(to).await.expect("connects")
}

/// Whether a healthz request on `s` is answered 200.
async fn answered(s: &mut TcpStream) -> bool {
    if s.write_all(b"GET /healthz HTTP/1.1\r\nhost: sessiond\r\nconnection: close\r\n\r\n")
        .await
        .is_err()
    {
        return false;
    }
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    buf.starts_with(b"HTTP/1.1 200")
}

#[tokio::test]
async fn one_address_holds_at_most_its_share_of_connections() {
    let app = spawn_on(Backend::Sqlite, |s| {
        s.http.max_connections_per_address = 3;
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect_from([127, 0, 0, 1], app.addr).await);
    }
    // The fourth from the same address is closed at once…
    let mut fourth = connect_from([127, 0, 0, 1], app.addr).await;
    assert!(
        !answered(&mut fourth).await,
        "a fourth connection was served"
    );
    // …another address is served…
    let mut other = connect_from([127, 0, 0, 2], app.addr).await;
    assert!(answered(&mut other).await, "another address was refused");
    // …and a slot given back is taken again.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut again = connect_from([127, 0, 0, 1], app.addr).await;
    assert!(
        answered(&mut again).await,
        "a freed slot was not given back"
    );
    drop(held);
    app.stop().await;
}
