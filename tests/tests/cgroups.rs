//! cgroup resources on this v1/hybrid host: the values written to the host's
//! /sys/fs/cgroup/<controller>/<cgroupsPath>/ files, their effect inside the
//! container, cgroupsPath forms, and removal on delete. (Pure v2 is covered
//! under qemu elsewhere.)

use berth_integration::{
    call, path_str as p, pid_alive, share, started, unique_id, wait_until, Bundle, Runtime, CG,
};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

// ---- helpers (each test file is its own crate; shared ones are in berth_integration) ----

fn resources(b: &mut Bundle, r: Value) {
    b.edit(|c| c["linux"]["resources"] = r);
}

/// Unlike `berth_integration::read_trim`, panics if `path` is unreadable.
fn read_trim(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .trim()
        .to_string()
}

/// The v1 controllers every container gets a cgroup in on this host.
const V1: &[&str] = &[
    "blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "memory", "pids",
];

/// The dir of a container with the default cgroupsPath (/berth/<id>).
fn dir(ctrl: &str, id: &str) -> PathBuf {
    Path::new(CG).join(ctrl).join("berth").join(id)
}

/// hierarchy name (as in /proc/<pid>/cgroup: "memory", "" for cgroup2) -> path
fn proc_cgroups(pid: i32) -> Vec<(String, String)> {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut f = l.splitn(3, ':');
            f.next();
            (f.next().unwrap().to_string(), f.next().unwrap().to_string())
        })
        .collect()
}

fn path_in(pid: i32, ctrl: &str) -> String {
    proc_cgroups(pid)
        .into_iter()
        .find(|(c, _)| c.split(',').any(|x| x == ctrl) || (ctrl.is_empty() && c.is_empty()))
        .unwrap_or_else(|| panic!("no {ctrl:?} line for {pid}"))
        .1
}

fn mount_of(ctrl: &str) -> PathBuf {
    Path::new(CG).join(if ctrl.is_empty() { "unified" } else { ctrl })
}

/// Host dirs of the container's cgroup, every v1 controller plus cgroup2.
fn dirs_for(paths: &[(String, String)]) -> Vec<PathBuf> {
    paths
        .iter()
        .map(|(c, p)| mount_of(c).join(p.trim_start_matches('/')))
        .collect()
}

fn assert_gone(dirs: &[PathBuf]) {
    for d in dirs {
        assert!(!d.exists(), "cgroup dir left behind: {}", d.display());
    }
}

/// Poll a file until it parses as a number.
fn read_num(path: &Path) -> u64 {
    read_trim(path)
        .parse()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

// ---- memory ----

#[test]
fn memory_limit_reservation_swap() {
    const MIB: u64 = 1024 * 1024;
    let mut b = Bundle::new(&["sleep", "1000"]);
    resources(
        &mut b,
        json!({"memory": {"limit": 64 * MIB, "reservation": 32 * MIB, "swap": 96 * MIB, "swappiness": 10}}),
    );
    b.edit(|c| {
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
            "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}))
    });
    let rt = Runtime::new();
    let id = unique_id("mem");
    let pid = started(&rt, &b, &id);
    let d = dir("memory", &id);
    assert_eq!(read_num(&d.join("memory.limit_in_bytes")), 64 * MIB);
    assert_eq!(read_num(&d.join("memory.soft_limit_in_bytes")), 32 * MIB);
    assert_eq!(read_num(&d.join("memory.memsw.limit_in_bytes")), 96 * MIB);
    assert_eq!(read_num(&d.join("memory.swappiness")), 10);
    assert_eq!(path_in(pid, "memory"), format!("/berth/{id}"));
    // The container sees its own cgroup at /sys/fs/cgroup/memory.
    let r = call(
        &rt,
        &[
            "exec",
            &id,
            "cat",
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
        ],
    );
    r.ok("exec cat limit");
    assert_eq!(r.out.trim(), (64 * MIB).to_string());
    let dirs = dirs_for(
        &proc_cgroups(pid)
            .into_iter()
            .filter(|(_, p)| p.ends_with(&id))
            .collect::<Vec<_>>(),
    );
    call(&rt, &["delete", "--force", &id]).ok("delete");
    assert_gone(&dirs);
}

#[test]
fn memory_limit_oom_kills_the_allocator() {
    const MIB: u64 = 1024 * 1024;
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "dd if=/dev/zero of=/dev/null bs=4M count=1 2>/dev/null; echo small=$?; \
         dd if=/dev/zero of=/dev/null bs=96M count=1 2>/dev/null; echo big=$?",
    ]);
    resources(
        &mut b,
        json!({"memory": {"limit": 32 * MIB, "swap": 32 * MIB}}),
    );
    let rt = Runtime::new();
    let id = unique_id("oom");
    let r = call(&rt, &["run", "--keep", "--bundle", p(b.dir()), &id]);
    assert_eq!(r.code, 0, "{}", r.err);
    assert_eq!(
        r.out, "small=0\nbig=137\n",
        "the 96M allocation must be OOM-killed: {}",
        r.err
    );
    let d = dir("memory", &id);
    let oom = read_trim(&d.join("memory.oom_control"));
    let kills: u64 = oom
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .expect("oom_kill line")
        .parse()
        .unwrap();
    assert!(kills >= 1, "{oom}");
    assert!(
        read_num(&d.join("memory.max_usage_in_bytes")) > 28 * MIB,
        "usage never reached the limit"
    );
    call(&rt, &["delete", &id]).ok("delete");
    assert!(!d.exists());
}

