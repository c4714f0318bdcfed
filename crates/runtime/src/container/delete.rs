//! `delete`: remove a stopped (or, with --force, any) container: poststop
//! hooks, cgroup, state dir.

use super::{oci_state, wait_gone, Error, Result, Runtime};
use crate::cgroups;
use crate::state::{Dir, Status};
use nix::sys::signal::Signal;
use std::time::Duration;

pub fn delete(rt: &Runtime, id: &str, force: bool) -> Result<()> {
    let dir = Dir::open(&rt.root, id)?;
    // A create that was killed before writing its record: only --force cleans it.
    let rec = match dir.load() {
        Ok(r) => r,
        Err(_) if force => {
            dir.remove()?;
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let status = super::status_of(&dir, &rec);
    let m = super::cgroup_of(&rec).ok();
    match status {
        Status::Stopped => {}
        // runc deletes a created container (its init never ran user code).
        Status::Created | Status::Creating => {
            kill_all(&rec, m.as_ref());
        }
        Status::Running | Status::Paused if force => {
            kill_all(&rec, m.as_ref());
        }
        Status::Running | Status::Paused => {
            return Err(Error::WrongState {
                id: id.into(),
                status,
                what: "cannot delete a container that is not stopped (use --force)",
            })
        }
    }
    if rec.pid > 0 && !wait_gone(rec.pid, rec.pid_start, Duration::from_secs(10)) {
        return Err(Error::Child(format!(
            "container {id:?} init {} did not exit after SIGKILL",
            rec.pid
        )));
    }
    if let Some(m) = &m {
        // Without a pid namespace, children can outlive init.
        for _ in 0..100 {
            let pids = m.pids().unwrap_or_default();
            if pids.is_empty() {
                break;
            }
            for p in pids {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), Signal::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        m.destroy()?;
    }
    if let Ok(spec) = dir.load_config() {
        if let Some(h) = spec.hooks().as_ref().and_then(|h| h.poststop().clone()) {
            let state = oci_state(&rec, Status::Stopped).to_string();
            if let Err(e) = crate::hooks::run_all("poststop", &h, &state) {
                crate::log::warn(&e.to_string());
            }
        }
    }
    dir.remove()?;
    Ok(())
}

fn kill_all(rec: &crate::state::Record, m: Option<&cgroups::Manager>) {
    if let Some(m) = m {
        for p in m.pids().unwrap_or_default() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), Signal::SIGKILL);
        }
        let _ = m.thaw();
    }
    if crate::state::alive(rec) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(rec.pid), Signal::SIGKILL);
    }
}
