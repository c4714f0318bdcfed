//! The fake v1/hybrid cgroupfs ([`V1Fixture`] for the shared conformance suite) and the
//! v1 backend's unit tests.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::super::devices_bpf::tests::{model, v1_line_rule};
use super::super::tests::{apply, apply_err, Fixture};
use super::super::{fake, Layout, Manager};

/// A fake v1 (or hybrid) kernel over per-hierarchy roots in a tempdir.
pub(crate) struct FakeV1 {
    /// hierarchy root -> controllers ("cgroup2" for the unified mount)
    pub roots: Vec<(PathBuf, Vec<String>)>,
    pub no_memsw: bool,
    /// writes to devices.allow / devices.deny, in order: "allow c 1:3 rwm"
    pub devices_log: RefCell<Vec<String>>,
}

fn put(dir: &Path, name: &str, content: &str) {
    fs::write(dir.join(name), content).unwrap();
}

fn bytes(s: &str) -> u64 {
    let t = s.trim();
    t.parse::<u64>()
        .unwrap_or(if t == "-1" { u64::MAX } else { 0 })
}

impl FakeV1 {
    fn controllers_of(&self, dir: &Path) -> Vec<String> {
        self.roots
            .iter()
            .find(|(r, _)| dir.starts_with(r))
            .map(|(_, c)| c.clone())
            .unwrap_or_default()
    }

    /// Creates what the kernel shows in a new cgroup directory.
    pub(crate) fn populate(&self, dir: &Path, root: bool) {
        let unlimited = "9223372036854771712";
        put(dir, "cgroup.procs", "");
        for c in self.controllers_of(dir) {
            // file=value pairs; U = unlimited
            let files = match c.as_str() {
                "memory" => {
                    "memory.limit_in_bytes=U memory.soft_limit_in_bytes=U \
                    memory.oom_control=0 memory.swappiness=60 memory.usage_in_bytes=4096 \
                    memory.max_usage_in_bytes=8192"
                }
                "cpu" => {
                    "cpu.shares=1024 cpu.cfs_quota_us=-1 cpu.cfs_period_us=100000 \
                    cpu.cfs_burst_us=0 cpu.idle=0"
                }
                "cpuset" if root => "cpuset.cpus=0-3 cpuset.mems=0",
                "cpuset" => "cpuset.cpus= cpuset.mems=",
                "pids" => "pids.max=max",
                "devices" => "devices.allow= devices.deny=",
                "freezer" => "freezer.state=THAWED",
                "blkio" => "blkio.bfq.weight=100 blkio.throttle.read_bps_device=",
                "hugetlb" => "hugetlb.2MB.limit_in_bytes=U",
                "cgroup2" => "cgroup.controllers= cgroup.subtree_control=",
                _ => "",
            };
            for (f, v) in files.split_whitespace().filter_map(|kv| kv.split_once('=')) {
                put(dir, f, if v == "U" { unlimited } else { v });
            }
            if c == "memory" && !self.no_memsw {
                put(dir, "memory.memsw.limit_in_bytes", unlimited);
            }
        }
    }
}

impl fake::Kernel for FakeV1 {
    fn mkdir(&self, dir: &Path) {
        self.populate(dir, false);
    }

    fn write(&self, file: &Path, value: &str) -> Option<io::Result<()>> {
        let name = file.file_name()?.to_str()?;
        let dir = file.parent()?;
        if !file.exists() {
            return Some(Err(io::Error::from_raw_os_error(libc::ENOENT)));
        }
        let einval = || Some(Err(io::Error::from_raw_os_error(libc::EINVAL)));
        match name {
            "cgroup.procs" => {
                let old = fs::read_to_string(file).unwrap();
                Some(fs::write(file, format!("{old}{value}\n")))
            }
            "devices.allow" | "devices.deny" => {
                let verb = &name[8..];
                self.devices_log
                    .borrow_mut()
                    .push(format!("{verb} {value}"));
                Some(Ok(()))
            }
            "cpu.shares" => {
                let v: u64 = value.parse().ok()?;
                Some(fs::write(file, v.clamp(2, 262144).to_string()))
            }
            "memory.limit_in_bytes" => {
                let memsw = dir.join("memory.memsw.limit_in_bytes");
                match fs::read_to_string(memsw) {
                    Ok(m) if bytes(value) > bytes(&m) => einval(),
                    _ => None,
                }
            }
            "memory.memsw.limit_in_bytes" => {
                let limit = fs::read_to_string(dir.join("memory.limit_in_bytes")).unwrap();
                if bytes(value) < bytes(&limit) {
                    einval()
                } else {
                    None
                }
            }
            _ => None,
        }
    }
}

pub(crate) const SELF_CGROUP: &str =
    "10:hugetlb:/\n9:name=systemd:/\n8:pids:/\n7:blkio:/\n6:freezer:/\n\
    5:devices:/\n4:memory:/process_api/xyz\n3:cpuset:/\n2:cpuacct:/\n1:cpu:/\n0::/\n";

