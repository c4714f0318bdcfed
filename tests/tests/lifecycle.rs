//! The container lifecycle through the runc-compatible command line:
//! create/start/state/kill/delete and run. exec is in exec.rs; list, ps,
//! pause/resume, spec, features and the global flags are in cli.rs.

use berth_integration::{
    call, create, path_str as p, pid_alive, read_trim, share, started, unique_id, wait_file,
    wait_until, Bundle, Runtime,
};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

// ---- helpers (each test file is its own crate; shared ones are in berth_integration) ----

/// A spawned process, SIGKILLed and reaped on drop.
struct Kid(Child);

impl Kid {
    fn pid(&self) -> i32 {
        self.0.id() as i32
    }

    fn wait_timeout(&mut self, secs: u64) -> Option<ExitStatus> {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(secs) {
            if let Some(s) = self.0.try_wait().unwrap() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(10));
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

fn drop_namespace(b: &mut Bundle, typ: &str) {
    b.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != typ)
    });
}

/// The container's cgroup dirs on the host (every hierarchy whose path for
/// `pid` ends in `leaf`), from /proc/<pid>/cgroup.
fn cgroup_dirs(pid: i32, leaf: &str) -> Vec<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let mut out = Vec::new();
    for l in text.lines() {
        let mut f = l.splitn(3, ':');
        let (_, ctrls, path) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
        if !path.ends_with(&format!("/{leaf}")) {
            continue;
        }
        let mount = if ctrls.is_empty() {
            "unified".to_string()
        } else if let Some(n) = ctrls.strip_prefix("name=") {
            n.to_string()
        } else {
            let first = Path::new("/sys/fs/cgroup").join(ctrls.split(',').next().unwrap());
            if first.exists() {
                ctrls.split(',').next().unwrap().to_string()
            } else {
                ctrls.to_string()
            }
        };
        out.push(
            Path::new("/sys/fs/cgroup")
                .join(mount)
                .join(path.trim_start_matches('/')),
        );
    }
    out
}

const RUNNING: &[&str] = &[
    "sh",
    "-c",
    "touch /shared/ready; while :; do sleep 1 & wait $!; done",
];

// ---- create / start / state ----

#[test]
fn create_blocks_user_code_until_start() {
    let mut b = Bundle::new(&["sh", "-c", "echo $$ > /shared/started; exec sleep 1000"]);
    let sh = share(&mut b);
    b.edit(|c| c["annotations"] = json!({"org.example.key": "value", "second": "2"}));
    let pidfile = sh.path().join("pidfile");
    let rt = Runtime::new();
    let id = unique_id("create");
    call(
        &rt,
        &[
            "create",
            "--bundle",
            p(b.dir()),
            "--pid-file",
            p(&pidfile),
            &id,
        ],
    )
    .ok("create");

    let st = rt.state(&id);
    let pid = st["pid"].as_i64().unwrap() as i32;
    assert!(pid > 0, "{st}");
    assert_eq!(
        read_trim(&pidfile),
        pid.to_string(),
        "--pid-file must hold the state's pid"
    );
    assert_eq!(st["status"], "created");
    assert!(pid_alive(pid), "init {pid} must be alive while created");
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !sh.path().join("started").exists(),
        "user code ran before start"
    );
    assert_eq!(rt.status(&id), "created", "still created after a while");

    // OCI state fields.
    assert!(st["ociVersion"].as_str().unwrap().starts_with("1."), "{st}");
    assert_eq!(st["id"], id.as_str());
    assert_eq!(
        Path::new(st["bundle"].as_str().unwrap()),
        std::fs::canonicalize(b.dir()).unwrap(),
        "bundle must be the absolute bundle path"
    );
    assert_eq!(st["annotations"]["org.example.key"], "value", "{st}");
    assert_eq!(st["annotations"]["second"], "2", "{st}");

    call(&rt, &["start", &id]).ok("start");
    assert!(
        wait_file(&sh.path().join("started"), 5),
        "user code did not run after start"
    );
    // In the new pid namespace the user process is pid 1.
    // The shell creates the file before it writes to it.
    wait_until(5, || !read_trim(&sh.path().join("started")).is_empty());
    assert_eq!(read_trim(&sh.path().join("started")), "1");
    let st = rt.state(&id);
    assert_eq!(st["status"], "running");
    assert_eq!(
        st["pid"].as_i64().unwrap() as i32,
        pid,
        "start must not change the pid"
    );
    // A second start is refused.
    let r = call(&rt, &["start", &id]);
    assert_ne!(r.code, 0, "second start succeeded");
}

