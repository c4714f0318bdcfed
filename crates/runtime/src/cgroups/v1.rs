//! cgroup v1 backend (also used on hybrid hosts, where the cgroup2 directory is only
//! created and joined). Translation follows runc's `libcontainer/cgroups/fs`.

use std::io;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxResources};

use super::{
    devices_bpf, hugepage_size, mkdir_p, read, read_opt, remove_tree, sorted_pids, write,
    write_raw, Backend, Error, Result,
};

/// One mounted v1 hierarchy (possibly holding several controllers, e.g. cpu,cpuacct).
pub(crate) struct Hierarchy {
    pub controllers: Vec<String>,
    pub mount: PathBuf,
    /// Absolute cgroup path inside this hierarchy.
    pub path: String,
    pub dir: PathBuf,
}

pub(crate) struct V1 {
    pub hierarchies: Vec<Hierarchy>,
    /// The container's directory in the cgroup2 mount of a hybrid host.
    pub unified: Option<PathBuf>,
}

const LIMIT: &str = "memory.limit_in_bytes";
const MEMSW: &str = "memory.memsw.limit_in_bytes";

fn errno(e: &io::Error) -> Option<i32> {
    e.raw_os_error()
}

impl V1 {
    fn dir(&self, controller: &str) -> Option<&Path> {
        self.hierarchies
            .iter()
            .find(|h| h.controllers.iter().any(|c| c == controller))
            .map(|h| h.dir.as_path())
    }

    fn need(&self, controller: &str, setting: &str) -> Result<&Path> {
        self.dir(controller)
            .ok_or_else(|| Error::ControllerNotMounted {
                controller: controller.into(),
                setting: setting.into(),
            })
    }

    fn set_memory(&self, m: &LinuxMemory) -> Result<()> {
        let limit = m.limit().unwrap_or(0);
        let mut swap = m.swap().unwrap_or(0);
        let reservation = m.reservation().unwrap_or(0);
        // swappiness is a u64 in oci-spec: -1 ("unset") arrives as u64::MAX.
        let swappiness = m.swappiness().filter(|s| *s != u64::MAX);
        let oom = m.disable_oom_killer() == Some(true);
        if limit == 0 && swap == 0 && reservation == 0 && swappiness.is_none() && !oom {
            return Ok(()); // kernel, kernelTCP, useHierarchy... are ignored like runc
        }
        let dir = self.need("memory", "memory")?;
        let have_memsw = dir.join(MEMSW).exists();
        if limit == -1 && swap == 0 && have_memsw {
            swap = -1; // unlimited memory means unlimited swap too
        }
        if !have_memsw && swap != 0 {
            // Swap accounting is off: "unlimited" and "no swap beyond the limit" need
            // nothing (matches runc's cgroup v2 leniency); anything else cannot be done.
            if swap == -1 || swap == limit {
                swap = 0;
            } else {
                return Err(Error::Unsupported {
                    setting: "memory.swap".into(),
                    value: swap.to_string(),
                    reason: format!(
                        "swap accounting is disabled ({} does not exist)",
                        dir.join(MEMSW).display()
                    ),
                });
            }
        }
        if limit > 0 && swap > 0 && swap < limit {
            return Err(Error::InvalidValue {
                setting: "memory.swap".into(),
                value: swap.to_string(),
                reason: format!("memory+swap limit must be >= the memory limit {limit}"),
            });
        }
        // The kernel wants limit <= memsw at every moment: when raising, swap goes first.
        let mut swap_first = false;
        if limit != 0 && swap != 0 {
            let cur = read_u64(&dir.join(LIMIT))?;
            swap_first = swap == -1 || cur < swap as u64;
        }
        if swap_first {
            write_nonzero(dir, MEMSW, swap)?;
            set_limit(dir, limit)?;
        } else {
            set_limit(dir, limit)?;
            write_nonzero(dir, MEMSW, swap)?;
        }
        write_nonzero(dir, "memory.soft_limit_in_bytes", reservation)?;
        if oom {
            write(dir, "memory.oom_control", "1")?;
        }
        if let Some(s) = swappiness {
            if s > 100 {
                return Err(Error::InvalidValue {
                    setting: "memory.swappiness".into(),
                    value: s.to_string(),
                    reason: "valid range is 0-100".into(),
                });
            }
            write(dir, "memory.swappiness", &s.to_string())?;
        }
        Ok(())
    }

