//! `berth update`: new resource limits and restart policy for an existing
//! container, as `docker update` does. A running container's cgroup gets
//! the limits at once (the in-process runtime writes them; an external
//! runtime is asked with its `update --resources`); the stored options
//! change only once that worked, and when the cgroup refused one value
//! after taking others, the old values are written back (best effort).

use super::restart::RestartPolicy;
use super::{io, Config, Engine, Error, Result};
use crate::db::{Record, Status};
use crate::spec_gen;

/// What `update` changes; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default)]
pub struct Update {
    pub memory: Option<i64>,
    pub memory_swap: Option<i64>,
    pub cpus: Option<f64>,
    pub cpu_shares: Option<u64>,
    pub cpuset_cpus: Option<String>,
    pub pids_limit: Option<i64>,
    pub restart: Option<RestartPolicy>,
}

impl Update {
    pub fn is_empty(&self) -> bool {
        !self.touches_resources() && self.restart.is_none()
    }

    fn touches_resources(&self) -> bool {
        self.memory.is_some()
            || self.memory_swap.is_some()
            || self.cpus.is_some()
            || self.cpu_shares.is_some()
            || self.cpuset_cpus.is_some()
            || self.pids_limit.is_some()
    }
}

impl Engine {
    /// Applies `u` to `rec` (see the module doc).
    pub fn update(&self, rec: &Record, u: &Update) -> Result<()> {
        // A start in progress read the old options already: let it finish,
        // then update what runs.
        let now = self.current(rec)?;
        let rec = &now;
        let old = Config::parse(rec)?;
        let mut cfg = old.clone();
        if let Some(p) = u.restart {
            if cfg.auto_remove && p != RestartPolicy::No {
                return Err(Error::Invalid(
                    "restart policy cannot be updated because AutoRemove is enabled for the container"
                        .into(),
                ));
            }
            cfg.restart = p;
        }
        let s = &mut cfg.spec;
        if u.memory.is_some() {
            s.memory = u.memory;
        }
        if u.memory_swap.is_some() {
            s.memory_swap = u.memory_swap;
        }
        if u.cpus.is_some() {
            s.cpus = u.cpus;
        }
        if u.cpu_shares.is_some() {
            s.cpu_shares = u.cpu_shares;
        }
        if u.cpuset_cpus.is_some() {
            s.cpuset_cpus = u.cpuset_cpus.clone();
        }
        if u.pids_limit.is_some() {
            s.pids_limit = u.pids_limit;
        }
        if u.touches_resources() {
            // Checked as at create (minimum memory, swap above memory, cpus).
            let res = spec_gen::resources_json(&cfg.spec)?;
            let live = rec.status == Status::Running && super::pid_alive(rec.pid, rec.pid_start);
            if live {
                if let Err(e) = self.apply_live(rec, &cfg, &res) {
                    // The cgroup may have taken some of the values before one
                    // was refused: put the old ones back (best effort).
                    if let Ok(prev) = spec_gen::resources_json(&old.spec) {
                        let _ = self.apply_live(rec, &old, &prev);
                    }
                    return Err(e);
                }
            }
        }
        self.db.set_options(&rec.id, &cfg)?;
        Ok(())
    }

    /// New limits on a running container's cgroup.
    fn apply_live(&self, rec: &Record, cfg: &Config, res: &serde_json::Value) -> Result<()> {
        if let Some(x) = self.external(cfg) {
            return x.update(&rec.id, &self.dir(&rec.id), res);
        }
        let r: oci_spec::runtime::LinuxResources = serde_json::from_value(res.clone())
            .map_err(|e| Error::Invalid(format!("resources: {e}")))?;
        let m = self.cgroup(&rec.id).ok_or_else(|| Error::State {
            id: rec.id.clone(),
            what: "cannot find its cgroup".into(),
        })?;
        m.apply_resources(&r).map_err(|e| Error::State {
            id: rec.id.clone(),
            what: format!("cannot update its limits: {e}"),
        })
    }
}

impl super::external::External {
    /// `RUNTIME update --resources FILE ID` (runc and crun have it).
    pub fn update(&self, id: &str, dir: &std::path::Path, res: &serde_json::Value) -> Result<()> {
        let file = dir.join("update-resources.json");
        std::fs::write(&file, res.to_string()).map_err(io(&file))?;
        let path = file.to_string_lossy().into_owned();
        let r = self.run(
            "update",
            &["update", "--resources", &path, id],
            &dir.join("runtime.log"),
        );
        let _ = std::fs::remove_file(&file);
        r
    }
}
