//! The HTTP listener: hyper serving the warp routes, with the limits that
//! `warp::serve` does not set and that a service facing the open network
//! needs.
//!
//! - **Header read timeout** (`--header-timeout`): a client that has not
//!   sent a whole request head in time (counted from the connection's
//!   opening for its first request, from the head's first byte for later
//!   ones) is disconnected (slowloris).
//! - **Idle timeout** (`--keep-alive-timeout`): a connection on which
//!   nothing moves for this long is closed, between requests or within one.
//!
//! - **Request timeout** (`--request-timeout`): a request not answered
//!   this long after its head's first byte is cut off with its connection,
//!   however steadily its body trickles in (slow bodies).
//!
//! All three are kept on one timer per connection, which reads and writes
//! do not touch (see `Guarded`).
//! - **Connection cap** (`--max-connections`): beyond it, new connections
//!   wait in the kernel's backlog until one closes, so memory and file
//!   descriptors stay bounded.
//! - **Connections per address** (`--max-connections-per-address`): a
//!   connection from a client address that already holds that many is
//!   closed at once, so one address cannot take the whole cap. Trusted
//!   proxies (`--trusted-proxies`) carry many clients and are not capped.
//! - HTTPS when configured ([`super::tls`]): the TLS handshake counts
//!   against the header timeout.
//! - HTTP/1.1 only: HTTP/2's many streams per connection would escape the
//!   cap, and nothing here needs them.
//!
//! The client's address (the TCP peer, or what a trusted proxy forwarded:
//! see [`super::client_addr`]) travels to the routes as a request
//! extension ([`ClientAddr`]), since hyper is driven here rather than by
//! warp. The routes most requests take ([`super::hot`]) are answered here
//! directly, the rest through the warp filters.
//!
//! Every request is given its id here ([`RequestId`], also an extension
//! for the filters), runs in a `request` span carrying it, and every
//! answer, whatever produced it, leaves with it in `X-Request-Id`.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::FutureExt;
use hyper::server::conn::Http;
use hyper::{Body, Request};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::time::{Instant, Sleep};
use tracing::Instrument;
use warp::Filter;

use super::client_addr::{ClientAddr, TrustedProxies};
use super::conns::{PerAddress, Stream};
use super::drain::Drain;
use super::hot::Hot;
use super::request_id::{self, RequestId};
use super::tls::Https;

/// What a listener answers: the routes it answers itself, the rest
/// through the warp filters.
pub struct Routes<F> {
    pub filter: F,
    pub hot: Arc<Hot>,
}

/// The most `--max-connections` may be.
pub const MAX_CONNECTIONS: usize = 1 << 24;

/// The limits of the HTTP front.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    /// From a request head's first byte to its answer.
    pub request_timeout: Duration,
    pub max_connections: usize,
    /// Connections open at once from one client address.
    pub max_connections_per_address: usize,
}

impl Limits {
    /// The default [`Limits::header_timeout`].
    pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
    /// The default [`Limits::idle_timeout`].
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
    /// The default [`Limits::request_timeout`].
    pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
    /// The default [`Limits::max_connections`].
    pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
    /// The default [`Limits::max_connections_per_address`].
    pub const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS: usize = 1_000;
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Self::DEFAULT_HEADER_TIMEOUT,
            idle_timeout: Self::DEFAULT_IDLE_TIMEOUT,
            request_timeout: Self::DEFAULT_REQUEST_TIMEOUT,
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
            max_connections_per_address: Self::DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
        }
    }
}

