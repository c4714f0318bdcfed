//! Image config + `run` options -> an OCI runtime `Spec`, with Docker's
//! defaults (capabilities, mounts, masked paths, namespaces).

pub mod mounts;
pub mod security;

use mounts::MountSpec;
use oci_spec::runtime::Spec;
use security::Device;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("image config is not valid json: {0}")]
    ImageConfig(serde_json::Error),
    #[error(
        "no command specified: the image has no Entrypoint or Cmd; give one after the image name"
    )]
    NoCommand,
    #[error("unable to find user {0}: no matching entries in /etc/passwd of the image")]
    NoUser(String),
    #[error("unable to find group {0}: no matching entries in /etc/group of the image")]
    NoGroup(String),
    #[error("invalid spec: {0}")]
    Spec(serde_json::Error),
    #[error("{0}")]
    Invalid(String),
}

/// The runtime-spec version berth's configs claim: 1.1.0, because nothing
/// newer is used and older runtimes (crun 1.8) refuse 1.2.
pub const SPEC_VERSION: &str = "1.1.0";

pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Docker's default capability set.
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Network {
    /// A new, empty network namespace (loopback only).
    #[default]
    None,
    /// The host's network namespace.
    Host,
    /// A new namespace wired to the bridge network of this name.
    Bridge(String),
    /// The network namespace of another container (its id).
    Container(String),
}

/// A network a container is attached to besides its first one
/// (`network connect`).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct ExtraNetwork {
    pub name: String,
    pub aliases: Vec<String>,
    pub ip: Option<String>,
}

/// What `berth run` asks for on top of the image config.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Options {
    /// `-e K=V` (or `-e K`: taken from our environment when set).
    pub env: Vec<String>,
    pub workdir: Option<String>,
    /// `-u USER[:GROUP]`, names or numbers.
    pub user: Option<String>,
    /// `--entrypoint`: `Some("")` clears the image's entrypoint.
    pub entrypoint: Option<String>,
    /// Arguments after the image: replace the image's Cmd.
    pub cmd: Vec<String>,
    pub memory: Option<i64>,
    pub pids_limit: Option<i64>,
    pub network: Network,
    /// `-p`: published ports.
    pub publish: Vec<crate::network::Publish>,
    /// `-P`: every EXPOSEd port too, to random host ports.
    pub publish_all: bool,
    /// `--ip`, `--mac-address`.
    pub ip: Option<String>,
    pub mac_address: Option<String>,
    /// `--dns`, `--dns-search`, `--dns-option`.
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
    pub dns_option: Vec<String>,
    /// `--add-host NAME:IP`.
    pub add_host: Vec<(String, String)>,
    /// `--network-alias`.
    pub network_aliases: Vec<String>,
    /// Networks joined with `network connect`, after the first.
    pub extra_networks: Vec<ExtraNetwork>,
    /// `-t`: a pty as the process's stdio.
    pub tty: bool,
    /// `-h`: the container's hostname (default: the id's first 12 digits).
    pub hostname: Option<String>,
    /// `-v`, `--mount`, `--tmpfs`, and the image's VOLUMEs.
    pub mounts: Vec<MountSpec>,
    /// `--read-only`: the root filesystem is mounted read-only.
    pub read_only: bool,
    /// `--memory-swap`: memory plus swap (-1: unlimited swap).
    pub memory_swap: Option<i64>,
    /// `--cpus`.
    pub cpus: Option<f64>,
    /// `--cpu-shares`.
    pub cpu_shares: Option<u64>,
    /// `--cpuset-cpus`.
    pub cpuset_cpus: Option<String>,
    /// `--ulimit`, as OCI rlimits.
    pub ulimits: Vec<Value>,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub privileged: bool,
    /// `--security-opt seccomp=`: `unconfined`, or a profile's JSON text;
    /// None is Docker's default profile.
    pub seccomp: Option<String>,
    /// `--security-opt no-new-privileges`.
    pub no_new_privileges: bool,
    /// `--device`.
    pub devices: Vec<Device>,
    /// `--init`: berth-init as PID 1, the command its child.
    pub init: bool,
}

