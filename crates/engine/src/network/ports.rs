//! Published ports: `-p` parsing, reserving host ports (held by sockets
//! while the container runs), and the nftables table written whole from
//! the DB.

use super::*;

/// A `-p` request: host port 0 means "any free one".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Publish {
    pub proto: Proto,
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub port: u16,
}

/// A published port in effect (a row of `ports`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    pub proto: Proto,
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub port: u16,
}

/// Parses `-p`: `[ip:][hostPort:]containerPort[/proto]` (IPv6 host
/// addresses in brackets); ports may be ranges of equal length
/// (`8000-8009:80-89`), and a container range alone gets random host ports.
pub fn parse_publish(s: &str) -> Result<Vec<Publish>> {
    let bad = |why: &str| Error::Invalid(format!("invalid publish spec {s:?}: {why}"));
    let (rest, proto) = match s.rsplit_once('/') {
        Some((r, "tcp")) => (r, Proto::Tcp),
        Some((r, "udp")) => (r, Proto::Udp),
        Some((_, p)) => return Err(bad(&format!("unknown protocol {p:?}"))),
        None => (s, Proto::Tcp),
    };
    let (host_ip, rest) = if let Some(r) = rest.strip_prefix('[') {
        let (ip, r) = r.split_once(']').ok_or_else(|| bad("unclosed ["))?;
        let ip: IpAddr = ip.parse().map_err(|_| bad("bad host address"))?;
        let r = r.strip_prefix(':').ok_or_else(|| bad("missing port"))?;
        (Some(ip), r)
    } else {
        let parts: Vec<&str> = rest.split(':').collect();
        match parts.len() {
            1 | 2 => (None, rest),
            3 => {
                let ip = if parts[0].is_empty() {
                    None
                } else {
                    Some(parts[0].parse().map_err(|_| bad("bad host address"))?)
                };
                (ip, &rest[parts[0].len() + 1..])
            }
            _ => return Err(bad("too many colons")),
        }
    };
    // 0.0.0.0 means every IPv4 address, as no address does ([::] stays:
    // it asks for IPv6).
    let host_ip = host_ip.filter(|i: &IpAddr| *i != IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    let port = |p: &str| -> Result<u16> {
        let n: u16 = p.parse().map_err(|_| bad(&format!("bad port {p:?}")))?;
        if n == 0 {
            return Err(bad("port 0"));
        }
        Ok(n)
    };
    let range = |p: &str| -> Result<(u16, u16)> {
        match p.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (port(a)?, port(b)?);
                if a > b {
                    return Err(bad(&format!("empty port range {p:?}")));
                }
                Ok((a, b))
            }
            None => port(p).map(|n| (n, n)),
        }
    };
    let (host, ctr) = match rest.split_once(':') {
        Some((h, c)) if !h.is_empty() => (Some(range(h)?), range(c)?),
        Some((_, c)) => (None, range(c)?),
        None => (None, range(rest)?),
    };
    if let Some((a, b)) = host {
        if b - a != ctr.1 - ctr.0 {
            return Err(bad("the host and container port ranges differ in length"));
        }
    }
    Ok((ctr.0..=ctr.1)
        .enumerate()
        .map(|(i, port)| Publish {
            proto,
            host_ip,
            host_port: host.map(|(a, _)| a + i as u16).unwrap_or(0),
            port,
        })
        .collect())
}

/// `-p` plus, with `-P`, every port the image EXPOSEs (random host ports).
pub(super) fn publish_list(cfg: &crate::container::Config) -> Vec<Publish> {
    let mut out = cfg.spec.publish.clone();
    if cfg.spec.publish_all {
        if let Some(exposed) = cfg.image()["ExposedPorts"].as_object() {
            for k in exposed.keys() {
                let (port, proto) = k.split_once('/').unwrap_or((k.as_str(), "tcp"));
                let proto = match proto {
                    "tcp" => Proto::Tcp,
                    "udp" => Proto::Udp,
                    _ => continue,
                };
                let Ok(port) = port.parse::<u16>() else {
                    continue;
                };
                if port == 0 || out.iter().any(|p| p.port == port && p.proto == proto) {
                    continue;
                }
                out.push(Publish {
                    proto,
                    host_ip: None,
                    host_port: 0,
                    port,
                });
            }
        }
    }
    out
}

