//! The container verbs end to end: `run` (attached and `-d`), `create`,
//! `start`, `stop`, `kill`, `restart`, `rm`, `ps`, `logs`, `exec`,
//! `inspect`, `wait`, `rename`, `container prune`, against a busybox image
//! imported into a private store. Detached containers run under their
//! `berth __monitor` for real; the tests check what it records.
//!
//! Every test's [`Ctx`] removes (`rm -f`) whatever containers are left in
//! its store when it is dropped, kills stray monitors and unmounts leftover
//! overlays, even when the test failed.

use berth_integration::containers::*;
use berth_integration::pid_alive;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

#[test]
fn run_attached_passes_output_and_exit_codes() {
    let c = Ctx::new();
    let o = c.b(&["run", "--name", "keep", IMG, "sh", "-c", "echo hi; exit 3"]);
    assert_eq!(o.code, 3, "{}", o.text());
    assert_eq!(o.out, "hi\n", "{}", o.text());

    let o = c.b(&["run", "--rm", IMG, "sh", "-c", "echo oops >&2; exit 0"]);
    assert_eq!((o.code, o.out.as_str()), (0, ""), "{}", o.text());
    assert!(
        o.err.contains("oops"),
        "stderr not passed through: {}",
        o.text()
    );

    let o = c.b(&["run", "--rm", IMG, "no-such-command"]);
    assert_eq!(o.code, 127, "{}", o.text());
    let o = c.b(&["run", "--rm", IMG, "/bin/no-such-command"]);
    assert_eq!(o.code, 127, "{}", o.text());
    let o = c.b(&["run", "--rm", IMG, "/etc/passwd"]);
    assert_eq!(o.code, 126, "{}", o.text());

    // Without --rm the container stays, exited with its code.
    let rows = c.ps_all();
    assert_eq!(rows.len(), 1, "only `keep` should be left: {rows:?}");
    let keep = &rows[0];
    assert_eq!(keep["Names"], "keep");
    assert_eq!(keep["State"], "exited");
    let status = keep["Status"].as_str().unwrap();
    assert!(status.starts_with("Exited (3)"), "{status}");
    assert_eq!(c.state("keep")["ExitCode"], 3);
    // Not listed without -a.
    assert!(c.ps(&[]).is_empty());
    let keep_id = keep["ID"].as_str().unwrap().to_string();
    assert_eq!(c.dirs(), vec![keep_id.clone()]);
    assert_eq!(
        c.mounts(),
        Vec::<String>::new(),
        "an exited container stays mounted"
    );

    // With --rm it is gone: no row, no dir, no mount.
    let o = c.b(&[
        "run",
        "--rm",
        "--name",
        "gone",
        IMG,
        "sh",
        "-c",
        "echo bye; exit 4",
    ]);
    assert_eq!((o.code, o.out.as_str()), (4, "bye\n"), "{}", o.text());
    assert_eq!(c.ids(), vec![keep_id.clone()]);
    assert_eq!(c.dirs(), vec![keep_id]);
    assert_eq!(c.mounts(), Vec::<String>::new());
    // The name is free again.
    c.ok(&["run", "--rm", "--name", "gone", IMG, "true"]);

    c.ok(&["rm", "keep"]);
    c.assert_empty();
}

// ---------------------------------------------------------------------------
// 2. detached: logs, exec, stop, wait, start, restart, rm

