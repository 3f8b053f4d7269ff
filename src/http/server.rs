//! The HTTP listener: hyper serving the warp routes, with the limits that
//! `warp::serve` does not set and that a service facing the open network
//! needs.
//!
//! - **Header read timeout** (`--header-timeout`): a client that has not
//!   sent a whole request head in time is disconnected (slowloris).
//! - **Idle timeout** (`--keep-alive-timeout`): a connection on which
//!   nothing moves for this long is closed, between requests or within one.
//! - **Connection cap** (`--max-connections`): beyond it, new connections
//!   wait in the kernel's backlog until one closes, so memory and file
//!   descriptors stay bounded.
//! - HTTP/1.1 only: HTTP/2's many streams per connection would escape the
//!   cap, and nothing here needs them.
//!
//! The peer address travels to the routes as a request extension
//! ([`Peer`]), since hyper is driven here rather than by warp; see
//! [`super::client_addr`] for the address the routes use.
//!
//! Every request is given its id here ([`RequestId`], also an extension),
//! runs in a `request` span carrying it, and every answer, whatever
//! produced it, leaves with it in `X-Request-Id`.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::server::conn::Http;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::time::{Instant, Sleep};
use tracing::Instrument;
use warp::Filter;

use super::client_addr::TrustedProxies;
use super::drain::Drain;
use super::request_id::{self, RequestId};

/// The most `--max-connections` may be.
pub const MAX_CONNECTIONS: usize = 1 << 24;

/// The TCP peer of the connection a request came on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer(pub SocketAddr);

/// The limits of the HTTP front.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

impl Limits {
    /// The default [`Limits::header_timeout`].
    pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
    /// The default [`Limits::idle_timeout`].
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
    /// The default [`Limits::max_connections`].
    pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Self::DEFAULT_HEADER_TIMEOUT,
            idle_timeout: Self::DEFAULT_IDLE_TIMEOUT,
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// Serves `filter` on `listener` until `shutdown` resolves; then stops
/// accepting, lets requests in flight finish (idle connections close at
/// once) and returns when every connection is gone. `trusted` may set
/// request ids; every request is noted in `drain` (which times the end of
/// a leaving node's traffic).
pub async fn serve<F>(
    listener: TcpListener,
    filter: F,
    limits: Limits,
    trusted: TrustedProxies,
    drain: Arc<Drain>,
    shutdown: impl Future<Output = ()> + Send,
) where
    F: Filter + Clone + Send + Sync + 'static,
    F::Extract: warp::Reply,
{
    let service = warp::service(filter);
    // `acquire_many` takes a u32: the cap is kept within it.
    let cap = limits.max_connections.clamp(1, MAX_CONNECTIONS);
    let slots = Arc::new(Semaphore::new(cap));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut http = Http::new();
    http.http1_only(true)
        .http1_keep_alive(true)
        .http1_header_read_timeout(limits.header_timeout);
    let http = Arc::new(http);
    let trusted = Arc::new(trusted);
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
        let _ = stream.set_nodelay(true);
        let io = IdleTimeout::new(stream, limits.idle_timeout);
        let service = service.clone();
        let trusted = Arc::clone(&trusted);
        let drain = Arc::clone(&drain);
        let svc = hyper::service::service_fn(move |mut req: hyper::Request<hyper::Body>| {
            drain.request(req.uri().path());
            req.extensions_mut().insert(Peer(peer));
            let id = RequestId::of(peer.ip(), req.headers(), &trusted);
            req.extensions_mut().insert(id.clone());
            // At ERROR level so that it is enabled whatever level the
            // filter lets through: a warning logged under `RUST_LOG=warn`
            // still carries its request's id.
            let span = tracing::error_span!("request", request_id = %id);
            let mut service = service.clone();
            let answer = span.in_scope(|| hyper::service::Service::call(&mut service, req));
            async move {
                let mut response = answer.await?;
                if let Some(v) = id.header_value() {
                    response.headers_mut().insert(request_id::HEADER, v);
                }
                Ok::<_, std::convert::Infallible>(response)
            }
            .instrument(span)
        });
        let http = Arc::clone(&http);
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
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
            drop(slot);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every slot back: every connection has ended.
    let _ = slots.acquire_many(cap as u32).await;
}

/// A TCP stream that fails with `TimedOut` once nothing has been read or
/// written for `idle`.
struct IdleTimeout {
    stream: TcpStream,
    idle: Duration,
    timer: Pin<Box<Sleep>>,
}

impl IdleTimeout {
    fn new(stream: TcpStream, idle: Duration) -> IdleTimeout {
        IdleTimeout {
            stream,
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
        }
    }

    fn moved(&mut self) {
        self.timer.as_mut().reset(Instant::now() + self.idle);
    }

    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.timer.as_mut().poll(cx).is_ready()
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "connection idle for too long")
}

impl AsyncRead for IdleTimeout {
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
                    this.moved();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending if this.expired(cx) => Poll::Ready(Err(timed_out())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for IdleTimeout {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                this.moved();
                Poll::Ready(Ok(n))
            }
            Poll::Pending if this.expired(cx) => Poll::Ready(Err(timed_out())),
            other => other,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
