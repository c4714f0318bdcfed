//! Container operations, one verb a file. Each runs in the `berth-runtime`
//! process (or in-process from the engine) and talks to forked children
//! through `sync`.

pub mod create;
pub mod delete;
pub mod exec;
pub mod info;
pub mod kill;
pub mod pause;
pub mod run;
pub mod start;
pub mod wait;

use crate::state::{self, Dir, Record, Status};
use crate::{cgroups, console, hooks, seccomp, spec, sync};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    State(#[from] state::Error),
    #[error(transparent)]
    Spec(#[from] spec::Error),
    #[error("cgroup: {0}")]
    Cgroup(#[from] cgroups::Error),
    #[error("seccomp: {0}")]
    Seccomp(#[from] seccomp::Error),
    #[error(transparent)]
    Console(#[from] console::Error),
    #[error(transparent)]
    Hook(#[from] hooks::Error),
    #[error(transparent)]
    Sync(#[from] sync::Error),
    #[error("{0}")]
    Child(String),
    #[error("container {id:?} is {status}: {what}")]
    WrongState {
        id: String,
        status: Status,
        what: &'static str,
    },
    #[error("{op}: {source}")]
    Sys { op: String, source: nix::Error },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn sys(op: impl Into<String>) -> impl FnOnce(nix::Error) -> Error {
    let op = op.into();
    move |source| Error::Sys { op, source }
}

/// The runtime's state root (`--root`).
#[derive(Debug, Clone)]
pub struct Runtime {
    pub root: PathBuf,
}

impl Default for Runtime {
    fn default() -> Self {
        Runtime {
            root: PathBuf::from(state::DEFAULT_ROOT),
        }
    }
}

/// A loaded container: its dir, record and live status.
pub struct Container {
    pub dir: Dir,
    pub rec: Record,
    pub status: Status,
}

impl Runtime {
    pub fn new(root: impl Into<PathBuf>) -> Runtime {
        Runtime { root: root.into() }
    }

    pub fn seccomp_cache(&self) -> PathBuf {
        self.root.join(".cache").join("seccomp")
    }

    pub fn load(&self, id: &str) -> Result<Container> {
        let dir = Dir::open(&self.root, id)?;
        let rec = dir.load()?;
        let status = status_of(&dir, &rec);
        Ok(Container { dir, rec, status })
    }

    pub fn list(&self) -> Result<Vec<Container>> {
        let mut out = Vec::new();
        for id in state::list(&self.root)? {
            if let Ok(c) = self.load(&id) {
                out.push(c);
            }
        }
        Ok(out)
    }
}

/// The container's cgroups, resolved exactly as at create time (a relative
/// cgroupsPath is relative to the creating process's cgroups, not ours).
pub fn cgroup_of(rec: &Record) -> Result<cgroups::Manager> {
    if rec.creator_cgroup.is_empty() {
        return Ok(cgroups::Manager::new(Some(&rec.cgroup_path), &rec.id)?);
    }
    Ok(cgroups::Manager::with_layout(
        cgroups::detect()?,
        rec.cgroup_spec.as_deref(),
        &rec.id,
        &rec.creator_cgroup,
    )?)
}

pub fn status_of(dir: &Dir, rec: &Record) -> Status {
    if rec.pid == 0 {
        return Status::Creating;
    }
    if !state::alive(rec) {
        return Status::Stopped;
    }
    if dir.fifo().exists() {
        return Status::Created;
    }
    if let Ok(m) = cgroup_of(rec) {
        if m.is_frozen().unwrap_or(false) {
            return Status::Paused;
        }
    }
    Status::Running
}

/// The OCI state document (runtime spec "State"), with runc's extra fields.
pub fn oci_state(rec: &Record, status: Status) -> serde_json::Value {
    serde_json::json!({
        "ociVersion": "1.2.0",
        "id": rec.id,
        "pid": if status == Status::Stopped { 0 } else { rec.pid },
        "status": status.to_string(),
        "bundle": rec.bundle,
        "rootfs": rec.rootfs,
        "created": rec.created,
        "owner": rec.owner,
        "annotations": rec.annotations,
    })
}

pub(crate) fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    state::write_atomic(path, pid.to_string().as_bytes()).map_err(Error::from)
}

/// Wait (by polling /proc) until `pid` with start time `start` is gone.
pub(crate) fn wait_gone(pid: i32, start: u64, timeout: std::time::Duration) -> bool {
    let t0 = std::time::Instant::now();
    let mut nap = std::time::Duration::from_micros(100);
    loop {
        // Reap it if it happens to be our child (run, tests).
        let _ = nix::sys::wait::waitpid(
            nix::unistd::Pid::from_raw(pid),
            Some(nix::sys::wait::WaitPidFlag::WNOHANG),
        );
        if state::process_start_time(pid) != Some(start) {
            return true;
        }
        if t0.elapsed() > timeout {
            return false;
        }
        std::thread::sleep(nap);
        nap = (nap * 2).min(std::time::Duration::from_millis(10));
    }
}
