//! Shared helpers for berth's integration tests: a busybox rootfs built from
//! Debian's `busybox-static` (no network needed), OCI bundles, and a
//! `berth-runtime` driver whose state root is private to each test and
//! cleaned up even when the test fails.

pub mod berth_registry;
pub mod containers;
pub mod engine;
pub mod garage;
pub mod images;
pub mod podman;
pub mod registry;

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// The workspace's target dir (tests run from target/<profile>/deps).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    exe.parent()
        .and_then(|p| p.parent())
        .expect("target/<profile>")
        .to_path_buf()
}

/// Path to the built `berth-runtime` binary. `BERTH_RUNTIME_BIN` overrides.
pub fn runtime_bin() -> PathBuf {
    if let Ok(p) = std::env::var("BERTH_RUNTIME_BIN") {
        return PathBuf::from(p);
    }
    let p = target_dir().join("berth-runtime");
    assert!(
        p.exists(),
        "{} is missing: build it first (cargo build --workspace --bins)",
        p.display()
    );
    p
}

pub fn busybox_path() -> PathBuf {
    for p in ["/bin/busybox", "/usr/bin/busybox"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!("busybox is missing: apt-get install busybox-static");
}

/// Populate `dest` with a busybox rootfs: the static binary, every applet
/// as a hard link, /etc/passwd, /etc/group and the usual empty dirs.
pub fn make_busybox_rootfs(dest: &Path) {
    let bb = busybox_path();
    for d in [
        "bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp", "root",
        "var/run", "run", "home",
    ] {
        std::fs::create_dir_all(dest.join(d)).unwrap();
    }
    let target = dest.join("bin/busybox");
    std::fs::copy(&bb, &target).unwrap();
    let list = Command::new(&bb)
        .arg("--list-full")
        .output()
        .expect("busybox --list-full");
    for l in String::from_utf8_lossy(&list.stdout).lines() {
        let l = l.trim();
        if l.is_empty() || l == "bin/busybox" {
            continue;
        }
        let p = dest.join(l);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        if !p.exists() {
            std::fs::hard_link(&target, &p).unwrap();
        }
    }
    std::fs::write(
        dest.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )
    .unwrap();
    std::fs::write(
        dest.join("etc/group"),
        "root:x:0:\ndaemon:x:1:\ntty:x:5:\nusers:x:100:\nnogroup:x:65534:\n",
    )
    .unwrap();
    std::fs::set_permissions(
        dest.join("tmp"),
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    )
    .unwrap();
}

/// One pristine rootfs, built once under the target dir and reused by every
/// test binary (built in a temp dir and renamed into place, so concurrent
/// test binaries never see a half-made one); bundles copy it.
fn pristine() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let dir = target_dir().join("berth-test-rootfs");
        let done = dir.join("busybox");
        if done.join("bin/busybox").exists() {
            return done;
        }
        std::fs::create_dir_all(&dir).unwrap();
        let tmp = tempfile::Builder::new()
            .prefix("tmp-")
            .tempdir_in(&dir)
            .unwrap();
        make_busybox_rootfs(tmp.path());
        let tmp = tmp.keep();
        if std::fs::rename(&tmp, &done).is_err() {
            // Another test binary won the race.
            let _ = std::fs::remove_dir_all(&tmp);
        }
        done
    })
    .as_path()
}

/// A base config like `berth-runtime spec` but non-interactive.
pub fn base_config(args: &[&str]) -> Value {
    json!({
        "ociVersion": "1.2.0",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
            },
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": false},
        "hostname": "berth-test",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}
        ],
        "linux": {
            "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware", "/proc/scsi", "/proc/acpi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    })
}

/// A bundle dir (config.json + a fresh copy of the busybox rootfs).
pub struct Bundle {
    pub tmp: tempfile::TempDir,
    pub config: Value,
}