/// Serves `filter` on `listener` until `shutdown` resolves; then stops
/// accepting, lets requests in flight finish (idle connections close at
/// once) and returns when every connection is gone. `trusted` may set
/// request ids; every request is noted in `drain` (which times the end of
/// a leaving node's traffic). With `tls`, every connection is HTTPS.
/// `routes.hot`'s routes are answered directly, the rest by `routes.filter`.
pub async fn serve<F>(
    listener: TcpListener,
    routes: Routes<F>,
    limits: Limits,
    trusted: TrustedProxies,
    drain: Arc<Drain>,
    tls: Option<Arc<Https>>,
    shutdown: impl Future<Output = ()> + Send,
) where
    F: Filter + Clone + Send + Sync + 'static,
    F::Extract: warp::Reply,
{
    let Routes { filter, hot } = routes;
    let service = warp::service(filter);
    // `acquire_many` takes a u32: the cap is kept within it.
    let cap = limits.max_connections.clamp(1, MAX_CONNECTIONS);
    let slots = Arc::new(Semaphore::new(cap));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut http = Http::new();
    // The header timeout is kept by `Guarded`, on the connection's one
    // timer: hyper's would re-arm a timer of its own for every request.
    http.http1_only(true).http1_keep_alive(true);
    let http = Arc::new(http);
    let trusted = Arc::new(trusted);
    let per_address = Arc::new(PerAddress::new(limits.max_connections_per_address));
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            s = Arc::clone(&slots).acquire_owned() => match s {
                Ok(s) => s,
                Err(_) => break,
            },
            _ = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors, or a connection reset before it
                    // was accepted: not fatal; pause so as not to spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let held = if trusted.contains(peer.ip()) {
            None
        } else {
            match per_address.open(peer.ip()) {
                Some(held) => Some(held),
                None => {
                    tracing::debug!(peer = %peer.ip(), "too many connections from one address");
                    drop(stream);
                    continue;
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let progress = Arc::new(Progress::default());
        let io = Guarded::new(stream, &limits, Arc::clone(&progress));
        let tls = tls.as_ref().map(|t| t.acceptor.clone());
        let mut service = service.clone();
        let trusted = Arc::clone(&trusted);
        let drain = Arc::clone(&drain);
        let hot = Arc::clone(&hot);
        // Called in place for each request: no clone of the routes. The
        // routes' future (several KiB) is boxed as soon as it is made, so
        // that what is wrapped (a map and the span) and what hyper moves
        // about is a pointer, not the future itself.
        let svc = hyper::service::service_fn(move |mut req: Request<Body>| {
            progress.heads.fetch_add(1, Ordering::AcqRel);
            drain.request(req.uri().path());
            let id = RequestId::of(peer.ip(), req.headers(), &trusted);
            let header = id.header_value();
            // At ERROR level so that it is enabled whatever level the
            // filter lets through: a warning logged under `RUST_LOG=warn`
            // still carries its request's id.
            let span = tracing::error_span!("request", request_id = %id);
            let answer: Answering = match hot.route(&req) {
                // What the direct routes read of the request they take
                // from it: no extensions.
                Some(route) => {
                    let hot = Arc::clone(&hot);
                    span.in_scope(|| Box::pin(hot.answer(route, req).map(Ok)))
                }
                None => {
                    let client = ClientAddr(trusted.client(peer.ip(), req.headers()));
                    let extensions = req.extensions_mut();
                    extensions.insert(client);
                    extensions.insert(id);
                    span.in_scope(|| Box::pin(hyper::service::Service::call(&mut service, req)))
                }
            };
            let progress = Arc::clone(&progress);
            answer
                .map(move |answered| {
                    answered.map(|mut response| {
                        progress.answered.fetch_add(1, Ordering::AcqRel);
                        if let Some(v) = header {
                            response.headers_mut().insert(request_id::HEADER_NAME, v);
                        }
                        response
                    })
                })
                .instrument(span)
        });
        let http = Arc::clone(&http);
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let io = match tls {
                None => Stream::Plain(io),
                // The handshake is bounded by the header timeout, which
                // `Guarded` counts from the connection's opening.
                Some(acceptor) => match acceptor.accept(io).await {
                    Ok(s) => Stream::Tls(Box::new(s)),
                    Err(e) => {
                        tracing::debug!(error = %e, "TLS handshake failed");
                        drop((slot, held));
                        return;
                    }
                },
            };
            let conn = http.serve_connection(io, svc);
            tokio::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                // The guard `wait_for` returns must not live across the
                // await below (it is not Send): drop it inside.
                _ = async { drop(stop.wait_for(|s| *s).await) } => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop((slot, held));
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every slot back: every connection has ended.
    let _ = slots.acquire_many(cap as u32).await;
}

/// A request's answer under way, whichever way it is answered.
type Answering = Pin<Box<dyn Future<Output = Result<warp::reply::Response, Infallible>> + Send>>;

/// What a connection's service tells its stream: how many request heads
/// hyper has read on it, and how many of those requests have been answered.
/// Between requests (the two equal) a read starts a new head.
#[derive(Debug, Default)]
struct Progress {
    heads: AtomicU64,
    answered: AtomicU64,
}

/// A TCP stream that fails with `TimedOut` once nothing has been read or
/// written for `idle`, once a request head has taken longer than `header`
/// (from the connection's opening for the first request, from the head's
/// first byte for later ones), or once a request has gone unanswered for
/// `request` from that same instant (its body included).
///
/// One timer per connection, armed at the earliest deadline and moved only
/// when it fires early: a read or a write just notes the time, so the timer
/// wheel is touched once per timeout period, not once per read or write.
struct Guarded {
    stream: TcpStream,
    idle: Duration,
    header: Duration,
    request: Duration,
    progress: Arc<Progress>,
    /// The last read or write that moved bytes.
    last: Instant,
    /// The head being waited for: since when, and the count of heads read
    /// at that time (it is done once the count moves on).
    head: Option<(Instant, u64)>,
    /// The request under way: since when, and the count of heads read
    /// before it (it is done once `answered` is past that count).
    started: (Instant, u64),
    timer: Pin<Box<Sleep>>,
}

impl Guarded {
    fn new(stream: TcpStream, limits: &Limits, progress: Arc<Progress>) -> Guarded {
        let now = Instant::now();
        Guarded {
            stream,
            idle: limits.idle_timeout,
            header: limits.header_timeout,
            request: limits.request_timeout,
            progress,
            last: now,
            head: Some((now, 0)),
            started: (now, 0),
            timer: Box::pin(tokio::time::sleep_until(
                now + limits
                    .idle_timeout
                    .min(limits.header_timeout)
                    .min(limits.request_timeout),
            )),
        }
    }

    /// The head waited for, if one is (forgetting one that has been read).
    fn head_since(&mut self) -> Option<Instant> {
        let heads = self.progress.heads.load(Ordering::Acquire);
        match self.head {
            Some((since, h)) if h == heads => Some(since),
            _ => {
                self.head = None;
                None
            }
        }
    }

    fn read_some(&mut self) {
        let now = Instant::now();
        self.last = now;
        if self.head_since().is_none() {
            let heads = self.progress.heads.load(Ordering::Acquire);
            if self.progress.answered.load(Ordering::Acquire) == heads {
                self.head = Some((now, heads));
                self.started = (now, heads);
            }
        }
    }

    fn wrote_some(&mut self) {
        self.last = Instant::now();
    }

    /// Whether a deadline has passed; otherwise the timer is armed for
    /// the earliest one and wakes `cx`. Called when the stream would block.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        while self.timer.as_mut().poll(cx).is_ready() {
            let mut deadline = self.last + self.idle;
            if let Some(since) = self.head_since() {
                deadline = deadline.min(since + self.header);
            }
            let (since, before) = self.started;
            if self.progress.answered.load(Ordering::Acquire) <= before {
                deadline = deadline.min(since + self.request);
            }
            if deadline <= Instant::now() {
                return true;
            }
            self.timer.as_mut().reset(deadline);
        }
        false
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "connection idle for too long")
}

impl AsyncRead for Guarded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.read_some();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending if this.expired(cx) => Poll::Ready(Err(timed_out())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                this.wrote_some();
                Poll::Ready(Ok(n))
            }
            Poll::Pending if this.expired(cx) => Poll::Ready(Err(timed_out())),
            other => other,
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_write_vectored(cx, bufs) {
            Poll::Ready(Ok(n)) => {
                this.wrote_some();
                Poll::Ready(Ok(n))
            }
            Poll::Pending if this.expired(cx) => Poll::Ready(Err(timed_out())),
            other => other,
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
