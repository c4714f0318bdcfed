//! Container faults and races: killed monitors and CLIs, concurrent runs
//! and starts, `--rm` exits, images in use. See tests/src/containers.rs.

use berth_integration::containers::*;
use berth_integration::pid_alive;
use serde_json::Value;
use std::time::{Duration, Instant};

#[test]
fn killed_monitor_running_container_stays_up_until_it_dies() {
    let c = Ctx::new();
    let id = c.run_d(&["--name", "orphan", IMG, "sh", "-c", TRAP_TERM]);
    let mons = c.monitors(Some(&id));
    assert_eq!(mons.len(), 1, "{mons:?}");
    // SAFETY: kill(2) of the monitor we found.
    assert_eq!(unsafe { libc::kill(mons[0], libc::SIGKILL) }, 0);
    assert!(
        wait_for(5.0, || !pid_alive(mons[0])),
        "monitor survived SIGKILL"
    );
    let pid = c.state("orphan")["Pid"].as_i64().unwrap() as i32;
    assert!(pid > 0 && pid_alive(pid));

    // It is still running, so ps says Up (twice, a moment apart).
    for _ in 0..2 {
        let row = c.row(&id).unwrap();
        assert_eq!(row["State"], "running", "{row}");
        assert!(row["Status"].as_str().unwrap().starts_with("Up"), "{row}");
        std::thread::sleep(Duration::from_millis(300));
    }
    // exec still works.
    assert_eq!(
        c.ok(&["exec", "orphan", "echo", "still-here"]),
        "still-here\n"
    );

    // Now the container dies behind everyone's back.
    // SAFETY: kill(2) of the container's init.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    assert!(wait_for(5.0, || !pid_alive(pid)), "init survived SIGKILL");
    let mut row = Value::Null;
    assert!(
        wait_for(5.0, || {
            row = c.row(&id).unwrap();
            row["State"] == "exited"
        }),
        "ps -a still says {row} after the init died"
    );
    assert!(
        row["Status"].as_str().unwrap().starts_with("Exited"),
        "{row}"
    );
    let st = c.state("orphan");
    assert_eq!(st["Running"], false, "{st}");
    assert_eq!(st["Pid"], 0, "{st}");
    assert!(c.ps(&[]).is_empty());
    // The overlay is unmounted once the exit is noticed.
    assert_eq!(c.mounts(), Vec::<String>::new());
    // It can start again, under a new monitor.
    c.ok(&["start", "orphan"]);
    assert_eq!(c.row(&id).unwrap()["State"], "running");
    assert_eq!(c.monitors(Some(&id)).len(), 1);
    c.ok(&["stop", "orphan"]);
    assert_eq!(c.state("orphan")["ExitCode"], 0);
    c.ok(&["rm", "orphan"]);
    c.assert_empty();
}

#[test]
fn killed_monitor_then_berth_kill_and_rm() {
    let c = Ctx::new();
    let id = c.run_d(&["--name", "orphan2", IMG, "sleep", "1000"]);
    let mons = c.monitors(Some(&id));
    assert_eq!(mons.len(), 1, "{mons:?}");
    // SAFETY: kill(2) of the monitor we found.
    unsafe { libc::kill(mons[0], libc::SIGKILL) };
    assert!(wait_for(5.0, || !pid_alive(mons[0])));
    assert_eq!(c.row(&id).unwrap()["State"], "running");
    let pid = c.state(&id)["Pid"].as_i64().unwrap() as i32;

    // berth kill reaches the orphaned container; the exit is noticed.
    let o = c.b(&["kill", "orphan2"]);
    assert_eq!(o.code, 0, "{}", o.text());
    assert!(wait_for(5.0, || !pid_alive(pid)));
    let mut row = Value::Null;
    assert!(
        wait_for(5.0, || {
            row = c.row(&id).unwrap();
            row["State"] == "exited"
        }),
        "ps -a says {row}"
    );
    // wait does not hang on it.
    let o = c.spawn(&["wait", "orphan2"]).finish(10.0);
    assert_eq!(o.code, 0, "{}", o.text());
    c.ok(&["rm", "orphan2"]);
    c.assert_empty();

    // And rm -f straight after a monitor kill.
    let id = c.run_d(&[IMG, "sleep", "1000"]);
    for m in c.monitors(Some(&id)) {
        // SAFETY: kill(2) of the monitor we found.
        unsafe { libc::kill(m, libc::SIGKILL) };
    }
    let pid = c.state(&id)["Pid"].as_i64().unwrap() as i32;
    c.ok(&["rm", "-f", &id]);
    assert!(
        wait_for(5.0, || !pid_alive(pid)),
        "rm -f left the init running"
    );
    c.assert_empty();
}

