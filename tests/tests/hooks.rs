//! OCI hooks: each stage runs at its point of the lifecycle, in the right
//! namespaces, with the state on stdin, its args and env; failing or hung
//! create-time hooks fail `create` and leave nothing behind.

use berth_integration::{
    assert_no_state_cgroup_or_process as assert_nothing_left, call, call_cmd, create,
    path_str as p, procs_with, read_trim as read, share_prefixed, unique_id, wait_until, Bundle,
    Runtime,
};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

// ---- helpers (each test file is its own crate; shared ones are in berth_integration) ----

fn json_of(path: &Path) -> Value {
    serde_json::from_str(&read(path))
        .unwrap_or_else(|e| panic!("{}: {e}: {:?}", path.display(), read(path)))
}

/// A hook run by the host's /bin/sh (runtime namespace, or the container's
/// namespaces before pivot_root for createContainer): saves its stdin, its
/// argv, $HOOKVAR, its own mount/net namespaces and those of the pid in the
/// state, whether the container's process already ran, and appends to the
/// order log.
fn host_hook(dir: &Path, stage: &str) -> Value {
    let d = p(dir);
    let script = format!(
        "cat > {d}/{stage}.json; echo {stage} >> {d}/order; \
         tr '\\0' ' ' < /proc/$$/cmdline > {d}/{stage}.argv; echo \"$HOOKVAR|$0|$1\" > {d}/{stage}.env; \
         env > {d}/{stage}.allenv; \
         readlink /proc/self/ns/mnt > {d}/{stage}.mnt; \
         pid=$(sed -n 's/.*\"pid\":\\([0-9]*\\).*/\\1/p' {d}/{stage}.json); \
         readlink /proc/$pid/ns/net > {d}/{stage}.cnet; \
         if [ -e {d}/ran ]; then echo ran > {d}/{stage}.ran; else echo notran > {d}/{stage}.ran; fi"
    );
    json!({"path": "/bin/sh", "args": [format!("hook-{stage}"), "-c", script, "a1", "a2"], "env": [format!("HOOKVAR={stage}-val")]})
}

/// startContainer runs after pivot_root: its path and files are the
/// container's (busybox sh, the /shared bind mount).
fn container_hook(stage: &str) -> Value {
    let script = format!(
        "cat > /shared/{stage}.json; echo {stage} >> /shared/order; echo \"$HOOKVAR|$0\" > /shared/{stage}.env; \
         readlink /proc/self/ns/mnt > /shared/{stage}.mnt; \
         if [ -e /shared/ran ]; then echo ran > /shared/{stage}.ran; else echo notran > /shared/{stage}.ran; fi"
    );
    json!({"path": "/bin/sh", "args": ["sh", "-c", script, "c1"], "env": [format!("HOOKVAR={stage}-val")]})
}

