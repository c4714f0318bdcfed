//! Capabilities, seccomp and devices: Docker's defaults and `--cap-add`,
//! `--cap-drop`, `--privileged`, `--security-opt`, `--device`.

use super::{Error, Options, DEFAULT_CAPS};
use serde_json::{json, Value};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// Every capability of Linux 5.9+ (CAP_CHOWN = 0 ... CAP_CHECKPOINT_RESTORE = 40).
pub const ALL_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// `sys_admin`, `CAP_SYS_ADMIN`, `Sys_Admin` -> `CAP_SYS_ADMIN`; `ALL` stays.
pub fn normalize_cap(s: &str) -> Result<String, Error> {
    let up = s.trim().to_ascii_uppercase();
    if up == "ALL" {
        return Ok(up);
    }
    let name = if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    };
    if ALL_CAPS.contains(&name.as_str()) {
        Ok(name)
    } else {
        Err(Error::Invalid(format!("unknown capability: {s:?}")))
    }
}

/// The container's capability set: Docker's default (or all with
/// `--privileged`), plus `--cap-add`, minus `--cap-drop` (`ALL` works in both).
pub fn capabilities(opts: &Options) -> Result<Vec<String>, Error> {
    let add: Vec<String> = opts
        .cap_add
        .iter()
        .map(|c| normalize_cap(c))
        .collect::<Result<_, _>>()?;
    let drop: Vec<String> = opts
        .cap_drop
        .iter()
        .map(|c| normalize_cap(c))
        .collect::<Result<_, _>>()?;
    let mut caps: Vec<String> = if opts.privileged || add.iter().any(|c| c == "ALL") {
        // All that we have: root here may lack some (e.g. CAP_SYS_RESOURCE).
        let bounding = own_bounding_set();
        ALL_CAPS
            .iter()
            .enumerate()
            .filter(|(i, _)| bounding & (1u64 << i) != 0)
            .map(|(_, c)| c.to_string())
            .collect()
    } else {
        DEFAULT_CAPS.iter().map(|c| c.to_string()).collect()
    };
    if !opts.privileged {
        for c in &add {
            if c != "ALL" && !caps.contains(c) {
                caps.push(c.clone());
            }
        }
        if drop.iter().any(|c| c == "ALL") {
            caps.retain(|c| add.contains(c));
        } else {
            caps.retain(|c| !drop.contains(c));
        }
    }
    Ok(caps)
}

/// Our capability bounding set (`CapBnd` of /proc/self/status).
fn own_bounding_set() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(u64::MAX)
}

/// Docker's default profile for x86_64 with its default capabilities.
const DOCKER_DEFAULT: &str = include_str!("docker-default-seccomp.json");

/// Syscalls Docker's profile allows only with a capability.
const CAP_SYSCALLS: &[(&str, &[&str])] = &[
    (
        "CAP_SYS_ADMIN",
        &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "mount",
            "mount_setattr",
            "move_mount",
            "name_to_handle_at",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
    ),
    ("CAP_SYS_BOOT", &["reboot"]),
    (
        "CAP_SYS_MODULE",
        &["delete_module", "init_module", "finit_module"],
    ),
    ("CAP_SYS_PACCT", &["acct"]),
    (
        "CAP_SYS_PTRACE",
        &[
            "kcmp",
            "pidfd_getfd",
            "process_madvise",
            "process_vm_readv",
            "process_vm_writev",
            "ptrace",
        ],
    ),
    ("CAP_SYS_RAWIO", &["iopl", "ioperm"]),
    (
        "CAP_SYS_TIME",
        &["settimeofday", "stime", "clock_settime", "clock_settime64"],
    ),
    ("CAP_SYS_TTY_CONFIG", &["vhangup"]),
    (
        "CAP_SYS_NICE",
        &[
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ],
    ),
    ("CAP_SYSLOG", &["syslog"]),
    ("CAP_BPF", &["bpf"]),
    ("CAP_PERFMON", &["perf_event_open"]),
];

/// The OCI `linux.seccomp` object, or None for unconfined.
pub fn seccomp(opts: &Options, caps: &[String]) -> Result<Option<Value>, Error> {
    if opts.privileged {
        return Ok(None);
    }
    match opts.seccomp.as_deref() {
        Some("unconfined") => Ok(None),
        Some(profile) => {
            let v: Value = serde_json::from_str(profile)
                .map_err(|e| Error::Invalid(format!("seccomp profile is not valid JSON: {e}")))?;
            Ok(Some(from_docker_profile(v, caps)))
        }
        None => {
            let mut v: Value = serde_json::from_str(DOCKER_DEFAULT).expect("built-in profile");
            let extra: Vec<&str> = CAP_SYSCALLS
                .iter()
                .filter(|(c, _)| caps.iter().any(|x| x == c))
                .flat_map(|(_, s)| s.iter().copied())
                .collect();
            if !extra.is_empty() {
                let rules = v["syscalls"].as_array_mut().expect("syscalls");
                // Unconditional rules replace the default's filtered ones.
                for r in rules.iter_mut() {
                    if r.get("args").is_none_or(|a| a.is_null()) {
                        continue;
                    }
                    if let Some(names) = r["names"].as_array_mut() {
                        names.retain(|n| !extra.contains(&n.as_str().unwrap_or("")));
                    }
                }
                rules.retain(|r| r["names"].as_array().is_some_and(|n| !n.is_empty()));
                rules.push(json!({"names": extra, "action": "SCMP_ACT_ALLOW"}));
            }
            Ok(Some(v))
        }
    }
}