// ---------------------------------------------------------------------------
// 7. --rm -d

#[test]
fn rm_detached_removes_itself() {
    let c = Ctx::new();
    let id = c.run_d(&["--rm", IMG, "sh", "-c", "sleep 0.3; exit 3"]);
    assert!(
        wait_for(10.0, || c.ids().is_empty() && c.dirs().is_empty()),
        "--rm -d container {id} still there: {:?} {:?}",
        c.ids(),
        c.dirs()
    );
    c.assert_empty();

    // stop of a --rm container removes it too.
    let id = c.run_d(&["--rm", "--name", "tmp", IMG, "sh", "-c", TRAP_TERM]);
    c.ok(&["stop", "tmp"]);
    assert!(wait_for(5.0, || c.ids().is_empty()), "{id} left after stop");
    c.assert_empty();
}

// ---------------------------------------------------------------------------
// 8. many at once

#[test]
fn concurrent_detached_runs() {
    const N: usize = 50;
    let c = Ctx::new();
    let procs: Vec<Proc> = (0..N)
        .map(|_| c.spawn(&["run", "-d", "-l", "batch=1", IMG, "sleep", "1000"]))
        .collect();
    let outs: Vec<Out> = procs.into_iter().map(|p| p.finish(120.0)).collect();
    let mut ids = Vec::new();
    for o in &outs {
        assert_eq!(o.code, 0, "{}", o.text());
        let id = o.out.trim().to_string();
        assert!(is_id(&id), "{}", o.text());
        ids.push(id);
    }
    let mut uniq = ids.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq.len(), N, "duplicate ids: {ids:?}");
    let rows = c.ps(&["--filter", "label=batch=1"]);
    assert_eq!(rows.len(), N, "{rows:?}");
    let mut names: Vec<String> = rows
        .iter()
        .map(|r| r["Names"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), N, "duplicate names: {rows:?}");
    for r in &rows {
        assert_eq!(r["State"], "running", "{r}");
    }
    // Each has its own hostname.
    assert_eq!(c.ok(&["exec", &ids[7], "hostname"]).trim(), &ids[7][..12]);
    let mut args = vec!["rm", "-f"];
    args.extend(ids.iter().map(String::as_str));
    let out = c.ok(&args);
    assert_eq!(out.lines().count(), N, "{out}");
    c.assert_empty();
}

// ---------------------------------------------------------------------------
// 9. log rotation

#[test]
fn attached_run_forwards_signals_and_survives_the_cli_dying() {
    let c = Ctx::new();
    let script = "trap 'echo got-term; exit 9' TERM; while true; do sleep 0.1; done";
    let running = |name: &str| {
        c.ps_all()
            .iter()
            .any(|r| r["Names"] == name && r["State"] == "running")
    };

    // SIGTERM to the attached CLI reaches the container; the CLI exits
    // with the container's code.
    let p = c.spawn(&["run", "--name", "fwd", IMG, "sh", "-c", script]);
    let cli = p.child.id() as i32;
    assert!(wait_for(10.0, || running("fwd")), "fwd never ran");
    std::thread::sleep(Duration::from_millis(200));
    // SAFETY: kill(2) of our own child.
    unsafe { libc::kill(cli, libc::SIGTERM) };
    let o = p.finish(10.0);
    assert_eq!((o.code, o.out.as_str()), (9, "got-term\n"), "{}", o.text());
    assert_eq!(c.state("fwd")["ExitCode"], 9);
    assert_eq!(c.mounts(), Vec::<String>::new());

    // The attached CLI SIGKILLed: the container runs on, ps says Up; when
    // it is stopped, ps says Exited.
    let p = c.spawn(&["run", "--name", "orphan3", IMG, "sh", "-c", script]);
    let cli = p.child.id() as i32;
    assert!(wait_for(10.0, || running("orphan3")), "orphan3 never ran");
    // SAFETY: kill(2) of our own child.
    unsafe { libc::kill(cli, libc::SIGKILL) };
    let _ = p.finish(10.0);
    let pid = c.state("orphan3")["Pid"].as_i64().unwrap() as i32;
    assert!(pid > 0 && pid_alive(pid));
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        running("orphan3"),
        "a running container whose CLI died is not Up"
    );
    let t0 = Instant::now();
    c.ok(&["stop", "orphan3"]);
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "stop took {:?}",
        t0.elapsed()
    );
    assert!(!pid_alive(pid));
    assert_eq!(c.state("orphan3")["Status"], "exited");
    assert_eq!(c.mounts(), Vec::<String>::new());
    c.ok(&["rm", "fwd", "orphan3"]);
    c.assert_empty();
}

