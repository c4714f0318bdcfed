//! Podman 4.3 driving berth-runtime (`podman --runtime <abs path>`), with
//! fully private storage: graphroot, runroot, tmp_dir, static dir, network
//! config and events log all live in a temp dir with its own containers.conf,
//! storage.conf and registries.conf; every container sits under a private
//! cgroup parent. The image is a busybox rootfs made locally and
//! `podman import`ed (no network). Dropping a [`Podman`] removes everything:
//! containers, conmon/cleanup processes, cgroups, mounts, storage.
//!
//! Needs root and the Debian packages podman, conmon, netavark, busybox-static.
//! `BERTH_RUNTIME_BIN=/usr/sbin/runc` runs the same tests against runc, to tell
//! Podman-setup problems from runtime bugs.

use berth_integration::{make_busybox_rootfs, runtime_bin, unique_id, wait_until};
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const IMAGE: &str = "localhost/berth-busybox:test";

/// A private Podman installation that runs containers with berth-runtime.
struct Podman {
    dir: tempfile::TempDir,
    runtime: PathBuf,
    /// Absolute cgroup path every container (and conmon) goes under.
    cgroup_parent: String,
    /// The clamped `default_ulimits` nofile value (soft = hard).
    nofile: u64,
}

fn hard_limit(res: nix::sys::resource::Resource) -> u64 {
    nix::sys::resource::getrlimit(res).expect("getrlimit").1
}

fn existing_paths(paths: &[&str]) -> Vec<String> {
    paths
        .iter()
        .filter(|p| Path::new(p).exists())
        .map(|p| format!("{p:?}"))
        .collect()
}

impl Podman {
    fn new() -> Podman {
        assert!(
            Path::new("/usr/bin/podman").exists(),
            "podman is missing: apt-get install podman conmon netavark"
        );
        let runtime = runtime_bin().canonicalize().expect("runtime path");
        let dir = tempfile::Builder::new()
            .prefix("berth-podman-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        for sub in ["graph", "run", "tmp", "net", "image-tmp"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        let conmon = existing_paths(&["/usr/bin/conmon", "/usr/libexec/podman/conmon"]);
        assert!(
            !conmon.is_empty(),
            "conmon is missing: apt-get install conmon"
        );
        // Root here lacks CAP_SYS_RESOURCE: rlimits above the current hard limit
        // fail (in runc too). Once default_ulimits is set Podman also adds
        // nproc = 1048576 unless told otherwise, so clamp both.
        let nofile = hard_limit(nix::sys::resource::Resource::RLIMIT_NOFILE).min(1024);
        let nproc = hard_limit(nix::sys::resource::Resource::RLIMIT_NPROC).min(8192);
        let p = |s: &str| d.join(s).display().to_string();
        let driver =
            std::env::var("BERTH_PODMAN_STORAGE_DRIVER").unwrap_or_else(|_| "overlay".into());
        std::fs::write(
            d.join("containers.conf"),
            format!(
                r#"[containers]
default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]
log_driver = "k8s-file"

[network]
network_config_dir = "{net}"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{events}"
tmp_dir = "{tmp}"
static_dir = "{static_dir}"
volume_path = "{volumes}"
image_copy_tmp_dir = "{image_tmp}"
conmon_path = [{conmon}]
runtime_supports_json = ["berth-runtime", "crun", "runc"]
"#,
                net = p("net"),
                events = p("events.log"),
                tmp = p("tmp"),
                static_dir = p("graph/libpod"),
                volumes = p("graph/volumes"),
                image_tmp = p("image-tmp"),
                conmon = conmon.join(", "),
            ),
        )
        .unwrap();
        std::fs::write(
            d.join("storage.conf"),
            format!(
                "[storage]\ndriver = \"{driver}\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
                p("graph"),
                p("run")
            ),
        )
        .unwrap();
        std::fs::write(
            d.join("registries.conf"),
            "unqualified-search-registries = []\n\n[[registry]]\nlocation = \"localhost:5000\"\ninsecure = true\n",
        )
        .unwrap();
        let pm = Podman {
            runtime,
            cgroup_parent: format!("/{}", unique_id("berth-podman")),
            nofile,
            dir,
        };
        pm.import_busybox();
        pm
    }

