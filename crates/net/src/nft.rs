//! nftables: berth's rules live in one table of their own (family `inet`)
//! and nowhere else, so Podman's, Docker's or the admin's tables are never
//! flushed or reordered. The whole table is written from the state DB in
//! one `nft -f` transaction (delete + re-create), which makes every apply
//! idempotent and repairs whatever a crash left behind.

use crate::ipam::Subnet;
use crate::Error;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::IpAddr;
use std::process::{Command, Stdio};

/// A network as the firewall sees it.
#[derive(Debug, Clone)]
pub struct NetRules {
    pub bridge: String,
    /// Each subnet with its gateway (the host's address on the bridge).
    pub subnets: Vec<(Subnet, IpAddr)>,
    /// `--internal`: no traffic leaves the network.
    pub internal: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// One published port: `host_ip:host_port` -> `ip:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRule {
    pub proto: Proto,
    /// None: every host address.
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub ip: IpAddr,
    pub port: u16,
    /// The container's id, as the rule's comment.
    pub container: String,
}

fn quote(s: &str) -> String {
    // Interface names and ids are [A-Za-z0-9_.-]; anything else is refused
    // by the caller, but never let a quote through.
    format!("\"{}\"", s.replace(['"', '\\', '\n'], ""))
}

/// The table `table` with the rules for `nets` and `ports`, as an
/// `nft -f` script that replaces the table atomically.
pub fn script(table: &str, nets: &[NetRules], ports: &[PortRule]) -> String {
    let mut s = String::new();
    // `add` then `delete` makes the delete succeed whether or not the
    // table exists (nft 1.0.6 has no `destroy`); all in one transaction.
    let _ = writeln!(s, "add table inet {table}");
    let _ = writeln!(s, "delete table inet {table}");
    let _ = writeln!(s, "table inet {table} {{");
    let bridges: Vec<String> = nets.iter().map(|n| quote(&n.bridge)).collect();
    if !bridges.is_empty() {
        let _ = writeln!(
            s,
            "  set bridges {{ type ifname; elements = {{ {} }} }}",
            bridges.join(", ")
        );
    }
    // Published ports: DNAT for packets to a local address, arriving
    // (prerouting) or sent from the host itself (output).
    let _ = writeln!(s, "  chain ports {{");
    for p in ports {
        let (fam, to) = match p.ip {
            IpAddr::V4(a) => ("ip", format!("{a}:{}", p.port)),
            IpAddr::V6(a) => ("ip6", format!("[{a}]:{}", p.port)),
        };
        let daddr = match p.host_ip {
            Some(IpAddr::V4(a)) if fam == "ip" => format!("ip daddr {a} "),
            Some(IpAddr::V6(a)) if fam == "ip6" => format!("ip6 daddr {a} "),
            Some(_) => continue,
            None => format!(
                "meta nfproto {} ",
                if fam == "ip" { "ipv4" } else { "ipv6" }
            ),
        };
        let _ = writeln!(
            s,
            "    {daddr}{} dport {} dnat {fam} to {to} comment {}",
            p.proto.as_str(),
            p.host_port,
            quote(&p.container)
        );
    }
    let _ = writeln!(s, "  }}");
    for hook in ["prerouting", "output"] {
        let _ = writeln!(
            s,
            "  chain {hook} {{ type nat hook {hook} priority -100; policy accept;\n    fib daddr type local jump ports\n  }}"
        );
    }
    // Source NAT: outbound traffic of each network, DNATed traffic from
    // the host's loopback, and hairpin (a container reaching a published
    // port of its own network through a host address).
    let _ = writeln!(
        s,
        "  chain postrouting {{ type nat hook postrouting priority srcnat; policy accept;"
    );
    let _ = writeln!(
        s,
        "    meta nfproto ipv4 ct status dnat ip saddr 127.0.0.0/8 masquerade"
    );
    for n in nets {
        for (sub, _) in &n.subnets {
            let fam = if sub.addr.is_ipv4() { "ip" } else { "ip6" };
            let _ = writeln!(
                s,
                "    ct status dnat {fam} saddr {sub} {fam} daddr {sub} oifname {} masquerade",
                quote(&n.bridge)
            );
            if !n.internal && sub.addr.is_ipv4() {
                let _ = writeln!(
                    s,
                    "    ip saddr {sub} ip daddr != {sub} oifname != {} masquerade",
                    quote(&n.bridge)
                );
            }
        }
    }
    let _ = writeln!(s, "  }}");
    // Container-to-container traffic inside a network needs no NAT; when
    // br_netfilter hands bridged packets to the IP hooks it would still be
    // tracked, at a cost of ~11% throughput (A/B): not tracked. Anything to or
    // from the gateway (the host, published ports, hairpin) still is.
    let _ = writeln!(
        s,
        "  chain raw {{ type filter hook prerouting priority raw; policy accept;"
    );
    for n in nets {
        for (sub, gw) in &n.subnets {
            let fam = if sub.addr.is_ipv4() { "ip" } else { "ip6" };
            let _ = writeln!(
                s,
                "    {fam} saddr {sub} {fam} daddr {sub} {fam} saddr != {gw} {fam} daddr != {gw} notrack"
            );
        }
    }
    let _ = writeln!(s, "  }}");
    // Filtering: networks are isolated from each other; an internal one
    // from everything but itself; nothing from a bridge may open a connection
    // to the host's 127.0.0.0/8 (route_localnet is on for port publishing;
    // replies of DNATed loopback connections are let through).
    let _ = writeln!(
        s,
        "  chain forward {{ type filter hook forward priority filter; policy accept;"
    );
    for n in nets {
        let b = quote(&n.bridge);
        if n.internal {
            let _ = writeln!(s, "    iifname {b} oifname != {b} drop");
            let _ = writeln!(s, "    oifname {b} iifname != {b} drop");
        } else if !bridges.is_empty() {
            let _ = writeln!(s, "    iifname {b} oifname != {b} oifname @bridges drop");
        }
    }
    let _ = writeln!(s, "  }}");
    if !bridges.is_empty() {
        let _ = writeln!(
            s,
            "  chain input {{ type filter hook input priority filter; policy accept;\n    \
             iifname @bridges ip daddr 127.0.0.0/8 ct state invalid,untracked drop\n    \
             iifname @bridges ip daddr 127.0.0.0/8 ct direction original drop\n  }}"
        );
    }
    let _ = writeln!(s, "}}");
    s
}

