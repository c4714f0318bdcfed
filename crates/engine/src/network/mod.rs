//! Networks, the policy half (the kernel work is `berth_net`'s): networks,
//! address leases and published ports live in the state DB; a container on
//! a bridge network gets a new network namespace with a veth pair into the
//! network's bridge, an address from the lease table, a default route,
//! outbound NAT and its published ports as DNAT rules in berth's own
//! nftables table.
//!
//! Nothing here needs a daemon or a cleanup pass: the namespace is held by
//! an fd until the container's init joined it, so it (and the veth pair)
//! disappears with the container's last process, or with a berth killed
//! half-way; leases and ports are rows keyed by container, dropped when the
//! container stops and replaced when it starts again; the nftables table
//! is rewritten whole from the DB whenever ports change.

use crate::container::{io, new_id, Engine, Error, Result};
use berth_net::ipam::{self, Subnet};
use berth_net::netlink::{self, Netlink, Veth};
use berth_net::netns::NetNs;
use berth_net::nft::{self, NetRules, PortRule, Proto};
use nix::fcntl::{Flock, FlockArg};

pub mod dns;
use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::path::Path;

/// The default network's name, as in Docker.
pub const DEFAULT_NETWORK: &str = "bridge";
/// Predefined modes that are not networks one can create or remove.
pub const PREDEFINED: &[&str] = &["bridge", "host", "none"];
/// The store the default bridge name `berth0` and table `berth` belong to.
const DEFAULT_ROOT: &str = "/var/lib/berth";

/// A network as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    pub id: String,
    pub name: String,
    pub bridge: String,
    pub subnet: Subnet,
    pub gateway: IpAddr,
    pub subnet6: Option<Subnet>,
    pub gateway6: Option<IpAddr>,
    pub internal: bool,
    pub labels: BTreeMap<String, String>,
    pub created: String,
}

/// What `network create` asks for.
#[derive(Debug, Clone, Default)]
pub struct NetworkCreate {
    pub name: String,
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    pub ipv6: bool,
    pub subnet6: Option<String>,
    pub gateway6: Option<String>,
    pub internal: bool,
    pub labels: BTreeMap<String, String>,
}

/// A container's place on a network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub network: Network,
    pub ip: IpAddr,
    pub ip6: Option<IpAddr>,
    pub mac: String,
}

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

/// A container's network, wired: hold `ns` until the container's init has
/// joined it.
pub struct Wired {
    pub ns: NetNs,
    pub endpoint: Endpoint,
    /// The network's DNS server, for the container's resolv.conf.
    pub dns: Option<IpAddr>,
    /// Sockets holding the published host ports.
    pub ports: Vec<std::os::fd::OwnedFd>,
}

pub(crate) fn net_err(e: berth_net::Error) -> Error {
    Error::Network(e.to_string())
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

/// One network attachment to wire (see [`Engine::wire_one`]).
struct Attach<'a> {
    net: &'a Network,
    aliases: &'a [String],
    ip: Option<IpAddr>,
    mac: Option<&'a str>,
    ifname: String,
    default_route: bool,
}

fn parse_ip(s: Option<&str>) -> Result<Option<IpAddr>> {
    s.map(|s| {
        s.parse::<IpAddr>()
            .map_err(|_| Error::Invalid(format!("invalid IP address {s:?}")))
    })
    .transpose()
}

/// The host end of a container's veth pair on `net`: `vb` + the id for its
/// first network, `vx` + id and network id for others (15 chars at most).
fn host_veth(id: &str, net: &Network, first: bool) -> String {
    if first {
        format!("vb{}", &id[..11])
    } else {
        format!("vx{}{}", &id[..7], &net.id[..6])
    }
}

/// The kernel half of one network attachment (see [`Engine::plan`]).
struct Plan {
    host_if: String,
    bridge: u32,
    ifname: String,
    mac: [u8; 6],
    addrs: Vec<(IpAddr, u8)>,
    /// Default routes via these (the first network only).
    gateways: Vec<IpAddr>,
}

/// Creates the veth pair of `p` (`host` talks to the host's namespace, `nl`
/// inside the container's `ns_fd`), addresses and routes it.
fn wire_plan(
    host: &Netlink,
    ns_fd: &std::os::fd::OwnedFd,
    nl: &Netlink,
    p: &Plan,
) -> std::result::Result<(), berth_net::Error> {
    let veth = Veth {
        host: &p.host_if,
        bridge: p.bridge,
        peer: &p.ifname,
        netns: std::os::fd::AsRawFd::as_raw_fd(ns_fd),
        peer_mac: Some(p.mac),
        mtu: None,
    };
    match host.create_veth(&veth) {
        Ok(()) => {}
        Err(e) if netlink::is_exists(&e) => {
            // The last run's end, not yet torn down by the kernel.
            if let Some(i) = host.link_index(&p.host_if)? {
                host.delete_link(i)?;
            }
            host.create_veth(&veth)?;
        }
        Err(e) => return Err(e),
    }
    if let Some(i) = host.link_index(&p.host_if)? {
        host.set_hairpin(i)?;
    }
    let ifi = nl.link_index(&p.ifname)?.ok_or_else(|| {
        berth_net::Error::Invalid(format!("{} is missing in the container", p.ifname))
    })?;
    nl.set_up(ifi)?;
    for (ip, prefix) in &p.addrs {
        nl.add_address(ifi, *ip, *prefix)?;
    }
    for gw in &p.gateways {
        let any = if gw.is_ipv4() {
            IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
        } else {
            IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
        };
        nl.add_route(any, 0, Some(*gw), ifi)?;
    }
    Ok(())
}