/// A Docker-format profile (`archMap`, `includes`/`excludes` by caps and
/// arches) rendered for this host and `caps` as an OCI seccomp object.
fn from_docker_profile(mut v: Value, caps: &[String]) -> Value {
    let arch = std::env::consts::ARCH;
    let host_arch = match arch {
        "x86_64" => "SCMP_ARCH_X86_64",
        "aarch64" => "SCMP_ARCH_AARCH64",
        other => other,
    };
    if let Some(map) = v.get("archMap").and_then(Value::as_array).cloned() {
        let arches: Vec<Value> = map
            .iter()
            .filter(|m| m["architecture"] == host_arch)
            .flat_map(|m| {
                let mut a = vec![m["architecture"].clone()];
                a.extend(
                    m["subArchitectures"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default(),
                );
                a
            })
            .collect();
        v["architectures"] = json!(arches);
        v.as_object_mut().map(|o| o.remove("archMap"));
    }
    let has = |list: &Value| -> bool {
        list.as_array().is_none_or(|l| {
            l.iter()
                .all(|c| caps.iter().any(|x| Some(x.as_str()) == c.as_str()))
        })
    };
    let arch_ok = |list: &Value, want: bool| -> bool {
        match list.as_array() {
            None => true,
            Some(l) => l.iter().any(|a| a.as_str() == Some(arch)) == want,
        }
    };
    if let Some(rules) = v.get_mut("syscalls").and_then(Value::as_array_mut) {
        rules.retain(|r| {
            let inc = &r["includes"];
            let exc = &r["excludes"];
            has(&inc["caps"])
                && arch_ok(&inc["arches"], true)
                && exc["caps"].as_array().is_none_or(|l| {
                    !l.iter()
                        .any(|c| caps.iter().any(|x| Some(x.as_str()) == c.as_str()))
                })
                && (exc["arches"].is_null() || arch_ok(&exc["arches"], false))
        });
        for r in rules.iter_mut() {
            if let Some(o) = r.as_object_mut() {
                o.remove("includes");
                o.remove("excludes");
                o.remove("comment");
                if let Some(n) = o.remove("name") {
                    o.insert("names".into(), json!([n]));
                }
            }
        }
    }
    v
}

/// `--device HOST[:CONTAINER[:PERMS]]`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Device {
    pub host: String,
    pub container: String,
    pub perms: String,
}

pub fn parse_device(s: &str) -> Result<Device, Error> {
    let parts: Vec<&str> = s.split(':').collect();
    let is_perms = |p: &str| !p.is_empty() && p.chars().all(|c| "rwm".contains(c));
    let (host, container, perms) = match parts.as_slice() {
        [h] => (*h, *h, "rwm"),
        [h, p] if is_perms(p) => (*h, *h, *p),
        [h, c] => (*h, *c, "rwm"),
        [h, c, p] if is_perms(p) => (*h, *c, *p),
        _ => {
            return Err(Error::Invalid(format!(
                "invalid device specification: {s:?}"
            )))
        }
    };
    if !host.starts_with('/') || !container.starts_with('/') {
        return Err(Error::Invalid(format!(
            "invalid device specification {s:?}: paths must be absolute"
        )));
    }
    Ok(Device {
        host: host.into(),
        container: container.into(),
        perms: perms.into(),
    })
}

