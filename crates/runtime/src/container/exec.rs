//! `exec`: run a new process inside a running container.

use super::wait::{supervise, Signals};
use super::{sys, write_pid_file, Error, Result, Runtime};
use crate::init::{self, Init};
use crate::namespaces::{self, Plan};
use crate::rootfs::CgroupMounts;
use crate::seccomp;
use crate::state::Status;
use crate::sync::{Channel, Msg};
use nix::unistd::{ForkResult, Pid};
use oci_spec::runtime::Process;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

pub struct ExecOpts {
    pub id: String,
    pub process: Process,
    pub console_socket: Option<PathBuf>,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub preserve_fds: i32,
}

/// Returns the process's exit code (0 when detached).
pub fn exec(rt: &Runtime, opts: ExecOpts) -> Result<i32> {
    let c = rt.load(&opts.id)?;
    match c.status {
        Status::Running | Status::Created => {}
        s => {
            return Err(Error::WrongState {
                id: opts.id.clone(),
                status: s,
                what: "cannot exec in a container that is not running",
            })
        }
    }
    let spec = c.dir.load_config()?;
    let terminal = opts.process.terminal().unwrap_or(false);
    let seccomp = match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        Some(s) => Some(seccomp::compile(s, Some(&rt.seccomp_cache()))?),
        None => None,
    };
    let cgroup = super::cgroup_of(&c.rec)?;
    let mut our_console: Option<OwnedFd> = None;
    let console = match &opts.console_socket {
        Some(p) => Some(crate::console::connect(&p.to_string_lossy())?),
        None if terminal => {
            if opts.detach {
                return Err(Error::Invalid(
                    "cannot allocate a tty for a detached process without --console-socket".into(),
                ));
            }
            let (a, b) = std::os::unix::net::UnixStream::pair().map_err(|source| Error::Io {
                path: "socketpair".into(),
                source,
            })?;
            our_console = Some(OwnedFd::from(a));
            Some(OwnedFd::from(b))
        }
        None => None,
    };
    let mut process = opts.process;
    // A foreground tty we hold: the process starts with our terminal's size
    // (it may read it before supervise could resize the pty).
    if our_console.is_some() && process.console_size().is_none() {
        if let Some((rows, cols)) = crate::console::get_size(0) {
            process.set_console_size(
                serde_json::from_value(serde_json::json!({"height": rows, "width": cols})).ok(),
            );
        }
    }
    let plan = Plan {
        join: namespaces::of_process(c.rec.pid),
        ..Plan::default()
    };
    let sigs = if opts.detach {
        None
    } else {
        Some(Signals::block()?)
    };
    let (pchan, cchan) = Channel::pair()?;
    let init = Init {
        spec: spec.clone(),
        process,
        rootfs: c.rec.rootfs.clone(),
        bundle: c.rec.bundle.clone(),
        plan,
        no_pivot: false,
        preserve_fds: opts.preserve_fds,
        console,
        fifo: None,
        seccomp,
        cgroups: CgroupMounts::default(),
        exec: true,
    };
    // SAFETY: single-threaded here; the child runs our code up to execve or _exit.
    let c1 = match unsafe { nix::unistd::fork() }.map_err(sys("fork"))? {
        ForkResult::Child => {
            drop(pchan);
            init::stage1(init, cchan)
        }
        ForkResult::Parent { child } => child.as_raw(),
    };
    drop(init);
    drop(cchan);
    let fail = |pids: &[i32], e: Error| -> Error {
        for p in pids {
            let _ = nix::sys::signal::kill(Pid::from_raw(*p), nix::sys::signal::Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(Pid::from_raw(*p), None);
        }
        e
    };
    if let Err(e) = cgroup.add_pid(c1) {
        return Err(fail(&[c1], e.into()));
    }
    let pid = match pchan.recv() {
        Ok(Msg::Pid(p)) => p,
        Ok(Msg::Error(e)) => return Err(fail(&[c1], Error::Child(e))),
        Ok(m) => return Err(fail(&[c1], Error::Child(format!("sync: unexpected {m:?}")))),
        Err(e) => return Err(fail(&[c1], e.into())),
    };
    let _ = nix::sys::wait::waitpid(Pid::from_raw(c1), None);
    if let Err(e) = cgroup.add_pid(pid) {
        return Err(fail(&[pid], e.into()));
    }
    let state = super::oci_state(&c.rec, c.status).to_string();
    if let Err(e) = pchan.send(&Msg::Continue { state }) {
        return Err(fail(&[pid], e.into()));
    }
    match pchan.recv() {
        Ok(Msg::Ready) => {}
        Ok(Msg::Error(e)) => return Err(fail(&[pid], Error::Child(e))),
        Ok(m) => {
            return Err(fail(
                &[pid],
                Error::Child(format!("sync: unexpected {m:?}")),
            ))
        }
        Err(e) => return Err(fail(&[pid], e.into())),
    }
    // The socket is close-on-exec in the child: EOF means execve succeeded.
    match pchan.recv() {
        Err(crate::sync::Error::Closed) => {}
        Ok(Msg::Error(e)) => {
            let _ = nix::sys::wait::waitpid(Pid::from_raw(pid), None);
            return Err(Error::Child(e));
        }
        Ok(m) => {
            return Err(fail(
                &[pid],
                Error::Child(format!("sync: unexpected {m:?}")),
            ))
        }
        Err(e) => return Err(fail(&[pid], e.into())),
    }
    if let Some(p) = &opts.pid_file {
        write_pid_file(p, pid)?;
    }
    let master = match &our_console {
        Some(s) => {
            use std::os::fd::AsRawFd;
            Some(crate::console::recv_fd(s.as_raw_fd()).map_err(|e| fail(&[pid], e.into()))?)
        }
        None => None,
    };
    let Some(sigs) = sigs else {
        return Ok(0);
    };
    supervise(&sigs, pid, master)
}
