//! Wiring a container: leases, the kernel half on a thread (namespace,
//! veth pairs, addresses, routes), `network connect/disconnect`, and the
//! teardown once the container is gone.

use super::ports::publish_list;
use super::*;

/// One network attachment to wire (see [`Engine::plan`] and [`wire_plan`]).
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

impl Engine {
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

    /// Undoes [`Engine::net_begin`]'s bookkeeping once the container is
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
}