    fn set_cpu(&self, c: &LinuxCpu) -> Result<()> {
        if let Some(shares) = c.shares().filter(|s| *s != 0) {
            let dir = self.need("cpu", "cpu.shares")?;
            write(dir, "cpu.shares", &shares.to_string())?;
            let got = read_u64(&dir.join("cpu.shares"))?;
            if got != shares {
                let bound = if shares > got { "maximum" } else { "minimum" };
                return Err(Error::InvalidValue {
                    setting: "cpu.shares".into(),
                    value: shares.to_string(),
                    reason: format!("the {bound} allowed cpu-shares is {got}"),
                });
            }
        }
        let period = c.period().unwrap_or(0);
        let quota = c.quota().unwrap_or(0);
        if period != 0 || quota != 0 {
            let dir = self.need("cpu", "cpu.cfs_quota_us")?;
            let mut period_later = false;
            if period != 0 {
                let path = dir.join("cpu.cfs_period_us");
                match write_raw(&path, &period.to_string()) {
                    Ok(()) => {}
                    // A smaller period can be refused until the quota is lowered (runc).
                    Err(e) if errno(&e) == Some(libc::EINVAL) && quota != 0 => period_later = true,
                    Err(source) => {
                        return Err(Error::Write {
                            path,
                            value: period.to_string(),
                            source,
                        })
                    }
                }
            }
            if quota != 0 {
                write(dir, "cpu.cfs_quota_us", &quota.to_string())?;
                if period_later {
                    write(dir, "cpu.cfs_period_us", &period.to_string())?;
                }
            }
        }
        if let Some(burst) = c.burst() {
            write(
                self.need("cpu", "cpu.burst")?,
                "cpu.cfs_burst_us",
                &burst.to_string(),
            )?;
        }
        let rt_period = c.realtime_period().unwrap_or(0);
        let rt_runtime = c.realtime_runtime().unwrap_or(0);
        if rt_period != 0 {
            write(
                self.need("cpu", "cpu.realtimePeriod")?,
                "cpu.rt_period_us",
                &rt_period.to_string(),
            )?;
        }
        if rt_runtime != 0 {
            write(
                self.need("cpu", "cpu.realtimeRuntime")?,
                "cpu.rt_runtime_us",
                &rt_runtime.to_string(),
            )?;
        }
        if let Some(idle) = c.idle() {
            write(self.need("cpu", "cpu.idle")?, "cpu.idle", &idle.to_string())?;
        }
        for (value, file) in [(c.cpus(), "cpuset.cpus"), (c.mems(), "cpuset.mems")] {
            if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
                write(self.need("cpuset", file)?, file, v)?;
            }
        }
        Ok(())
    }

    fn set_blkio(&self, b: &LinuxBlockIo) -> Result<()> {
        let dir = || self.need("blkio", "blockIO");
        let pick = |dir: &Path, files: [&'static str; 2], setting: &str| -> Result<&'static str> {
            files
                .into_iter()
                .find(|f| dir.join(f).exists())
                .ok_or_else(|| Error::Unsupported {
                    setting: setting.into(),
                    value: "(set)".into(),
                    reason: format!(
                        "neither {} nor {} exists in {}",
                        files[0],
                        files[1],
                        dir.display()
                    ),
                })
        };
        if let Some(w) = b.weight().filter(|w| *w != 0) {
            let d = dir()?;
            let file = pick(d, ["blkio.bfq.weight", "blkio.weight"], "blockIO.weight")?;
            write(d, file, &w.to_string())?;
        }
        if let Some(w) = b.leaf_weight().filter(|w| *w != 0) {
            write(dir()?, "blkio.leaf_weight", &w.to_string())?;
        }
        for wd in b.weight_device().iter().flatten() {
            let d = dir()?;
            if let Some(w) = wd.weight() {
                let file = pick(
                    d,
                    ["blkio.bfq.weight_device", "blkio.weight_device"],
                    "blockIO.weightDevice",
                )?;
                write(d, file, &format!("{}:{} {}", wd.major(), wd.minor(), w))?;
            }
            if let Some(w) = wd.leaf_weight() {
                write(
                    d,
                    "blkio.leaf_weight_device",
                    &format!("{}:{} {}", wd.major(), wd.minor(), w),
                )?;
            }
        }
        let throttles = [
            (
                b.throttle_read_bps_device(),
                "blkio.throttle.read_bps_device",
            ),
            (
                b.throttle_write_bps_device(),
                "blkio.throttle.write_bps_device",
            ),
            (
                b.throttle_read_iops_device(),
                "blkio.throttle.read_iops_device",
            ),
            (
                b.throttle_write_iops_device(),
                "blkio.throttle.write_iops_device",
            ),
        ];
        for (list, file) in throttles {
            for td in list.iter().flatten() {
                write(
                    dir()?,
                    file,
                    &format!("{}:{} {}", td.major(), td.minor(), td.rate()),
                )?;
            }
        }
        Ok(())
    }

    fn set_other(&self, r: &LinuxResources) -> Result<()> {
        if let Some(p) = r.pids() {
            let v = if p.limit() > 0 {
                p.limit().to_string()
            } else {
                "max".into()
            };
            write(self.need("pids", "pids.limit")?, "pids.max", &v)?;
        }
        if let Some(rules) = r.devices() {
            let rules = devices_bpf::parse_rules(rules)?;
            let dir = self.need("devices", "devices")?;
            write(dir, "devices.deny", "a")?;
            for rule in &rules {
                let file = if rule.allow {
                    "devices.allow"
                } else {
                    "devices.deny"
                };
                write(dir, file, &rule.v1_string())?;
            }
        }
        for h in r.hugepage_limits().iter().flatten() {
            let size = hugepage_size(h.page_size())?;
            let dir = self.need("hugetlb", "hugepageLimits")?;
            write(
                dir,
                &format!("hugetlb.{size}.limit_in_bytes"),
                &h.limit().to_string(),
            )?;
            let rsvd = format!("hugetlb.{size}.rsvd.limit_in_bytes");
            if dir.join(&rsvd).exists() {
                write(dir, &rsvd, &h.limit().to_string())?;
            }
        }
        if let Some(net) = r.network() {
            if let Some(id) = net.class_id() {
                write(
                    self.need("net_cls", "network.classID")?,
                    "net_cls.classid",
                    &id.to_string(),
                )?;
            }
            for p in net.priorities().iter().flatten() {
                let dir = self.need("net_prio", "network.priorities")?;
                write(
                    dir,
                    "net_prio.ifpriomap",
                    &format!("{} {}", p.name(), p.priority()),
                )?;
            }
        }
        for (dev, l) in r.rdma().iter().flatten() {
            let v = super::rdma_limit(dev, l);
            write(self.need("rdma", "rdma")?, "rdma.max", &v)?;
        }
        if let Some((k, v)) = r.unified().iter().flatten().next() {
            return Err(Error::Unsupported {
                setting: format!("unified.{k}"),
                value: v.clone(),
                reason: "cgroup v2 settings need a cgroup v2 host; resources go to cgroup v1 here"
                    .into(),
            });
        }
        Ok(())
    }

    fn freezer_state(&self) -> Result<(PathBuf, String)> {
        let dir = self.need("freezer", "freeze")?;
        let path = dir.join("freezer.state");
        let s = read(&path)?.trim().to_string();
        Ok((path, s))
    }
}