/// OCI `linux.devices` and cgroup rules for `--device` and, with
/// `--privileged`, every device node directly under the host's /dev.
pub fn devices(opts: &Options) -> Result<(Vec<Value>, Vec<Value>), Error> {
    let mut nodes = Vec::new();
    let mut rules = Vec::new();
    let mut add = |host: &Path, container: &str, perms: &str, strict: bool| -> Result<(), Error> {
        let m = match std::fs::metadata(host) {
            Ok(m) => m,
            Err(e) if strict => {
                return Err(Error::Invalid(format!(
                    "error gathering device information while adding device {:?}: {e}",
                    host.display()
                )))
            }
            Err(_) => return Ok(()),
        };
        let ft = m.file_type();
        let kind = if ft.is_char_device() {
            "c"
        } else if ft.is_block_device() {
            "b"
        } else if strict {
            return Err(Error::Invalid(format!(
                "{} is not a device node",
                host.display()
            )));
        } else {
            return Ok(());
        };
        let rdev = m.rdev();
        let (major, minor) = (libc::major(rdev), libc::minor(rdev));
        nodes.push(json!({
            "path": container, "type": kind, "major": major, "minor": minor,
            "fileMode": m.mode() & 0o7777, "uid": m.uid(), "gid": m.gid(),
        }));
        rules.push(
            json!({"allow": true, "type": kind, "major": major, "minor": minor, "access": perms}),
        );
        Ok(())
    };
    if opts.privileged {
        if let Ok(rd) = std::fs::read_dir("/dev") {
            let mut paths: Vec<_> = rd.flatten().map(|e| e.path()).collect();
            paths.sort();
            for p in paths {
                let name = p.display().to_string();
                // The container has its own pty, console and shm.
                if ["/dev/console", "/dev/ptmx", "/dev/tty"].contains(&name.as_str()) {
                    continue;
                }
                add(&p, &name, "rwm", false)?;
            }
        }
    }
    for d in &opts.devices {
        add(Path::new(&d.host), &d.container, &d.perms, true)?;
    }
    if opts.privileged {
        rules = vec![json!({"allow": true, "access": "rwm"})];
    }
    Ok((nodes, rules))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_add_drop_all() {
        let o = Options {
            cap_add: vec!["sys_admin".into()],
            cap_drop: vec!["CAP_CHOWN".into(), "net_raw".into()],
            ..Options::default()
        };
        let c = capabilities(&o).unwrap();
        assert!(c.contains(&"CAP_SYS_ADMIN".to_string()));
        assert!(!c.contains(&"CAP_CHOWN".to_string()));
        assert!(!c.contains(&"CAP_NET_RAW".to_string()));
        let o = Options {
            cap_drop: vec!["all".into()],
            cap_add: vec!["kill".into()],
            ..Options::default()
        };
        assert_eq!(capabilities(&o).unwrap(), ["CAP_KILL"]);
        let o = Options {
            privileged: true,
            ..Options::default()
        };
        let all = capabilities(&o).unwrap();
        assert_eq!(all.len() as u32, own_bounding_set().count_ones().min(41));
        assert!(normalize_cap("flying").is_err());
    }

    #[test]
    fn seccomp_default_and_sys_admin() {
        let o = Options::default();
        let caps = capabilities(&o).unwrap();
        let s = seccomp(&o, &caps).unwrap().unwrap();
        let allowed = |s: &Value, name: &str| {
            s["syscalls"].as_array().unwrap().iter().any(|r| {
                r["action"] == "SCMP_ACT_ALLOW"
                    && r.get("args").is_none_or(|a| a.is_null())
                    && r["names"].as_array().unwrap().iter().any(|n| n == name)
            })
        };
        assert!(!allowed(&s, "mount"));
        assert!(allowed(&s, "read"));
        let o = Options {
            cap_add: vec!["SYS_ADMIN".into()],
            ..Options::default()
        };
        let s = seccomp(&o, &capabilities(&o).unwrap()).unwrap().unwrap();
        assert!(allowed(&s, "mount"));
        assert!(allowed(&s, "clone"));
        let o = Options {
            seccomp: Some("unconfined".into()),
            ..Options::default()
        };
        assert!(seccomp(&o, &caps).unwrap().is_none());
    }

    #[test]
    fn docker_format_profiles() {
        let p = json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]}],
            "syscalls": [
                {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
                {"names": ["getpid"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_KILL"]}},
            ]
        });
        let v = from_docker_profile(p, &["CAP_KILL".to_string()]);
        let names: Vec<&str> = v["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["names"][0].as_str().unwrap())
            .collect();
        assert_eq!(names, ["read"]);
        assert!(v.get("archMap").is_none());
    }

    #[test]
    fn device_specs() {
        assert_eq!(
            parse_device("/dev/null:/dev/n:r").unwrap(),
            Device {
                host: "/dev/null".into(),
                container: "/dev/n".into(),
                perms: "r".into()
            }
        );
        assert_eq!(parse_device("/dev/null:rw").unwrap().container, "/dev/null");
        assert!(parse_device("null").is_err());
        let o = Options {
            devices: vec![parse_device("/dev/null:/dev/mynull").unwrap()],
            ..Options::default()
        };
        let (nodes, rules) = devices(&o).unwrap();
        assert_eq!(nodes[0]["major"], 1);
        assert_eq!(nodes[0]["minor"], 3);
        assert_eq!(rules[0]["access"], "rwm");
        let o = Options {
            devices: vec![parse_device("/etc/passwd").unwrap()],
            ..Options::default()
        };
        assert!(devices(&o).is_err());
    }
}