impl Bundle {
    pub fn new(args: &[&str]) -> Bundle {
        let tmp = tempfile::Builder::new()
            .prefix("berth-bundle-")
            .tempdir()
            .unwrap();
        let st = Command::new("cp")
            .arg("-a")
            .arg(pristine())
            .arg(tmp.path().join("rootfs"))
            .status()
            .unwrap();
        assert!(st.success());
        let b = Bundle {
            tmp,
            config: base_config(args),
        };
        b.write();
        b
    }

    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }

    pub fn rootfs(&self) -> PathBuf {
        self.tmp.path().join("rootfs")
    }

    pub fn write(&self) {
        std::fs::write(
            self.dir().join("config.json"),
            serde_json::to_vec_pretty(&self.config).unwrap(),
        )
        .unwrap();
    }

    /// Edit the config, then write it.
    pub fn edit(&mut self, f: impl FnOnce(&mut Value)) {
        f(&mut self.config);
        self.write();
    }
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A unique container id for this test process.
pub fn unique_id(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::SeqCst)
    )
}

/// A `berth-runtime` with a private `--root`. Dropping it force-deletes
/// every container left under that root (cgroups, processes, state).
pub struct Runtime {
    pub root: tempfile::TempDir,
    pub bin: PathBuf,
}

impl Default for Runtime {
    fn default() -> Self {
        Self::new()
    }
}

impl Runtime {
    pub fn new() -> Runtime {
        Runtime {
            root: tempfile::Builder::new()
                .prefix("berth-rt-")
                .tempdir()
                .unwrap(),
            bin: runtime_bin(),
        }
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--root").arg(self.root.path());
        c
    }

    /// Run with args, capture output (stdin null).
    pub fn out(&self, args: &[&str]) -> Output {
        self.cmd()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("spawn berth-runtime")
    }

