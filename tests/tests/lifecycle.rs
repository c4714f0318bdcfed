//! The container lifecycle through the runc-compatible command line:
//! create/start/state/kill/delete, run, exec, list, ps, pause/resume, spec,
//! features and the global flags engines rely on.

use berth_integration::{pid_alive, unique_id, wait_until, Bundle, Runtime};
use serde_json::{json, Value};
use std::io::{Read, Seek};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

// ---- helpers (each test file is its own crate) ----

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

/// Captured result of one berth-runtime command.
struct Res {
    code: i32,
    out: String,
    err: String,
}

impl Res {
    fn ok(&self, what: &str) -> &Self {
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
fn call_cmd(mut c: Command) -> Res {
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

fn call(rt: &Runtime, args: &[&str]) -> Res {
    let mut c = rt.cmd();
    c.args(args);
    call_cmd(c)
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn create(rt: &Runtime, b: &Bundle, id: &str) -> Res {
    call(rt, &["create", "--bundle", p(b.dir()), id])
}

/// create + start; returns the init's pid.
fn started(rt: &Runtime, b: &Bundle, id: &str) -> i32 {
    create(rt, b, id).ok("create");
    call(rt, &["start", id]).ok("start");
    rt.state(id)["pid"].as_i64().unwrap() as i32
}

/// Bind-mount a fresh host temp dir at /shared in the container.
fn share(b: &mut Bundle) -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("berth-shared-")
        .tempdir()
        .unwrap();
    let src = p(d.path()).to_string();
    b.edit(|c| {
        c["mounts"].as_array_mut().unwrap().push(
            json!({"destination": "/shared", "type": "bind", "source": src, "options": ["rbind", "rw"]}),
        )
    });
    d
}

fn drop_namespace(b: &mut Bundle, typ: &str) {
    b.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != typ)
    });
}

fn wait_file(path: &Path, secs: u64) -> bool {
    wait_until(secs, || path.exists())
}

