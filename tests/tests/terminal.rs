//! Terminals: `process.terminal` with `--console-socket` (the engine gets the
//! pty master over SCM_RIGHTS, as from runc), and `run`/`exec` holding the
//! pty in the foreground under a real terminal (`script`).

use berth_integration::{
    call, path_str as p, pid_alive, under_script, unique_id, wait_until, Bundle, Kid, Runtime,
};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use serde_json::json;
use std::io::{IoSliceMut, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

// ---- helpers (each test file is its own crate; shared ones are in berth_integration) ----

/// The engine's end of `--console-socket`: a listening unix socket in a
/// temp dir (both removed on drop).
struct ConsoleSocket {
    _dir: tempfile::TempDir,
    path: PathBuf,
    listener: UnixListener,
}

impl ConsoleSocket {
    fn new() -> ConsoleSocket {
        let dir = tempfile::Builder::new()
            .prefix("berth-console-")
            .tempdir()
            .unwrap();
        let path = dir.path().join("console.sock");
        let listener = UnixListener::bind(&path).unwrap();
        listener.set_nonblocking(true).unwrap();
        ConsoleSocket {
            _dir: dir,
            path,
            listener,
        }
    }

    /// Accept one connection and receive the pty master it sends.
    fn recv_master(&self, secs: u64) -> OwnedFd {
        let t0 = Instant::now();
        let stream = loop {
            match self.listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(
                        t0.elapsed() < Duration::from_secs(secs),
                        "nobody connected to the console socket"
                    );
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("accept: {e}"),
            }
        };
        stream.set_nonblocking(false).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(secs)))
            .unwrap();
        let mut buf = [0u8; 256];
        let mut iov = [IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!([RawFd; 1]);
        let msg = recvmsg::<()>(
            stream.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .expect("recvmsg on the console socket");
        let mut got = None;
        for c in msg.cmsgs().unwrap() {
            if let ControlMessageOwned::ScmRights(fds) = c {
                for fd in fds {
                    // SAFETY: the kernel just installed this fd in our table.
                    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
                    if got.is_none() {
                        got = Some(owned);
                    }
                }
            }
        }
        got.expect("no fd received over the console socket")
    }
}

/// Reads a pty master (non-blocking) into a buffer.
struct Pty {
    fd: OwnedFd,
    seen: String,
}

impl Pty {
    fn new(fd: OwnedFd) -> Pty {
        // SAFETY: fcntl on an fd we own.
        unsafe {
            let fl = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
        }
        Pty {
            fd,
            seen: String::new(),
        }
    }

    /// Read until `needle` has been seen (true) or EOF/timeout (false).
    fn expect(&mut self, needle: &str, secs: u64) -> bool {
        let t0 = Instant::now();
        let mut buf = [0u8; 4096];
        while !self.seen.contains(needle) {
            if t0.elapsed() > Duration::from_secs(secs) {
                return false;
            }
            match nix::unistd::read(&self.fd, &mut buf) {
                Ok(0) | Err(nix::Error::EIO) => return self.seen.contains(needle),
                Ok(n) => self.seen.push_str(&String::from_utf8_lossy(&buf[..n])),
                Err(nix::Error::EAGAIN) | Err(nix::Error::EINTR) => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Err(e) => panic!("read pty master: {e}"),
            }
        }
        true
    }

    fn write(&self, data: &[u8]) {
        let mut f = std::fs::File::from(self.fd.try_clone().unwrap());
        f.write_all(data).unwrap();
    }
}

fn terminal_bundle(script: &str) -> Bundle {
    let mut b = Bundle::new(&["sh", "-c", script]);
    b.edit(|c| {
        c["process"]["terminal"] = json!(true);
        c["process"]["consoleSize"] = json!({"height": 33, "width": 101});
    });
    b
}

