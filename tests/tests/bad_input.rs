//! Bad input: every malformed bundle or argument gives a non-zero exit,
//! exactly one clear line on stderr naming the problem, and leaves nothing
//! behind (no state dir, no cgroup, no process).

use berth_integration::{
    call, path_str as p, pid_alive, procs_with, unique_id, wait_until, Bundle, Runtime, CG,
    HIERARCHIES,
};
use serde_json::{json, Value};
use std::path::Path;

/// Nothing of `id` exists: no entry under the runtime root (but the seccomp
/// cache), no cgroup, no process.
fn assert_nothing_left(rt: &Runtime, id: &str) {
    let entries: Vec<String> = std::fs::read_dir(rt.root.path())
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        entries.iter().all(|e| e.starts_with('.')),
        "left under the root: {entries:?}"
    );
    for h in HIERARCHIES {
        let d = Path::new(CG).join(h).join("berth").join(id);
        assert!(!d.exists(), "cgroup dir left behind: {}", d.display());
    }
    assert!(
        wait_until(3, || procs_with(id).is_empty()),
        "processes left: {:?}",
        procs_with(id)
    );
}

/// `create` (and `run`) of `b` fails with one stderr line containing every
/// needle, and leaves nothing behind.
fn fails(rt: &Runtime, b: &Bundle, needles: &[&str]) {
    for verb in ["create", "run"] {
        let id = unique_id("bad");
        let r = call(rt, &[verb, "--bundle", p(b.dir()), &id]);
        assert_ne!(r.code, 0, "{verb} succeeded; expected {needles:?}");
        assert!(r.out.is_empty(), "{verb}: unexpected stdout {:?}", r.out);
        let lines: Vec<&str> = r.err.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "{verb}: expected exactly one stderr line, got {:?}",
            r.err
        );
        assert!(
            lines[0].starts_with("berth-runtime: "),
            "{verb}: {}",
            lines[0]
        );
        for n in needles {
            assert!(
                lines[0].contains(n),
                "{verb}: error does not mention {n:?}: {}",
                lines[0]
            );
        }
        assert_not_repeated(lines[0]);
        assert_nothing_left(rt, &id);
    }
}

/// One clear line: no clause of it is said twice (an error chain printed
/// with its sources already in the message would be).
fn assert_not_repeated(line: &str) {
    let parts: Vec<&str> = line
        .split(": ")
        .map(str::trim)
        .filter(|p| p.len() >= 12)
        .collect();
    for (i, a) in parts.iter().enumerate() {
        assert!(!parts[i + 1..].contains(a), "{a:?} repeated in {line:?}");
    }
}

fn bundle_with(f: impl FnOnce(&mut Value)) -> Bundle {
    let mut b = Bundle::new(&["true"]);
    b.edit(f);
    b
}

#[test]
fn config_not_json() {
    let rt = Runtime::new();
    let b = Bundle::new(&["true"]);
    std::fs::write(
        b.dir().join("config.json"),
        "{\"ociVersion\": \"1.2.0\", oops",
    )
    .unwrap();
    fails(&rt, &b, &["config.json", "line 1"]);
    std::fs::write(b.dir().join("config.json"), "").unwrap();
    fails(&rt, &b, &["config.json", "EOF"]);
}

#[test]
fn config_wrong_types() {
    let rt = Runtime::new();
    fails(
        &rt,
        &bundle_with(|c| c["process"]["args"] = json!("sh -c true")),
        &["config.json", "invalid type"],
    );
    fails(
        &rt,
        &bundle_with(|c| c["process"]["user"]["uid"] = json!("root")),
        &["config.json", "invalid type"],
    );
    fails(
        &rt,
        &bundle_with(|c| c["linux"]["resources"] = json!({"memory": {"limit": "lots"}})),
        &["config.json", "invalid type"],
    );
    fails(
        &rt,
        &bundle_with(|c| c["mounts"] = json!({"destination": "/x"})),
        &["config.json", "invalid type"],
    );
}

#[test]
fn missing_config_and_bundle() {
    let rt = Runtime::new();
    let b = Bundle::new(&["true"]);
    std::fs::remove_file(b.dir().join("config.json")).unwrap();
    fails(&rt, &b, &["config.json", "No such file"]);
    let id = unique_id("bad");
    let r = call(&rt, &["create", "--bundle", "/no/such/bundle-dir", &id]);
    assert_ne!(r.code, 0);
    assert_eq!(r.err.lines().count(), 1, "{}", r.err);
    assert!(r.err.contains("/no/such/bundle-dir"), "{}", r.err);
    assert_nothing_left(&rt, &id);
}

#[test]
fn unsupported_oci_version() {
    let rt = Runtime::new();
    fails(
        &rt,
        &bundle_with(|c| c["ociVersion"] = json!("2.0.0")),
        &["ociVersion", "2.0.0"],
    );
    fails(
        &rt,
        &bundle_with(|c| c["ociVersion"] = json!("banana")),
        &["ociVersion", "banana"],
    );
}

#[test]
fn missing_rootfs() {
    let rt = Runtime::new();
    fails(
        &rt,
        &bundle_with(|c| c["root"]["path"] = json!("no-such-rootfs")),
        &["rootfs", "no-such-rootfs"],
    );
    fails(
        &rt,
        &bundle_with(|c| c["root"]["path"] = json!("config.json")),
        &["rootfs", "config.json"],
    );
    let b = bundle_with(|c| {
        c.as_object_mut().unwrap().remove("root");
    });
    fails(&rt, &b, &["root"]);
}

