//! `berth-monitor`: what a detached container's monitor becomes once the
//! container runs. berth's monitor creates and starts the container (its
//! init is that process's child), then execs this small binary in the same
//! process, so the container stays our child while the big `berth` image
//! leaves memory. We copy the container's output into the json-file log
//! (Docker's format, size rotation), wait for the init, then exec
//! `berth __finish` with its exit code for the bookkeeping.
//!
//! It also serves `berth attach` on a unix socket: output goes to every
//! attached client as frames (`[stream u8][len u32 BE][bytes]`, stream 1
//! stdout, 2 stderr); clients send frames back (`0` stdin bytes, `1` a
//! window size `rows u16, cols u16`, `2` close stdin).
//!
//! Usage (not for people): `berth-monitor LOG MAX_SIZE MAX_FILE PID OUT_FD
//! ERR_FD MASTER_FD LISTEN_FD STDIN_FD CLIENT_FD -- FINISH_CMD...` (`-1` for
//! an absent fd; the exit code is appended to FINISH_CMD).

use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStrExt;

// The static build (crates/engine/build.rs: plain rustc, no crates) takes
// the log writer and its libc items as modules.
#[cfg(berth_static)]
#[path = "lib.rs"]
mod berth_monitor;
#[cfg(berth_static)]
#[path = "sys.rs"]
mod libc;

use berth_monitor::Log;

/// Pending bytes a peer may hold before it is dropped (a stalled attach
/// client must not stop the container or the log).
const QUEUE_CAP: usize = 1 << 20;

/// An attached client: frames in (parsed from `inbuf`), output out
/// (queued in `outbuf`, written as the socket takes it).
struct Client {
    fd: i32,
    inbuf: Vec<u8>,
    outbuf: Vec<u8>,
}

/// The attach side: listening socket, clients, and the container's stdin.
struct Attach {
    listen: i32,
    clients: Vec<Client>,
    /// The container's stdin: a pipe's write end, or the pty master.
    stdin: i32,
    master: i32,
    /// Input waiting for the container to read it.
    stdin_q: Vec<u8>,
    /// Close the stdin pipe once `stdin_q` is written (a client's EOF).
    close_stdin: bool,
}

fn nonblock(fd: i32) {
    if fd >= 0 {
        // SAFETY: fcntl flag changes on an fd we own.
        unsafe {
            let fl = libc::fcntl(fd, libc::F_GETFL);
            libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
        }
    }
}

/// Writes what `fd` takes now; false on a real error.
fn write_some(fd: i32, buf: &mut Vec<u8>) -> bool {
    while !buf.is_empty() {
        // SAFETY: write from our buffer to an fd we own.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            match std::io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) => return true,
                _ => return false,
            }
        }
        buf.drain(..n as usize);
    }
    true
}

fn close(fd: i32) {
    if fd >= 0 {
        // SAFETY: closing an fd we own, once.
        unsafe { libc::close(fd) };
    }
}

impl Attach {
    fn add_client(&mut self, fd: i32) {
        nonblock(fd);
        self.clients.push(Client {
            fd,
            inbuf: Vec::new(),
            outbuf: Vec::new(),
        });
    }

    fn drop_client(&mut self, fd: i32) {
        close(fd);
        self.clients.retain(|c| c.fd != fd);
    }

    fn broadcast(&mut self, stream: u8, data: &[u8]) {
        let mut gone = Vec::new();
        for c in &mut self.clients {
            c.outbuf.push(stream);
            c.outbuf
                .extend_from_slice(&(data.len() as u32).to_be_bytes());
            c.outbuf.extend_from_slice(data);
            if !write_some(c.fd, &mut c.outbuf) || c.outbuf.len() > QUEUE_CAP {
                gone.push(c.fd);
            }
        }
        for fd in gone {
            self.drop_client(fd);
        }
    }

    /// Reads what client `fd` sent and acts on its complete frames; false
    /// when the client is gone or broke the protocol.
    fn client_input(&mut self, fd: i32) -> bool {
        let Some(i) = self.clients.iter().position(|c| c.fd == fd) else {
            return false;
        };
        // Read straight onto the end of the client's input (no buffer on
        // the stack: its pages would stay with the monitor).
        let inbuf = &mut self.clients[i].inbuf;
        inbuf.reserve(16 * 1024);
        let have = inbuf.len();
        let room = inbuf.capacity() - have;
        // SAFETY: read into the vector's spare capacity from an fd we own.
        let n = unsafe { libc::read(fd, inbuf.as_mut_ptr().add(have).cast(), room) };
        if n == 0 {
            return false;
        }
        if n < 0 {
            return matches!(
                std::io::Error::last_os_error().raw_os_error(),
                Some(libc::EINTR) | Some(libc::EAGAIN)
            );
        }
        // SAFETY: read initialised the n bytes after the old length.
        unsafe { inbuf.set_len(have + n as usize) };
        loop {
            let inbuf = &self.clients[i].inbuf;
            if inbuf.len() < 5 {
                return true;
            }
            let len = u32::from_be_bytes([inbuf[1], inbuf[2], inbuf[3], inbuf[4]]) as usize;
            if len > QUEUE_CAP {
                return false;
            }
            if inbuf.len() < 5 + len {
                return true;
            }
            let kind = inbuf[0];
            let body: Vec<u8> = inbuf[5..5 + len].to_vec();
            self.clients[i].inbuf.drain(..5 + len);
            self.frame(kind, &body);
        }
    }