/// Where per-container files live, for [`generate`].
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// `<root>/volumes`: named volumes' data dirs.
    pub volumes_dir: PathBuf,
    /// A dir with `hosts`, `hostname` and `resolv.conf` to bind-mount.
    pub etc_dir: Option<PathBuf>,
    /// `linux.cgroupsPath`.
    pub cgroups_path: Option<String>,
    /// The host path of berth-init, bound at [`INIT_PATH`] with `--init`.
    pub init_binary: Option<PathBuf>,
    /// The network namespace to join (a bridge network's, made by berth).
    pub netns_path: Option<String>,
}

/// Where `--init` puts berth-init in the container (on the /dev tmpfs, so
/// the mount point never lands in the container's upper dir).
pub const INIT_PATH: &str = "/dev/init";

/// The resolved process user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub home: Option<String>,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Entrypoint + Cmd with Docker's override rules: `--entrypoint` also drops
/// the image's Cmd; arguments after the image replace Cmd.
pub fn args(image: &Value, opts: &Options) -> Result<Vec<String>, Error> {
    let (entry, mut cmd) = match &opts.entrypoint {
        Some(e) if e.is_empty() => (Vec::new(), Vec::new()),
        Some(e) => (vec![e.clone()], Vec::new()),
        None => (strings(&image["Entrypoint"]), strings(&image["Cmd"])),
    };
    if !opts.cmd.is_empty() {
        cmd = opts.cmd.clone();
    }
    let mut out = entry;
    out.extend(cmd);
    if out.is_empty() {
        return Err(Error::NoCommand);
    }
    Ok(out)
}

/// Sets `K=V` in `env`, replacing an existing `K`.
pub fn set_env(env: &mut Vec<String>, kv: String) {
    let key = kv.split('=').next().unwrap_or("").to_string();
    if let Some(slot) = env
        .iter_mut()
        .find(|e| e.split('=').next() == Some(key.as_str()))
    {
        *slot = kv;
    } else {
        env.push(kv);
    }
}

/// The image's Env, then `-e` (later wins), plus PATH/HOSTNAME/HOME defaults.
pub fn env(image: &Value, opts: &Options, hostname: &str, home: Option<&str>) -> Vec<String> {
    let mut env = vec![DEFAULT_PATH.to_string(), format!("HOSTNAME={hostname}")];
    for e in strings(&image["Env"]) {
        set_env(&mut env, e);
    }
    for e in &opts.env {
        if e.contains('=') {
            set_env(&mut env, e.clone());
        } else if let Ok(v) = std::env::var(e) {
            set_env(&mut env, format!("{e}={v}"));
        }
    }
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", home.unwrap_or("/root")));
    }
    env
}

/// Reads `etc/<name>` of the rootfs as the container would see it
/// (openat2 RESOLVE_IN_ROOT), refusing a symlink as the file itself, and
/// anything that is not a regular file of at most 1 MiB: a container can
/// put a FIFO or a huge sparse file there.
fn read_etc(rootfs: &Path, name: &str) -> Option<String> {
    use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
    use std::io::Read;
    const MAX: u64 = 1 << 20;
    let root = nix::fcntl::open(
        rootfs,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ok()?;
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let f = std::fs::File::from(openat2(&root, format!("etc/{name}").as_str(), how).ok()?);
    let md = f.metadata().ok()?;
    if !md.is_file() || md.len() > MAX {
        return None;
    }
    let mut s = String::new();
    f.take(MAX).read_to_string(&mut s).ok()?;
    Some(s)
}

fn entries(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split(':').collect::<Vec<_>>())
}

