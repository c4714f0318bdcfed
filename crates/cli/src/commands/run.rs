//! `berth run` and `berth create`: pull the image if needed, create the
//! container, then (run) start it attached (exit with its code) or under a
//! monitor with `-d` (print its id). Exit codes as Docker's: 125 engine
//! error, 126 cannot execute, 127 not found, else the container's.

use crate::output::PullProgress;
use berth_engine::container::create::CreateRequest;
use berth_engine::container::restart::RestartPolicy;
use berth_engine::spec_gen::{self, Network};
use berth_engine::{Config, Engine};
use berth_image::manifest::Platform;
use berth_image::Reference;
use std::collections::BTreeMap;
use std::path::Path;

/// Flags shared by `run` and `create` (Docker's names).
#[derive(clap::Args)]
pub struct CreateArgs {
    /// Assign a name to the container.
    #[arg(long)]
    pub name: Option<String>,
    /// Automatically remove the container when it exits.
    #[arg(long)]
    pub rm: bool,
    /// Keep STDIN open (attached runs pass it through).
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Set an environment variable (`K=V`, or `K` to pass ours through).
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Read environment variables from a file (`K=V` lines, `#` comments).
    #[arg(long = "env-file")]
    pub env_file: Vec<String>,
    /// Working directory inside the container.
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// USER[:GROUP], names or numeric ids.
    #[arg(short = 'u', long = "user")]
    pub user: Option<String>,
    /// Override the image's entrypoint ("" clears it).
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Set a label (`K=V`).
    #[arg(short = 'l', long = "label")]
    pub label: Vec<String>,
    /// Memory limit (bytes, or with b/k/m/g).
    #[arg(short = 'm', long = "memory")]
    pub memory: Option<String>,
    /// Maximum number of processes (-1: unlimited).
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// `bridge` (the default network), a network's name, `none` (only
    /// loopback) or `host`. The default comes from BERTH_DEFAULT_NETWORK
    /// when set.
    #[arg(
        long,
        alias = "net",
        env = "BERTH_DEFAULT_NETWORK",
        default_value = "bridge"
    )]
    pub network: String,
    /// Publish a container's port to the host:
    /// `[ip:][hostPort:]containerPort[/tcp|udp]`.
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<String>,
    /// Publish every EXPOSEd port to a random host port.
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// The container's IPv4 address on its network.
    #[arg(long)]
    pub ip: Option<String>,
    /// The container's MAC address.
    #[arg(long = "mac-address")]
    pub mac_address: Option<String>,
    /// A DNS server for the container (replaces the host's).
    #[arg(long)]
    pub dns: Vec<String>,
    /// A DNS search domain.
    #[arg(long = "dns-search")]
    pub dns_search: Vec<String>,
    /// A DNS resolver option.
    #[arg(long = "dns-option", alias = "dns-opt")]
    pub dns_option: Vec<String>,
    /// Add a line to /etc/hosts (`NAME:IP`).
    #[arg(long = "add-host")]
    pub add_host: Vec<String>,
    /// A name the container has on its network, besides its own.
    #[arg(long = "network-alias", alias = "net-alias")]
    pub network_alias: Vec<String>,
    /// Signal to stop the container (default: the image's, else SIGTERM).
    #[arg(long = "stop-signal")]
    pub stop_signal: Option<String>,
    /// Seconds to wait for the stop signal before SIGKILL (default 10).
    #[arg(long = "stop-timeout")]
    pub stop_timeout: Option<u32>,
    /// Restart policy: no, always, unless-stopped, on-failure[:max-retries].
    #[arg(long, default_value = "no")]
    pub restart: String,
    /// Log options: `max-size=10m`, `max-file=3`.
    #[arg(long = "log-opt")]
    pub log_opt: Vec<String>,
    /// Verify TLS when pulling; `--tls-verify=false` allows plain http.
    #[arg(long = "tls-verify", default_value_t = true, action = clap::ArgAction::Set)]
    pub tls_verify: bool,
    /// Container host name.
    #[arg(short = 'h', long)]
    pub hostname: Option<String>,
    /// Bind mount or volume: HOST:CTR[:ro], NAME:CTR[:ro], or CTR.
    #[arg(short = 'v', long = "volume")]
    pub volume: Vec<String>,
    /// type=bind|volume|tmpfs,source=,target=[,readonly].
    #[arg(long)]
    pub mount: Vec<String>,
    /// A tmpfs: PATH[:OPTIONS].
    #[arg(long)]
    pub tmpfs: Vec<String>,
    /// Mount the root filesystem read-only.
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Memory plus swap (-1: unlimited swap).
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Number of CPUs (e.g. 1.5).
    #[arg(long, allow_hyphen_values = true)]
    pub cpus: Option<String>,
    /// CPU shares (relative weight).
    #[arg(short = 'c', long = "cpu-shares")]
    pub cpu_shares: Option<u64>,
    /// CPUs to run on (0-3, 0,1).
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// Ulimit: TYPE=SOFT[:HARD].
    #[arg(long)]
    pub ulimit: Vec<String>,
    /// Add Linux capabilities.
    #[arg(long = "cap-add")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities.
    #[arg(long = "cap-drop")]
    pub cap_drop: Vec<String>,
    /// All capabilities and devices, no seccomp, /sys writable.
    #[arg(long)]
    pub privileged: bool,
    /// seccomp=PROFILE.json|unconfined, no-new-privileges[=true|false].
    #[arg(long = "security-opt")]
    pub security_opt: Vec<String>,
    /// A host device: HOST[:CTR[:rwm]].
    #[arg(long)]
    pub device: Vec<String>,
    /// Run a tiny init (berth-init) as PID 1: it forwards signals and reaps zombies.
    #[arg(long)]
    pub init: bool,
    /// A runc-compatible runtime (name on PATH or path) instead of the
    /// built-in berth-runtime.
    #[arg(long)]
    pub runtime: Option<String>,
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
    /// NAME[:TAG|@DIGEST] or image id.
    pub image: String,
    /// Command and arguments (replace the image's Cmd).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub cmd: Vec<String>,
}

