//! Restart policies (`--restart`), as Docker has them: the container comes
//! back after it exits by itself, with a growing back-off, as often as the
//! policy says; `stop`, `kill` and `rm -f` by the user end it; a start by
//! the user resets the count. Each test's [`Ctx`] removes its containers.

use berth_integration::containers::*;
use serde_json::Value;

/// Waits (at most `secs`) until `inspect C` satisfies `f`; returns the last
/// inspect.
fn until(c: &Ctx, name: &str, secs: f64, f: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    let ok = wait_for(secs, || {
        last = c.inspect(name);
        f(&last)
    });
    assert!(ok, "{name} never got there: {last:#}");
    last
}

fn count(v: &Value) -> u64 {
    v["RestartCount"].as_u64().unwrap()
}

fn status(v: &Value) -> &str {
    v["State"]["Status"].as_str().unwrap()
}

/// Lines of the container's log that are `word`.
fn runs(c: &Ctx, name: &str, word: &str) -> usize {
    c.ok(&["logs", name]).lines().filter(|l| *l == word).count()
}

#[test]
fn on_failure_restarts_up_to_its_limit_and_a_start_resets_the_count() {
    let c = Ctx::new();
    c.run_d(&[
        "--name",
        "flaky",
        "--restart",
        "on-failure:2",
        IMG,
        "sh",
        "-c",
        "echo run; exit 3",
    ]);
    // Three runs (the first and two restarts), then it stays exited.
    assert!(wait_for(30.0, || runs(&c, "flaky", "run") == 3));
    let v = until(&c, "flaky", 30.0, |v| {
        count(v) == 2 && status(v) == "exited"
    });
    assert_eq!(v["State"]["ExitCode"], 3);
    assert_eq!(v["State"]["Restarting"], false);
    assert_eq!(v["HostConfig"]["RestartPolicy"]["Name"], "on-failure");
    assert_eq!(v["HostConfig"]["RestartPolicy"]["MaximumRetryCount"], 2);
    // The limit holds: no third restart.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(count(&c.inspect("flaky")), 2);
    assert_eq!(runs(&c, "flaky", "run"), 3);
    // A start by the user starts the count over: two more restarts.
    c.ok(&["start", "flaky"]);
    assert!(wait_for(30.0, || runs(&c, "flaky", "run") == 6));
    until(&c, "flaky", 30.0, |v| {
        count(v) == 2 && status(v) == "exited"
    });
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(runs(&c, "flaky", "run"), 6);
}

#[test]
fn on_failure_leaves_a_clean_exit_alone_and_no_is_the_default() {
    let c = Ctx::new();
    c.run_d(&["--name", "clean", "--restart", "on-failure", IMG, "true"]);
    c.run_d(&["--name", "plain", IMG, "false"]);
    until(&c, "clean", 10.0, |v| status(v) == "exited");
    until(&c, "plain", 10.0, |v| status(v) == "exited");
    std::thread::sleep(std::time::Duration::from_millis(1000));
    let v = c.inspect("clean");
    assert_eq!((count(&v), status(&v)), (0, "exited"));
    assert_eq!(v["HostConfig"]["RestartPolicy"]["MaximumRetryCount"], 0);
    let v = c.inspect("plain");
    assert_eq!((count(&v), status(&v)), (0, "exited"));
    assert_eq!(v["HostConfig"]["RestartPolicy"]["Name"], "no");
}

#[test]
fn always_restarts_until_the_user_stops_it() {
    let c = Ctx::new();
    c.run_d(&[
        "--name",
        "loop",
        "--restart",
        "always",
        IMG,
        "sh",
        "-c",
        "echo up; sleep 0.3",
    ]);
    until(&c, "loop", 30.0, |v| count(v) >= 2);
    // Stopped wherever it is in its loop (running, waiting out a delay, or
    // being started again), it stays down: no run starts after the stop.
    c.ok(&["stop", "-t", "1", "loop"]);
    let stopped = c.inspect("loop");
    assert_eq!(status(&stopped), "exited", "{stopped:#}");
    let lines = runs(&c, "loop", "up");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let later = c.inspect("loop");
    assert_eq!(status(&later), "exited", "restarted after stop: {later:#}");
    assert_eq!(count(&later), count(&stopped));
    assert_eq!(
        runs(&c, "loop", "up"),
        lines,
        "a run started after the stop"
    );
}