/// Runs `nft -f -` with `script`.
pub fn apply(script: &str) -> Result<(), Error> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Nft(format!("run nft: {e} (is the nftables package installed?)")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(|e| Error::Nft(format!("write to nft: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::Nft(format!("wait for nft: {e}")))?;
    if !out.status.success() {
        return Err(Error::Nft(format!(
            "nft failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Deletes the table (nothing of berth's is left in nftables).
pub fn delete_table(table: &str) -> Result<(), Error> {
    apply(&format!(
        "add table inet {table}\ndelete table inet {table}\n"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_shape() {
        let nets = [NetRules {
            bridge: "berth0".into(),
            subnets: vec![(
                Subnet::parse("172.17.0.0/16").unwrap(),
                "172.17.0.1".parse().unwrap(),
            )],
            internal: false,
        }];
        let ports = [
            PortRule {
                proto: Proto::Tcp,
                host_ip: Some("127.0.0.1".parse().unwrap()),
                host_port: 18080,
                ip: "172.17.0.2".parse().unwrap(),
                port: 80,
                container: "abc".into(),
            },
            PortRule {
                proto: Proto::Udp,
                host_ip: None,
                host_port: 53,
                ip: "172.17.0.3".parse().unwrap(),
                port: 5353,
                container: "def\"".into(),
            },
        ];
        let s = script("berth", &nets, &ports);
        assert!(s.starts_with("add table inet berth\ndelete table inet berth\n"));
        assert!(s.contains(
            "ip daddr 127.0.0.1 tcp dport 18080 dnat ip to 172.17.0.2:80 comment \"abc\""
        ));
        assert!(
            s.contains("meta nfproto ipv4 udp dport 53 dnat ip to 172.17.0.3:5353 comment \"def\"")
        );
        assert!(s.contains(
            "ip saddr 172.17.0.0/16 ip daddr != 172.17.0.0/16 oifname != \"berth0\" masquerade"
        ));
        assert!(s.contains(
            "ip saddr 172.17.0.0/16 ip daddr 172.17.0.0/16 ip saddr != 172.17.0.1 ip daddr != 172.17.0.1 notrack"
        ));
        assert_eq!(s.matches('{').count(), s.matches('}').count());
    }

    #[test]
    fn syntax_accepted_by_nft() {
        // `nft -c` checks a script without applying it (needs root and nft).
        if Command::new("nft").arg("--version").output().is_err() || !nix_is_root() {
            eprintln!("skipped: needs root and nft");
            return;
        }
        let nets = [
            NetRules {
                bridge: "berth0".into(),
                subnets: vec![
                    (
                        Subnet::parse("172.17.0.0/16").unwrap(),
                        "172.17.0.1".parse().unwrap(),
                    ),
                    (
                        Subnet::parse("fd00:1::/64").unwrap(),
                        "fd00:1::1".parse().unwrap(),
                    ),
                ],
                internal: false,
            },
            NetRules {
                bridge: "br-123".into(),
                subnets: vec![(
                    Subnet::parse("172.18.0.0/16").unwrap(),
                    "172.18.0.1".parse().unwrap(),
                )],
                internal: true,
            },
        ];
        let ports = [PortRule {
            proto: Proto::Tcp,
            host_ip: None,
            host_port: 8080,
            ip: "172.17.0.2".parse().unwrap(),
            port: 80,
            container: "abc".into(),
        }];
        for (n, p) in [(&nets[..], &ports[..]), (&[][..], &[][..])] {
            let s = script("berth_syntax_check", n, p);
            let mut c = Command::new("nft")
                .args(["-c", "-f", "-"])
                .stdin(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            c.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
            let out = c.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}\n{s}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    fn nix_is_root() -> bool {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() == 0 }
    }
}