#[derive(clap::Args)]
pub struct Args {
    /// Run in the background and print the container id.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Keys that detach from a `-t` container (default ctrl-p,ctrl-q).
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    #[command(flatten)]
    pub create: CreateArgs,
}

pub const ENGINE_ERROR: i32 = 125;

/// Docker's exit code for an error before the container's own code.
pub fn error_code(e: &anyhow::Error) -> i32 {
    let msg = format!("{e:#}");
    // The runtime's exec errors read `exec: "ARG0": ...` (process.rs).
    let exec_err = msg.contains("exec: \"");
    if exec_err && msg.contains("executable file not found") {
        127
    } else if exec_err && (msg.contains("permission denied") || msg.contains("is a directory")) {
        126
    } else {
        ENGINE_ERROR
    }
}

fn report(r: anyhow::Result<i32>) -> i32 {
    r.unwrap_or_else(|e| {
        eprintln!("berth: {e:#}");
        error_code(&e)
    })
}

pub fn run(root: &Path, a: Args) -> anyhow::Result<i32> {
    Ok(report(go(root, a)))
}

pub fn create(root: &Path, a: CreateArgs) -> anyhow::Result<i32> {
    Ok(report((|| {
        let eng = Engine::open(root)?;
        let rec = create_container(&eng, root, a)?;
        println!("{}", rec.id);
        Ok(0)
    })()))
}

fn go(root: &Path, a: Args) -> anyhow::Result<i32> {
    let eng = Engine::open(root)?;
    let rec = create_container(&eng, root, a.create)?;
    if a.detach {
        let r = eng.start_detached(&rec);
        if r.is_err() && Config::parse(&rec)?.auto_remove {
            let _ = eng.remove(&rec, true, true);
        }
        r?;
        println!("{}", rec.id);
        return Ok(0);
    }
    if rec_is_tty(&rec) {
        // With a terminal the monitor holds the pty, so the detach keys
        // can leave the container running.
        let keys = super::attach::keys(a.detach_keys.as_deref())?;
        let (rec, sock) = match eng.start_and_attach(&rec) {
            Ok(r) => r,
            Err(e) => {
                if Config::parse(&rec)?.auto_remove {
                    let _ = eng.remove(&rec, true, true);
                }
                return Err(e.into());
            }
        };
        let cfg = Config::parse(&rec)?;
        return super::attach::session(&eng, &rec, sock, cfg.interactive, true, keys);
    }
    let r = eng.run_attached(&rec);
    if r.is_err() && Config::parse(&rec)?.auto_remove {
        let _ = eng.remove(&rec, true, true);
    }
    Ok(r?)
}

