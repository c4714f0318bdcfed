//! `--runtime PATH`: the engine drives a runc-compatible binary through its
//! command line instead of berth-runtime in-process. runc and berth-runtime's
//! own binary run the whole lifecycle; crun 1.8 refuses hybrid cgroup hosts,
//! and berth must pass that refusal on clearly.

use berth_integration::containers::*;
use berth_integration::runtime_bin;

fn lifecycle(rt: &str) {
    let c = Ctx::new();
    // Attached: output and exit code pass through, limits apply.
    let o = c.b(&[
        "run", "--rm", "--runtime", rt, "-m", "32m", IMG, "sh", "-c",
        "echo via-runtime; cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max; exit 3",
    ]);
    assert_eq!(o.code, 3, "{}", o.text());
    assert_eq!(o.out, "via-runtime\n33554432\n", "{}", o.text());

    // Detached: monitor, logs, exec, top, stats, commit with pause, stop, rm.
    let id = c.run_d(&[
        "--name",
        "ext",
        "--runtime",
        rt,
        IMG,
        "sh",
        "-c",
        "trap 'exit 0' TERM; echo started; while true; do sleep 0.1; done",
    ]);
    c.logs_until("ext", "started");
    assert_eq!(c.state("ext")["Status"], "running");
    let o = c.b(&["exec", "ext", "sh", "-c", "echo in-exec; exit 4"]);
    assert_eq!((o.code, o.out.as_str()), (4, "in-exec\n"), "{}", o.text());
    let top = c.ok(&["top", "ext"]);
    assert!(top.contains("sleep") || top.contains("sh -c"), "{top}");
    let stats = c.ok(&["stats", "--no-stream", "--format", "json", "ext"]);
    let v: serde_json::Value = serde_json::from_str(stats.trim()).unwrap();
    assert_ne!(v["PIDs"], "0", "{stats}");
    c.ok(&["exec", "ext", "sh", "-c", "echo data > /root/f"]);
    let img = c.ok(&["commit", "ext", "ext-img"]);
    assert!(img.trim().starts_with("sha256:"), "{img}");
    assert_eq!(
        c.state("ext")["Status"],
        "running",
        "resumed after the paused commit"
    );
    c.ok(&["stop", "ext"]);
    let st = c.state("ext");
    assert_eq!(
        (st["Status"].as_str(), st["ExitCode"].as_i64()),
        (Some("exited"), Some(0))
    );
    // Started again under the same runtime.
    c.ok(&["start", "ext"]);
    c.ok(&["rm", "-f", "ext"]);
    // The change is in the committed image only.
    let o = c.b(&["run", "--rm", IMG, "cat", "/root/f"]);
    assert_eq!(o.code, 1, "{}", o.text());
    let o = c.b(&["run", "--rm", "ext-img", "cat", "/root/f"]);
    assert_eq!(o.out, "data\n", "{}", o.text());
    let _ = id;
    c.assert_empty();
    let state = c.root().join("runtimes");
    if let Ok(rd) = std::fs::read_dir(&state) {
        for e in rd.flatten() {
            let left: Vec<_> = std::fs::read_dir(e.path())
                .unwrap()
                .flatten()
                .map(|x| x.file_name())
                .filter(|n| !n.to_string_lossy().starts_with('.'))
                .collect();
            assert!(
                left.is_empty(),
                "runtime state left in {:?}: {left:?}",
                e.path()
            );
        }
    }
}

#[test]
fn runc_runs_the_whole_lifecycle() {
    lifecycle("runc");
}

#[test]
fn berth_runtime_binary_runs_the_whole_lifecycle() {
    lifecycle(runtime_bin().to_str().unwrap());
}

#[test]
fn crun_works_or_says_why() {
    let c = Ctx::new();
    let o = c.b(&["run", "--rm", "--runtime", "crun", IMG, "echo", "via-crun"]);
    let hybrid = std::path::Path::new("/sys/fs/cgroup/unified/cgroup.controllers").exists();
    if hybrid {
        // crun 1.8 refuses v1 controllers beside a cgroup2 mount.
        assert_eq!(o.code, 125, "{}", o.text());
        assert!(
            o.err.contains("crun create") && o.err.contains("hybrid"),
            "{}",
            o.text()
        );
    } else {
        assert_eq!((o.code, o.out.as_str()), (0, "via-crun\n"), "{}", o.text());
    }
    c.assert_empty();
}

#[test]
fn unknown_runtime_is_refused_before_anything_exists() {
    let c = Ctx::new();
    let o = c.b(&["run", "--runtime", "no-such-runtime-xyz", IMG, "true"]);
    assert_eq!(o.code, 125, "{}", o.text());
    assert!(o.err.contains("not found"), "{}", o.text());
    let o = c.b(&["run", "--runtime", "/etc/passwd", IMG, "true"]);
    assert_eq!(o.code, 125, "{}", o.text());
    assert!(c.ids().is_empty());
    c.assert_empty();
}
