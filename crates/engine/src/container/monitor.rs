//! The per-container monitor of a detached (or `-t`) container, what
//! conmon is to Podman: the CLI double-forks it into a new session with a
//! report pipe. It takes over the start claim, creates and starts the
//! container with its stdout/stderr on pipes (or a pty), records it as
//! running, tells the CLI, then execs `berth-monitor` (crates/monitor) in
//! the same process, which writes the json-file log, serves attach, waits
//! for the init and execs `berth __finish` (exit code, time, OOM, cleanup,
//! `--rm`). Attached runs without `-t` ([`Engine::run_attached`]) need no
//! monitor: the CLI is the container's parent and does the bookkeeping.

use super::{io, Config, Engine, Error, Result};
use crate::db::{Record, Status};
use nix::fcntl::OFlag;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// The fd the report pipe has in `berth __monitor`.
const REPORT_FD: i32 = 3;

/// `berth __monitor ID ATTACH CLAIMER`, exec'd by [`Engine::start_detached`]
/// with the report pipe on fd 3; returns its exit status.
pub fn main(root: &Path, id: &str, attach: bool, claimer: i32) -> i32 {
    use std::os::fd::FromRawFd;
    // SAFETY: our starter put the report pipe on this fd for us alone.
    let report = unsafe { OwnedFd::from_raw_fd(REPORT_FD) };
    let _ = nix::fcntl::fcntl(
        &report,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    );
    run_monitor(root, id, std::fs::File::from(report), attach, claimer)
}

/// The monitor's attach socket in the container dir.
pub const ATTACH_SOCKET: &str = "attach.sock";

impl Engine {
    /// Starts `rec` under a new monitor and returns once it runs (or with
    /// the error that stopped it). Starting a running container is a no-op.
    pub fn start_detached(&self, rec: &Record) -> Result<Record> {
        self.start_monitored(rec, false, false).map(|(r, _)| r)
    }

    /// Like [`Engine::start_detached`] for a start this process has claimed
    /// already (a restart: `ContainerDb::take_restart`).
    pub(crate) fn start_claimed(&self, rec: &Record) -> Result<Record> {
        self.start_monitored(rec, false, true).map(|(r, _)| r)
    }

    /// Like [`Engine::start_detached`], but attached to the monitor before
    /// the container starts (for `run -t`): no output is missed.
    pub fn start_and_attach(
        &self,
        rec: &Record,
    ) -> Result<(Record, std::os::unix::net::UnixStream)> {
        let (r, s) = self.start_monitored(rec, true, false)?;
        let s = s.ok_or_else(|| Error::State {
            id: rec.id.clone(),
            what: "is already running; use berth attach".into(),
        })?;
        Ok((r, s))
    }

