//! `berth-monitor`: what a detached container's monitor becomes once the
//! container runs. `berth __monitor` creates and starts the container (its
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

/// The attach side: listening socket, clients, and where their input goes.
struct Attach {
    listen: i32,
    clients: Vec<i32>,
    /// The container's stdin: a pipe's write end, or the pty master.
    stdin: i32,
    master: i32,
}

fn write_all(fd: i32, mut buf: &[u8]) -> bool {
    while !buf.is_empty() {
        // SAFETY: write from our buffer to an fd we own.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return false;
        }
        buf = &buf[n as usize..];
    }
    true
}

fn read_exact(fd: i32, buf: &mut [u8]) -> bool {
    let mut got = 0;
    while got < buf.len() {
        // SAFETY: read into our buffer from an fd we own.
        let n = unsafe { libc::read(fd, buf[got..].as_mut_ptr().cast(), buf.len() - got) };
        if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        if n <= 0 {
            return false;
        }
        got += n as usize;
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
    fn broadcast(&mut self, stream: u8, data: &[u8]) {
        let mut frame = Vec::with_capacity(5 + data.len());
        frame.push(stream);
        frame.extend_from_slice(&(data.len() as u32).to_be_bytes());
        frame.extend_from_slice(data);
        self.clients.retain(|&c| {
            let ok = write_all(c, &frame);
            if !ok {
                close(c);
            }
            ok
        });
    }

    /// One frame from client `c`; false when the client is gone.
    fn client_frame(&mut self, c: i32) -> bool {
        let mut head = [0u8; 5];
        if !read_exact(c, &mut head) {
            return false;
        }
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        if len > 1 << 20 {
            return false;
        }
        let mut body = vec![0u8; len];
        if !read_exact(c, &mut body) {
            return false;
        }
        match head[0] {
            // A stdin pipe the container closed: drop it.
            0 if self.stdin >= 0 && !write_all(self.stdin, &body) && self.stdin != self.master => {
                close(self.stdin);
                self.stdin = -1;
            }
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
            2 if self.stdin >= 0 && self.stdin != self.master => {
                close(self.stdin);
                self.stdin = -1;
            }
            2 if self.stdin >= 0 => {
                // EOF on a terminal: ^D.
                write_all(self.stdin, &[4]);
            }
            _ => {}
        }
        true
    }
}

fn pump(log: &mut Log, fds: &[(i32, usize)], at: &mut Attach) {
    let mut open: Vec<(i32, usize)> = fds.iter().copied().filter(|(fd, _)| *fd >= 0).collect();
    let mut buf = vec![0u8; 32 * 1024];
    while !open.is_empty() {
        let mut pfds: Vec<libc::pollfd> = open
            .iter()
            .map(|(fd, _)| *fd)
            .chain(std::iter::once(at.listen).filter(|l| *l >= 0))
            .chain(at.clients.iter().copied())
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: poll on our own array of pollfds.
        let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, -1) };
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
                    || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR)
                {
                    // EOF, or EIO from a pty whose last slave closed.
                    closed.push(i);
                }
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
                    at.clients.push(c);
                }
            } else if at.clients.contains(&p.fd) && !at.client_frame(p.fd) {
                close(p.fd);
                at.clients.retain(|&c| c != p.fd);
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
    // The output is over: attached clients see EOF.
    for c in at.clients.drain(..) {
        close(c);
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
        clients: Some(num(10) as i32)
            .filter(|c| *c >= 0)
            .into_iter()
            .collect(),
        stdin: if stdin >= 0 { stdin } else { master },
        master,
    };
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