fn read_trim(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .trim()
        .to_string()
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

// ---- exec ----

#[test]
fn exec_exit_code_env_cwd_user() {
    let b = Bundle::new(&["sleep", "1000"]);
    let rt = Runtime::new();
    let id = unique_id("exec");
    started(&rt, &b, &id);
    let r = call(&rt, &["exec", &id, "sh", "-c", "exit 5"]);
    assert_eq!(r.code, 5, "{}", r.err);
    let r = call(&rt, &["exec", &id, "sh", "-c", "kill -KILL $$"]);
    assert_eq!(r.code, 137, "exec signal death: {}", r.err);
    let r = call(
        &rt,
        &[
            "exec",
            "--env",
            "FOO=bar baz",
            "-e",
            "X=1",
            &id,
            "sh",
            "-c",
            "echo \"$FOO|$X|$TERM\"",
        ],
    );
    r.ok("exec --env");
    assert_eq!(
        r.out, "bar baz|1|xterm\n",
        "env from flags plus the config's"
    );
    let r = call(&rt, &["exec", "--cwd", "/tmp", &id, "pwd"]);
    r.ok("exec --cwd");
    assert_eq!(r.out, "/tmp\n");
    let r = call(
        &rt,
        &[
            "exec",
            "--user",
            "1000:1000",
            &id,
            "sh",
            "-c",
            "echo $(id -u):$(id -g)",
        ],
    );
    r.ok("exec --user");
    assert_eq!(r.out, "1000:1000\n");
    let r = call(&rt, &["exec", "--user", "1000", &id, "id", "-u"]);
    r.ok("exec --user uid");
    assert_eq!(r.out, "1000\n");
    let r = call(&rt, &["exec", &id, "no-such-cmd-xyz"]);
    assert_ne!(r.code, 0);
    assert!(r.err.contains("executable file not found"), "{}", r.err);
    assert_eq!(
        rt.status(&id),
        "running",
        "a failed exec disturbed the container"
    );
}

#[test]
fn exec_process_json() {
    let b = Bundle::new(&["sleep", "1000"]);
    let rt = Runtime::new();
    let id = unique_id("execp");
    started(&rt, &b, &id);
    let dir = tempfile::tempdir().unwrap();
    let pj = dir.path().join("process.json");
    std::fs::write(
        &pj,
        serde_json::to_vec(&json!({
            "terminal": false,
            "user": {"uid": 65534, "gid": 65534},
            "args": ["sh", "-c", "echo \"$P:$(pwd):$(id -u)\"; exit 3"],
            "env": ["PATH=/bin:/usr/bin", "P=from-process-json"],
            "cwd": "/etc"
        }))
        .unwrap(),
    )
    .unwrap();
    let r = call(&rt, &["exec", "--process", p(&pj), &id]);
    assert_eq!(r.code, 3, "{}", r.err);
    assert_eq!(r.out, "from-process-json:/etc:65534\n");
}

#[test]
fn exec_detach_pid_file_and_pid_namespace() {
    let mut b = Bundle::new(&["sleep", "1000"]);
    let sh = share(&mut b);
    let rt = Runtime::new();
    let id = unique_id("execd");
    let init = started(&rt, &b, &id);
    // exec joins the pid namespace: pid 1 is the container's init.
    let r = call(
        &rt,
        &[
            "exec",
            &id,
            "sh",
            "-c",
            "tr '\\0' ' ' < /proc/1/cmdline; echo; echo $$",
        ],
    );
    r.ok("exec cat /proc/1/cmdline");
    let mut lines = r.out.lines();
    assert_eq!(lines.next().unwrap().trim(), "sleep 1000", "{}", r.out);
    let own: i32 = lines.next().unwrap().parse().unwrap();
    assert!(
        own > 1 && own < 100,
        "exec'd sh must be a small pid in the container's namespace: {own}"
    );

    let pidfile = sh.path().join("exec.pid");
    let t0 = Instant::now();
    call(
        &rt,
        &[
            "exec",
            "--detach",
            "--pid-file",
            p(&pidfile),
            &id,
            "sh",
            "-c",
            "echo $$ > /shared/inner; exec sleep 1000",
        ],
    )
    .ok("exec -d");
    assert!(t0.elapsed() < Duration::from_secs(5));
    let host_pid: i32 = read_trim(&pidfile).parse().expect("pid file");
    assert!(pid_alive(host_pid), "detached exec process is not running");
    assert!(wait_file(&sh.path().join("inner"), 5));
    let status = std::fs::read_to_string(format!("/proc/{host_pid}/status")).unwrap();
    let nspid: Vec<&str> = status
        .lines()
        .find(|l| l.starts_with("NSpid:"))
        .unwrap()
        .split_whitespace()
        .skip(1)
        .collect();
    assert_eq!(
        nspid.len(),
        2,
        "exec'd process must be in a nested pid ns: {nspid:?}"
    );
    assert_eq!(nspid[0], host_pid.to_string());
    assert_eq!(nspid[1], read_trim(&sh.path().join("inner")));
    // Same cgroups as the init.
    let cg = |p: i32| std::fs::read_to_string(format!("/proc/{p}/cgroup")).unwrap();
    assert_eq!(cg(host_pid), cg(init));
    // ps lists it.
    let pids: Vec<i32> =
        serde_json::from_str(&call(&rt, &["ps", "--format", "json", &id]).out).unwrap();
    assert!(pids.contains(&host_pid) && pids.contains(&init), "{pids:?}");
    call(&rt, &["delete", "--force", &id]).ok("delete");
    assert!(
        wait_until(5, || !pid_alive(host_pid)),
        "exec'd process survived delete --force"
    );
}

fn cap_eff(out: &str) -> u64 {
    let l = out
        .lines()
        .find(|l| l.starts_with("CapEff:"))
        .expect("CapEff");
    u64::from_str_radix(l.split_whitespace().nth(1).unwrap(), 16).unwrap()
}

#[test]
fn exec_cap_adds_a_capability() {
    let b = Bundle::new(&["sleep", "1000"]);
    let rt = Runtime::new();
    let id = unique_id("execcap");
    started(&rt, &b, &id);
    const NET_ADMIN: u64 = 1 << 12;
    const KILL: u64 = 1 << 5;
    let r = call(&rt, &["exec", &id, "cat", "/proc/self/status"]);
    r.ok("exec");
    let base = cap_eff(&r.out);
    assert_eq!(
        base & NET_ADMIN,
        0,
        "CAP_NET_ADMIN must not be there by default"
    );
    assert_ne!(base & KILL, 0, "config's CAP_KILL missing");
    let r = call(
        &rt,
        &[
            "exec",
            "--cap",
            "CAP_NET_ADMIN",
            &id,
            "cat",
            "/proc/self/status",
        ],
    );
    r.ok("exec --cap");
    let with = cap_eff(&r.out);
    assert_eq!(
        with,
        base | NET_ADMIN,
        "--cap CAP_NET_ADMIN: {with:x} vs {base:x}"
    );
    // And it works: NET_ADMIN lets us bring lo up in the container's netns.
    let r = call(&rt, &["exec", &id, "ip", "link", "set", "lo", "up"]);
    assert_ne!(r.code, 0, "ip link set without CAP_NET_ADMIN succeeded");
    call(
        &rt,
        &[
            "exec",
            "--cap",
            "CAP_NET_ADMIN",
            &id,
            "ip",
            "link",
            "set",
            "lo",
            "up",
        ],
    )
    .ok("ip link with cap");
    let r = call(&rt, &["exec", "--cap", "CAP_NOPE", &id, "true"]);
    assert_ne!(r.code, 0);
    assert!(r.err.contains("CAP_NOPE"), "{}", r.err);
}

#[test]
fn exec_in_stopped_container_fails() {
    let b = Bundle::new(&["sh", "-c", "exit 0"]);
    let rt = Runtime::new();
    let id = unique_id("execstop");
    let pid = started(&rt, &b, &id);
    assert!(wait_until(5, || !pid_alive(pid)));
    let r = call(&rt, &["exec", &id, "true"]);
    assert_ne!(r.code, 0);
    assert!(r.err.contains("stopped"), "{}", r.err);
}

// ---- list / ps ----

#[test]
fn list_table_and_json() {
    let b1 = Bundle::new(&["sleep", "1000"]);
    let b2 = Bundle::new(&["sleep", "1000"]);
    let rt = Runtime::new();
    let id1 = unique_id("lista");
    let id2 = unique_id("listb");
    let pid1 = started(&rt, &b1, &id1);
    create(&rt, &b2, &id2).ok("create");
    let pid2 = rt.state(&id2)["pid"].as_i64().unwrap();

    let r = call(&rt, &["list"]);
    r.ok("list");
    let mut lines = r.out.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows.len(), 2, "{}", r.out);
    let row = |id: &str| {
        rows.iter()
            .find(|r| r[0] == id)
            .unwrap_or_else(|| panic!("{id} not listed"))
            .clone()
    };
    assert_eq!(row(&id1)[1], pid1.to_string());
    assert_eq!(row(&id1)[2], "running");
    assert_eq!(row(&id2)[1], pid2.to_string());
    assert_eq!(row(&id2)[2], "created");
    assert_eq!(
        Path::new(row(&id1)[3]),
        std::fs::canonicalize(b1.dir()).unwrap()
    );

    let r = call(&rt, &["list", "--format", "json"]);
    r.ok("list json");
    let v: Value = serde_json::from_str(&r.out).unwrap();
    let arr = v.as_array().unwrap();
    assert_eq!(arr.len(), 2);
    let get = |id: &str| arr.iter().find(|c| c["id"] == id).unwrap().clone();
    assert_eq!(get(&id1)["status"], "running");
    assert_eq!(get(&id1)["pid"], pid1);
    assert_eq!(get(&id2)["status"], "created");

    let r = call(&rt, &["list", "-q"]);
    let mut ids: Vec<&str> = r.out.lines().collect();
    ids.sort();
    let mut want = vec![id1.as_str(), id2.as_str()];
    want.sort();
    assert_eq!(ids, want);
    assert_ne!(call(&rt, &["list", "--format", "yaml"]).code, 0);
}

