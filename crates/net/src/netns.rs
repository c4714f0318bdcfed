//! Network namespaces for containers. A new namespace is made by a
//! short-lived thread (`unshare(CLONE_NEWNET)` changes only the calling
//! thread), which hands back the namespace's fd and a netlink socket opened
//! inside it. Nothing is bind-mounted: the namespace lives while berth
//! holds the fd or the container's processes are in it, and the kernel
//! tears it down (with its veth end) when the last of them is gone, so a
//! crash leaves no namespace behind.

use crate::netlink::Netlink;
use crate::Error;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// A fresh network namespace with loopback up.
pub struct NetNs {
    pub fd: OwnedFd,
    /// A netlink socket inside it.
    pub netlink: Netlink,
}

impl NetNs {
    pub fn create() -> Result<NetNs, Error> {
        std::thread::Builder::new()
            .name("berth-netns".into())
            .spawn(|| -> Result<NetNs, Error> {
                // SAFETY: unshare only changes this thread's namespace; the
                // thread ends right after and no other code runs on it.
                if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                    return Err(Error::sys("unshare a network namespace"));
                }
                let fd = open_ns("/proc/thread-self/ns/net")?;
                let netlink = Netlink::open()?;
                // Loopback is always index 1 in a new namespace.
                netlink.set_up(1)?;
                Ok(NetNs { fd, netlink })
            })
            .map_err(|e| Error::Netlink {
                what: "spawn a thread".into(),
                source: e,
            })?
            .join()
            .map_err(|_| Error::Netlink {
                what: "network namespace thread".into(),
                source: std::io::Error::other("panicked"),
            })?
    }

    /// A path to the namespace other processes can open while this
    /// process holds it (the OCI spec's namespace path).
    pub fn path(&self) -> String {
        format!("/proc/{}/fd/{}", std::process::id(), self.fd.as_raw_fd())
    }
}

/// Opens a namespace file (`/proc/PID/ns/net`).
pub fn open_ns(path: &str) -> Result<OwnedFd, Error> {
    let c = std::ffi::CString::new(path).map_err(|_| Error::Invalid(path.into()))?;
    // SAFETY: c is a valid C string; the fd is owned right away.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(Error::sys(&format!("open {path}")));
    }
    // SAFETY: a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens a netlink socket inside the namespace `ns` (e.g. a running
/// container's `/proc/PID/ns/net`), from a short-lived thread.
pub fn netlink_in(ns: &OwnedFd) -> Result<Netlink, Error> {
    let raw = ns.as_raw_fd();
    std::thread::scope(|s| {
        s.spawn(|| -> Result<Netlink, Error> {
            // SAFETY: setns on this thread only; it ends right after.
            if unsafe { libc::setns(raw, libc::CLONE_NEWNET) } != 0 {
                return Err(Error::sys("enter a network namespace"));
            }
            Netlink::open()
        })
        .join()
        .unwrap_or_else(|_| {
            Err(Error::Netlink {
                what: "network namespace thread".into(),
                source: std::io::Error::other("panicked"),
            })
        })
    })
}