#[test]
fn unknown_namespace_type() {
    let rt = Runtime::new();
    let b = bundle_with(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "bogus"}))
    });
    fails(&rt, &b, &["bogus"]);
    let b = bundle_with(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "pid"}))
    });
    fails(&rt, &b, &["namespace", "pid", "twice"]);
    let b = bundle_with(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "user"}))
    });
    fails(&rt, &b, &["user namespace", "uidMappings"]);
    let b = bundle_with(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "ipc", "path": "/no/such/ns-file"}));
        // ipc is listed twice now: drop the first one.
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "ipc" || n["path"].is_string());
    });
    fails(&rt, &b, &["/no/such/ns-file"]);
}

#[test]
fn bad_seccomp_syscall_name() {
    let rt = Runtime::new();
    let b = bundle_with(|c| {
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getpid", "not_a_syscall_zz"], "action": "SCMP_ACT_ERRNO"}]
        })
    });
    fails(&rt, &b, &["not_a_syscall_zz"]);
    let b = bundle_with(|c| c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_EXPLODE"}));
    fails(&rt, &b, &["SCMP_ACT_EXPLODE"]);
}

#[test]
fn unknown_capability() {
    let rt = Runtime::new();
    let b = bundle_with(|c| c["process"]["capabilities"]["bounding"] = json!(["CAP_FLY"]));
    fails(&rt, &b, &["CAP_FLY"]);
}

#[test]
fn missing_process_args() {
    let rt = Runtime::new();
    fails(
        &rt,
        &bundle_with(|c| c["process"]["args"] = json!([])),
        &["process.args"],
    );
    fails(
        &rt,
        &bundle_with(|c| {
            c["process"].as_object_mut().unwrap().remove("args");
        }),
        &["process.args"],
    );
    fails(
        &rt,
        &bundle_with(|c| {
            c.as_object_mut().unwrap().remove("process");
        }),
        &["process"],
    );
}

#[test]
fn relative_paths_in_config() {
    let rt = Runtime::new();
    fails(
        &rt,
        &bundle_with(|c| c["process"]["cwd"] = json!("tmp")),
        &["cwd", "absolute"],
    );
    let b = bundle_with(|c| {
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": "data", "type": "tmpfs", "source": "tmpfs"}))
    });
    fails(&rt, &b, &["data", "absolute"]);
}

#[test]
fn duplicate_container_id() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let id = unique_id("dupid");
    let r = call(&rt, &["create", "--bundle", p(b.dir()), &id]);
    assert_eq!(r.code, 0, "{}", r.err);
    let pid = rt.state(&id)["pid"].as_i64().unwrap() as i32;
    for verb in ["create", "run"] {
        let r = call(&rt, &[verb, "--bundle", p(b.dir()), &id]);
        assert_ne!(r.code, 0, "{verb} of a duplicate id succeeded");
        assert_eq!(r.err.lines().count(), 1, "{}", r.err);
        assert!(
            r.err.contains(&id) && r.err.contains("already exists"),
            "{}",
            r.err
        );
    }
    // The first one is untouched.
    assert_eq!(rt.status(&id), "created");
    assert!(pid_alive(pid));
    assert!(Path::new(CG).join("memory/berth").join(&id).is_dir());
    let r = call(&rt, &["delete", &id]);
    assert_eq!(r.code, 0, "{}", r.err);
    assert_nothing_left(&rt, &id);
}

#[test]
fn invalid_container_ids() {
    let rt = Runtime::new();
    let b = Bundle::new(&["true"]);
    // `../x` from the root: it must not appear (unless something else on
    // this machine made it already).
    let outside = rt.root.path().parent().unwrap().join("x");
    let was_there = outside.exists();
    for bad in ["../x", "a/b", "..", ".", "has space", &"x".repeat(1025)] {
        for verb in ["create", "run"] {
            let r = call(&rt, &[verb, "--bundle", p(b.dir()), bad]);
            assert_ne!(r.code, 0, "{verb} {bad:?} accepted");
            assert_eq!(r.err.lines().count(), 1, "{}", r.err);
            assert!(r.err.contains("invalid"), "{verb} {bad:?}: {}", r.err);
        }
        // Other verbs refuse it too, without touching anything outside the root.
        for verb in [
            &["state", bad][..],
            &["kill", bad],
            &["delete", "--force", bad],
            &["start", bad],
        ] {
            let r = call(&rt, verb);
            assert_ne!(r.code, 0, "{verb:?} accepted");
        }
    }
    assert!(
        was_there || !outside.exists(),
        "{} was made",
        outside.display()
    );
    assert_nothing_left(&rt, "../x");
}

#[test]
fn unknown_verb_and_flag_values() {
    let rt = Runtime::new();
    let r = call(&rt, &["frobnicate"]);
    assert_ne!(r.code, 0);
    let r = call(&rt, &["--log-format", "xml", "list"]);
    assert_ne!(r.code, 0);
    assert_eq!(r.err.lines().count(), 1, "{}", r.err);
    assert!(r.err.contains("xml"), "{}", r.err);
    let r = call(&rt, &["list", "--format", "yaml"]);
    assert_ne!(r.code, 0);
    assert!(r.err.contains("yaml"), "{}", r.err);
    let r = call(&rt, &["kill", "no-such-ctr", "TERM"]);
    assert_ne!(r.code, 0);
    assert_eq!(r.err.lines().count(), 1, "{}", r.err);
    assert!(
        r.err.contains("no-such-ctr") && r.err.contains("does not exist"),
        "{}",
        r.err
    );
}