#[test]
fn detached_logs_exec_stop_start_restart_rm() {
    let c = Ctx::new();
    let script = format!("echo out-1; echo err-1 >&2; sleep 0.3; echo out-2; {TRAP_TERM}");
    let id = c.run_d(&["--name", "web", "-e", "FOO=bar", IMG, "sh", "-c", &script]);
    assert_eq!(c.dirs(), vec![id.clone()]);
    assert_eq!(c.monitors(Some(&id)).len(), 1, "one monitor per container");

    // ps (running only) shows it Up.
    let rows = c.ps(&[]);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["ID"], id.as_str());
    assert_eq!(rows[0]["Names"], "web");
    assert_eq!(rows[0]["State"], "running");
    assert!(
        rows[0]["Status"].as_str().unwrap().starts_with("Up"),
        "{rows:?}"
    );
    let short = c.ok(&["ps", "-q"]);
    assert_eq!(short.trim(), &id[..12]);

    // logs: stdout on our stdout, stderr on our stderr.
    c.logs_until("web", "out-2");
    let o = c.b(&["logs", "web"]);
    assert_eq!(o.code, 0, "{}", o.text());
    assert_eq!(o.out, "out-1\nout-2\n", "{}", o.text());
    assert_eq!(o.err, "err-1\n", "{}", o.text());
    let o = c.b(&["logs", "--tail", "1", "web"]);
    assert_eq!(
        (o.out.as_str(), o.err.as_str()),
        ("out-2\n", ""),
        "{}",
        o.text()
    );
    let o = c.b(&["logs", "--tail", "0", "web"]);
    assert_eq!((o.out.as_str(), o.err.as_str()), ("", ""), "{}", o.text());
    let o = c.b(&["logs", "-t", "web"]);
    let lines: Vec<&str> = o.out.lines().collect();
    assert_eq!(lines.len(), 2, "{}", o.text());
    for (l, want) in lines.iter().zip(["out-1", "out-2"]) {
        let (ts, rest) = l.split_once(' ').unwrap();
        assert!(is_rfc3339(ts), "not an RFC 3339 time: {l:?}");
        assert_eq!(rest, want);
    }
    assert!(is_rfc3339(o.err.split(' ').next().unwrap()), "{}", o.text());
    assert_eq!(c.ok(&["logs", "--since", "1h", "web"]), "out-1\nout-2\n");
    // --since in the future: nothing; --until in the past: nothing.
    assert_eq!(
        c.ok(&["logs", "--since", "2999-01-01T00:00:00Z", "web"]),
        ""
    );
    assert_eq!(
        c.ok(&["logs", "--until", "2000-01-01T00:00:00Z", "web"]),
        ""
    );

    // exec: the container's env, hostname, users; exit codes through.
    assert_eq!(c.ok(&["exec", "web", "sh", "-c", "echo $FOO"]), "bar\n");
    assert_eq!(c.ok(&["exec", "web", "hostname"]).trim(), &id[..12]);
    assert_eq!(
        c.ok(&[
            "exec",
            "-e",
            "X=1",
            "-w",
            "/tmp",
            "web",
            "sh",
            "-c",
            "echo $X $FOO $(pwd)"
        ]),
        "1 bar /tmp\n"
    );
    let who = c.ok(&["exec", "-u", "nobody", "web", "id"]);
    assert!(
        who.starts_with("uid=65534(nobody) gid=65534(nogroup)"),
        "{who}"
    );
    assert_eq!(c.ok(&["exec", "-u", "1:1", "web", "id", "-u"]), "1\n");
    let o = c.b(&["exec", "web", "sh", "-c", "exit 7"]);
    assert_eq!(o.code, 7, "{}", o.text());
    let o = c.b(&["exec", "web", "no-such-command"]);
    assert_eq!(o.code, 127, "{}", o.text());
    let o = c.b(&["exec", "web", "/etc/passwd"]);
    assert_eq!(o.code, 126, "{}", o.text());
    // By id prefix too; the exec sees the container's pid namespace.
    assert_eq!(
        c.ok(&["exec", &id[..10], "cat", "/proc/1/comm"]).trim(),
        "sh"
    );
    // exec -d returns at once; its effect shows up.
    let t0 = Instant::now();
    c.ok(&[
        "exec",
        "-d",
        "web",
        "sh",
        "-c",
        "sleep 0.2; touch /tmp/from-exec-d",
    ]);
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert!(
        wait_for(5.0, || c
            .b(&["exec", "web", "test", "-e", "/tmp/from-exec-d"])
            .code
            == 0),
        "exec -d never ran"
    );

    // stop: the TERM trap exits 0 at once.
    let pid1 = c.state("web")["Pid"].as_i64().unwrap();
    assert!(pid1 > 0);
    let t0 = Instant::now();
    let o = c.b(&["stop", "web"]);
    assert_eq!((o.code, o.out.as_str()), (0, "web\n"), "{}", o.text());
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "stop took {:?} for a container that exits on TERM",
        t0.elapsed()
    );
    let st = c.state("web");
    assert_eq!(st["Status"], "exited", "{st}");
    assert_eq!(st["ExitCode"], 0, "{st}");
    assert_eq!(st["Running"], false);
    assert!(
        !pid_alive(pid1 as i32),
        "init {pid1} still alive after stop"
    );
    let row = c.row(&id).unwrap();
    assert!(
        row["Status"].as_str().unwrap().starts_with("Exited (0)"),
        "{row}"
    );
    assert!(c.ps(&[]).is_empty(), "ps (no -a) lists a stopped container");
    assert_eq!(
        c.mounts(),
        Vec::<String>::new(),
        "stopped container still mounted"
    );
    assert!(
        wait_for(5.0, || c.monitors(Some(&id)).is_empty()),
        "monitor outlived the container"
    );
    assert_eq!(c.ok(&["wait", "web"]), "0\n");
    // Stopping a stopped container is fine.
    c.ok(&["stop", "web"]);

    // start again: Up, output appended to the same log.
    assert_eq!(c.ok(&["start", "web"]), "web\n");
    assert_eq!(c.row(&id).unwrap()["State"], "running");
    let logs = c.logs_until("web", "out-2\nout-1\n");
    assert!(
        logs.ends_with("out-2\n") || logs.ends_with("out-1\n"),
        "{logs:?}"
    );
    let pid2 = c.state("web")["Pid"].as_i64().unwrap();
    assert_ne!(pid2, pid1);

    // restart: a new init, running.
    assert_eq!(c.ok(&["restart", "web"]), "web\n");
    let st = c.state("web");
    assert_eq!(st["Status"], "running", "{st}");
    let pid3 = st["Pid"].as_i64().unwrap();
    assert!(pid3 > 0 && pid3 != pid2, "restart kept pid {pid2}");
    assert!(!pid_alive(pid2 as i32));
    assert_eq!(c.monitors(Some(&id)).len(), 1, "one monitor after restart");

    // rm of a running container fails and changes nothing; rm -f works.
    let o = c.b(&["rm", "web"]);
    assert_eq!(o.code, 1, "{}", o.text());
    assert!(o.err.contains("container is running"), "{}", o.text());
    assert_eq!(
        o.err.trim().lines().count(),
        1,
        "one clear line: {}",
        o.text()
    );
    assert_eq!(c.row(&id).unwrap()["State"], "running");
    assert!(pid_alive(pid3 as i32));
    assert_eq!(c.ok(&["rm", "-f", "web"]), "web\n");
    assert!(!pid_alive(pid3 as i32));
    c.assert_empty();
}

