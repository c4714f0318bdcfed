//! Address arithmetic for IPAM: subnets, overlap, the next free address,
//! picking a subnet from the pool that collides with nothing the host
//! routes. Which addresses are taken is the caller's (the state DB).

use crate::Error;
use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An IP network: an address with its prefix length, host bits zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Subnet {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

fn bits(ip: IpAddr) -> (u128, u8) {
    match ip {
        IpAddr::V4(a) => (u32::from(a) as u128, 32),
        IpAddr::V6(a) => (u128::from(a), 128),
    }
}

fn from_bits(v: u128, width: u8) -> IpAddr {
    if width == 32 {
        IpAddr::V4(Ipv4Addr::from(v as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(v))
    }
}

fn mask(prefix: u8, width: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        let all = if width == 128 {
            u128::MAX
        } else {
            (1u128 << width) - 1
        };
        all & !((1u128 << (width - prefix)) - 1) & all
    }
}

impl Subnet {
    /// Parses `A.B.C.D/N` or `X::/N`; host bits must be zero (Docker
    /// refuses `10.1.2.3/16` too).
    pub fn parse(s: &str) -> Result<Subnet, Error> {
        let bad = || Error::Invalid(format!("invalid CIDR address: {s}"));
        let (a, p) = s.split_once('/').ok_or_else(bad)?;
        let addr: IpAddr = a.parse().map_err(|_| bad())?;
        if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let prefix: u8 = p.parse().map_err(|_| bad())?;
        let (v, width) = bits(addr);
        if prefix > width {
            return Err(bad());
        }
        if v & !mask(prefix, width) != 0 {
            return Err(Error::Invalid(format!(
                "invalid subnet {s}: it has host bits set (the network is {}/{prefix})",
                from_bits(v & mask(prefix, width), width)
            )));
        }
        Ok(Subnet { addr, prefix })
    }

    fn width(&self) -> u8 {
        bits(self.addr).1
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let (v, w) = bits(ip);
        w == self.width() && v & mask(self.prefix, w) == bits(self.addr).0
    }

    pub fn overlaps(&self, other: &Subnet) -> bool {
        if self.width() != other.width() {
            return false;
        }
        let p = self.prefix.min(other.prefix);
        let w = self.width();
        bits(self.addr).0 & mask(p, w) == bits(other.addr).0 & mask(p, w)
    }

    /// The `n`th address of the subnet (0 is the network address).
    pub fn nth(&self, n: u128) -> Option<IpAddr> {
        let w = self.width();
        let size_bits = w - self.prefix;
        if size_bits < 128 && n >= (1u128 << size_bits) {
            return None;
        }
        Some(from_bits(bits(self.addr).0 + n, w))
    }

    /// The last address (IPv4 broadcast).
    fn last(&self) -> IpAddr {
        let (v, w) = bits(self.addr);
        let all = if w == 128 {
            u128::MAX
        } else {
            (1u128 << w) - 1
        };
        from_bits(v | (all & !mask(self.prefix, w)), w)
    }

    /// The default gateway: the first host address.
    pub fn first_host(&self) -> Option<IpAddr> {
        let ip = self.nth(1)?;
        (self.is_usable(ip)).then_some(ip)
    }

    /// Whether `ip` can be given to a host: inside, and not the network
    /// or (IPv4) broadcast address.
    pub fn is_usable(&self, ip: IpAddr) -> bool {
        if !self.contains(ip) || ip == self.addr {
            return false;
        }
        !(self.addr.is_ipv4() && self.prefix < 31 && ip == self.last())
    }

    /// The lowest usable address not in `taken`, searching at most
    /// `limit` candidates (a huge IPv6 subnet is never walked whole).
    pub fn next_free(&self, taken: &HashSet<IpAddr>, limit: u128) -> Option<IpAddr> {
        let mut n = 1u128;
        while n <= limit {
            let ip = self.nth(n)?;
            if self.is_usable(ip) && !taken.contains(&ip) {
                return Some(ip);
            }
            n += 1;
        }
        None
    }
}

/// The IPv4 routes of the host (`/proc/net/route`) and IPv6 ones
/// (`/proc/net/ipv6_route`), default routes excluded.
pub fn host_routes() -> Vec<Subnet> {
    let mut out = Vec::new();
    if let Ok(t) = std::fs::read_to_string("/proc/net/route") {
        out.extend(parse_proc_route(&t));
    }
    if let Ok(t) = std::fs::read_to_string("/proc/net/ipv6_route") {
        out.extend(parse_proc_ipv6_route(&t));
    }
    out
}

/// `/proc/net/route`: hex little-endian destination and mask columns.
pub fn parse_proc_route(text: &str) -> Vec<Subnet> {
    let mut out = Vec::new();
    for l in text.lines().skip(1) {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < 8 {
            continue;
        }
        let (Ok(dst), Ok(m)) = (u32::from_str_radix(f[1], 16), u32::from_str_radix(f[7], 16))
        else {
            continue;
        };
        let dst = Ipv4Addr::from(u32::from_be(dst));
        let prefix = u32::from_be(m).leading_ones() as u8;
        if prefix == 0 {
            continue;
        }
        out.push(Subnet {
            addr: IpAddr::V4(dst),
            prefix,
        });
    }
    out
}

/// `/proc/net/ipv6_route`: destination hex, prefix hex, ..., device last.
pub fn parse_proc_ipv6_route(text: &str) -> Vec<Subnet> {
    let mut out = Vec::new();
    for l in text.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < 10 || f[0].len() != 32 {
            continue;
        }
        let (Ok(dst), Ok(prefix)) = (u128::from_str_radix(f[0], 16), u8::from_str_radix(f[1], 16))
        else {
            continue;
        };
        // Link-local, multicast, loopback and default routes are not
        // subnets anyone would pick.
        let a = Ipv6Addr::from(dst);
        if prefix == 0 || prefix > 128 || f[9] == "lo" || a.segments()[0] & 0xffc0 == 0xfe80 {
            continue;
        }
        if a.segments()[0] & 0xff00 == 0xff00 {
            continue;
        }
        out.push(Subnet {
            addr: IpAddr::V6(a),
            prefix,
        });
    }
    out
}