/// Resolves `USER[:GROUP]` (names or numbers) against the rootfs's
/// /etc/passwd and /etc/group, like Docker.
pub fn resolve_user(rootfs: &Path, spec: Option<&str>) -> Result<User, Error> {
    let spec = spec.unwrap_or("").trim();
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let u = if u.is_empty() { "0" } else { u };
    let passwd = read_etc(rootfs, "passwd").unwrap_or_default();
    let group = read_etc(rootfs, "group").unwrap_or_default();
    let pw = entries(&passwd)
        .find(|f| f.len() >= 4 && (f[0] == u || (u.parse::<u32>().is_ok() && f[2] == u)));
    let (uid, mut gid, name, home) = match (u.parse::<u32>(), &pw) {
        (Ok(uid), Some(f)) => (
            uid,
            f[3].parse().unwrap_or(0),
            Some(f[0]),
            f.get(5).copied(),
        ),
        (Ok(uid), None) => (uid, 0, None, None),
        (Err(_), Some(f)) => (
            f[2].parse().map_err(|_| Error::NoUser(u.into()))?,
            f[3].parse().unwrap_or(0),
            Some(f[0]),
            f.get(5).copied(),
        ),
        (Err(_), None) => return Err(Error::NoUser(u.into())),
    };
    if let Some(g) = g.filter(|g| !g.is_empty()) {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => entries(&group)
                .find(|f| f.len() >= 3 && f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| Error::NoGroup(g.into()))?,
        };
    }
    let mut additional_gids = Vec::new();
    if let Some(name) = name {
        for f in entries(&group) {
            if f.len() >= 4 && f[3].split(',').any(|m| m == name) {
                if let Ok(n) = f[2].parse::<u32>() {
                    if n != gid && !additional_gids.contains(&n) {
                        additional_gids.push(n);
                    }
                }
            }
        }
    }
    Ok(User {
        uid,
        gid,
        additional_gids,
        home: home.filter(|h| !h.is_empty()).map(str::to_string),
    })
}

fn mounts() -> Value {
    json!([
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro", "nosuid", "noexec", "nodev"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"]}
    ])
}

