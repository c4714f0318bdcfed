//! Safety properties: the container cannot reach the runtime binary through
//! /proc/<pid>/exe (CVE-2019-5736), no host fd leaks into it, and a failure at
//! any step of create leaves nothing behind.

use berth_integration::{
    assert_no_state_cgroup_or_process, call, create, path_str as p, procs_with, runtime_bin, share,
    unique_id, wait_until, Bundle, Kid, Runtime,
};
use serde_json::{json, Value};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

// ---- helpers (each test file is its own crate; shared ones are in berth_integration) ----

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Touches a file on drop (releases a hook that waits for it).
struct Release(PathBuf);

impl Drop for Release {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.0, "");
    }
}

/// A private copy of the runtime binary, so an attack that worked would
/// damage only the copy, never the build.
struct BinCopy {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl BinCopy {
    fn new() -> BinCopy {
        let dir = tempfile::Builder::new()
            .prefix("berth-bin-")
            .tempdir()
            .unwrap();
        let path = dir.path().join("berth-runtime");
        std::fs::copy(runtime_bin(), &path).unwrap();
        BinCopy { _dir: dir, path }
    }

    fn sha256(&self) -> String {
        let o = Command::new("sha256sum")
            .arg(&self.path)
            .output()
            .expect("sha256sum");
        assert!(o.status.success());
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    }
}

/// Nothing of `id` is left (state dir, cgroup, process), and `list` no
/// longer shows it.
fn assert_nothing_left(rt: &Runtime, id: &str) {
    assert_no_state_cgroup_or_process(rt, id);
    let l = call(rt, &["list", "-q"]);
    assert!(!l.out.contains(id), "{id} still listed");
}

// ---- CVE-2019-5736 ----

#[test]
fn runtime_binary_unreachable_from_a_created_container() {
    let bin = BinCopy::new();
    let before = bin.sha256();
    let b = Bundle::new(&["sleep", "1000"]);
    let mut rt = Runtime::new();
    rt.bin = bin.path.clone();
    let id = unique_id("cve-created");
    create(&rt, &b, &id).ok("create");
    let pid = rt.state(&id)["pid"].as_i64().unwrap();
    // Until start, the init is still the runtime binary: the prime target.
    let host_exe = std::fs::metadata(format!("/proc/{pid}/exe")).unwrap();
    let bin_md = std::fs::metadata(&bin.path).unwrap();
    assert_eq!(
        (host_exe.dev(), host_exe.ino()),
        (bin_md.dev(), bin_md.ino()),
        "init is not our copy?"
    );

    // From inside (exec joins the pid namespace: the waiting init is pid 1).
    let r = call(
        &rt,
        &[
            "exec",
            &id,
            "sh",
            "-c",
            "readlink /proc/1/exe && echo readlink-ok; \
             if cat /proc/1/exe > /dev/null; then echo read-opened; fi; \
             if echo x > /proc/1/exe; then echo write-opened; fi; \
             if echo x >> /proc/1/exe; then echo append-opened; fi; \
             (exec 5</proc/1/exe && echo held-fd) ; \
             ls -l /proc/1/fd/ 2>/dev/null | grep -q berth && echo saw-fds; \
             echo done",
        ],
    );
    assert!(r.out.ends_with("done\n"), "{} {}", r.out, r.err);
    for bad in [
        "read-opened",
        "write-opened",
        "append-opened",
        "held-fd",
        "saw-fds",
        "readlink-ok",
    ] {
        assert!(
            !r.out.contains(bad),
            "container could {bad} the runtime's /proc/1/exe: {}",
            r.out
        );
    }
    call(&rt, &["start", &id]).ok("start");
    // After start the init is the container's own binary (busybox), not the runtime.
    assert!(wait_until(5, || {
        let md = std::fs::metadata(format!("/proc/{pid}/exe")).unwrap();
        let bb = std::fs::metadata(b.rootfs().join("bin/busybox")).unwrap();
        (md.dev(), md.ino()) == (bb.dev(), bb.ino())
    }));
    let r = call(&rt, &["exec", &id, "readlink", "/proc/1/exe"]);
    r.ok("readlink");
    assert_eq!(r.out, "/bin/sleep\n");
    call(&rt, &["delete", "--force", &id]).ok("delete");
    assert_eq!(bin.sha256(), before, "the runtime binary changed");
}

#[test]
fn runtime_binary_unchanged_by_a_proc_exe_attack_during_exec() {
    let bin = BinCopy::new();
    let before = bin.sha256();
    let orig = std::fs::read(&bin.path).unwrap();
    // The attacker: for every process it sees that is not busybox, try to
    // write /proc/<pid>/exe, or hold it open and write it once it is free.
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        r#"touch /shared/ready
while [ ! -e /shared/stop ]; do
  for d in /proc/[0-9]*; do
    pid=${d#/proc/}
    [ "$pid" = "$$" ] && continue
    exe=$(readlink $d/exe 2>/dev/null)
    case "$exe" in /bin/*) continue;; esac
    echo "$pid $exe" >> /shared/seen
    if (echo x > $d/exe) 2>/dev/null; then echo "wrote $pid $exe" >> /shared/log; fi
    ( exec 5<$d/exe || exit 0
      # Lost a race with execve: the fd is the container's own binary.
      case "$(readlink /proc/self/fd/5)" in /bin/*) exit 0;; esac
      echo "held $pid $exe -> $(readlink /proc/self/fd/5)" >> /shared/log
      for i in 1 2 3 4 5 6 7 8 9 10; do
        sleep 0.05
        if (echo PWNED >> /proc/self/fd/5) 2>/dev/null; then echo "overwrote $pid" >> /shared/log; break; fi
      done ) 2>/dev/null &
  done
done
wait
touch /shared/stopped"#,
    ]);
    let sh = share(&mut b);
    let mut rt = Runtime::new();
    rt.bin = bin.path.clone();
    let id = unique_id("cve-exec");
    create(&rt, &b, &id).ok("create");
    call(&rt, &["start", &id]).ok("start");
    assert!(wait_until(5, || sh.path().join("ready").exists()));
    let t0 = Instant::now();
    let mut n = 0;
    while t0.elapsed() < Duration::from_millis(1200) {
        call(&rt, &["exec", &id, "true"]).ok("exec");
        n += 1;
    }
    std::fs::write(sh.path().join("stop"), "").unwrap();
    assert!(
        wait_until(5, || sh.path().join("stopped").exists()),
        "attacker loop did not stop"
    );
    // The loop ran and saw processes it could not identify (among them the
    // runtime's, non-dumpable until execve).
    assert!(
        !read(&sh.path().join("seen")).is_empty(),
        "attacker saw nothing"
    );
    let log = read(&sh.path().join("log"));
    assert!(
        log.is_empty(),
        "the container got at a runtime process's exe: {log}"
    );
    call(&rt, &["delete", "--force", &id]).ok("delete");
    assert_eq!(
        bin.sha256(),
        before,
        "the runtime binary was modified after {n} execs"
    );
    assert_eq!(std::fs::read(&bin.path).unwrap(), orig);
}

// ---- fd leaks ----

/// An fd open in the test process without CLOEXEC (so every child inherits
/// it), closed on drop.
struct LeakyFd(i32);

impl LeakyFd {
    fn open() -> LeakyFd {
        let f = std::fs::File::open("/etc/hostname").unwrap();
        // SAFETY: F_DUPFD returns a new fd without FD_CLOEXEC; we own it.
        let fd = unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&f), libc::F_DUPFD, 200) };
        assert!(fd >= 200);
        LeakyFd(fd)
    }
}

impl Drop for LeakyFd {
    fn drop(&mut self) {
        // SAFETY: closing the fd this guard owns.
        unsafe { libc::close(self.0) };
    }
}

fn fd_list(out: &str) -> Vec<String> {
    let mut v: Vec<String> = out.split_whitespace().map(str::to_string).collect();
    v.sort();
    v
}

#[test]
fn no_host_fd_leaks_into_the_container() {
    let leak = LeakyFd::open();
    // The fd really reaches children of this process.
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!("[ -e /proc/$$/fd/{} ] && echo inherited", leak.0))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "inherited\n");

    let b = Bundle::new(&["ls", "/proc/self/fd"]);
    let rt = Runtime::new();
    let (code, out, err) = rt.run(&b, &unique_id("fds"));
    assert_eq!(code, 0, "{err}");
    // 0-2, and 3 is ls's own handle on /proc/self/fd.
    assert_eq!(
        fd_list(&out),
        ["0", "1", "2", "3"],
        "host fds leaked into run: {out}"
    );

    // Through create + start, and exec.
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "ls /proc/self/fd > /shared/fds; ls -l /proc/self/fd > /shared/fdsl; exec sleep 1000",
    ]);
    let sh = share(&mut b);
    let id = unique_id("fds");
    create(&rt, &b, &id).ok("create");
    call(&rt, &["start", &id]).ok("start");
    assert!(wait_until(5, || !read(&sh.path().join("fdsl")).is_empty()));
    assert_eq!(fd_list(&read(&sh.path().join("fds"))), ["0", "1", "2", "3"]);
    assert!(
        !read(&sh.path().join("fdsl")).contains("hostname"),
        "{}",
        read(&sh.path().join("fdsl"))
    );
    let r = call(&rt, &["exec", &id, "ls", "/proc/self/fd"]);
    r.ok("exec ls");
    assert_eq!(
        fd_list(&r.out),
        ["0", "1", "2", "3"],
        "host fds leaked into exec: {}",
        r.out
    );
    let r = call(&rt, &["exec", &id, "ls", "-l", "/proc/1/fd"]);
    r.ok("exec ls init fds");
    assert!(
        !r.out.contains("hostname") && !r.out.contains("socket"),
        "init holds host fds: {}",
        r.out
    );
    drop(leak);
}

// ---- failures leave nothing behind ----

fn expect_clean_failure(rt: &Runtime, b: &Bundle, id: &str, needle: &str) {
    let r = create(rt, b, id);
    assert_ne!(r.code, 0, "create succeeded; expected {needle:?}");
    assert!(
        r.err.contains(needle),
        "error does not mention {needle:?}: {}",
        r.err
    );
    assert_eq!(
        r.err.trim().lines().count(),
        1,
        "expected one error line: {}",
        r.err
    );
    assert_nothing_left(rt, id);
    let id2 = format!("{id}-run");
    let r = call(rt, &["run", "--bundle", p(b.dir()), &id2]);
    assert_ne!(r.code, 0, "run succeeded; expected {needle:?}");
    assert!(
        r.err.contains(needle),
        "run error does not mention {needle:?}: {}",
        r.err
    );
    assert_nothing_left(rt, &id2);
}

/// A bundle whose process names `id` (so /proc/*/cmdline finds it).
fn marked(id: &str) -> Bundle {
    Bundle::new(&["sh", "-c", &format!("sleep 1000 # {id}")])
}

#[test]
fn bad_mount_source_leaves_nothing() {
    let rt = Runtime::new();
    let id = unique_id("failmnt");
    let mut b = marked(&id);
    b.edit(|c| {
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/data", "type": "bind", "source": "/no/such/mount-source", "options": ["rbind"]}))
    });
    expect_clean_failure(&rt, &b, &id, "/no/such/mount-source");
}

#[test]
fn bad_mount_type_leaves_nothing() {
    let rt = Runtime::new();
    let id = unique_id("failfs");
    let mut b = marked(&id);
    b.edit(|c| {
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/data", "type": "nosuchfs", "source": "x"}))
    });
    expect_clean_failure(&rt, &b, &id, "/data");
}

#[test]
fn missing_executable_leaves_nothing() {
    let rt = Runtime::new();
    let id = unique_id("failexe");
    let b = Bundle::new(&["no-such-binary", &id]);
    expect_clean_failure(&rt, &b, &id, "executable file not found");
    let id = unique_id("failexe");
    let b = Bundle::new(&["/bin/no-such-binary", &id]);
    expect_clean_failure(&rt, &b, &id, "/bin/no-such-binary");
}

#[test]
fn late_process_setup_failures_leave_nothing() {
    let rt = Runtime::new();
    // A cwd that cannot exist (a missing one is created, as runc does;
    // under a regular file it fails after pivot_root with ENOTDIR).
    let id = unique_id("failcwd");
    let mut b = marked(&id);
    b.edit(|c| c["process"]["cwd"] = json!("/etc/passwd/x"));
    expect_clean_failure(&rt, &b, &id, "/etc/passwd/x");
    // RLIMIT_NOFILE above fs.nr_open fails setrlimit even for root.
    let id = unique_id("failrlimit");
    let mut b = marked(&id);
    b.edit(|c| {
        c["process"]["rlimits"] =
            json!([{"type": "RLIMIT_NOFILE", "hard": 1u64 << 40, "soft": 1u64 << 40}])
    });
    expect_clean_failure(&rt, &b, &id, "RLIMIT_NOFILE");
}

#[test]
fn failing_hook_leaves_nothing() {
    let rt = Runtime::new();
    let id = unique_id("failhook");
    let mut b = marked(&id);
    b.edit(|c| c["hooks"] = json!({"createRuntime": [{"path": "/bin/false"}]}));
    expect_clean_failure(&rt, &b, &id, "createRuntime");
}

#[test]
fn bad_seccomp_leaves_nothing() {
    let rt = Runtime::new();
    let id = unique_id("failseccomp");
    let mut b = marked(&id);
    b.edit(|c| {
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["no_such_syscall_xyz"], "action": "SCMP_ACT_ERRNO"}]
        })
    });
    expect_clean_failure(&rt, &b, &id, "no_such_syscall_xyz");
}