/// Binds `ip:port` on the host (port 0: a free one the kernel picks);
/// returns the port and the socket, which holds the port while the
/// container runs (packets never reach it: the DNAT rules come first).
fn probe_port(
    proto: Proto,
    ip: Option<IpAddr>,
    port: u16,
) -> std::io::Result<(u16, std::os::fd::OwnedFd)> {
    let ip = ip.unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    let addr = std::net::SocketAddr::new(ip, port);
    match proto {
        Proto::Tcp => {
            let l = std::net::TcpListener::bind(addr)?;
            Ok((l.local_addr()?.port(), l.into()))
        }
        Proto::Udp => {
            let u = std::net::UdpSocket::bind(addr)?;
            Ok((u.local_addr()?.port(), u.into()))
        }
    }
}

impl Engine {
    /// Rewrites this store's nftables table from the DB. Call with the
    /// network lock held.
    pub(super) fn apply_firewall(&self) -> Result<()> {
        let nets = self.networks()?;
        let rules: Vec<NetRules> = nets
            .iter()
            .map(|n| NetRules {
                bridge: n.bridge.clone(),
                subnets: std::iter::once((n.subnet, n.gateway))
                    .chain(n.subnet6.zip(n.gateway6))
                    .collect(),
                internal: n.internal,
            })
            .collect();
        let mut st = self
            .db
            .conn()
            .prepare(
                "SELECT container, proto, host_ip, host_port, ip, port FROM ports ORDER BY rowid",
            )
            .map_err(self.dberr("list ports"))?;
        let ports = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, u16>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, u16>(5)?,
                ))
            })
            .map_err(self.dberr("list ports"))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.dberr("list ports"))?;
        let ports: Vec<PortRule> = ports
            .into_iter()
            .filter_map(|(c, proto, hip, hport, ip, port)| {
                Some(PortRule {
                    proto: if proto == "udp" {
                        Proto::Udp
                    } else {
                        Proto::Tcp
                    },
                    host_ip: if hip.is_empty() {
                        None
                    } else {
                        hip.parse().ok()
                    },
                    host_port: hport,
                    ip: ip.parse().ok()?,
                    port,
                    container: c,
                })
            })
            .collect();
        let table = self.nft_table();
        if rules.is_empty() && ports.is_empty() {
            return nft::delete_table(&table).map_err(net_err);
        }
        nft::apply(&nft::script(&table, &rules, &ports)).map_err(net_err)
    }

    /// The container's published ports in effect.
    pub fn published(&self, container: &str) -> Result<Vec<Published>> {
        let mut st = self
            .db
            .conn()
            .prepare("SELECT proto, host_ip, host_port, port FROM ports WHERE container = ?1 ORDER BY rowid")
            .map_err(self.dberr("list ports"))?;
        let rows = st
            .query_map([container], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, u16>(2)?,
                    r.get::<_, u16>(3)?,
                ))
            })
            .map_err(self.dberr("list ports"))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.dberr("list ports"))?;
        Ok(rows
            .into_iter()
            .map(|(proto, hip, hport, port)| Published {
                proto: if proto == "udp" {
                    Proto::Udp
                } else {
                    Proto::Tcp
                },
                host_ip: hip.parse().ok(),
                host_port: hport,
                port,
            })
            .collect())
    }

    /// Reserves the container's published ports (random ones chosen now),
    /// refusing a port another container or a host process holds.
    pub(super) fn reserve_ports(
        &self,
        container: &str,
        ip: IpAddr,
        want: &[Publish],
    ) -> Result<Vec<std::os::fd::OwnedFd>> {
        let mut sockets = Vec::new();
        let conn = self.db.conn();
        let tx =
            rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)
                .map_err(self.dberr("begin ports"))?;
        tx.execute(
            "DELETE FROM ports WHERE container NOT IN (SELECT id FROM containers) OR container = ?1",
            [container],
        )
        .map_err(self.dberr("drop stale ports"))?;
        let mut held: Vec<(String, Option<IpAddr>, u16)> = {
            let mut st = tx
                .prepare("SELECT proto, host_ip, host_port FROM ports")
                .map_err(self.dberr("read ports"))?;
            let rows = st
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, u16>(2)?,
                    ))
                })
                .map_err(self.dberr("read ports"))?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(self.dberr("read ports"))?;
            rows.into_iter()
                .map(|(p, h, n)| (p, h.parse().ok(), n))
                .collect()
        };
        let clash = |held: &[(String, Option<IpAddr>, u16)], p: &Publish, port: u16| {
            held.iter().any(|(proto, hip, n)| {
                proto == p.proto.as_str()
                    && *n == port
                    && (hip.is_none() || p.host_ip.is_none() || *hip == p.host_ip)
            })
        };
        let shown = |p: &Publish, port: u16| match p.host_ip {
            Some(IpAddr::V6(a)) => format!("[{a}]:{port}"),
            Some(a) => format!("{a}:{port}"),
            None => format!("0.0.0.0:{port}"),
        };
        for p in want {
            let port = if p.host_port == 0 {
                let mut tries = 0;
                loop {
                    let (port, sock) = probe_port(p.proto, p.host_ip, 0).map_err(|e| {
                        Error::Invalid(format!("cannot find a free host port: {e}"))
                    })?;
                    if !clash(&held, p, port) {
                        sockets.push(sock);
                        break port;
                    }
                    tries += 1;
                    if tries > 50 {
                        return Err(Error::Invalid("cannot find a free host port".into()));
                    }
                }
            } else {
                if clash(&held, p, p.host_port) {
                    return Err(Error::Invalid(format!(
                        "Bind for {} failed: port is already allocated",
                        shown(p, p.host_port)
                    )));
                }
                match probe_port(p.proto, p.host_ip, p.host_port) {
                    Ok((_, sock)) => sockets.push(sock),
                    Err(e) => {
                        return Err(Error::Invalid(format!(
                            "cannot publish port {}: {e}",
                            shown(p, p.host_port)
                        )))
                    }
                }
                p.host_port
            };
            tx.execute(
                "INSERT INTO ports (container, proto, host_ip, host_port, ip, port) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    container,
                    p.proto.as_str(),
                    p.host_ip.map(|i| i.to_string()).unwrap_or_default(),
                    port,
                    ip.to_string(),
                    p.port
                ],
            )
            .map_err(self.dberr("insert port"))?;
            held.push((p.proto.as_str().to_string(), p.host_ip, port));
        }
        tx.commit().map_err(self.dberr("commit ports"))?;
        Ok(sockets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_specs() {
        let p = |s| {
            let v = parse_publish(s).unwrap();
            assert_eq!(v.len(), 1, "{s}");
            v[0]
        };
        assert_eq!(
            p("127.0.0.1:18080:80"),
            Publish {
                proto: Proto::Tcp,
                host_ip: Some("127.0.0.1".parse().unwrap()),
                host_port: 18080,
                port: 80
            }
        );
        assert_eq!(p("8080:80/udp").proto, Proto::Udp);
        assert_eq!(p("8080:80/udp").host_port, 8080);
        assert_eq!(p("80").host_port, 0);
        assert_eq!(p("80").port, 80);
        assert_eq!(p("127.0.0.1::80").host_port, 0);
        assert_eq!(p("[::1]:8080:80").host_ip, Some("::1".parse().unwrap()));
        assert_eq!(p("0.0.0.0:8080:80").host_ip, None);
        assert_eq!(p("[::]:8080:80").host_ip, Some("::".parse().unwrap()));
        let r = parse_publish("127.0.0.1:8000-8002:80-82/udp").unwrap();
        assert_eq!(
            r.iter().map(|p| (p.host_port, p.port)).collect::<Vec<_>>(),
            vec![(8000, 80), (8001, 81), (8002, 82)]
        );
        assert!(r
            .iter()
            .all(|p| p.proto == Proto::Udp && p.host_ip.is_some()));
        let r = parse_publish("5000-5001").unwrap();
        assert_eq!(
            r.iter().map(|p| (p.host_port, p.port)).collect::<Vec<_>>(),
            vec![(0, 5000), (0, 5001)]
        );
        for bad in [
            "",
            "0",
            "80/sctp",
            "x:80",
            "1.2.3:80:80",
            "70000",
            "8080:0",
            "a:b:c:d",
            "8000-8010:80-91",
            "[::1:80",
            "90-80",
            "8000-8001:80",
            "-5:80",
            "1-:80",
        ] {
            assert!(parse_publish(bad).is_err(), "{bad}");
        }
    }
}
