//! The client's address: the TCP peer, or, when the peer is a trusted
//! proxy (`--trusted-proxies`), the address the proxy forwarded.
//!
//! Only the right-most hops can be believed: each proxy appends the
//! address it received the request from, and everything to the left of
//! the first untrusted hop was written by the client itself. So the chain
//! is walked from the right, past trusted proxies, and the first hop that
//! is not trusted is the client. The one header read is the one the
//! operator names (`--client-ip-header`: `X-Forwarded-For`, the default,
//! or `Forwarded`, RFC 7239), the one the proxies write; the other is
//! ignored, whatever it says (a client may send it too, and a proxy that
//! does not know it passes it on untouched). A chain that cannot be read
//! counts as no chain (the peer is the client).

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use warp::http::HeaderMap;
use warp::Filter;

/// The client address of a request, resolved by the server (from the
/// connection's peer through the trusted proxies) when the request's head
/// is read, and carried to the routes as a request extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// The client address of a request, as the routes see it (`None` for a
/// request that came on no connection of ours).
pub fn client() -> impl Filter<Extract = (Option<IpAddr>,), Error = Infallible> + Clone {
    warp::ext::optional::<ClientAddr>().map(|c: Option<ClientAddr>| c.map(|ClientAddr(ip)| ip))
}

/// An address block. IPv4 is held as IPv4-mapped IPv6 (`::ffff:a.b.c.d`,
/// prefix + 96), so that both spellings of an IPv4 address or block agree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    net: u128,
    prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        if self.prefix == 0 {
            return true;
        }
        let shift = u32::from(128 - self.prefix);
        (as_v6(ip) >> shift) == (self.net >> shift)
    }
}

fn as_v6(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Cidr, String> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let ip = addr
            .parse::<IpAddr>()
            .map_err(|_| format!("{s:?} is not an IP address or CIDR block"))?;
        let (max, offset) = if ip.is_ipv4() { (32, 96) } else { (128, 0) };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(p) if p <= max => p,
                _ => return Err(format!("{s:?}: the prefix length must be 0 to {max}")),
            },
        };
        Ok(Cidr {
            net: as_v6(ip),
            prefix: prefix + offset,
        })
    }
}

/// The header a trusted proxy names the client in (`--client-ip-header`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ClientIpHeader {
    /// `X-Forwarded-For: client, proxy1, …`.
    #[default]
    #[value(name = "x-forwarded-for")]
    XForwardedFor,
    /// `Forwarded: for=client, for=proxy1, …` (RFC 7239).
    #[value(name = "forwarded")]
    Forwarded,
}

/// The proxies whose forwarded addresses are believed (none by default),
/// and the header they write.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>, ClientIpHeader);

impl TrustedProxies {
    pub fn none() -> TrustedProxies {
        TrustedProxies(Vec::new(), ClientIpHeader::default())
    }

    /// These proxies, naming the client in `header`.
    pub fn with_header(mut self, header: ClientIpHeader) -> TrustedProxies {
        self.1 = header;
        self
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }

    /// The client behind `peer`, given the request's headers.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.contains(peer) {
            return peer;
        }
        let hops = match forwarded_chain(headers, self.1) {
            Some(hops) if !hops.is_empty() => hops,
            _ => return peer,
        };
        // Every hop trusted: the left-most is as far as the chain goes.
        let mut client = peer;
        for hop in hops.into_iter().rev() {
            // Only hops right of the client need be readable: what the
            // client wrote itself (left of it) is never looked at, so junk
            // there cannot push its failures onto the proxy's address.
            match hop.and_then(parse_hop) {
                Some(ip) => client = ip,
                None => return peer,
            }
            if !self.contains(client) {
                break;
            }
        }
        client
    }
}

impl FromStr for TrustedProxies {
    type Err = String;

    /// A comma-separated list of addresses and CIDR blocks; empty: none.
    fn from_str(s: &str) -> Result<TrustedProxies, String> {
        s.split(',')
            .filter(|p| !p.trim().is_empty())
            .map(Cidr::from_str)
            .collect::<Result<Vec<_>, _>>()
            .map(|list| TrustedProxies(list, ClientIpHeader::default()))
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) as the IPv4 address it is.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// The forwarded hops of `header`, left to right, unparsed (`None`: an
/// element that names no hop); `None` when the header is not text.
fn forwarded_chain(headers: &HeaderMap, header: ClientIpHeader) -> Option<Vec<Option<&str>>> {
    if header == ClientIpHeader::XForwardedFor {
        let mut hops = Vec::new();
        for value in headers.get_all("x-forwarded-for") {
            hops.extend(value.to_str().ok()?.split(',').map(Some));
        }
        return Some(hops);
    }
    let mut hops = Vec::new();
    for value in headers.get_all("forwarded") {
        for element in value.to_str().ok()?.split(',') {
            hops.push(element.split(';').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case("for")
                    .then(|| v.trim().trim_matches('"'))
            }));
        }
    }
    Some(hops)
}

