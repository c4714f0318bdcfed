//! `berth network create/ls/inspect/rm/prune` and `berth port`.

use crate::output;
use berth_engine::network::{Network, NetworkCreate};
use berth_engine::Engine;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;

#[derive(clap::Subcommand)]
pub enum Cmd {
    /// Create a bridge network.
    Create {
        /// Only `bridge`.
        #[arg(short = 'd', long, default_value = "bridge")]
        driver: String,
        /// Subnet in CIDR form (once for IPv4, once more for IPv6 with --ipv6).
        #[arg(long)]
        subnet: Vec<String>,
        /// Gateway address (per subnet).
        #[arg(long)]
        gateway: Vec<String>,
        /// Also give containers IPv6 addresses (a unique-local /64 unless
        /// an IPv6 --subnet is given).
        #[arg(long)]
        ipv6: bool,
        /// No traffic leaves the network.
        #[arg(long)]
        internal: bool,
        /// Set a label (`K=V`).
        #[arg(long)]
        label: Vec<String>,
        name: String,
    },
    /// List networks.
    #[command(alias = "list")]
    Ls {
        #[arg(short = 'q', long)]
        quiet: bool,
        /// `json`, `table`, or a Go template.
        #[arg(long)]
        format: Option<String>,
        /// Show full ids.
        #[arg(long = "no-trunc")]
        no_trunc: bool,
    },
    /// Docker-shaped JSON of networks.
    Inspect {
        #[arg(short = 'f', long)]
        format: Option<String>,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove networks.
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Connect a container to a network.
    Connect {
        /// A name the container has on this network, besides its own.
        #[arg(long)]
        alias: Vec<String>,
        /// Its IPv4 address on this network.
        #[arg(long)]
        ip: Option<String>,
        network: String,
        container: String,
    },
    /// Disconnect a container from a network.
    Disconnect {
        /// Accepted for Docker compatibility.
        #[arg(short = 'f', long)]
        force: bool,
        network: String,
        container: String,
    },
    /// Remove the networks no container uses.
    Prune {
        #[arg(short = 'f', long)]
        force: bool,
    },
}

/// Docker's two networks that are not bridges, with their drivers: `host`
/// (the host's namespace) and `none` (loopback only). berth stores no rows
/// for them; they are listed and inspected as Docker shows them.
const PSEUDO: [(&str, &str); 2] = [("host", "host"), ("none", "null")];

/// A pseudo network's id: stable for a store.
fn pseudo_id(root: &Path, name: &str) -> String {
    berth_image::digest::Digest::sha256_of(
        format!("berth pseudo network {name} of {}", root.display()).as_bytes(),
    )
    .hex()
    .to_string()
}

/// The pseudo network `s` names: by its name, which no network can take,
/// else by an id prefix that no real network matches: (name, driver).
fn pseudo(eng: &Engine, root: &Path, s: &str) -> Option<(&'static str, &'static str)> {
    if let Some(p) = PSEUDO.into_iter().find(|(name, _)| *name == s) {
        return Some(p);
    }
    // (The stored networks are listed, not looked up: a lookup of
    // `bridge` would make the default network.)
    let real = eng
        .networks()
        .is_ok_and(|all| all.iter().any(|n| n.name == s || n.id.starts_with(s)));
    if s.len() < 3 || s == "bridge" || real {
        return None;
    }
    PSEUDO
        .into_iter()
        .find(|(name, _)| pseudo_id(root, name).starts_with(s))
}

/// `network inspect host|none`: the running containers in that mode.
fn pseudo_json(eng: &Engine, root: &Path, name: &str, driver: &str) -> anyhow::Result<Value> {
    let mut containers = serde_json::Map::new();
    for rec in eng.list()? {
        let Ok(cfg) = berth_engine::Config::parse(&rec) else {
            continue;
        };
        let mode = match cfg.spec.network {
            berth_engine::spec_gen::Network::Host => "host",
            berth_engine::spec_gen::Network::None => "none",
            _ => continue,
        };
        if mode == name && rec.status == berth_engine::db::Status::Running {
            containers.insert(
                rec.id.clone(),
                json!({"Name": rec.name, "MacAddress": "", "IPv4Address": "", "IPv6Address": ""}),
            );
        }
    }
    Ok(json!({
        "Name": name,
        "Id": pseudo_id(root, name),
        "Created": "0001-01-01T00:00:00Z",
        "Scope": "local",
        "Driver": driver,
        "EnableIPv6": false,
        "IPAM": {"Driver": "default", "Options": null, "Config": []},
        "Internal": false,
        "Attachable": false,
        "Ingress": false,
        "Containers": containers,
        "Options": {},
        "Labels": {},
    }))
}

/// One `network ls` row.
struct Listed {
    id: String,
    name: String,
    driver: &'static str,
    ipv6: bool,
    internal: bool,
    created: String,
    labels: Value,
}

fn network_json(eng: &Engine, n: &Network) -> anyhow::Result<Value> {
    let mut config =
        vec![json!({"Subnet": n.subnet.to_string(), "Gateway": n.gateway.to_string()})];
    if let (Some(s6), Some(g6)) = (n.subnet6, n.gateway6) {
        config.push(json!({"Subnet": s6.to_string(), "Gateway": g6.to_string()}));
    }
    let mut containers = serde_json::Map::new();
    for rec in eng.list()? {
        for ep in eng.endpoints(&rec.id)? {
            if ep.network.id == n.id {
                containers.insert(
                    rec.id.clone(),
                    json!({
                        "Name": rec.name,
                        "MacAddress": ep.mac,
                        "IPv4Address": format!("{}/{}", ep.ip, n.subnet.prefix),
                        "IPv6Address": match (ep.ip6, n.subnet6) {
                            (Some(a), Some(s)) => format!("{a}/{}", s.prefix),
                            _ => String::new(),
                        },
                    }),
                );
            }
        }
    }
    Ok(json!({
        "Name": n.name,
        "Id": n.id,
        "Created": n.created,
        "Scope": "local",
        "Driver": "bridge",
        "EnableIPv6": n.subnet6.is_some(),
        "IPAM": {"Driver": "default", "Options": {}, "Config": config},
        "Internal": n.internal,
        "Attachable": false,
        "Ingress": false,
        "Containers": containers,
        "Options": {"com.docker.network.bridge.name": n.bridge},
        "Labels": n.labels,
    }))
}

pub fn run(root: &Path, cmd: Cmd) -> anyhow::Result<i32> {
    let eng = Engine::open(root)?;
    match cmd {
        Cmd::Create {
            driver,
            subnet,
            gateway,
            ipv6,
            internal,
            label,
            name,
        } => {
            if driver != "bridge" {
                anyhow::bail!(
                    "network driver {driver:?} is not supported: berth has bridge networks"
                );
            }
            let mut c = NetworkCreate {
                name,
                ipv6,
                internal,
                labels: label
                    .iter()
                    .map(|l| {
                        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
                        (k.to_string(), v.to_string())
                    })
                    .collect::<BTreeMap<_, _>>(),
                ..NetworkCreate::default()
            };
            for s in subnet {
                let slot = if s.contains(':') {
                    &mut c.subnet6
                } else {
                    &mut c.subnet
                };
                if slot.is_some() {
                    anyhow::bail!("berth networks have one IPv4 and one IPv6 subnet at most");
                }
                *slot = Some(s);
            }
            for g in gateway {
                let slot = if g.contains(':') {
                    &mut c.gateway6
                } else {
                    &mut c.gateway
                };
                if slot.is_some() {
                    anyhow::bail!("one gateway per address family");
                }
                *slot = Some(g);
            }
            println!("{}", eng.create_network(&c)?.id);
        }
        Cmd::Ls {
            quiet,
            format,
            no_trunc,
        } => {
            // The default network appears with its first use (listing
            // makes no bridge); host and none are always there. Sorted by
            // name, as Docker's CLI does.
            let mut nets: Vec<Listed> = eng
                .networks()?
                .into_iter()
                .map(|n| Listed {
                    ipv6: n.subnet6.is_some(),
                    internal: n.internal,
                    labels: json!(n.labels),
                    id: n.id,
                    name: n.name,
                    driver: "bridge",
                    created: n.created,
                })
                .collect();
            for (name, driver) in PSEUDO {
                nets.push(Listed {
                    id: pseudo_id(root, name),
                    name: name.to_string(),
                    driver,
                    ipv6: false,
                    internal: false,
                    created: "0001-01-01T00:00:00Z".into(),
                    labels: json!({}),
                });
            }
            nets.sort_by(|a, b| a.name.cmp(&b.name));
            let id = |n: &Listed| {
                if no_trunc {
                    n.id.clone()
                } else {
                    n.id[..12].to_string()
                }
            };
            if quiet {
                for n in &nets {
                    println!("{}", id(n));
                }
                return Ok(0);
            }
            match format.as_deref() {
                None | Some("table") => {
                    let mut rows = vec![vec![
                        "NETWORK ID".to_string(),
                        "NAME".into(),
                        "DRIVER".into(),
                        "SCOPE".into(),
                    ]];
                    for n in &nets {
                        rows.push(vec![id(n), n.name.clone(), n.driver.into(), "local".into()]);
                    }
                    print!("{}", output::table(&rows));
                }
                Some(f) => {
                    for n in &nets {
                        let v = json!({
                            "ID": id(n), "Name": n.name, "Driver": n.driver, "Scope": "local",
                            "IPv6": n.ipv6, "Internal": n.internal,
                            "CreatedAt": n.created, "Labels": n.labels,
                        });
                        if f == "json" {
                            println!("{v}");
                        } else {
                            println!("{}", output::render(f, &v)?);
                        }
                    }
                }
            }
        }
        Cmd::Inspect { format, names } => {
            let mut out = Vec::new();
            let mut code = 0;
            for n in &names {
                if let Some((name, driver)) = pseudo(&eng, root, n) {
                    out.push(pseudo_json(&eng, root, name, driver)?);
                    continue;
                }
                match eng.network(n) {
                    Ok(net) => out.push(network_json(&eng, &net)?),
                    Err(e) => {
                        eprintln!("berth: {e}");
                        code = 1;
                    }
                }
            }
            match format {
                Some(f) => {
                    for v in &out {
                        println!("{}", output::render(&f, v)?);
                    }
                }
                None => println!("{}", serde_json::to_string_pretty(&out)?),
            }
            return Ok(code);
        }
        Cmd::Rm { names } => {
            let mut code = 0;
            for n in &names {
                if let Some((name, _)) = pseudo(&eng, root, n) {
                    eprintln!("berth: {name} is a pre-defined network and cannot be removed");
                    code = 1;
                    continue;
                }
                match eng.remove_network(n) {
                    Ok(_) => println!("{n}"),
                    Err(e) => {
                        eprintln!("berth: {e}");
                        code = 1;
                    }
                }
            }
            return Ok(code);
        }
        Cmd::Connect {
            alias,
            ip,
            network,
            container,
        } => {
            let rec = eng.lookup(&container)?;
            eng.connect(&rec, &network, &alias, ip.as_deref())?;
        }
        Cmd::Disconnect {
            network, container, ..
        } => {
            let rec = eng.lookup(&container)?;
            eng.disconnect(&rec, &network)?;
        }
        Cmd::Prune { .. } => {
            let removed = eng.prune_networks()?;
            if !removed.is_empty() {
                println!("Deleted Networks:");
                for n in &removed {
                    println!("{n}");
                }
            }
        }
    }
    Ok(0)
}

/// `berth port CONTAINER [PORT[/PROTO]]`.
#[derive(clap::Args)]
pub struct PortArgs {
    pub container: String,
    pub port: Option<String>,
}

pub fn port(root: &Path, a: PortArgs) -> anyhow::Result<i32> {
    let eng = Engine::open(root)?;
    let rec = eng.lookup(&a.container)?;
    let want = match &a.port {
        Some(p) => {
            let (n, proto) = p.split_once('/').unwrap_or((p.as_str(), "tcp"));
            let n: u16 = n
                .parse()
                .map_err(|_| anyhow::anyhow!("invalid port {p:?}"))?;
            Some((n, proto.to_string()))
        }
        None => None,
    };
    let mut found = false;
    for p in eng.published(&rec.id)? {
        if let Some((n, proto)) = &want {
            if p.port != *n || p.proto.as_str() != proto {
                continue;
            }
        }
        found = true;
        let host = match p.host_ip {
            Some(std::net::IpAddr::V6(a)) => format!("[{a}]"),
            Some(a) => a.to_string(),
            None => "0.0.0.0".into(),
        };
        if want.is_some() {
            println!("{host}:{}", p.host_port);
        } else {
            println!("{}/{} -> {host}:{}", p.port, p.proto.as_str(), p.host_port);
        }
    }
    if let (Some(p), false) = (&a.port, found) {
        eprintln!("berth: no public port '{p}' published for {}", rec.name);
        return Ok(1);
    }
    Ok(0)
}