#[test]
fn ps_table_and_json() {
    let mut b = Bundle::new(&["sh", "-c", "sleep 1000 & touch /shared/ready; wait"]);
    let sh = share(&mut b);
    let rt = Runtime::new();
    let id = unique_id("ps");
    let init = started(&rt, &b, &id);
    assert!(wait_file(&sh.path().join("ready"), 5));
    let mut pids: Vec<i32> = Vec::new();
    assert!(wait_until(5, || {
        pids = serde_json::from_str(&call(&rt, &["ps", "--format", "json", &id]).out)
            .unwrap_or_default();
        pids.len() == 2
    }));
    assert!(pids.contains(&init), "{pids:?}");
    let child = *pids.iter().find(|p| **p != init).unwrap();
    assert!(
        std::fs::read_to_string(format!("/proc/{child}/cmdline"))
            .unwrap()
            .starts_with("sleep"),
        "second pid is not the sleep"
    );

    let r = call(&rt, &["ps", &id]);
    r.ok("ps");
    let mut lines = r.out.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    let col = header.iter().position(|h| *h == "PID").expect("PID column");
    let listed: Vec<i32> = lines
        .map(|l| l.split_whitespace().nth(col).unwrap().parse().unwrap())
        .collect();
    let mut want = pids.clone();
    want.sort();
    let mut got = listed.clone();
    got.sort();
    assert_eq!(got, want, "{}", r.out);
}

