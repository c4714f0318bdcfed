//! `linux.seccomp`: actions, errno values, argument conditions, Docker's
//! default profile, and rejection of bad profiles — checked from inside.

use berth_integration::{unique_id, Bundle, Runtime};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

fn docker_profile() -> Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../bench/docker-default-seccomp.json");
    serde_json::from_slice(&std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .unwrap()
}

fn allow_but(rules: Value) -> Value {
    json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": rules})
}

fn set_seccomp(c: &mut Value, profile: Value) {
    c["linux"]["seccomp"] = profile;
}

/// Capabilities that let `unshare` succeed, so only seccomp can stop it.
fn with_sys_admin(c: &mut Value) {
    for set in ["bounding", "effective", "permitted"] {
        c["process"]["capabilities"][set] =
            json!(["CAP_SYS_ADMIN", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    }
}

#[test]
fn errno_rule_returns_the_configured_errno() {
    let rt = Runtime::new();
    let script = "mkdir /tmp/x 2>&1; echo rc=$?; touch /tmp/y && echo touched; grep ^Seccomp /proc/self/status";
    let profile = allow_but(json!([
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}
    ]));
    // Both load paths: after no_new_privs (just before execve) and, without
    // it, before dropping privileges.
    for nnp in [true, false] {
        let out = rt.sh(script, |c| {
            set_seccomp(c, profile.clone());
            c["process"]["noNewPrivileges"] = json!(nnp);
        });
        assert_eq!(
            out,
            "mkdir: can't create directory '/tmp/x': Function not implemented\nrc=1\ntouched\n\
             Seccomp:\t2\nSeccomp_filters:\t1\n",
            "noNewPrivileges={nnp}"
        );
    }
    // And without a profile: no filter, mkdir works.
    let out = rt.sh(script, |_| {});
    assert_eq!(out, "rc=0\ntouched\nSeccomp:\t0\nSeccomp_filters:\t0\n");
}

#[test]
fn errno_rule_without_errno_ret_is_eperm() {
    let rt = Runtime::new();
    let out = rt.sh("mkdir /tmp/x 2>&1; echo rc=$?", |c| {
        set_seccomp(
            c,
            allow_but(json!([{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}])),
        );
    });
    assert_eq!(
        out,
        "mkdir: can't create directory '/tmp/x': Operation not permitted\nrc=1\n"
    );
}

#[test]
fn default_errno_ret() {
    // Docker's profile denies by default (unshare is not on its list); with
    // defaultErrnoRet 38 the denial reads ENOSYS instead of EPERM.
    let rt = Runtime::new();
    let mut profile = docker_profile();
    profile["defaultErrnoRet"] = json!(38);
    let out = rt.sh(
        "unshare -u true 2>&1; echo rc=$?; mkdir /tmp/ok && echo mkdir-ok",
        |c| {
            with_sys_admin(c);
            set_seccomp(c, profile);
        },
    );
    assert_eq!(
        out,
        "unshare: unshare(0x4000000): Function not implemented\nrc=1\nmkdir-ok\n"
    );
}

#[test]
fn argument_conditions() {
    let rt = Runtime::new();
    // personality(PER_LINUX32 = 8) is denied; personality(PER_LINUX = 0) is not.
    let out = rt.sh(
        "linux32 uname -m 2>&1; echo rc=$?; linux64 uname -m; echo rc=$?",
        |c| {
            set_seccomp(
                c,
                allow_but(
                    json!([{"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}]),
                ),
            );
        },
    );
    assert_eq!(
        out,
        "linux32: personality(0x8): Operation not permitted\nrc=1\nx86_64\nrc=0\n"
    );

    // A masked comparison: deny unshare when CLONE_NEWUTS (0x04000000) is
    // among the flags, allow other unshare calls.
    let out = rt.sh("unshare -u true 2>&1; echo rc=$?; unshare -i true; echo rc=$?", |c| {
        with_sys_admin(c);
        set_seccomp(
            c,
            allow_but(json!([{"names": ["unshare"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                "args": [{"index": 0, "value": 0x0400_0000u64, "valueTwo": 0x0400_0000u64, "op": "SCMP_CMP_MASKED_EQ"}]}])),
        );
    });
    assert_eq!(
        out,
        "unshare: unshare(0x4000000): Operation not permitted\nrc=1\nrc=0\n"
    );
}

#[test]
fn kill_action_kills_with_sigsys() {
    let rt = Runtime::new();
    for action in ["SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS"] {
        let mut b = Bundle::new(&["mkdir", "/tmp/killed"]);
        b.edit(|c| {
            set_seccomp(
                c,
                allow_but(json!([{"names": ["mkdir", "mkdirat"], "action": action}])),
            )
        });
        let (code, out, err) = rt.run(&b, &unique_id("kill"));
        assert_eq!(
            code,
            128 + libc::SIGSYS,
            "{action}: stdout={out} stderr={err}"
        );
        assert!(
            !b.rootfs().join("tmp/killed").exists(),
            "{action}: mkdir ran"
        );
    }
}

#[test]
fn docker_default_profile() {
    let rt = Runtime::new();
    // Ordinary busybox work runs as usual; unshare is denied with EPERM
    // even with CAP_SYS_ADMIN.
    let script =
        "echo hi; mkdir /tmp/d && echo made > /tmp/d/f && cat /tmp/d/f; ls / | grep -c .; \
                  id -u; sleep 0.01 && echo slept; echo a b | cut -d' ' -f2; \
                  grep ^Seccomp: /proc/self/status; unshare -u true 2>&1; echo rc=$?";
    let out = rt.sh(script, |c| {
        with_sys_admin(c);
        set_seccomp(c, docker_profile());
    });
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0..2], ["hi", "made"], "{out}");
    assert!(
        lines[2].parse::<u32>().unwrap() >= 10,
        "ls / listed too little: {out}"
    );
    assert_eq!(
        lines[3..],
        [
            "0",
            "slept",
            "b",
            "Seccomp:\t2",
            "unshare: unshare(0x4000000): Operation not permitted",
            "rc=1"
        ],
        "{out}"
    );
    // Without the profile the same unshare succeeds: it was seccomp.
    let out = rt.sh("unshare -u true 2>&1; echo rc=$?", with_sys_admin);
    assert_eq!(out, "rc=0\n");
}

#[test]
fn bad_syscall_name_is_rejected_and_leaves_nothing() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| {
        set_seccomp(
            c,
            allow_but(
                json!([{"names": ["mkdir", "no_such_syscall_xyz"], "action": "SCMP_ACT_ERRNO"}]),
            ),
        );
    });
    let id = unique_id("badsc");
    let (ok, err) = rt.try_create(&b, &id);
    assert!(!ok, "a profile with an unknown syscall was accepted");
    assert!(
        err.contains("no_such_syscall_xyz"),
        "error does not name the syscall: {err}"
    );
    let left: Vec<String> = std::fs::read_dir(rt.root.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert!(left.is_empty(), "state left behind: {left:?}");
    for h in ["memory", "pids", "cpu", "devices", "freezer"] {
        let p = format!("/sys/fs/cgroup/{h}/berth/{id}");
        assert!(!Path::new(&p).exists(), "{p} left behind");
    }
}

#[test]
fn bad_action_is_rejected() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| {
        set_seccomp(
            c,
            allow_but(json!([{"names": ["mkdir"], "action": "SCMP_ACT_EXPLODE"}])),
        )
    });
    let (ok, err) = rt.try_create(&b, &unique_id("badact"));
    assert!(!ok, "an unknown seccomp action was accepted");
    assert!(err.contains("SCMP_ACT_EXPLODE"), "{err}");
}