#[test]
fn kill_by_the_user_ends_it_but_a_crash_does_not() {
    let c = Ctx::new();
    c.run_d(&[
        "--name",
        "svc",
        "--restart",
        "unless-stopped",
        IMG,
        "sh",
        "-c",
        // PID 1 ignores signals it has no handler for: USR1 gets one.
        "trap 'exit 3' USR1; echo ready; while true; do sleep 0.1; done",
    ]);
    // The init dies of something else than berth: it comes back.
    let pid = c.state("svc")["Pid"].as_i64().unwrap();
    assert!(pid > 0);
    host_kill(pid as i32);
    let v = until(&c, "svc", 30.0, |v| count(v) == 1 && status(v) == "running");
    assert_ne!(v["State"]["Pid"].as_i64().unwrap(), pid);
    // A signal that does not end it (not SIGKILL, not its stop signal)
    // leaves the policy alone: the container dies of it and comes back.
    // (Sent once the trap is set: before, PID 1 would drop it.)
    assert!(wait_for(30.0, || runs(&c, "svc", "ready") == 2));
    let pid = c.state("svc")["Pid"].as_i64().unwrap();
    c.ok(&["kill", "-s", "USR1", "svc"]);
    let v = until(&c, "svc", 30.0, |v| count(v) == 2 && status(v) == "running");
    assert_ne!(v["State"]["Pid"].as_i64().unwrap(), pid);
    // `berth kill` (SIGKILL) is the user's stop: it stays down.
    c.ok(&["kill", "svc"]);
    until(&c, "svc", 10.0, |v| status(v) == "exited");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let v = c.inspect("svc");
    assert_eq!((count(&v), status(&v)), (2, "exited"), "{v:#}");
    assert_eq!(v["State"]["ExitCode"], 137);
}