/// A fake tree like this host's: separate cpu and cpuacct mounts, name=systemd, and
/// (hybrid) a cgroup2 mount without controllers.
pub(crate) fn fake_tree(
    tmp: &Path,
    hybrid: bool,
    no_memsw: bool,
    skip: &[&str],
) -> (Layout, Rc<FakeV1>) {
    let names = "blkio cpu cpuacct cpuset devices freezer hugetlb memory pids name=systemd";
    let mut controllers = BTreeMap::new();
    let mut roots = Vec::new();
    for n in names.split(' ').filter(|n| !skip.contains(n)) {
        let root = tmp.join(n.trim_start_matches("name="));
        fs::create_dir_all(&root).unwrap();
        controllers.insert(n.to_string(), root.clone());
        roots.push((root, vec![n.to_string()]));
    }
    let unified = tmp.join("unified");
    if hybrid {
        fs::create_dir_all(&unified).unwrap();
        roots.push((unified.clone(), vec!["cgroup2".into()]));
    }
    let k = Rc::new(FakeV1 {
        roots,
        no_memsw,
        devices_log: RefCell::new(Vec::new()),
    });
    for (root, _) in &k.roots {
        k.populate(root, true);
    }
    let layout = if hybrid {
        Layout::Hybrid {
            controllers,
            unified,
        }
    } else {
        Layout::V1 { controllers }
    };
    (layout, k)
}

fn setup(tmp: &Path, no_memsw: bool) -> (Manager, Rc<FakeV1>, fake::Installed) {
    let (layout, k) = fake_tree(tmp, true, no_memsw, &[]);
    let guard = fake::install(k.clone());
    let m = Manager::with_layout(layout, Some("/berth/t"), "t", SELF_CGROUP).unwrap();
    m.create().unwrap();
    (m, k, guard)
}

fn cat(dir: &Path, f: &str) -> String {
    fs::read_to_string(dir.join(f)).unwrap().trim().to_string()
}