fn ns_of(pid: &str, ns: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{ns}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

// ---- tests ----

#[test]
fn every_stage_runs_at_its_time_with_state_args_and_env() {
    let mut b = Bundle::new(&["sh", "-c", "touch /shared/ran; exec sleep 1000"]);
    let sh = share_prefixed(&mut b, "berth-hooks-");
    let d: PathBuf = sh.path().to_path_buf();
    b.edit(|c| {
        c["hooks"] = json!({
            "prestart": [host_hook(&d, "prestart")],
            "createRuntime": [host_hook(&d, "createRuntime")],
            "createContainer": [host_hook(&d, "createContainer")],
            "startContainer": [container_hook("startContainer")],
            "poststart": [host_hook(&d, "poststart")],
            "poststop": [host_hook(&d, "poststop")],
        })
    });
    let rt = Runtime::new();
    let id = unique_id("hooks");
    let bundle = std::fs::canonicalize(b.dir()).unwrap();
    let host_mnt = ns_of("self", "mnt");

    let mut c = rt.cmd();
    c.env("BERTH_HOOK_LEAK", "1")
        .args(["create", "--bundle", p(b.dir()), &id]);
    call_cmd(c).ok("create");
    let pid = rt.state(&id)["pid"].as_i64().unwrap();
    let cmnt = ns_of(&pid.to_string(), "mnt");
    let cnet = ns_of(&pid.to_string(), "net");
    assert_ne!(cnet, ns_of("self", "net"));
    assert_eq!(
        read(&d.join("order")),
        "prestart\ncreateRuntime\ncreateContainer",
        "after create"
    );
    for stage in ["prestart", "createRuntime", "createContainer"] {
        let st = json_of(&d.join(format!("{stage}.json")));
        assert_eq!(st["id"], id.as_str(), "{stage}: {st}");
        assert_eq!(st["pid"], pid, "{stage}: {st}");
        assert!(
            matches!(st["status"].as_str(), Some("creating" | "created")),
            "{stage}: {st}"
        );
        assert_eq!(Path::new(st["bundle"].as_str().unwrap()), bundle, "{stage}");
        assert!(st["ociVersion"].is_string());
        assert_eq!(
            read(&d.join(format!("{stage}.ran"))),
            "notran",
            "{stage} ran after the user process"
        );
        // The container's network namespace exists already (prestart sets up networking).
        assert_eq!(read(&d.join(format!("{stage}.cnet"))), cnet, "{stage}");
        // argv[0] and the rest as configured (createContainer runs in the
        // container's pid namespace with the host's /proc: $$ is not its pid
        // there); env exactly the hook's.
        if stage != "createContainer" {
            let argv = read(&d.join(format!("{stage}.argv")));
            assert!(
                argv.starts_with(&format!("hook-{stage} -c ")),
                "{stage}: {argv}"
            );
            assert!(argv.ends_with(" a1 a2"), "{stage}: {argv}");
        }
        assert_eq!(
            read(&d.join(format!("{stage}.env"))),
            format!("{stage}-val|a1|a2")
        );
        let env = read(&d.join(format!("{stage}.allenv")));
        assert!(
            !env.contains("BERTH_HOOK_LEAK"),
            "runtime env leaked into the hook: {env}"
        );
        assert!(env.contains(&format!("HOOKVAR={stage}-val")), "{env}");
    }
    // prestart/createRuntime in the runtime's mount ns, createContainer in the container's.
    assert_eq!(read(&d.join("prestart.mnt")), host_mnt);
    assert_eq!(read(&d.join("createRuntime.mnt")), host_mnt);
    assert_eq!(read(&d.join("createContainer.mnt")), cmnt);
    assert!(
        !d.join("startContainer.json").exists(),
        "startContainer ran at create"
    );
    assert!(
        !d.join("poststart.json").exists(),
        "poststart ran at create"
    );

    call(&rt, &["start", &id]).ok("start");
    // poststart has run by the time start returns.
    let st = json_of(&d.join("poststart.json"));
    assert_eq!(
        (st["id"].as_str(), st["status"].as_str()),
        (Some(id.as_str()), Some("running")),
        "{st}"
    );
    assert_eq!(st["pid"], pid);
    assert_eq!(read(&d.join("poststart.mnt")), host_mnt);
    assert!(
        wait_until(5, || d.join("ran").exists()),
        "user process did not run"
    );
    let st = json_of(&d.join("startContainer.json"));
    assert_eq!(st["id"], id.as_str());
    assert!(
        matches!(st["status"].as_str(), Some("creating" | "created")),
        "{st}"
    );
    assert_eq!(
        read(&d.join("startContainer.ran")),
        "notran",
        "startContainer must precede the user process"
    );
    assert_eq!(
        read(&d.join("startContainer.mnt")),
        cmnt,
        "startContainer must run in the container"
    );
    assert_eq!(read(&d.join("startContainer.env")), "startContainer-val|c1");
    assert!(!d.join("poststop.json").exists());

    call(&rt, &["kill", &id, "KILL"]).ok("kill");
    assert!(wait_until(5, || rt.status(&id) == "stopped"));
    assert!(
        !d.join("poststop.json").exists(),
        "poststop ran before delete"
    );
    call(&rt, &["delete", &id]).ok("delete");
    let st = json_of(&d.join("poststop.json"));
    assert_eq!(
        (st["id"].as_str(), st["status"].as_str()),
        (Some(id.as_str()), Some("stopped")),
        "{st}"
    );
    assert_eq!(read(&d.join("poststop.env")), "poststop-val|a1|a2");
    let order = read(&d.join("order"));
    let order: Vec<&str> = order.lines().collect();
    assert_eq!(order.len(), 6, "{order:?}");
    assert_eq!(
        &order[..3],
        ["prestart", "createRuntime", "createContainer"]
    );
    assert_eq!(order[5], "poststop");
}

#[test]
fn hooks_of_a_stage_run_in_order() {
    let mut b = Bundle::new(&["true"]);
    let sh = tempfile::tempdir().unwrap();
    let log = sh.path().join("log");
    let h = |n: u32| json!({"path": "/bin/sh", "args": ["sh", "-c", format!("echo {n} >> {}", p(&log))]});
    b.edit(|c| c["hooks"] = json!({"prestart": [h(1), h(2), h(3)]}));
    let rt = Runtime::new();
    let (code, _, err) = rt.run(&b, &unique_id("order"));
    assert_eq!(code, 0, "{err}");
    assert_eq!(read(&log), "1\n2\n3");
}

fn failing(stage: &str) -> Value {
    json!([{"path": "/bin/sh", "args": ["sh", "-c", format!("cat >/dev/null; echo {stage}-hook-said-no >&2; exit 3")]}])
}

#[test]
fn failing_create_time_hooks_fail_create_and_leave_nothing() {
    let rt = Runtime::new();
    for stage in ["prestart", "createRuntime", "createContainer"] {
        let id = unique_id("hookfail");
        let mut b = Bundle::new(&["sh", "-c", &format!("touch /shared/ran; sleep 1000 # {id}")]);
        let sh = share_prefixed(&mut b, "berth-hooks-");
        b.edit(|c| c["hooks"] = json!({ stage: failing(stage) }));
        let r = create(&rt, &b, &id);
        assert_ne!(r.code, 0, "{stage}: create succeeded with a failing hook");
        assert!(
            r.err.contains(stage),
            "{stage}: error does not name the stage: {}",
            r.err
        );
        assert!(
            r.err.contains(&format!("{stage}-hook-said-no")),
            "{stage}: hook's stderr missing: {}",
            r.err
        );
        assert_nothing_left(&rt, &id);
        assert!(!sh.path().join("ran").exists(), "{stage}: user process ran");
        // run fails the same way.
        let id = unique_id("hookfail");
        let (code, _, err) = rt.run(&b, &id);
        assert_ne!(code, 0);
        assert!(err.contains(stage), "{err}");
        assert_nothing_left(&rt, &id);
    }
}

#[test]
fn hook_timeout_fails_create() {
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| {
        c["hooks"] = json!({"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", "sleep 30"], "timeout": 1}]})
    });
    let rt = Runtime::new();
    let id = unique_id("hooktimeout");
    let t0 = Instant::now();
    let r = create(&rt, &b, &id);
    let took = t0.elapsed();
    assert_ne!(r.code, 0, "create succeeded with a hung hook");
    assert!(
        took < Duration::from_secs(5),
        "timeout not enforced: {took:?}"
    );
    assert!(
        took >= Duration::from_millis(900),
        "gave up before the timeout: {took:?}"
    );
    assert!(
        r.err.contains("prestart") && r.err.contains("timed out"),
        "{}",
        r.err
    );
    assert_nothing_left(&rt, &id);
    // The hung hook was killed too.
    assert!(
        wait_until(3, || procs_with("sleep 30").is_empty()),
        "timed-out hook still running"
    );
}

