//! `exec`: another process in a running container, with the container's
//! process settings (env, user, capabilities, ...) and the request's
//! overrides, through the runtime's exec in-process.

use super::{io, Engine, Error, Result};
use crate::db::{Record, Status};
use crate::{rootfs, spec_gen};
use berth_runtime::container::exec::{exec, ExecOpts};
use std::os::fd::AsRawFd;
use std::path::Path;

#[derive(Debug, Clone, Default)]
pub struct ExecRequest {
    pub cmd: Vec<String>,
    /// `-e K=V` (or `K`: ours, when set).
    pub env: Vec<String>,
    /// `-u USER[:GROUP]`.
    pub user: Option<String>,
    /// `-w DIR`.
    pub workdir: Option<String>,
    pub tty: bool,
    /// `-d`: start it and return; its output is discarded.
    pub detach: bool,
}

impl Engine {
    /// Runs `req` in `rec`; returns its exit code (0 when detached).
    pub fn exec(&self, rec: &Record, req: &ExecRequest) -> Result<i32> {
        if rec.status != Status::Running {
            return Err(Error::NotRunning(rec.name.clone()));
        }
        if req.cmd.is_empty() {
            return Err(Error::Invalid("exec needs a command".into()));
        }
        let dir = self.dir(&rec.id);
        let config = dir.join("config.json");
        let spec = oci_spec::runtime::Spec::load(&config).map_err(|e| Error::Io {
            path: config.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let mut p = spec.process().clone().unwrap_or_default();
        p.set_args(Some(req.cmd.clone()));
        let mut env = p.env().clone().unwrap_or_default();
        for e in &req.env {
            let kv = if e.contains('=') {
                e.clone()
            } else {
                match std::env::var(e) {
                    Ok(v) => format!("{e}={v}"),
                    Err(_) => continue,
                }
            };
            spec_gen::set_env(&mut env, kv);
        }
        if let Some(u) = &req.user {
            let user = spec_gen::resolve_user(&rootfs::merged(&dir), Some(u))?;
            let mut pu = p.user().clone();
            pu.set_uid(user.uid);
            pu.set_gid(user.gid);
            pu.set_additional_gids(Some(user.additional_gids.clone()).filter(|g| !g.is_empty()));
            p.set_user(pu);
        }
        p.set_env(Some(env));
        if let Some(w) = &req.workdir {
            p.set_cwd(w.into());
        }
        p.set_terminal(Some(req.tty));
        let cfg = super::Config::parse(rec)?;
        if let Some(x) = self.external(&cfg) {
            let saved = if req.detach {
                Some(Saved::null(&[0, 1, 2])?)
            } else {
                None
            };
            let r = x.exec(&rec.id, &dir, &p, req.detach);
            drop(saved);
            return r;
        }
        let opts = ExecOpts {
            id: rec.id.clone(),
            process: p,
            console_socket: None,
            detach: req.detach,
            pid_file: None,
            preserve_fds: 0,
        };
        if !req.detach {
            return Ok(exec(&self.runtime, opts)?);
        }
        // A detached process must not hold our stdio (a caller waiting for
        // EOF on our output would wait for it).
        let saved = Saved::null(&[0, 1, 2])?;
        let r = exec(&self.runtime, opts);
        drop(saved);
        Ok(r?)
    }
}

/// Some of our stdio fds moved aside (to /dev/null) until dropped.
pub(crate) struct Saved(Vec<(i32, std::os::fd::OwnedFd)>);

impl Saved {
    pub(crate) fn null(fds: &[i32]) -> Result<Saved> {
        let null = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
            .map_err(io(Path::new("/dev/null")))?;
        let mut saved = Vec::new();
        for &fd in fds {
            // SAFETY: fds 0-2 are open for the life of the process.
            let b = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
            let copy = b.try_clone_to_owned().map_err(io(Path::new("dup stdio")))?;
            // SAFETY: dup2 onto a standard fd; the copy keeps the original.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
            saved.push((fd, copy));
        }
        Ok(Saved(saved))
    }
}

impl Drop for Saved {
    fn drop(&mut self) {
        for (fd, copy) in &self.0 {
            // SAFETY: puts the saved stdio back on its number.
            unsafe { libc::dup2(copy.as_raw_fd(), *fd) };
        }
    }
}
