//! Namespaces: which to create, which to join (by path), in which order.

use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("open namespace {path}: {source}")]
    Open { path: String, source: nix::Error },
    #[error("join {kind} namespace {path}: {source}")]
    Join {
        kind: String,
        path: String,
        source: nix::Error,
    },
    #[error("unshare {what}: {source}")]
    Unshare { what: String, source: nix::Error },
}

pub type Result<T> = std::result::Result<T, Error>;

pub fn flag(t: LinuxNamespaceType) -> CloneFlags {
    match t {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

/// The /proc/PID/ns name of a namespace type.
pub fn proc_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

/// Join order: user first (it grants the rights for the rest), mount last
/// (it changes our root, and paths after it resolve in the container).
pub const ORDER: [LinuxNamespaceType; 8] = [
    LinuxNamespaceType::User,
    LinuxNamespaceType::Ipc,
    LinuxNamespaceType::Uts,
    LinuxNamespaceType::Network,
    LinuxNamespaceType::Pid,
    LinuxNamespaceType::Cgroup,
    LinuxNamespaceType::Time,
    LinuxNamespaceType::Mount,
];

#[derive(Debug, Clone)]
pub struct Plan {
    /// Namespaces to create (all but user and pid, which are handled apart).
    pub new: CloneFlags,
    pub new_user: bool,
    pub new_pid: bool,
    /// (type, path) to setns into, already in ORDER.
    pub join: Vec<(LinuxNamespaceType, PathBuf)>,
}

impl Default for Plan {
    fn default() -> Self {
        Plan {
            new: CloneFlags::empty(),
            new_user: false,
            new_pid: false,
            join: Vec::new(),
        }
    }
}

impl Plan {
    pub fn from_spec(spec: &Spec) -> Plan {
        let mut p = Plan::default();
        let list = spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().clone())
            .unwrap_or_default();
        for t in ORDER {
            let Some(ns) = list.iter().find(|n| n.typ() == t) else {
                continue;
            };
            match ns.path() {
                Some(path) => p.join.push((t, path.clone())),
                None => match t {
                    LinuxNamespaceType::User => p.new_user = true,
                    LinuxNamespaceType::Pid => p.new_pid = true,
                    _ => p.new |= flag(t),
                },
            }
        }
        p
    }

    /// Is there a mount namespace of the container's own (new or joined)?
    pub fn has_mount_ns(&self) -> bool {
        self.new.contains(CloneFlags::CLONE_NEWNS)
            || self
                .join
                .iter()
                .any(|(t, _)| *t == LinuxNamespaceType::Mount)
    }
}

/// Open every namespace path first (before joining any: after joining the
/// mount namespace the paths would resolve elsewhere), then setns in order.
pub fn join_all(join: &[(LinuxNamespaceType, PathBuf)]) -> Result<()> {
    let mut fds = Vec::new();
    for (t, path) in join {
        let fd = nix::fcntl::open(
            path,
            nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|source| Error::Open {
            path: path.display().to_string(),
            source,
        })?;
        fds.push((*t, path, fd));
    }
    for (t, path, fd) in fds {
        nix::sched::setns(&fd, flag(t)).map_err(|source| Error::Join {
            kind: proc_name(t).to_string(),
            path: path.display().to_string(),
            source,
        })?;
    }
    Ok(())
}

pub fn unshare(flags: CloneFlags, what: &str) -> Result<()> {
    if flags.is_empty() {
        return Ok(());
    }
    nix::sched::unshare(flags).map_err(|source| Error::Unshare {
        what: what.to_string(),
        source,
    })
}

/// The namespaces of a running process that differ from ours, in join order.
pub fn of_process(pid: i32) -> Vec<(LinuxNamespaceType, PathBuf)> {
    let mut out = Vec::new();
    for t in ORDER {
        let name = proc_name(t);
        let theirs = PathBuf::from(format!("/proc/{pid}/ns/{name}"));
        let (Ok(a), Ok(b)) = (
            std::fs::metadata(&theirs),
            std::fs::metadata(format!("/proc/self/ns/{name}")),
        ) else {
            continue;
        };
        use std::os::unix::fs::MetadataExt;
        if a.ino() != b.ino() || a.dev() != b.dev() {
            out.push((t, theirs));
        }
    }
    out
}

/// Clone a child whose parent is our parent (CLONE_PARENT): it lands in any
/// pid namespace we unshared, and the runtime process that forked us can
/// wait for it directly. Returns 0 in the child.
pub fn clone_parent() -> nix::Result<i32> {
    // SAFETY: raw clone without CLONE_VM and with a NULL stack behaves like
    // fork(2): the child gets a copy of our address space. We are a
    // single-threaded forked process, so no lock can be held by another thread.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (libc::CLONE_PARENT | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if rc < 0 {
        Err(nix::Error::last())
    } else {
        Ok(rc as i32)
    }
}

/// `struct clone_args` of clone3(2), up to the `cgroup` field (Linux 5.7).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// fork(2), but the child starts inside the cgroup v2 directory `dir`
/// (clone3 with CLONE_INTO_CGROUP): no migration afterwards, so none of the
/// RCU grace period a write to cgroup.procs waits for. Returns 0 in the
/// child. Errors (ENOSYS, E2BIG on old kernels, EBUSY...) let the caller
/// fall back to fork + cgroup.procs.
pub fn fork_into_cgroup(dir: &std::os::fd::OwnedFd) -> nix::Result<i32> {
    use std::os::fd::AsRawFd;
    let mut args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: dir.as_raw_fd() as u64,
        ..CloneArgs::default()
    };
    // SAFETY: clone3 without CLONE_VM and with no stack behaves like fork(2)
    // (the child continues on a copy of our stack); `args` is a valid,
    // fully initialised clone_args of the size we pass. Single-threaded.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if rc < 0 {
        Err(nix::Error::last())
    } else {
        Ok(rc as i32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_orders_and_splits() {
        let spec: Spec = serde_json::from_str(
            r#"{"ociVersion":"1.0.0","root":{"path":"r"},"linux":{"namespaces":[
                {"type":"mount"},{"type":"network","path":"/run/netns/x"},{"type":"pid"},
                {"type":"user","path":"/proc/1/ns/user"},{"type":"uts"},{"type":"ipc"}]}}"#,
        )
        .unwrap();
        let p = Plan::from_spec(&spec);
        assert!(p.new_pid && !p.new_user);
        assert_eq!(
            p.new,
            CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC
        );
        let kinds: Vec<_> = p.join.iter().map(|(t, _)| *t).collect();
        assert_eq!(
            kinds,
            vec![LinuxNamespaceType::User, LinuxNamespaceType::Network]
        );
        assert!(p.has_mount_ns());
    }
}
