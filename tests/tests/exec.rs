//! `exec` into a running container: exit codes, --env/--cwd/--user,
//! --process, --detach/--pid-file, the pid namespace and cgroups it joins,
//! --cap, and refusal in a stopped container.

use berth_integration::{
    call, path_str as p, pid_alive, read_trim, share, started, unique_id, wait_until, Bundle,
    Runtime,
};
use serde_json::json;
use std::time::{Duration, Instant};

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
    // The shell creates the file before it writes the pid: wait for content.
    let inner = sh.path().join("inner");
    assert!(wait_until(5, || !read_trim(&inner).is_empty()));
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