#[test]
fn stop_timeout_kills_a_pid1_that_ignores_term() {
    let c = Ctx::new();
    // sleep as pid 1 has no TERM handler: the kernel ignores TERM for it.
    let id = c.run_d(&["--name", "sleeper", IMG, "sleep", "1000"]);
    let t0 = Instant::now();
    c.ok(&["stop", "-t", "1", "sleeper"]);
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(6),
        "stop -t 1 took {took:?}"
    );
    let st = c.state(&id);
    assert_eq!(st["ExitCode"], 137, "{st}");
    assert_eq!(st["Status"], "exited");
    assert_eq!(c.ok(&["wait", "sleeper"]), "137\n");

    // --stop-timeout is the default for stop.
    c.run_d(&[
        "--name",
        "quick",
        "--stop-timeout",
        "1",
        IMG,
        "sleep",
        "1000",
    ]);
    let t0 = Instant::now();
    c.ok(&["stop", "quick"]);
    let took = t0.elapsed();
    assert!(
        took < Duration::from_secs(6),
        "--stop-timeout 1 ignored: stop took {took:?}"
    );
    assert_eq!(c.state("quick")["ExitCode"], 137);

    // --stop-signal: KILL stops it at once (exit 137).
    c.run_d(&[
        "--name",
        "bykill",
        "--stop-signal",
        "SIGKILL",
        IMG,
        "sleep",
        "1000",
    ]);
    let t0 = Instant::now();
    c.ok(&["stop", "bykill"]);
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "stop signal not used: {:?}",
        t0.elapsed()
    );
    assert_eq!(c.state("bykill")["ExitCode"], 137);
    assert_eq!(c.inspect("bykill")["Config"]["StopSignal"], "SIGKILL");
    c.ok(&["rm", "sleeper", "quick", "bykill"]);
    c.assert_empty();
}

#[test]
fn kill_sends_signals_and_wait_reports_the_code() {
    let c = Ctx::new();
    let script = "trap 'echo got-usr1' USR1; echo ready; while true; do sleep 0.1; done";
    let id = c.run_d(&["--name", "sig", IMG, "sh", "-c", script]);
    c.logs_until("sig", "ready");
    let o = c.b(&["kill", "-s", "USR1", "sig"]);
    assert_eq!((o.code, o.out.as_str()), (0, "sig\n"), "{}", o.text());
    c.logs_until("sig", "got-usr1");
    assert_eq!(c.row(&id).unwrap()["State"], "running", "USR1 is trapped");
    // wait blocks until the container exits, then prints its code.
    let w = c.spawn(&["wait", "sig"]);
    std::thread::sleep(Duration::from_millis(200));
    c.ok(&["kill", "sig"]);
    let o = w.finish(10.0);
    assert_eq!((o.code, o.out.as_str()), (0, "137\n"), "{}", o.text());
    assert_eq!(c.state("sig")["ExitCode"], 137);
    // Killing a stopped container is an error.
    let o = c.b(&["kill", "sig"]);
    assert_eq!(o.code, 1, "{}", o.text());
    assert!(o.err.contains("not running"), "{}", o.text());
    // A bad signal name is refused.
    let o = c.b(&["kill", "-s", "NOPE", "sig"]);
    assert_ne!(o.code, 0, "{}", o.text());
    c.ok(&["rm", "sig"]);
    c.assert_empty();
}

