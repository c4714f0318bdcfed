//! `berth update`: a running container's limits change at once (seen from
//! inside it, and enforced), a stopped one's at its next start, the restart
//! policy too; bad values change nothing. Each test's [`Ctx`] cleans up.

use berth_integration::containers::*;

/// What the container sees as its memory limit and pids limit.
fn limits(c: &Ctx, name: &str) -> (String, String) {
    let mem = c.ok(&[
        "exec",
        name,
        "sh",
        "-c",
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max",
    ]);
    let pids = c.ok(&[
        "exec",
        name,
        "sh",
        "-c",
        "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max",
    ]);
    (mem.trim().to_string(), pids.trim().to_string())
}

fn running_and_stopped(rt: Option<&str>) {
    let c = Ctx::new();
    let mut args = vec!["--name", "up", "-m", "64m", "--pids-limit", "50"];
    if let Some(rt) = rt {
        args.extend_from_slice(&["--runtime", rt]);
    }
    args.extend_from_slice(&[IMG, "sleep", "1000"]);
    c.run_d(&args);
    assert_eq!(limits(&c, "up"), ("67108864".into(), "50".into()));

    // Running: the cgroup changes at once, and the limit is enforced.
    // (16 leaves room for an external runtime's `exec`, whose own threads
    // count in the container's pids.)
    let o = c.ok(&["update", "-m", "96m", "--pids-limit", "16", "up"]);
    assert_eq!(o, "up\n");
    assert_eq!(limits(&c, "up"), ("100663296".into(), "16".into()));
    let o = c.b(&[
        "exec",
        "up",
        "sh",
        "-c",
        "i=0; while [ $i -lt 30 ]; do sleep 2 & i=$((i+1)); done; wait",
    ]);
    assert!(
        o.err.contains("fork") || o.code != 0,
        "thirty more processes under a limit of 16: {}",
        o.text()
    );
    let v = c.inspect("up");
    assert_eq!(v["HostConfig"]["Memory"], 100663296);
    assert_eq!(v["HostConfig"]["PidsLimit"], 16);
    // The sleeps that did start are gone before the next exec.
    std::thread::sleep(std::time::Duration::from_millis(2500));

    // Stopped: stored, and in force at the next start.
    c.ok(&["stop", "-t", "0", "up"]);
    c.ok(&["update", "-m", "80m", "--pids-limit", "40", "up"]);
    c.ok(&["start", "up"]);
    assert_eq!(limits(&c, "up"), ("83886080".into(), "40".into()));
    c.ok(&["rm", "-f", "up"]);
}

#[test]
fn update_changes_limits_of_running_and_stopped_containers() {
    running_and_stopped(None);
}

/// With `--runtime runc`, the runtime's own `update --resources` is used.
#[test]
fn update_goes_through_an_external_runtime() {
    running_and_stopped(Some("runc"));
}

#[test]
fn update_sets_the_restart_policy() {
    let c = Ctx::new();
    c.run_d(&["--name", "pol", IMG, "sleep", "1000"]);
    c.ok(&["update", "--restart", "on-failure:3", "pol"]);
    let v = c.inspect("pol");
    assert_eq!(v["HostConfig"]["RestartPolicy"]["Name"], "on-failure");
    assert_eq!(v["HostConfig"]["RestartPolicy"]["MaximumRetryCount"], 3);
    // Now a crash brings it back.
    let pid = c.state("pol")["Pid"].as_i64().unwrap();
    let st = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    assert!(
        wait_for(30.0, || {
            let v = c.inspect("pol");
            v["RestartCount"] == 1 && v["State"]["Status"] == "running"
        }),
        "{:#}",
        c.inspect("pol")
    );
    // Not for a container that removes itself.
    c.ok(&["create", "--rm", "--name", "auto", IMG, "true"]);
    let o = c.b(&["update", "--restart", "always", "auto"]);
    assert_eq!(o.code, 1, "{}", o.text());
    assert!(o.err.contains("AutoRemove"), "{}", o.text());
    c.ok(&["rm", "-f", "pol", "auto"]);
}

#[test]
fn bad_update_values_change_nothing() {
    let c = Ctx::new();
    c.run_d(&["--name", "same", "-m", "64m", IMG, "sleep", "1000"]);
    for (args, code, needle) in [
        (&["--memory", "12x"][..], 125, "12x"),
        (&["--cpus", "lots"][..], 125, "lots"),
        (&["--restart", "sometimes"][..], 125, "restart policy"),
        (&[][..], 125, "one or more flags"),
        (&["-m", "2m"][..], 1, "6MB"),
        (&["--cpus", "-1"][..], 1, "CPUs"),
        (&["-m", "64m", "--memory-swap", "32m"][..], 1, "memoryswap"),
    ] {
        let mut all = vec!["update"];
        all.extend_from_slice(args);
        all.push("same");
        let o = c.b(&all);
        assert_eq!(o.code, code, "{all:?}: {}", o.text());
        assert!(o.err.contains(needle), "{all:?}: {}", o.text());
        assert_eq!(o.err.trim().lines().count(), 1, "{all:?}: {}", o.text());
    }
    assert_eq!(limits(&c, "same").0, "67108864");
    let v = c.inspect("same");
    assert_eq!(v["HostConfig"]["Memory"], 67108864);
    assert_eq!(v["HostConfig"]["RestartPolicy"]["Name"], "no");
    let o = c.b(&["update", "-m", "100m", "no-such-ctr"]);
    assert_eq!(o.code, 1, "{}", o.text());
    assert!(o.err.contains("no such container"), "{}", o.text());
    c.ok(&["rm", "-f", "same"]);
}
