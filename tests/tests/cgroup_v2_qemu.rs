//! berth-runtime on a pure cgroup v2 system, for real. This machine kind has hybrid
//! cgroups, so the test boots Debian's kernel under qemu (TCG) with an initramfs made
//! by scripts/qemu-cgroup2/build-initramfs.sh: its init mounts only cgroup2, runs a
//! busybox bundle with memory, swap, cpu, pids and device limits (create/start, then
//! `run`), and prints `BERTH-QEMU key=value` lines that are checked here: what the
//! container sees through its cgroup namespace, what the guest host sees in
//! /sys/fs/cgroup/<cgroupsPath>, the device and pids limits at work, and the cgroup
//! removed after delete.
//!
//! Needs `qemu-system-x86` and `busybox-static`; the kernel (linux-image-amd64's
//! dependency) is fetched once with `apt-get download` into $BERTH_TEST_CACHE
//! (default /var/cache/berth-test). A missing piece fails the test.

use berth_integration::{base_config, find_in_path, runtime_bin};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const MARK: &str = "BERTH-QEMU ";
const CGROUPS_PATH: &str = "/berth-qemu/ctr";
const MEMORY: i64 = 64 << 20;
const MEMORY_SWAP: i64 = 128 << 20; // memory+swap (v1 meaning)
const SHARES: u64 = 1024;
const BOOT_TIMEOUT: Duration = Duration::from_secs(120);

fn cache_dir() -> PathBuf {
    let dir = std::env::var_os("BERTH_TEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/berth-test"));
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

fn sh(cmd: &mut Command) -> String {
    let o = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        o.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The package linux-image-amd64 depends on (linux-image-6.1.0-NN-amd64).
fn kernel_package() -> Option<String> {
    let o = Command::new("apt-cache")
        .args(["depends", "linux-image-amd64"])
        .stdin(Stdio::null())
        .output()
        .ok()?;
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .find(|p| p.starts_with("linux-image-"))
        .map(str::to_string)
}

/// Debian's kernel image from the cache; fetched (not installed) on first use.
fn kernel() -> PathBuf {
    let cache = cache_dir();
    let boot = cache.join("boot");
    let find = || -> Option<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(&boot)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
            })
            .collect();
        v.sort();
        v.pop()
    };
    if let Some(k) = find() {
        return k;
    }
    let pkg = kernel_package()
        .or_else(|| {
            let _ = Command::new("apt-get").arg("update").stdin(Stdio::null()).status();
            kernel_package()
        })
        .expect("cannot resolve linux-image-amd64's kernel package with apt-cache: is Debian's apt reachable?");
    eprintln!("fetching {pkg} into {}", cache.display());
    sh(Command::new("apt-get")
        .args(["-o", "APT::Sandbox::User=root", "download", &pkg])
        .current_dir(&cache));
    let deb = std::fs::read_dir(&cache)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!("{pkg}_"))
        })
        .unwrap_or_else(|| panic!("apt-get download {pkg} left no .deb in {}", cache.display()));
    sh(Command::new("sh").arg("-c").arg(format!(
        "dpkg-deb --fsys-tarfile '{}' | tar -x -C '{}' --wildcards './boot/vmlinuz-*'",
        deb.display(),
        cache.display()
    )));
    let _ = std::fs::remove_file(&deb);
    find().unwrap_or_else(|| panic!("no boot/vmlinuz-* in {}", deb.display()))
}

/// The bundle's config: the busybox probe with every v2-relevant limit and a cgroup
/// namespace with /sys/fs/cgroup mounted.
fn config() -> Value {
    let mut c = base_config(&["/bin/sh", "/probe.sh"]);
    for set in ["bounding", "effective", "permitted"] {
        c["process"]["capabilities"][set]
            .as_array_mut()
            .unwrap()
            .push(json!("CAP_MKNOD"));
    }
    c["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
        "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]
    }));
    let linux = &mut c["linux"];
    linux["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "cgroup"}));
    linux["cgroupsPath"] = json!(CGROUPS_PATH);
    linux["resources"] = json!({
        "memory": {"limit": MEMORY, "swap": MEMORY_SWAP},
        "cpu": {"shares": SHARES, "quota": 50000, "period": 100000},
        "pids": {"limit": 20},
        "devices": [
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}
        ]
    });
    c
}

/// Boots the kernel with the initramfs; returns the serial log (killed after `limit`).
fn boot(qemu: &Path, kernel: &Path, initrd: &Path, limit: Duration) -> (String, bool) {
    let mut child = Command::new(qemu)
        .args([
            "-accel",
            "tcg",
            "-m",
            "512M",
            "-nographic",
            "-no-reboot",
            "-nic",
            "none",
            "-kernel",
        ])
        .arg(kernel)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", "console=ttyS0 panic=-1 quiet"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", qemu.display()));
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        let _ = err.read_to_end(&mut v);
        v
    });
    let t0 = Instant::now();
    let mut timed_out = false;
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > limit {
            timed_out = true;
            let _ = child.kill();
            let _ = child.wait();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = String::from_utf8_lossy(&reader.join().unwrap()).replace('\r', "");
    (log, timed_out)
}

/// `BERTH-QEMU key=value` lines (the first value of each key wins).
fn markers(log: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for l in log.lines() {
        if let Some((k, v)) = l
            .find(MARK)
            .and_then(|i| l[i + MARK.len()..].split_once('='))
        {
            m.entry(k.to_string())
                .or_insert_with(|| v.trim_end().to_string());
        }
    }
    m
}