fn rec_is_tty(rec: &berth_engine::db::Record) -> bool {
    Config::parse(rec).map(|c| c.spec.tty).unwrap_or(false)
}

fn parse_log_opts(opts: &[String]) -> anyhow::Result<(u64, u32)> {
    let (mut size, mut files) = (0u64, 1u32);
    for o in opts {
        let (k, v) = o
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("invalid --log-opt {o:?}: want KEY=VALUE"))?;
        match k {
            "max-size" => {
                size = spec_gen::parse_size(v)
                    .filter(|n| *n > 0)
                    .ok_or_else(|| anyhow::anyhow!("invalid max-size {v:?}, e.g. 10m"))?
                    as u64
            }
            "max-file" => {
                files = v
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| anyhow::anyhow!("invalid max-file {v:?}"))?
            }
            _ => anyhow::bail!("unknown log opt {k:?} (json-file knows max-size, max-file)"),
        }
    }
    Ok((size, files))
}

/// `--runtime NAME|PATH` as an absolute path to an executable.
fn resolve_runtime(r: &str) -> anyhow::Result<String> {
    use std::os::unix::fs::PermissionsExt;
    let exec = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if r.contains('/') {
        let p = std::fs::canonicalize(r).map_err(|e| anyhow::anyhow!("runtime {r:?}: {e}"))?;
        anyhow::ensure!(exec(&p), "runtime {r:?} is not an executable file");
        return Ok(p.display().to_string());
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(r))
        .find(|p| exec(p))
        .map(|p| p.display().to_string())
        .ok_or_else(|| anyhow::anyhow!("runtime {r:?} not found in PATH"))
}

fn read_env_file(path: &str) -> anyhow::Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("open env file {path}: {e}"))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect())
}

pub(crate) fn size_flag(v: &Option<String>, what: &str) -> anyhow::Result<Option<i64>> {
    match v.as_deref() {
        None => Ok(None),
        Some("-1") => Ok(Some(-1)),
        Some(m) => Ok(Some(spec_gen::parse_size(m).ok_or_else(|| {
            anyhow::anyhow!("invalid {what} {m:?}: a size like 64m")
        })?)),
    }
}