#[test]
fn killed_create_leaves_no_process() {
    let rt = Runtime::new();
    let id = unique_id("killedcreate");
    let mut b = marked(&id);
    let hookdir = tempfile::Builder::new()
        .prefix("berth-hookwait-")
        .tempdir()
        .unwrap();
    let running = hookdir.path().join("running");
    let release = Release(hookdir.path().join("release"));
    b.edit(|c| {
        c["hooks"] = json!({"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", format!(
            // Also ends when the temp dir is gone, so a failed test leaks no hook.
            "touch {}; while [ ! -e {} ] && [ -d {} ]; do sleep 0.05; done",
            p(&running), p(&release.0), p(hookdir.path()))]}]})
    });
    let mut cmd = rt.cmd();
    cmd.args(["create", "--bundle", p(b.dir()), &id])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut kid = Kid(cmd.spawn().unwrap());
    assert!(wait_until(5, || running.exists()), "hook did not start");
    let st: Value = serde_json::from_slice(
        &std::fs::read(rt.root.path().join(&id).join("state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(st["pid"], 0, "record written before the init reported in?");
    kid.0.kill().unwrap();
    kid.0.wait().unwrap();
    // The init and stage 1 see their peer gone and exit.
    assert!(
        wait_until(3, || procs_with(&id).is_empty()),
        "container processes outlived a killed create: {:?}",
        procs_with(&id)
    );
    drop(release);
    // delete --force cleans the rest.
    call(&rt, &["delete", "--force", &id]).ok("delete --force");
    assert_nothing_left(&rt, &id);
}