/// The full spec for a container whose rootfs (already mounted) is `rootfs`.
/// `image` is the image config JSON (the `config` object is looked up inside).
pub fn generate(
    image_config: &str,
    opts: &Options,
    rootfs: &Path,
    hostname: &str,
    ctx: &Context,
) -> Result<Spec, Error> {
    let mut mounts_extra_init: Option<Value> = None;
    let full: Value = serde_json::from_str(image_config).map_err(Error::ImageConfig)?;
    let image = full.get("config").cloned().unwrap_or(Value::Null);
    let mut args = args(&image, opts)?;
    if opts.init {
        let bin = ctx
            .init_binary
            .as_ref()
            .ok_or_else(|| Error::Invalid("--init: berth-init is not available".into()))?;
        mounts_extra_init = Some(json!({
            "destination": INIT_PATH, "type": "bind", "source": bin,
            "options": ["bind", "ro", "nosuid", "nodev"],
        }));
        args.splice(0..0, [INIT_PATH.to_string(), "--".to_string()]);
    }
    let user_spec = opts
        .user
        .clone()
        .or_else(|| image["User"].as_str().map(str::to_string));
    let user = resolve_user(rootfs, user_spec.as_deref())?;
    let env = env(&image, opts, hostname, user.home.as_deref());
    let cwd = opts
        .workdir
        .clone()
        .or_else(|| image["WorkingDir"].as_str().map(str::to_string))
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".into());
    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
    ];
    match &opts.network {
        Network::None => namespaces.push(json!({"type": "network"})),
        Network::Host => {}
        Network::Bridge(_) | Network::Container(_) => {
            let path = ctx.netns_path.as_ref().ok_or_else(|| {
                Error::Invalid("a bridge network needs its namespace made first".into())
            })?;
            namespaces.push(json!({"type": "network", "path": path}));
        }
    }
    let resources = resources(opts)?;
    let caps = security::capabilities(opts)?;
    let seccomp = security::seccomp(opts, &caps)?;
    let (devices, device_rules) = security::devices(opts)?;
    let mut mounts = mounts();
    if opts.privileged {
        for m in mounts.as_array_mut().expect("mounts") {
            if m["destination"] == "/sys" {
                m["options"] = json!(["nosuid", "noexec", "nodev", "rw"]);
            }
        }
    }
    if let Some(etc) = &ctx.etc_dir {
        for f in ["hostname", "hosts", "resolv.conf"] {
            mounts.as_array_mut().expect("mounts").push(json!({
                "destination": format!("/etc/{f}"), "type": "bind",
                "source": etc.join(f), "options": ["rbind", "rprivate"],
            }));
        }
    }
    if let Some(m) = mounts_extra_init {
        mounts.as_array_mut().expect("mounts").push(m);
    }
    for m in &opts.mounts {
        let m = mounts::oci_mount(m, &ctx.volumes_dir)?;
        let list = mounts.as_array_mut().expect("mounts");
        // A user mount replaces a default one on the same path (e.g. /dev/shm).
        list.retain(|d| d["destination"] != m["destination"]);
        list.push(m);
    }
    let mut user_json = json!({"uid": user.uid, "gid": user.gid});
    if !user.additional_gids.is_empty() {
        user_json["additionalGids"] = json!(user.additional_gids);
    }
    let spec = json!({
        "ociVersion": SPEC_VERSION,
        "process": {
            "terminal": opts.tty,
            "user": user_json,
            "args": args,
            "env": env,
            "cwd": cwd,
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": opts.no_new_privileges,
            "rlimits": opts.ulimits,
        },
        "root": {"path": rootfs, "readonly": opts.read_only},
        "hostname": hostname,
        "mounts": mounts,
        "linux": {
            "namespaces": namespaces,
            "resources": resources,
            "devices": devices,
            "maskedPaths": if opts.privileged { &[][..] } else { MASKED_PATHS },
            "readonlyPaths": if opts.privileged { &[][..] } else { READONLY_PATHS }
        }
    });
    let mut spec = spec;
    if !device_rules.is_empty() {
        spec["linux"]["resources"]["devices"] = json!(device_rules);
    }
    if let Some(s) = seccomp {
        spec["linux"]["seccomp"] = s;
    }
    if let Some(p) = &ctx.cgroups_path {
        spec["linux"]["cgroupsPath"] = json!(p);
    }
    serde_json::from_value(spec).map_err(Error::Spec)
}

/// Checks `opts` the way [`generate`] would, before anything is created.
pub fn check(opts: &Options) -> Result<(), Error> {
    resources(opts)?;
    let caps = security::capabilities(opts)?;
    security::seccomp(opts, &caps)?;
    security::devices(opts)?;
    Ok(())
}

/// `linux.resources` from the memory, pids and CPU flags (checked as at
/// create), for `update`.
pub fn resources_json(opts: &Options) -> Result<Value, Error> {
    resources(opts)
}

/// `linux.resources` from the memory, pids and CPU flags.
fn resources(opts: &Options) -> Result<Value, Error> {
    let mut r = json!({});
    if let Some(m) = opts.memory {
        if m < 6 * 1024 * 1024 {
            return Err(Error::Invalid("minimum memory limit allowed is 6MB".into()));
        }
        r["memory"] = json!({"limit": m});
    }
    if let Some(sw) = opts.memory_swap {
        let Some(m) = opts.memory else {
            return Err(Error::Invalid(
                "you should always set the memory limit when using the memory swap limit".into(),
            ));
        };
        if sw != -1 && sw < m {
            return Err(Error::Invalid(
                "minimum memoryswap limit should be larger than memory limit, see usage".into(),
            ));
        }
        r["memory"]["swap"] = json!(sw);
    }
    if let Some(p) = opts.pids_limit {
        r["pids"] = json!({"limit": if p <= 0 { -1 } else { p }});
    }
    let mut cpu = json!({});
    if let Some(c) = opts.cpus {
        let (quota, period) = mounts::cpus_quota(c)?;
        cpu["quota"] = json!(quota);
        cpu["period"] = json!(period);
    }
    if let Some(s) = opts.cpu_shares {
        cpu["shares"] = json!(s);
    }
    if let Some(set) = &opts.cpuset_cpus {
        mounts::check_cpuset(set)?;
        cpu["cpus"] = json!(set);
    }
    if cpu.as_object().is_some_and(|o| !o.is_empty()) {
        r["cpu"] = cpu;
    }
    Ok(r)
}