#[test]
fn pure_cgroup_v2_in_qemu() {
    let t0 = Instant::now();
    let qemu = find_in_path("qemu-system-x86_64")
        .expect("qemu-system-x86_64 is missing: apt-get install qemu-system-x86");
    let kernel = kernel();
    let runtime = runtime_bin();
    let t_kernel = t0.elapsed();

    let work = tempfile::Builder::new()
        .prefix("berth-qemu-")
        .tempdir()
        .unwrap();
    let cfg = work.path().join("config.json");
    std::fs::write(&cfg, serde_json::to_vec_pretty(&config()).unwrap()).unwrap();
    let initrd = work.path().join("initramfs.cpio.gz");
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/qemu-cgroup2/build-initramfs.sh");
    sh(Command::new("sh")
        .arg(&script)
        .arg(&initrd)
        .arg(&runtime)
        .arg(&cfg));
    let t_initrd = t0.elapsed();

    let (log, timed_out) = boot(&qemu, &kernel, &initrd, BOOT_TIMEOUT);
    let t_boot = t0.elapsed();
    let m = markers(&log);
    eprintln!(
        "kernel {} ({:.1?}), initramfs {} KiB ({:.1?}), qemu {:.1?}",
        kernel.display(),
        t_kernel,
        std::fs::metadata(&initrd)
            .map(|m| m.len() / 1024)
            .unwrap_or(0),
        t_initrd - t_kernel,
        t_boot - t_initrd
    );
    for (k, v) in &m {
        eprintln!("  {k} = {v}");
    }

    let mut failures = Vec::new();
    if timed_out {
        failures.push(format!("qemu killed after {BOOT_TIMEOUT:?}"));
    }
    let mut expect = |key: &str, ok: &dyn Fn(&str) -> bool, want: &str| match m.get(key) {
        Some(v) if ok(v) => {}
        got => failures.push(format!("{key}: want {want}, got {got:?}")),
    };
    let eq = |want: &'static str| move |v: &str| v == want;

    expect("done", &eq("ok"), "ok (the guest init reached its end)");
    expect(
        "cgroup_mounts",
        &eq("cgroup2 /sys/fs/cgroup cgroup2;"),
        "only cgroup2 mounted",
    );
    expect(
        "root_subtree_after",
        &|v| {
            ["cpu", "memory", "pids"]
                .iter()
                .all(|c| v.split(' ').any(|w| w == *c))
        },
        "cpu, memory and pids enabled by berth-runtime",
    );
    // runc's conversions: memory.swap.max = swap - limit; cpu.weight = 1 + (shares-2)*9999/262142.
    let swap_max = (MEMORY_SWAP - MEMORY).to_string();
    let weight = (1 + (SHARES - 2) * 9999 / 262_142).to_string();
    let memory = MEMORY.to_string();
    let limits: [(&str, &str); 5] = [
        ("memory.max", &memory),
        ("memory.swap.max", &swap_max),
        ("cpu.max", "50000 100000"),
        ("cpu.weight", &weight),
        ("pids.max", "20"),
    ];
    for (file, want) in limits {
        for side in ["detached.in", "run.in", "host"] {
            expect(&format!("{side}.{file}"), &|v| v == want, want);
        }
    }
    for phase in ["detached", "run"] {
        expect(
            &format!("{phase}.self_cgroup"),
            &eq("0::/"),
            "0::/ (own cgroup namespace)",
        );
        expect(
            &format!("{phase}.cgroup_fs"),
            &|v| v.ends_with(" /sys/fs/cgroup cgroup2"),
            "cgroup2 mounted at /sys/fs/cgroup",
        );
        expect(
            &format!("{phase}.dev.kmsg_write"),
            &|v| v.starts_with("denied:") && v.contains("Operation not permitted"),
            "denied: ... Operation not permitted (c 1:11 not allowed)",
        );
        expect(
            &format!("{phase}.dev.null_write"),
            &eq("allowed"),
            "allowed",
        );
        // 20 pids: the probe shell, its subshell and 18 sleeps.
        expect(&format!("{phase}.fork.started"), &eq("18"), "18");
        expect(
            &format!("{phase}.fork.error"),
            &|v| v.contains("can't fork"),
            "can't fork: ...",
        );
    }
    expect(
        "host.kmsg_write",
        &eq("allowed"),
        "allowed outside the container",
    );
    expect(
        "create.clone3",
        &eq("1"),
        "1 (stage 1 started inside its cgroup with clone3 CLONE_INTO_CGROUP)",
    );
    expect("host.status", &eq("running"), "running");
    expect(
        "host.cgroup_dir",
        &|v| v == format!("/sys/fs/cgroup{CGROUPS_PATH}"),
        "the dir exists",
    );
    expect(
        "host.pids.events",
        &|v| {
            v.strip_prefix("max ")
                .and_then(|n| n.parse::<u64>().ok())
                .is_some_and(|n| n > 0)
        },
        "max N with N > 0",
    );
    expect("host.after_delete", &eq("gone"), "gone");
    expect("run.exit", &eq("0"), "0");
    expect("run.after_exit", &eq("gone"), "gone");

    if !failures.is_empty() {
        panic!(
            "pure cgroup v2 test failed:\n  {}\n--- guest serial log ---\n{log}",
            failures.join("\n  ")
        );
    }
}
