//! `berth-monitor`: what a detached container's monitor becomes once the
//! container runs. `berth __monitor` creates and starts the container (its
//! init is that process's child), then execs this small binary in the same
//! process, so the container stays our child while the big `berth` image
//! leaves memory. We copy the container's output into the json-file log
//! (Docker's format, size rotation), wait for the init, then exec
//! `berth __finish` with its exit code for the bookkeeping.
//!
//! Usage (not for people):
//! `berth-monitor LOG MAX_SIZE MAX_FILE PID OUT_FD ERR_FD MASTER_FD -- FINISH_CMD...`
//! (`-1` for an absent fd; the exit code is appended to FINISH_CMD).

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

fn pump(log: &mut Log, fds: &[(i32, usize)]) {
    let mut open: Vec<(i32, usize)> = fds.iter().copied().filter(|(fd, _)| *fd >= 0).collect();
    let mut buf = vec![0u8; 32 * 1024];
    while !open.is_empty() {
        let mut pfds: Vec<libc::pollfd> = open
            .iter()
            .map(|(fd, _)| libc::pollfd {
                fd: *fd,
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
            let (fd, stream) = open[i];
            // SAFETY: read into our buffer from an fd we own.
            let r = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
            if r > 0 {
                log.write(stream, &buf[..r as usize]);
            } else if r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR)
            {
                // EOF, or EIO from a pty whose last slave closed.
                closed.push(i);
            }
        }
        for i in closed.into_iter().rev() {
            // SAFETY: closing an fd we own, once.
            unsafe { libc::close(open[i].0) };
            open.remove(i);
        }
    }
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
    if sep != 8 || args.len() <= sep + 1 {
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
    let fds = [(num(5) as i32, 0), (num(6) as i32, 1), (num(7) as i32, 0)];
    pump(&mut log, &fds);
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
    fn time_shape() {
        let t = now_rfc3339();
        assert_eq!(t.len(), 30, "{t}");
        assert!(t.ends_with('Z') && t.as_bytes()[10] == b'T');
    }
}