/// The flags as spec options, every value checked before anything exists.
fn spec_options(a: &CreateArgs) -> anyhow::Result<spec_gen::Options> {
    use spec_gen::{mounts, security};
    let network = match a.network.as_str() {
        "none" => Network::None,
        "host" => Network::Host,
        "" => anyhow::bail!("--network needs a value"),
        other if other.starts_with("container:") => {
            let target = &other["container:".len()..];
            if target.is_empty() {
                anyhow::bail!("--network container: needs a container name or id");
            }
            if a.hostname.is_some() {
                anyhow::bail!("conflicting options: hostname and the network mode");
            }
            if !a.dns.is_empty() || !a.add_host.is_empty() {
                anyhow::bail!("conflicting options: dns and the network mode");
            }
            Network::Container(target.to_string())
        }
        other => Network::Bridge(other.to_string()),
    };
    let bridged = matches!(network, Network::Bridge(_));
    let mut publish = Vec::new();
    for p in &a.publish {
        publish.extend(berth_engine::network::parse_publish(p)?);
    }
    if let Some(p) = publish
        .iter()
        .find(|p| p.host_ip.is_some_and(|i| i.is_ipv6()))
    {
        anyhow::bail!(
            "publishing on an IPv6 host address ({}) is not supported yet",
            p.host_ip
                .unwrap_or(std::net::IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED))
        );
    }
    if !bridged && (!publish.is_empty() || a.ip.is_some() || a.mac_address.is_some()) {
        anyhow::bail!(
            "-p, --ip and --mac-address need a bridge network (not --network {})",
            a.network
        );
    }
    if !bridged && !a.network_alias.is_empty() {
        anyhow::bail!("network-scoped aliases are only supported for user-defined networks");
    }
    if let Some(ip) = &a.ip {
        if ip.parse::<std::net::Ipv4Addr>().is_err() {
            anyhow::bail!("invalid IPv4 address: {ip}");
        }
    }
    if let Some(m) = &a.mac_address {
        if berth_net::netlink::parse_mac(m).is_none() {
            anyhow::bail!("invalid MAC address: {m}");
        }
    }
    for al in &a.network_alias {
        berth_engine::network::check_alias(al)?;
    }
    for v in a.dns_search.iter().chain(&a.dns_option) {
        if v.is_empty() || v.contains(|c: char| c.is_whitespace() || c.is_control()) {
            anyhow::bail!("invalid --dns-search/--dns-option value {v:?}");
        }
    }
    for d in &a.dns {
        if d.parse::<std::net::IpAddr>().is_err() {
            anyhow::bail!("{d} is not an ip address");
        }
    }
    let mut add_host = Vec::new();
    for h in &a.add_host {
        // NAME:IP, the IP may be IPv6 (NAME:IP splits at the first colon);
        // `NAME=IP` as newer Docker allows.
        let (name, ip) = h
            .split_once('=')
            .or_else(|| h.split_once(':'))
            .ok_or_else(|| anyhow::anyhow!("invalid argument {h:?} for --add-host: NAME:IP"))?;
        let ip = ip.trim_start_matches('[').trim_end_matches(']');
        if name.is_empty()
            || name.contains(char::is_whitespace)
            || ip.parse::<std::net::IpAddr>().is_err()
        {
            anyhow::bail!("invalid argument {h:?} for --add-host: NAME:IP");
        }
        add_host.push((name.to_string(), ip.to_string()));
    }
    let memory = size_flag(&a.memory, "memory size")?;
    if memory == Some(-1) {
        anyhow::bail!("invalid memory size \"-1\": a size like 64m");
    }
    let memory_swap = size_flag(&a.memory_swap, "memory-swap")?;
    let cpus = match &a.cpus {
        Some(c) => Some(
            c.parse::<f64>()
                .map_err(|_| anyhow::anyhow!("invalid argument {c:?} for --cpus"))?,
        ),
        None => None,
    };
    let mut env = Vec::new();
    for f in &a.env_file {
        env.extend(read_env_file(f)?);
    }
    env.extend(a.env.iter().cloned());
    let mut anon = || berth_engine::container::new_id().unwrap_or_else(|_| "anonymous".into());
    let mut mounts_list = Vec::new();
    for v in &a.volume {
        mounts_list.push(mounts::parse_volume(v, &mut anon)?);
    }
    for m in &a.mount {
        mounts_list.push(mounts::parse_mount(m, &mut anon)?);
    }
    for t in &a.tmpfs {
        mounts_list.push(mounts::parse_tmpfs(t)?);
    }
    let ulimits = a
        .ulimit
        .iter()
        .map(|u| mounts::parse_ulimit(u))
        .collect::<Result<Vec<_>, _>>()?;
    let devices = a
        .device
        .iter()
        .map(|d| security::parse_device(d))
        .collect::<Result<Vec<_>, _>>()?;
    let (mut seccomp, mut no_new_privileges) = (None, false);
    for o in &a.security_opt {
        let (k, v) = o.split_once(['=', ':']).unwrap_or((o.as_str(), ""));
        match k {
            "seccomp" if v == "unconfined" => seccomp = Some("unconfined".to_string()),
            "seccomp" => {
                let text = std::fs::read_to_string(v)
                    .map_err(|e| anyhow::anyhow!("opening seccomp profile {v:?} failed: {e}"))?;
                serde_json::from_str::<serde_json::Value>(&text)
                    .map_err(|e| anyhow::anyhow!("decoding seccomp profile {v:?} failed: {e}"))?;
                seccomp = Some(text);
            }
            "no-new-privileges" => {
                no_new_privileges = match v {
                    "" | "true" => true,
                    "false" => false,
                    _ => anyhow::bail!("invalid --security-opt {o:?}"),
                }
            }
            _ => anyhow::bail!(
                "invalid --security-opt {o:?}: berth knows seccomp= and no-new-privileges"
            ),
        }
    }
    let opts = spec_gen::Options {
        env,
        workdir: a.workdir.clone(),
        user: a.user.clone(),
        entrypoint: a.entrypoint.clone(),
        cmd: a.cmd.clone(),
        memory,
        pids_limit: a.pids_limit,
        network,
        publish,
        publish_all: a.publish_all,
        ip: a.ip.clone(),
        mac_address: a.mac_address.clone(),
        dns: a.dns.clone(),
        dns_search: a.dns_search.clone(),
        dns_option: a.dns_option.clone(),
        add_host,
        network_aliases: a.network_alias.clone(),
        extra_networks: Vec::new(),
        tty: a.tty,
        hostname: a.hostname.clone(),
        mounts: mounts_list,
        read_only: a.read_only,
        memory_swap,
        cpus,
        cpu_shares: a.cpu_shares,
        cpuset_cpus: a.cpuset_cpus.clone(),
        ulimits,
        cap_add: a.cap_add.clone(),
        cap_drop: a.cap_drop.clone(),
        privileged: a.privileged,
        seccomp,
        no_new_privileges,
        devices,
        init: a.init,
    };
    spec_gen::check(&opts)?;
    Ok(opts)
}

