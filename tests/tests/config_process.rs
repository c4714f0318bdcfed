//! `process`: args, env, cwd, user, umask, rlimits, capabilities,
//! noNewPrivileges, oomScoreAdj — checked from inside the container.

use berth_integration::{unique_id, Bundle, Runtime};
use serde_json::{json, Value};
use std::path::Path;

/// Container ids left as state dirs under the runtime's root.
fn leftovers(rt: &Runtime) -> Vec<String> {
    std::fs::read_dir(rt.root.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect()
}

/// `create` must fail with an error mentioning `needle`, leaving nothing.
fn assert_rejected(rt: &Runtime, b: &Bundle, needle: &str) {
    let id = unique_id("reject");
    let (ok, err) = rt.try_create(b, &id);
    assert!(!ok, "create accepted a config it should reject ({needle})");
    assert!(
        err.contains(needle),
        "error does not mention {needle:?}: {err}"
    );
    assert!(
        leftovers(rt).is_empty(),
        "state left behind: {:?}",
        leftovers(rt)
    );
    assert!(
        !Path::new(&format!("/sys/fs/cgroup/memory/berth/{id}")).exists(),
        "cgroup left behind"
    );
}

fn p(c: &mut Value) -> &mut Value {
    &mut c["process"]
}

/// The `name:` line of a /proc/self/status dump, value only.
fn status<'a>(dump: &'a str, name: &str) -> &'a str {
    dump.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} in {dump}"))
        .trim()
}

fn caps_mask(bits: &[u32]) -> String {
    format!("{:016x}", bits.iter().fold(0u64, |m, b| m | (1u64 << b)))
}

// Capability numbers (linux/capability.h).
const CHOWN: u32 = 0;
const DAC_OVERRIDE: u32 = 1;
const KILL: u32 = 5;
const NET_BIND_SERVICE: u32 = 10;
const NET_RAW: u32 = 13;
const AUDIT_WRITE: u32 = 29;

#[test]
fn args_are_passed_verbatim() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "printf '[%s]' \"$0\" \"$@\"; echo",
        "zero",
        "a b",
        "",
        "*",
        "$HOME",
        "ü\t;",
    ]);
    b.edit(|_| {});
    let (code, out, err) = rt.run(&b, &unique_id("args"));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "[zero][a b][][*][$HOME][ü\t;]\n");
}

#[test]
fn env_is_exactly_the_configured_one() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["env"]);
    let env = [
        "PATH=/bin:/usr/bin",
        "FOO=bar baz",
        "EMPTY=",
        "EQ=a=b",
        "TERM=dumb",
    ];
    b.edit(|c| p(c)["env"] = json!(env));
    let (code, out, err) = rt.run(&b, &unique_id("env"));
    assert_eq!(code, 0, "{err}");
    let mut got: Vec<&str> = out.lines().collect();
    got.sort();
    let mut want = env.to_vec();
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn cwd_is_used_and_created_when_missing() {
    let rt = Runtime::new();
    let out = rt.sh("pwd; touch rel && ls /var/run/rel", |c| {
        p(c)["cwd"] = json!("/var/run")
    });
    assert_eq!(out, "/var/run\n/var/run/rel\n");
    // runc creates a missing cwd, even under a read-only root.
    let out = rt.sh("pwd; stat -c %a .", |c| {
        p(c)["cwd"] = json!("/does/not/exist");
        c["root"]["readonly"] = json!(true);
    });
    assert_eq!(out, "/does/not/exist\n755\n");
}

#[test]
fn user_group_and_additional_gids() {
    let rt = Runtime::new();
    let out = rt.sh("id; id -G; cat /proc/self/status", |c| {
        p(c)["user"] = json!({"uid": 1000, "gid": 1001, "additionalGids": [5, 100]});
    });
    let mut lines = out.lines();
    assert_eq!(
        lines.next().unwrap(),
        "uid=1000 gid=1001 groups=5(tty),100(users)"
    );
    assert_eq!(lines.next().unwrap(), "1001 5 100");
    assert_eq!(status(&out, "Uid"), "1000\t1000\t1000\t1000");
    assert_eq!(status(&out, "Gid"), "1001\t1001\t1001\t1001");
    assert_eq!(status(&out, "Groups"), "5 100");

    // Root with no additionalGids has no supplementary groups (none leak
    // from the runtime).
    let out = rt.sh("cat /proc/self/status", |_| {});
    assert_eq!(status(&out, "Uid"), "0\t0\t0\t0");
    assert_eq!(status(&out, "Groups"), "");
}

