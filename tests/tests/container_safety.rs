//! What a hostile container cannot do to the host through berth: reach its
//! files as a local user, plant setuid files or devices through `cp`, write
//! through read-only mounts, hang berth with a FIFO for /etc/passwd; and
//! that `export` keeps device nodes and `--init` leaves signals alone.

use berth_integration::containers::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::{Duration, Instant};

#[test]
fn container_dirs_are_root_only() {
    let c = Ctx::new();
    let id = c.run_d(&["--name", "pp", "-v", "pv:/data", IMG, "sleep", "1000"]);
    for d in [
        c.root().join("containers"),
        c.root().join("containers").join(&id),
        c.root().join("volumes"),
    ] {
        let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{} is {mode:o}", d.display());
    }
    c.ok(&["rm", "-f", "-v", "pp"]);
    c.ok(&["volume", "rm", "pv"]);
    c.assert_empty();
}

#[test]
fn cp_to_the_host_strips_setuid_and_skips_devices() {
    let c = Ctx::new();
    c.run_d(&[
        "--name", "evil", IMG, "sh", "-c",
        "mkdir /out; cp /bin/busybox /out/suid; chmod 6755 /out/suid; mknod /out/disk b 8 0; sleep 1000",
    ]);
    assert!(wait_for(5.0, || c
        .b(&["exec", "evil", "test", "-b", "/out/disk"])
        .code
        == 0));
    let h = tempfile::tempdir().unwrap();
    c.ok(&["cp", "evil:/out", h.path().to_str().unwrap()]);
    let suid = h.path().join("out/suid");
    let mode = std::fs::metadata(&suid).unwrap().mode();
    assert_eq!(mode & 0o6000, 0, "setuid/setgid kept: {mode:o}");
    assert!(
        !h.path().join("out/disk").exists(),
        "a device node reached the host"
    );
    // export keeps them (it is an archive, not files on the host).
    let tar = c.s.cmd(&["export", "evil"]).output().unwrap();
    assert!(tar.status.success());
    let list = std::process::Command::new("tar")
        .args(["-tv"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut t| {
            use std::io::Write;
            t.stdin.take().unwrap().write_all(&tar.stdout)?;
            t.wait_with_output()
        })
        .unwrap();
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with('b') && l.ends_with("out/disk")),
        "{text}"
    );
    c.ok(&["rm", "-f", "evil"]);
    c.assert_empty();
}

#[test]
fn cp_respects_read_only_mounts_and_roots() {
    let c = Ctx::new();
    let h = tempfile::tempdir().unwrap();
    let src = h.path().join("f.txt");
    std::fs::write(&src, "x\n").unwrap();
    let ro = tempfile::tempdir().unwrap();
    let bind = format!("{}:/ro:ro", ro.path().display());
    c.ok(&["create", "--name", "stopped", "-v", &bind, IMG, "true"]);
    let o = c.b(&["cp", src.to_str().unwrap(), "stopped:/ro/"]);
    assert_ne!(o.code, 0, "{}", o.text());
    assert!(
        !ro.path().join("f.txt").exists(),
        "wrote through a :ro bind"
    );
    c.ok(&["create", "--name", "rofs", "--read-only", IMG, "true"]);
    let o = c.b(&["cp", src.to_str().unwrap(), "rofs:/"]);
    assert_ne!(o.code, 0, "{}", o.text());
    assert!(o.err.contains("read-only"), "{}", o.text());
    c.ok(&["rm", "stopped", "rofs"]);
    c.assert_empty();
}

#[test]
fn a_fifo_for_etc_passwd_does_not_hang_berth() {
    let c = Ctx::new();
    c.run_d(&["--name", "fifo", IMG, "sleep", "1000"]);
    c.ok(&[
        "exec",
        "fifo",
        "sh",
        "-c",
        "rm /etc/passwd; mkfifo /etc/passwd",
    ]);
    let t0 = Instant::now();
    let p = c.spawn(&["exec", "-u", "daemon", "fifo", "true"]);
    let o = p.finish(10.0);
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert_eq!(o.code, 126, "{}", o.text());
    c.ok(&["rm", "-f", "fifo"]);
    c.assert_empty();
}

#[test]
fn init_leaves_signal_dispositions_alone() {
    let c = Ctx::new();
    let ign = |flags: &[&str]| {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&[IMG, "grep", "SigIgn", "/proc/self/status"]);
        c.ok(&args)
    };
    assert_eq!(ign(&["--init"]), ign(&[]));
    c.assert_empty();
}

#[test]
fn an_attached_cli_passes_signals_on() {
    let c = Ctx::new();
    let mut p = c.spawn(&[
        "run",
        "-t",
        "--name",
        "sig",
        IMG,
        "sh",
        "-c",
        "trap 'exit 7' TERM; echo ready; while true; do sleep 0.1; done",
    ]);
    assert!(wait_for(10.0, || c
        .b(&["logs", "sig"])
        .out
        .contains("ready")));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(p.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let o = std::mem::replace(&mut p, c.spawn(&["wait", "sig"])).finish(10.0);
    assert_eq!(o.code, 7, "{}", o.text());
    let _ = p.finish(10.0);
    c.ok(&["rm", "-f", "sig"]);
    c.assert_empty();
}
