//! Who the client is. The socket peer, unless the peer is one of
//! `client_ip.trusted_proxies`: then `x-forwarded-for` is believed, read from the nearest
//! hop outwards, and the first hop that is not itself a trusted proxy is the client (the
//! "rightmost untrusted" rule). Anything a client wrote further left is never believed.
//! A hop that does not parse, reached before the client was found, fails closed: the
//! request is refused rather than attributed to the proxy (which an allow list for the
//! proxy's own network would admit).

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;

use crate::ipset::{IpSet, canonical};

/// The client's address as Warden derived it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp {
    pub ip: IpAddr,
    /// The socket peer is a trusted proxy (its forwarding headers are believed).
    pub peer_trusted: bool,
}

/// A trusted proxy's `x-forwarded-for` hop that is not an address (`unknown`,
/// `001.002.003.004`, `[::1]`), met before the first untrusted hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnparseableHop;

/// Derives the client address from the socket peer and `x-forwarded-for`.
pub fn derive(trusted: &IpSet, peer: IpAddr, headers: &HeaderMap) -> Result<ClientIp, UnparseableHop> {
    let peer = canonical(peer);
    if trusted.is_empty() || !trusted.contains(peer) {
        return Ok(ClientIp { ip: peer, peer_trusted: false });
    }
    let mut client = peer;
    for value in headers.get_all("x-forwarded-for").iter().rev() {
        let value = value.to_str().map_err(|_| UnparseableHop)?;
        for hop in value.rsplit(',') {
            let ip = parse_hop(hop.trim()).ok_or(UnparseableHop)?;
            client = ip;
            if !trusted.contains(ip) {
                return Ok(ClientIp { ip, peer_trusted: true });
            }
        }
    }
    Ok(ClientIp { ip: client, peer_trusted: true })
}

/// `203.0.113.7`, `2001:db8::1`, `203.0.113.7:4711` or `[2001:db8::1]:4711`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>().ok().or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip())).map(canonical)
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn derive_with(trusted: &[&str], peer: &str, xff: &[&'static str]) -> (String, bool) {
        let trusted = IpSet::parse(trusted.iter().map(|s| s.to_string()).collect::<Vec<_>>().iter()).unwrap();
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", HeaderValue::from_static(v));
        }
        match derive(&trusted, peer.parse().unwrap(), &h) {
            Ok(c) => (c.ip.to_string(), c.peer_trusted),
            Err(UnparseableHop) => ("refused".into(), true),
        }
    }

    #[test]
    fn rightmost_untrusted_hop_wins() {
        const LB: &[&str] = &["10.0.0.0/8"];
        // (trusted proxies, peer, x-forwarded-for lines, client, peer trusted)
        type Case = (&'static [&'static str], &'static str, &'static [&'static str], &'static str, bool);
        let cases: &[Case] = &[
            // No trusted proxies: the peer, whatever the header says.
            (&[], "198.51.100.9", &["1.2.3.4"], "198.51.100.9", false),
            // An untrusted peer's header is ignored.
            (LB, "198.51.100.9", &["1.2.3.4"], "198.51.100.9", false),
            // Trusted peer: the nearest untrusted hop.
            (LB, "10.0.0.5", &["1.2.3.4"], "1.2.3.4", true),
            (LB, "10.0.0.5", &["6.6.6.6, 1.2.3.4, 10.0.0.7"], "1.2.3.4", true),
            (LB, "10.0.0.5", &["6.6.6.6", "1.2.3.4"], "1.2.3.4", true),
            // All hops trusted: the farthest one.
            (LB, "10.0.0.5", &["10.9.9.9, 10.0.0.7"], "10.9.9.9", true),
            // Garbage before the client is found fails closed, whatever it is.
            (LB, "10.0.0.5", &["1.2.3.4, nonsense, 10.0.0.7"], "refused", true),
            (LB, "10.0.0.5", &["unknown"], "refused", true),
            (LB, "10.0.0.5", &["001.002.003.004"], "refused", true),
            (LB, "10.0.0.5", &["[::1]"], "refused", true),
            (LB, "10.0.0.5", &["1.2.3.4", ""], "refused", true),
            // Garbage left of the client is the client's own writing: never read.
            (LB, "10.0.0.5", &["nonsense, 1.2.3.4"], "1.2.3.4", true),
            (LB, "198.51.100.9", &["unknown"], "198.51.100.9", false),
            // Ports, brackets and IPv4-mapped forms.
            (LB, "10.0.0.5", &["[2001:db8::1]:443"], "2001:db8::1", true),
            (LB, "::ffff:10.0.0.5", &["203.0.113.7:5000"], "203.0.113.7", true),
            // No header from a trusted peer: the peer.
            (LB, "10.0.0.5", &[], "10.0.0.5", true),
        ];
        for (trusted, peer, xff, want, trusted_peer) in cases {
            assert_eq!(derive_with(trusted, peer, xff), (want.to_string(), *trusted_peer), "{peer} {xff:?}");
        }
    }
}