    fn path(&self, s: &str) -> PathBuf {
        self.dir.path().join(s)
    }

    fn import_busybox(&self) {
        let rootfs = self.path("image-tmp/rootfs");
        make_busybox_rootfs(&rootfs);
        let tar = self.path("image-tmp/busybox.tar");
        let st = Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .expect("tar");
        assert!(st.success(), "tar of the busybox rootfs failed");
        let tar = tar.display().to_string();
        self.ok(&["import", "--change", "CMD [\"/bin/sh\"]", &tar, IMAGE]);
        let _ = std::fs::remove_dir_all(&rootfs);
        let _ = std::fs::remove_file(&tar);
    }

    /// `podman --runtime <berth-runtime>` with the private config in its env.
    fn cmd(&self) -> Command {
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", self.path("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", self.path("storage.conf"))
            .env("CONTAINERS_REGISTRIES_CONF", self.path("registries.conf"))
            .env("TMPDIR", self.path("image-tmp"))
            .arg("--runtime")
            .arg(&self.runtime);
        c
    }

    fn out(&self, args: &[&str]) -> Output {
        self.cmd()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("spawn podman")
    }

    /// Runs `podman args`, panics on failure, returns trimmed stdout.
    fn ok(&self, args: &[&str]) -> String {
        let o = self.out(args);
        assert!(o.status.success(), "podman {args:?} failed: {}", show(&o));
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    /// `run` plus the flags every container of these tests gets.
    fn run_args<'a>(&'a self, extra: &[&'a str]) -> Vec<&'a str> {
        let mut a = vec![
            "run",
            "--network",
            "none",
            "--cgroup-parent",
            &self.cgroup_parent,
        ];
        a.extend_from_slice(extra);
        a
    }

    /// `podman run --rm [extra] IMAGE cmd...`
    fn run(&self, extra: &[&str], cmd: &[&str]) -> Output {
        let mut a = self.run_args(&["--rm"]);
        a.extend_from_slice(extra);
        a.push(IMAGE);
        a.extend_from_slice(cmd);
        self.out(&a)
    }

    /// `podman run -d [extra] IMAGE cmd...`: the container id.
    fn run_d(&self, extra: &[&str], cmd: &[&str]) -> String {
        let mut a = self.run_args(&["-d"]);
        a.extend_from_slice(extra);
        a.push(IMAGE);
        a.extend_from_slice(cmd);
        let id = self.ok(&a);
        assert_eq!(id.len(), 64, "unexpected container id {id:?}");
        id
    }

    /// berth-runtime's state dir for a container (Podman passes no `--root`,
    /// so it is the default root); None when testing another runtime.
    fn state_dir(&self, id: &str) -> Option<PathBuf> {
        (self.runtime.file_name()? == "berth-runtime")
            .then(|| Path::new("/run/berth-runtime").join(id))
    }

    fn inspect(&self, id: &str, format: &str) -> String {
        self.ok(&["inspect", "--format", format, id])
    }

    /// The container's cgroup directory in every mounted hierarchy.
    fn container_cgroups(&self, id: &str) -> Vec<PathBuf> {
        cgroup_mounts()
            .into_iter()
            .map(|m| {
                m.join(self.cgroup_parent.trim_start_matches('/'))
                    .join(format!("libpod-{id}"))
            })
            .collect()
    }

    /// Pids of processes whose command line mentions `needle` (conmon, the
    /// `podman container cleanup` it runs at exit).
    fn procs_mentioning(&self, needle: &str) -> Vec<i32> {
        let me = std::process::id() as i32;
        let mut v = Vec::new();
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            if pid == me || !berth_integration::pid_alive(pid) {
                continue;
            }
            if let Ok(c) = std::fs::read(format!("/proc/{pid}/cmdline")) {
                if String::from_utf8_lossy(&c).contains(needle) {
                    v.push(pid);
                }
            }
        }
        v
    }

    fn our_procs(&self) -> Vec<i32> {
        self.procs_mentioning(&self.dir.path().display().to_string())
    }

    /// Spawns `podman args` with a new pty as its controlling terminal.
    fn spawn_in_pty(&self, args: &[&str]) -> PtyChild {
        let ws = nix::pty::Winsize {
            ws_row: 24,
            ws_col: 80,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = nix::pty::openpty(Some(&ws), None).expect("openpty");
        let mut c = self.cmd();
        c.args(args)
            .stdin(Stdio::from(pty.slave.try_clone().unwrap()))
            .stdout(Stdio::from(pty.slave.try_clone().unwrap()))
            .stderr(Stdio::from(pty.slave));
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            c.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = c.spawn().expect("spawn podman in a pty");
        drop(c); // closes our copies of the slave: the master reads EIO at the end
        PtyChild::new(child, pty.master)
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let quiet = |args: &[&str]| {
            let _ = self
                .cmd()
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        };
        quiet(&["rm", "-af", "-t", "0"]);
        // conmon and the `podman container cleanup` it spawns finish on their own;
        // whatever is left after that was started by this test: kill it.
        wait_until(10, || self.our_procs().is_empty());
        for pid in self.our_procs() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        quiet(&["system", "reset", "-f"]);
        // The private cgroup parent: kill stragglers, remove children first.
        for m in cgroup_mounts() {
            let root = m.join(self.cgroup_parent.trim_start_matches('/'));
            if root.exists() {
                remove_cgroup_tree(&root);
            }
        }
        // Mounts left under the temp dir (overlay layers, the graphroot bind).
        let prefix = self.dir.path().display().to_string();
        let mut mounts: Vec<String> = mount_points()
            .into_iter()
            .filter(|m| m.starts_with(&prefix))
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
        // TempDir's own drop removes the files.
    }
}

/// Mount points from /proc/self/mountinfo (octal escapes decoded).
fn mount_points() -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| {
            m.replace("\\040", " ")
                .replace("\\011", "\t")
                .replace("\\012", "\n")
                .replace("\\134", "\\")
        })
        .collect()
}