#[test]
fn missing_hook_binary_fails_create() {
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| c["hooks"] = json!({"createRuntime": [{"path": "/no/such/hook-binary"}]}));
    let rt = Runtime::new();
    let id = unique_id("hookmissing");
    let r = create(&rt, &b, &id);
    assert_ne!(r.code, 0);
    assert!(r.err.contains("/no/such/hook-binary"), "{}", r.err);
    assert_nothing_left(&rt, &id);
}

#[test]
fn failing_poststart_and_poststop_only_warn() {
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.edit(|c| {
        c["hooks"] = json!({"poststart": failing("poststart"), "poststop": failing("poststop")})
    });
    let rt = Runtime::new();
    let id = unique_id("hookwarn");
    create(&rt, &b, &id).ok("create");
    let r = call(&rt, &["start", &id]);
    r.ok("start with failing poststart");
    assert!(
        r.err.contains("poststart-hook-said-no"),
        "no warning: {}",
        r.err
    );
    assert_eq!(rt.status(&id), "running");
    let r = call(&rt, &["delete", "--force", &id]);
    r.ok("delete with failing poststop");
    assert!(
        r.err.contains("poststop-hook-said-no"),
        "no warning: {}",
        r.err
    );
    assert_nothing_left(&rt, &id);
}

#[test]
fn hook_env_is_exactly_the_configured_env() {
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| {
        c["hooks"] = json!({"prestart": [{"path": "/usr/bin/env", "args": ["env"], "env": ["A=1", "B=two words"]}]})
    });
    let rt = Runtime::new();
    let mut c = rt.cmd();
    c.env("BERTH_HOOK_LEAK", "1")
        .args(["run", "--bundle", p(b.dir()), &unique_id("hookenv")]);
    let r = call_cmd(c);
    r.ok("run");
    // The hook's stdout is the runtime's.
    let lines: Vec<&str> = r.out.lines().collect();
    assert_eq!(lines, ["A=1", "B=two words"], "{}", r.out);
}
