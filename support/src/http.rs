//! One raw HTTP/1.1 client for the tests, benchmarks and examples.
//!
//! Raw on purpose: a request is the bytes written on the socket, so a test
//! can send what no well-behaved client would (a chunked body, garbage),
//! and a benchmark measures the server rather than a client library's pool.
//! Two ways to send:
//!
//! - [`send`] and [`exchange`]: one request on a connection of its own, read
//!   until the server closes it (`Connection: close`), within a time limit;
//!   the answer parsed into a [`Reply`].
//! - [`Conn`]: one keep-alive connection, one request in flight, the body
//!   framed by `Content-Length` and nothing allocated per answer: the load
//!   generators' inner loop.
//! - [`Client`]: [`send`] with a fixed time limit, where a missing answer is
//!   a result to record rather than an error (status 0): the fault tests
//!   and the history checker, which talk to nodes that may be cut off or
//!   paused.

use std::io;
use std::ops::Range;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, ToSocketAddrs};

/// Whether the server is asked to keep the connection open after answering.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Connection {
    /// The server closes the connection after answering, which is how
    /// [`exchange`] knows the answer is complete.
    Close,
    /// The next request follows on the same connection ([`Conn`]).
    KeepAlive,
}

/// One request: a bearer token and a JSON body when they are given.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub token: Option<&'a str>,
    pub body: Option<&'a str>,
}

impl Request<'_> {
    /// Its bytes, sent to `host`: the body with its type and length.
    pub fn bytes(&self, host: &str, connection: Connection) -> Vec<u8> {
        let Request {
            method,
            path,
            token,
            body,
        } = self;
        let mut req = format!("{method} {path} HTTP/1.1\r\nhost: {host}\r\n");
        if connection == Connection::Close {
            req.push_str("connection: close\r\n");
        }
        if let Some(t) = token {
            req.push_str(&format!("authorization: Bearer {t}\r\n"));
        }
        match body {
            Some(b) => req.push_str(&format!(
                "content-type: application/json\r\ncontent-length: {}\r\n\r\n{b}",
                b.len()
            )),
            None => req.push_str("\r\n"),
        }
        req.into_bytes()
    }
}

/// An answer: status, header names lower-cased, the body as text and, when
/// it is JSON, parsed (`Null` otherwise).
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Value,
    pub text: String,
}

impl Reply {
    /// What [`Client`] records when no answer came: status 0, nothing else.
    pub fn none() -> Reply {
        Reply {
            status: 0,
            headers: Vec::new(),
            body: Value::Null,
            text: String::new(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A whole answer as read from the socket: the head, then the body,
    /// de-chunked when it came in chunks.
    pub fn parse(buf: &[u8]) -> io::Result<Reply> {
        let split = find(buf, b"\r\n\r\n").ok_or_else(|| invalid("no complete HTTP head"))?;
        let head = String::from_utf8_lossy(&buf[..split]);
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(status_of)
            .ok_or_else(|| invalid("no status line"))?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_string()))
            .collect();
        let mut raw_body = buf[split + 4..].to_vec();
        if headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
        {
            raw_body = dechunk(&raw_body);
        }
        let text = String::from_utf8_lossy(&raw_body).to_string();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Reply {
            status,
            headers,
            body,
            text,
        })
    }
}

/// Writes `request` (complete bytes, which should ask for
/// [`Connection::Close`]) on a connection of its own and reads the answer
/// until the server closes it, all within `within`.
pub async fn exchange(
    addr: impl ToSocketAddrs,
    request: &[u8],
    within: Duration,
) -> io::Result<Reply> {
    let answer = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(request).await?;
        let mut buf = Vec::new();
        stream.read_to_end(&mut buf).await?;
        Ok::<_, io::Error>(buf)
    };
    let buf = tokio::time::timeout(within, answer).await.map_err(|_| {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no answer within {} ms", within.as_millis()),
        )
    })??;
    Reply::parse(&buf)
}

/// `request` to `addr` (`host:port`) on a connection of its own: the
/// answer, or why there was none within `within`.
pub async fn send(addr: &str, request: Request<'_>, within: Duration) -> io::Result<Reply> {
    exchange(addr, &request.bytes(addr, Connection::Close), within).await
}