#[test]
fn memory_and_swap_are_written_in_an_order_the_kernel_accepts() {
    let tmp = tempfile::tempdir().unwrap();
    let (m, _k, _g) = setup(tmp.path(), false);
    let d = tmp.path().join("memory/berth/t");
    apply(&m, r#"{"memory":{"limit":67108864,"swap":134217728}}"#).unwrap();
    assert_eq!(cat(&d, "memory.limit_in_bytes"), "67108864");
    assert_eq!(cat(&d, "memory.memsw.limit_in_bytes"), "134217728");
    // raising both needs swap first, lowering both needs the limit first
    apply(&m, r#"{"memory":{"limit":268435456,"swap":536870912}}"#).unwrap();
    assert_eq!(cat(&d, "memory.memsw.limit_in_bytes"), "536870912");
    apply(&m, r#"{"memory":{"limit":33554432,"swap":67108864}}"#).unwrap();
    assert_eq!(cat(&d, "memory.limit_in_bytes"), "33554432");
    // -1 with swap unset: both unlimited
    apply(&m, r#"{"memory":{"limit":-1}}"#).unwrap();
    assert_eq!(cat(&d, "memory.memsw.limit_in_bytes"), "-1");
    assert_eq!(cat(&d, "memory.limit_in_bytes"), "-1");
    apply_err(&m, r#"{"memory":{"limit":100,"swap":50}}"#, "memory.swap");
    apply_err(&m, r#"{"memory":{"swappiness":101}}"#, "swappiness");
    apply(&m, r#"{"memory":{"swappiness":18446744073709551615}}"#).unwrap();
    let r = r#"{"memory":{"reservation":1000,"disableOOMKiller":true,"swappiness":0}}"#;
    apply(&m, r).unwrap();
    assert_eq!(cat(&d, "memory.soft_limit_in_bytes"), "1000");
    assert_eq!(cat(&d, "memory.oom_control"), "1");
    assert_eq!(cat(&d, "memory.swappiness"), "0");
}

#[test]
fn without_swap_accounting_only_trivial_swap_values_pass() {
    let tmp = tempfile::tempdir().unwrap();
    let (m, _k, _g) = setup(tmp.path(), true);
    for ok in ["1000", "1000,\"swap\":-1", "1000,\"swap\":1000", "-1"] {
        apply(&m, &format!(r#"{{"memory":{{"limit":{ok}}}}}"#)).unwrap();
    }
    let bad = r#"{"memory":{"limit":1000,"swap":2000}}"#;
    apply_err(&m, bad, "memory.memsw.limit_in_bytes does not exist");
}

#[test]
fn cpu_cpuset_and_misc_files() {
    let tmp = tempfile::tempdir().unwrap();
    let (m, _k, _g) = setup(tmp.path(), false);
    // create() filled the new cpuset cgroups from their parents
    let cs = tmp.path().join("cpuset");
    assert_eq!(cat(&cs.join("berth"), "cpuset.cpus"), "0-3");
    assert_eq!(cat(&cs.join("berth/t"), "cpuset.mems"), "0");
    apply(
        &m,
        r#"{"cpu":{"quota":-1,"period":50000,"burst":10,"idle":1,"realtimePeriod":0},
            "blockIO":{"weight":300,"throttleReadBpsDevice":[{"major":8,"minor":0,"rate":1048576}]},
            "hugepageLimits":[{"pageSize":"2MB","limit":4194304}]}"#,
    )
    .unwrap();
    let f = |p: &str| cat(tmp.path(), p);
    assert_eq!(f("cpu/berth/t/cpu.cfs_quota_us"), "-1");
    assert_eq!(f("cpu/berth/t/cpu.cfs_period_us"), "50000");
    assert_eq!(f("cpu/berth/t/cpu.cfs_burst_us"), "10");
    assert_eq!(f("cpu/berth/t/cpu.idle"), "1");
    assert_eq!(f("blkio/berth/t/blkio.bfq.weight"), "300");
    assert_eq!(
        f("blkio/berth/t/blkio.throttle.read_bps_device"),
        "8:0 1048576"
    );
    assert_eq!(f("hugetlb/berth/t/hugetlb.2MB.limit_in_bytes"), "4194304");
    // cpu.shares that the kernel clamps is reported
    apply(&m, r#"{"cpu":{"shares":512}}"#).unwrap();
    apply_err(
        &m,
        r#"{"cpu":{"shares":1}}"#,
        "minimum allowed cpu-shares is 2",
    );
    apply_err(
        &m,
        r#"{"unified":{"memory.high":"1"}}"#,
        "unified.memory.high",
    );
    apply_err(
        &m,
        r#"{"network":{"classID":1}}"#,
        "\"net_cls\" is not mounted",
    );
    apply_err(
        &m,
        r#"{"hugepageLimits":[{"pageSize":"../x","limit":1}]}"#,
        "pageSize",
    );
}

#[test]
fn relative_paths_resolve_per_hierarchy() {
    let tmp = tempfile::tempdir().unwrap();
    let (layout, _k) = fake_tree(tmp.path(), true, false, &[]);
    let m = Manager::with_layout(layout, Some("ctr/x"), "t", SELF_CGROUP).unwrap();
    assert_eq!(m.path(), "/process_api/xyz/ctr/x");
    let paths = m.fs_paths();
    for p in [
        "memory/process_api/xyz/ctr/x",
        "pids/ctr/x",
        "unified/ctr/x",
        "systemd/ctr/x",
    ] {
        assert!(paths.contains(&tmp.path().join(p)), "{p}");
    }
    assert_eq!(m.v2_dir(), None);
}

pub(crate) struct V1Fixture<const HYBRID: bool> {
    layout: Layout,
    kernel: Rc<FakeV1>,
}

impl<const HYBRID: bool> Fixture for V1Fixture<HYBRID> {
    fn new(tmp: &Path, skip: &[&str]) -> Self {
        let (layout, kernel) = fake_tree(tmp, HYBRID, false, skip);
        V1Fixture { layout, kernel }
    }
    fn kernel(&self) -> Rc<dyn fake::Kernel> {
        self.kernel.clone()
    }
    fn manager(&self, path: Option<&str>) -> Manager {
        Manager::with_layout(self.layout.clone(), path, "c1", SELF_CGROUP).unwrap()
    }
    fn expected(&self, m: &Manager) -> Vec<(PathBuf, &'static str)> {
        let d = |ctrl: &str, file: &str| {
            let dir = m
                .fs_paths()
                .into_iter()
                .find(|p| p.iter().any(|c| c == ctrl))
                .unwrap();
            dir.join(file)
        };
        vec![
            (d("memory", "memory.limit_in_bytes"), "67108864"),
            (d("memory", "memory.memsw.limit_in_bytes"), "134217728"),
            (d("memory", "memory.soft_limit_in_bytes"), "33554432"),
            (d("cpu", "cpu.shares"), "512"),
            (d("cpu", "cpu.cfs_quota_us"), "50000"),
            (d("cpu", "cpu.cfs_period_us"), "100000"),
            (d("cpuset", "cpuset.cpus"), "0-1"),
            (d("cpuset", "cpuset.mems"), "0"),
            (d("pids", "pids.max"), "20"),
            (d("blkio", "blkio.bfq.weight"), "200"),
            (d("hugetlb", "hugetlb.2MB.limit_in_bytes"), "2097152"),
        ]
    }
    fn device_allowed(&self, kind: char, major: u32, minor: u32, access: i32) -> bool {
        // Replay the devices.allow/deny writes through an independent model.
        let log = self.kernel.devices_log.borrow();
        assert_eq!(log[0], "deny a");
        let rules: Vec<_> = log.iter().map(|l| v1_line_rule(l)).collect();
        model(
            &rules,
            if kind == 'b' { 1 } else { 2 },
            major,
            minor,
            access,
        )
    }
}
