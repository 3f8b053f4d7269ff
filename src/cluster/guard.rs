//! The cluster listener's limits, and the node-name check made before
//! ractor_cluster reads a name.
//!
//! sessiond accepts cluster connections itself (with or without TLS) and
//! hands each to ractor_cluster as an external stream whose reading half
//! is a [`Gate`]:
//!
//! - **Connection cap**: at most [`MAX_CONNECTIONS`] cluster connections
//!   are open at once; more wait in the kernel's backlog.
//! - **Before authentication** only handshake messages may come, each at
//!   most [`MAX_HANDSHAKE_FRAME`] bytes, and the session must have
//!   authenticated (the cookie) within [`AUTH_DEADLINE`] of its opening
//!   ([`AuthDeadline`]); after it, frames are bounded by [`MAX_FRAME`].
//! - **Names, with TLS**: the first name the peer sends (a client's name
//!   message, a server's challenge) is checked against the peer's
//!   certificate before ractor_cluster sees it, so a peer holding the
//!   cookie and a certificate for `a` cannot make ractor_cluster settle a
//!   duplicate session with the real `b` by announcing `b`.

use std::collections::HashSet;
use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use ractor_cluster::node::NodeServerSessionInformation;
use ractor_cluster::{BoxRead, BoxWrite, ClusterBidiStream, NodeEventSubscription};
use rustls::pki_types::CertificateDer;
use sessiond_actors::sync::MutexExt;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Sleep;

use super::tls::NameRule;

/// Cluster connections open at once (each pair of nodes holds one or two).
pub const MAX_CONNECTIONS: usize = 64;
/// How long a session may take to authenticate.
pub const AUTH_DEADLINE: Duration = Duration::from_secs(5);
/// The largest frame before authentication: handshake messages are a name,
/// an address, a status, a challenge and a digest.
pub const MAX_HANDSHAKE_FRAME: u64 = 4 * 1024;
/// The largest frame after it. The largest message is a forwarded lookup's
/// answer: a user record with its logged-out token ids, JSON; 1 MiB holds
/// tens of thousands of them (ractor_cluster's default is 16 MiB).
pub const MAX_FRAME: u64 = 1024 * 1024;

/// A cluster connection as ractor_cluster takes it: split into a gated
/// reading half and a writing half, labelled with the peer's address.
pub(crate) struct Guarded<S> {
    pub(crate) stream: S,
    pub(crate) peer: String,
    pub(crate) local: String,
    /// The peer's certificate, when the link is TLS: names are checked
    /// against it.
    pub(crate) cert: Option<(CertificateDer<'static>, NameRule)>,
    pub(crate) permit: Option<OwnedSemaphorePermit>,
}

impl<S> ClusterBidiStream for Guarded<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    fn split(self: Box<Self>) -> (BoxRead, BoxWrite) {
        let (read, write) = tokio::io::split(self.stream);
        let gate = Gate {
            inner: read,
            cert: self.cert,
            buf: Vec::new(),
            ready: 0,
            open: false,
            deadline: Box::pin(tokio::time::sleep(AUTH_DEADLINE)),
            _permit: self.permit,
        };
        (Box::new(gate), Box::new(write))
    }

    fn peer_label(&self) -> Option<String> {
        Some(self.peer.clone())
    }

    fn local_label(&self) -> Option<String> {
        Some(self.local.clone())
    }
}

/// The reading half: holds back each handshake frame until it has been
/// checked, then passes everything through.
struct Gate<R> {
    inner: R,
    cert: Option<(CertificateDer<'static>, NameRule)>,
    /// Bytes read and not yet handed on; the first `ready` are checked.
    buf: Vec<u8>,
    ready: usize,
    /// A name has been checked: from here on, bytes pass through.
    open: bool,
    deadline: Pin<Box<Sleep>>,
    _permit: Option<OwnedSemaphorePermit>,
}

fn refused(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, why.to_string())
}

/// Reads a protobuf varint at `*at`.
fn varint(b: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at)?;
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// The length-delimited field `field` of a protobuf message, if present.
fn field(msg: &[u8], want: u64) -> Option<&[u8]> {
    let mut at = 0;
    while at < msg.len() {
        let key = varint(msg, &mut at)?;
        let (number, kind) = (key >> 3, key & 7);
        match kind {
            0 => {
                varint(msg, &mut at)?;
            }
            1 => at += 8,
            5 => at += 4,
            2 => {
                let len = usize::try_from(varint(msg, &mut at)?).ok()?;
                let end = at.checked_add(len)?;
                let value = msg.get(at..end)?;
                if number == want {
                    return Some(value);
                }
                at = end;
            }
            _ => return None,
        }
    }
    None
}

/// What a handshake frame says about the peer's name.
#[derive(Debug, PartialEq, Eq)]
enum Handshake<'a> {
    /// A name message (from a client) or a challenge (from a server).
    Named(&'a str),
    /// Another handshake message (a status).
    Other,
    /// Not a handshake message at all (a node or control message).
    Foreign,
}

