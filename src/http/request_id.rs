//! Request ids: every request gets one, every answer carries it in
//! `X-Request-Id`, every log line written while handling the request
//! carries it (`request_id`, a field of the `request` span the request's
//! future runs in, see [`super::server`]), and so does its audit entry.
//!
//! The id is the one a trusted proxy (`--trusted-proxies`: the TCP peer
//! itself, not a forwarded hop) sent in `X-Request-Id`, when there is
//! exactly one and it is sane (1 to [`MAX_LEN`] visible ASCII characters);
//! otherwise a new one, 32 random hex digits. A client that is not a
//! trusted proxy cannot choose the id its lines are logged under.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use warp::http::header::HeaderName;
use warp::http::{HeaderMap, HeaderValue};

use super::client_addr::{canonical, TrustedProxies};

/// The header, in requests (from trusted proxies) and in every answer.
pub const HEADER: &str = "x-request-id";

/// [`HEADER`] as a header name, made once.
pub const HEADER_NAME: HeaderName = HeaderName::from_static(HEADER);

/// The longest id taken from a proxy.
pub const MAX_LEN: usize = 128;

/// One request's id. Cheap to make and to clone: a fresh id is held as
/// its 32 hex digits inline, without an allocation.
#[derive(Clone, PartialEq, Eq)]
pub struct RequestId(Repr);

#[derive(Clone, PartialEq, Eq)]
enum Repr {
    Fresh([u8; 32]),
    Sent(Arc<str>),
}

impl RequestId {
    /// The id of a request that came from the TCP peer `peer`.
    pub fn of(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> RequestId {
        if !trusted.is_empty() && trusted.contains(canonical(peer)) {
            let mut sent = headers.get_all(HEADER).iter();
            if let (Some(one), None) = (sent.next(), sent.next()) {
                if let Some(id) = sane(one.as_bytes()) {
                    return RequestId(Repr::Sent(Arc::from(id)));
                }
            }
        }
        RequestId::generate()
    }

    /// A new id: 128 random bits as 32 hex digits.
    pub fn generate() -> RequestId {
        RequestId(Repr::Fresh(hex(rand::random::<u128>())))
    }

    pub fn as_str(&self) -> &str {
        match &self.0 {
            // Hex digits are ASCII: this never falls back.
            Repr::Fresh(digits) => std::str::from_utf8(digits).unwrap_or_default(),
            Repr::Sent(id) => id,
        }
    }

    /// As a header value (always one: the id is visible ASCII).
    pub fn header_value(&self) -> Option<HeaderValue> {
        HeaderValue::from_str(self.as_str()).ok()
    }
}

/// `n` as 32 lower-case hex digits.
fn hex(n: u128) -> [u8; 32] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 32];
    for (i, digit) in out.iter_mut().enumerate() {
        let nibble = (n >> (124 - 4 * i)) & 0xf;
        *digit = DIGITS[nibble as usize];
    }
    out
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RequestId").field(&self.as_str()).finish()
    }
}

/// The id, when it is 1 to [`MAX_LEN`] visible ASCII characters.
fn sane(value: &[u8]) -> Option<&str> {
    let ok = (1..=MAX_LEN).contains(&value.len()) && value.iter().all(|b| b.is_ascii_graphic());
    ok.then(|| std::str::from_utf8(value).ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(HEADER, HeaderValue::from_bytes(v).expect("a header value"));
        }
        h
    }

    #[test]
    fn only_a_trusted_proxys_sane_id_is_taken() {
        let trusted: TrustedProxies = "10.0.0.0/8".parse().expect("a list");
        let proxy: IpAddr = "10.1.2.3".parse().expect("an address");
        let stranger: IpAddr = "192.0.2.1".parse().expect("an address");
        let sent = headers(&[b"req-7f3a.b_9:1"]);
        assert_eq!(
            RequestId::of(proxy, &sent, &trusted).as_str(),
            "req-7f3a.b_9:1"
        );
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().expect("an address");
        assert_eq!(
            RequestId::of(mapped, &sent, &trusted).as_str(),
            "req-7f3a.b_9:1"
        );
        for (peer, h) in [
            (stranger, sent.clone()),
            (proxy, headers(&[b""])),
            (proxy, headers(&[b"has space"])),
            (proxy, headers(&["caf\u{e9}".as_bytes()])),
            (proxy, headers(&[&[b'a'; MAX_LEN + 1]])),
            (proxy, headers(&[b"one", b"two"])),
            (proxy, HeaderMap::new()),
        ] {
            let id = RequestId::of(peer, &h, &trusted);
            assert_eq!(id.as_str().len(), 32, "{peer} {h:?}: {id}");
            assert!(id.as_str().bytes().all(|b| b.is_ascii_hexdigit()));
        }
        assert_eq!(
            RequestId::of(proxy, &headers(&[&[b'a'; MAX_LEN]]), &trusted)
                .as_str()
                .len(),
            MAX_LEN
        );
        assert_ne!(RequestId::generate(), RequestId::generate());
    }

    #[test]
    fn a_fresh_id_is_its_number_in_hex() {
        assert_eq!(hex(0), [b'0'; 32]);
        for n in [1u128, 0xdead_beef, u128::MAX, rand::random::<u128>()] {
            let digits = hex(n);
            let text = std::str::from_utf8(&digits).expect("ASCII");
            assert_eq!(text, format!("{n:032x}"));
        }
        let id = RequestId::generate();
        let value = id.header_value().expect("a header value");
        assert_eq!(value.to_str().ok(), Some(id.as_str()));
        assert_eq!(format!("{id}"), id.as_str());
    }
}
