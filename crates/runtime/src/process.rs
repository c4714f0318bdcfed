//! Turning the config's `process` into the container process: rlimits, user
//! and groups, capabilities, no_new_privs, the executable's path.

use caps::{CapSet, Capability as Cap, CapsHashSet};
use oci_spec::runtime::{Capabilities, LinuxCapabilities, PosixRlimit, Process};
use std::ffi::CString;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{op}: {source}")]
    Sys { op: String, source: nix::Error },
    #[error("capability {0}: {1}")]
    Caps(String, String),
    #[error("unknown rlimit {0}")]
    Rlimit(String),
    #[error("exec: {0:?}: executable file not found in $PATH")]
    NotFound(String),
    #[error("exec: {0:?}: permission denied")]
    NotExecutable(String),
    #[error("exec: {0:?}: is a directory")]
    IsDir(String),
    #[error("invalid argument {0:?}: contains a NUL byte")]
    Nul(String),
}

pub type Result<T> = std::result::Result<T, Error>;

fn sys(op: impl Into<String>) -> impl FnOnce(nix::Error) -> Error {
    let op = op.into();
    move |source| Error::Sys { op, source }
}

pub fn rlimit_resource(name: &str) -> Option<libc::__rlimit_resource_t> {
    Some(match name {
        "RLIMIT_CPU" => libc::RLIMIT_CPU,
        "RLIMIT_FSIZE" => libc::RLIMIT_FSIZE,
        "RLIMIT_DATA" => libc::RLIMIT_DATA,
        "RLIMIT_STACK" => libc::RLIMIT_STACK,
        "RLIMIT_CORE" => libc::RLIMIT_CORE,
        "RLIMIT_RSS" => libc::RLIMIT_RSS,
        "RLIMIT_NPROC" => libc::RLIMIT_NPROC,
        "RLIMIT_NOFILE" => libc::RLIMIT_NOFILE,
        "RLIMIT_MEMLOCK" => libc::RLIMIT_MEMLOCK,
        "RLIMIT_AS" => libc::RLIMIT_AS,
        "RLIMIT_LOCKS" => libc::RLIMIT_LOCKS,
        "RLIMIT_SIGPENDING" => libc::RLIMIT_SIGPENDING,
        "RLIMIT_MSGQUEUE" => libc::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => libc::RLIMIT_NICE,
        "RLIMIT_RTPRIO" => libc::RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => libc::RLIMIT_RTTIME,
        _ => return None,
    })
}

fn rlimit_name(r: &PosixRlimit) -> String {
    serde_json::to_value(r.typ())
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

pub fn set_rlimits(rlimits: &[PosixRlimit]) -> Result<()> {
    for r in rlimits {
        let name = rlimit_name(r);
        let res = rlimit_resource(&name).ok_or_else(|| Error::Rlimit(name.clone()))?;
        let lim = libc::rlimit {
            rlim_cur: r.soft(),
            rlim_max: r.hard(),
        };
        // SAFETY: setrlimit reads a valid rlimit struct we own.
        let rc = unsafe { libc::setrlimit(res, &lim) };
        if rc != 0 {
            return Err(Error::Sys {
                op: format!("setrlimit {name} soft={} hard={}", r.soft(), r.hard()),
                source: nix::Error::last(),
            });
        }
    }
    Ok(())
}

pub fn to_caps(set: &Option<Capabilities>) -> CapsHashSet {
    let mut out = CapsHashSet::new();
    for c in set.iter().flatten() {
        // oci-spec's names are the kernel's without the CAP_ prefix.
        if let Ok(cap) = format!("CAP_{c}").parse::<Cap>() {
            out.insert(cap);
        }
    }
    out
}

/// Drop from the bounding set everything not listed. Must run while we still
/// have CAP_SETPCAP (before changing uid).
pub fn drop_bounding(c: &LinuxCapabilities) -> Result<()> {
    let keep = to_caps(c.bounding());
    for cap in caps::all() {
        if !keep.contains(&cap) {
            match caps::drop(None, CapSet::Bounding, cap) {
                Ok(()) => {}
                // A capability the running kernel does not know: nothing to drop.
                Err(_)
                    if cap.index()
                        > caps::runtime::thread_all_supported()
                            .iter()
                            .map(|c| c.index())
                            .max()
                            .unwrap_or(40) => {}
                Err(e) => return Err(Error::Caps(cap.to_string(), e.to_string())),
            }
        }
    }
    Ok(())
}

/// After setuid: set effective, permitted, inheritable and ambient exactly.
pub fn apply_caps(c: &LinuxCapabilities) -> Result<()> {
    let supported = caps::runtime::thread_all_supported();
    let keep = |s: &Option<Capabilities>| -> CapsHashSet {
        to_caps(s)
            .into_iter()
            .filter(|c| supported.contains(c))
            .collect()
    };
    let permitted = keep(c.permitted());
    let effective = keep(c.effective());
    let inheritable = keep(c.inheritable());
    caps::set(None, CapSet::Inheritable, &inheritable)
        .map_err(|e| Error::Caps("inheritable".into(), e.to_string()))?;
    // Shrink effective first (it must stay a subset of permitted), then permitted.
    caps::set(None, CapSet::Effective, &effective)
        .map_err(|e| Error::Caps("effective".into(), e.to_string()))?;
    caps::set(None, CapSet::Permitted, &permitted).map_err(|e| {
        Error::Caps(
            "permitted (effective must be a subset of it)".into(),
            e.to_string(),
        )
    })?;
    caps::clear(None, CapSet::Ambient).map_err(|e| Error::Caps("ambient".into(), e.to_string()))?;
    // The kernel only lets a capability into the ambient set when it is both
    // permitted and inheritable; like runc, skip the others rather than fail
    // (runc's and our default spec list ambient caps without inheritable).
    for cap in keep(c.ambient())
        .into_iter()
        .filter(|c| permitted.contains(c) && inheritable.contains(c))
    {
        caps::raise(None, CapSet::Ambient, cap)
            .map_err(|e| Error::Caps(format!("ambient {cap}"), e.to_string()))?;
    }
    Ok(())
}

/// setgroups, setresgid, setresuid, keeping permitted capabilities across
/// the uid change (PR_SET_KEEPCAPS) so `apply_caps` can then set them.
pub fn set_user(p: &Process, in_userns_without_setgroups: bool) -> Result<()> {
    use nix::unistd::{Gid, Uid};
    let u = p.user();
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) };
    if !in_userns_without_setgroups {
        let gids: Vec<Gid> = u
            .additional_gids()
            .iter()
            .flatten()
            .map(|g| Gid::from_raw(*g))
            .collect();
        nix::unistd::setgroups(&gids).map_err(sys("setgroups"))?;
    }
    let gid = Gid::from_raw(u.gid());
    nix::unistd::setresgid(gid, gid, gid).map_err(sys(format!("setresgid {}", u.gid())))?;
    let uid = Uid::from_raw(u.uid());
    nix::unistd::setresuid(uid, uid, uid).map_err(sys(format!("setresuid {}", u.uid())))?;
    // SAFETY: as above.
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) };
    Ok(())
}

