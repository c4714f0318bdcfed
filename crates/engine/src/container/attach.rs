//! The client side of `berth attach` (and of `run -t`): talks to the
//! container's monitor over `<dir>/attach.sock` in frames (see
//! crates/monitor): output frames to our stdout/stderr; our stdin, window
//! size changes and stdin EOF back. With a terminal it is put in raw mode
//! and restored; the detach keys (default ctrl-p ctrl-q) leave the
//! container running.

use super::monitor::ATTACH_SOCKET;
use super::{io, Engine, Error, Result};
use crate::db::{Record, Status};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

/// How an attach ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The container's output is over (it exited).
    Exited,
    /// The user typed the detach keys; the container runs on.
    Detached,
}

#[derive(Debug, Clone)]
pub struct Options {
    /// Forward our stdin.
    pub stdin: bool,
    /// The container has a terminal: raw mode, window size.
    pub tty: bool,
    pub detach_keys: Vec<u8>,
}

/// Docker's `--detach-keys`: `ctrl-<c>` or single characters, commas
/// between (`ctrl-p,ctrl-q`).
pub fn parse_detach_keys(s: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for k in s.split(',') {
        let b = match k.strip_prefix("ctrl-") {
            Some(c) if c.len() == 1 => {
                let c = c.as_bytes()[0].to_ascii_lowercase();
                match c {
                    b'a'..=b'z' => c - b'a' + 1,
                    b'@' => 0,
                    b'[' => 27,
                    b'\\' => 28,
                    b']' => 29,
                    b'^' => 30,
                    b'_' => 31,
                    _ => return Err(Error::Invalid(format!("invalid detach key {k:?}"))),
                }
            }
            None if k.len() == 1 => k.as_bytes()[0],
            _ => return Err(Error::Invalid(format!("invalid detach keys {s:?}"))),
        };
        out.push(b);
    }
    Ok(out)
}

pub const DEFAULT_DETACH_KEYS: &[u8] = &[0x10, 0x11];

impl Engine {
    /// Connects to a running container's monitor.
    pub fn attach_socket(&self, rec: &Record) -> Result<UnixStream> {
        if rec.status != Status::Running {
            return Err(Error::NotRunning(rec.name.clone()));
        }
        let (_dirfd, sock) = super::socket_path(&self.dir(&rec.id), ATTACH_SOCKET)?;
        UnixStream::connect(&sock).map_err(|e| Error::State {
            id: rec.id.clone(),
            what: format!(
                "cannot attach: {e} (it runs attached to another berth, or without berth-monitor)"
            ),
        })
    }
}

fn frame(kind: u8, data: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(5 + data.len());
    f.push(kind);
    f.extend_from_slice(&(data.len() as u32).to_be_bytes());
    f.extend_from_slice(data);
    f
}

struct Raw {
    saved: nix::sys::termios::Termios,
}

impl Raw {
    fn enter() -> Option<Raw> {
        let stdin = std::io::stdin();
        let saved = nix::sys::termios::tcgetattr(stdin.as_fd()).ok()?;
        let mut raw = saved.clone();
        nix::sys::termios::cfmakeraw(&mut raw);
        nix::sys::termios::tcsetattr(stdin.as_fd(), nix::sys::termios::SetArg::TCSANOW, &raw)
            .ok()?;
        Some(Raw { saved })
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        let stdin = std::io::stdin();
        let _ = nix::sys::termios::tcsetattr(
            stdin.as_fd(),
            nix::sys::termios::SetArg::TCSANOW,
            &self.saved,
        );
    }
}

fn window_size() -> Option<(u16, u16)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ on our stdin into a local winsize.
    let r = unsafe { libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) };
    (r == 0 && ws.ws_row > 0).then_some((ws.ws_row, ws.ws_col))
}

/// Splits `input` at the detach sequence: (bytes to send, detached?).
/// `matched` carries a partial match across reads.
fn scan(input: &[u8], keys: &[u8], matched: &mut usize) -> (Vec<u8>, bool) {
    let mut out = Vec::with_capacity(input.len());
    for &b in input {
        if keys.is_empty() {
            out.push(b);
            continue;
        }
        if b == keys[*matched] {
            *matched += 1;
            if *matched == keys.len() {
                return (out, true);
            }
            continue;
        }
        out.extend_from_slice(&keys[..*matched]);
        *matched = 0;
        if b == keys[0] {
            *matched = 1;
        } else {
            out.push(b);
        }
    }
    (out, false)
}