/// A container's network being wired on a thread ([`Engine::net_begin`]).
pub struct PendingNet {
    thread: std::thread::JoinHandle<std::result::Result<NetNs, berth_net::Error>>,
    endpoint: Endpoint,
    dns: Option<IpAddr>,
    ports: Vec<std::os::fd::OwnedFd>,
}

impl PendingNet {
    /// Waits for the kernel half; on error the caller tears down.
    pub fn wait(self) -> Result<Wired> {
        let ns = self
            .thread
            .join()
            .map_err(|_| Error::Network("the network thread panicked".into()))?
            .map_err(net_err)?;
        Ok(Wired {
            ns,
            endpoint: self.endpoint,
            dns: self.dns,
            ports: self.ports,
        })
    }
}

/// `-p` plus, with `-P`, every port the image EXPOSEs (random host ports).
fn publish_list(cfg: &crate::container::Config) -> Vec<Publish> {
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

/// A `--network-alias`: a DNS-ish name.
pub fn check_alias(al: &str) -> Result<()> {
    let ok = al.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && al.len() <= 253
        && al
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if !ok {
        return Err(Error::Invalid(format!(
            "invalid network alias {al:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )));
    }
    Ok(())
}

/// Docker's rule for network names.
fn check_name(name: &str) -> Result<()> {
    let ok = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        && name.len() <= 128;
    if !ok {
        return Err(Error::Invalid(format!(
            "invalid network name {name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )));
    }
    Ok(())
}

/// A short tag for a store other than the default one, so several stores
/// on one machine (tests) keep their bridges and tables apart.
fn store_tag(root: &Path) -> Option<String> {
    if root == Path::new(DEFAULT_ROOT) {
        return None;
    }
    let mut h: u64 = 0xcbf29ce484222325;
    for b in root.as_os_str().as_encoded_bytes() {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    Some(format!("{:06x}", h & 0xff_ffff))
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Vec<String>, bool)> {
    let mut v = Vec::new();
    for i in 0..10 {
        if i == 7 {
            continue;
        }
        v.push(r.get::<_, String>(i)?);
    }
    Ok((v, r.get::<_, bool>(7)?))
}

const NET_COLUMNS: &str =
    "id, name, bridge, subnet, gateway, subnet6, gateway6, internal, labels, created";

fn to_network((v, internal): (Vec<String>, bool)) -> Result<Network> {
    let bad = |what: &str| Error::State {
        id: v[0].clone(),
        what: format!("stored network has a bad {what}"),
    };
    Ok(Network {
        id: v[0].clone(),
        name: v[1].clone(),
        bridge: v[2].clone(),
        subnet: Subnet::parse(&v[3]).map_err(|_| bad("subnet"))?,
        gateway: v[4].parse().map_err(|_| bad("gateway"))?,
        subnet6: if v[5].is_empty() {
            None
        } else {
            Some(Subnet::parse(&v[5]).map_err(|_| bad("subnet6"))?)
        },
        gateway6: if v[6].is_empty() {
            None
        } else {
            Some(v[6].parse().map_err(|_| bad("gateway6"))?)
        },
        internal,
        labels: serde_json::from_str(&v[7]).unwrap_or_default(),
        created: v[8].clone(),
    })
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
    fn dberr(&self, op: &'static str) -> impl FnOnce(rusqlite::Error) -> Error + '_ {
        move |e| Error::Db(self.db.err(op)(e))
    }

    /// `berth0` for the default store, `berth<tag>` for others.
    fn default_bridge(&self) -> String {
        match store_tag(&self.root) {
            None => "berth0".into(),
            Some(t) => format!("berth{t}"),
        }
    }

    fn nft_table(&self) -> String {
        match store_tag(&self.root) {
            None => "berth".into(),
            Some(t) => format!("berth_{t}"),
        }
    }

    /// One machine-wide lock for choosing subnets, making bridges and
    /// writing nftables tables.
    pub(crate) fn net_lock(&self) -> Result<Flock<std::fs::File>> {
        let dir = Path::new("/run/berth");
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let p = dir.join("network.lock");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .map_err(io(&p))?;
        Flock::lock(f, FlockArg::LockExclusive).map_err(|(_, e)| Error::Io {
            path: p,
            source: e.into(),
        })
    }

    /// Every network of this store.
    pub fn networks(&self) -> Result<Vec<Network>> {
        let mut st = self
            .db
            .conn()
            .prepare(&format!("SELECT {NET_COLUMNS} FROM networks ORDER BY name"))
            .map_err(self.dberr("list networks"))?;
        let rows = st
            .query_map([], row)
            .map_err(self.dberr("list networks"))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.dberr("list networks"))?;
        rows.into_iter().map(to_network).collect()
    }

    /// A network by name, full id or unique id prefix.
    pub fn network(&self, s: &str) -> Result<Network> {
        if s == DEFAULT_NETWORK {
            return self.default_network();
        }
        let all = self.networks()?;
        if let Some(n) = all.iter().find(|n| n.name == s || n.id == s) {
            return Ok(n.clone());
        }
        let by_prefix: Vec<&Network> = all
            .iter()
            .filter(|n| !s.is_empty() && n.id.starts_with(s))
            .collect();
        match by_prefix.len() {
            1 => Ok(by_prefix[0].clone()),
            0 => Err(Error::NoNetwork(s.to_string())),
            _ => Err(Error::Invalid(format!(
                "network {s} is ambiguous ({} matches found based on ID prefix)",
                by_prefix.len()
            ))),
        }
    }

    /// The default `bridge` network, created (row and bridge) on first use.
    pub fn default_network(&self) -> Result<Network> {
        if let Some(n) = self
            .networks()?
            .into_iter()
            .find(|n| n.name == DEFAULT_NETWORK)
        {
            return Ok(n);
        }
        match self.create_network_inner(
            &NetworkCreate {
                name: DEFAULT_NETWORK.into(),
                ..NetworkCreate::default()
            },
            true,
        ) {
            Ok(n) => Ok(n),
            // Another berth made it meanwhile.
            Err(Error::NetworkExists(_)) => self
                .networks()?
                .into_iter()
                .find(|n| n.name == DEFAULT_NETWORK)
                .ok_or_else(|| Error::NoNetwork(DEFAULT_NETWORK.into())),
            Err(e) => Err(e),
        }
    }

    /// `network create`: checks everything, stores the network and brings
    /// its bridge up; on any error nothing is left.
    pub fn create_network(&self, c: &NetworkCreate) -> Result<Network> {
        check_name(&c.name)?;
        if PREDEFINED.contains(&c.name.as_str()) {
            return Err(Error::Invalid(format!(
                "{} is a pre-defined network and cannot be created",
                c.name
            )));
        }
        self.create_network_inner(c, false)
    }

    fn create_network_inner(&self, c: &NetworkCreate, default: bool) -> Result<Network> {
        let subnet = c
            .subnet
            .as_deref()
            .map(Subnet::parse)
            .transpose()
            .map_err(net_err)?;
        if subnet.is_some_and(|s| !s.addr.is_ipv4()) {
            return Err(Error::Invalid(
                "--subnet: give the IPv4 subnet here and the IPv6 one with --ipv6 --subnet6".into(),
            ));
        }
        if subnet.is_some_and(|s| s.prefix > 30) {
            return Err(Error::Invalid(
                "--subnet: a subnet needs a prefix of /30 or shorter".into(),
            ));
        }
        let gateway: Option<IpAddr> = c
            .gateway
            .as_deref()
            .map(|g| {
                g.parse()
                    .map_err(|_| Error::Invalid(format!("invalid gateway address {g:?}")))
            })
            .transpose()?;
        if gateway.is_some() && subnet.is_none() {
            return Err(Error::Invalid("--gateway needs --subnet".into()));
        }
        let subnet6 = c
            .subnet6
            .as_deref()
            .map(Subnet::parse)
            .transpose()
            .map_err(net_err)?;
        if subnet6.is_some_and(|s| s.addr.is_ipv4() || s.prefix > 126) {
            return Err(Error::Invalid(
                "--subnet6 must be an IPv6 subnet of /126 or shorter".into(),
            ));
        }
        if (subnet6.is_some() || c.gateway6.is_some()) && !c.ipv6 {
            return Err(Error::Invalid(
                "an IPv6 subnet or gateway needs --ipv6".into(),
            ));
        }
        let id = new_id()?;
        let _lock = self.net_lock()?;
        if self.networks()?.iter().any(|n| n.name == c.name) {
            return Err(Error::NetworkExists(c.name.clone()));
        }
        let mut used: Vec<(Subnet, String)> = self
            .networks()?
            .into_iter()
            .flat_map(|n| {
                let mut v = vec![(n.subnet, format!("network {}", n.name))];
                if let Some(s6) = n.subnet6 {
                    v.push((s6, format!("network {}", n.name)));
                }
                v
            })
            .collect();
        // Our own bridges' routes are already in `used` by network.
        let ours: HashSet<Subnet> = used.iter().map(|u| u.0).collect();
        used.extend(
            ipam::host_routes()
                .into_iter()
                .filter(|r| !ours.contains(r))
                .map(|r| (r, "a route of the host".to_string())),
        );
        let subnet = match subnet {
            Some(s) => {
                if let Some((u, what)) = used.iter().find(|(u, _)| u.overlaps(&s)) {
                    return Err(Error::Invalid(format!(
                        "subnet {s} overlaps with {u} of {what}"
                    )));
                }
                s
            }
            None => {
                let plain: Vec<Subnet> = used.iter().map(|u| u.0).collect();
                ipam::pick(ipam::default_pool(), &plain).ok_or_else(|| {
                    Error::Invalid(
                        "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network"
                            .into(),
                    )
                })?
            }
        };
        let gateway = match gateway {
            Some(g) if subnet.is_usable(g) => g,
            Some(g) => {
                return Err(Error::Invalid(format!(
                    "gateway {g} is not a usable address of subnet {subnet}"
                )))
            }
            None => subnet.first_host().ok_or_else(|| {
                Error::Invalid(format!("subnet {subnet} has no room for a gateway"))
            })?,
        };
        let (subnet6, gateway6) = if c.ipv6 {
            let s6 = subnet6.unwrap_or_else(|| ipam::ula_for(&id));
            if let Some((u, what)) = used.iter().find(|(u, _)| u.overlaps(&s6)) {
                return Err(Error::Invalid(format!(
                    "subnet {s6} overlaps with {u} of {what}"
                )));
            }
            let g6 = match c.gateway6.as_deref() {
                Some(g) => {
                    let g: IpAddr = g
                        .parse()
                        .map_err(|_| Error::Invalid(format!("invalid gateway address {g:?}")))?;
                    if !s6.is_usable(g) {
                        return Err(Error::Invalid(format!(
                            "gateway {g} is not a usable address of subnet {s6}"
                        )));
                    }
                    g
                }
                None => s6
                    .first_host()
                    .ok_or_else(|| Error::Invalid(format!("subnet {s6} is too small")))?,
            };
            (Some(s6), Some(g6))
        } else {
            (None, None)
        };
        let net = Network {
            bridge: if default {
                self.default_bridge()
            } else {
                format!("br-{}", &id[..12])
            },
            id,
            name: c.name.clone(),
            subnet,
            gateway,
            subnet6,
            gateway6,
            internal: c.internal,
            labels: c.labels.clone(),
            created: berth_runtime::state::now_rfc3339(),
        };
        let ins = self.db.conn().execute(
            &format!("INSERT INTO networks ({NET_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"),
            params![
                net.id,
                net.name,
                net.bridge,
                net.subnet.to_string(),
                net.gateway.to_string(),
                net.subnet6.map(|s| s.to_string()).unwrap_or_default(),
                net.gateway6.map(|s| s.to_string()).unwrap_or_default(),
                net.internal,
                serde_json::to_string(&net.labels).unwrap_or_else(|_| "{}".into()),
                net.created,
            ],
        );
        match ins {
            Ok(_) => {}
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                return Err(Error::NetworkExists(c.name.clone()))
            }
            Err(e) => return Err(self.dberr("insert network")(e)),
        }
        let up = self.bridge_up(&net).and_then(|_| self.apply_firewall());
        if let Err(e) = up {
            let _ = self
                .db
                .conn()
                .execute("DELETE FROM networks WHERE id = ?1", [&net.id]);
            self.delete_bridge(&net);
            let _ = self.apply_firewall();
            return Err(e);
        }
        Ok(net)
    }

    /// The bridge of `net` exists, has its gateway addresses and is up;
    /// returns its index. Call with the network lock held.
    fn bridge_up(&self, net: &Network) -> Result<u32> {
        let nl = Netlink::open().map_err(net_err)?;
        let idx = match nl.link_index(&net.bridge).map_err(net_err)? {
            Some(i) => i,
            None => {
                match nl.create_bridge(&net.bridge) {
                    Ok(()) => {}
                    Err(e) if netlink::is_exists(&e) => {}
                    Err(e) => return Err(net_err(e)),
                }
                nl.link_index(&net.bridge)
                    .map_err(net_err)?
                    .ok_or_else(|| Error::Network(format!("bridge {} vanished", net.bridge)))?
            }
        };
        let mut addrs = vec![(net.gateway, net.subnet.prefix)];
        if let (Some(g6), Some(s6)) = (net.gateway6, net.subnet6) {
            addrs.push((g6, s6.prefix));
        }
        for (ip, prefix) in addrs {
            match nl.add_address(idx, ip, prefix) {
                Ok(()) => {}
                Err(e) if netlink::is_exists(&e) => {}
                Err(e) => return Err(net_err(e)),
            }
        }
        nl.set_up(idx).map_err(net_err)?;
        berth_net::sysctl("net/ipv4/ip_forward", "1").map_err(net_err)?;
        // DNAT of the host's own 127.0.0.1 to a container needs this on the
        // bridge (the firewall drops anything else from a bridge to 127/8).
        berth_net::sysctl(&format!("net/ipv4/conf/{}/route_localnet", net.bridge), "1")
            .map_err(net_err)?;
        Ok(idx)
    }

    fn delete_bridge(&self, net: &Network) {
        if let Ok(nl) = Netlink::open() {
            if let Ok(Some(i)) = nl.link_index(&net.bridge) {
                let _ = nl.delete_link(i);
            }
        }
    }

    /// Rewrites this store's nftables table from the DB. Call with the
    /// network lock held.
    fn apply_firewall(&self) -> Result<()> {
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

    /// `network rm`: refused while a container is attached to it (running
    /// or not: its endpoint would dangle).
    pub fn remove_network(&self, s: &str) -> Result<Network> {
        if PREDEFINED.contains(&s) {
            return Err(Error::Invalid(format!(
                "{s} is a pre-defined network and cannot be removed"
            )));
        }
        let net = self.network(s)?;
        let users = self.network_users(&net)?;
        if !users.is_empty() {
            return Err(Error::Invalid(format!(
                "error while removing network: network {} id {} has active endpoints (containers: {})",
                net.name,
                net.id,
                users.join(", ")
            )));
        }
        let _lock = self.net_lock()?;
        self.db
            .conn()
            .execute("DELETE FROM networks WHERE id = ?1", [&net.id])
            .map_err(self.dberr("remove network"))?;
        self.delete_bridge(&net);
        self.apply_firewall()?;
        Ok(net)
    }

    /// Names of the containers that use `net` (configured with it).
    pub fn network_users(&self, net: &Network) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for rec in self.db.list()? {
            if let Ok(cfg) = crate::container::Config::parse(&rec) {
                let first = match &cfg.spec.network {
                    crate::spec_gen::Network::Bridge(n) => Some(n),
                    _ => None,
                };
                let uses = first
                    .into_iter()
                    .chain(cfg.spec.extra_networks.iter().map(|x| &x.name))
                    .any(|n| *n == net.name || *n == net.id);
                if uses {
                    out.push(rec.name.clone());
                }
            }
        }
        Ok(out)
    }

    /// `network prune`: removes the user networks no container uses.
    pub fn prune_networks(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for n in self.networks()? {
            if n.name == DEFAULT_NETWORK || !self.network_users(&n)?.is_empty() {
                continue;
            }
            self.remove_network(&n.id)?;
            out.push(n.name);
        }
        Ok(out)
    }

    /// Removes every network of the store, their bridges and the store's
    /// firewall table (`system reset`; containers must be gone first).
    pub fn reset_networks(&self) -> Result<()> {
        let nets = self.networks()?;
        if nets.is_empty() {
            return Ok(());
        }
        let _lock = self.net_lock()?;
        for n in nets {
            self.delete_bridge(&n);
        }
        let conn = self.db.conn();
        for t in ["ports", "endpoints", "networks"] {
            conn.execute(&format!("DELETE FROM {t}"), [])
                .map_err(self.dberr("reset networks"))?;
        }
        nft::delete_table(&self.nft_table()).map_err(net_err)
    }

    /// The container's endpoints (while it runs).
    pub fn endpoints(&self, container: &str) -> Result<Vec<Endpoint>> {
        let mut st = self
            .db
            .conn()
            .prepare("SELECT network, ip, ip6, mac FROM endpoints WHERE container = ?1")
            .map_err(self.dberr("list endpoints"))?;
        let rows = st
            .query_map([container], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })
            .map_err(self.dberr("list endpoints"))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.dberr("list endpoints"))?;
        let nets = self.networks()?;
        Ok(rows
            .into_iter()
            .filter_map(|(n, ip, ip6, mac)| {
                Some(Endpoint {
                    network: nets.iter().find(|x| x.id == n)?.clone(),
                    ip: ip.parse().ok()?,
                    ip6: ip6.parse().ok(),
                    mac,
                })
            })
            .collect())
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

    /// Leases an address on `net` for `container` (its old lease if it has
    /// one; `want` if given and free), in one immediate transaction.
    fn lease(
        &self,
        net: &Network,
        container: &str,
        want: Option<IpAddr>,
        mac: Option<&str>,
        names: &str,
    ) -> Result<(IpAddr, Option<IpAddr>, String)> {
        let conn = self.db.conn();
        let tx =
            rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)
                .map_err(self.dberr("begin lease"))?;
        // Leases of containers that no longer exist (removed by a berth
        // that died half-way) are free again.
        tx.execute(
            "DELETE FROM endpoints WHERE container NOT IN (SELECT id FROM containers)",
            [],
        )
        .map_err(self.dberr("drop stale leases"))?;
        tx.execute(
            "DELETE FROM endpoints WHERE network = ?1 AND container = ?2",
            params![net.id, container],
        )
        .map_err(self.dberr("drop old lease"))?;
        let mut taken: HashSet<IpAddr> = HashSet::new();
        {
            let mut st = tx
                .prepare("SELECT ip, ip6 FROM endpoints WHERE network = ?1")
                .map_err(self.dberr("read leases"))?;
            let rows = st
                .query_map([&net.id], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })
                .map_err(self.dberr("read leases"))?;
            for r in rows {
                let (a, b) = r.map_err(self.dberr("read leases"))?;
                taken.extend(a.parse::<IpAddr>().ok());
                taken.extend(b.parse::<IpAddr>().ok());
            }
        }
        taken.insert(net.gateway);
        taken.extend(net.gateway6);
        let ip = match want {
            Some(ip) => {
                if !net.subnet.is_usable(ip) {
                    return Err(Error::Invalid(format!(
                        "--ip {ip} is not a usable address of network {} ({})",
                        net.name, net.subnet
                    )));
                }
                if taken.contains(&ip) {
                    return Err(Error::Invalid(format!(
                        "address {ip} is already in use on network {}",
                        net.name
                    )));
                }
                ip
            }
            None => net.subnet.next_free(&taken, 1 << 20).ok_or_else(|| {
                Error::Invalid(format!(
                    "no free address left in network {} ({})",
                    net.name, net.subnet
                ))
            })?,
        };
        let ip6 = match net.subnet6 {
            Some(s6) => Some(s6.next_free(&taken, 1 << 20).ok_or_else(|| {
                Error::Invalid(format!("no free IPv6 address left in network {}", net.name))
            })?),
            None => None,
        };
        let mac = match mac {
            Some(m) => m.to_string(),
            None => {
                let m = netlink::mac_for(ip);
                m.iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(":")
            }
        };
        tx.execute(
            "INSERT INTO endpoints (network, container, ip, ip6, mac, names) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                net.id,
                container,
                ip.to_string(),
                ip6.map(|i| i.to_string()).unwrap_or_default(),
                mac,
                names
            ],
        )
        .map_err(self.dberr("insert lease"))?;
        tx.commit().map_err(self.dberr("commit lease"))?;
        Ok((ip, ip6, mac))
    }

    /// Reserves the container's published ports (random ones chosen now),
    /// refusing a port another container or a host process holds.
    fn reserve_ports(
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

    /// Starts wiring a container that asks for a bridge network: leases,
    /// ports and the DNS server here, the kernel work (namespace, veth
    /// pairs, addresses, routes) on a thread, so it overlaps the rootfs
    /// mount. [`PendingNet::wait`] before anything forks. On error nothing
    /// of it is left.
    pub(crate) fn net_begin(
        &self,
        rec: &crate::db::Record,
        cfg: &crate::container::Config,
    ) -> Result<Option<PendingNet>> {
        let crate::spec_gen::Network::Bridge(name) = &cfg.spec.network else {
            return Ok(None);
        };
        let mut thread = None;
        let r = self.net_begin_inner(rec, name, cfg, &mut thread);
        if r.is_err() {
            if let Some(t) = thread.take() {
                let _ = t.join();
            }
            self.net_teardown(&rec.id);
        }
        r.map(|(endpoint, dns, ports)| {
            Some(PendingNet {
                thread: thread.expect("spawned"),
                endpoint,
                dns,
                ports,
            })
        })
    }

    #[allow(clippy::type_complexity)]
    fn net_begin_inner(
        &self,
        rec: &crate::db::Record,
        name: &str,
        cfg: &crate::container::Config,
        thread: &mut Option<std::thread::JoinHandle<std::result::Result<NetNs, berth_net::Error>>>,
    ) -> Result<(Endpoint, Option<IpAddr>, Vec<std::os::fd::OwnedFd>)> {
        let net = self.network(name)?;
        if net.name == DEFAULT_NETWORK && cfg.spec.ip.is_some() {
            return Err(Error::Invalid(
                "user specified IP address is supported on user defined networks only".into(),
            ));
        }
        let (first, ip, ip6, mac) = self.plan(
            rec,
            cfg,
            &Attach {
                net: &net,
                aliases: &cfg.spec.network_aliases,
                ip: parse_ip(cfg.spec.ip.as_deref())?,
                mac: cfg.spec.mac_address.as_deref(),
                ifname: "eth0".into(),
                default_route: true,
            },
        )?;
        let mut plans = vec![first];
        let mut extra_nets = Vec::new();
        for (i, x) in cfg.spec.extra_networks.iter().enumerate() {
            let xnet = self.network(&x.name)?;
            let (p, ..) = self.plan(
                rec,
                cfg,
                &Attach {
                    net: &xnet,
                    aliases: &x.aliases,
                    ip: parse_ip(x.ip.as_deref())?,
                    mac: None,
                    ifname: format!("eth{}", i + 1),
                    default_route: false,
                },
            )?;
            plans.push(p);
            extra_nets.push(xnet);
        }
        let publish = publish_list(cfg);
        let mut sockets = Vec::new();
        if !publish.is_empty() {
            if net.internal {
                return Err(Error::Invalid(format!(
                    "network {} is internal: no port can be published from it",
                    net.name
                )));
            }
            // Before any kernel work: a taken port leaves nothing behind.
            sockets = self.reserve_ports(&rec.id, ip, &publish)?;
        }
        *thread = Some(
            std::thread::Builder::new()
                .name("berth-net".into())
                .spawn(move || {
                    let host = Netlink::open()?;
                    let ns = NetNs::create()?;
                    for p in &plans {
                        wire_plan(&host, &ns.fd, &ns.netlink, p)?;
                    }
                    Ok(ns)
                })
                .map_err(|e| Error::Network(format!("spawn a thread: {e}")))?,
        );
        if !publish.is_empty() {
            let _lock = self.net_lock()?;
            self.apply_firewall()?;
        }
        // User networks have names: their DNS server answers on the gateway.
        let dns = if net.name != DEFAULT_NETWORK && cfg.spec.dns.is_empty() {
            match self.ensure_dns(&net) {
                Ok(()) => Some(net.gateway),
                Err(e) => {
                    berth_runtime::log::warn(&format!(
                        "network {}: no DNS server for container names ({e}); using the host's resolvers",
                        net.name
                    ));
                    None
                }
            }
        } else {
            None
        };
        for xnet in &extra_nets {
            if xnet.name != DEFAULT_NETWORK {
                let _ = self.ensure_dns(xnet);
            }
        }
        Ok((
            Endpoint {
                network: net,
                ip,
                ip6,
                mac,
            },
            dns,
            sockets,
        ))
    }

    /// The DB half of one attachment: the bridge is up and the container
    /// has a lease; returns what the kernel half needs.
    fn plan(
        &self,
        rec: &crate::db::Record,
        cfg: &crate::container::Config,
        a: &Attach,
    ) -> Result<(Plan, IpAddr, Option<IpAddr>, String)> {
        let net = a.net;
        let id = rec.id.as_str();
        let host = Netlink::open().map_err(net_err)?;
        // The bridge is normally there; after a reboot it is made again.
        let bridge = match host.link_index(&net.bridge).map_err(net_err)? {
            Some(i) => i,
            None => {
                let _lock = self.net_lock()?;
                let i = self.bridge_up(net)?;
                self.apply_firewall()?;
                i
            }
        };
        // The names the network's DNS answers with this container's address.
        let mut names = vec![rec.name.to_lowercase(), id[..12].to_string()];
        if let Some(h) = &cfg.spec.hostname {
            names.push(h.to_lowercase());
        }
        names.extend(a.aliases.iter().map(|a| a.to_lowercase()));
        // Names are stored space-separated: nothing with blanks gets in.
        names.retain(|n| !n.is_empty() && !n.contains(char::is_whitespace));
        names.dedup();
        let (ip, ip6, mac) = self.lease(net, id, a.ip, a.mac, &names.join(" "))?;
        let mac_bytes = netlink::parse_mac(&mac)
            .ok_or_else(|| Error::Invalid(format!("invalid MAC address {mac:?}")))?;
        let mut addrs = vec![(ip, net.subnet.prefix)];
        if let (Some(ip6), Some(s6)) = (ip6, net.subnet6) {
            addrs.push((ip6, s6.prefix));
        }
        let mut gateways = Vec::new();
        if a.default_route && !net.internal {
            gateways.push(net.gateway);
            gateways.extend(net.gateway6);
        }
        Ok((
            Plan {
                host_if: host_veth(id, net, a.default_route),
                bridge,
                ifname: a.ifname.clone(),
                mac: mac_bytes,
                addrs,
                gateways,
            },
            ip,
            ip6,
            mac,
        ))
    }

    /// `network connect`: attaches the container to another network (at
    /// once when it runs, and from its next start on).
    pub fn connect(
        &self,
        rec: &crate::db::Record,
        network: &str,
        aliases: &[String],
        ip: Option<&str>,
    ) -> Result<()> {
        use crate::spec_gen::Network as Mode;
        let mut cfg = crate::container::Config::parse(rec)?;
        let net = self.network(network)?;
        parse_ip(ip)?;
        for al in aliases {
            check_alias(al)?;
        }
        let attached = self.attached_networks(&cfg)?;
        if attached.iter().any(|n| n.id == net.id) {
            return Err(Error::Invalid(format!(
                "endpoint with name {} already exists in network {}",
                rec.name, net.name
            )));
        }
        let first = match &cfg.spec.network {
            Mode::Host | Mode::Container(_) => {
                return Err(Error::Invalid(
                    "container sharing network namespace with another container or host cannot be connected to any other network".into(),
                ))
            }
            Mode::None => true,
            Mode::Bridge(_) => false,
        };
        let running = rec.status == crate::db::Status::Running
            && crate::container::pid_alive(rec.pid, rec.pid_start);
        if running {
            let ns =
                berth_net::netns::open_ns(&format!("/proc/{}/ns/net", rec.pid)).map_err(net_err)?;
            let nl = berth_net::netns::netlink_in(&ns).map_err(net_err)?;
            let ifname = format!("eth{}", if first { 0 } else { attached.len() });
            let r = self
                .plan(
                    rec,
                    &cfg,
                    &Attach {
                        net: &net,
                        aliases,
                        ip: parse_ip(ip)?,
                        mac: None,
                        ifname,
                        default_route: first,
                    },
                )
                .and_then(|(p, ..)| {
                    let host = Netlink::open().map_err(net_err)?;
                    wire_plan(&host, &ns, &nl, &p).map_err(net_err)
                });
            if let Err(e) = r {
                let _ = self.db.conn().execute(
                    "DELETE FROM endpoints WHERE network = ?1 AND container = ?2",
                    params![net.id, rec.id],
                );
                return Err(e);
            }
            if net.name != DEFAULT_NETWORK {
                self.ensure_dns(&net)?;
            }
        }
        if first {
            cfg.spec.network = Mode::Bridge(net.name.clone());
            cfg.spec.network_aliases = aliases.to_vec();
            cfg.spec.ip = ip.map(str::to_string);
        } else {
            cfg.spec.extra_networks.push(crate::spec_gen::ExtraNetwork {
                name: net.name.clone(),
                aliases: aliases.to_vec(),
                ip: ip.map(str::to_string),
            });
        }
        self.db.set_options(&rec.id, &cfg)?;
        Ok(())
    }

    /// `network disconnect`: detaches the container from a network (at
    /// once when it runs).
    pub fn disconnect(&self, rec: &crate::db::Record, network: &str) -> Result<()> {
        use crate::spec_gen::Network as Mode;
        let mut cfg = crate::container::Config::parse(rec)?;
        let net = self.network(network)?;
        let primary = matches!(&cfg.spec.network, Mode::Bridge(n) if self.network(n).is_ok_and(|p| p.id == net.id));
        let extra = cfg
            .spec
            .extra_networks
            .iter()
            .position(|x| self.network(&x.name).is_ok_and(|p| p.id == net.id));
        if !primary && extra.is_none() {
            return Err(Error::Invalid(format!(
                "container {} is not connected to network {}",
                rec.name, net.name
            )));
        }
        let running = rec.status == crate::db::Status::Running
            && crate::container::pid_alive(rec.pid, rec.pid_start);
        if running {
            if let Ok(host) = Netlink::open() {
                if let Ok(Some(i)) = host.link_index(&host_veth(&rec.id, &net, primary)) {
                    host.delete_link(i).map_err(net_err)?;
                }
            }
            let _ = self.db.conn().execute(
                "DELETE FROM endpoints WHERE network = ?1 AND container = ?2",
                params![net.id, rec.id],
            );
            if primary {
                let n = self
                    .db
                    .conn()
                    .execute("DELETE FROM ports WHERE container = ?1", [&rec.id])
                    .unwrap_or(0);
                if n > 0 {
                    let _lock = self.net_lock()?;
                    self.apply_firewall()?;
                }
            }
        }
        if primary {
            // Docker's rule: the container keeps its namespace; with no
            // network left it has loopback only from its next start on.
            if cfg.spec.extra_networks.is_empty() {
                cfg.spec.network = Mode::None;
                cfg.spec.network_aliases.clear();
                cfg.spec.publish.clear();
                cfg.spec.publish_all = false;
            } else {
                let x = cfg.spec.extra_networks.remove(0);
                cfg.spec.network = Mode::Bridge(x.name);
                cfg.spec.network_aliases = x.aliases;
            }
            cfg.spec.ip = None;
            cfg.spec.mac_address = None;
        } else if let Some(i) = extra {
            cfg.spec.extra_networks.remove(i);
        }
        self.db.set_options(&rec.id, &cfg)?;
        Ok(())
    }

    /// The networks a container's config names, the first one first.
    pub fn attached_networks(&self, cfg: &crate::container::Config) -> Result<Vec<Network>> {
        let mut out = Vec::new();
        if let crate::spec_gen::Network::Bridge(n) = &cfg.spec.network {
            out.push(self.network(n)?);
        }
        for x in &cfg.spec.extra_networks {
            out.push(self.network(&x.name)?);
        }
        Ok(out)
    }

    /// Undoes [`Engine::net_setup`]'s bookkeeping once the container is
    /// gone: its leases and ports (the namespace and veth go with the
    /// container's last process). Safe to call any number of times.
    pub(crate) fn net_teardown(&self, id: &str) {
        let conn = self.db.conn();
        let _ = conn.execute("DELETE FROM endpoints WHERE container = ?1", [id]);
        let ports = conn
            .execute("DELETE FROM ports WHERE container = ?1", [id])
            .unwrap_or(0);
        if ports > 0 {
            if let Ok(_lock) = self.net_lock() {
                if let Err(e) = self.apply_firewall() {
                    berth_runtime::log::warn(&format!("rewrite the firewall table: {e}"));
                }
            }
        }
    }

    /// For tests and `system reset`: whether a container's row still
    /// holds a lease.
    pub fn has_lease(&self, container: &str) -> Result<bool> {
        Ok(self
            .db
            .conn()
            .query_row(
                "SELECT 1 FROM endpoints WHERE container = ?1 LIMIT 1",
                [container],
                |_| Ok(()),
            )
            .optional()
            .map_err(self.dberr("read lease"))?
            .is_some())
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

    #[test]
    fn names() {
        assert!(check_name("my-net_1.x").is_ok());
        for bad in ["", "-x", "a b", "a/b", "ä"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn store_tags() {
        assert_eq!(store_tag(Path::new(DEFAULT_ROOT)), None);
        let t = store_tag(Path::new("/tmp/x")).unwrap();
        assert_eq!(t.len(), 6);
        assert_ne!(Some(t), store_tag(Path::new("/tmp/y")));
    }
}