#[test]
fn umask() {
    let rt = Runtime::new();
    let script = "umask; cd /tmp && touch f && mkdir d && stat -c '%n %a' f d";
    let out = rt.sh(script, |c| p(c)["user"]["umask"] = json!(0o027));
    assert_eq!(out, "0027\nf 640\nd 750\n");
    let out = rt.sh(script, |c| p(c)["user"]["umask"] = json!(0o077));
    assert_eq!(out, "0077\nf 600\nd 700\n");
    // Unset: 0022.
    let out = rt.sh(script, |_| {});
    assert_eq!(out, "0022\nf 644\nd 755\n");
}

fn host_nofile_hard() -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) }, 0);
    r.rlim_max
}

#[test]
fn rlimits() {
    let hard = host_nofile_hard();
    assert!(
        hard >= 1024,
        "host RLIMIT_NOFILE hard limit {hard} is too low for this test"
    );
    let rt = Runtime::new();
    let out = rt.sh(
        "ulimit -n; ulimit -Hn; ulimit -c; ulimit -Hc; cat /proc/self/limits",
        |c| {
            p(c)["rlimits"] = json!([
                {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1000},
                {"type": "RLIMIT_CORE", "soft": 0, "hard": 4096}
            ]);
        },
    );
    let lines: Vec<&str> = out.lines().collect();
    // busybox ulimit -c counts 512-byte blocks.
    assert_eq!(&lines[..4], ["512", "1000", "0", "8"], "{out}");
    let limit = |name: &str| -> Vec<&str> {
        let l = lines.iter().find(|l| l.starts_with(name)).unwrap();
        l[name.len()..].split_whitespace().take(2).collect()
    };
    assert_eq!(limit("Max open files"), ["512", "1000"], "{out}");
    assert_eq!(limit("Max core file size"), ["0", "4096"], "{out}");

    // Above the hard limit of the host (root here lacks CAP_SYS_RESOURCE):
    // a clear error at create, nothing left.
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| p(c)["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 512, "hard": hard + 1}]));
    let rt = Runtime::new();
    const SYS_RESOURCE: u32 = 24;
    if !self_has_cap(SYS_RESOURCE) {
        assert_rejected(&rt, &b, "RLIMIT_NOFILE");
    }
}

/// Whether this (test) process has capability `cap` in its effective set.
fn self_has_cap(cap: u32) -> bool {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    u64::from_str_radix(status(&s, "CapEff"), 16).unwrap() & (1 << cap) != 0
}

#[test]
fn capabilities_of_root() {
    let rt = Runtime::new();
    let script = "grep -E '^Cap' /proc/self/status; touch /tmp/f; chown 1 /tmp/f 2>&1; echo rc=$?";
    // The base config: AUDIT_WRITE, KILL, NET_BIND_SERVICE in bounding,
    // effective and permitted. For root execve's permitted set is
    // bounding | inheritable, and ambient is always cleared.
    let out = rt.sh(script, |_| {});
    let three = caps_mask(&[AUDIT_WRITE, KILL, NET_BIND_SERVICE]);
    assert_eq!(status(&out, "CapBnd"), three, "{out}");
    assert_eq!(status(&out, "CapPrm"), three, "{out}");
    assert_eq!(status(&out, "CapEff"), three, "{out}");
    assert_eq!(status(&out, "CapInh"), caps_mask(&[]), "{out}");
    assert_eq!(status(&out, "CapAmb"), caps_mask(&[]), "{out}");
    assert!(
        out.ends_with("chown: /tmp/f: Operation not permitted\nrc=1\n"),
        "{out}"
    );

    // Add CAP_CHOWN (and an inheritable set) and chown works.
    let out = rt.sh(script, |c| {
        for set in ["bounding", "effective", "permitted"] {
            p(c)["capabilities"][set]
                .as_array_mut()
                .unwrap()
                .push(json!("CAP_CHOWN"));
        }
        p(c)["capabilities"]["inheritable"] = json!(["CAP_KILL"]);
    });
    let four = caps_mask(&[CHOWN, AUDIT_WRITE, KILL, NET_BIND_SERVICE]);
    assert_eq!(status(&out, "CapBnd"), four, "{out}");
    assert_eq!(status(&out, "CapEff"), four, "{out}");
    assert_eq!(status(&out, "CapInh"), caps_mask(&[KILL]), "{out}");
    assert!(out.ends_with("rc=0\n"), "{out}");
}

#[test]
fn capabilities_of_a_non_root_user_with_ambient() {
    let rt = Runtime::new();
    let script = "grep -E '^Cap' /proc/self/status; httpd -p 80 -h /tmp 2>&1; echo rc=$?";
    let caps = json!({
        "bounding": ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW"],
        "permitted": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "effective": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "inheritable": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "ambient": ["CAP_NET_BIND_SERVICE"]
    });
    let out = rt.sh(script, |c| {
        p(c)["user"] = json!({"uid": 1000, "gid": 1000});
        p(c)["capabilities"] = caps.clone();
    });
    // A non-root execve keeps exactly the ambient set in permitted and effective.
    assert_eq!(
        status(&out, "CapBnd"),
        caps_mask(&[CHOWN, DAC_OVERRIDE, KILL, NET_BIND_SERVICE, NET_RAW]),
        "{out}"
    );
    assert_eq!(
        status(&out, "CapInh"),
        caps_mask(&[KILL, NET_BIND_SERVICE]),
        "{out}"
    );
    assert_eq!(
        status(&out, "CapPrm"),
        caps_mask(&[NET_BIND_SERVICE]),
        "{out}"
    );
    assert_eq!(
        status(&out, "CapEff"),
        caps_mask(&[NET_BIND_SERVICE]),
        "{out}"
    );
    assert_eq!(
        status(&out, "CapAmb"),
        caps_mask(&[NET_BIND_SERVICE]),
        "{out}"
    );
    // The ambient capability works: uid 1000 binds port 80.
    assert!(out.ends_with("rc=0\n"), "{out}");

    // Without the ambient capability the same user cannot.
    let out = rt.sh(script, |c| {
        p(c)["user"] = json!({"uid": 1000, "gid": 1000});
        let mut caps = caps.clone();
        caps.as_object_mut().unwrap().remove("ambient");
        p(c)["capabilities"] = caps;
    });
    assert_eq!(status(&out, "CapAmb"), caps_mask(&[]), "{out}");
    assert_eq!(status(&out, "CapEff"), caps_mask(&[]), "{out}");
    assert!(
        out.ends_with("httpd: bind: Permission denied\nrc=1\n"),
        "{out}"
    );
}

#[test]
fn unknown_capability_is_rejected() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| {
        p(c)["capabilities"]["bounding"]
            .as_array_mut()
            .unwrap()
            .push(json!("CAP_FLY"))
    });
    assert_rejected(&rt, &b, "CAP_FLY");
}