// ---------------------------------------------------------------------------
// 3. names and lookup

#[test]
fn names_rename_prefixes_and_unknown_containers() {
    let c = Ctx::new();
    let id = c
        .ok(&["create", "--name", "dup", IMG, "true"])
        .trim()
        .to_string();
    assert!(is_id(&id), "{id}");

    // A taken name: 125, one clear message, nothing created.
    let o = c.b(&["run", "--name", "dup", IMG, "echo", "no"]);
    assert_eq!(o.code, 125, "{}", o.text());
    assert!(o.err.contains("already in use"), "{}", o.text());
    assert!(!o.out.contains("no"), "the container ran: {}", o.text());
    let o = c.b(&["run", "-d", "--name", "/dup", IMG, "true"]);
    assert_eq!(o.code, 125, "{}", o.text());
    let o = c.b(&["create", "--name", "dup", IMG, "true"]);
    assert_eq!(o.code, 125, "{}", o.text());
    assert_eq!(c.ids(), vec![id.clone()]);
    assert_eq!(c.dirs(), vec![id.clone()]);

    // An invalid name.
    let o = c.b(&["create", "--name", "a b", IMG, "true"]);
    assert_eq!(o.code, 125, "{}", o.text());
    assert_eq!(c.ids(), vec![id.clone()]);

    // rename.
    let o = c.b(&["rename", "dup", "renamed"]);
    assert_eq!(o.code, 0, "{}", o.text());
    assert_eq!(c.inspect("renamed")["Name"], "/renamed");
    assert_eq!(c.inspect("renamed")["Id"], id.as_str());
    assert_eq!(c.b(&["inspect", "dup"]).code, 1);
    // The old name is free, the new one taken.
    let other = c
        .ok(&["create", "--name", "dup", IMG, "true"])
        .trim()
        .to_string();
    let o = c.b(&["rename", "dup", "renamed"]);
    assert_ne!(o.code, 0, "{}", o.text());
    assert!(o.err.contains("already in use"), "{}", o.text());
    assert_eq!(c.inspect("dup")["Id"], other.as_str());

    // Lookup by full id, id prefix, /name.
    assert_eq!(c.inspect(&id)["Name"], "/renamed");
    assert_eq!(c.inspect(&id[..6])["Id"], id.as_str());
    assert_eq!(c.inspect("/renamed")["Id"], id.as_str());

    // Generated names are adjective_name and valid.
    let gen = c.ok(&["create", IMG, "true"]).trim().to_string();
    let name = c.inspect(&gen)["Name"].as_str().unwrap().to_string();
    let bare = name.strip_prefix('/').unwrap();
    assert!(
        bare.contains('_')
            && bare
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_' || b.is_ascii_digit()),
        "{name}"
    );
    assert_eq!(c.inspect(bare)["Id"], gen.as_str());

    // Unknown containers: exit 1, "no such container".
    for verb in [
        vec!["rm", "nosuch"],
        vec!["stop", "nosuch"],
        vec!["start", "nosuch"],
        vec!["kill", "nosuch"],
        vec!["logs", "nosuch"],
        vec!["wait", "nosuch"],
        vec!["exec", "nosuch", "true"],
        vec!["rename", "nosuch", "x1"],
        vec!["container", "inspect", "nosuch"],
    ] {
        let o = c.b(&verb);
        assert_eq!(o.code, 1, "{verb:?}: {}", o.text());
        assert!(
            o.err.to_lowercase().contains("no such container")
                || o.err.to_lowercase().contains("no such object"),
            "{verb:?}: {}",
            o.text()
        );
    }
    c.ok(&["rm", &id, &other, &gen]);
    c.assert_empty();
}

// ---------------------------------------------------------------------------
// 4. create + start -a