fn read_u64(path: &Path) -> Result<u64> {
    let s = read(path)?;
    let t = s.trim();
    // "-1" reads back as unlimited on some kernels' files; treat it as the maximum.
    t.parse::<u64>()
        .or_else(|_| t.parse::<i64>().map(|v| v as u64))
        .map_err(|_| Error::Parse {
            file: path.display().to_string(),
            line: t.into(),
        })
}

fn write_nonzero(dir: &Path, file: &str, v: i64) -> Result<()> {
    if v == 0 {
        return Ok(());
    }
    write(dir, file, &v.to_string())
}

fn set_limit(dir: &Path, limit: i64) -> Result<()> {
    if limit == 0 {
        return Ok(());
    }
    let path = dir.join(LIMIT);
    match write_raw(&path, &limit.to_string()) {
        Ok(()) => Ok(()),
        Err(e) if errno(&e) == Some(libc::EBUSY) => {
            let get = |f: &str| -> String {
                read_opt(&dir.join(f))
                    .ok()
                    .flatten()
                    .map(|s| s.trim().to_string())
                    .unwrap_or_else(|| "?".into())
            };
            Err(Error::MemoryLimitTooLow {
                path,
                limit,
                usage: get("memory.usage_in_bytes"),
                peak: get("memory.max_usage_in_bytes"),
            })
        }
        Err(source) => Err(Error::Write {
            path,
            value: limit.to_string(),
            source,
        }),
    }
}

