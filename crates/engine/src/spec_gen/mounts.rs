//! User mounts and resource flags: `-v`, `--mount`, `--tmpfs`, named and
//! anonymous volumes, `--ulimit`, `--cpus`, `--cpu-shares`,
//! `--cpuset-cpus`, `--memory-swap`; and the per-container /etc/hosts,
//! /etc/hostname and /etc/resolv.conf.

use super::Error;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MountKind {
    /// A host path.
    Bind,
    /// A named volume under `<root>/volumes/<name>/_data`.
    Volume,
    Tmpfs,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountSpec {
    pub kind: MountKind,
    /// Host path (bind), volume name (volume), empty (tmpfs).
    pub source: String,
    pub target: String,
    pub readonly: bool,
    /// Extra mount options (tmpfs `size=`, `mode=`, ...).
    pub options: Vec<String>,
    /// An anonymous volume (`-v /data`, an image VOLUME): `rm -v` removes it.
    #[serde(default)]
    pub anonymous: bool,
}

/// Docker's volume names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn valid_volume_name(n: &str) -> bool {
    let mut c = n.chars();
    matches!(c.next(), Some(x) if x.is_ascii_alphanumeric())
        && n.len() > 1
        && c.all(|x| x.is_ascii_alphanumeric() || "_.-".contains(x))
}

fn check_target(t: &str, spec: &str) -> Result<(), Error> {
    if !t.starts_with('/') {
        return Err(Error::Invalid(format!(
            "invalid mount {spec:?}: the container path must be absolute"
        )));
    }
    if t == "/" {
        return Err(Error::Invalid(format!(
            "invalid mount {spec:?}: cannot mount over /"
        )));
    }
    Ok(())
}

/// `-v HOST:CTR[:ro|rw]`, `-v NAME:CTR[:ro]`, `-v CTR` (anonymous).
pub fn parse_volume(s: &str, new_name: &mut dyn FnMut() -> String) -> Result<MountSpec, Error> {
    let parts: Vec<&str> = s.split(':').collect();
    let (src, dst, mode) = match parts.as_slice() {
        [d] => ("", *d, ""),
        [s, d] => (*s, *d, ""),
        [s, d, m] => (*s, *d, *m),
        _ => {
            return Err(Error::Invalid(format!(
                "invalid volume specification: {s:?}"
            )))
        }
    };
    check_target(dst, s)?;
    let mut readonly = false;
    let mut options = Vec::new();
    for m in mode.split(',').filter(|m| !m.is_empty()) {
        match m {
            "ro" => readonly = true,
            "nocopy" => options.push("nocopy".to_string()),
            "rw" | "z" | "Z" | "rprivate" | "private" | "rslave" | "slave" | "rshared"
            | "shared" => {}
            other => {
                return Err(Error::Invalid(format!(
                    "invalid mode {other:?} in volume specification {s:?}"
                )))
            }
        }
    }
    let (kind, source, anonymous) = if src.is_empty() {
        (MountKind::Volume, new_name(), true)
    } else if src.starts_with('/') {
        (MountKind::Bind, src.to_string(), false)
    } else if valid_volume_name(src) {
        (MountKind::Volume, src.to_string(), false)
    } else {
        return Err(Error::Invalid(format!(
            "invalid volume specification {s:?}: {src:?} is neither an absolute path nor a volume name"
        )));
    };
    if kind != MountKind::Volume {
        options.clear();
    }
    Ok(MountSpec {
        kind,
        source,
        target: dst.into(),
        readonly,
        options,
        anonymous,
    })
}

