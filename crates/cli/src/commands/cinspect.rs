//! `berth inspect` (containers first, then images, as Docker does) and
//! `berth container inspect`: Docker-shaped JSON.

use super::ps::command_of;
use berth_engine::container::restart::{is_restarting, state_name};
use berth_engine::db::{Record, Status};
use berth_engine::{rootfs, Config, Engine};
use serde_json::{json, Value};
use std::path::Path;

#[derive(clap::Args)]
pub struct Args {
    /// Only containers (`container`) or images (`image`).
    #[arg(long = "type")]
    pub kind: Option<String>,
    /// A Go template per object (`{{.State.Status}}`, `{{json .Config}}`).
    #[arg(short = 'f', long)]
    pub format: Option<String>,
    #[arg(required = true)]
    pub names: Vec<String>,
}

/// One `Mounts` entry as Docker shows it.
fn mount_json(volumes: &Path, m: &berth_engine::spec_gen::mounts::MountSpec) -> Value {
    use berth_engine::spec_gen::mounts::{volume_data, MountKind};
    let (kind, source, name) = match m.kind {
        MountKind::Bind => ("bind", m.source.clone(), None),
        MountKind::Volume => (
            "volume",
            volume_data(volumes, &m.source).display().to_string(),
            Some(m.source.clone()),
        ),
        MountKind::Tmpfs => ("tmpfs", String::new(), None),
    };
    let mut v = json!({
        "Type": kind, "Source": source, "Destination": m.target,
        "Mode": if m.readonly { "ro" } else { "" }, "RW": !m.readonly, "Propagation": "rprivate",
    });
    if let Some(n) = name {
        v["Name"] = json!(n);
        v["Driver"] = json!("local");
    }
    v
}

/// Docker's container inspect object.
pub fn container_json(eng: &Engine, r: &Record) -> anyhow::Result<Value> {
    let cfg = Config::parse(r)?;
    let image = cfg.image();
    let args = command_of(r);
    let dir = eng.dir(&r.id);
    let lowers: Vec<String> = rootfs::lowers(&dir)
        .unwrap_or_default()
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let running = r.status == Status::Running;
    let zero = "0001-01-01T00:00:00Z";
    let or_zero = |s: &str| {
        if s.is_empty() {
            zero.to_string()
        } else {
            s.to_string()
        }
    };
    let mut env = image["Env"].as_array().cloned().unwrap_or_default();
    env.extend(cfg.spec.env.iter().map(|e| json!(e)));
    Ok(json!({
        "Id": r.id,
        "Created": r.created,
        "Path": args.first().cloned().unwrap_or_default(),
        "Args": args.iter().skip(1).collect::<Vec<_>>(),
        "State": {
            "Status": state_name(r),
            // Docker: a restarting container is Running and Restarting.
            "Running": running || is_restarting(r),
            "Paused": false,
            "Restarting": is_restarting(r),
            "OOMKilled": r.oom_killed,
            "Dead": false,
            "Pid": if running { r.pid } else { 0 },
            "ExitCode": r.exit_code,
            "Error": r.error,
            "StartedAt": or_zero(&r.started_at),
            "FinishedAt": or_zero(&r.finished_at),
        },
        "Image": r.image_id,
        "ResolvConfPath": "",
        "HostnamePath": "",
        "HostsPath": "",
        "LogPath": eng.log_path(&r.id),
        "Name": format!("/{}", r.name),
        "RestartCount": r.restarts.count,
        "Driver": "overlay",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "Mounts": cfg.spec.mounts.iter().map(|m| mount_json(&eng.volumes_dir(), m)).collect::<Vec<_>>(),
        "HostConfig": {
            "NetworkMode": match &cfg.spec.network {
                berth_engine::spec_gen::Network::None => "none".to_string(),
                berth_engine::spec_gen::Network::Host => "host".to_string(),
                berth_engine::spec_gen::Network::Bridge(n) => n.clone(),
                berth_engine::spec_gen::Network::Container(id) => format!("container:{id}"),
            },
            "PortBindings": port_bindings(&cfg),
            "PublishAllPorts": cfg.spec.publish_all,
            "Dns": cfg.spec.dns,
            "DnsSearch": cfg.spec.dns_search,
            "DnsOptions": cfg.spec.dns_option,
            "ExtraHosts": cfg.spec.add_host.iter().map(|(n, i)| format!("{n}:{i}")).collect::<Vec<_>>(),
            "AutoRemove": cfg.auto_remove,
            "RestartPolicy": {
                "Name": cfg.restart.name(),
                "MaximumRetryCount": cfg.restart.max_retries(),
            },
            "Memory": cfg.spec.memory.unwrap_or(0),
            "PidsLimit": cfg.spec.pids_limit,
            "LogConfig": {"Type": "json-file", "Config": {
                "max-size": cfg.log_max_size.to_string(),
                "max-file": cfg.log_max_file.to_string(),
            }},
        },
        "GraphDriver": {
            "Name": "overlay",
            "Data": {
                "LowerDir": lowers.join(":"),
                "UpperDir": rootfs::upper(&dir),
                "WorkDir": dir.join("work"),
                "MergedDir": rootfs::merged(&dir),
            },
        },
        "Config": {
            "Hostname": &r.id[..12],
            "User": cfg.spec.user.clone().or_else(|| image["User"].as_str().map(String::from)).unwrap_or_default(),
            "Tty": cfg.spec.tty,
            "OpenStdin": cfg.interactive,
            "Env": env,
            "Cmd": if cfg.spec.cmd.is_empty() { image["Cmd"].clone() } else { json!(cfg.spec.cmd) },
            "Image": r.image_ref,
            "WorkingDir": cfg.spec.workdir.clone().or_else(|| image["WorkingDir"].as_str().map(String::from)).unwrap_or_default(),
            "Entrypoint": match &cfg.spec.entrypoint { Some(e) if e.is_empty() => Value::Null, Some(e) => json!([e]), None => image["Entrypoint"].clone() },
            "Labels": cfg.labels,
            "StopSignal": cfg.stop_signal(),
            "ExposedPorts": image.get("ExposedPorts").cloned().unwrap_or(Value::Null),
            "Volumes": image.get("Volumes").cloned().unwrap_or(Value::Null),
            "StopTimeout": cfg.stop_timeout,
        },
        "NetworkSettings": network_settings(eng, r, &cfg)?,
    }))
}

