//! Who is calling: the socket's peer address, unless that peer is a proxy
//! we were told to trust (`TRUSTED_PROXIES`), in which case the client is the
//! nearest address in `X-Forwarded-For` that is not one of our proxies.
//! A header from any other peer is ignored, so a client cannot pick its own
//! rate-limit bucket by sending `X-Forwarded-For`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request};

/// An IP network (`10.0.0.0/8`, `::1/128`); a bare address is a /32 or /128.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_match(&net.octets(), &ip.octets(), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_match(&net.octets(), &ip.octets(), self.prefix)
            }
            _ => false,
        }
    }
}

fn prefix_match(net: &[u8], ip: &[u8], prefix: u8) -> bool {
    let full = usize::from(prefix / 8);
    let rest = prefix % 8;
    if net[..full] != ip[..full] {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    (net[full] & mask) == (ip[full] & mask)
}

/// IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`, what a dual-stack socket
/// reports) compare as the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct BadIpNet;

impl FromStr for IpNet {
    type Err = BadIpNet;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let addr = canonical(addr.trim().parse::<IpAddr>().map_err(|_| BadIpNet)?);
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.trim().parse::<u8>().map_err(|_| BadIpNet)?,
            None => max,
        };
        if prefix > max {
            return Err(BadIpNet);
        }
        Ok(IpNet { addr, prefix })
    }
}

#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Arc<Vec<IpNet>>);

impl TrustedProxies {
    pub fn new(nets: Vec<IpNet>) -> Self {
        TrustedProxies(Arc::new(nets))
    }

    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(ip))
    }

    /// The client's address for a request from `peer` with these headers.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.is_trusted(peer) {
            return peer;
        }
        // Proxies append the address they received from, so the list reads
        // client, proxy1, proxy2…; walk back from our side and stop at the
        // first address that is not one of our proxies. Anything left of it
        // was written by the client and proves nothing.
        let mut nearest = peer;
        for value in headers.get_all("x-forwarded-for").iter().rev() {
            let Ok(text) = value.to_str() else {
                return nearest;
            };
            for item in text.rsplit(',') {
                let Ok(ip) = item.trim().parse::<IpAddr>().map(canonical) else {
                    return nearest;
                };
                if !self.is_trusted(ip) {
                    return ip;
                }
                nearest = ip;
            }
        }
        nearest
    }

    /// The client's address for `request` (served with `ConnectInfo`).
    pub fn client_ip_of<B>(&self, request: &Request<B>) -> IpAddr {
        match request.extensions().get::<ConnectInfo<SocketAddr>>() {
            Some(ConnectInfo(addr)) => self.client_ip(addr.ip(), request.headers()),
            // Only when served without connect info (never by Application):
            // everyone shares one bucket rather than failing.
            None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }

    fn headers(xff: &[&'static str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn nets() {
        let net: IpNet = "10.1.0.0/16".parse().unwrap_or(IpNet {
            addr: ip("0.0.0.0"),
            prefix: 32,
        });
        assert!(net.contains(ip("10.1.200.3")));
        assert!(!net.contains(ip("10.2.0.1")));
        assert!(net.contains(ip("::ffff:10.1.0.9")));
        assert!("::1".parse::<IpNet>().is_ok_and(|n| n.contains(ip("::1"))));
        assert!("1.2.3.4/33".parse::<IpNet>().is_err());
        assert!("1.2.3.4/x".parse::<IpNet>().is_err());
        assert!("10.0.0.0/9"
            .parse::<IpNet>()
            .is_ok_and(|n| n.contains(ip("10.127.0.1")) && !n.contains(ip("10.128.0.1"))));
    }

    #[test]
    fn untrusted_peer_header_is_ignored() {
        let none = TrustedProxies::default();
        assert_eq!(
            none.client_ip(ip("192.0.2.7"), &headers(&["1.1.1.1"])),
            ip("192.0.2.7")
        );
    }

    #[test]
    fn trusted_peer_yields_nearest_untrusted_hop() {
        let trusted = TrustedProxies::new(vec![
            "127.0.0.1".parse().unwrap_or(IpNet {
                addr: ip("0.0.0.0"),
                prefix: 32,
            }),
            "10.0.0.0/8".parse().unwrap_or(IpNet {
                addr: ip("0.0.0.0"),
                prefix: 32,
            }),
        ]);
        let peer = ip("127.0.0.1");
        // The client forged "6.6.6.6"; the proxy appended the real address.
        assert_eq!(
            trusted.client_ip(peer, &headers(&["6.6.6.6, 203.0.113.9, 10.0.0.2"])),
            ip("203.0.113.9")
        );
        assert_eq!(
            trusted.client_ip(peer, &headers(&["6.6.6.6", "203.0.113.9"])),
            ip("203.0.113.9")
        );
        assert_eq!(trusted.client_ip(peer, &headers(&[])), peer);
        // Garbage stops the walk at the last trusted hop.
        assert_eq!(
            trusted.client_ip(peer, &headers(&["junk, 10.0.0.3"])),
            ip("10.0.0.3")
        );
    }
}