/// SIGKILL to a host pid, as an OOM killer or an admin would.
fn host_kill(pid: i32) {
    let st = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn a_restart_waiting_out_its_delay_shows_and_rm_needs_force() {
    let c = Ctx::new();
    let id = c.run_d(&[
        "--name",
        "crashy",
        "--restart",
        "always",
        IMG,
        "sh",
        "-c",
        "exit 7",
    ]);
    // The back-off doubles with each quick exit (0.1 s, 0.2, 0.4, ...):
    // the container soon spends most of its time waiting.
    let mut row = None;
    let seen = wait_for(30.0, || {
        row = c.ps(&[]).into_iter().find(|r| r["ID"] == id.as_str());
        row.as_ref().is_some_and(|r| r["State"] == "restarting")
    });
    let row = row.unwrap_or(Value::Null);
    assert!(seen, "never listed as restarting by ps: {row:#}");
    let text = row["Status"].as_str().unwrap();
    assert!(text.starts_with("Restarting (7) "), "{text}");
    let v = until(&c, "crashy", 30.0, |v| v["State"]["Restarting"] == true);
    assert_eq!(status(&v), "restarting");
    assert_eq!(
        v["State"]["Running"], true,
        "Docker's Running while restarting"
    );
    // ps --filter status=restarting finds it too.
    until(&c, "crashy", 30.0, |_| {
        c.ok(&["ps", "-q", "--no-trunc", "--filter", "status=restarting"])
            .contains(&id)
    });
    // Not removable without -f while restarting (Docker's rule). After
    // five quick exits the delay is 3.2 s: rm comes well inside it.
    until(&c, "crashy", 60.0, |v| {
        count(v) >= 5 && v["State"]["Restarting"] == true
    });
    let o = c.b(&["rm", "crashy"]);
    assert_ne!(o.code, 0, "{}", o.text());
    assert!(o.err.contains("restarting"), "{}", o.text());
    assert_eq!(o.err.trim().lines().count(), 1, "{}", o.text());
    c.ok(&["rm", "-f", "crashy"]);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(c.ids().is_empty(), "came back after rm -f: {:?}", c.ids());
    c.assert_empty();
}

#[test]
fn an_attached_run_returns_its_code_and_restarts_in_the_background() {
    let c = Ctx::new();
    let o = c.b(&[
        "run",
        "--name",
        "att",
        "--restart",
        "on-failure:1",
        IMG,
        "sh",
        "-c",
        "echo hi; exit 4",
    ]);
    assert_eq!(o.code, 4, "{}", o.text());
    assert_eq!(o.out, "hi\n");
    until(&c, "att", 30.0, |v| count(v) == 1 && status(v) == "exited");
    assert_eq!(runs(&c, "att", "hi"), 2);
}

#[test]
fn bad_restart_values_are_refused_and_nothing_is_created() {
    let c = Ctx::new();
    for (args, needle) in [
        (&["--restart", "sometimes"][..], "restart policy"),
        (&["--restart", "always:3"][..], "on-failure"),
        (&["--restart", "on-failure:-1"][..], "non-negative"),
        (&["--restart", "on-failure:x"][..], "non-negative"),
        (&["--restart", "always", "--rm"][..], "--rm"),
    ] {
        for verb in ["run", "create"] {
            let mut all = vec![verb];
            all.extend_from_slice(args);
            all.extend_from_slice(&[IMG, "true"]);
            let o = c.b(&all);
            assert_eq!(o.code, 125, "{all:?}: {}", o.text());
            assert!(o.err.contains(needle), "{all:?}: {}", o.text());
            assert_eq!(o.err.trim().lines().count(), 1, "{all:?}: {}", o.text());
        }
    }
    assert!(c.ids().is_empty(), "{:?}", c.ids());
    // --rm with the default policy (or an explicit no) is fine.
    c.ok(&["run", "--rm", "--restart", "no", IMG, "true"]);
    c.assert_empty();
}

/// After a reboot nothing of a container is left and no monitor records
/// its exit (here: its monitor and init are killed from outside, which
/// `berth ps` then reports as exited, 255). The boot unit's
/// `start --all --filter restart-policy=...` brings back the containers
/// Docker's daemon would: `always`, and `unless-stopped` unless the user
/// stopped it.
#[test]
fn start_all_by_restart_policy_brings_back_what_a_boot_should() {
    let c = Ctx::new();
    for (name, policy) in [
        ("pol-always", "always"),
        ("pol-unless", "unless-stopped"),
        ("pol-stopped", "unless-stopped"),
        ("pol-no", "no"),
    ] {
        c.run_d(&["--name", name, "--restart", policy, IMG, "sleep", "1000"]);
    }
    c.ok(&["stop", "-t", "0", "pol-stopped"]);
    for name in ["pol-always", "pol-unless", "pol-no"] {
        let id = c.inspect(name)["Id"].as_str().unwrap().to_string();
        let pid = c.state(name)["Pid"].as_i64().unwrap() as i32;
        for m in c.monitors(Some(&id)) {
            host_kill(m);
        }
        host_kill(pid);
    }
    for name in ["pol-always", "pol-unless", "pol-no"] {
        let v = until(&c, name, 10.0, |v| status(v) == "exited");
        assert_eq!(v["State"]["ExitCode"], 255, "{v:#}");
    }
    let o = c.ok(&[
        "start",
        "--all",
        "--filter",
        "restart-policy=always",
        "--filter",
        "restart-policy=unless-stopped",
    ]);
    let mut started: Vec<&str> = o.lines().collect();
    started.sort();
    assert_eq!(started, ["pol-always", "pol-unless"]);
    for (name, want) in [
        ("pol-always", "running"),
        ("pol-unless", "running"),
        ("pol-stopped", "exited"),
        ("pol-no", "exited"),
    ] {
        assert_eq!(status(&c.inspect(name)), want, "{name}");
    }
    let o = c.b(&["start", "--all", "--filter", "policy=always"]);
    assert_ne!(o.code, 0, "{}", o.text());
    assert!(o.err.contains("invalid filter"), "{}", o.text());
    assert_eq!(o.err.trim().lines().count(), 1, "{}", o.text());
}

/// `container prune` and `system prune` remove stopped containers, not one
/// that is restarting (nor fail because of it).
#[test]
fn prune_leaves_a_restarting_container() {
    let c = Ctx::new();
    let id = c.run_d(&[
        "--name",
        "bouncer",
        "--restart",
        "always",
        IMG,
        "sh",
        "-c",
        "exit 9",
    ]);
    c.ok(&["create", "--name", "idle", IMG, "true"]);
    until(&c, "bouncer", 60.0, |v| {
        count(v) >= 5 && v["State"]["Restarting"] == true
    });
    let out = c.ok(&["container", "prune", "-f"]);
    assert!(!out.contains(&id), "{out}");
    let ids = c.ids();
    assert!(ids.contains(&id), "the restarting container went: {ids:?}");
    assert_eq!(ids.len(), 1, "the stopped one stayed: {ids:?}");
    until(&c, "bouncer", 60.0, |v| v["State"]["Restarting"] == true);
    c.ok(&["system", "prune", "-f"]);
    assert!(c.ids().contains(&id));
    c.ok(&["rm", "-f", "bouncer"]);
}