#[test]
fn create_then_start_attached() {
    let c = Ctx::new();
    let id = c
        .ok(&[
            "create",
            "--name",
            "c1",
            IMG,
            "sh",
            "-c",
            "echo from-c1; echo err-c1 >&2; exit 5",
        ])
        .trim()
        .to_string();
    let row = c.row(&id).unwrap();
    assert_eq!(row["State"], "created");
    assert_eq!(row["Status"], "Created");
    let st = c.state("c1");
    assert_eq!(st["Status"], "created");
    assert_eq!(st["StartedAt"], "0001-01-01T00:00:00Z");
    // Created, not mounted, nothing running.
    assert_eq!(c.mounts(), Vec::<String>::new());
    assert!(c.monitors(None).is_empty());

    let o = c.b(&["start", "-a", "c1"]);
    assert_eq!(o.code, 5, "{}", o.text());
    assert_eq!(o.out, "from-c1\n", "{}", o.text());
    assert!(o.err.contains("err-c1"), "{}", o.text());
    let st = c.state("c1");
    assert_eq!(st["ExitCode"], 5, "{st}");
    assert_eq!(st["Status"], "exited");
    // Again: only this run's output.
    let o = c.b(&["container", "start", "-a", "c1"]);
    assert_eq!((o.code, o.out.as_str()), (5, "from-c1\n"), "{}", o.text());
    // The log has both runs.
    assert_eq!(c.ok(&["logs", "c1"]), "from-c1\nfrom-c1\n");
    c.ok(&["rm", "c1"]);
    c.assert_empty();
}

// ---------------------------------------------------------------------------
// 5. resource limits

#[test]
fn oom_kill_is_recorded() {
    let c = Ctx::new();
    let hog = "a=xxxxxxxxxxxxxxxx; while true; do a=$a$a; done";
    let o = c.b(&["run", "--name", "hog", "-m", "8m", IMG, "sh", "-c", hog]);
    assert_eq!(o.code, 137, "{}", o.text());
    let insp = c.inspect("hog");
    assert_eq!(insp["State"]["OOMKilled"], true, "{}", insp["State"]);
    assert_eq!(insp["State"]["ExitCode"], 137);
    assert_eq!(insp["HostConfig"]["Memory"], 8 << 20);

    // Detached too (the monitor records it).
    let id = c.run_d(&["--name", "hog-d", "-m", "8m", IMG, "sh", "-c", hog]);
    assert_eq!(c.b(&["wait", &id]).out, "137\n");
    assert_eq!(c.state("hog-d")["OOMKilled"], true);

    // A normal exit is not an OOM kill.
    c.ok(&["run", "--name", "fine", "-m", "8m", IMG, "true"]);
    assert_eq!(c.state("fine")["OOMKilled"], false);
    c.ok(&["rm", "hog", "hog-d", "fine"]);
    c.assert_empty();
}

#[test]
fn pids_limit_contains_a_fork_bomb() {
    let c = Ctx::new();
    // The inner shell starts 30 sleeps in the background until a fork fails;
    // the outer one (pid 1) counts the other processes (the sleeps, some
    // maybe not exec'd yet) with builtins only: it cannot fork either when
    // the limit is reached.
    let script = r#"sh -c 'i=0; while [ $i -lt 30 ]; do sleep 30 & i=$((i+1)); done' 2>/dev/null
n=0
for p in /proc/[0-9]*; do
  [ "$p" = /proc/1 ] || n=$((n+1))
done
read max < /sys/fs/cgroup/pids/pids.max
echo "$n $max""#;
    let o = c.b(&["run", "--rm", "--pids-limit", "10", IMG, "sh", "-c", script]);
    assert_eq!(o.code, 0, "{}", o.text());
    let got: Vec<&str> = o.out.split_whitespace().collect();
    assert_eq!(got.len(), 2, "{}", o.text());
    let n: u32 = got[0].parse().unwrap();
    assert_eq!(got[1], "10");
    assert!(
        (1..10).contains(&n),
        "{n} processes ran under --pids-limit 10"
    );

    // Without the limit all 30 run.
    let o = c.b(&["run", "--rm", IMG, "sh", "-c", script]);
    assert_eq!(o.code, 0, "{}", o.text());
    let n: u32 = o.out.split_whitespace().next().unwrap().parse().unwrap();
    assert_eq!(n, 30, "{}", o.text());
    c.assert_empty();
}

// ---------------------------------------------------------------------------
// 6. a monitor that dies

