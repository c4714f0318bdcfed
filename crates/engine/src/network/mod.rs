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
mod ports;
mod wire;

pub use ports::{parse_publish, Publish, Published};
use rusqlite::params;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::path::Path;
pub use wire::PendingNet;

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
        // Its DNS server would keep the gateway's port 53 for up to its next
        // check; a network made right after with the same subnet could not
        // start its own.
        dns::stop_server(net);
        if let Ok(nl) = Netlink::open() {
            if let Ok(Some(i)) = nl.link_index(&net.bridge) {
                let _ = nl.delete_link(i);
            }
        }
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