/// Signals an attached CLI passes on to the container (Docker's
/// `--sig-proxy`); in raw mode ^C is input, not a signal.
const PROXIED: [Signal; 6] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// Runs the attach session on `sock` until the output ends or the user
/// detaches; signals we get go to `forward`.
pub fn attach(mut sock: UnixStream, opts: &Options, forward: &dyn Fn(i32)) -> Result<End> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let err = |e: std::io::Error| io(Path::new("attach socket"))(e);
    let is_tty = nix::unistd::isatty(std::io::stdin().as_fd()).unwrap_or(false);
    let _raw = if opts.tty && opts.stdin && is_tty {
        Raw::enter()
    } else {
        None
    };
    let mut winch = SigSet::empty();
    winch.add(Signal::SIGWINCH);
    for s in PROXIED {
        winch.add(s);
    }
    let mut old = SigSet::empty();
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&winch), Some(&mut old))
        .map_err(|e| err(e.into()))?;
    let sfd = SignalFd::with_flags(&winch, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(|e| err(e.into()))?;
    let send_size = |s: &mut UnixStream| {
        if let Some((r, c)) = window_size() {
            let mut b = r.to_be_bytes().to_vec();
            b.extend_from_slice(&c.to_be_bytes());
            let _ = s.write_all(&frame(1, &b));
        }
    };
    if opts.tty {
        send_size(&mut sock);
    }
    let mut stdin_open = opts.stdin;
    let mut matched = 0usize;
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 32 * 1024];
    let stdin_fd = std::io::stdin().as_raw_fd();
    let end = loop {
        let sock_fd = sock.as_fd();
        // SAFETY: our stdin stays open for the life of the process.
        let stdin_b = unsafe { BorrowedFd::borrow_raw(stdin_fd) };
        let mut fds = vec![
            PollFd::new(sock_fd, PollFlags::POLLIN),
            PollFd::new(sfd.as_fd(), PollFlags::POLLIN),
        ];
        if stdin_open {
            fds.push(PollFd::new(stdin_b, PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::Error::EINTR) => continue,
            Err(e) => break Err(err(e.into())),
        }
        let ready = |i: usize| {
            fds.get(i)
                .and_then(|f| f.revents())
                .is_some_and(|r| !r.is_empty())
        };
        let (sock_ready, sig_ready, in_ready) = (ready(0), ready(1), ready(2));
        drop(fds);
        if sig_ready {
            while let Ok(Some(si)) = sfd.read_signal() {
                if si.ssi_signo == Signal::SIGWINCH as u32 {
                    send_size(&mut sock);
                } else {
                    forward(si.ssi_signo as i32);
                }
            }
        }
        if in_ready {
            // SAFETY: read from our stdin into our buffer.
            let n = unsafe { libc::read(stdin_fd, buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                stdin_open = false;
                let _ = sock.write_all(&frame(2, &[]));
            } else {
                let (data, detach) = scan(&buf[..n as usize], &opts.detach_keys, &mut matched);
                if !data.is_empty() && sock.write_all(&frame(0, &data)).is_err() {
                    stdin_open = false;
                }
                if detach {
                    break Ok(End::Detached);
                }
            }
        }
        if sock_ready {
            let n = match sock.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => 0,
            };
            if n == 0 {
                break Ok(End::Exited);
            }
            pending.extend_from_slice(&buf[..n]);
            while pending.len() >= 5 {
                let len =
                    u32::from_be_bytes([pending[1], pending[2], pending[3], pending[4]]) as usize;
                if pending.len() < 5 + len {
                    break;
                }
                let data = &pending[5..5 + len];
                let _ = if pending[0] == 2 {
                    std::io::stderr().write_all(data)
                } else {
                    let mut o = std::io::stdout().lock();
                    o.write_all(data).and_then(|()| o.flush())
                };
                pending.drain(..5 + len);
            }
        }
    };
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys() {
        assert_eq!(
            parse_detach_keys("ctrl-p,ctrl-q").unwrap(),
            DEFAULT_DETACH_KEYS
        );
        assert_eq!(parse_detach_keys("a,ctrl-[").unwrap(), [b'a', 27]);
        assert!(parse_detach_keys("ctrl-").is_err());
        let keys = DEFAULT_DETACH_KEYS;
        let mut m = 0;
        assert_eq!(scan(b"ab\x10", keys, &mut m), (b"ab".to_vec(), false));
        assert_eq!(m, 1);
        assert_eq!(scan(b"\x11rest", keys, &mut m), (vec![], true));
        let mut m = 0;
        assert_eq!(
            scan(b"\x10x\x10\x10", keys, &mut m),
            (b"\x10x\x10".to_vec(), false)
        );
        assert_eq!(m, 1);
    }
}