/// Fills empty cpuset.cpus / cpuset.mems from the parent, from the mount down to `dir`
/// (a new v1 cpuset cgroup starts empty and refuses tasks until they are set).
fn ensure_cpuset(mount: &Path, dir: &Path) -> Result<()> {
    let Ok(rel) = dir.strip_prefix(mount) else {
        return Ok(());
    };
    let mut parent = mount.to_path_buf();
    for comp in rel.components() {
        let child = parent.join(comp);
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let cur = read_opt(&child.join(file))?.unwrap_or_default();
            if cur.trim().is_empty() {
                let pv = read_opt(&parent.join(file))?.unwrap_or_default();
                if !pv.trim().is_empty() {
                    write(&child, file, pv.trim())?;
                }
            }
        }
        parent = child;
    }
    Ok(())
}

impl Backend for V1 {
    fn create(&self) -> Result<()> {
        for h in &self.hierarchies {
            mkdir_p(&h.dir)?;
            if h.controllers.iter().any(|c| c == "cpuset") {
                ensure_cpuset(&h.mount, &h.dir)?;
            }
        }
        if let Some(u) = &self.unified {
            mkdir_p(u)?;
        }
        Ok(())
    }

    fn apply(&self, r: &LinuxResources) -> Result<()> {
        if let Some(m) = r.memory() {
            self.set_memory(m)?;
        }
        if let Some(c) = r.cpu() {
            self.set_cpu(c)?;
        }
        if let Some(b) = r.block_io() {
            self.set_blkio(b)?;
        }
        self.set_other(r)
    }

    fn add_pid(&self, pid: i32) -> Result<()> {
        for dir in self.fs_paths() {
            write(&dir, "cgroup.procs", &pid.to_string())?;
        }
        Ok(())
    }

    fn pids(&self) -> Result<Vec<i32>> {
        let dir = ["pids", "freezer", "devices", "memory", "cpu"]
            .iter()
            .find_map(|c| self.dir(c))
            .map(Path::to_path_buf)
            .or_else(|| self.fs_paths().into_iter().next());
        match dir {
            Some(d) => sorted_pids(&d),
            None => Ok(Vec::new()),
        }
    }

    fn freeze(&self) -> Result<()> {
        let dir = self.need("freezer", "freeze")?;
        let deadline = Instant::now() + Duration::from_secs(2);
        for i in 0u64.. {
            if i % 25 == 0 {
                write(dir, "freezer.state", "FROZEN")?; // re-kick a stuck FREEZING now and then
            }
            let (path, state) = self.freezer_state()?;
            if state == "FROZEN" {
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = write(dir, "freezer.state", "THAWED");
                return Err(Error::FreezeTimeout {
                    path,
                    state: "FROZEN".into(),
                });
            }
            thread::sleep(Duration::from_millis(i.min(10)));
        }
        unreachable!()
    }

    fn thaw(&self) -> Result<()> {
        let dir = self.need("freezer", "thaw")?;
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            write(dir, "freezer.state", "THAWED")?;
            let (path, state) = self.freezer_state()?;
            if state == "THAWED" {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::FreezeTimeout {
                    path,
                    state: "THAWED".into(),
                });
            }
            thread::sleep(Duration::from_millis(1));
        }
    }

    fn is_frozen(&self) -> Result<bool> {
        Ok(self.freezer_state()?.1 == "FROZEN")
    }

    fn destroy(&self) -> Result<()> {
        for dir in self.fs_paths() {
            remove_tree(&dir)?;
        }
        Ok(())
    }

    fn fs_paths(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = self.hierarchies.iter().map(|h| h.dir.clone()).collect();
        v.extend(self.unified.clone());
        v
    }
}

#[cfg(test)]
pub(crate) mod tests;