#[test]
fn log_rotation_keeps_the_log_bounded() {
    let c = Ctx::new();
    // One k=v per --log-opt, as in Docker.
    let o = c.b(&[
        "run",
        "-d",
        "--log-opt",
        "max-size=1k,max-file=2",
        IMG,
        "true",
    ]);
    assert_eq!(o.code, 125, "{}", o.text());
    let o = c.b(&["run", "-d", "--log-opt", "max-bogus=1", IMG, "true"]);
    assert_eq!(o.code, 125, "{}", o.text());
    assert!(c.ids().is_empty(), "a refused run left a container");

    let script = "i=0; while [ $i -lt 400 ]; do echo line-$i-some-padding-to-make-it-longer; i=$((i+1)); done";
    let id = c.run_d(&[
        "--name",
        "chatty",
        "--log-opt",
        "max-size=1k",
        "--log-opt",
        "max-file=2",
        IMG,
        "sh",
        "-c",
        script,
    ]);
    assert_eq!(c.ok(&["wait", "chatty"]), "0\n");
    let dir = c.root().join("containers").join(&id);
    let mut logs: Vec<(String, u64)> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("{id}-json.log"))
        })
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().len(),
            )
        })
        .collect();
    logs.sort();
    let names: Vec<&str> = logs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        vec![format!("{id}-json.log"), format!("{id}-json.log.1")],
        "max-file=2: the log and one rotated file"
    );
    for (n, len) in &logs {
        assert!(*len <= 1024, "{n} is {len} bytes, over max-size=1k");
    }
    let out = c.ok(&["logs", "chatty"]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        !lines.is_empty() && lines.len() < 400,
        "{} lines kept",
        lines.len()
    );
    assert_eq!(
        *lines.last().unwrap(),
        "line-399-some-padding-to-make-it-longer"
    );
    // What is kept is a contiguous tail.
    let first: u32 = lines[0].split('-').nth(1).unwrap().parse().unwrap();
    assert_eq!(first as usize + lines.len(), 400, "{out}");
    assert_eq!(
        c.inspect("chatty")["HostConfig"]["LogConfig"]["Config"]["max-file"],
        "2"
    );
    c.ok(&["rm", "chatty"]);
    c.assert_empty();
}

#[test]
fn logs_follow_returns_when_the_container_exits() {
    let c = Ctx::new();
    let script = "echo first; sleep 1; echo middle; sleep 0.5; echo last";
    c.run_d(&["--name", "follow", IMG, "sh", "-c", script]);
    c.logs_until("follow", "first");
    let t0 = Instant::now();
    let o = c.spawn(&["logs", "-f", "follow"]).finish(15.0);
    assert_eq!(o.code, 0, "{}", o.text());
    assert_eq!(o.out, "first\nmiddle\nlast\n", "{}", o.text());
    assert!(
        t0.elapsed() > Duration::from_millis(500),
        "logs -f did not follow"
    );
    // -f on an exited container returns at once.
    let o = c
        .spawn(&["logs", "-f", "--tail", "1", "follow"])
        .finish(5.0);
    assert_eq!(o.out, "last\n", "{}", o.text());
    c.ok(&["rm", "follow"]);
    c.assert_empty();
}

// ---------------------------------------------------------------------------
// 10. inspect

