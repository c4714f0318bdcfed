//! Loading and validating a bundle's `config.json`.

use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::path::{Path, PathBuf};

/// Largest config.json we read: real ones are a few KiB to ~100 KiB.
const MAX_CONFIG: u64 = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: config is larger than {MAX_CONFIG} bytes")]
    TooLarge { path: PathBuf },
    #[error("parse {path}: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("unsupported ociVersion {0:?}: berth-runtime supports 1.0.x to 1.2.x")]
    Version(String),
    #[error("invalid config: {0}")]
    Invalid(String),
    #[error("rootfs {path}: {source}")]
    Rootfs {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

/// A validated spec plus the resolved, absolute bundle and rootfs paths.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub dir: PathBuf,
    pub rootfs: PathBuf,
    pub spec: Spec,
}

pub fn load(bundle_dir: &Path) -> Result<Bundle> {
    let dir = std::fs::canonicalize(bundle_dir).map_err(|source| Error::Read {
        path: bundle_dir.to_path_buf(),
        source,
    })?;
    let path = dir.join("config.json");
    let spec = parse_file(&path)?;
    validate(&spec)?;
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| Error::Invalid("root is required".into()))?;
    let rootfs = if root.path().is_absolute() {
        root.path().clone()
    } else {
        dir.join(root.path())
    };
    let rootfs = std::fs::canonicalize(&rootfs).map_err(|source| Error::Rootfs {
        path: rootfs.clone(),
        source,
    })?;
    if !rootfs.is_dir() {
        return Err(Error::Rootfs {
            path: rootfs,
            source: std::io::Error::from_raw_os_error(libc::ENOTDIR),
        });
    }
    Ok(Bundle { dir, rootfs, spec })
}

pub fn parse_file(path: &Path) -> Result<Spec> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut buf = Vec::new();
    f.take(MAX_CONFIG + 1)
        .read_to_end(&mut buf)
        .map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
    if buf.len() as u64 > MAX_CONFIG {
        return Err(Error::TooLarge {
            path: path.to_path_buf(),
        });
    }
    serde_json::from_slice(&buf).map_err(|source| Error::Parse {
        path: path.to_path_buf(),
        source,
    })
}

/// Checks the spec's rules that serde cannot: version, namespaces, mounts,
/// id mappings.
pub fn validate(spec: &Spec) -> Result<()> {
    check_version(spec.version())?;
    if spec.root().is_none() {
        return Err(Error::Invalid("root is required".into()));
    }
    if let Some(p) = spec.process() {
        if !p.cwd().is_absolute() {
            return Err(Error::Invalid(format!(
                "process.cwd {:?} must be an absolute path",
                p.cwd()
            )));
        }
        if p.args().as_ref().is_none_or(|a| a.is_empty()) {
            return Err(Error::Invalid("process.args must not be empty".into()));
        }
    }
    for m in spec.mounts().iter().flatten() {
        if !m.destination().is_absolute() {
            return Err(Error::Invalid(format!(
                "mount destination {:?} must be absolute",
                m.destination()
            )));
        }
    }
    let Some(linux) = spec.linux() else {
        return Ok(());
    };
    let mut seen = Vec::new();
    for ns in linux.namespaces().iter().flatten() {
        if seen.contains(&ns.typ()) {
            return Err(Error::Invalid(format!(
                "namespace {} is listed twice",
                ns.typ()
            )));
        }
        seen.push(ns.typ());
    }
    let new_userns = linux
        .namespaces()
        .iter()
        .flatten()
        .any(|n| n.typ() == LinuxNamespaceType::User && n.path().is_none());
    let has_maps = linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
        || linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty());
    if new_userns && !has_maps {
        return Err(Error::Invalid(
            "a new user namespace needs linux.uidMappings and linux.gidMappings".into(),
        ));
    }
    if !seen.contains(&LinuxNamespaceType::User) && has_maps {
        return Err(Error::Invalid(
            "uidMappings/gidMappings are set but there is no user namespace".into(),
        ));
    }
    if let Some(sysctl) = linux.sysctl() {
        for k in sysctl.keys() {
            if k.is_empty() || k.contains("..") || k.contains('/') && k.starts_with('/') {
                return Err(Error::Invalid(format!("invalid sysctl name {k:?}")));
            }
            // Only namespaced sysctls, and only with their namespace (runc's
            // rule): anything else would change the host's value.
            let name = k.replace('/', ".");
            let ipc = [
                "kernel.msgmax",
                "kernel.msgmnb",
                "kernel.msgmni",
                "kernel.sem",
                "kernel.shmall",
                "kernel.shmmax",
                "kernel.shmmni",
                "kernel.shm_rmid_forced",
            ];
            let needs = if ipc.contains(&name.as_str()) || name.starts_with("fs.mqueue.") {
                LinuxNamespaceType::Ipc
            } else if name.starts_with("net.") {
                LinuxNamespaceType::Network
            } else if name == "kernel.hostname" || name == "kernel.domainname" {
                LinuxNamespaceType::Uts
            } else {
                return Err(Error::Invalid(format!(
                    "sysctl {k:?} is not in a separate kernel namespace"
                )));
            };
            if !seen.contains(&needs) {
                return Err(Error::Invalid(format!(
                    "sysctl {k:?} is not allowed without a {needs} namespace of the container's own"
                )));
            }
        }
    }
    Ok(())
}