fn port_key(proto: berth_net::nft::Proto, port: u16) -> String {
    format!("{port}/{}", proto.as_str())
}

/// `HostConfig.PortBindings`: what `-p` asked for.
fn port_bindings(cfg: &berth_engine::Config) -> Value {
    let mut m = serde_json::Map::new();
    for p in &cfg.spec.publish {
        let e = m
            .entry(port_key(p.proto, p.port))
            .or_insert_with(|| json!([]));
        if let Some(a) = e.as_array_mut() {
            a.push(json!({
                "HostIp": p.host_ip.map(|i| i.to_string()).unwrap_or_default(),
                "HostPort": if p.host_port == 0 { String::new() } else { p.host_port.to_string() },
            }));
        }
    }
    Value::Object(m)
}

/// Docker's `NetworkSettings`: the endpoints and ports in effect while
/// the container runs.
fn network_settings(
    eng: &Engine,
    r: &berth_engine::db::Record,
    cfg: &berth_engine::Config,
) -> anyhow::Result<Value> {
    let eps = eng.endpoints(&r.id)?;
    let mut ports = serde_json::Map::new();
    for p in eng.published(&r.id)? {
        let e = ports
            .entry(port_key(p.proto, p.port))
            .or_insert_with(|| json!([]));
        if let Some(a) = e.as_array_mut() {
            a.push(json!({
                "HostIp": p.host_ip.map(|i| i.to_string()).unwrap_or_else(|| "0.0.0.0".into()),
                "HostPort": p.host_port.to_string(),
            }));
        }
    }
    let mut networks = serde_json::Map::new();
    for ep in &eps {
        networks.insert(
            ep.network.name.clone(),
            json!({
                "Aliases": cfg.spec.network_aliases,
                "NetworkID": ep.network.id,
                "EndpointID": "",
                "Gateway": ep.network.gateway.to_string(),
                "IPAddress": ep.ip.to_string(),
                "IPPrefixLen": ep.network.subnet.prefix,
                "IPv6Gateway": ep.network.gateway6.map(|g| g.to_string()).unwrap_or_default(),
                "GlobalIPv6Address": ep.ip6.map(|g| g.to_string()).unwrap_or_default(),
                "GlobalIPv6PrefixLen": ep.network.subnet6.map(|s| s.prefix).unwrap_or(0),
                "MacAddress": ep.mac,
            }),
        );
    }
    let first = eps.first();
    Ok(json!({
        "Bridge": first.map(|e| e.network.bridge.clone()).unwrap_or_default(),
        "SandboxKey": if r.status == berth_engine::db::Status::Running && r.pid > 0 && first.is_some() {
            format!("/proc/{}/ns/net", r.pid)
        } else {
            String::new()
        },
        "Ports": ports,
        "IPAddress": first.map(|e| e.ip.to_string()).unwrap_or_default(),
        "IPPrefixLen": first.map(|e| e.network.subnet.prefix).unwrap_or(0),
        "Gateway": first.map(|e| e.network.gateway.to_string()).unwrap_or_default(),
        "MacAddress": first.map(|e| e.mac.clone()).unwrap_or_default(),
        "Networks": networks,
    }))
}

pub fn run(root: &Path, a: Args) -> anyhow::Result<i32> {
    let eng = Engine::open(root)?;
    let mut out = Vec::new();
    let mut code = 0;
    for n in &a.names {
        if a.kind.as_deref() != Some("image") {
            match eng.lookup(n) {
                Ok(r) => {
                    out.push(container_json(&eng, &r)?);
                    continue;
                }
                Err(berth_engine::Error::Db(berth_engine::db::Error::NotFound(_))) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if a.kind.as_deref() != Some("container") {
            if let Some(v) = super::inspect::image_json(&eng.images, n)? {
                out.push(v);
                continue;
            }
        }
        eprintln!("Error: No such object: {n}");
        code = 1;
    }
    match &a.format {
        Some(f) if f != "json" => {
            for v in &out {
                println!("{}", crate::output::render(f, v)?);
            }
        }
        _ => println!("{}", serde_json::to_string_pretty(&out)?),
    }
    Ok(code)
}