#[test]
fn state_of_missing_container_fails() {
    let rt = Runtime::new();
    let r = call(&rt, &["state", "no-such-container"]);
    assert_ne!(r.code, 0);
    assert!(r.err.contains("does not exist"), "{}", r.err);
}

// ---- kill ----

#[test]
fn kill_by_names_and_numbers() {
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "trap 'echo usr1 >> /shared/usr1' USR1; trap 'echo term > /shared/term; exit 7' TERM; \
         touch /shared/ready; while :; do sleep 1 & wait $!; done",
    ]);
    let sh = share(&mut b);
    let rt = Runtime::new();
    let id = unique_id("kill");
    let pid = started(&rt, &b, &id);
    assert!(wait_file(&sh.path().join("ready"), 5));
    let usr1 = sh.path().join("usr1");
    call(&rt, &["kill", &id, "USR1"]).ok("kill USR1");
    assert!(
        wait_until(5, || read_trim(&usr1).lines().count() == 1),
        "USR1 by name not delivered"
    );
    call(&rt, &["kill", &id, "10"]).ok("kill 10");
    assert!(
        wait_until(5, || read_trim(&usr1).lines().count() == 2),
        "USR1 as 10 not delivered"
    );
    call(&rt, &["kill", &id, "SIGUSR1"]).ok("kill SIGUSR1");
    assert!(
        wait_until(5, || read_trim(&usr1).lines().count() == 3),
        "SIGUSR1 not delivered"
    );
    assert_eq!(rt.status(&id), "running", "USR1 is trapped: still running");

    // Default signal is SIGTERM.
    call(&rt, &["kill", &id]).ok("kill (TERM)");
    assert!(
        wait_file(&sh.path().join("term"), 5),
        "TERM trap did not run"
    );
    assert!(wait_until(5, || !pid_alive(pid)), "init survived TERM+exit");
    assert_eq!(rt.status(&id), "stopped");
    // Killing a stopped container is an error.
    assert_ne!(call(&rt, &["kill", &id, "KILL"]).code, 0);

    // KILL in its three spellings, each on a fresh container.
    for sig in ["9", "SIGKILL", "KILL"] {
        let b = Bundle::new(&["sleep", "1000"]);
        let id = unique_id("kill9");
        let pid = started(&rt, &b, &id);
        call(&rt, &["kill", &id, sig]).ok(sig);
        assert!(wait_until(5, || !pid_alive(pid)), "kill {sig} did not kill");
        assert_eq!(rt.status(&id), "stopped");
        call(&rt, &["delete", &id]).ok("delete stopped");
    }
    // Bad signal names are refused.
    let b2 = Bundle::new(&["sleep", "1000"]);
    let id2 = unique_id("killbad");
    let pid2 = started(&rt, &b2, &id2);
    for bad in ["NOPE", "0", "99"] {
        let r = call(&rt, &["kill", &id2, bad]);
        assert_ne!(r.code, 0, "kill {bad} accepted");
        assert!(r.err.contains("signal"), "{}", r.err);
    }
    assert!(pid_alive(pid2));
}

#[test]
fn kill_all_without_pid_namespace() {
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "sleep 1000 & sleep 1000 & touch /shared/ready; wait",
    ]);
    let sh = share(&mut b);
    drop_namespace(&mut b, "pid");
    let rt = Runtime::new();
    let id = unique_id("killall");
    started(&rt, &b, &id);
    assert!(wait_file(&sh.path().join("ready"), 5));
    let mut pids: Vec<i32> = Vec::new();
    assert!(
        wait_until(5, || {
            let r = call(&rt, &["ps", "--format", "json", &id]);
            pids = serde_json::from_str(&r.out).unwrap_or_default();
            pids.len() >= 3
        }),
        "expected sh + 2 sleeps, got {pids:?}"
    );
    call(&rt, &["kill", "--all", &id, "KILL"]).ok("kill --all");
    for p in &pids {
        assert!(
            wait_until(5, || !pid_alive(*p)),
            "pid {p} survived kill --all"
        );
    }
    assert_eq!(rt.status(&id), "stopped");
}

