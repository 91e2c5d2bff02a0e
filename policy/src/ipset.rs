//! Sets of IP networks (the CIDR lists of `access` and `client_ip.trusted_proxies`),
//! matched in O(log n) whatever the list length: the networks become sorted, merged,
//! non-overlapping address ranges, one table for IPv4 and one for IPv6, searched by
//! bisection. An IPv4-mapped IPv6 address (`::ffff:203.0.113.7`) is matched as IPv4.

use std::net::IpAddr;

use ipnet::IpNet;

/// A set of networks. Empty matches nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpSet {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

/// Parses `10.0.0.0/8`, `2001:db8::/32`, or a bare address (a /32 or /128). A network
/// written with host bits set (`10.0.0.1/8`) is refused: it almost always means a typo.
pub fn parse_net(s: &str) -> Result<IpNet, String> {
    let net: IpNet = match s.parse::<IpNet>() {
        Ok(n) => n,
        Err(_) => s.parse::<IpAddr>().map(IpNet::from).map_err(|_| format!("'{s}' is not an IP address or CIDR"))?,
    };
    if net.trunc() != net {
        return Err(format!("'{s}' has host bits set: write {}", net.trunc()));
    }
    Ok(net)
}

impl IpSet {
    /// Builds a set from CIDR strings.
    pub fn parse<'a>(cidrs: impl IntoIterator<Item = &'a String>) -> Result<IpSet, String> {
        let nets = cidrs.into_iter().map(|s| parse_net(s)).collect::<Result<Vec<_>, _>>()?;
        Ok(IpSet::from_nets(&nets))
    }

    fn from_nets(nets: &[IpNet]) -> IpSet {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for net in nets {
            match net {
                IpNet::V4(n) => v4.push((u32::from(n.network()), u32::from(n.broadcast()))),
                IpNet::V6(n) => match n.network().to_ipv4_mapped() {
                    // ::ffff:0:0/96 and narrower: the IPv4 addresses they carry.
                    Some(v4net) if n.prefix_len() >= 96 => {
                        let bcast = n.broadcast().to_ipv4_mapped().map_or(u32::MAX, u32::from);
                        v4.push((u32::from(v4net), bcast));
                    }
                    _ => v6.push((u128::from(n.network()), u128::from(n.broadcast()))),
                },
            }
        }
        IpSet { v4: merge(v4), v6: merge(v6) }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match canonical(ip) {
            IpAddr::V4(a) => find(&self.v4, u32::from(a)),
            IpAddr::V6(a) => find(&self.v6, u128::from(a)),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }
}

/// IPv4-mapped IPv6 addresses are IPv4 addresses for every purpose here.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn merge<T: Ord + Copy + num_like::Succ>(mut ranges: Vec<(T, T)>) -> Vec<(T, T)> {
    ranges.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        match out.last_mut() {
            Some(last) if start <= last.1.succ() => last.1 = last.1.max(end),
            _ => out.push((start, end)),
        }
    }
    out
}

fn find<T: Ord + Copy>(ranges: &[(T, T)], x: T) -> bool {
    // The last range starting at or before x is the only one that can hold it.
    let i = ranges.partition_point(|&(start, _)| start <= x);
    i > 0 && x <= ranges[i - 1].1
}

mod num_like {
    /// x + 1, saturating: adjacent ranges merge.
    pub trait Succ {
        fn succ(self) -> Self;
    }
    impl Succ for u32 {
        fn succ(self) -> Self {
            self.saturating_add(1)
        }
    }
    impl Succ for u128 {
        fn succ(self) -> Self {
            self.saturating_add(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(cidrs: &[&str]) -> IpSet {
        IpSet::parse(cidrs.iter().map(|s| s.to_string()).collect::<Vec<_>>().iter()).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn membership_table() {
        let s = set(&["10.0.0.0/8", "192.168.1.0/24", "203.0.113.7", "2001:db8::/32", "::ffff:198.51.100.0/120"]);
        let cases = [
            ("10.1.2.3", true),
            ("11.0.0.0", false),
            ("9.255.255.255", false),
            ("192.168.1.255", true),
            ("192.168.2.0", false),
            ("203.0.113.7", true),
            ("203.0.113.8", false),
            ("2001:db8::1", true),
            ("2001:db9::1", false),
            ("::ffff:10.9.9.9", true),
            ("198.51.100.20", true),
            ("::1", false),
        ];
        for (addr, want) in cases {
            assert_eq!(s.contains(ip(addr)), want, "{addr}");
        }
        assert!(!IpSet::default().contains(ip("10.0.0.1")));
    }

    #[test]
    fn overlapping_and_adjacent_networks_merge() {
        let s = set(&["10.0.0.0/24", "10.0.1.0/24", "10.0.0.128/25", "0.0.0.0/0"]);
        assert_eq!(s.v4, vec![(0, u32::MAX)]);
        let s = set(&["10.0.0.0/24", "10.0.1.0/24"]);
        assert_eq!(s.v4.len(), 1);
    }

    #[test]
    fn bad_networks_are_refused_with_the_fix() {
        assert_eq!(parse_net("10.0.0.1/8").unwrap_err(), "'10.0.0.1/8' has host bits set: write 10.0.0.0/8");
        assert!(parse_net("10.0.0.0/33").is_err());
        assert!(parse_net("example.com").is_err());
    }

    #[test]
    fn thousands_of_networks_stay_exact() {
        let nets: Vec<String> =
            (0..5000u32).map(|i| format!("{}.{}.{}.0/24", 10 + i / 65536, (i / 256) % 256, i % 256)).collect();
        let s = IpSet::parse(nets.iter()).unwrap();
        assert!(s.contains(ip("10.19.135.1")));
        assert!(!s.contains(ip("11.0.0.1")));
    }
}
