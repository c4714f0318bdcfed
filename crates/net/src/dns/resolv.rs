//! The upstream resolvers from a resolv.conf.

use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6};

/// The `nameserver` addresses of a resolv.conf's text, in order, port 53,
/// without duplicates. IPv6 addresses may carry a zone (`fe80::1%eth0` or
/// `fe80::1%2`); a zone naming an interface that does not exist drops the
/// line. Comments (`#`, `;`) and anything unparsable are skipped. An empty
/// result means "no upstream": the caller picks a fallback (glibc's is
/// 127.0.0.1).
pub fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    let mut out: Vec<SocketAddr> = Vec::new();
    for line in text.lines() {
        let line = line.split(['#', ';']).next().unwrap_or("");
        let mut words = line.split_whitespace();
        if words.next() != Some("nameserver") {
            continue;
        }
        let Some(addr) = words.next().and_then(parse_nameserver) else {
            continue;
        };
        if !out.contains(&addr) {
            out.push(addr);
        }
    }
    out
}

fn parse_nameserver(word: &str) -> Option<SocketAddr> {
    if let Ok(ip) = word.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, 53));
    }
    let (addr, zone) = word.split_once('%')?;
    let addr: Ipv6Addr = addr.parse().ok()?;
    let scope = match zone.parse::<u32>() {
        Ok(index) => index,
        Err(_) => interface_index(zone)?,
    };
    Some(SocketAddrV6::new(addr, 53, 0, scope).into())
}

fn interface_index(name: &str) -> Option<u32> {
    if name.is_empty() || name.len() > 15 || name.contains('/') || name.starts_with('.') {
        return None;
    }
    std::fs::read_to_string(format!("/sys/class/net/{name}/ifindex"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameservers_in_order_with_garbage_skipped() {
        let text = "\
# generated
search example.com
nameserver 10.0.0.1
nameserver   127.0.0.53   # systemd-resolved
nameserver 2001:db8::1
; nameserver 9.9.9.9
nameserver not-an-address
nameserver
nameserver 10.0.0.1
nameserver fe80::1%lo
nameserver fe80::2%7
nameserver fe80::3%no-such-if0
nameserver1.1.1.1
options ndots:2
\u{0}\u{ff} nameserver 8.8.8.8
";
        let got = parse_resolv_conf(text);
        let lo = interface_index("lo").expect("lo has an index");
        let want: Vec<SocketAddr> = vec![
            "10.0.0.1:53".parse().unwrap(),
            "127.0.0.53:53".parse().unwrap(),
            "[2001:db8::1]:53".parse().unwrap(),
            SocketAddrV6::new("fe80::1".parse().unwrap(), 53, 0, lo).into(),
            SocketAddrV6::new("fe80::2".parse().unwrap(), 53, 0, 7).into(),
        ];
        assert_eq!(got, want);
        assert!(parse_resolv_conf("").is_empty());
        assert!(interface_index("../lo").is_none());
    }
}