/// Requests to nodes that may not answer: each on a connection of its own,
/// within the client's time limit; [`Reply::none`] (status 0) when no answer
/// came in time or the connection failed.
#[derive(Clone, Debug)]
pub struct Client {
    within: Duration,
}

impl Default for Client {
    fn default() -> Self {
        Client::new(Duration::from_secs(20))
    }
}

impl Client {
    pub fn new(within: Duration) -> Client {
        Client { within }
    }

    pub async fn call(
        &self,
        addr: &str,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Reply {
        let request = Request {
            method,
            path,
            token,
            body,
        };
        send(addr, request, self.within)
            .await
            .unwrap_or_else(|_| Reply::none())
    }

    pub async fn get(&self, addr: &str, path: &str, token: Option<&str>) -> Reply {
        self.call(addr, "GET", path, token, None).await
    }
}

/// Waits until `addr` accepts TCP connections (a server process just
/// started): whether it did within `within`, trying every 50 ms.
pub async fn wait_accepting(addr: &str, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if TcpStream::connect(addr).await.is_ok() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One keep-alive HTTP/1.1 connection; one request in flight.
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    body: Range<usize>,
}

impl Conn {
    pub async fn open(addr: impl ToSocketAddrs) -> io::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(4096),
            body: 0..0,
        })
    }

    /// Sends `request` (complete bytes, [`Connection::KeepAlive`]) and reads
    /// one answer, framed by its `Content-Length`; returns its status. The
    /// body is in [`Conn::body`] until the next call.
    pub async fn roundtrip(&mut self, request: &[u8]) -> io::Result<u16> {
        self.stream.write_all(request).await?;
        self.buf.clear();
        let mut scanned: usize = 0;
        let head_end = loop {
            if let Some(i) = find(&self.buf[scanned.saturating_sub(3)..], b"\r\n\r\n") {
                break scanned.saturating_sub(3) + i + 4;
            }
            scanned = self.buf.len();
            self.read_more().await?;
        };
        let head = std::str::from_utf8(&self.buf[..head_end])
            .map_err(|_| invalid("answer head is not UTF-8"))?;
        let status = status_of(head).ok_or_else(|| invalid("no status code"))?;
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .ok_or_else(|| invalid("answer without Content-Length"))?;
        while self.buf.len() < head_end + length {
            self.read_more().await?;
        }
        self.body = head_end..head_end + length;
        Ok(status)
    }

    /// The body of the last answer.
    pub fn body(&self) -> &[u8] {
        &self.buf[self.body.clone()]
    }

    async fn read_more(&mut self) -> io::Result<()> {
        let len = self.buf.len();
        self.buf.resize(len + 4096, 0);
        let n = self.stream.read(&mut self.buf[len..]).await?;
        self.buf.truncate(len + n);
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed by the server",
            ));
        }
        Ok(())
    }
}

/// The status code of a head (or of its first line): `HTTP/1.1 200 OK`.
fn status_of(head: &str) -> Option<u16> {
    head.split(' ').nth(1)?.get(..3)?.parse().ok()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = find(data, b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&data[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = eol + 2;
        out.extend_from_slice(&data[start..(start + size).min(data.len())]);
        data = &data[(start + size + 2).min(data.len())..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_carry_token_body_and_connection() {
        let post = Request {
            method: "POST",
            path: "/p",
            token: Some("t"),
            body: Some("{}"),
        };
        assert_eq!(
            String::from_utf8(post.bytes("h:1", Connection::Close))
                .ok()
                .as_deref(),
            Some(
                "POST /p HTTP/1.1\r\nhost: h:1\r\nconnection: close\r\nauthorization: Bearer t\r\n\
                 content-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
            )
        );
        let get = Request {
            method: "GET",
            path: "/",
            token: None,
            body: None,
        };
        assert_eq!(
            get.bytes("h:1", Connection::KeepAlive),
            b"GET / HTTP/1.1\r\nhost: h:1\r\n\r\n"
        );
    }

    #[test]
    fn answers_are_parsed_and_dechunked() {
        let r = Reply::parse(
            b"HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n\
              Transfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\n2\r\n1}\r\n0\r\n\r\n",
        )
        .expect("a complete answer");
        assert_eq!(r.status, 401);
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.body["a"], 1);
        assert!(Reply::parse(b"HTTP/1.1 200 OK\r\n").is_err());
        assert!(Reply::parse(b"garbage\r\n\r\n").is_err());
    }
}