/// `-m` sizes: bytes, or a number with b/k/m/g (case-insensitive, Docker's
/// binary units).
pub fn parse_size(s: &str) -> Option<i64> {
    let s = s.trim().to_ascii_lowercase();
    let s = s.strip_suffix('b').filter(|r| !r.is_empty()).unwrap_or(&s);
    let (num, mult) = match s.chars().last()? {
        'k' => (&s[..s.len() - 1], 1i64 << 10),
        'm' => (&s[..s.len() - 1], 1 << 20),
        'g' => (&s[..s.len() - 1], 1 << 30),
        't' => (&s[..s.len() - 1], 1 << 40),
        _ => (s, 1),
    };
    let n: f64 = num.parse().ok()?;
    if !n.is_finite() || n < 0.0 {
        return None;
    }
    Some((n * mult as f64) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_overrides() {
        let img = json!({"Entrypoint": ["/e"], "Cmd": ["c"]});
        let o = Options::default();
        assert_eq!(args(&img, &o).unwrap(), ["/e", "c"]);
        let o = Options {
            cmd: vec!["x".into()],
            ..Default::default()
        };
        assert_eq!(args(&img, &o).unwrap(), ["/e", "x"]);
        let o = Options {
            entrypoint: Some("sh".into()),
            ..Default::default()
        };
        assert_eq!(args(&img, &o).unwrap(), ["sh"]);
        let o = Options {
            entrypoint: Some(String::new()),
            ..Default::default()
        };
        assert!(args(&img, &o).is_err());
    }

    #[test]
    fn env_merge() {
        let img = json!({"Env": ["PATH=/x", "A=1"]});
        let o = Options {
            env: vec!["A=2".into(), "B=3".into()],
            ..Default::default()
        };
        let e = env(&img, &o, "h", None);
        assert_eq!(e, ["PATH=/x", "HOSTNAME=h", "A=2", "B=3", "HOME=/root"]);
    }

    #[test]
    fn users() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("etc")).unwrap();
        std::fs::write(
            d.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nbob:x:1000:100:bob:/home/bob:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("etc/group"),
            "root:x:0:\nusers:x:100:\nwheel:x:10:bob\n",
        )
        .unwrap();
        let u = resolve_user(d.path(), Some("bob")).unwrap();
        assert_eq!(
            (u.uid, u.gid, u.additional_gids.clone()),
            (1000, 100, vec![10])
        );
        assert_eq!(u.home.as_deref(), Some("/home/bob"));
        let u = resolve_user(d.path(), Some("65534")).unwrap();
        assert_eq!((u.uid, u.gid), (65534, 0));
        let u = resolve_user(d.path(), Some("bob:wheel")).unwrap();
        assert_eq!(u.gid, 10);
        let u = resolve_user(d.path(), Some("5:6")).unwrap();
        assert_eq!((u.uid, u.gid), (5, 6));
        assert!(resolve_user(d.path(), Some("nobody")).is_err());
        assert!(resolve_user(d.path(), Some("bob:nogroup")).is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64m"), Some(64 << 20));
        assert_eq!(parse_size("64MB"), Some(64 << 20));
        assert_eq!(parse_size("1g"), Some(1 << 30));
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("x"), None);
    }
}