// ---- delete ----

#[test]
fn delete_running_needs_force_and_removes_everything() {
    let b = Bundle::new(&["sleep", "1000"]);
    let rt = Runtime::new();
    let id = unique_id("del");
    let pid = started(&rt, &b, &id);
    let dirs = cgroup_dirs(pid, &id);
    assert!(dirs.len() >= 5, "container not in its cgroups: {dirs:?}");
    assert!(dirs.iter().all(|d| d.is_dir()), "{dirs:?}");

    let r = call(&rt, &["delete", &id]);
    assert_ne!(r.code, 0, "delete of a running container succeeded");
    assert!(
        r.err.contains("running") && r.err.contains("--force"),
        "{}",
        r.err
    );
    assert!(pid_alive(pid), "failed delete killed the container");
    assert_eq!(rt.status(&id), "running");

    call(&rt, &["delete", "--force", &id]).ok("delete --force");
    assert!(!rt.root.path().join(&id).exists(), "state dir left behind");
    assert!(wait_until(5, || !pid_alive(pid)), "process left behind");
    for d in &dirs {
        assert!(!d.exists(), "cgroup dir left behind: {}", d.display());
    }
    let r = call(&rt, &["state", &id]);
    assert_ne!(r.code, 0, "state after delete");
    // delete --force of a missing container is fine (runc), plain delete is not.
    call(&rt, &["delete", "--force", &id]).ok("delete -f missing");
    assert_ne!(call(&rt, &["delete", &id]).code, 0);
}

#[test]
fn delete_created_container() {
    let mut b = Bundle::new(&["sh", "-c", "touch /shared/ran"]);
    let sh = share(&mut b);
    let rt = Runtime::new();
    let id = unique_id("delcreated");
    create(&rt, &b, &id).ok("create");
    let pid = rt.state(&id)["pid"].as_i64().unwrap() as i32;
    let dirs = cgroup_dirs(pid, &id);
    assert!(!dirs.is_empty());
    call(&rt, &["delete", &id]).ok("delete created");
    assert!(
        wait_until(5, || !pid_alive(pid)),
        "created init left behind"
    );
    assert!(!rt.root.path().join(&id).exists());
    for d in &dirs {
        assert!(!d.exists(), "cgroup dir left behind: {}", d.display());
    }
    assert!(
        !sh.path().join("ran").exists(),
        "deleting a created container ran its process"
    );
}

#[test]
fn duplicate_id_fails_and_keeps_the_first() {
    let b = Bundle::new(&["sleep", "1000"]);
    let rt = Runtime::new();
    let id = unique_id("dup");
    let pid = started(&rt, &b, &id);
    let dirs = cgroup_dirs(pid, &id);
    let r = create(&rt, &b, &id);
    assert_ne!(r.code, 0);
    assert!(r.err.contains("already exists"), "{}", r.err);
    assert_eq!(r.err.trim().lines().count(), 1, "{}", r.err);
    assert_eq!(
        rt.status(&id),
        "running",
        "the first container was disturbed"
    );
    assert!(pid_alive(pid));
    assert!(
        dirs.iter().all(|d| d.is_dir()),
        "first container's cgroups removed"
    );
}

// ---- run ----