// ---- cpu / cpuset ----

#[test]
fn cpu_shares_quota_period_cpus_mems() {
    let mut b = Bundle::new(&["sh", "-c", "touch /shared/ready; while :; do :; done"]);
    let sh = share(&mut b);
    resources(
        &mut b,
        json!({"cpu": {"shares": 512, "quota": 20000, "period": 100000, "cpus": "0", "mems": "0"}}),
    );
    let rt = Runtime::new();
    let id = unique_id("cpu");
    let pid = started(&rt, &b, &id);
    let cpu = dir("cpu", &id);
    assert_eq!(read_num(&cpu.join("cpu.shares")), 512);
    assert_eq!(read_trim(&cpu.join("cpu.cfs_quota_us")), "20000");
    assert_eq!(read_num(&cpu.join("cpu.cfs_period_us")), 100000);
    let cs = dir("cpuset", &id);
    assert_eq!(read_trim(&cs.join("cpuset.cpus")), "0");
    assert_eq!(read_trim(&cs.join("cpuset.mems")), "0");
    // Inside: one allowed CPU.
    let r = call(
        &rt,
        &[
            "exec",
            &id,
            "sh",
            "-c",
            "grep Cpus_allowed_list /proc/self/status; nproc",
        ],
    );
    r.ok("exec");
    assert_eq!(r.out, "Cpus_allowed_list:\t0\n1\n");
    // The busy loop is throttled to ~20% of a CPU.
    assert!(wait_until(5, || sh.path().join("ready").exists()));
    let acct = dir("cpuacct", &id).join("cpuacct.usage");
    let u0 = read_num(&acct);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_millis(600));
    let used = read_num(&acct) - u0;
    let wall = t0.elapsed().as_nanos() as u64;
    assert!(
        used < wall * 45 / 100,
        "quota not enforced: used {used} ns of {wall} ns"
    );
    assert!(used > wall / 20, "the loop did not run at all? {used} ns");
    let stat = read_trim(&cpu.join("cpu.stat"));
    let throttled: u64 = stat
        .lines()
        .find_map(|l| l.strip_prefix("nr_throttled "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(throttled > 0, "{stat}");
    assert!(pid_alive(pid));
    call(&rt, &["delete", "--force", &id]).ok("delete");
    assert!(!cpu.exists() && !cs.exists());
}

// ---- pids ----

#[test]
fn pids_limit_stops_forks() {
    let mut b = Bundle::new(&["sleep", "1000"]);
    let sh = share(&mut b);
    resources(&mut b, json!({"pids": {"limit": 8}}));
    let rt = Runtime::new();
    let id = unique_id("pids");
    let pid = started(&rt, &b, &id);
    let d = dir("pids", &id);
    assert_eq!(read_trim(&d.join("pids.max")), "8");
    assert_eq!(read_trim(&d.join("pids.events")), "max 0");
    // init + this sh + 6 sleeps = 8: the 7th fork fails (and busybox sh gives up).
    let r = call(
        &rt,
        &[
            "exec",
            &id,
            "sh",
            "-c",
            "i=0; while [ $i -lt 20 ]; do sleep 100 & i=$((i+1)); echo $i > /shared/n; done",
        ],
    );
    assert_ne!(r.code, 0, "forking 20 times under pids.max=8 succeeded");
    assert!(
        r.err.contains("fork"),
        "sh did not report the failed fork: {}",
        r.err
    );
    assert_eq!(read_trim(&sh.path().join("n")), "6", "forks that succeeded");
    assert_eq!(read_num(&d.join("pids.current")), 7, "init + 6 sleeps");
    assert_ne!(read_trim(&d.join("pids.events")), "max 0");
    assert!(pid_alive(pid));
    call(&rt, &["delete", "--force", &id]).ok("delete");
    assert!(!d.exists());
}

// ---- devices ----

/// A block device node for loop0 (b 7:0) in the rootfs: not one of the
/// default devices the runtime always allows (like runc's AllowedDevices, the
/// runtime appends rules for /dev/null, /dev/zero, ... after the spec's rules,
/// so those cannot be used to see a deny rule work).
fn add_loop0_node(b: &Bundle) {
    let node = b.rootfs().join("loop0");
    nix::sys::stat::mknod(
        &node,
        nix::sys::stat::SFlag::S_IFBLK,
        nix::sys::stat::Mode::from_bits_truncate(0o600),
        nix::sys::stat::makedev(7, 0),
    )
    .expect("mknod loop0 in the rootfs");
}

const DEV_SCRIPT: &str = "echo x > /dev/null && echo null-ok; \
    if head -c 1 /loop0 > /dev/null 2>/tmp/err; then echo loop-open; \
    elif grep -q 'not permitted' /tmp/err; then echo loop-eperm; else cat /tmp/err; fi";

#[test]
fn devices_deny_all_allow_null() {
    let mut b = Bundle::new(&["sh", "-c", DEV_SCRIPT]);
    add_loop0_node(&b);
    resources(
        &mut b,
        json!({"devices": [
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}
        ]}),
    );
    let rt = Runtime::new();
    let id = unique_id("dev");
    let r = call(&rt, &["run", "--keep", "--bundle", p(b.dir()), &id]);
    assert_eq!(r.code, 0, "{}", r.err);
    assert_eq!(r.out, "null-ok\nloop-eperm\n", "stderr: {}", r.err);
    let d = dir("devices", &id);
    let list = read_trim(&d.join("devices.list"));
    let lines: Vec<&str> = list.lines().collect();
    assert!(lines.contains(&"c 1:3 rwm"), "{list}");
    assert!(
        !lines.iter().any(|l| l.starts_with('a')),
        "deny-all not applied: {list}"
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.starts_with("b 7:") || l.starts_with("b *:* r")),
        "{list}"
    );
    call(&rt, &["delete", &id]).ok("delete");
    assert!(!d.exists());

    // The same node with an allow rule for it opens (reading an unbound loop
    // device gives nothing, or an error other than EPERM).
    let mut b = Bundle::new(&["sh", "-c", DEV_SCRIPT]);
    add_loop0_node(&b);
    resources(
        &mut b,
        json!({"devices": [
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": true, "type": "b", "major": 7, "minor": 0, "access": "r"}
        ]}),
    );
    let (code, out, err) = rt.run(&b, &unique_id("dev"));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("null-ok\n") && !out.contains("loop-eperm"),
        "allowed device denied: {out}"
    );
}