    fn frame(&mut self, kind: u8, body: &[u8]) {
        match kind {
            0 if self.stdin >= 0 && !self.close_stdin => self.stdin_q.extend_from_slice(body),
            1 if self.master >= 0 && body.len() == 4 => {
                let ws = libc::winsize {
                    ws_row: u16::from_be_bytes([body[0], body[1]]),
                    ws_col: u16::from_be_bytes([body[2], body[3]]),
                    ws_xpixel: 0,
                    ws_ypixel: 0,
                };
                // SAFETY: TIOCSWINSZ on the pty master with a winsize.
                unsafe { libc::ioctl(self.master, libc::TIOCSWINSZ, &ws) };
            }
            // EOF on a terminal is ^D; on a pipe, closing it.
            2 if self.stdin >= 0 && self.stdin == self.master => self.stdin_q.push(4),
            2 if self.stdin >= 0 => self.close_stdin = true,
            _ => {}
        }
    }

    /// Feeds queued input to the container; closes a finished stdin pipe.
    fn flush_stdin(&mut self) {
        if self.stdin < 0 {
            self.stdin_q.clear();
            return;
        }
        if !write_some(self.stdin, &mut self.stdin_q) {
            // The container closed its stdin: input has nowhere to go.
            self.stdin_q.clear();
            if self.stdin != self.master {
                close(self.stdin);
                self.stdin = -1;
            }
            return;
        }
        if self.stdin_q.is_empty() && self.close_stdin && self.stdin != self.master {
            close(self.stdin);
            self.stdin = -1;
        }
    }
}

fn pump(log: &mut Log, fds: &[(i32, usize)], at: &mut Attach) {
    let mut open: Vec<(i32, usize)> = fds.iter().copied().filter(|(fd, _)| *fd >= 0).collect();
    for (fd, _) in &open {
        nonblock(*fd);
    }
    nonblock(at.stdin);
    // Not zeroed: a page of it is touched (and kept) only once output is
    // that long, so an idle container's monitor holds none of it.
    let mut buf: Vec<u8> = Vec::with_capacity(32 * 1024);
    while !open.is_empty() {
        // Sources, listener, clients (input only while stdin keeps up;
        // output when queued), the container's stdin pipe (when input waits).
        let pfd = |fd, events| libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        let mut pfds: Vec<libc::pollfd> =
            open.iter().map(|(fd, _)| pfd(*fd, libc::POLLIN)).collect();
        if at.listen >= 0 {
            pfds.push(pfd(at.listen, libc::POLLIN));
        }
        let take_input = at.stdin_q.len() < QUEUE_CAP;
        for c in &at.clients {
            let mut ev = 0;
            if take_input {
                ev |= libc::POLLIN;
            }
            if !c.outbuf.is_empty() {
                ev |= libc::POLLOUT;
            }
            pfds.push(pfd(c.fd, ev));
        }
        // A client's EOF with nothing left to write: close the pipe now.
        if at.close_stdin && at.stdin_q.is_empty() && at.stdin >= 0 {
            at.flush_stdin();
        }
        let mut stdin_slot = None;
        if at.stdin >= 0 && !at.stdin_q.is_empty() {
            if at.stdin == at.master {
                // The master is polled for input already; just write.
                at.flush_stdin();
            } else {
                pfds.push(pfd(at.stdin, libc::POLLOUT));
                stdin_slot = Some(pfds.len() - 1);
            }
        }
        // Every change wakes poll, so an idle container's monitor sleeps;
        // only input for a full pty (polled for reading, not writing) is
        // retried on a timer.
        let timeout = if at.stdin_q.is_empty() { -1 } else { 100 };
        // SAFETY: poll on our own array of pollfds.
        let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, timeout) };
        if n < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return;
        }
        let mut closed = Vec::new();
        for (i, p) in pfds.iter().enumerate() {
            if p.revents == 0 {
                continue;
            }
            if i < open.len() {
                let (fd, stream) = open[i];
                buf.clear();
                // SAFETY: read into our buffer's capacity from an fd we own.
                let r = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.capacity()) };
                if r > 0 {
                    // SAFETY: read initialised the first r bytes.
                    unsafe { buf.set_len(r as usize) };
                    log.write(stream, &buf);
                    at.broadcast(stream as u8 + 1, &buf);
                } else if r == 0
                    || !matches!(
                        std::io::Error::last_os_error().raw_os_error(),
                        Some(libc::EINTR) | Some(libc::EAGAIN)
                    )
                {
                    // EOF, or EIO from a pty whose last slave closed.
                    closed.push(i);
                }
            } else if Some(i) == stdin_slot {
                at.flush_stdin();
            } else if p.fd == at.listen {
                // SAFETY: accept on our listening socket.
                let c = unsafe {
                    libc::accept4(
                        at.listen,
                        std::ptr::null_mut(),
                        std::ptr::null_mut(),
                        libc::SOCK_CLOEXEC,
                    )
                };
                if c >= 0 {
                    at.add_client(c);
                }
            } else if at.clients.iter().any(|c| c.fd == p.fd) {
                let mut ok = true;
                if p.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
                    ok = at.client_input(p.fd);
                }
                if ok && p.revents & libc::POLLOUT != 0 {
                    if let Some(c) = at.clients.iter_mut().find(|c| c.fd == p.fd) {
                        ok = write_some(c.fd, &mut c.outbuf);
                    }
                }
                if !ok {
                    at.drop_client(p.fd);
                }
            }
        }
        for i in closed.into_iter().rev() {
            let fd = open[i].0;
            open.remove(i);
            if fd != at.master {
                close(fd);
            }
        }
    }
    // The output is over: give clients what is queued (briefly), then EOF.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while at.clients.iter().any(|c| !c.outbuf.is_empty()) && std::time::Instant::now() < deadline {
        let mut gone = Vec::new();
        for c in &mut at.clients {
            if !write_some(c.fd, &mut c.outbuf) {
                gone.push(c.fd);
            }
        }
        for fd in gone {
            at.drop_client(fd);
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    for c in std::mem::take(&mut at.clients) {
        close(c.fd);
    }
    close(at.listen);
}