/// Validates the flags, finds (or pulls) the image and creates the container.
pub fn create_container(
    eng: &Engine,
    root: &Path,
    a: CreateArgs,
) -> anyhow::Result<berth_engine::db::Record> {
    if let Some(s) = &a.stop_signal {
        berth_runtime::container::kill::parse_signal(s)?;
    }
    let restart = RestartPolicy::parse(&a.restart)?;
    if a.rm && restart != RestartPolicy::No {
        anyhow::bail!("conflicting options: --restart and --rm");
    }
    let (log_max_size, log_max_file) = parse_log_opts(&a.log_opt)?;
    let mut labels = BTreeMap::new();
    for l in &a.label {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        labels.insert(k.to_string(), v.to_string());
    }
    let mut spec = spec_options(&a)?;
    if let Network::Bridge(name) = &spec.network {
        // As Docker: a missing network fails the create, not the start.
        // Stored by name (an id prefix would not count as a use of it).
        if name != berth_engine::network::DEFAULT_NETWORK {
            spec.network = Network::Bridge(eng.network(name)?.name);
        }
    }
    if let Network::Container(target) = &spec.network {
        // Stored by id: the other container may be renamed.
        let t = eng.lookup(target)?;
        spec.network = Network::Container(t.id);
    }
    let (store, db) = super::open(root)?;
    let image = match db.image_by_ref(&a.image)? {
        Some(i) => i,
        None => {
            let reference = Reference::parse(&a.image)?;
            eprintln!("Unable to find image '{}' locally", reference.familiar());
            let pulled = super::pull::fetch(
                &store,
                &db,
                &reference,
                Platform::host(),
                a.tls_verify,
                3,
                &PullProgress::new(true),
            )?;
            eprintln!("Digest: {}", pulled.manifest_digest);
            eprintln!(
                "Status: Downloaded newer image for {}",
                reference.familiar()
            );
            db.image(&pulled.image_id)?
                .ok_or_else(|| anyhow::anyhow!("image {} vanished after pull", pulled.image_id))?
        }
    };
    let config = Config {
        spec,
        image_config: String::new(),
        auto_remove: a.rm,
        labels,
        stop_signal: a.stop_signal,
        stop_timeout: a.stop_timeout,
        log_max_size,
        log_max_file,
        interactive: a.interactive,
        restart,
        runtime: match &a.runtime {
            Some(r) => Some(resolve_runtime(r)?),
            None => None,
        },
    };
    Ok(eng.create(CreateRequest {
        name: a.name,
        image,
        image_ref: a.image,
        config,
    })?)
}