#[test]
fn run_exit_codes() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sh", "-c", "exit 42"]);
    let id = unique_id("run");
    let (code, _, err) = rt.run(&b, &id);
    assert_eq!(code, 42, "{err}");
    assert!(
        !rt.root.path().join(&id).exists(),
        "run must delete the container"
    );

    // Death by a signal: 128+N. Without a pid namespace sh can kill itself.
    let mut b = Bundle::new(&["sh", "-c", "kill -KILL $$"]);
    drop_namespace(&mut b, "pid");
    let (code, _, err) = rt.run(&b, &unique_id("run"));
    assert_eq!(code, 128 + 9, "{err}");
    let mut b = Bundle::new(&["sh", "-c", "kill -SEGV $$"]);
    drop_namespace(&mut b, "pid");
    let (code, _, err) = rt.run(&b, &unique_id("run"));
    assert_eq!(code, 128 + 11, "{err}");

    // With a pid namespace: killed from outside.
    let b = Bundle::new(&["sleep", "1000"]);
    let id = unique_id("run");
    let mut kid = spawn_run(&rt, &b, &id, &[]);
    assert!(wait_until(5, || call(&rt, &["state", &id])
        .out
        .contains("running")));
    call(&rt, &["kill", &id, "KILL"]).ok("kill");
    let st = kid.wait_timeout(10).expect("run did not exit");
    assert_eq!(st.code(), Some(137));
}

fn spawn_run(rt: &Runtime, b: &Bundle, id: &str, extra: &[&str]) -> Kid {
    let mut c = rt.cmd();
    c.arg("run").args(extra).args(["--bundle", p(b.dir()), id]);
    Kid(c
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap())
}

#[test]
fn run_forwards_sigterm_and_sigint() {
    let rt = Runtime::new();
    for (sig, code) in [(libc::SIGTERM, 11), (libc::SIGINT, 12)] {
        let mut b = Bundle::new(&[
            "sh",
            "-c",
            "trap 'exit 11' TERM; trap 'exit 12' INT; touch /shared/ready; while :; do sleep 1 & wait $!; done",
        ]);
        let sh = share(&mut b);
        let id = unique_id("fwd");
        let mut kid = spawn_run(&rt, &b, &id, &[]);
        assert!(
            wait_file(&sh.path().join("ready"), 5),
            "container did not start"
        );
        // SAFETY: kill(2) on our own child.
        assert_eq!(unsafe { libc::kill(kid.pid(), sig) }, 0);
        let st = kid
            .wait_timeout(10)
            .expect("run did not exit after the signal");
        assert_eq!(
            st.code(),
            Some(code),
            "signal {sig} not forwarded to the container's trap"
        );
        assert!(
            !rt.root.path().join(&id).exists(),
            "run left its state behind"
        );
    }
}

#[test]
fn run_detach() {
    let mut b = Bundle::new(RUNNING);
    let sh = share(&mut b);
    let rt = Runtime::new();
    let id = unique_id("detach");
    let pidfile = sh.path().join("pid");
    let t0 = Instant::now();
    call(
        &rt,
        &[
            "run",
            "--detach",
            "--pid-file",
            p(&pidfile),
            "--bundle",
            p(b.dir()),
            &id,
        ],
    )
    .ok("run -d");
    assert!(t0.elapsed() < Duration::from_secs(5), "run -d waited");
    let st = rt.state(&id);
    assert_eq!(st["status"], "running");
    let pid = st["pid"].as_i64().unwrap() as i32;
    assert_eq!(read_trim(&pidfile), pid.to_string());
    assert!(wait_file(&sh.path().join("ready"), 5));
    call(&rt, &["kill", &id, "KILL"]).ok("kill");
    assert!(wait_until(5, || rt.status(&id) == "stopped"));
    call(&rt, &["delete", &id]).ok("delete stopped");
    assert!(!rt.root.path().join(&id).exists());
}

#[test]
fn run_keep() {
    let b = Bundle::new(&["sh", "-c", "exit 3"]);
    let rt = Runtime::new();
    let id = unique_id("keep");
    let r = call(&rt, &["run", "--keep", "--bundle", p(b.dir()), &id]);
    assert_eq!(r.code, 3, "{}", r.err);
    let st = rt.state(&id);
    assert_eq!(st["status"], "stopped", "{st}");
    assert_eq!(st["pid"], 0, "{st}");
    let cg = Path::new("/sys/fs/cgroup/memory/berth").join(&id);
    assert!(cg.is_dir(), "--keep must keep the cgroup until delete");
    call(&rt, &["delete", &id]).ok("delete kept");
    assert!(!rt.root.path().join(&id).exists());
    assert!(!cg.exists(), "cgroup left after delete");
}