// ---- pause / resume ----

fn counter(path: &Path) -> u64 {
    for _ in 0..100 {
        if let Ok(n) = read_trim(path).parse() {
            return n;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("counter unreadable");
}

#[test]
fn pause_resume_freezes_processes() {
    let mut b = Bundle::new(&["sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /shared/n.tmp; mv /shared/n.tmp /shared/n; usleep 5000; done"]);
    let sh = share(&mut b);
    let n = sh.path().join("n");
    let rt = Runtime::new();
    let id = unique_id("pause");
    let pid = started(&rt, &b, &id);
    assert!(wait_until(5, || read_trim(&n)
        .parse::<u64>()
        .is_ok_and(|v| v > 3)));
    call(&rt, &["pause", &id]).ok("pause");
    assert_eq!(rt.status(&id), "paused");
    let fz = Path::new("/sys/fs/cgroup/freezer/berth")
        .join(&id)
        .join("freezer.state");
    assert_eq!(read_trim(&fz), "FROZEN");
    let st = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    assert!(pid_alive(pid), "{st}");
    std::thread::sleep(Duration::from_millis(50));
    let a = counter(&n);
    std::thread::sleep(Duration::from_millis(400));
    let c = counter(&n);
    assert_eq!(a, c, "counter advanced while paused");
    // A second pause and exec into a paused container are refused.
    assert_ne!(call(&rt, &["pause", &id]).code, 0);
    let r = call(&rt, &["exec", &id, "true"]);
    assert_ne!(r.code, 0, "exec into a paused container");
    assert!(r.err.contains("paused"), "{}", r.err);

    call(&rt, &["resume", &id]).ok("resume");
    assert_eq!(rt.status(&id), "running");
    assert_eq!(read_trim(&fz), "THAWED");
    assert!(
        wait_until(5, || counter(&n) > c + 3),
        "counter did not advance after resume"
    );
    assert_ne!(
        call(&rt, &["resume", &id]).code,
        0,
        "resume of a running container"
    );

    // delete --force of a paused container works.
    call(&rt, &["pause", &id]).ok("pause");
    call(&rt, &["delete", "--force", &id]).ok("delete paused");
    assert!(wait_until(5, || !pid_alive(pid)));
    assert!(!fz.parent().unwrap().exists());
}

// ---- spec / features / version ----

#[test]
fn spec_writes_config_and_refuses_overwrite() {
    let mut b = Bundle::new(&["true"]);
    std::fs::remove_file(b.dir().join("config.json")).unwrap();
    let rt = Runtime::new();
    call(&rt, &["spec", "--bundle", p(b.dir())]).ok("spec");
    let path = b.dir().join("config.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let v: Value = serde_json::from_str(&text).expect("spec writes JSON");
    assert!(v["ociVersion"].as_str().unwrap().starts_with("1."));
    assert_eq!(v["root"]["path"], "rootfs");
    assert_eq!(v["process"]["args"], json!(["sh"]));
    assert_eq!(v["process"]["terminal"], true);

    let r = call(&rt, &["spec", "--bundle", p(b.dir())]);
    assert_ne!(r.code, 0, "spec overwrote config.json");
    assert!(r.err.contains("exists"), "{}", r.err);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        text,
        "config.json changed"
    );

    // The generated config runs as is (but without a terminal).
    b.config = v;
    b.edit(|c| {
        c["process"]["terminal"] = json!(false);
        c["process"]["args"] = json!(["sh", "-c", "echo spec-ok"]);
    });
    let (code, out, err) = rt.run(&b, &unique_id("spec"));
    assert_eq!((code, out.as_str()), (0, "spec-ok\n"), "{err}");

    // --rootless adds a user namespace with mappings.
    let d = tempfile::tempdir().unwrap();
    call(&rt, &["spec", "--rootless", "--bundle", p(d.path())]).ok("spec --rootless");
    let v: Value =
        serde_json::from_slice(&std::fs::read(d.path().join("config.json")).unwrap()).unwrap();
    assert!(v["linux"]["uidMappings"].is_array(), "{v}");
    assert!(v["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["type"] == "user"));
}

#[test]
fn features_is_json() {
    let rt = Runtime::new();
    let r = call(&rt, &["features"]);
    r.ok("features");
    let v: Value = serde_json::from_str(&r.out).expect("features JSON");
    let max = v["ociVersionMax"].as_str().expect("ociVersionMax");
    assert!(max.starts_with("1."), "{max}");
    assert!(v["ociVersionMin"].is_string());
    let hooks = v["hooks"].as_array().unwrap();
    for h in [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ] {
        assert!(hooks.iter().any(|x| x == h), "hook {h} missing");
    }
    let ns = v["linux"]["namespaces"].as_array().unwrap();
    assert!(ns.iter().any(|n| n == "pid"));
}

#[test]
fn version_flag() {
    let rt = Runtime::new();
    for flag in ["--version", "-v"] {
        let r = call(&rt, &[flag]);
        r.ok(flag);
        assert!(r.out.starts_with("berth-runtime version "), "{}", r.out);
        assert!(r.out.contains("spec: 1."), "{}", r.out);
    }
}

// ---- global and create flags ----

#[test]
fn preserve_fds_passes_exactly_the_extra_fds() {
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "cat <&3 > /shared/fd3; if [ -e /proc/$$/fd/4 ]; then echo leaked > /shared/fd4; else echo closed > /shared/fd4; fi",
    ]);
    let sh = share(&mut b);
    let f3 = sh.path().join("in3");
    let f4 = sh.path().join("in4");
    std::fs::write(&f3, "preserved-data\n").unwrap();
    std::fs::write(&f4, "not-preserved\n").unwrap();
    let a = std::fs::File::open(&f3).unwrap();
    let c = std::fs::File::open(&f4).unwrap();
    let (fa, fc) = (
        std::os::fd::AsRawFd::as_raw_fd(&a),
        std::os::fd::AsRawFd::as_raw_fd(&c),
    );
    let rt = Runtime::new();
    let id = unique_id("pfds");
    let mut cmd = rt.cmd();
    cmd.args(["create", "--preserve-fds", "1", "--bundle", p(b.dir()), &id]);
    // SAFETY: only async-signal-safe fcntl/dup2 between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let x = libc::fcntl(fa, libc::F_DUPFD_CLOEXEC, 100);
            let y = libc::fcntl(fc, libc::F_DUPFD_CLOEXEC, 100);
            if x < 0 || y < 0 || libc::dup2(x, 3) < 0 || libc::dup2(y, 4) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    call_cmd(cmd).ok("create --preserve-fds 1");
    call(&rt, &["start", &id]).ok("start");
    assert!(wait_file(&sh.path().join("fd4"), 5));
    assert_eq!(
        read_trim(&sh.path().join("fd3")),
        "preserved-data",
        "fd 3 not readable inside"
    );
    assert_eq!(
        read_trim(&sh.path().join("fd4")),
        "closed",
        "fd 4 beyond --preserve-fds leaked in"
    );
}

#[test]
fn no_pivot_still_confines_to_rootfs() {
    let b = Bundle::new(&[
        "sh",
        "-c",
        "[ -x /bin/busybox ] && [ ! -e /work/main ] && [ ! -e /etc/debian_version ] && echo confined",
    ]);
    let rt = Runtime::new();
    let id = unique_id("nopivot");
    let r = call(&rt, &["run", "--no-pivot", "--bundle", p(b.dir()), &id]);
    assert_eq!(r.code, 0, "{}", r.err);
    assert_eq!(r.out, "confined\n");
}

#[test]
fn log_json_records_the_error() {
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| c["root"]["path"] = json!("no-such-rootfs"));
    let rt = Runtime::new();
    let id = unique_id("logjson");
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("log.json");
    let r = call(
        &rt,
        &[
            "--log",
            p(&log),
            "--log-format",
            "json",
            "create",
            "--bundle",
            p(b.dir()),
            &id,
        ],
    );
    assert_ne!(r.code, 0);
    let text = std::fs::read_to_string(&log).expect("log file written");
    let mut errors = Vec::new();
    for l in text.lines() {
        let v: Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("log line {l:?} is not JSON: {e}"));
        assert!(v["time"].is_string(), "{l}");
        if v["level"] == "error" {
            errors.push(v["msg"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(errors.len(), 1, "{text}");
    assert!(errors[0].contains("no-such-rootfs"), "{}", errors[0]);
    assert!(!rt.root.path().join(&id).exists());
    // Text format too.
    let log2 = d.path().join("log.txt");
    let r = call(
        &rt,
        &["--log", p(&log2), "create", "--bundle", p(b.dir()), &id],
    );
    assert_ne!(r.code, 0);
    let t = std::fs::read_to_string(&log2).unwrap();
    assert!(
        t.contains("level=error") && t.contains("no-such-rootfs"),
        "{t}"
    );
}

#[test]
fn systemd_cgroup_is_not_supported() {
    let b = Bundle::new(&["true"]);
    let rt = Runtime::new();
    let id = unique_id("systemd");
    let r = call(
        &rt,
        &["--systemd-cgroup", "create", "--bundle", p(b.dir()), &id],
    );
    assert_ne!(r.code, 0);
    assert!(
        r.err.contains("systemd-cgroup") && r.err.contains("not supported"),
        "{}",
        r.err
    );
    assert_eq!(r.err.trim().lines().count(), 1, "{}", r.err);
    assert!(!rt.root.path().join(&id).exists());
    // A systemd-style cgroupsPath is refused clearly too.
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| c["linux"]["cgroupsPath"] = json!("system.slice:berth:x"));
    let r = call(&rt, &["create", "--bundle", p(b.dir()), &id]);
    assert_ne!(r.code, 0);
    assert!(r.err.contains("systemd"), "{}", r.err);
    assert!(!rt.root.path().join(&id).exists());
}