/// `--mount type=bind|volume|tmpfs,source=,target=,readonly,tmpfs-size=,tmpfs-mode=`.
pub fn parse_mount(s: &str, new_name: &mut dyn FnMut() -> String) -> Result<MountSpec, Error> {
    let mut kind = MountKind::Volume;
    let (mut source, mut target) = (String::new(), String::new());
    let mut readonly = false;
    let mut options = Vec::new();
    for field in s.split(',') {
        let (k, v) = field.split_once('=').unwrap_or((field, ""));
        match k {
            "type" => {
                kind = match v {
                    "bind" => MountKind::Bind,
                    "volume" => MountKind::Volume,
                    "tmpfs" => MountKind::Tmpfs,
                    other => {
                        return Err(Error::Invalid(format!("unsupported mount type {other:?}")))
                    }
                }
            }
            "source" | "src" => source = v.into(),
            "target" | "destination" | "dst" => target = v.into(),
            "readonly" | "ro" => readonly = v.is_empty() || v == "true" || v == "1",
            "tmpfs-size" => {
                let n = super::parse_size(v)
                    .ok_or_else(|| Error::Invalid(format!("invalid tmpfs-size {v:?}")))?;
                options.push(format!("size={n}"));
            }
            "tmpfs-mode" => {
                u32::from_str_radix(v, 8)
                    .map_err(|_| Error::Invalid(format!("invalid tmpfs-mode {v:?}")))?;
                options.push(format!("mode={v}"));
            }
            "volume-nocopy" if v.is_empty() || v == "true" || v == "1" => {
                options.push("nocopy".into())
            }
            "bind-propagation" | "volume-nocopy" | "consistency" => {}
            other => return Err(Error::Invalid(format!("unexpected key {other:?} in {s:?}"))),
        }
    }
    check_target(&target, s)?;
    let mut anonymous = false;
    match kind {
        MountKind::Bind if !source.starts_with('/') => {
            return Err(Error::Invalid(format!(
                "invalid mount {s:?}: a bind mount needs an absolute source"
            )))
        }
        MountKind::Volume if source.is_empty() => {
            source = new_name();
            anonymous = true;
        }
        MountKind::Volume if !valid_volume_name(&source) => {
            return Err(Error::Invalid(format!("invalid volume name {source:?}")))
        }
        _ => {}
    }
    if kind != MountKind::Volume {
        options.retain(|o| o != "nocopy");
    }
    Ok(MountSpec {
        kind,
        source,
        target,
        readonly,
        options,
        anonymous,
    })
}

/// `--tmpfs /run[:size=64m,mode=1777]`.
pub fn parse_tmpfs(s: &str) -> Result<MountSpec, Error> {
    let (t, opts) = s.split_once(':').unwrap_or((s, ""));
    check_target(t, s)?;
    Ok(MountSpec {
        kind: MountKind::Tmpfs,
        source: String::new(),
        target: t.into(),
        readonly: false,
        options: opts
            .split(',')
            .filter(|o| !o.is_empty())
            .map(str::to_string)
            .collect(),
        anonymous: false,
    })
}

/// The OCI mount for `m`; volumes live under `volumes_dir` (made here).
pub fn oci_mount(m: &MountSpec, volumes_dir: &Path) -> Result<Value, Error> {
    let ro = if m.readonly { "ro" } else { "rw" };
    Ok(match m.kind {
        MountKind::Tmpfs => {
            let mut o = vec!["nosuid".to_string(), "nodev".into(), "noexec".into()];
            o.extend(m.options.iter().cloned());
            json!({"destination": m.target, "type": "tmpfs", "source": "tmpfs", "options": o})
        }
        MountKind::Bind => {
            let src = Path::new(&m.source);
            if !src.exists() {
                // Docker makes a missing host path as a directory.
                std::fs::create_dir_all(src).map_err(|e| {
                    Error::Invalid(format!("create bind source {}: {e}", src.display()))
                })?;
            }
            json!({"destination": m.target, "type": "bind", "source": m.source,
                   "options": ["rbind", ro, "rprivate"]})
        }
        MountKind::Volume => {
            {
                use std::os::unix::fs::DirBuilderExt;
                let _ = std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(volumes_dir);
            }
            let data = volume_data(volumes_dir, &m.source);
            std::fs::create_dir_all(&data)
                .map_err(|e| Error::Invalid(format!("create volume {}: {e}", data.display())))?;
            json!({"destination": m.target, "type": "bind", "source": data,
                   "options": ["rbind", ro, "rprivate"]})
        }
    })
}

/// Where a volume's files are.
pub fn volume_data(volumes_dir: &Path, name: &str) -> PathBuf {
    volumes_dir.join(name).join("_data")
}

