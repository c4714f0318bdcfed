//! Unified cgroup v2 backend. Translation follows runc's `libcontainer/cgroups/fs2`.

use std::io;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxResources};

use super::{
    devices_bpf, dir_in, hugepage_size, mkdir_p, read, read_opt, remove_tree, sorted_pids, write,
    write_raw, Backend, Error, Result,
};

pub(crate) struct V2 {
    pub root: PathBuf,
    pub path: String,
    pub dir: PathBuf,
}

/// cpu.shares (2..262144) -> cpu.weight (1..10000); 0 = unset.
pub(crate) fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    let s = shares.clamp(2, 262_144);
    1 + ((s - 2) * 9999) / 262_142
}

/// blkio.weight (10..1000) -> io.weight (1..10000); 0 = unset.
pub(crate) fn blkio_weight_to_io(w: u16) -> u64 {
    if w == 0 {
        return 0;
    }
    1 + (u64::from(w.clamp(10, 1000)) - 10) * 9999 / 990
}

/// OCI swap (memory+swap, v1 meaning) -> memory.swap.max (swap only); like runc's
/// ConvertMemorySwapToCgroupV2Value. 0 = unset, -1 = max.
pub(crate) fn swap_to_v2(swap: i64, limit: i64) -> Result<i64> {
    if limit == -1 && swap == 0 {
        return Ok(-1);
    }
    if swap == -1 || swap == 0 {
        return Ok(swap);
    }
    let bad = |reason: String| Error::InvalidValue {
        setting: "memory.swap".into(),
        value: swap.to_string(),
        reason,
    };
    if limit == 0 || limit == -1 {
        return Err(bad("a swap limit needs a memory limit".into()));
    }
    if limit < 0 {
        return Err(bad(format!("invalid memory limit {limit}")));
    }
    if swap < limit {
        return Err(bad(format!(
            "memory+swap limit must be >= the memory limit {limit}"
        )));
    }
    Ok(swap - limit)
}

/// runc's numToStr: 0 = unset, -1 = "max".
fn num(v: i64) -> Option<String> {
    match v {
        0 => None,
        -1 => Some("max".into()),
        v => Some(v.to_string()),
    }
}

