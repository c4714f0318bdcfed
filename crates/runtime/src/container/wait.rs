//! Foreground supervision for `run` and `exec`: wait for the container
//! process, forward signals to it, and (with a terminal) copy between our
//! stdio and the pty master, resizing on SIGWINCH.

use super::{sys, Result};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

const FORWARDED: [Signal; 12] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGALRM,
    Signal::SIGCONT,
    Signal::SIGTSTP,
    Signal::SIGTTIN,
    Signal::SIGTTOU,
    Signal::SIGPWR,
];

/// Signals blocked and read through a signalfd. Create this before forking
/// so no signal is lost; children unblock in `init::reset_signals`.
pub struct Signals {
    fd: SignalFd,
    old: SigSet,
}

impl Signals {
    pub fn block() -> Result<Signals> {
        let mut set = SigSet::empty();
        for s in FORWARDED {
            set.add(s);
        }
        set.add(Signal::SIGCHLD);
        set.add(Signal::SIGWINCH);
        let mut old = SigSet::empty();
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), Some(&mut old))
            .map_err(sys("sigprocmask"))?;
        let fd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
            .map_err(sys("signalfd"))?;
        Ok(Signals { fd, old })
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&self.old), None);
    }
}

struct RawMode {
    fd: i32,
    saved: nix::sys::termios::Termios,
}

impl RawMode {
    fn enter(fd: BorrowedFd) -> Option<RawMode> {
        let saved = nix::sys::termios::tcgetattr(fd).ok()?;
        let mut raw = saved.clone();
        nix::sys::termios::cfmakeraw(&mut raw);
        nix::sys::termios::tcsetattr(fd, nix::sys::termios::SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode {
            fd: fd.as_raw_fd(),
            saved,
        })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: the fd is our stdin, open for the life of the process.
        let fd = unsafe { BorrowedFd::borrow_raw(self.fd) };
        let _ = nix::sys::termios::tcsetattr(fd, nix::sys::termios::SetArg::TCSANOW, &self.saved);
    }
}

fn exit_code(st: WaitStatus) -> Option<i32> {
    match st {
        WaitStatus::Exited(_, c) => Some(c),
        WaitStatus::Signaled(_, s, _) => Some(128 + s as i32),
        _ => None,
    }
}

fn write_all(fd: BorrowedFd, mut buf: &[u8]) {
    while !buf.is_empty() {
        match nix::unistd::write(fd, buf) {
            Ok(n) => buf = &buf[n..],
            Err(nix::Error::EINTR) | Err(nix::Error::EAGAIN) => {
                std::thread::sleep(std::time::Duration::from_millis(1))
            }
            Err(_) => return,
        }
    }
}

/// Waits for `pid` (our child) and returns its exit code, 128+N for a signal.
pub fn supervise(sigs: &Signals, pid: i32, tty: Option<OwnedFd>) -> Result<i32> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let _raw = tty.as_ref().and_then(|_| RawMode::enter(stdin.as_fd()));
    if let (Some(m), Some((r, c))) = (&tty, crate::console::get_size(0)) {
        crate::console::set_size(m.as_raw_fd(), r, c);
    }
    let mut stdin_open = tty.is_some();
    let mut master_open = tty.is_some();
    let mut code: Option<i32> = None;
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        if code.is_some() && !master_open {
            break;
        }
        let mut fds = vec![PollFd::new(sigs.fd.as_fd(), PollFlags::POLLIN)];
        let mi = if master_open {
            fds.push(PollFd::new(
                tty.as_ref().expect("tty").as_fd(),
                PollFlags::POLLIN,
            ));
            Some(fds.len() - 1)
        } else {
            None
        };
        let si = if stdin_open && code.is_none() {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
            Some(fds.len() - 1)
        } else {
            None
        };
        // After exit, drain the pty briefly then stop.
        let timeout = if code.is_some() {
            PollTimeout::from(50u16)
        } else {
            PollTimeout::NONE
        };
        match poll(&mut fds, timeout) {
            Ok(0) => break,
            Ok(_) => {}
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(sys("poll")(e)),
        }
        let ready = |i: usize| {
            fds[i].revents().is_some_and(|r| {
                r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR)
            })
        };
        let sig_ready = ready(0);
        let m_ready = mi.is_some_and(ready);
        let s_ready = si.is_some_and(ready);
        if sig_ready {
            while let Ok(Some(info)) = sigs.fd.read_signal() {
                let signo = info.ssi_signo as i32;
                if signo == Signal::SIGCHLD as i32 {
                    loop {
                        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                            Ok(WaitStatus::StillAlive) | Err(_) => break,
                            Ok(st) => {
                                if st.pid() == Some(Pid::from_raw(pid)) {
                                    if let Some(c) = exit_code(st) {
                                        code = Some(c);
                                    }
                                }
                            }
                        }
                    }
                } else if signo == Signal::SIGWINCH as i32 {
                    if let (Some(m), Some((r, c))) = (&tty, crate::console::get_size(0)) {
                        crate::console::set_size(m.as_raw_fd(), r, c);
                    }
                } else {
                    // SAFETY: kill(2) with integers.
                    unsafe { libc::kill(pid, signo) };
                }
            }
        }
        if m_ready {
            let m = tty.as_ref().expect("tty");
            match nix::unistd::read(m, &mut buf) {
                Ok(0) | Err(nix::Error::EIO) => master_open = false,
                Ok(n) => write_all(stdout.as_fd(), &buf[..n]),
                Err(nix::Error::EINTR) | Err(nix::Error::EAGAIN) => {}
                Err(_) => master_open = false,
            }
        }
        if s_ready {
            match nix::unistd::read(stdin.as_fd(), &mut buf) {
                Ok(0) | Err(_) => stdin_open = false,
                Ok(n) => write_all(tty.as_ref().expect("tty").as_fd(), &buf[..n]),
            }
        }
        if code.is_some() && tty.is_none() {
            break;
        }
    }
    Ok(code.unwrap_or(255))
}