/// Reads a frame's payload: `NetworkMessage { auth = 1 { name = 1 {
/// name = 1 } | server_challenge = 4 { name = 1 } | … } }`.
fn handshake(payload: &[u8]) -> Handshake<'_> {
    let Some(auth) = field(payload, 1) else {
        return Handshake::Foreign;
    };
    let named = field(auth, 1).or_else(|| field(auth, 4));
    match named.map(|m| field(m, 1).unwrap_or_default()) {
        Some(name) => match std::str::from_utf8(name) {
            Ok(n) => Handshake::Named(n),
            Err(_) => Handshake::Foreign,
        },
        None => Handshake::Other,
    }
}

impl<R> Gate<R> {
    /// Checks the frames complete in `buf` beyond `ready`; an error closes
    /// the connection.
    fn check(&mut self) -> io::Result<()> {
        while !self.open {
            let rest = &self.buf[self.ready..];
            if rest.len() < 8 {
                return Ok(());
            }
            let mut len = [0u8; 8];
            len.copy_from_slice(&rest[..8]);
            let len = u64::from_be_bytes(len);
            if len > MAX_HANDSHAKE_FRAME {
                return Err(refused("a cluster handshake frame over the limit"));
            }
            // Within MAX_HANDSHAKE_FRAME: fits a usize.
            let end = 8 + len as usize;
            if rest.len() < end {
                return Ok(());
            }
            match handshake(&rest[8..end]) {
                Handshake::Foreign => {
                    return Err(refused("a cluster message before the handshake"))
                }
                Handshake::Other => {}
                Handshake::Named(announced) => {
                    if let Some((cert, rule)) = &self.cert {
                        let name = super::tls::node_name(announced);
                        if !rule.names(cert, name) {
                            tracing::warn!(
                                announced = %name,
                                "refused a cluster peer: its certificate is not valid for the \
                                 node name it announced"
                            );
                            return Err(refused("certificate name mismatch"));
                        }
                    }
                    self.open = true;
                }
            }
            self.ready += end;
        }
        Ok(())
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Gate<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.open && this.ready < this.buf.len() {
                this.ready = this.buf.len();
            }
            if this.ready > 0 {
                let n = this.ready.min(out.remaining());
                out.put_slice(&this.buf[..n]);
                this.buf.drain(..n);
                this.ready -= n;
                return Poll::Ready(Ok(()));
            }
            if this.open {
                return Pin::new(&mut this.inner).poll_read(cx, out);
            }
            let mut chunk = [0u8; 1024];
            let mut read = ReadBuf::new(&mut chunk);
            match Pin::new(&mut this.inner).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) if read.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => {
                    this.buf.extend_from_slice(read.filled());
                    this.check()?;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    if this.deadline.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Err(refused("no cluster handshake in time")));
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

/// Closes every cluster session that has not authenticated within
/// [`AUTH_DEADLINE`] of its opening, however it was opened.
#[derive(Default)]
pub(crate) struct AuthDeadline {
    authenticated: Arc<Mutex<HashSet<u64>>>,
}

impl NodeEventSubscription for AuthDeadline {
    fn node_session_opened(&self, ses: NodeServerSessionInformation) {
        let authenticated = Arc::clone(&self.authenticated);
        tokio::spawn(async move {
            tokio::time::sleep(AUTH_DEADLINE).await;
            if !authenticated.locked().contains(&ses.node_id) {
                tracing::warn!(peer = %ses.peer_addr, "closed a cluster session that did not authenticate in time");
                ses.actor
                    .stop(Some("not authenticated in time".to_string()));
            }
        });
    }

    fn node_session_disconnected(&self, ses: NodeServerSessionInformation) {
        self.authenticated.locked().remove(&ses.node_id);
    }

    fn node_session_authenticated(&self, ses: NodeServerSessionInformation) {
        self.authenticated.locked().insert(ses.node_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn len_field(number: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![(number << 3) | 2, body.len() as u8];
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn names_are_read_from_name_messages_and_challenges() {
        let name = len_field(1, b"b@10.0.0.2");
        let as_client = len_field(1, &len_field(1, &name));
        assert_eq!(handshake(&as_client), Handshake::Named("b@10.0.0.2"));
        // A challenge: a varint before the name is skipped.
        let mut challenge = vec![0x18, 0x2a];
        challenge.extend(len_field(1, b"c@h"));
        let as_server = len_field(1, &len_field(4, &challenge));
        assert_eq!(handshake(&as_server), Handshake::Named("c@h"));
        // A status carries no name; a node message is no handshake.
        let status = len_field(1, &len_field(2, &[0x08, 0x04]));
        assert_eq!(handshake(&status), Handshake::Other);
        assert_eq!(handshake(&len_field(2, b"x")), Handshake::Foreign);
        assert_eq!(handshake(&[0xff, 0xff]), Handshake::Foreign);
    }
}