fn words(s: Option<String>) -> Vec<String> {
    s.unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

fn unsupported(setting: &str, value: impl ToString, reason: &str) -> Error {
    Error::Unsupported {
        setting: setting.into(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// Enables every controller of `dir`/cgroup.controllers in its cgroup.subtree_control.
/// Controllers that cannot be enabled are left out; apply() names them if needed.
fn enable_controllers(dir: &Path) -> Result<()> {
    let avail = words(read_opt(&dir.join("cgroup.controllers"))?);
    let enabled = words(read_opt(&dir.join("cgroup.subtree_control"))?);
    let missing: Vec<&String> = avail.iter().filter(|c| !enabled.contains(c)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let file = dir.join("cgroup.subtree_control");
    let all: Vec<String> = missing.iter().map(|c| format!("+{c}")).collect();
    if write_raw(&file, &all.join(" ")).is_err() {
        for c in missing {
            let _ = write_raw(&file, &format!("+{c}"));
        }
    }
    Ok(())
}

impl V2 {
    pub(crate) fn new(root: PathBuf, path: &str) -> V2 {
        V2 {
            dir: dir_in(&root, path),
            path: path.into(),
            root,
        }
    }

    /// Checks that `controller` is enabled for the container's cgroup.
    fn need(&self, avail: &[String], controller: &str, setting: &str) -> Result<&Path> {
        if avail.iter().any(|c| c == controller) {
            Ok(&self.dir)
        } else {
            Err(Error::ControllerNotAvailable {
                controller: controller.into(),
                path: self.dir.clone(),
                setting: setting.into(),
            })
        }
    }

    fn set_memory(&self, avail: &[String], m: &LinuxMemory) -> Result<()> {
        if m.disable_oom_killer() == Some(true) {
            return Err(unsupported(
                "memory.disableOOMKiller",
                true,
                "cgroup v2 cannot disable the OOM killer",
            ));
        }
        if let Some(s) = m.swappiness().filter(|s| *s != u64::MAX) {
            return Err(unsupported(
                "memory.swappiness",
                s,
                "cgroup v2 has no per-cgroup swappiness",
            ));
        }
        let limit = m.limit().unwrap_or(0);
        let swap = m.swap().unwrap_or(0);
        let reservation = m.reservation().unwrap_or(0);
        if limit == 0 && swap == 0 && reservation == 0 {
            return Ok(());
        }
        let dir = self.need(avail, "memory", "memory")?;
        let sw = swap_to_v2(swap, limit)?;
        let mut sw_str = num(sw);
        if sw_str.is_none() && sw == 0 && swap > 0 {
            sw_str = Some("0".into()); // swap == limit: no swap at all
        }
        if let Some(v) = sw_str {
            let path = dir.join("memory.swap.max");
            match write_raw(&path, &v) {
                Ok(()) => {}
                // No swap accounting: "max" and "0" are what we have anyway.
                Err(e) if e.kind() == io::ErrorKind::NotFound && (v == "max" || v == "0") => {}
                Err(source) => {
                    return Err(Error::Write {
                        path,
                        value: v,
                        source,
                    })
                }
            }
        }
        if let Some(v) = num(limit) {
            write(dir, "memory.max", &v)?;
        }
        if let Some(v) = num(reservation) {
            write(dir, "memory.low", &v)?;
        }
        Ok(())
    }

    fn set_cpu(&self, avail: &[String], c: &LinuxCpu) -> Result<()> {
        if c.realtime_runtime().unwrap_or(0) != 0 || c.realtime_period().unwrap_or(0) != 0 {
            let v = format!("{:?}/{:?}", c.realtime_runtime(), c.realtime_period());
            return Err(unsupported(
                "cpu.realtimeRuntime/realtimePeriod",
                v,
                "cgroup v2 has no realtime group scheduling",
            ));
        }
        let weight = shares_to_weight(c.shares().unwrap_or(0));
        if weight != 0 {
            write(
                self.need(avail, "cpu", "cpu.shares")?,
                "cpu.weight",
                &weight.to_string(),
            )?;
        }
        let quota = c.quota().unwrap_or(0);
        let period = c.period().unwrap_or(0);
        if quota != 0 || period != 0 {
            let mut v = if quota > 0 {
                quota.to_string()
            } else {
                "max".into()
            };
            if period != 0 {
                v += &format!(" {period}");
            }
            write(self.need(avail, "cpu", "cpu.quota")?, "cpu.max", &v)?;
        }
        if let Some(b) = c.burst() {
            write(
                self.need(avail, "cpu", "cpu.burst")?,
                "cpu.max.burst",
                &b.to_string(),
            )?;
        }
        if let Some(i) = c.idle() {
            write(
                self.need(avail, "cpu", "cpu.idle")?,
                "cpu.idle",
                &i.to_string(),
            )?;
        }
        for (value, file) in [(c.cpus(), "cpuset.cpus"), (c.mems(), "cpuset.mems")] {
            if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
                write(self.need(avail, "cpuset", file)?, file, v)?;
            }
        }
        Ok(())
    }

    fn set_io(&self, avail: &[String], b: &LinuxBlockIo) -> Result<()> {
        let bfq = self.dir.join("io.bfq.weight").exists();
        if let Some(w) = b.weight().filter(|w| *w != 0) {
            let dir = self.need(avail, "io", "blockIO.weight")?;
            if bfq {
                write(dir, "io.bfq.weight", &w.to_string())?;
            } else {
                write(dir, "io.weight", &blkio_weight_to_io(w).to_string())?;
            }
        }
        if let Some(w) = b.leaf_weight().filter(|w| *w != 0) {
            return Err(unsupported(
                "blockIO.leafWeight",
                w,
                "cgroup v2 has no leaf weight",
            ));
        }
        for wd in b.weight_device().iter().flatten() {
            if let Some(w) = wd.weight() {
                let dir = self.need(avail, "io", "blockIO.weightDevice")?;
                let (file, w) = if bfq {
                    ("io.bfq.weight", u64::from(w))
                } else {
                    ("io.weight", blkio_weight_to_io(w))
                };
                write(dir, file, &format!("{}:{} {}", wd.major(), wd.minor(), w))?;
            }
        }
        let throttles = [
            (b.throttle_read_bps_device(), "rbps"),
            (b.throttle_write_bps_device(), "wbps"),
            (b.throttle_read_iops_device(), "riops"),
            (b.throttle_write_iops_device(), "wiops"),
        ];
        for (list, key) in throttles {
            for td in list.iter().flatten() {
                let dir = self.need(avail, "io", "blockIO.throttle")?;
                write(
                    dir,
                    "io.max",
                    &format!("{}:{} {}={}", td.major(), td.minor(), key, td.rate()),
                )?;
            }
        }
        Ok(())
    }

    fn set_other(&self, avail: &[String], r: &LinuxResources) -> Result<()> {
        if let Some(p) = r.pids() {
            let v = if p.limit() > 0 {
                p.limit().to_string()
            } else {
                "max".into()
            };
            write(self.need(avail, "pids", "pids.limit")?, "pids.max", &v)?;
        }
        if let Some(rules) = r.devices() {
            devices_bpf::apply(&self.dir, rules)?;
        }
        for h in r.hugepage_limits().iter().flatten() {
            let size = hugepage_size(h.page_size())?;
            let dir = self.need(avail, "hugetlb", "hugepageLimits")?;
            write(dir, &format!("hugetlb.{size}.max"), &h.limit().to_string())?;
            let rsvd = format!("hugetlb.{size}.rsvd.max");
            if dir.join(&rsvd).exists() {
                write(dir, &rsvd, &h.limit().to_string())?;
            }
        }
        if let Some(net) = r.network() {
            if let Some(id) = net.class_id() {
                return Err(unsupported(
                    "network.classID",
                    id,
                    "cgroup v2 has no net_cls controller",
                ));
            }
            if net.priorities().as_ref().is_some_and(|p| !p.is_empty()) {
                return Err(unsupported(
                    "network.priorities",
                    "(set)",
                    "cgroup v2 has no net_prio controller",
                ));
            }
        }
        for (dev, l) in r.rdma().iter().flatten() {
            let v = super::rdma_limit(dev, l);
            write(self.need(avail, "rdma", "rdma")?, "rdma.max", &v)?;
        }
        // linux.resources.unified: raw cgroup v2 files, applied last (they win).
        let mut unified: Vec<_> = r.unified().iter().flatten().collect();
        unified.sort();
        for (key, value) in unified {
            let valid =
                !key.is_empty() && !key.contains('/') && !key.starts_with('.') && key.contains('.');
            if !valid {
                return Err(Error::InvalidValue {
                    setting: "unified".into(),
                    value: key.clone(),
                    reason: "expected a cgroup v2 file name like memory.high".into(),
                });
            }
            let controller = key.split('.').next().unwrap_or_default();
            if controller != "cgroup" {
                self.need(avail, controller, &format!("unified.{key}"))?;
            }
            write(&self.dir, key, value)?;
        }
        Ok(())
    }

    fn wait_frozen(&self, want: bool) -> Result<bool> {
        let path = self.dir.join("cgroup.events");
        let line = if want { "frozen 1" } else { "frozen 0" };
        let deadline = Instant::now() + Duration::from_secs(2);
        for i in 0u64.. {
            if read(&path)?.lines().any(|l| l.trim() == line) {
                return Ok(true);
            }
            if Instant::now() > deadline {
                return Ok(false);
            }
            thread::sleep(Duration::from_millis(i.min(10)));
        }
        unreachable!()
    }

    fn set_freeze(&self, frozen: bool) -> Result<()> {
        let path = self.dir.join("cgroup.freeze");
        let v = if frozen { "1" } else { "0" };
        if let Err(source) = write_raw(&path, v) {
            if source.kind() == io::ErrorKind::NotFound && self.dir.is_dir() {
                return Err(unsupported(
                    "freeze",
                    v,
                    "cgroup.freeze is missing (kernel older than 5.2)",
                ));
            }
            return Err(Error::Write {
                path,
                value: v.into(),
                source,
            });
        }
        if !self.wait_frozen(frozen)? {
            if frozen {
                let _ = write(&self.dir, "cgroup.freeze", "0");
            }
            return Err(Error::FreezeTimeout {
                path: self.dir.join("cgroup.events"),
                state: if frozen { "frozen 1" } else { "frozen 0" }.into(),
            });
        }
        Ok(())
    }
}

impl Backend for V2 {
    fn create(&self) -> Result<()> {
        let mut cur = self.root.clone();
        for comp in self.path.split('/').filter(|c| !c.is_empty()) {
            enable_controllers(&cur)?;
            cur.push(comp);
            mkdir_p(&cur)?;
        }
        Ok(())
    }

    fn apply(&self, r: &LinuxResources) -> Result<()> {
        let avail = words(read_opt(&self.dir.join("cgroup.controllers"))?);
        if let Some(m) = r.memory() {
            self.set_memory(&avail, m)?;
        }
        if let Some(c) = r.cpu() {
            self.set_cpu(&avail, c)?;
        }
        if let Some(b) = r.block_io() {
            self.set_io(&avail, b)?;
        }
        self.set_other(&avail, r)
    }

    fn add_pid(&self, pid: i32) -> Result<()> {
        write(&self.dir, "cgroup.procs", &pid.to_string())
    }

    fn pids(&self) -> Result<Vec<i32>> {
        sorted_pids(&self.dir)
    }

    fn freeze(&self) -> Result<()> {
        self.set_freeze(true)
    }

    fn thaw(&self) -> Result<()> {
        self.set_freeze(false)
    }

    fn is_frozen(&self) -> Result<bool> {
        if read(&self.dir.join("cgroup.freeze"))?.trim() != "1" {
            return Ok(false);
        }
        let events = read_opt(&self.dir.join("cgroup.events"))?.unwrap_or_default();
        Ok(events.lines().any(|l| l.trim() == "frozen 1"))
    }

    fn destroy(&self) -> Result<()> {
        remove_tree(&self.dir)
    }

    fn fs_paths(&self) -> Vec<PathBuf> {
        vec![self.dir.clone()]
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::cell::RefCell;
    use std::collections::BTreeSet;
    use std::fs;
    use std::io;
    use std::path::{Path, PathBuf};
    use std::rc::Rc;

    use super::super::devices_bpf::tests::run;
    use super::super::devices_bpf::Insn;
    use super::super::tests::{apply, apply_err, Fixture};
    use super::super::{fake, Layout, Manager};
    use super::*;

    /// A fake cgroup2 kernel: cgroup.controllers follows the parent's subtree_control,
    /// cgroup.freeze updates cgroup.events, device programs are recorded.
    pub(crate) struct FakeV2 {
        pub no_swap: bool,
        pub progs: RefCell<Vec<(PathBuf, Vec<Insn>)>>,
    }

    fn put(dir: &Path, name: &str, content: &str) {
        fs::write(dir.join(name), content).unwrap();
    }

    impl FakeV2 {
        pub(crate) fn populate(&self, dir: &Path, controllers: &str) {
            for (f, v) in [
                ("cgroup.controllers", controllers),
                ("cgroup.subtree_control", ""),
                ("cgroup.procs", ""),
                ("cgroup.events", "populated 0\nfrozen 0\n"),
                ("cgroup.freeze", "0"),
                ("cgroup.type", "domain"),
            ] {
                put(dir, f, v);
            }
            for c in controllers.split_whitespace() {
                let files: &[(&str, &str)] = match c {
                    "memory" => &[
                        ("memory.max", "max"),
                        ("memory.low", "0"),
                        ("memory.high", "max"),
                    ],
                    "cpu" => &[
                        ("cpu.weight", "100"),
                        ("cpu.max", "max 100000"),
                        ("cpu.max.burst", "0"),
                        ("cpu.idle", "0"),
                    ],
                    "cpuset" => &[("cpuset.cpus", ""), ("cpuset.mems", "")],
                    "pids" => &[("pids.max", "max")],
                    "io" => &[("io.weight", "default 100"), ("io.max", "")],
                    "hugetlb" => &[("hugetlb.2MB.max", "max")],
                    _ => &[],
                };
                for (f, v) in files {
                    put(dir, f, v);
                }
                if c == "memory" && !self.no_swap {
                    put(dir, "memory.swap.max", "max");
                }
            }
        }
    }

    impl fake::Kernel for FakeV2 {
        fn mkdir(&self, dir: &Path) {
            let ctrls =
                fs::read_to_string(dir.parent().unwrap().join("cgroup.subtree_control")).unwrap();
            self.populate(dir, ctrls.trim());
        }

        fn write(&self, file: &Path, value: &str) -> Option<io::Result<()>> {
            if !file.exists() {
                return Some(Err(io::Error::from_raw_os_error(libc::ENOENT)));
            }
            let dir = file.parent()?;
            match file.file_name()?.to_str()? {
                "cgroup.procs" => {
                    let old = fs::read_to_string(file).unwrap();
                    Some(fs::write(file, format!("{old}{value}\n")))
                }
                "cgroup.subtree_control" => {
                    let avail = fs::read_to_string(dir.join("cgroup.controllers")).unwrap();
                    let old = fs::read_to_string(file).unwrap();
                    let mut set: BTreeSet<&str> = old.split_whitespace().collect();
                    for tok in value.split_whitespace() {
                        let (op, c) = tok.split_at(1);
                        if !avail.split_whitespace().any(|a| a == c) {
                            return Some(Err(io::Error::from_raw_os_error(libc::ENOENT)));
                        }
                        if op == "+" {
                            set.insert(c);
                        } else {
                            set.remove(c);
                        }
                    }
                    Some(fs::write(
                        file,
                        set.into_iter().collect::<Vec<_>>().join(" "),
                    ))
                }
                "cgroup.freeze" => {
                    fs::write(file, value).unwrap();
                    Some(fs::write(
                        dir.join("cgroup.events"),
                        format!("populated 1\nfrozen {value}\n"),
                    ))
                }
                _ => None,
            }
        }

        fn bpf(&self, dir: &Path, prog: &[Insn]) -> bool {
            self.progs
                .borrow_mut()
                .push((dir.to_path_buf(), prog.to_vec()));
            true
        }
    }

    pub(crate) fn fake_tree(tmp: &Path, controllers: &str, no_swap: bool) -> (Layout, Rc<FakeV2>) {
        let root = tmp.join("cgroup2");
        fs::create_dir_all(&root).unwrap();
        let k = Rc::new(FakeV2 {
            no_swap,
            progs: RefCell::new(Vec::new()),
        });
        k.populate(&root, controllers);
        (Layout::V2 { root }, k)
    }

    const ALL: &str = "cpuset cpu io memory hugetlb pids rdma";

    fn setup(tmp: &Path, ctrls: &str, no_swap: bool) -> (Manager, Rc<FakeV2>, fake::Installed) {
        let (layout, k) = fake_tree(tmp, ctrls, no_swap);
        let guard = fake::install(k.clone());
        let m = Manager::with_layout(layout, Some("/a/b/c"), "c", "0::/\n").unwrap();
        m.create().unwrap();
        (m, k, guard)
    }

    #[test]
    fn conversions_match_runc() {
        let weights = [0, 1, 2, 1024, 262_144, 1_000_000].map(shares_to_weight);
        assert_eq!(weights, [0, 1, 1, 39, 10000, 10000]);
        let io = [0, 10, 500, 1000].map(blkio_weight_to_io);
        assert_eq!(io, [0, 1, 4950, 10000]);
        let ok = [
            (0, -1, -1),
            (-1, 100, -1),
            (0, 100, 0),
            (300, 100, 200),
            (100, 100, 0),
        ];
        for (swap, limit, want) in ok {
            assert_eq!(swap_to_v2(swap, limit).unwrap(), want);
        }
        for (swap, limit) in [(50, 100), (50, 0), (50, -1)] {
            assert!(swap_to_v2(swap, limit).is_err());
        }
    }

    #[test]
    fn create_enables_controllers_in_ancestors_only() {
        let tmp = tempfile::tempdir().unwrap();
        let (m, _k, _g) = setup(tmp.path(), ALL, false);
        let r = tmp.path().join("cgroup2");
        let sc = |p: &str| fs::read_to_string(r.join(p).join("cgroup.subtree_control")).unwrap();
        assert_eq!(sc(""), "cpu cpuset hugetlb io memory pids rdma");
        assert_eq!(sc("a/b"), "cpu cpuset hugetlb io memory pids rdma");
        assert_eq!(sc("a/b/c"), "");
        assert_eq!(m.v2_dir(), Some(r.join("a/b/c")));
        m.create().unwrap(); // idempotent
    }

    #[test]
    fn memory_cpu_io_translation() {
        let tmp = tempfile::tempdir().unwrap();
        let (m, _k, _g) = setup(tmp.path(), ALL, false);
        let d = m.v2_dir().unwrap();
        let f = |n: &str| fs::read_to_string(d.join(n)).unwrap();
        let r = r#"{"memory":{"limit":1000,"swap":1000,"reservation":500},
            "cpu":{"period":50000,"burst":7,"idle":1},
            "blockIO":{"weight":500,"throttleWriteIOPSDevice":[{"major":8,"minor":16,"rate":99}]},
            "unified":{"memory.high":"4000","cgroup.type":"domain"}}"#;
        apply(&m, r).unwrap();
        let want = [
            ("memory.max", "1000"),
            ("memory.swap.max", "0"),
            ("memory.low", "500"),
            ("cpu.max", "max 50000"),
            ("cpu.max.burst", "7"),
            ("cpu.idle", "1"),
            ("io.weight", "4950"),
            ("io.max", "8:16 wiops=99"),
            ("memory.high", "4000"),
        ];
        for (file, v) in want {
            assert_eq!(f(file), v, "{file}");
        }
        apply(
            &m,
            r#"{"memory":{"limit":-1},"cpu":{"quota":-5,"period":0}}"#,
        )
        .unwrap();
        assert_eq!(
            [f("memory.max"), f("memory.swap.max"), f("cpu.max")],
            ["max"; 3]
        );
        apply_err(
            &m,
            r#"{"memory":{"disableOOMKiller":true}}"#,
            "disableOOMKiller",
        );
        apply_err(&m, r#"{"memory":{"swappiness":10}}"#, "swappiness");
        apply_err(&m, r#"{"cpu":{"realtimeRuntime":1000}}"#, "realtime");
        apply_err(&m, r#"{"network":{"classID":3}}"#, "classID");
        apply_err(&m, r#"{"blockIO":{"leafWeight":30}}"#, "leafWeight");
        apply_err(&m, r#"{"unified":{"../x.y":"1"}}"#, "unified");
        apply_err(
            &m,
            r#"{"unified":{"misc.max":"1"}}"#,
            "\"misc\" is not enabled",
        );
        // -1 swappiness (u64::MAX) and disableOOMKiller=false are no-ops
        let noop = r#"{"memory":{"swappiness":18446744073709551615,"disableOOMKiller":false}}"#;
        apply(&m, noop).unwrap();
    }

    #[test]
    fn swap_without_swap_accounting() {
        let tmp = tempfile::tempdir().unwrap();
        let (m, _k, _g) = setup(tmp.path(), ALL, true);
        apply(&m, r#"{"memory":{"limit":1000,"swap":1000}}"#).unwrap();
        apply(&m, r#"{"memory":{"limit":1000,"swap":-1}}"#).unwrap();
        apply_err(
            &m,
            r#"{"memory":{"limit":1000,"swap":3000}}"#,
            "memory.swap.max",
        );
    }

    #[test]
    fn missing_controller_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let (m, _k, _g) = setup(tmp.path(), "cpu pids", false);
        let e = apply(&m, r#"{"memory":{"limit":1000}}"#).unwrap_err();
        let named = matches!(&e, Error::ControllerNotAvailable { controller, .. } if controller == "memory");
        assert!(named, "{e}");
        apply(&m, r#"{"pids":{"limit":0}}"#).unwrap();
        let pids_max = fs::read_to_string(m.v2_dir().unwrap().join("pids.max")).unwrap();
        assert_eq!(pids_max, "max");
    }

    #[test]
    fn relative_path_under_own_cgroup() {
        let tmp = tempfile::tempdir().unwrap();
        let (layout, _k) = fake_tree(tmp.path(), ALL, false);
        let m = Manager::with_layout(
            layout.clone(),
            Some("ctr"),
            "x",
            "0::/user.slice/s-1.scope\n",
        )
        .unwrap();
        assert_eq!(m.path(), "/user.slice/s-1.scope/ctr");
        let e = Manager::with_layout(layout, Some("ctr"), "x", "1:memory:/\n").unwrap_err();
        assert!(matches!(e, Error::OwnCgroupNotFound { .. }), "{e}");
    }

    pub(crate) struct V2Fixture {
        layout: Layout,
        kernel: Rc<FakeV2>,
    }

    impl Fixture for V2Fixture {
        fn new(tmp: &Path, skip: &[&str]) -> Self {
            let all = ["cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma"];
            let ctrls: Vec<&str> = all.into_iter().filter(|c| !skip.contains(c)).collect();
            let (layout, kernel) = fake_tree(tmp, &ctrls.join(" "), false);
            V2Fixture { layout, kernel }
        }
        fn kernel(&self) -> Rc<dyn fake::Kernel> {
            self.kernel.clone()
        }
        fn manager(&self, path: Option<&str>) -> Manager {
            Manager::with_layout(self.layout.clone(), path, "c1", "0::/\n").unwrap()
        }
        fn expected(&self, m: &Manager) -> Vec<(PathBuf, &'static str)> {
            let d = m.v2_dir().unwrap();
            [
                ("memory.max", "67108864"),
                ("memory.swap.max", "67108864"),
                ("memory.low", "33554432"),
                ("cpu.weight", "20"),
                ("cpu.max", "50000 100000"),
                ("cpuset.cpus", "0-1"),
                ("cpuset.mems", "0"),
                ("pids.max", "20"),
                ("io.weight", "1920"),
                ("hugetlb.2MB.max", "2097152"),
            ]
            .into_iter()
            .map(|(f, v)| (d.join(f), v))
            .collect()
        }
        fn device_allowed(&self, kind: char, major: u32, minor: u32, access: i32) -> bool {
            let progs = self.kernel.progs.borrow();
            let (_, prog) = progs.last().expect("a device program was attached");
            run(prog, if kind == 'b' { 1 } else { 2 }, major, minor, access) == 1
        }
    }
}