/// `--ulimit nofile=1024[:2048]` as an OCI rlimit.
pub fn parse_ulimit(s: &str) -> Result<Value, Error> {
    let bad = || Error::Invalid(format!("invalid ulimit {s:?}, e.g. nofile=1024:2048"));
    let (name, vals) = s.split_once('=').ok_or_else(bad)?;
    let known = [
        "as",
        "core",
        "cpu",
        "data",
        "fsize",
        "locks",
        "memlock",
        "msgqueue",
        "nice",
        "nofile",
        "nproc",
        "rss",
        "rtprio",
        "rttime",
        "sigpending",
        "stack",
    ];
    if !known.contains(&name) {
        return Err(Error::Invalid(format!("invalid ulimit type: {name}")));
    }
    let num = |v: &str| -> Result<u64, Error> {
        if v == "-1" || v == "unlimited" {
            Ok(u64::MAX)
        } else {
            v.parse().map_err(|_| bad())
        }
    };
    let (soft, hard) = match vals.split_once(':') {
        Some((a, b)) => (num(a)?, num(b)?),
        None => (num(vals)?, num(vals)?),
    };
    if soft > hard {
        return Err(Error::Invalid(format!(
            "ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
        )));
    }
    Ok(json!({"type": format!("RLIMIT_{}", name.to_ascii_uppercase()), "soft": soft, "hard": hard}))
}

/// `--cpus 1.5` -> (quota, period) in microseconds.
pub fn cpus_quota(cpus: f64) -> Result<(i64, u64), Error> {
    let max = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1) as f64;
    if !cpus.is_finite() || cpus < 0.01 || cpus > max {
        return Err(Error::Invalid(format!(
            "range of CPUs is from 0.01 to {max:.2}, as there are only {max} CPUs available"
        )));
    }
    let period = 100_000u64;
    Ok(((cpus * period as f64).round() as i64, period))
}

/// `--cpuset-cpus 0-2,4`: checked against the host's CPU count.
pub fn check_cpuset(s: &str) -> Result<(), Error> {
    let n = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1) as u32;
    let bad = || Error::Invalid(format!("invalid value {s:?} for cpuset cpus"));
    for part in s.split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b): (u32, u32) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
        if a > b {
            return Err(bad());
        }
        if b >= n {
            return Err(Error::Invalid(format!(
                "requested CPUs are not available - requested {s}, available: 0-{}",
                n - 1
            )));
        }
    }
    Ok(())
}

/// What a container's /etc/hosts and /etc/resolv.conf say besides the
/// defaults.
#[derive(Debug, Default)]
pub struct EtcNet<'a> {
    pub host_network: bool,
    /// The container's own address on its network.
    pub ip: Option<std::net::IpAddr>,
    /// Its network's DNS server: the only nameserver (search and options
    /// stay the host's).
    pub nameserver: Option<std::net::IpAddr>,
    /// `--add-host NAME:IP`.
    pub add_host: &'a [(String, String)],
    /// `--dns`, `--dns-search`, `--dns-option`: each replaces the host's.
    pub dns: &'a [String],
    pub dns_search: &'a [String],
    pub dns_option: &'a [String],
}

/// Writes `hosts`, `hostname` and `resolv.conf` for a container into `dir`.
pub fn write_etc(dir: &Path, hostname: &str, net: &EtcNet) -> Result<(), Error> {
    let write = |name: &str, text: String| {
        let p = dir.join(name);
        std::fs::write(&p, text).map_err(|e| Error::Invalid(format!("write {}: {e}", p.display())))
    };
    write("hostname", format!("{hostname}\n"))?;
    let mut hosts = if net.host_network {
        std::fs::read_to_string("/etc/hosts").unwrap_or_default()
    } else {
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n\
         ff02::2\tip6-allrouters\n"
            .to_string()
    };
    for (name, ip) in net.add_host {
        hosts.push_str(&format!("{ip}\t{name}\n"));
    }
    if let Some(ip) = net.ip {
        hosts.push_str(&format!("{ip}\t{hostname}\n"));
    }
    write("hosts", hosts)?;
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let mut resolv = resolv_conf(&host, net.host_network);
    let ours: Vec<String> = net.nameserver.iter().map(|i| i.to_string()).collect();
    let dns = if net.dns.is_empty() {
        &ours[..]
    } else {
        net.dns
    };
    for (key, values) in [
        ("nameserver", dns),
        ("search", net.dns_search),
        ("options", net.dns_option),
    ] {
        if values.is_empty() {
            continue;
        }
        let mut kept: String = resolv
            .lines()
            .filter(|l| l.split_whitespace().next() != Some(key))
            .map(|l| format!("{l}\n"))
            .collect();
        if key == "nameserver" {
            for v in values {
                kept.push_str(&format!("nameserver {v}\n"));
            }
        } else {
            kept.push_str(&format!("{key} {}\n", values.join(" ")));
        }
        resolv = kept;
    }
    write("resolv.conf", resolv)
}