fn check_version(v: &str) -> Result<()> {
    let mut parts = v.split(['.', '-', '+']);
    let major = parts.next().and_then(|s| s.parse::<u32>().ok());
    let minor = parts.next().and_then(|s| s.parse::<u32>().ok());
    match (major, minor) {
        (Some(1), Some(0..=2)) => Ok(()),
        _ => Err(Error::Version(v.to_string())),
    }
}

/// The config `berth-runtime spec` writes: runc's default (busybox `sh` on a
/// terminal, the usual mounts, masked paths and namespaces).
pub fn default_spec(rootless: bool) -> serde_json::Value {
    let mut v = serde_json::json!({
        "ociVersion": crate::OCI_VERSION,
        "process": {
            "terminal": true,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "berth",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}],
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    });
    if rootless {
        let uid = nix::unistd::getuid().as_raw();
        let gid = nix::unistd::getgid().as_raw();
        let linux = &mut v["linux"];
        linux["uidMappings"] = serde_json::json!([{"containerID": 0, "hostID": uid, "size": 1}]);
        linux["gidMappings"] = serde_json::json!([{"containerID": 0, "hostID": gid, "size": 1}]);
        linux["namespaces"]
            .as_array_mut()
            .expect("array")
            .push(serde_json::json!({"type": "user"}));
        linux.as_object_mut().expect("object").remove("resources");
    }
    v
}

/// `berth-runtime features` (runtime-spec features.md).
pub fn features() -> serde_json::Value {
    let caps: Vec<String> = caps::all().iter().map(|c| c.to_string()).collect();
    serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": crate::OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": ["async", "atime", "bind", "defaults", "dev", "diratime", "dirsync", "exec",
            "lazytime", "loud", "mand", "noatime", "nodev", "nodiratime", "noexec", "nolazytime",
            "nomand", "norelatime", "nostrictatime", "nosuid", "private", "rbind", "relatime",
            "remount", "ro", "rprivate", "rshared", "rslave", "runbindable", "rw", "shared",
            "silent", "slave", "strictatime", "suid", "sync", "tmpcopyup", "unbindable"],
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "user", "uts", "time"],
            "capabilities": caps,
            "cgroup": {"v1": true, "v2": true, "systemd": false, "systemdUser": false, "rdma": false},
            "seccomp": {
                "enabled": true,
                "actions": crate::seccomp::supported_actions(),
                "operators": crate::seccomp::supported_operators(),
                "archs": crate::seccomp::supported_archs(),
                "knownFlags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
                "supportedFlags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]
            },
            "apparmor": {"enabled": false},
            "selinux": {"enabled": false},
            "intelRdt": {"enabled": false},
            "mountExtensions": {"idmap": {"enabled": false}}
        },
        "annotations": {
            "org.opencontainers.runc.checkpoint.enabled": "false",
            "io.github.berth.runtime.version": crate::VERSION
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> Spec {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn versions() {
        for ok in ["1.0.0", "1.0.2-dev", "1.1.0", "1.2.0", "1.2.1+dev"] {
            check_version(ok).unwrap();
        }
        for bad in ["", "0.9.0", "2.0.0", "1.3.0", "x"] {
            assert!(check_version(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unknown_namespace_is_a_parse_error() {
        let r: std::result::Result<Spec, _> = serde_json::from_str(
            r#"{"ociVersion":"1.0.0","root":{"path":"r"},"linux":{"namespaces":[{"type":"bogus"}]}}"#,
        );
        assert!(r.is_err());
    }

    #[test]
    fn unknown_capability_is_a_parse_error() {
        let r: std::result::Result<Spec, _> = serde_json::from_str(
            r#"{"ociVersion":"1.0.0","root":{"path":"r"},"process":{"cwd":"/","args":["x"],"user":{"uid":0,"gid":0},"capabilities":{"bounding":["CAP_FLY"]}}}"#,
        );
        assert!(r.is_err());
    }

    #[test]
    fn userns_without_maps_is_invalid() {
        let s = spec(
            r#"{"ociVersion":"1.0.0","root":{"path":"r"},"linux":{"namespaces":[{"type":"user"}]}}"#,
        );
        assert!(validate(&s).is_err());
    }

    #[test]
    fn duplicate_namespace_is_invalid() {
        let s = spec(
            r#"{"ociVersion":"1.0.0","root":{"path":"r"},"linux":{"namespaces":[{"type":"pid"},{"type":"pid"}]}}"#,
        );
        assert!(validate(&s).is_err());
    }

    #[test]
    fn default_spec_is_valid() {
        for rootless in [false, true] {
            let s: Spec = serde_json::from_value(default_spec(rootless)).unwrap();
            validate(&s).unwrap();
        }
    }

    #[test]
    fn relative_cwd_is_invalid() {
        let s = spec(
            r#"{"ociVersion":"1.0.0","root":{"path":"r"},"process":{"cwd":"tmp","args":["x"],"user":{"uid":0,"gid":0}}}"#,
        );
        assert!(validate(&s).is_err());
    }
}