#[test]
fn inspect_has_docker_shape() {
    let c = Ctx::new();
    let id = c.run_d(&[
        "--name", "insp", "-l", "a=1", "-l", "b=two", "-m", "64m", "-e", "E1=v1", "-w", "/tmp",
        IMG, "sh", "-c", TRAP_TERM,
    ]);
    let i = c.inspect("insp");
    assert_eq!(i["Id"], id.as_str());
    assert_eq!(i["Name"], "/insp");
    let st = &i["State"];
    assert_eq!(st["Status"], "running", "{st}");
    assert_eq!(st["Running"], true);
    let pid = st["Pid"].as_i64().unwrap();
    assert!(pid > 0 && pid_alive(pid as i32), "{st}");
    assert_eq!(st["ExitCode"], 0);
    assert!(is_rfc3339(st["StartedAt"].as_str().unwrap()), "{st}");
    assert_eq!(st["FinishedAt"], "0001-01-01T00:00:00Z");
    assert_eq!(st["OOMKilled"], false);
    assert_eq!(
        i["Config"]["Cmd"],
        serde_json::json!(["sh", "-c", TRAP_TERM])
    );
    assert_eq!(i["Config"]["Image"], IMG);
    assert_eq!(i["Config"]["Hostname"], &id[..12]);
    assert_eq!(i["Config"]["WorkingDir"], "/tmp");
    assert_eq!(
        i["Config"]["Labels"],
        serde_json::json!({"a": "1", "b": "two"})
    );
    assert!(
        i["Config"]["Env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "E1=v1"),
        "{}",
        i["Config"]["Env"]
    );
    assert_eq!(i["HostConfig"]["Memory"], 64 << 20);
    assert_eq!(i["HostConfig"]["NetworkMode"], "none");
    assert!(i["Image"].as_str().unwrap().starts_with("sha256:"));
    // The memory limit is really applied.
    assert_eq!(
        c.ok(&[
            "exec",
            "insp",
            "cat",
            "/sys/fs/cgroup/memory/memory.limit_in_bytes"
        ])
        .trim(),
        (64u64 << 20).to_string()
    );
    // The upper dir is where the container's writes land.
    let upper = PathBuf::from(i["GraphDriver"]["Data"]["UpperDir"].as_str().unwrap());
    assert!(upper.is_dir(), "{}", upper.display());
    assert!(upper.starts_with(c.root()), "{}", upper.display());
    c.ok(&["exec", "insp", "sh", "-c", "echo mark > /written-here"]);
    assert_eq!(
        std::fs::read_to_string(upper.join("written-here")).unwrap(),
        "mark\n"
    );
    assert!(Path::new(i["LogPath"].as_str().unwrap()).is_file());
    // `container inspect` is the same object; labels filter in ps.
    let ci: Value = serde_json::from_str(&c.ok(&["container", "inspect", &id[..12]])).unwrap();
    assert_eq!(ci[0]["Id"], id.as_str());
    assert_eq!(c.ps(&["--filter", "label=b=two"]).len(), 1);
    assert_eq!(c.ps(&["--filter", "label=b=three"]).len(), 0);

    c.ok(&["stop", "insp"]);
    let st = c.state("insp");
    assert_eq!(st["Status"], "exited");
    assert_eq!(st["Running"], false);
    assert_eq!(st["Pid"], 0);
    let fin = st["FinishedAt"].as_str().unwrap();
    assert!(is_rfc3339(fin), "{st}");
    assert!(fin >= st["StartedAt"].as_str().unwrap(), "{st}");
    // The writable layer survives a stop.
    assert!(upper.join("written-here").is_file());
    c.ok(&["rm", "insp"]);
    assert!(!upper.exists(), "rm left the upper dir");
    c.assert_empty();
}

// ---------------------------------------------------------------------------
// ps filters and container prune

#[test]
fn ps_filters_and_container_prune() {
    let c = Ctx::new();
    let ok0 = c
        .ok(&["create", "--name", "zero", IMG, "true"])
        .trim()
        .to_string();
    c.ok(&["start", "-a", "zero"]);
    let o = c.b(&["run", "--name", "two", IMG, "sh", "-c", "exit 2"]);
    assert_eq!(o.code, 2);
    let created = c
        .ok(&["create", "--name", "fresh", IMG, "true"])
        .trim()
        .to_string();
    let up = c.run_d(&["--name", "up", "-l", "k=v", IMG, "sh", "-c", TRAP_TERM]);

    let names = |flags: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = c
            .ps(flags)
            .iter()
            .map(|r| r["Names"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&[]), vec!["up"]);
    assert_eq!(names(&["-a"]), vec!["fresh", "two", "up", "zero"]);
    assert_eq!(names(&["--filter", "status=exited"]), vec!["two", "zero"]);
    assert_eq!(names(&["--filter", "exited=2"]), vec!["two"]);
    assert_eq!(names(&["--filter", "status=created"]), vec!["fresh"]);
    assert_eq!(names(&["-a", "--filter", "label=k=v"]), vec!["up"]);
    assert_eq!(names(&["-a", "--filter", "name=zer"]), vec!["zero"]);
    assert_eq!(
        names(&["-a", "--filter", &format!("id={}", &up[..8])]),
        vec!["up"]
    );
    let o = c.b(&["ps", "--filter", "bogus=1"]);
    assert_ne!(o.code, 0, "{}", o.text());
    // The table has Docker's header, and `container ls` is ps.
    let table = c.ok(&["container", "ls", "-a", "-s"]);
    let head = table.lines().next().unwrap();
    for col in [
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "NAMES",
        "SIZE",
    ] {
        assert!(head.contains(col), "{head}");
    }
    assert_eq!(table.lines().count(), 5, "{table}");

    // prune removes the stopped ones (exited and created), not the running one.
    let out = c.ok(&["container", "prune", "-f"]);
    assert!(out.contains("Deleted Containers:"), "{out}");
    assert!(out.contains(&ok0) && out.contains(&created), "{out}");
    assert!(!out.contains(&up), "{out}");
    assert_eq!(c.ids(), vec![up.clone()]);
    assert_eq!(c.dirs(), vec![up.clone()]);
    c.ok(&["rm", "-f", "up"]);
    c.assert_empty();
}

// ---------------------------------------------------------------------------
// 11. bad input

#[test]
fn bad_flags_are_refused_and_create_nothing() {
    let c = Ctx::new();
    for args in [
        vec!["run", "--memory", "12x", IMG, "true"],
        vec!["run", "-d", "--memory", "12x", IMG, "true"],
        vec!["create", "-m", "12x", IMG, "true"],
        vec!["run", "--stop-signal", "NOPE", IMG, "true"],
        vec!["run", "-d", "--stop-signal", "NOPE", IMG, "true"],
        vec!["run", "--network", "bridge9", IMG, "true"],
        vec!["run", "--log-opt", "max-size=big", IMG, "true"],
        vec!["run", "--env-file", "/nonexistent/env", IMG, "true"],
        // The imported image has no Cmd.
        vec!["run", IMG],
        vec!["create", IMG],
    ] {
        let o = c.b(&args);
        assert_eq!(o.code, 125, "{args:?}: {}", o.text());
        assert_eq!(o.out, "", "{args:?}: {}", o.text());
        let lines: Vec<&str> = o.err.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(
            lines.len(),
            1,
            "{args:?}: want one clear line: {}",
            o.text()
        );
        assert!(
            lines[0].starts_with("berth: ") && lines[0].len() < 300,
            "{args:?}: {}",
            o.text()
        );
        assert!(
            c.ids().is_empty(),
            "{args:?} left a container: {:?}",
            c.ids()
        );
        assert!(c.dirs().is_empty(), "{args:?} left a dir: {:?}", c.dirs());
    }
    let o = c.b(&["run", "--memory", "12x", IMG, "true"]);
    assert!(
        o.err.contains("12x"),
        "the message names the bad value: {}",
        o.text()
    );
    let o = c.b(&["run", "--stop-signal", "NOPE", IMG, "true"]);
    assert!(
        o.err.contains("NOPE"),
        "the message names the bad value: {}",
        o.text()
    );
    c.assert_empty();
}

// ---------------------------------------------------------------------------
// more run options, stdin, signals to an attached run

#[test]
fn run_env_file_and_host_network() {
    let c = Ctx::new();
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join("env");
    std::fs::write(&env, "A=1\n# a comment\n\nB=two words\nA=3\n").unwrap();
    let env = env.to_str().unwrap();
    let out = c.ok(&[
        "run",
        "--rm",
        "--env-file",
        env,
        "-e",
        "C=c",
        IMG,
        "sh",
        "-c",
        "echo \"$A|$B|$C\"",
    ]);
    assert_eq!(out, "3|two words|c\n");
    // -e wins over --env-file.
    let out = c.ok(&[
        "run",
        "--rm",
        "--env-file",
        env,
        "-e",
        "A=e",
        IMG,
        "sh",
        "-c",
        "echo $A",
    ]);
    assert_eq!(out, "e\n");

    // Other tests (or other work on the host) add and remove interfaces
    // meanwhile: every interface there before and after must be seen.
    let host_ifs = || -> std::collections::BTreeSet<String> {
        std::fs::read_dir("/sys/class/net")
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    let before = host_ifs();
    let out = c.ok(&[
        "run",
        "--rm",
        "--network",
        "host",
        IMG,
        "ls",
        "/sys/class/net",
    ]);
    let after = host_ifs();
    let got: std::collections::BTreeSet<String> =
        out.split_whitespace().map(str::to_string).collect();
    let stable: std::collections::BTreeSet<String> = before.intersection(&after).cloned().collect();
    assert!(
        stable.is_subset(&got),
        "--network host sees the host's interfaces: {got:?} vs {stable:?}"
    );
    assert!(got.contains("lo") && got.len() > 1, "{got:?}");
    assert_eq!(
        c.ok(&["run", "--rm", IMG, "ls", "/sys/class/net"]).trim(),
        "lo"
    );
    c.assert_empty();
}

#[test]
fn attached_stdin_only_with_interactive() {
    let c = Ctx::new();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::write(&input, "from-stdin\n").unwrap();
    let run = |flags: &[&str]| -> Out {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&[IMG, "sh", "-c", "cat; echo end"]);
        let f = std::fs::File::open(&input).unwrap();
        Proc::with_stdin(c.s.cmd(&args), format!("{args:?}"), Stdio::from(f)).finish(20.0)
    };
    let o = run(&["-i"]);
    assert_eq!(
        (o.code, o.out.as_str()),
        (0, "from-stdin\nend\n"),
        "{}",
        o.text()
    );
    // Without -i the container's stdin is not ours (Docker: /dev/null), so
    // a `while read ...; do berth run ...; done < file` loop keeps its input.
    let o = run(&[]);
    assert_eq!(
        (o.code, o.out.as_str()),
        (0, "end\n"),
        "without -i the container read our stdin: {}",
        o.text()
    );
    c.assert_empty();
}