#[test]
fn devices_default_allows_the_standard_nodes() {
    // No device rules at all: /dev/zero works (the cgroup is not left deny-all).
    let b = Bundle::new(&[
        "sh",
        "-c",
        "head -c 3 /dev/zero | wc -c; echo x > /dev/full || echo full-enospc",
    ]);
    let rt = Runtime::new();
    let (code, out, err) = rt.run(&b, &unique_id("devdef"));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "3\nfull-enospc\n", "{err}");
}

// ---- cgroupsPath ----

#[test]
fn cgroups_path_absolute() {
    let mut b = Bundle::new(&["sleep", "1000"]);
    let id = unique_id("abs");
    let leaf = format!("abs-{id}");
    let path = format!("/berth/{leaf}");
    b.edit(|c| c["linux"]["cgroupsPath"] = json!(path));
    resources(&mut b, json!({"pids": {"limit": 50}}));
    let rt = Runtime::new();
    let pid = started(&rt, &b, &id);
    for ctrl in V1.iter().copied().chain([""]) {
        assert_eq!(path_in(pid, ctrl), path, "hierarchy {ctrl:?}");
        let d = mount_of(ctrl).join("berth").join(&leaf);
        let procs = read_trim(&d.join("cgroup.procs"));
        assert!(
            procs.lines().any(|l| l == pid.to_string()),
            "{ctrl}: {procs}"
        );
    }
    assert_eq!(
        read_trim(&mount_of("pids").join("berth").join(&leaf).join("pids.max")),
        "50"
    );
    // The default path is not used.
    assert!(!dir("memory", &id).exists());
    let dirs: Vec<PathBuf> = V1
        .iter()
        .copied()
        .chain([""])
        .map(|c| mount_of(c).join("berth").join(&leaf))
        .collect();
    call(&rt, &["delete", "--force", &id]).ok("delete");
    assert!(!pid_alive(pid));
    assert_gone(&dirs);
    // The parent /berth stays.
    assert!(Path::new(CG).join("memory/berth").is_dir());
}