/// Every cgroup v1 hierarchy and the cgroup2 mount.
fn cgroup_mounts() -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut v: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let fstype = post.split(' ').next()?;
            let root = pre.split(' ').nth(3)?;
            (matches!(fstype, "cgroup" | "cgroup2") && root == "/")
                .then(|| PathBuf::from(pre.split(' ').nth(4).unwrap()))
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

fn remove_cgroup_tree(dir: &Path) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            remove_cgroup_tree(&e.path());
        }
    }
    for _ in 0..50 {
        if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
            return;
        }
        let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "podman test cleanup: could not remove cgroup {}",
        dir.display()
    );
}

fn show(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A child whose stdio is a pty; a thread collects what the master reads.
struct PtyChild {
    child: Child,
    master: std::fs::File,
    seen: Arc<Mutex<Vec<u8>>>,
}

impl PtyChild {
    fn new(child: Child, master: OwnedFd) -> PtyChild {
        let master = std::fs::File::from(master);
        let mut reader = master.try_clone().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                s.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        PtyChild {
            child,
            master,
            seen,
        }
    }

    fn output(&self) -> String {
        String::from_utf8_lossy(&self.seen.lock().unwrap()).into_owned()
    }

    /// Waits until the output holds `needle` (after byte offset `from`).
    fn expect(&self, needle: &str, from: usize, secs: u64) -> usize {
        let t0 = Instant::now();
        loop {
            let out = self.output();
            if let Some(i) = out.get(from..).and_then(|s| s.find(needle)) {
                return from + i + needle.len();
            }
            assert!(
                t0.elapsed() < Duration::from_secs(secs),
                "timed out waiting for {needle:?} in pty output: {out:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn send(&mut self, s: &str) {
        self.master.write_all(s.as_bytes()).unwrap();
    }

    /// The exit code, killing the child if it outlives `secs`.
    fn wait(&mut self, secs: u64) -> Option<i32> {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(secs) {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }
}

impl Drop for PtyChild {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn podman_run_echo_and_exit_codes() {
    let pm = Podman::new();
    let o = pm.run(&[], &["echo", "hi"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(stdout(&o), "hi\n");

    let o = pm.run(&[], &["sh", "-c", "exit 3"]);
    assert_eq!(o.status.code(), Some(3), "{}", show(&o));

    // Stdout and stderr stay apart; the clamped default_ulimits are applied.
    let o = pm.run(
        &[],
        &["sh", "-c", "echo out; echo err >&2; ulimit -n; ulimit -Hn"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(stdout(&o), format!("out\n{n}\n{n}\n", n = pm.nofile));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("err"),
        "{}",
        show(&o)
    );

    // Podman maps the runtime's exec errors: 127 not found, 126 not executable.
    let o = pm.run(&[], &["/nonexistent"]);
    assert_eq!(o.status.code(), Some(127), "{}", show(&o));
    let o = pm.run(&[], &["/etc/passwd"]);
    assert_eq!(o.status.code(), Some(126), "{}", show(&o));

    assert_eq!(pm.ok(&["ps", "-aq"]), "", "--rm left containers behind");
}

#[test]
fn podman_run_interactive_tty() {
    let pm = Podman::new();
    let mut args = pm.run_args(&["--rm", "-it"]);
    args.extend([IMAGE, "sh"]);
    let mut c = pm.spawn_in_pty(&args);
    let at = c.expect("# ", 0, 60);
    c.send("tty\n");
    let at = c.expect("/dev/pts/0", at, 20);
    c.send("stty size\n");
    let at = c.expect("24 80", at, 20);
    c.send("echo ping-$((40+2))\n");
    c.expect("ping-42", at, 20);
    c.send("exit 5\n");
    let code = c.wait(30);
    assert_eq!(code, Some(5), "pty output: {:?}", c.output());
}

#[test]
fn podman_memory_limit() {
    let pm = Podman::new();
    let o = pm.run(
        &["--memory", "64m"],
        &["cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(stdout(&o).trim(), "67108864");

    // The same seen from the host, through podman inspect's cgroup path.
    let id = pm.run_d(&["--memory", "64m"], &["sleep", "1000"]);
    let cg = pm.inspect(&id, "{{.State.CgroupPath}}");
    assert_eq!(cg, format!("{}/libpod-{id}", pm.cgroup_parent));
    let host = std::fs::read_to_string(format!("/sys/fs/cgroup/memory{cg}/memory.limit_in_bytes"))
        .unwrap();
    assert_eq!(host.trim(), "67108864");
    let pid: i32 = pm.inspect(&id, "{{.State.Pid}}").parse().unwrap();
    let procs = std::fs::read_to_string(format!("/sys/fs/cgroup/memory{cg}/cgroup.procs")).unwrap();
    assert!(
        procs.lines().any(|l| l.trim() == pid.to_string()),
        "pid {pid} not in {cg}: {procs}"
    );
    pm.ok(&["rm", "-f", "-t", "0", &id]);
}

#[test]
fn podman_pids_limit() {
    let pm = Podman::new();
    // The inner sh forks 40 sleeps; busybox sh gives up (non-zero) at the
    // first failed fork. The outer one only uses builtins afterwards.
    let script = "cat /sys/fs/cgroup/pids/pids.max; \
                  sh -c 'i=0; while [ $i -lt 40 ]; do sleep 30 & i=$((i+1)); done'; \
                  echo inner=$?";
    let o = pm.run(&["--pids-limit", "20"], &["sh", "-c", script]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let out = stdout(&o);
    assert!(out.starts_with("20\ninner="), "{}", show(&o));
    assert_ne!(
        out.trim_end().rsplit('=').next(),
        Some("0"),
        "40 forks under pids.max=20 all succeeded: {}",
        show(&o)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("can't fork"), "{}", show(&o));
}

#[test]
fn podman_exec_into_running_container() {
    let pm = Podman::new();
    let id = pm.run_d(&[], &["sleep", "1000"]);
    assert_eq!(pm.inspect(&id, "{{.State.Status}}"), "running");

    let o = pm.out(&["exec", &id, "sh", "-c", "echo from-exec; exit 7"]);
    assert_eq!(o.status.code(), Some(7), "{}", show(&o));
    assert_eq!(stdout(&o), "from-exec\n");

    let o = pm.out(&[
        "exec",
        "-e",
        "FOO=bar",
        "-w",
        "/tmp",
        &id,
        "sh",
        "-c",
        "echo $FOO $(pwd) $(cat /proc/1/cmdline | tr '\\0' ' ')",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(stdout(&o), "bar /tmp sleep 1000\n");

    // Same pid namespace and cgroup as the container's init.
    let pid: i32 = pm.inspect(&id, "{{.State.Pid}}").parse().unwrap();
    let o = pm.out(&["exec", &id, "cat", "/proc/self/cgroup"]);
    let host = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let mem = |s: &str| {
        s.lines()
            .find(|l| l.contains(":memory:"))
            .map(str::to_string)
    };
    assert_eq!(mem(&stdout(&o)), mem(&host), "{}", show(&o));

    let o = pm.out(&["exec", &id, "/nonexistent"]);
    assert_eq!(o.status.code(), Some(127), "{}", show(&o));
    pm.ok(&["rm", "-f", "-t", "0", &id]);
}

#[test]
fn podman_stop_and_rm() {
    let pm = Podman::new();
    // A trap: SIGTERM from `podman stop` ends it with 42, long before the timeout.
    let trap = pm.run_d(&[], &["sh", "-c", "trap 'exit 42' TERM; sleep 1000 & wait"]);
    // No handler: pid 1 ignores SIGTERM, so `--stop-timeout 2` ends in SIGKILL.
    let stubborn = pm.run_d(&["--stop-timeout", "2"], &["sleep", "1000"]);
    for id in [&trap, &stubborn] {
        assert_eq!(pm.inspect(id, "{{.State.Status}}"), "running");
        assert!(
            pm.container_cgroups(id).iter().any(|p| p.exists()),
            "no cgroup for {id}"
        );
        assert!(!pm.procs_mentioning(id).is_empty(), "no conmon for {id}");
        if let Some(st) = pm.state_dir(id) {
            assert!(st.exists(), "no runtime state at {}", st.display());
        }
    }

    let t0 = Instant::now();
    pm.ok(&["stop", "-t", "10", &trap]);
    let took = t0.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "stop took {took:?}: SIGTERM not delivered?"
    );
    assert_eq!(pm.inspect(&trap, "{{.State.Status}}"), "exited");
    assert_eq!(pm.inspect(&trap, "{{.State.ExitCode}}"), "42");

    let t0 = Instant::now();
    pm.ok(&["stop", &stubborn]);
    let took = t0.elapsed();
    assert!(
        took < Duration::from_secs(8),
        "stop with --stop-timeout 2 took {took:?}"
    );
    assert_eq!(pm.inspect(&stubborn, "{{.State.ExitCode}}"), "137");

    pm.ok(&["rm", &trap, &stubborn]);
    assert_eq!(pm.ok(&["ps", "-aq"]), "");
    for id in [&trap, &stubborn] {
        assert!(
            wait_until(10, || pm.procs_mentioning(id).is_empty()),
            "conmon/cleanup of {id} still running: {:?}",
            pm.procs_mentioning(id)
        );
        for cg in pm.container_cgroups(id) {
            assert!(!cg.exists(), "leftover cgroup {}", cg.display());
        }
        if let Some(st) = pm.state_dir(id) {
            assert!(!st.exists(), "runtime state left behind: {}", st.display());
        }
    }
}
