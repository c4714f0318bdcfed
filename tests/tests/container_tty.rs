//! Terminals: `run -it` through the monitor's pty (raw mode, the outer
//! terminal's size, input forwarded, exit code), the detach keys, and
//! `attach` to a running container (with a tty, and stdin over a pipe).

use berth_integration::containers::*;
use berth_integration::engine::berth_bin;
use berth_integration::under_script;
use std::io::Write;
use std::process::Stdio;

fn cmdline(c: &Ctx, args: &str) -> String {
    format!(
        "stty rows 40 cols 120; BERTH_DEFAULT_NETWORK=none exec {} --root {} {args}",
        berth_bin().display(),
        c.root().display()
    )
}

#[test]
fn run_it_forwards_size_input_and_exit_code() {
    let c = Ctx::new();
    let (code, out) = under_script(
        &cmdline(
            &c,
            &format!("run -it --rm {IMG} sh -c 'tty; stty size; read l; echo got:$l; exit 3'"),
        ),
        "40 120",
        b"typed\n",
    );
    assert_eq!(code, 3, "{out:?}");
    assert!(out.contains("/dev/pts/0"), "{out:?}");
    assert!(out.contains("got:typed"), "{out:?}");
    c.assert_empty();
}

#[test]
fn detach_keys_leave_it_running_and_attach_comes_back() {
    let c = Ctx::new();
    let (code, out) = under_script(
        &cmdline(
            &c,
            &format!("run -it --name dt {IMG} sh -c 'echo ready; while read l; do echo \"re:$l\"; [ \"$l\" = bye ] && exit 5; done'"),
        ),
        "ready",
        b"\x10\x11",
    );
    assert_eq!(code, 0, "detach should exit 0: {out:?}");
    assert_eq!(c.state("dt")["Status"], "running", "{out:?}");
    // Attach again and finish it.
    let (code, out) = under_script(&cmdline(&c, "attach dt"), "", b"hello\nbye\n");
    assert_eq!(code, 5, "{out:?}");
    assert!(out.contains("re:hello"), "{out:?}");
    let st = c.state("dt");
    assert_eq!(
        (st["Status"].as_str(), st["ExitCode"].as_i64()),
        (Some("exited"), Some(5))
    );
    c.ok(&["rm", "dt"]);
    c.assert_empty();
}

#[test]
fn attach_with_stdin_over_a_pipe() {
    let c = Ctx::new();
    c.run_d(&[
        "-i",
        "--name",
        "pipe",
        IMG,
        "sh",
        "-c",
        "while read l; do echo \"got $l\"; echo \"err $l\" >&2; done; echo closed; exit 7",
    ]);
    let mut kid =
        c.s.cmd(&["attach", "pipe"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
    // Lines and the EOF in separate writes (and so separate frames): the
    // monitor must close the container's stdin after the last one.
    let mut input = kid.stdin.take().unwrap();
    input.write_all(b"one\n").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    input.write_all(b"two\n").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    drop(input);
    let pid = kid.id() as i32;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while kid.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            panic!("attach did not end after stdin EOF");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let o = kid.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(7), "{out}{err}");
    assert_eq!(out, "got one\ngot two\nclosed\n");
    assert_eq!(err, "err one\nerr two\n");
    // Attaching to a stopped container is refused.
    let o = c.b(&["attach", "pipe"]);
    assert_eq!(o.code, 1, "{}", o.text());
    c.ok(&["rm", "pipe"]);
    c.assert_empty();
}

#[test]
fn a_stalled_client_does_not_stop_the_log_or_other_clients() {
    let c = Ctx::new();
    // The container never reads its stdin; a client floods it anyway.
    c.run_d(&[
        "-i",
        "--name",
        "stall",
        IMG,
        "sh",
        "-c",
        "while true; do echo tick; sleep 0.1; done",
    ]);
    let mut flood =
        c.s.cmd(&["attach", "stall"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
    let mut input = flood.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let chunk = vec![b'a'; 64 * 1024];
        for _ in 0..8 {
            if input.write_all(&chunk).is_err() {
                break;
            }
        }
    });
    std::thread::sleep(std::time::Duration::from_millis(500));
    let n1 = c.ok(&["logs", "stall"]).lines().count();
    std::thread::sleep(std::time::Duration::from_millis(800));
    let n2 = c.ok(&["logs", "stall"]).lines().count();
    assert!(n2 > n1 + 3, "the log stalled: {n1} -> {n2} lines");
    // A second client still gets output.
    let mut watch =
        c.s.cmd(&["attach", "--no-stdin", "stall"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
    let mut first = [0u8; 5];
    use std::io::Read;
    watch
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    assert_eq!(&first, b"tick\n");
    let _ = watch.kill();
    let _ = watch.wait();
    let _ = flood.kill();
    let _ = flood.wait();
    let _ = writer.join();
    c.ok(&["rm", "-f", "stall"]);
    c.assert_empty();
}

#[test]
fn attached_run_without_t_is_logged_and_sees_no_terminal() {
    let c = Ctx::new();
    // Our stdout is a terminal (script); the container's is a pipe.
    let (code, out) = under_script(
        &cmdline(
            &c,
            &format!("run --name lg {IMG} sh -c '[ -t 1 ] && echo tty || echo notty; echo err >&2; exit 4'"),
        ),
        "",
        b"",
    );
    assert_eq!(code, 4, "{out:?}");
    assert!(out.contains("notty"), "{out:?}");
    let o = c.b(&["logs", "lg"]);
    assert_eq!(
        (o.out.as_str(), o.err.as_str()),
        ("notty\n", "err\n"),
        "{}",
        o.text()
    );
    c.ok(&["rm", "lg"]);
    c.assert_empty();
}