/// `create --console-socket` in the background; returns the pty master.
fn create_with_console(rt: &Runtime, b: &Bundle, id: &str, sock: &ConsoleSocket) -> Pty {
    let mut c = rt.cmd();
    c.args([
        "create",
        "--console-socket",
        p(&sock.path),
        "--bundle",
        p(b.dir()),
        id,
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    let mut kid = Kid(c.spawn().unwrap());
    let master = sock.recv_master(5);
    let st = kid.wait_timeout(10).expect("create did not finish");
    let mut err = String::new();
    kid.0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(st.success(), "create failed: {err}");
    Pty::new(master)
}

// ---- console socket ----

#[test]
fn console_socket_gets_the_pty_master() {
    let b = terminal_bundle(
        "tty; stty size; [ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo all-ttys; \
         read line; echo \"got:$line\"; exit 0",
    );
    let rt = Runtime::new();
    let id = unique_id("console");
    let sock = ConsoleSocket::new();
    let mut pty = create_with_console(&rt, &b, &id, &sock);
    assert_eq!(rt.status(&id), "created");
    call(&rt, &["start", &id]).ok("start");
    assert!(pty.expect("all-ttys", 5), "output so far: {:?}", pty.seen);
    assert!(pty.seen.contains("/dev/pts/0\r\n"), "tty: {:?}", pty.seen);
    assert!(
        pty.seen.contains("33 101\r\n"),
        "consoleSize not applied: {:?}",
        pty.seen
    );
    pty.write(b"hello over the pty\n");
    assert!(
        pty.expect("got:hello over the pty", 5),
        "input not delivered: {:?}",
        pty.seen
    );
    let pid = rt.state(&id)["pid"].as_i64().unwrap() as i32;
    assert!(wait_until(5, || !pid_alive(pid)));
    call(&rt, &["delete", &id]).ok("delete");
}

#[test]
fn console_is_the_controlling_terminal() {
    // ^C on the pty reaches the container's foreground process group as SIGINT.
    let b = terminal_bundle(
        "trap 'echo got-sigint; exit 5' INT; echo ready; while :; do sleep 1 & wait $!; done",
    );
    let rt = Runtime::new();
    let id = unique_id("ctty");
    let sock = ConsoleSocket::new();
    let mut pty = create_with_console(&rt, &b, &id, &sock);
    call(&rt, &["start", &id]).ok("start");
    assert!(pty.expect("ready", 5), "{:?}", pty.seen);
    pty.write(b"\x03");
    assert!(
        pty.expect("got-sigint", 5),
        "^C did not signal the container: {:?}",
        pty.seen
    );
    assert!(wait_until(5, || rt.status(&id) == "stopped"));
}

#[test]
fn exec_tty_with_console_socket() {
    let b = Bundle::new(&["sleep", "1000"]);
    let rt = Runtime::new();
    let id = unique_id("exectty");
    call(&rt, &["create", "--bundle", p(b.dir()), &id]).ok("create");
    call(&rt, &["start", &id]).ok("start");
    let sock = ConsoleSocket::new();
    let mut c = rt.cmd();
    c.args([
        "exec",
        "--tty",
        "--detach",
        "--console-socket",
        p(&sock.path),
        &id,
        "sh",
        "-c",
        "tty; read x; echo \"exec-got:$x\"",
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    let mut kid = Kid(c.spawn().unwrap());
    let mut pty = Pty::new(sock.recv_master(5));
    let st = kid.wait_timeout(10).expect("exec -d did not return");
    assert!(st.success());
    assert!(pty.expect("/dev/pts/", 5), "{:?}", pty.seen);
    pty.write(b"ping\n");
    assert!(pty.expect("exec-got:ping", 5), "{:?}", pty.seen);
}

#[test]
fn terminal_without_console_socket_is_refused() {
    let b = terminal_bundle("true");
    let rt = Runtime::new();
    let id = unique_id("nosock");
    let r = call(&rt, &["create", "--bundle", p(b.dir()), &id]);
    assert_ne!(r.code, 0);
    assert!(r.err.contains("console-socket"), "{}", r.err);
    assert!(!rt.root.path().join(&id).exists());
    let r = call(&rt, &["run", "--detach", "--bundle", p(b.dir()), &id]);
    assert_ne!(r.code, 0);
    assert!(r.err.contains("console-socket"), "{}", r.err);
    assert!(!rt.root.path().join(&id).exists());
    // A console socket nobody listens on.
    let r = call(
        &rt,
        &[
            "create",
            "--console-socket",
            "/no/such/console.sock",
            "--bundle",
            p(b.dir()),
            &id,
        ],
    );
    assert_ne!(r.code, 0);
    assert!(r.err.contains("/no/such/console.sock"), "{}", r.err);
    assert!(!rt.root.path().join(&id).exists());
}

// ---- foreground under a real pty ----

#[test]
fn run_with_terminal_in_the_foreground() {
    let b = terminal_bundle("tty; stty size; read line; echo \"got:$line\"; exit 3");
    let rt = Runtime::new();
    let id = unique_id("fgtty");
    let cmdline = format!(
        "stty rows 40 cols 120; exec {} --root {} run --bundle {} {}",
        p(&rt.bin),
        p(rt.root.path()),
        p(b.dir()),
        id
    );
    let (code, out) = under_script(&cmdline, "40 120", b"typed-line\n");
    assert_eq!(code, 3, "exit code not passed through: {out:?}");
    assert!(out.contains("/dev/pts/0"), "{out:?}");
    assert!(
        out.contains("40 120"),
        "outer terminal size not applied: {out:?}"
    );
    assert!(
        out.contains("got:typed-line"),
        "input not forwarded: {out:?}"
    );
    assert!(!rt.root.path().join(&id).exists(), "run left its state");
}

#[test]
fn exec_tty_in_the_foreground() {
    let b = Bundle::new(&["sleep", "1000"]);
    let rt = Runtime::new();
    let id = unique_id("fgexec");
    call(&rt, &["create", "--bundle", p(b.dir()), &id]).ok("create");
    call(&rt, &["start", &id]).ok("start");
    let cmdline = format!(
        "exec {} --root {} exec -t {} sh -c 'tty; read l; echo \"exec:$l\"; exit 4'",
        p(&rt.bin),
        p(rt.root.path()),
        id
    );
    let (code, out) = under_script(&cmdline, "/dev/pts/", b"abc\n");
    assert_eq!(code, 4, "{out:?}");
    assert!(out.contains("/dev/pts/"), "{out:?}");
    assert!(out.contains("exec:abc"), "{out:?}");
    assert_eq!(rt.status(&id), "running");
}