    /// `run --bundle B ID`: (exit code, stdout, stderr).
    pub fn run(&self, b: &Bundle, id: &str) -> (i32, String, String) {
        let o = self
            .cmd()
            .args(["run", "--bundle"])
            .arg(b.dir())
            .arg(id)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    /// Run `args` in a fresh bundle made by `f`; returns stdout, panics with
    /// stderr on a non-zero exit.
    pub fn sh(&self, script: &str, f: impl FnOnce(&mut Value)) -> String {
        let mut b = Bundle::new(&["sh", "-c", script]);
        b.edit(f);
        let id = unique_id("sh");
        let (code, out, err) = self.run(&b, &id);
        assert_eq!(
            code, 0,
            "script {script:?} failed: stdout={out} stderr={err}"
        );
        out
    }

    /// `create --bundle B ID`. stderr goes through a file, not a pipe: the
    /// created container inherits it and would keep a pipe open until it exits.
    pub fn create(&self, b: &Bundle, id: &str) -> Output {
        let err = tempfile::tempfile().unwrap();
        let status = self
            .cmd()
            .args(["create", "--bundle"])
            .arg(b.dir())
            .arg(id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err.try_clone().unwrap())
            .status()
            .unwrap();
        use std::io::{Read, Seek};
        let mut err = err;
        err.seek(std::io::SeekFrom::Start(0)).unwrap();
        let mut stderr = Vec::new();
        err.read_to_end(&mut stderr).unwrap();
        Output {
            status,
            stdout: Vec::new(),
            stderr,
        }
    }

    /// `create` reduced to (success, stderr text).
    pub fn try_create(&self, b: &Bundle, id: &str) -> (bool, String) {
        let o = self.create(b, id);
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    pub fn state(&self, id: &str) -> Value {
        let o = self.out(&["state", id]);
        assert!(
            o.status.success(),
            "state {id}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        serde_json::from_slice(&o.stdout).unwrap()
    }

    pub fn status(&self, id: &str) -> String {
        self.state(id)["status"].as_str().unwrap().to_string()
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Ok(rd) = std::fs::read_dir(self.root.path()) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') {
                    continue;
                }
                let _ = Command::new(&self.bin)
                    .arg("--root")
                    .arg(self.root.path())
                    .args(["delete", "--force", &name])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}

/// Is `pid` alive (not a zombie)?
pub fn pid_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => {
            let st = s
                .rsplit(')')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .next()
                .unwrap_or("");
            st != "Z" && st != "X"
        }
        Err(_) => false,
    }
}

/// Poll until `f` is true or `secs` pass.
pub fn wait_until(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let t0 = std::time::Instant::now();
    while t0.elapsed() < std::time::Duration::from_secs(secs) {
        if f() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    f()
}

/// The first executable `name` in $PATH (like `command -v`).
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

// ---- command helpers shared by the lifecycle, exec and cli tests ----

/// Captured result of one berth-runtime command.
pub struct Res {
    pub code: i32,
    pub out: String,
    pub err: String,
}

impl Res {
    /// Panics with the command's output unless it exited 0.
    pub fn ok(&self, what: &str) -> &Self {
        assert_eq!(
            self.code, 0,
            "{what} failed: stdout={} stderr={}",
            self.out, self.err
        );
        self
    }
}

/// stdout/stderr go to anonymous files, not pipes: a container inherits the
/// runtime's stdio and may outlive the command (create, run -d, exec -d).
pub fn call_cmd(mut c: Command) -> Res {
    use std::io::{Read, Seek};
    let mut o = tempfile::tempfile().unwrap();
    let mut e = tempfile::tempfile().unwrap();
    let st = c
        .stdin(Stdio::null())
        .stdout(o.try_clone().unwrap())
        .stderr(e.try_clone().unwrap())
        .status()
        .expect("spawn berth-runtime");
    let mut out = String::new();
    let mut err = String::new();
    o.rewind().unwrap();
    o.read_to_string(&mut out).unwrap();
    e.rewind().unwrap();
    e.read_to_string(&mut err).unwrap();
    Res {
        code: st.code().unwrap_or(-1),
        out,
        err,
    }
}

/// `berth-runtime --root <private root> ARGS...` through [`call_cmd`].
pub fn call(rt: &Runtime, args: &[&str]) -> Res {
    let mut c = rt.cmd();
    c.args(args);
    call_cmd(c)
}

/// A (UTF-8) path as a command-line argument.
pub fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// `create --bundle B ID` through [`call`] (unlike [`Runtime::create`], with
/// the captured result as a [`Res`]).
pub fn create(rt: &Runtime, b: &Bundle, id: &str) -> Res {
    call(rt, &["create", "--bundle", path_str(b.dir()), id])
}

/// create + start; returns the init's pid.
pub fn started(rt: &Runtime, b: &Bundle, id: &str) -> i32 {
    create(rt, b, id).ok("create");
    call(rt, &["start", id]).ok("start");
    rt.state(id)["pid"].as_i64().unwrap() as i32
}

/// Bind-mount a fresh host temp dir at /shared in the container.
pub fn share(b: &mut Bundle) -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("berth-shared-")
        .tempdir()
        .unwrap();
    let src = path_str(d.path()).to_string();
    b.edit(|c| {
        c["mounts"].as_array_mut().unwrap().push(
            json!({"destination": "/shared", "type": "bind", "source": src, "options": ["rbind", "rw"]}),
        )
    });
    d
}

/// Poll until `path` exists or `secs` pass.
pub fn wait_file(path: &Path, secs: u64) -> bool {
    wait_until(secs, || path.exists())
}

/// The trimmed content of `path`; empty if unreadable.
pub fn read_trim(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .trim()
        .to_string()
}

// ---- helpers shared by the hooks, safety, cgroups, bad_input and terminal tests ----

/// [`share`], but the host temp dir is named `<prefix>XXXXXX`.
pub fn share_prefixed(b: &mut Bundle, prefix: &str) -> tempfile::TempDir {
    let d = tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
    let src = path_str(d.path()).to_string();
    b.edit(|c| {
        c["mounts"].as_array_mut().unwrap().push(
            json!({"destination": "/shared", "type": "bind", "source": src, "options": ["rbind", "rw"]}),
        )
    });
    d
}

/// A spawned process, SIGKILLed and reaped on drop.
pub struct Kid(pub std::process::Child);

impl Kid {
    pub fn pid(&self) -> i32 {
        self.0.id() as i32
    }