/// The host's resolv.conf for a container: loopback nameservers do not
/// work from another network namespace, so they are dropped there (and
/// Google's public servers used when none is left, as Docker does).
pub fn resolv_conf(host: &str, host_network: bool) -> String {
    if host_network {
        return host.to_string();
    }
    let mut out = String::new();
    let mut servers = 0;
    for l in host.lines() {
        let mut w = l.split_whitespace();
        if w.next() == Some("nameserver") {
            let ip = w.next().unwrap_or("");
            if ip.starts_with("127.") || ip == "::1" {
                continue;
            }
            servers += 1;
        }
        out.push_str(l);
        out.push('\n');
    }
    if servers == 0 {
        out.push_str("nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn anon() -> String {
        "anon1".into()
    }

    #[test]
    fn volumes_and_mounts() {
        let v = parse_volume("/srv:/data:ro", &mut anon).unwrap();
        assert_eq!((v.kind, v.readonly), (MountKind::Bind, true));
        let v = parse_volume("cache:/c", &mut anon).unwrap();
        assert_eq!((v.kind, v.source.as_str()), (MountKind::Volume, "cache"));
        let v = parse_volume("/data", &mut anon).unwrap();
        assert!(v.anonymous && v.source == "anon1");
        for bad in ["./rel:/x", "/a:b", "/a:/b:xx", "/:/", "a:b:c:d"] {
            assert!(parse_volume(bad, &mut anon).is_err(), "{bad}");
        }
        let m = parse_mount("type=tmpfs,target=/t,tmpfs-size=1m", &mut anon).unwrap();
        assert_eq!(m.options, ["size=1048576"]);
        let m = parse_mount("type=bind,src=/s,dst=/d,readonly", &mut anon).unwrap();
        assert!(m.readonly);
        // nocopy: kept for volumes only (a tmpfs must not get it as an option).
        assert_eq!(
            parse_volume("vol:/d:nocopy", &mut anon).unwrap().options,
            ["nocopy"]
        );
        assert_eq!(
            parse_volume("vol:/d:ro,nocopy", &mut anon).unwrap().options,
            ["nocopy"]
        );
        assert!(parse_volume("/h:/d:nocopy", &mut anon)
            .unwrap()
            .options
            .is_empty());
        let m = parse_mount("type=volume,src=vol,dst=/d,volume-nocopy", &mut anon).unwrap();
        assert_eq!(m.options, ["nocopy"]);
        let m = parse_mount("type=volume,src=vol,dst=/d,volume-nocopy=false", &mut anon).unwrap();
        assert!(m.options.is_empty());
        let m = parse_mount("volume-nocopy,type=tmpfs,dst=/t", &mut anon).unwrap();
        assert!(m.options.is_empty());
        assert!(parse_mount("type=bind,src=s,dst=/d", &mut anon).is_err());
        assert!(parse_mount("type=nfs,dst=/d", &mut anon).is_err());
        assert_eq!(parse_tmpfs("/run:size=1m").unwrap().options, ["size=1m"]);
    }

    #[test]
    fn limits() {
        assert_eq!(
            parse_ulimit("nofile=10:20").unwrap(),
            json!({"type": "RLIMIT_NOFILE", "soft": 10, "hard": 20})
        );
        assert!(parse_ulimit("nofile=20:10").is_err());
        assert!(parse_ulimit("bogus=1").is_err());
        assert_eq!(cpus_quota(0.5).unwrap(), (50_000, 100_000));
        assert!(cpus_quota(-1.0).is_err());
        assert!(cpus_quota(10_000.0).is_err());
        assert!(check_cpuset("0").is_ok());
        assert!(check_cpuset("1-0").is_err());
        assert!(check_cpuset("x").is_err());
        assert!(check_cpuset("0-4096").is_err());
    }

    #[test]
    fn resolv() {
        let host = "search lan\nnameserver 127.0.0.53\noptions edns0\n";
        let r = resolv_conf(host, false);
        assert!(!r.contains("127.0.0.53") && r.contains("8.8.8.8") && r.contains("search lan"));
        assert_eq!(resolv_conf(host, true), host);
        let r = resolv_conf("nameserver 192.0.2.1\n", false);
        assert_eq!(r, "nameserver 192.0.2.1\n");
    }
}