pub fn set_no_new_privs() -> Result<()> {
    // SAFETY: prctl with integer arguments only.
    let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    if rc != 0 {
        return Err(Error::Sys {
            op: "prctl(PR_SET_NO_NEW_PRIVS)".into(),
            source: nix::Error::last(),
        });
    }
    Ok(())
}

pub fn set_oom_score_adj(pid: &str, v: i32) -> Result<()> {
    std::fs::write(format!("/proc/{pid}/oom_score_adj"), v.to_string()).map_err(|e| Error::Sys {
        op: format!("write oom_score_adj {v}"),
        source: nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
    })
}

/// Finds `arg0` like execvp would, in the container's PATH (from env),
/// resolved in the current root (call after pivot_root).
pub fn lookup(arg0: &str, env: &[String]) -> Result<PathBuf> {
    if arg0.contains('/') {
        check_exec(Path::new(arg0), arg0)?;
        return Ok(PathBuf::from(arg0));
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let cand = Path::new(dir).join(arg0);
        if check_exec(&cand, arg0).is_ok() {
            return Ok(cand);
        }
    }
    Err(Error::NotFound(arg0.to_string()))
}

fn check_exec(p: &Path, arg0: &str) -> Result<()> {
    let md = std::fs::metadata(p).map_err(|_| Error::NotFound(arg0.to_string()))?;
    if md.is_dir() {
        return Err(Error::IsDir(arg0.to_string()));
    }
    if nix::unistd::access(p, nix::unistd::AccessFlags::X_OK).is_err() {
        return Err(Error::NotExecutable(arg0.to_string()));
    }
    Ok(())
}

pub fn cstrings(v: &[String]) -> Result<Vec<CString>> {
    v.iter()
        .map(|s| CString::new(s.as_bytes()).map_err(|_| Error::Nul(s.clone())))
        .collect()
}

/// Close every fd >= `from` except those in `keep` (runc: fds beyond
/// 3 + preserve_fds are closed so nothing of the host leaks in).
pub fn close_fds_from(from: i32, keep: &[i32]) {
    let Ok(rd) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<i32> = rd
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
        .collect();
    for fd in fds {
        if fd >= from && !keep.contains(&fd) {
            // SAFETY: closing an fd number we own by inheritance; no Rust
            // object in this single-threaded child refers to it afterwards.
            unsafe { libc::close(fd) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_uses_path() {
        let p = lookup("sh", &["PATH=/nonexistent:/bin:/usr/bin".into()]).unwrap();
        assert!(p.ends_with("sh"));
        assert!(matches!(
            lookup("no-such-binary-xyz", &["PATH=/bin".into()]),
            Err(Error::NotFound(_))
        ));
        assert!(matches!(lookup("/etc", &[]), Err(Error::IsDir(_))));
    }

    #[test]
    fn rlimit_names() {
        assert_eq!(rlimit_resource("RLIMIT_NOFILE"), Some(libc::RLIMIT_NOFILE));
        assert_eq!(rlimit_resource("RLIMIT_BOGUS"), None);
        let r: PosixRlimit =
            serde_json::from_str(r#"{"type":"RLIMIT_NOFILE","hard":10,"soft":5}"#).unwrap();
        assert_eq!(rlimit_name(&r), "RLIMIT_NOFILE");
    }

    #[test]
    fn caps_map() {
        let c: LinuxCapabilities =
            serde_json::from_str(r#"{"bounding":["CAP_CHOWN","CAP_NET_RAW"]}"#).unwrap();
        let s = to_caps(c.bounding());
        assert!(s.contains(&Cap::CAP_CHOWN) && s.contains(&Cap::CAP_NET_RAW) && s.len() == 2);
    }
}
