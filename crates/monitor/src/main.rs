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
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;

/// A line longer than this is written in pieces, as Docker does.
const MAX_LINE: usize = 16 * 1024;

struct Log {
    path: OsString,
    file: Option<File>,
    size: u64,
    max_size: u64,
    max_file: u32,
    partial: [Vec<u8>; 2],
}

fn now_rfc3339() -> String {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    let secs = ts.tv_sec;
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60,
        ts.tv_nsec
    )
}

/// A JSON string literal of `bytes` (invalid UTF-8 becomes U+FFFD).
fn json_string(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl Log {
    fn open(path: OsString, max_size: u64, max_file: u32) -> Log {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .ok();
        let size = file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map(|m| m.len())
            .unwrap_or(0);
        Log {
            path,
            file,
            size,
            max_size,
            max_file: max_file.max(1),
            partial: [Vec::new(), Vec::new()],
        }
    }

    fn write(&mut self, stream: usize, data: &[u8]) {
        let mut buf = std::mem::take(&mut self.partial[stream]);
        buf.extend_from_slice(data);
        let mut start = 0;
        while let Some(nl) = buf[start..].iter().position(|&b| b == b'\n') {
            self.entry(stream, &buf[start..start + nl + 1]);
            start += nl + 1;
        }
        while buf.len() - start >= MAX_LINE {
            self.entry(stream, &buf[start..start + MAX_LINE]);
            start += MAX_LINE;
        }
        buf.drain(..start);
        self.partial[stream] = buf;
    }

    fn close(&mut self) {
        for s in 0..2 {
            let rest = std::mem::take(&mut self.partial[s]);
            if !rest.is_empty() {
                self.entry(s, &rest);
            }
        }
    }

    fn entry(&mut self, stream: usize, line: &[u8]) {
        let name = if stream == 0 { "stdout" } else { "stderr" };
        let text = format!(
            "{{\"log\":{},\"stream\":\"{name}\",\"time\":\"{}\"}}\n",
            json_string(line),
            now_rfc3339()
        );
        if self.max_size > 0 && self.size > 0 && self.size + text.len() as u64 > self.max_size {
            self.rotate();
        }
        // A full disk loses log lines, never the container.
        if let Some(f) = &mut self.file {
            if f.write_all(text.as_bytes()).is_ok() {
                self.size += text.len() as u64;
            }
        }
    }

    fn rotate(&mut self) {
        let name = |n: u32| {
            let mut p = self.path.clone();
            p.push(format!(".{n}"));
            p
        };
        if self.max_file > 1 {
            for n in (1..self.max_file - 1).rev() {
                let _ = std::fs::rename(name(n), name(n + 1));
            }
            let _ = std::fs::rename(&self.path, name(1));
            self.file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .ok();
        } else if let Some(f) = &self.file {
            let _ = f.set_len(0);
        }
        self.size = 0;
    }
}

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
        let mut buf = [0u8; 16 * 1024];
        // SAFETY: read into our buffer from an fd we own.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n == 0 {
            return false;
        }
        if n < 0 {
            return matches!(
                std::io::Error::last_os_error().raw_os_error(),
                Some(libc::EINTR) | Some(libc::EAGAIN)
            );
        }
        let Some(i) = self.clients.iter().position(|c| c.fd == fd) else {
            return false;
        };
        self.clients[i].inbuf.extend_from_slice(&buf[..n as usize]);
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
    let mut buf = vec![0u8; 32 * 1024];
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
        // SAFETY: poll on our own array of pollfds.
        let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, 100) };
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
                // SAFETY: read into our buffer from an fd we own.
                let r = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
                if r > 0 {
                    log.write(stream, &buf[..r as usize]);
                    at.broadcast(stream as u8 + 1, &buf[..r as usize]);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_escapes() {
        assert_eq!(json_string(b"a\"b\\c\n\x01"), "\"a\\\"b\\\\c\\n\\u0001\"");
        assert_eq!(json_string(b"\xff"), "\"\u{fffd}\"");
    }

    #[test]
    fn lines_partials_and_rotation() {
        let dir = std::env::temp_dir().join(format!("berth-monitor-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("c-json.log");
        let mut w = Log::open(p.clone().into(), 300, 3);
        w.write(0, b"hello\nwor");
        w.write(1, b"oops\n");
        w.write(0, b"ld\n");
        w.close();
        let text = std::fs::read_to_string(&p).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with(r#"{"log":"hello\n","stream":"stdout","time":""#));
        assert!(lines[1].contains(r#""log":"oops\n","stream":"stderr""#));
        assert!(lines[2].starts_with(r#"{"log":"world\n""#));
        for i in 0..20 {
            w.write(0, format!("line {i}\n").as_bytes());
        }
        let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
        files.sort_by_key(|e| e.file_name());
        assert_eq!(files.len(), 3, "{files:?}");
        for f in &files {
            assert!(f.metadata().unwrap().len() <= 300);
        }
        assert!(std::fs::read_to_string(&p).unwrap().contains("line 19"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn time_shape() {
        let t = now_rfc3339();
        assert_eq!(t.len(), 30, "{t}");
        assert!(t.ends_with('Z') && t.as_bytes()[10] == b'T');
    }
}