#[test]
fn no_new_privileges() {
    let rt = Runtime::new();
    let out = rt.sh("grep NoNewPrivs /proc/self/status", |c| {
        p(c)["noNewPrivileges"] = json!(true)
    });
    assert_eq!(out, "NoNewPrivs:\t1\n");
    let out = rt.sh("grep NoNewPrivs /proc/self/status", |c| {
        p(c)["noNewPrivileges"] = json!(false)
    });
    assert_eq!(out, "NoNewPrivs:\t0\n");
}

#[test]
fn oom_score_adj() {
    let rt = Runtime::new();
    let out = rt.sh(
        "cat /proc/self/oom_score_adj; sh -c 'cat /proc/self/oom_score_adj'",
        |c| p(c)["oomScoreAdj"] = json!(500),
    );
    assert_eq!(out, "500\n500\n");
    let out = rt.sh("cat /proc/self/oom_score_adj", |c| {
        p(c)["oomScoreAdj"] = json!(1000)
    });
    assert_eq!(out, "1000\n");
    // Unset: the runtime's own value (not changed).
    let mine = std::fs::read_to_string("/proc/self/oom_score_adj").unwrap();
    let out = rt.sh("cat /proc/self/oom_score_adj", |_| {});
    assert_eq!(out, mine);
}