#[test]
fn cgroups_path_relative_to_the_callers_cgroup() {
    let mut b = Bundle::new(&["sleep", "1000"]);
    let id = unique_id("rel");
    let rel = format!("berth-rel-{id}");
    b.edit(|c| c["linux"]["cgroupsPath"] = json!(rel));
    let rt = Runtime::new();
    let pid = started(&rt, &b, &id);
    let own = proc_cgroups(std::process::id() as i32);
    let mut dirs = Vec::new();
    for ctrl in V1.iter().copied().chain([""]) {
        let base = own
            .iter()
            .find(|(c, _)| c.split(',').any(|x| x == ctrl) || (ctrl.is_empty() && c.is_empty()))
            .unwrap()
            .1
            .trim_end_matches('/')
            .to_string();
        let want = format!("{base}/{rel}");
        assert_eq!(path_in(pid, ctrl), want, "hierarchy {ctrl:?}");
        let d = mount_of(ctrl).join(want.trim_start_matches('/'));
        assert!(d.is_dir(), "{}", d.display());
        dirs.push(d);
    }
    call(&rt, &["delete", "--force", &id]).ok("delete");
    assert!(!pid_alive(pid));
    assert_gone(&dirs);
}

#[test]
fn bad_cgroups_paths_are_refused() {
    let rt = Runtime::new();
    for bad in ["/berth/../escape", "/"] {
        let mut b = Bundle::new(&["true"]);
        b.edit(|c| c["linux"]["cgroupsPath"] = json!(bad));
        let id = unique_id("badcg");
        let r = call(&rt, &["create", "--bundle", p(b.dir()), &id]);
        assert_ne!(r.code, 0, "cgroupsPath {bad:?} accepted");
        assert!(r.err.contains("cgroup"), "{}", r.err);
        assert!(!rt.root.path().join(&id).exists());
    }
}

#[test]
fn container_is_in_every_hierarchy_and_removed_after_run() {
    let b = Bundle::new(&["sh", "-c", "cat /proc/self/cgroup"]);
    let rt = Runtime::new();
    let id = unique_id("inall");
    let (code, out, err) = rt.run(&b, &id);
    assert_eq!(code, 0, "{err}");
    // Inside, without a cgroup namespace, the container sees its host path.
    for ctrl in V1 {
        assert!(
            out.lines().any(|l| {
                let mut f = l.splitn(3, ':');
                f.next();
                f.next().unwrap().split(',').any(|c| c == *ctrl)
                    && f.next() == Some(&format!("/berth/{id}"))
            }),
            "{ctrl} missing: {out}"
        );
    }
    assert!(
        out.lines().any(|l| l == format!("0::/berth/{id}")),
        "cgroup2 missing: {out}"
    );
    for ctrl in V1.iter().copied().chain([""]) {
        let d = mount_of(ctrl).join("berth").join(&id);
        assert!(!d.exists(), "{} left after run", d.display());
    }
}