    /// Poll for its exit for up to `secs`; `None` if it is still running.
    pub fn wait_timeout(&mut self, secs: u64) -> Option<std::process::ExitStatus> {
        let t0 = std::time::Instant::now();
        while t0.elapsed() < std::time::Duration::from_secs(secs) {
            if let Some(s) = self.0.try_wait().unwrap() {
                return Some(s);
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        None
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Where the host's cgroup hierarchies are mounted.
pub const CG: &str = "/sys/fs/cgroup";

/// Every hierarchy under [`CG`] a container gets a cgroup in on this
/// (v1/hybrid) host, cgroup2 ("unified") included.
pub const HIERARCHIES: &[&str] = &[
    "blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "memory", "pids", "unified",
];

/// Live processes (not us) whose command line mentions `marker`.
pub fn procs_with(marker: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmd).contains(marker) && pid_alive(pid) {
            out.push(pid);
        }
    }
    out
}

/// Nothing of `id` is left: no state dir under the runtime root, no cgroup
/// dir in any of [`HIERARCHIES`], no process mentioning it.
pub fn assert_no_state_cgroup_or_process(rt: &Runtime, id: &str) {
    assert!(
        !rt.root.path().join(id).exists(),
        "state dir of {id} left behind"
    );
    for h in HIERARCHIES {
        let d = Path::new(CG).join(h).join("berth").join(id);
        assert!(!d.exists(), "cgroup dir left behind: {}", d.display());
    }
    assert!(
        wait_until(3, || procs_with(id).is_empty()),
        "processes left behind: {:?}",
        procs_with(id)
    );
}

/// Runs `cmdline` under `script` (a real pty as stdin/stdout), typing
/// `input` once `wait_for` appeared in the output. Returns (exit code, output).
pub fn under_script(cmdline: &str, wait_for: &str, input: &[u8]) -> (i32, String) {
    use std::io::{Read, Write};
    use std::sync::{Arc, Mutex};
    let mut kid = Kid(std::process::Command::new("script")
        .args(["-qec", cmdline, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("script (bsdutils)"));
    let mut stdout = kid.0.stdout.take().unwrap();
    let seen = Arc::new(Mutex::new(String::new()));
    let seen2 = seen.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match stdout.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => seen2
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
    });
    let mut stdin = kid.0.stdin.take().unwrap();
    let shown = wait_until(10, || seen.lock().unwrap().contains(wait_for));
    assert!(
        shown,
        "{wait_for:?} never shown: {:?}",
        seen.lock().unwrap()
    );
    stdin.write_all(input).unwrap();
    let st = kid.wait_timeout(10);
    drop(stdin);
    drop(kid);
    reader.join().unwrap();
    let out = seen.lock().unwrap().clone();
    (st.and_then(|s| s.code()).unwrap_or(-1), out)
}

/// Paths removed when the test binary exits: for fixtures kept in
/// `static`s, which are never dropped (without this every run of a test
/// binary left its temp dirs behind).
static AT_EXIT: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

extern "C" fn run_at_exit() {
    if let Ok(paths) = AT_EXIT.lock() {
        for p in paths.iter() {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

/// Removes `path` (a dir) when the test binary exits.
pub fn remove_at_exit(path: &Path) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    // SAFETY: atexit with a plain extern "C" fn that never unwinds.
    ONCE.call_once(|| unsafe {
        libc::atexit(run_at_exit);
    });
    if let Ok(mut paths) = AT_EXIT.lock() {
        paths.push(path.to_path_buf());
    }
}
