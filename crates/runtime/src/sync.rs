//! The typed protocol between the runtime process (the "parent", P) and the
//! processes it forks while a container is created or a process is executed.
//!
//! ```text
//!  parent P (host)                 stage-1 C1 (host ns)            init C2 (container ns)
//!  ───────────────                 ────────────────────            ──────────────────────
//!  fork ───────────────────────────▶ (non-dumpable)
//!  add C1 to cgroups (slow: an       setns(joined ns, user first)
//!   RCU grace period on the first    unshare(NEWUSER)?
//!   write; C1 works meanwhile)
//!  write uid_map/gid_map  ◀──────── MapIds            (only with a new user ns)
//!  send IdsMapped ────────────────▶ unshare(mnt,uts,ipc,net,pid)
//!                                   clone(CLONE_PARENT) ──────────▶ (pid 1 of a new pid ns)
//!  ◀───────────────────────────────  Pid(C2); exit                  waits for Continue
//!  add C2 to cgroups (it may have
//!   been cloned before C1 moved)
//!  send Continue{state} ──────────────────────────────────────────▶ unshare(NEWCGROUP)?
//!                                                                   mounts, devices ...
//!  run createRuntime hooks ◀─────────────────────────────────────── RunHooks (if any)
//!  send HooksDone ────────────────────────────────────────────────▶ createContainer hooks,
//!                                                                   pivot_root, process setup
//!  write state.json (created) ◀──────────────────────────────────── Ready
//!  send Created ──────────────────────────────────────────────────▶ block on exec.fifo until
//!  exit (create) / start + wait (run)                                `start`, then execve
//! ```
//! Any side may send `Error(message)` instead of its next message; the
//! parent then kills what it started and removes everything it made. A child
//! that reads end-of-file (its parent died) exits at once, so a killed
//! `create` leaves no process behind.
//!
//! Messages are JSON in SOCK_SEQPACKET datagrams: one message per datagram,
//! no framing needed.

use serde::{Deserialize, Serialize};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("sync socket: {op}: {source}")]
    Io {
        op: &'static str,
        source: nix::Error,
    },
    #[error("sync socket: peer closed the connection")]
    Closed,
    #[error("sync socket: bad message: {0}")]
    Decode(String),
    #[error("sync socket: expected {expected}, got {got:?}")]
    Unexpected { expected: &'static str, got: Msg },
}

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum Msg {
    /// C1 -> P: I unshared a user namespace; write my uid/gid maps.
    MapIds,
    /// P -> C1: maps written.
    IdsMapped,
    /// C1 -> P: the pid (in P's pid namespace) of the container process.
    Pid(i32),
    /// P -> C2: go on; the state JSON hooks get on stdin.
    Continue { state: String },
    /// C2 -> P: run the createRuntime (and prestart) hooks now.
    RunHooks,
    /// P -> C2: hooks done.
    HooksDone,
    /// C2 -> P: set up; waiting on exec.fifo (create) or about to execve (exec).
    Ready,
    /// P -> C2: state.json is written; the container is "created".
    Created,
    /// Either way: something failed; the text is the whole error.
    Error(String),
}

/// One end of a SOCK_SEQPACKET socket pair.
#[derive(Debug)]
pub struct Channel {
    fd: OwnedFd,
}

const MAX_MSG: usize = 256 * 1024;

impl Channel {
    /// A connected pair: (parent end, child end). Both close on exec.
    pub fn pair() -> Result<(Channel, Channel)> {
        use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|source| Error::Io {
            op: "socketpair",
            source,
        })?;
        Ok((Channel { fd: a }, Channel { fd: b }))
    }

    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    pub fn send(&self, msg: &Msg) -> Result<()> {
        let buf = serde_json::to_vec(msg).map_err(|e| Error::Decode(e.to_string()))?;
        loop {
            match nix::sys::socket::send(
                self.fd.as_raw_fd(),
                &buf,
                nix::sys::socket::MsgFlags::MSG_NOSIGNAL,
            ) {
                Ok(_) => return Ok(()),
                Err(nix::Error::EINTR) => continue,
                Err(nix::Error::EPIPE) | Err(nix::Error::ECONNRESET) => return Err(Error::Closed),
                Err(source) => return Err(Error::Io { op: "send", source }),
            }
        }
    }

    pub fn recv(&self) -> Result<Msg> {
        let mut buf = vec![0u8; MAX_MSG];
        loop {
            match nix::sys::socket::recv(
                self.fd.as_raw_fd(),
                &mut buf,
                nix::sys::socket::MsgFlags::empty(),
            ) {
                Ok(0) => return Err(Error::Closed),
                Ok(n) => {
                    return serde_json::from_slice(&buf[..n])
                        .map_err(|e| Error::Decode(e.to_string()))
                }
                Err(nix::Error::EINTR) => continue,
                Err(nix::Error::ECONNRESET) => return Err(Error::Closed),
                Err(source) => return Err(Error::Io { op: "recv", source }),
            }
        }
    }

    /// Receive and require a particular message; `Error(text)` from the peer
    /// becomes `Err(Error::Decode(text))`-free passthrough via `PeerError`.
    pub fn expect(&self, expected: &'static str, pred: impl Fn(&Msg) -> bool) -> Result<Msg> {
        let m = self.recv()?;
        if pred(&m) {
            Ok(m)
        } else {
            Err(Error::Unexpected { expected, got: m })
        }
    }
}

impl Error {
    /// The peer's own error text when it sent `Msg::Error`, else our description.
    pub fn peer_text(&self) -> String {
        match self {
            Error::Unexpected {
                got: Msg::Error(t), ..
            } => t.clone(),
            other => other.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_every_message() {
        let (a, b) = Channel::pair().unwrap();
        let msgs = vec![
            Msg::MapIds,
            Msg::IdsMapped,
            Msg::Pid(42),
            Msg::Continue {
                state: "{\"id\":\"x\"}".into(),
            },
            Msg::RunHooks,
            Msg::HooksDone,
            Msg::Ready,
            Msg::Created,
            Msg::Error("boom".into()),
        ];
        for m in &msgs {
            a.send(m).unwrap();
            assert_eq!(&b.recv().unwrap(), m);
        }
    }

    #[test]
    fn closed_peer_is_reported() {
        let (a, b) = Channel::pair().unwrap();
        drop(a);
        assert!(matches!(b.recv(), Err(Error::Closed)));
    }

    #[test]
    fn unexpected_message_carries_peer_error() {
        let (a, b) = Channel::pair().unwrap();
        a.send(&Msg::Error("mount /proc: EPERM".into())).unwrap();
        let e = b.expect("Ready", |m| *m == Msg::Ready).unwrap_err();
        assert_eq!(e.peer_text(), "mount /proc: EPERM");
    }
}
