//! `run` in the foreground without a terminal: the CLI is the container's
//! parent (no monitor). The container's stdout and stderr are pipes the CLI
//! copies to its own stdio and into the json-file log (so `berth logs`
//! works, and the container does not see the user's terminal as its
//! stdout, as with Docker); with `-i` our stdin is copied to its stdin, else
//! it reads /dev/null. Signals we get are passed on; the exit is recorded.

use super::{io, Config, Engine, Error, Result};
use crate::db::Record;
use berth_monitor::Log;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

/// What an attached CLI passes on to the container (Docker's sig-proxy).
const FORWARDED: [Signal; 7] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

fn code_of(st: WaitStatus) -> Option<i32> {
    match st {
        WaitStatus::Exited(_, c) => Some(c),
        WaitStatus::Signaled(_, s, _) => Some(128 + s as i32),
        _ => None,
    }
}

impl Engine {
    /// Runs `rec` in the foreground; returns its exit code.
    pub fn run_attached(&self, rec: &Record) -> Result<i32> {
        let cfg = Config::parse(rec)?;
        if !self.claim(rec)? {
            return Err(Error::State {
                id: rec.id.clone(),
                what: "is being started by another berth".into(),
            });
        }
        let pipe = || {
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
                .map_err(|e| io(Path::new("pipe"))(e.into()))
        };
        let mut set = SigSet::empty();
        for s in FORWARDED {
            set.add(s);
        }
        set.add(Signal::SIGCHLD);
        let mut old = SigSet::empty();
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), Some(&mut old))
            .map_err(|e| io(Path::new("sigprocmask"))(e.into()))?;
        let r = self.run_piped(rec, &cfg, &set, pipe);
        let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
        let (code, pid) = r?;
        // A restart policy starts it again, detached, as Docker's daemon
        // would while `docker run` returns (with our signals unblocked).
        if let Err(e) = self.restart_if_due(&rec.id, pid) {
            berth_runtime::log::warn(&format!("restart container {}: {e}", rec.id));
        }
        Ok(code)
    }

    /// Runs it with our signals passed on; its exit code and init pid.
    fn run_piped(
        &self,
        rec: &Record,
        cfg: &Config,
        set: &SigSet,
        pipe: impl Fn() -> Result<(OwnedFd, OwnedFd)>,
    ) -> Result<(i32, i32)> {
        let sfd = SignalFd::with_flags(set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
            .map_err(|e| io(Path::new("signalfd"))(e.into()))?;
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let (in_r, in_w) = if cfg.interactive {
            let (r, w) = pipe()?;
            (Some(r), Some(w))
        } else {
            (None, None)
        };
        // The container gets the pipes as its stdio; ours come back after.
        let launched = {
            let saved = super::exec::Saved::null(&[0, 1, 2])?;
            if let Some(r) = &in_r {
                super::monitor::dup_to(r, 0)?;
            }
            super::monitor::dup_to(&out_w, 1)?;
            super::monitor::dup_to(&err_w, 2)?;
            let l = self.launch(rec, cfg);
            drop(saved);
            l
        };
        drop((out_w, err_w, in_r));
        let l = match launched {
            Ok(l) => l,
            Err(e) => {
                let _ = self.db.undo_start(&rec.id, &e.to_string());
                return Err(e);
            }
        };
        self.record_running(rec, &l)?;
        // Our stdin to the container's, on a thread (a blocking read of a
        // terminal must not hold up the output).
        if let Some(w) = in_w {
            std::thread::spawn(move || {
                let mut w = std::fs::File::from(w);
                let _ = std::io::copy(&mut std::io::stdin().lock(), &mut w);
            });
        }
        let mut log = Log::open(
            self.log_path(&rec.id).into_os_string(),
            cfg.log_max_size,
            cfg.log_max_file,
        );
        let code = pump(&sfd, out_r, err_r, l.pid, &mut log);
        log.close();
        // The ports are free again once the exit shows.
        drop(l.ports);
        self.finish(&rec.id, l.pid, code, Some(&l.cgroup))?;
        Ok((code, l.pid))
    }
}

/// Copies the container's output to ours and the log, passes signals on,
/// and returns the init's exit code once it is gone and the output is over.
fn pump(sfd: &SignalFd, out: OwnedFd, err: OwnedFd, pid: i32, log: &mut Log) -> i32 {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut srcs: Vec<(OwnedFd, usize)> = vec![(out, 0), (err, 1)];
    let mut code: Option<i32> = None;
    let mut buf = vec![0u8; 32 * 1024];
    let child = Pid::from_raw(pid);
    loop {
        if srcs.is_empty() {
            if let Some(c) = code {
                return c;
            }
            // Output over, init not reaped yet: wait for it.
            loop {
                match waitpid(child, None) {
                    Ok(st) => {
                        if let Some(c) = code_of(st) {
                            return c;
                        }
                    }
                    Err(nix::Error::EINTR) => continue,
                    Err(_) => return 255,
                }
            }
        }
        let mut fds: Vec<PollFd> = srcs
            .iter()
            .map(|(fd, _)| PollFd::new(fd.as_fd(), PollFlags::POLLIN))
            .collect();
        fds.push(PollFd::new(sfd.as_fd(), PollFlags::POLLIN));
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::Error::EINTR) => continue,
            Err(_) => return code.unwrap_or(255),
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        if ready[srcs.len()] {
            while let Ok(Some(si)) = sfd.read_signal() {
                if si.ssi_signo == Signal::SIGCHLD as u32 {
                    if let Ok(st) = waitpid(child, Some(WaitPidFlag::WNOHANG)) {
                        code = code.or(code_of(st));
                    }
                } else if si.ssi_signo != Signal::SIGWINCH as u32 {
                    // SAFETY: kill(2) with plain integers, to our child.
                    unsafe { libc::kill(pid, si.ssi_signo as i32) };
                }
            }
        }
        let mut closed = Vec::new();
        for (i, (fd, stream)) in srcs.iter().enumerate() {
            if !ready[i] {
                continue;
            }
            match nix::unistd::read(fd, &mut buf) {
                Ok(0) => closed.push(i),
                Ok(n) => {
                    log.write(*stream, &buf[..n]);
                    let _ = if *stream == 0 {
                        let mut o = std::io::stdout().lock();
                        o.write_all(&buf[..n]).and_then(|()| o.flush())
                    } else {
                        std::io::stderr().lock().write_all(&buf[..n])
                    };
                }
                Err(nix::Error::EINTR) | Err(nix::Error::EAGAIN) => {}
                Err(_) => closed.push(i),
            }
        }
        for i in closed.into_iter().rev() {
            srcs.remove(i);
        }
    }
}