/// Waits for `pid`; other children (orphans re-parented to us as a child
/// subreaper, with an external runtime) are reaped on the way.
fn wait(pid: i32) -> i32 {
    loop {
        let mut st = 0;
        // SAFETY: waitpid for any child, status into a local.
        let r = unsafe { libc::waitpid(-1, &mut st, 0) };
        if r > 0 && r != pid {
            continue;
        }
        if r == pid {
            if libc::WIFEXITED(st) {
                return libc::WEXITSTATUS(st);
            }
            if libc::WIFSIGNALED(st) {
                return 128 + libc::WTERMSIG(st);
            }
            continue;
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return 255;
        }
    }
}

fn main() {
    let args: Vec<OsString> = std::env::args_os().collect();
    let usage = || -> ! {
        eprintln!("berth-monitor: started by berth, not by hand");
        std::process::exit(2)
    };
    let sep = args
        .iter()
        .position(|a| a == "--")
        .unwrap_or_else(|| usage());
    if sep != 11 || args.len() <= sep + 1 {
        usage();
    }
    let num = |i: usize| -> i64 {
        args[i]
            .to_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| usage())
    };
    let mut log = Log::open(args[1].clone(), num(2).max(0) as u64, num(3).max(1) as u32);
    let pid = num(4) as i32;
    let master = num(7) as i32;
    let fds = [(num(5) as i32, 0), (num(6) as i32, 1), (master, 0)];
    let stdin = num(9) as i32;
    let mut at = Attach {
        listen: num(8) as i32,
        clients: Vec::new(),
        stdin: if stdin >= 0 { stdin } else { master },
        master,
        stdin_q: Vec::new(),
        close_stdin: false,
    };
    let first = num(10) as i32;
    if first >= 0 {
        at.add_client(first);
    }
    pump(&mut log, &fds, &mut at);
    if at.stdin >= 0 && at.stdin != master {
        close(at.stdin);
    }
    close(master);
    log.close();
    drop(log);
    let code = wait(pid);
    let finish: Vec<CString> = args[sep + 1..]
        .iter()
        .map(|a| CString::new(a.as_bytes()).unwrap_or_else(|_| usage()))
        .chain(std::iter::once(
            CString::new(code.to_string()).expect("digits"),
        ))
        .collect();
    let mut argv: Vec<*const libc::c_char> = finish.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    // SAFETY: a NULL-terminated argv of valid C strings that outlive the call.
    unsafe { libc::execv(argv[0], argv.as_ptr()) };
    eprintln!(
        "berth-monitor: exec {:?}: {}",
        finish[0],
        std::io::Error::last_os_error()
    );
    std::process::exit(code);
}