    fn start_monitored(
        &self,
        rec: &Record,
        attach: bool,
        claimed: bool,
    ) -> Result<(Record, Option<std::os::unix::net::UnixStream>)> {
        if !claimed && !self.claim(rec)? {
            let cur = self.wait_started(rec)?;
            if cur.status == Status::Removing {
                return Err(Error::State {
                    id: rec.id.clone(),
                    what: "is being removed".into(),
                });
            }
            return Ok((cur, None));
        }
        let (r, w) =
            nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| io(Path::new("pipe"))(e.into()))?;
        let _ = (std::io::stdout().flush(), std::io::stderr().flush());
        let claimer = std::process::id() as i32;
        // Fork twice (the monitor is nobody's child but init's), then exec
        // ourselves as `berth __monitor`: SQLite must not be used in a fork
        // of a process that has the database open (its lock bookkeeping is
        // per process; a forked child's writes were seen to vanish).
        let exe = std::env::current_exe().map_err(io(Path::new("/proc/self/exe")))?;
        let args: Vec<std::ffi::CString> = [
            exe.as_os_str(),
            std::ffi::OsStr::new("--root"),
            self.root.as_os_str(),
            std::ffi::OsStr::new("__monitor"),
            std::ffi::OsStr::new(&rec.id),
            std::ffi::OsStr::new(if attach { "1" } else { "0" }),
            std::ffi::OsStr::new(&claimer.to_string()),
        ]
        .iter()
        .map(|a| {
            use std::os::unix::ffi::OsStrExt;
            std::ffi::CString::new(a.as_bytes())
        })
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::Invalid(format!("monitor arguments: {e}")))?;
        let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        // SAFETY: the CLI is single-threaded here; both children only set
        // up fds and exec (or leave with _exit).
        match unsafe { nix::unistd::fork() }.map_err(|e| io(Path::new("fork"))(e.into()))? {
            nix::unistd::ForkResult::Child => {
                drop(r);
                let _ = nix::unistd::setsid();
                // SAFETY: as above; the middle process only forks and exits.
                match unsafe { nix::unistd::fork() } {
                    Ok(nix::unistd::ForkResult::Child) => {
                        let code = match std::fs::OpenOptions::new()
                            .read(true)
                            .write(true)
                            .open("/dev/null")
                        {
                            Ok(null) => {
                                for fd in 0..3 {
                                    let _ = dup_to(&null, fd);
                                }
                                // A caller that blocks signals (an attached
                                // run restarting its container) must not
                                // pass that on to the monitor.
                                let _ = nix::sys::signal::sigprocmask(
                                    nix::sys::signal::SigmaskHow::SIG_SETMASK,
                                    Some(&nix::sys::signal::SigSet::empty()),
                                    None,
                                );
                                let _ = dup_to(&w, REPORT_FD);
                                // SAFETY: fcntl on our own fd; then exec with a
                                // NULL-terminated argv that outlives the call.
                                unsafe {
                                    libc::fcntl(REPORT_FD, libc::F_SETFD, 0);
                                    libc::execv(argv[0], argv.as_ptr());
                                }
                                let mut w = std::fs::File::from(w);
                                let _ = writeln!(
                                    w,
                                    "err exec {}: {}",
                                    exe.display(),
                                    std::io::Error::last_os_error()
                                );
                                1
                            }
                            Err(_) => 1,
                        };
                        // SAFETY: leaves the forked monitor without running
                        // the CLI's destructors.
                        unsafe { libc::_exit(code) }
                    }
                    // SAFETY: as above.
                    _ => unsafe { libc::_exit(0) },
                }
            }
            nix::unistd::ForkResult::Parent { child } => {
                drop(w);
                let _ = waitpid(child, None);
            }
        }
        let mut rd = std::io::BufReader::new(std::fs::File::from(r));
        let mut msg = String::new();
        let _ = std::io::BufRead::read_line(&mut rd, &mut msg);
        let mut stream = None;
        if attach && msg == "attach\n" {
            let (_dirfd, sock) = super::socket_path(&self.dir(&rec.id), ATTACH_SOCKET)?;
            let mut s = std::os::unix::net::UnixStream::connect(&sock).map_err(io(&sock))?;
            // First frame: our terminal's size, for the container's pty.
            let (rows, cols) = berth_runtime::console::get_size(0).unwrap_or((0, 0));
            let mut f = vec![1u8, 0, 0, 0, 4];
            f.extend_from_slice(&rows.to_be_bytes());
            f.extend_from_slice(&cols.to_be_bytes());
            s.write_all(&f).map_err(io(&sock))?;
            stream = Some(s);
            msg.clear();
            let _ = std::io::BufRead::read_line(&mut rd, &mut msg);
        }
        let _ = rd.read_to_string(&mut msg);
        if msg.trim_end() == "ok" {
            let r = self.db.get(&rec.id)?.ok_or_else(|| Error::State {
                id: rec.id.clone(),
                what: "removed while starting".into(),
            })?;
            return Ok((r, stream));
        }
        let msg = msg
            .strip_prefix("err ")
            .map(|m| m.trim_end().to_string())
            .unwrap_or_else(|| "the container's monitor exited before it started".into());
        let _ = self.db.undo_start(&rec.id, &msg);
        Err(Error::Start {
            id: rec.id.clone(),
            msg,
        })
    }
}

impl Engine {
    /// Claims the start of `rec` for this process (see `claim_start`).
    pub(crate) fn claim(&self, rec: &Record) -> Result<bool> {
        let me = std::process::id() as i32;
        let start = berth_runtime::state::process_start_time(me).unwrap_or(0);
        Ok(self.db.claim_start(&rec.id, me, start)?)
    }

    /// `rec` as stored now, once no start of it is in progress (waited
    /// for): what stop, kill and update act on.
    pub(crate) fn current(&self, rec: &Record) -> Result<Record> {
        let now = self.db.get(&rec.id)?.unwrap_or_else(|| rec.clone());
        if now.status == Status::Starting {
            return self.wait_started(&now);
        }
        Ok(now)
    }