/// Docker's default address pools: 172.17-31.0.0/16, then 192.168.0.0/16
/// in /20s.
pub fn default_pool() -> impl Iterator<Item = Subnet> {
    let a = (17u8..=31).map(|b| Subnet {
        addr: IpAddr::V4(Ipv4Addr::new(172, b, 0, 0)),
        prefix: 16,
    });
    let b = (0u8..16).map(|i| Subnet {
        addr: IpAddr::V4(Ipv4Addr::new(192, 168, i * 16, 0)),
        prefix: 20,
    });
    a.chain(b)
}

/// The first subnet of the pool that overlaps none of `used` (other
/// networks' subnets and the host's routes).
pub fn pick(pool: impl Iterator<Item = Subnet>, used: &[Subnet]) -> Option<Subnet> {
    pool.into_iter()
        .find(|s| !used.iter().any(|u| u.overlaps(s)))
}

/// A unique-local IPv6 /64 for a network, derived from a hash of its id
/// (RFC 4193's random global id, made stable).
pub fn ula_for(id: &str) -> Subnet {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in id.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    let g = h.to_be_bytes();
    let mut o = [0u8; 16];
    o[0] = 0xfd;
    o[1..8].copy_from_slice(&g[..7]);
    Subnet {
        addr: IpAddr::V6(Ipv6Addr::from(o)),
        prefix: 64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Subnet {
        Subnet::parse(x).unwrap()
    }

    #[test]
    fn parse_and_refuse() {
        assert_eq!(s("10.1.0.0/16").to_string(), "10.1.0.0/16");
        assert_eq!(s("fd00:1::/64").to_string(), "fd00:1::/64");
        for bad in [
            "10.1.0.0",
            "10.1.0.0/33",
            "10.1.0.0/",
            "10.1.0/16",
            "x/8",
            "10.1.2.3/16",
            "10.1.0.0/+8",
            "fd00::/129",
            "10.0.0.0/-1",
            "",
        ] {
            assert!(Subnet::parse(bad).is_err(), "{bad}");
        }
        assert!(Subnet::parse("10.1.2.3/16")
            .unwrap_err()
            .to_string()
            .contains("10.1.0.0/16"));
    }

    #[test]
    fn overlap_and_contains() {
        assert!(s("10.0.0.0/8").overlaps(&s("10.88.0.0/16")));
        assert!(s("10.88.0.0/16").overlaps(&s("10.0.0.0/8")));
        assert!(!s("10.88.0.0/16").overlaps(&s("10.89.0.0/16")));
        assert!(!s("10.0.0.0/8").overlaps(&s("fd00::/8")));
        assert!(s("0.0.0.0/0").overlaps(&s("1.2.3.0/24")));
        assert!(s("192.0.2.0/24").contains("192.0.2.77".parse().unwrap()));
        assert!(!s("192.0.2.0/24").contains("192.0.3.1".parse().unwrap()));
    }

    #[test]
    fn next_free_skips_network_broadcast_and_taken() {
        let n = s("10.9.0.0/30");
        let mut taken = HashSet::new();
        assert_eq!(n.first_host(), Some("10.9.0.1".parse().unwrap()));
        taken.insert("10.9.0.1".parse().unwrap());
        assert_eq!(n.next_free(&taken, 1000), Some("10.9.0.2".parse().unwrap()));
        taken.insert("10.9.0.2".parse().unwrap());
        assert_eq!(n.next_free(&taken, 1000), None, ".3 is the broadcast");
        let v6 = s("fd00::/64");
        taken.insert("fd00::1".parse().unwrap());
        assert_eq!(v6.next_free(&taken, 1000), Some("fd00::2".parse().unwrap()));
        assert!(s("10.0.0.0/8").is_usable("10.255.255.254".parse().unwrap()));
        assert!(!s("10.0.0.0/8").is_usable("10.255.255.255".parse().unwrap()));
    }

    #[test]
    fn pool_avoids_host_routes_and_networks() {
        let used = [s("172.17.0.0/16"), s("172.16.0.0/12")];
        assert_eq!(pick(default_pool(), &used), Some(s("192.168.0.0/20")));
        let used = [s("172.17.0.0/16"), s("172.18.5.0/24")];
        assert_eq!(pick(default_pool(), &used), Some(s("172.19.0.0/16")));
    }

    #[test]
    fn proc_routes() {
        let t =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                 eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                 eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
                 cni0\t0000580A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n";
        assert_eq!(
            parse_proc_route(t),
            vec![s("192.0.2.0/24"), s("10.88.0.0/16")]
        );
        let t6 = "fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0\n\
                  fe800000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0\n\
                  00000000000000000000000000000001 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000003 00000000 80200001       lo\n";
        assert_eq!(parse_proc_ipv6_route(t6), vec![s("fd00::/64")]);
    }

    #[test]
    fn ula_is_stable_and_local() {
        let a = ula_for("abc");
        assert_eq!(a, ula_for("abc"));
        assert_ne!(a, ula_for("abd"));
        assert!(a.to_string().starts_with("fd"));
        assert_eq!(a.prefix, 64);
    }
}