// ---------------------------------------------------------------------------
// --rm containers still report how they ended

#[test]
fn rm_containers_still_report_their_exit() {
    let c = Ctx::new();
    let mut bad: Vec<String> = Vec::new();
    // Three rounds: the removal races with whoever waits for the exit.
    for round in 0..3 {
        // start -a of a --rm container: all its output and its code.
        for script in [
            "echo out-1; echo out-2; exit 5",
            "echo out-1; sleep 0.3; echo out-2; exit 5",
        ] {
            let name = format!("rmc{round}");
            c.ok(&["create", "--rm", "--name", &name, IMG, "sh", "-c", script]);
            let o = c.b(&["start", "-a", &name]);
            if (o.code, o.out.as_str()) != (5, "out-1\nout-2\n") {
                bad.push(format!(
                    "start -a of a --rm container ({script}): want exit 5 and both lines, got {}",
                    o.text()
                ));
            }
            if !wait_for(5.0, || c.ids().is_empty()) {
                bad.push("the --rm container was not removed after start -a".into());
            }
        }
        // wait on a running --rm container prints its code.
        let id = c.run_d(&["--rm", IMG, "sh", "-c", "sleep 0.3; exit 6"]);
        let o = c.b(&["wait", &id]);
        if (o.code, o.out.as_str()) != (0, "6\n") {
            bad.push(format!(
                "wait on a --rm container: want \"6\", got {}",
                o.text()
            ));
        }
        if !wait_for(5.0, || c.ids().is_empty()) {
            bad.push("the --rm -d container was not removed".into());
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    c.assert_empty();
}

// ---------------------------------------------------------------------------
// images in use stay

#[test]
fn images_used_by_containers_are_not_removed() {
    let c = Ctx::new();
    let mut bad: Vec<String> = Vec::new();
    c.ok(&["create", "--name", "user", IMG, "echo", "still-works"]);

    let o = c.b(&["rmi", IMG]);
    if o.code == 0 {
        bad.push(format!(
            "rmi of an image a container uses succeeded: {}",
            o.text()
        ));
    } else if !o.err.contains("container") {
        bad.push(format!(
            "rmi refused without naming the container: {}",
            o.text()
        ));
    }
    let o = c.b(&["start", "-a", "user"]);
    if (o.code, o.out.as_str()) != (0, "still-works\n") {
        bad.push(format!(
            "after rmi the container no longer starts: {}",
            o.text()
        ));
    }

    let o = c.b(&["image", "prune", "-a", "-f"]);
    if o.code != 0 {
        bad.push(format!("image prune -a -f failed: {}", o.text()));
    }
    let o = c.b(&["start", "-a", "user"]);
    if (o.code, o.out.as_str()) != (0, "still-works\n") {
        bad.push(format!(
            "after image prune -a the container no longer starts: {}",
            o.text()
        ));
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    // Once the container is gone the image can go.
    c.ok(&["rm", "user"]);
    c.ok(&["rmi", IMG]);
    c.assert_empty();
}

// ---------------------------------------------------------------------------
// many processes, one container

#[test]
fn concurrent_starts_of_one_container() {
    let c = Ctx::new();
    let mut bad: Vec<String> = Vec::new();
    for round in 0..3 {
        let name = format!("once{round}");
        c.ok(&["create", "--name", &name, IMG, "sh", "-c", TRAP_TERM]);
        let procs: Vec<Proc> = (0..3).map(|_| c.spawn(&["start", &name])).collect();
        let outs: Vec<Out> = procs.into_iter().map(|p| p.finish(30.0)).collect();
        // Docker: one start wins, the others find it running (exit 0).
        for o in outs.iter().filter(|o| o.code != 0) {
            bad.push(format!("{name}: a concurrent start failed: {}", o.text()));
        }
        std::thread::sleep(Duration::from_millis(300));
        let st = c.state(&name);
        if st["Status"] != "running" {
            bad.push(format!(
                "{name}: not running after 3 concurrent starts: {st}"
            ));
            continue;
        }
        let id = c.inspect(&name)["Id"].as_str().unwrap().to_string();
        let mons = c.monitors(Some(&id));
        if mons.len() != 1 {
            bad.push(format!("{name}: {} monitors: {mons:?}", mons.len()));
        }
        if c.b(&["exec", &name, "true"]).code != 0 {
            bad.push(format!(
                "{name}: running but exec fails (rootfs unmounted?)"
            ));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    c.ok(&["rm", "-f", "once0", "once1", "once2"]);
    c.assert_empty();
}

// ---------------------------------------------------------------------------
// kill -9 of the CLI, of commit; a reboot; system df/prune

fn sigkill(p: &mut Proc) {
    let _ = p.child.kill();
    let _ = p.child.wait();
}

#[test]
fn kill_9_of_run_d_leaves_a_truthful_state() {
    let c = Ctx::new();
    for delay in [0u64, 1, 2, 3, 5, 7, 10, 15, 20, 30, 40, 80] {
        let mut p = c.spawn(&["run", "-d", "-l", "k9=1", IMG, "sleep", "1000"]);
        std::thread::sleep(Duration::from_millis(delay));
        sigkill(&mut p);
    }
    // Whatever got created says what it is: running ones really run (their
    // monitor lives), nothing says "starting" for ever.
    assert!(
        wait_for(10.0, || c
            .ps(&["-a", "--filter", "label=k9=1"])
            .iter()
            .all(|r| r["State"] != "starting")),
        "a start stuck: {:?}",
        c.ps_all()
    );
    for r in c.ps(&["-a", "--filter", "label=k9=1"]) {
        let id = r["ID"].as_str().unwrap().to_string();
        c.track(&id);
        if r["State"] == "running" {
            assert_eq!(c.ok(&["exec", &id, "echo", "alive"]), "alive\n");
        } else {
            // A create or start cut short leaves a container that starts.
            c.ok(&["start", &id]);
            assert_eq!(c.ok(&["exec", &id, "echo", "alive"]), "alive\n");
        }
    }
    // All of them go; the same run works again.
    for r in c.ps(&["-a", "--filter", "label=k9=1"]) {
        c.ok(&["rm", "-f", r["ID"].as_str().unwrap()]);
    }
    let id = c.run_d(&["--name", "after-k9", IMG, "sleep", "1000"]);
    c.ok(&["rm", "-f", &id]);
    c.assert_empty();
}

#[test]
fn kill_9_during_commit_leaves_no_half_image() {
    let c = Ctx::new();
    c.run_d(&["--name", "big", IMG, "sleep", "1000"]);
    c.ok(&[
        "exec",
        "big",
        "sh",
        "-c",
        "for i in $(seq 40); do head -c 1048576 /dev/urandom > /root/f$i; done",
    ]);
    let before = c.ok(&["images", "-q", "-a"]);
    for delay in [10u64, 50, 150] {
        let mut p = c.spawn(&["commit", "big", "half:1"]);
        std::thread::sleep(Duration::from_millis(delay));
        sigkill(&mut p);
        let now = c.ok(&["images", "-a", "--format", "json"]);
        for l in now.lines() {
            let v: Value = serde_json::from_str(l).unwrap();
            // A commit that got as far as naming its image is complete:
            // it runs and has the files.
            if v["Repository"] == "half" {
                let o = c.b(&["run", "--rm", "half:1", "sh", "-c", "ls /root | wc -l"]);
                assert_eq!(o.out.trim(), "40", "{}", o.text());
            }
        }
        // The container was resumed even though its commit died paused? It
        // must at least be stoppable and usable.
        let _ = c.b(&["exec", "big", "true"]);
    }
    // The commit can be repeated and gives a working image.
    let id = c.ok(&["commit", "big", "whole:1"]);
    assert!(id.trim().starts_with("sha256:"), "{id}");
    let o = c.b(&["run", "--rm", "whole:1", "sh", "-c", "ls /root | wc -l"]);
    assert_eq!(o.out.trim(), "40", "{}", o.text());
    assert!(c.ok(&["images", "-q", "-a"]).lines().count() > before.lines().count());
    c.ok(&["rm", "-f", "big"]);
    c.assert_empty();
}

#[test]
fn after_a_reboot_containers_show_stopped_and_start_again() {
    let c = Ctx::new();
    let id = c.run_d(&["--name", "boot", IMG, "sh", "-c", "echo up; sleep 1000"]);
    c.logs_until("boot", "up");
    // A reboot, as far as berth can tell: every process gone, mounts gone,
    // and the recorded boot id is not this boot's.
    for p in c.monitors(Some(&id)) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(p),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let pid = c.state("boot")["Pid"].as_i64().unwrap() as i32;
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
    assert!(wait_for(5.0, || !berth_integration::pid_alive(pid)));
    let merged = c.root().join("containers").join(&id).join("merged");
    let _ = nix::mount::umount2(&merged, nix::mount::MntFlags::MNT_DETACH);
    let db = rusqlite::Connection::open(c.root().join("berth.db")).unwrap();
    db.execute(
        "UPDATE containers SET boot_id = 'an-earlier-boot' WHERE id = ?1",
        [&id],
    )
    .unwrap();
    drop(db);
    let st = c.state("boot");
    assert_eq!(st["Status"], "exited", "{st}");
    assert_eq!(st["Running"], false);
    c.ok(&["start", "boot"]);
    assert_eq!(c.state("boot")["Status"], "running");
    assert_eq!(c.ok(&["exec", "boot", "echo", "again"]), "again\n");
    c.ok(&["rm", "-f", "boot"]);
    c.assert_empty();
}

#[test]
fn system_df_and_prune() {
    let c = Ctx::new();
    c.ok(&["create", "--name", "idle", "-v", "keepvol:/k", IMG, "true"]);
    c.ok(&["volume", "create", "loose"]);
    let df = c.ok(&["system", "df"]);
    let line = |t: &str| {
        df.lines()
            .find(|l| l.starts_with(t))
            .unwrap_or_else(|| panic!("no {t} line: {df}"))
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(&line("Images")[1..3], ["1", "1"], "{df}");
    assert_eq!(&line("Containers")[1..3], ["1", "0"], "{df}");
    // "Local Volumes": two words of type.
    assert_eq!(&line("Local")[2..4], ["2", "1"], "{df}");
    let out = c.ok(&["system", "prune", "-f", "--volumes"]);
    assert!(out.contains("Deleted Containers:"), "{out}");
    assert!(out.contains("loose") && out.contains("keepvol"), "{out}");
    assert!(c.ids().is_empty());
    // The image was in use by the container, not by anything now: -a takes it.
    let out = c.ok(&["system", "prune", "-f", "-a"]);
    assert!(out.contains("Deleted Images:"), "{out}");
    assert!(c.ok(&["images", "-q"]).trim().is_empty());
    c.assert_empty();
}

#[test]
fn init_is_pid_1_forwards_signals_and_reaps() {
    let c = Ctx::new();
    // PID 1 is berth-init; the command is its child; the code passes through.
    let o = c.b(&[
        "run",
        "--rm",
        "--init",
        IMG,
        "sh",
        "-c",
        "cat /proc/1/cmdline | tr '\\0' ' '; exit 3",
    ]);
    assert_eq!(o.code, 3, "{}", o.text());
    assert!(o.out.starts_with("/dev/init -- sh"), "{}", o.text());
    // An orphan re-parented to PID 1 is reaped: no zombie stays.
    let o = c.b(&[
        "run",
        "--rm",
        "--init",
        IMG,
        "sh",
        "-c",
        "sh -c 'sleep 0.2 &' ; sleep 0.6; ps -o stat | grep -c '^Z' || true",
    ]);
    assert_eq!(o.out.trim(), "0", "{}", o.text());
    // sleep as the command ignores nothing: SIGTERM reaches it through init,
    // so stop is quick (no 10 s wait for SIGKILL) and records 143.
    c.run_d(&["--name", "ini", "--init", IMG, "sleep", "1000"]);
    let t0 = Instant::now();
    c.ok(&["stop", "ini"]);
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert_eq!(c.state("ini")["ExitCode"], 143);
    let o = c.b(&["run", "--rm", "--init", IMG, "no-such-cmd"]);
    assert_eq!(o.code, 127, "{}", o.text());
    c.ok(&["rm", "ini"]);
    c.assert_empty();
}

#[test]
fn kill_9_during_push_then_push_again() {
    use berth_integration::registry::Registry;
    let reg = Registry::start();
    let c = Ctx::new();
    let target = reg.image_ref("faults/app:1");
    commit_big(&c, &target, 33554432);
    for delay in [20u64, 100, 300] {
        let mut p = c.spawn(&["push", &target]);
        std::thread::sleep(Duration::from_millis(delay));
        sigkill(&mut p);
        // Nothing half-made is served: either no manifest under the tag, or
        // one whose every blob can be fetched.
        let dest = tempfile::tempdir().unwrap();
        let o = berth_integration::images::skopeo(&[
            "copy",
            "--src-tls-verify=false",
            &format!("docker://{target}"),
            &format!("dir:{}", dest.path().join("x").display()),
        ]);
        if !o.status.success() {
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(
                err.contains("manifest unknown") || err.contains("not found"),
                "a broken image is served: {err}"
            );
        }
    }
    // The push can simply be repeated, and the result pulls and runs.
    push_again_and_pull(&c, &target, 33554432);
}

#[test]
fn a_frozen_container_still_stops_and_goes() {
    let c = Ctx::new();
    let id = c.run_d(&["--name", "frozen", IMG, "sleep", "1000"]);
    // What a commit killed while it had the container paused leaves.
    let st = std::process::Command::new(berth_integration::runtime_bin())
        .arg("--root")
        .arg(c.root().join("runtime"))
        .args(["pause", &id])
        .status()
        .unwrap();
    assert!(st.success());
    let t0 = Instant::now();
    c.ok(&["stop", "-t", "1", "frozen"]);
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    assert_eq!(c.state("frozen")["Status"], "exited");
    c.ok(&["start", "frozen"]);
    let st = std::process::Command::new(berth_integration::runtime_bin())
        .arg("--root")
        .arg(c.root().join("runtime"))
        .args(["pause", &id])
        .status()
        .unwrap();
    assert!(st.success());
    c.ok(&["rm", "-f", "frozen"]);
    c.assert_empty();
}

/// A `create` killed after its row was written but before its dir was in
/// place (a half-made `<id>.tmp`, no `<id>`): `start` makes the dir again.
#[test]
fn a_create_cut_short_before_its_dir_still_starts() {
    let c = Ctx::new();
    let id = c.ok(&["create", "--name", "cut", IMG, "sleep", "1000"]);
    let id = id.trim();
    let dir = c.root().join("containers").join(id);
    let tmp = c.root().join("containers").join(format!("{id}.tmp"));
    std::fs::rename(&dir, &tmp).unwrap();
    std::fs::remove_dir_all(tmp.join("upper")).unwrap();
    c.ok(&["start", "cut"]);
    assert_eq!(c.ok(&["exec", "cut", "echo", "alive"]), "alive\n");
    assert!(!tmp.exists(), "the half-made dir stayed");
    c.ok(&["rm", "-f", "cut"]);
    assert!(!dir.exists());
    // Killed before the rename, then removed: nothing stays either.
    let id = c.ok(&["create", IMG, "true"]);
    let id = id.trim();
    let dir = c.root().join("containers").join(id);
    let tmp = c.root().join("containers").join(format!("{id}.tmp"));
    std::fs::rename(&dir, &tmp).unwrap();
    c.ok(&["rm", id]);
    assert!(!tmp.exists() && !dir.exists());
    c.assert_empty();
}