    /// Another process is starting `rec`: its outcome, once there is one.
    pub(crate) fn wait_started(&self, rec: &Record) -> Result<Record> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let cur = self.lookup(&rec.id)?;
            if cur.status != Status::Starting {
                return Ok(cur);
            }
            if std::time::Instant::now() > deadline {
                return Err(Error::State {
                    id: rec.id.clone(),
                    what: "another start did not finish in 60 s".into(),
                });
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

/// The monitor's body, reporting on `report`; returns its exit status.
fn run_monitor(
    root: &Path,
    id: &str,
    report: std::fs::File,
    attach_first: bool,
    claimer: i32,
) -> i32 {
    let mut report = Some(report);
    match monitor(root, id, &mut report, attach_first, claimer) {
        Ok(()) => 0,
        Err(e) => {
            if let Some(mut r) = report.take() {
                let _ = writeln!(r, "err {}", e.to_string().replace('\n', " "));
            }
            1
        }
    }
}

fn monitor(
    root: &Path,
    id: &str,
    report: &mut Option<std::fs::File>,
    attach_first: bool,
    claimer: i32,
) -> Result<()> {
    let eng = Engine::open(root)?;
    // The start is ours now, not the CLI's (which may be gone soon).
    let me = std::process::id() as i32;
    let me_start = berth_runtime::state::process_start_time(me).unwrap_or(0);
    if !eng.db.take_over_start(id, claimer, me, me_start)? {
        return Err(Error::State {
            id: id.into(),
            what: "its start was cancelled".into(),
        });
    }
    let rec = eng.db.get(id)?.ok_or_else(|| Error::State {
        id: id.into(),
        what: "no such container".into(),
    })?;
    let cfg = Config::parse(&rec)?;
    // Written into the store now (once per build): without it the
    // container could not be supervised, so a failure stops the start.
    small_monitor(root)?;
    eng.ensure_dir(&rec)?;
    let pipe = || nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| io(Path::new("pipe"))(e.into()));
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(io(Path::new("/dev/null")))?;
    // `berth attach` connects here (berth-monitor serves it).
    let _ = std::fs::remove_file(eng.dir(id).join(ATTACH_SOCKET));
    let (_dirfd, sock) = super::socket_path(&eng.dir(id), ATTACH_SOCKET)?;
    let listener = std::os::unix::net::UnixListener::bind(&sock).map_err(io(&sock))?;
    let mut first_client = None;
    let mut size = None;
    if attach_first {
        // `run -t`: the CLI attaches before the container starts, so it
        // sees every byte.
        if let Some(r) = report.as_mut() {
            let _ = r.write_all(b"attach\n");
        }
        // The CLI connects right away; do not wait for a dead one forever.
        listener.set_nonblocking(true).map_err(io(&sock))?;
        let mut pfd = [nix::poll::PollFd::new(
            listener.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        if nix::poll::poll(&mut pfd, nix::poll::PollTimeout::from(10_000u16)).unwrap_or(0) == 0 {
            return Err(Error::State {
                id: id.into(),
                what: "nobody attached within 10 s".into(),
            });
        }
        let (mut c, _) = listener.accept().map_err(io(&sock))?;
        listener.set_nonblocking(false).map_err(io(&sock))?;
        c.set_nonblocking(false).map_err(io(&sock))?;
        c.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .map_err(io(&sock))?;
        // The client's first frame is its terminal size (type 1).
        let mut f = [0u8; 9];
        if c.read_exact(&mut f).is_ok() && f[0] == 1 {
            let (rows, cols) = (
                u16::from_be_bytes([f[5], f[6]]),
                u16::from_be_bytes([f[7], f[8]]),
            );
            if rows > 0 && cols > 0 {
                size = Some((rows, cols));
            }
        }
        first_client = Some(OwnedFd::from(c));
    }
    // `-i` without a tty: the container's stdin is a pipe we keep open.
    let stdin_w = if cfg.interactive && !cfg.spec.tty {
        let (r, w) = pipe()?;
        dup_to(&r, 0)?;
        Some(w)
    } else {
        None
    };
    dup_to(&out_w, 1)?;
    dup_to(&err_w, 2)?;
    drop((out_w, err_w));
    let launched = eng.launch_sized(&rec, &cfg, size);
    // Only the container holds the write ends now: EOF when it is done.
    dup_to(&null, 0)?;
    dup_to(&null, 1)?;
    dup_to(&null, 2)?;
    let l = launched?;
    if let Err(e) = eng.record_running(&rec, &l) {
        let _ = nix::sys::signal::kill(Pid::from_raw(l.pid), nix::sys::signal::Signal::SIGKILL);
        let _ = waitpid(Pid::from_raw(l.pid), None);
        drop(l.ports);
        let _ = eng.finish(id, l.pid, 137, Some(&l.cgroup));
        return Err(e);
    }
    if let Some(mut r) = report.take() {
        let _ = r.write_all(b"ok\n");
    }
    let log_path = eng.log_path(id);
    drop(eng);
    // The sockets holding the published ports stay open across the execs
    // below, through berth-monitor to `berth __finish`.
    for p in &l.ports {
        let _ = nix::fcntl::fcntl(
            p,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
        );
    }
    // From here on the small berth-monitor does the waiting, when it is
    // installed next to us; it comes back as `berth __finish`.
    let e = exec_small_monitor(
        root,
        id,
        l.pid,
        &log_path,
        &cfg,
        [
            Some(out_r.as_raw_fd()),
            Some(err_r.as_raw_fd()),
            l.master.as_ref().map(|m| m.as_raw_fd()),
            Some(listener.as_raw_fd()),
            stdin_w.as_ref().map(|w| w.as_raw_fd()),
            first_client.as_ref().map(|c| c.as_raw_fd()),
        ],
    );
    drop((listener, stdin_w, first_client));
    // It could not be exec'd: nobody would supervise the container.
    berth_runtime::log::warn(&format!("container {id}: exec berth-monitor: {e}"));
    let _ = nix::sys::signal::kill(Pid::from_raw(l.pid), nix::sys::signal::Signal::SIGKILL);
    let _ = waitpid(Pid::from_raw(l.pid), None);
    drop(l.ports);
    let eng = Engine::open(root)?;
    eng.finish(id, l.pid, 137, Some(&l.cgroup))
}

/// This berth (for `__finish`), and berth-monitor as the store holds it.
fn small_monitor(root: &Path) -> Result<(PathBuf, PathBuf)> {
    let me = std::env::current_exe().map_err(io(Path::new("/proc/self/exe")))?;
    Ok((me, super::monitor_binary(root)?))
}

/// Replaces this process with `berth-monitor` (same pid, so the
/// container stays our child). Returns only on failure.
#[allow(clippy::too_many_arguments)]
fn exec_small_monitor(
    root: &Path,
    id: &str,
    pid: i32,
    log: &Path,
    cfg: &Config,
    fds: [Option<i32>; 6],
) -> String {
    use std::os::unix::ffi::OsStrExt;
    let (me, small) = match small_monitor(root) {
        Ok(p) => p,
        Err(e) => return e.to_string(),
    };
    let fds: Vec<i32> = fds.iter().map(|f| f.unwrap_or(-1)).collect();
    for fd in fds.iter().filter(|fd| **fd >= 0) {
        // SAFETY: clears close-on-exec on fds we own, for the exec below.
        unsafe { libc::fcntl(*fd, libc::F_SETFD, 0) };
    }
    let args: Vec<std::ffi::OsString> = vec![
        small.clone().into(),
        log.into(),
        cfg.log_max_size.to_string().into(),
        cfg.log_max_file.to_string().into(),
        pid.to_string().into(),
        fds[0].to_string().into(),
        fds[1].to_string().into(),
        fds[2].to_string().into(),
        fds[3].to_string().into(),
        fds[4].to_string().into(),
        fds[5].to_string().into(),
        "--".into(),
        me.into(),
        "--root".into(),
        root.into(),
        "__finish".into(),
        id.into(),
        pid.to_string().into(),
    ];
    let c: Vec<std::ffi::CString> = match args
        .iter()
        .map(|a| std::ffi::CString::new(a.as_bytes()))
        .collect()
    {
        Ok(c) => c,
        Err(e) => return e.to_string(),
    };
    let mut argv: Vec<*const libc::c_char> = c.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    // SAFETY: a NULL-terminated argv of C strings that outlive the call.
    unsafe { libc::execv(argv[0], argv.as_ptr()) };
    let e = std::io::Error::last_os_error().to_string();
    for fd in fds.iter().filter(|fd| **fd >= 0) {
        // SAFETY: back to close-on-exec on our own fds.
        unsafe { libc::fcntl(*fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    e
}

/// `berth __finish ID PID CODE`: the bookkeeping after berth-monitor saw
/// the container's init exit.
pub fn finish_main(root: &Path, id: &str, pid: i32, code: i32) -> i32 {
    // Inherited fds are the sockets that held the container's published
    // ports (see `monitor`): let go of them before its exit is recorded, so
    // a new container may take the ports as soon as this one shows exited.
    // SAFETY: close_range on fds nothing in this process uses.
    unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    let r = Engine::open(root).and_then(|eng| {
        let cgroup = eng.cgroup(id);
        eng.finish(id, pid, code, cgroup.as_ref())?;
        // This process is the container's last word: it waits out a
        // restart's back-off and starts the next run under a new monitor.
        eng.restart_if_due(id, pid).map(|_| ())
    });
    match r {
        Ok(()) => 0,
        Err(e) => {
            berth_runtime::log::warn(&format!("finish container {id}: {e}"));
            1
        }
    }
}

pub(crate) fn dup_to(fd: &impl AsFd, target: i32) -> Result<()> {
    // SAFETY: dup2 onto a standard fd number; the old one is replaced.
    if unsafe { libc::dup2(fd.as_fd().as_raw_fd(), target) } < 0 {
        return Err(io(Path::new("dup2"))(std::io::Error::last_os_error()));
    }
    Ok(())
}
