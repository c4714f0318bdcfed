//! Terminals: a pty made inside the container whose master end is sent to
//! the engine over the `--console-socket` (SCM_RIGHTS), as runc does.

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("console: {op}: {source}")]
    Sys {
        op: &'static str,
        source: nix::Error,
    },
    #[error("console socket {path}: {source}")]
    Connect {
        path: String,
        source: std::io::Error,
    },
    #[error("console: no file descriptor received")]
    NoFd,
}

pub type Result<T> = std::result::Result<T, Error>;

fn sys(op: &'static str) -> impl FnOnce(nix::Error) -> Error {
    move |source| Error::Sys { op, source }
}

/// Connect to the engine's console socket (a unix stream socket).
pub fn connect(path: &str) -> Result<OwnedFd> {
    let s = std::os::unix::net::UnixStream::connect(path).map_err(|source| Error::Connect {
        path: path.to_string(),
        source,
    })?;
    Ok(OwnedFd::from(s))
}

/// Open a new pty in the current mount namespace's /dev/ptmx. Returns
/// (master, slave).
pub fn open_pty(rows: u16, cols: u16) -> Result<(OwnedFd, OwnedFd)> {
    use nix::fcntl::OFlag;
    let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .map_err(sys("open /dev/ptmx"))?;
    nix::pty::grantpt(&master).map_err(sys("grantpt"))?;
    nix::pty::unlockpt(&master).map_err(sys("unlockpt"))?;
    let name = nix::pty::ptsname_r(&master).map_err(sys("ptsname"))?;
    let slave = nix::fcntl::open(
        name.as_str(),
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(sys("open pty slave"))?;
    if rows > 0 || cols > 0 {
        set_size(slave.as_raw_fd(), rows, cols);
    }
    let m: OwnedFd = master.into();
    Ok((m, slave))
}

pub fn set_size(fd: RawFd, rows: u16, cols: u16) {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize struct we own.
    unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) };
}

pub fn get_size(fd: RawFd) -> Option<(u16, u16)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a winsize struct we own.
    let rc = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) };
    (rc == 0).then_some((ws.ws_row, ws.ws_col))
}

/// Make `slave` our stdio and controlling terminal (caller did setsid()).
pub fn attach_slave(slave: &OwnedFd) -> Result<()> {
    for fd in 0..3 {
        // SAFETY: dup2 onto 0..2 in the container's single-threaded init;
        // no Rust object owns those numbers.
        let rc = unsafe { libc::dup2(slave.as_raw_fd(), fd) };
        if rc < 0 {
            return Err(Error::Sys {
                op: "dup2 pty",
                source: nix::Error::last(),
            });
        }
    }
    // SAFETY: TIOCSCTTY with an integer argument on a valid fd.
    let rc = unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) };
    if rc != 0 {
        return Err(Error::Sys {
            op: "TIOCSCTTY",
            source: nix::Error::last(),
        });
    }
    Ok(())
}

pub fn send_fd(sock: RawFd, fd: RawFd, name: &str) -> Result<()> {
    let fds = [fd];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(name.as_bytes())];
    sendmsg::<()>(sock, &iov, &cmsg, MsgFlags::empty(), None).map_err(sys("sendmsg"))?;
    Ok(())
}

pub fn recv_fd(sock: RawFd) -> Result<OwnedFd> {
    let mut buf = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(sock, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)
        .map_err(sys("recvmsg"))?;
    for c in msg.cmsgs().map_err(sys("cmsgs"))? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(fd) = fds.first() {
                // SAFETY: the kernel just installed this fd for us.
                return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
            }
        }
    }
    Err(Error::NoFd)
}