/// One hop: `a.b.c.d`, `a.b.c.d:port`, `v6` or `[v6]:port`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Some(rest) = hop.strip_prefix('[') {
        let (v6, _) = rest.split_once(']')?;
        return v6.parse::<Ipv6Addr>().ok().map(|ip| canonical(ip.into()));
    }
    let (v4, port) = hop.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    v4.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn trusted(s: &str) -> TrustedProxies {
        s.parse().unwrap()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn parses_blocks_and_bare_addresses() {
        let t = trusted("10.0.0.0/8, 192.168.1.1,2001:db8::/32,::1");
        assert!(t.contains(ip("10.200.3.4")));
        assert!(!t.contains(ip("11.0.0.1")));
        assert!(t.contains(ip("192.168.1.1")));
        assert!(!t.contains(ip("192.168.1.2")));
        assert!(t.contains(ip("2001:db8:ffff::1")));
        assert!(!t.contains(ip("2001:db9::1")));
        assert!(t.contains(ip("::1")));
        assert!(!t.contains(ip("::2")));
        assert!(trusted("0.0.0.0/0").contains(ip("203.0.113.9")));
        assert!(!trusted("0.0.0.0/0").contains(ip("2001:db8::1")));
        assert!(trusted("").is_empty());
    }

    #[test]
    fn refuses_bad_input() {
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "example.com",
            "10.0.0/8",
            "1.2.3.4/",
            "1.2.3.4/x",
        ] {
            assert!(bad.parse::<TrustedProxies>().is_err(), "{bad}");
        }
    }

    #[test]
    fn mapped_v4_is_v4() {
        let t = trusted("127.0.0.1");
        assert!(t.contains(ip("::ffff:127.0.0.1")));
        assert_eq!(canonical(ip("::ffff:10.1.2.3")), ip("10.1.2.3"));
        assert!(trusted("::ffff:10.0.0.0/104").contains(ip("10.9.9.9")));
        assert!(trusted("10.0.0.0/8").contains(ip("::ffff:10.9.9.9")));
        // All of IPv6 holds the mapped IPv4 addresses too.
        assert!(trusted("::/0").contains(ip("10.9.9.9")));
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_says() {
        let t = trusted("10.0.0.0/8");
        let h = headers(&[("x-forwarded-for", "203.0.113.1")]);
        assert_eq!(t.client(ip("198.51.100.2"), &h), ip("198.51.100.2"));
        assert_eq!(
            TrustedProxies::none().client(ip("10.0.0.1"), &h),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn right_most_untrusted_hop_is_the_client() {
        let t = trusted("10.0.0.0/8");
        // The client wrote 1.1.1.1 itself; the first proxy saw 203.0.113.7.
        let h = headers(&[("x-forwarded-for", "1.1.1.1, 203.0.113.7, 10.0.0.5")]);
        assert_eq!(t.client(ip("10.0.0.1"), &h), ip("203.0.113.7"));
        // Split over two header lines, and with ports and brackets.
        let h = headers(&[
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-for", "[2001:db8::7]:443, 10.0.0.5:8080"),
        ]);
        assert_eq!(t.client(ip("10.0.0.1"), &h), ip("2001:db8::7"));
        // Every hop trusted: the left-most.
        let h = headers(&[("x-forwarded-for", "10.1.1.1, 10.0.0.5")]);
        assert_eq!(t.client(ip("10.0.0.1"), &h), ip("10.1.1.1"));
        let h = headers(&[("x-forwarded-for", "::ffff:203.0.113.8")]);
        assert_eq!(t.client(ip("::ffff:10.0.0.1"), &h), ip("203.0.113.8"));
    }

    #[test]
    fn forwarded_header() {
        let t = trusted("10.0.0.0/8").with_header(ClientIpHeader::Forwarded);
        let h = headers(&[(
            "forwarded",
            r#"for=1.1.1.1;proto=https, For="[2001:db8::9]:4711";by=10.0.0.2, for=10.0.0.9"#,
        )]);
        assert_eq!(t.client(ip("10.0.0.1"), &h), ip("2001:db8::9"));
        // Only the header named is read, whatever the other says.
        let h = headers(&[
            ("forwarded", "for=198.51.100.1"),
            ("x-forwarded-for", "203.0.113.3"),
        ]);
        assert_eq!(t.client(ip("10.0.0.1"), &h), ip("198.51.100.1"));
        let xff = trusted("10.0.0.0/8");
        assert_eq!(xff.client(ip("10.0.0.1"), &h), ip("203.0.113.3"));
        // A Forwarded header alone is nothing to proxies that write
        // X-Forwarded-For (a client could have sent it).
        let h = headers(&[("forwarded", "for=198.51.100.1")]);
        assert_eq!(xff.client(ip("10.0.0.1"), &h), ip("10.0.0.1"));
    }

    #[test]
    fn empty_or_unreadable_chain_falls_back_to_the_peer() {
        let t = trusted("10.0.0.0/8");
        let peer = ip("10.0.0.1");
        for bad in [
            "",
            " ",
            "unknown",
            "1.1.1.1, garbage",
            "1.2.3.4:99999",
            "203.0.113.1,,",
            "1.1.1.1, junk, 10.0.0.3",
        ] {
            let h = headers(&[("x-forwarded-for", bad)]);
            assert_eq!(t.client(peer, &h), peer, "{bad:?}");
        }
        let t = t.with_header(ClientIpHeader::Forwarded);
        let h = headers(&[("forwarded", "for=unknown")]);
        assert_eq!(t.client(peer, &h), peer);
        let h = headers(&[("forwarded", "proto=https")]);
        assert_eq!(t.client(peer, &h), peer);
        assert_eq!(t.client(peer, &HeaderMap::new()), peer);
    }

    #[test]
    fn junk_left_of_the_client_is_never_read() {
        let t = trusted("10.0.0.0/8");
        let h = headers(&[("x-forwarded-for", "junk, 203.0.113.66, 10.0.0.4")]);
        assert_eq!(t.client(ip("10.0.0.1"), &h), ip("203.0.113.66"));
        let t = t.with_header(ClientIpHeader::Forwarded);
        let h = headers(&[("forwarded", "for=junk, for=203.0.113.66")]);
        assert_eq!(t.client(ip("10.0.0.1"), &h), ip("203.0.113.66"));
    }
}
