//! The child side of container creation and exec: stage 1 (namespaces) and
//! the container process itself, up to execve. These run in forked,
//! single-threaded children and never return. See `sync` for the protocol.

use crate::mounts::RealMounter;
use crate::namespaces::{self, Plan};
use crate::process;
use crate::rootfs::{self, CgroupMounts};
use crate::seccomp;
use crate::sync::{Channel, Msg};
use oci_spec::runtime::{Process, Spec};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

/// What the container process needs, prepared by the parent before fork.
pub struct Init {
    pub spec: Spec,
    pub process: Process,
    pub rootfs: PathBuf,
    pub bundle: PathBuf,
    pub plan: Plan,
    pub no_pivot: bool,
    pub preserve_fds: i32,
    pub console: Option<OwnedFd>,
    /// Create: an O_PATH fd of the exec.fifo to block on until `start`,
    /// opened by the parent (the state dir may not be searchable from a
    /// user namespace). Exec: None.
    pub fifo: Option<OwnedFd>,
    pub seccomp: Option<seccomp::Filter>,
    pub cgroups: CgroupMounts,
    /// Exec: set up the process only (no rootfs, hooks, hostname).
    pub exec: bool,
}

type R<T> = std::result::Result<T, String>;

fn e<E: std::fmt::Display>(x: E) -> String {
    x.to_string()
}

/// Reset what a runtime process may have changed that execve would carry
/// into the container: blocked signals and ignored dispositions (Rust
/// ignores SIGPIPE).
fn reset_signals() {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&SigSet::empty()),
        None,
    );
    let dfl = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for s in Signal::iterator() {
        if matches!(s, Signal::SIGKILL | Signal::SIGSTOP) {
            continue;
        }
        // SAFETY: installing SIG_DFL is always sound.
        let _ = unsafe { sigaction(s, &dfl) };
    }
}

fn exit(code: i32) -> ! {
    // SAFETY: _exit ends the process without running atexit handlers or
    // flushing stdio buffers shared with the parent.
    unsafe { libc::_exit(code) }
}

/// Stage 1: join/create namespaces, then clone the container process.
pub fn stage1(init: Init, chan: Channel) -> ! {
    reset_signals();
    // Until execve nobody in the container may open /proc/<us>/exe (the
    // runtime binary on the host): CVE-2019-5736. Non-dumpable also makes
    // our /proc files root-owned on the host.
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    let r = stage1_inner(&init, &chan);
    match r {
        Ok(Some(child)) => {
            let _ = chan.send(&Msg::Pid(child));
            exit(0)
        }
        Ok(None) => {
            // We are the container process.
            stage2(init, chan)
        }
        Err(msg) => {
            let _ = chan.send(&Msg::Error(msg));
            exit(1)
        }
    }
}

fn stage1_inner(init: &Init, chan: &Channel) -> R<Option<i32>> {
    namespaces::join_all(&init.plan.join).map_err(e)?;
    if init.plan.new_user {
        namespaces::unshare(nix::sched::CloneFlags::CLONE_NEWUSER, "user namespace").map_err(e)?;
        chan.send(&Msg::MapIds).map_err(e)?;
        chan.expect("IdsMapped", |m| *m == Msg::IdsMapped)
            .map_err(|x| x.peer_text())?;
        let root = nix::unistd::Uid::from_raw(0);
        let groot = nix::unistd::Gid::from_raw(0);
        nix::unistd::setresgid(groot, groot, groot)
            .map_err(|x| format!("setresgid 0 in user namespace: {x}"))?;
        nix::unistd::setresuid(root, root, root)
            .map_err(|x| format!("setresuid 0 in user namespace: {x}"))?;
    }
    // The cgroup namespace is unshared by the container process once the
    // parent has put it in its cgroups (its root is the cgroup at unshare time).
    namespaces::unshare(
        init.plan.new - nix::sched::CloneFlags::CLONE_NEWCGROUP,
        "namespaces",
    )
    .map_err(e)?;
    if init.plan.new_pid {
        namespaces::unshare(nix::sched::CloneFlags::CLONE_NEWPID, "pid namespace").map_err(e)?;
    }
    match namespaces::clone_parent() {
        Ok(0) => Ok(None),
        Ok(pid) => Ok(Some(pid)),
        Err(x) => Err(format!("clone container process: {x}")),
    }
}

/// The container process: filesystem, identity, then wait and execve.
fn stage2(init: Init, chan: Channel) -> ! {
    let r = stage2_inner(&init, &chan);
    match r {
        Ok(never) => match never {},
        Err(msg) => {
            let _ = chan.send(&Msg::Error(msg));
            exit(1)
        }
    }
}

enum Never {}

fn stage2_inner(init: &Init, chan: &Channel) -> R<Never> {
    let state = match chan.recv() {
        Ok(Msg::Continue { state }) => state,
        Ok(m) => return Err(format!("sync: expected Continue, got {m:?}")),
        Err(_) => exit(1),
    };
    if init
        .plan
        .new
        .contains(nix::sched::CloneFlags::CLONE_NEWCGROUP)
    {
        namespaces::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP, "cgroup namespace")
            .map_err(e)?;
    }
    let terminal = init.process.terminal().unwrap_or(false);
    if !init.exec || terminal {
        nix::unistd::setsid().map_err(|x| format!("setsid: {x}"))?;
    }
    let mut fifo_fd: Option<OwnedFd> = None;
    let hooks = init.spec.hooks().clone().unwrap_or_default();
    if !init.exec {
        if !init.plan.has_mount_ns() {
            return Err(
                "a mount namespace is required (add {\"type\":\"mount\"} to linux.namespaces)"
                    .into(),
            );
        }
        let ctx = rootfs::Ctx {
            m: &RealMounter,
            rootfs: &init.rootfs,
            bundle: &init.bundle,
            spec: &init.spec,
            userns: init.plan.new_user
                || init
                    .plan
                    .join
                    .iter()
                    .any(|(t, _)| *t == oci_spec::runtime::LinuxNamespaceType::User),
            cgroupns: init
                .plan
                .new
                .contains(nix::sched::CloneFlags::CLONE_NEWCGROUP),
            cgroups: &init.cgroups,
        };
        rootfs::prepare(&ctx).map_err(e)?;
        if let Some(f) = &init.fifo {
            fifo_fd = Some(
                f.try_clone()
                    .map_err(|x| format!("dup exec.fifo fd: {x}"))?,
            );
        }
        let need_parent_hooks = hooks.prestart().as_ref().is_some_and(|h| !h.is_empty())
            || hooks
                .create_runtime()
                .as_ref()
                .is_some_and(|h| !h.is_empty());
        if need_parent_hooks {
            chan.send(&Msg::RunHooks).map_err(e)?;
            match chan.recv() {
                Ok(Msg::HooksDone) => {}
                Ok(m) => return Err(format!("sync: expected HooksDone, got {m:?}")),
                Err(_) => exit(1),
            }
        }
        crate::hooks::run_all(
            "createContainer",
            hooks.create_container().as_deref().unwrap_or(&[]),
            &state,
        )
        .map_err(e)?;
        rootfs::pivot(&RealMounter, &init.rootfs, init.no_pivot).map_err(e)?;
        // Like runc, create a missing cwd (inside the new root, before it may
        // turn read-only); a failure shows up as chdir's error below.
        let _ = std::fs::create_dir_all(init.process.cwd());
        rootfs::finish(&RealMounter, &init.spec).map_err(e)?;
        if init.plan.new.contains(nix::sched::CloneFlags::CLONE_NEWUTS) {
            if let Some(h) = init.spec.hostname() {
                nix::unistd::sethostname(h).map_err(|x| format!("sethostname {h:?}: {x}"))?;
            }
            if let Some(d) = init.spec.domainname() {
                let c = std::ffi::CString::new(d.as_str()).map_err(e)?;
                // SAFETY: setdomainname reads len bytes of a valid C string.
                let rc = unsafe { libc::setdomainname(c.as_ptr(), d.len()) };
                if rc != 0 {
                    return Err(format!("setdomainname {d:?}: {}", nix::Error::last()));
                }
            }
        }
    }
    if terminal {
        let Some(sock) = &init.console else {
            return Err("process.terminal is set but there is no console socket".into());
        };
        let (rows, cols) = init
            .process
            .console_size()
            .map(|b| (b.height() as u16, b.width() as u16))
            .unwrap_or((0, 0));
        let (master, slave) = crate::console::open_pty(rows, cols).map_err(e)?;
        crate::console::send_fd(sock.as_raw_fd(), master.as_raw_fd(), "console").map_err(e)?;
        drop(master);
        crate::console::attach_slave(&slave).map_err(e)?;
    }
    let p = &init.process;
    nix::unistd::chdir(p.cwd()).map_err(|x| format!("chdir {}: {x}", p.cwd().display()))?;
    if let Some(rl) = p.rlimits() {
        process::set_rlimits(rl).map_err(e)?;
    }
    if let Some(adj) = p.oom_score_adj() {
        process::set_oom_score_adj("self", adj).map_err(e)?;
    }
    let nnp = p.no_new_privileges().unwrap_or(false);
    if nnp {
        process::set_no_new_privs().map_err(e)?;
    }
    if let (Some(f), false) = (&init.seccomp, nnp) {
        seccomp::load(f).map_err(e)?;
    }
    let in_userns = init.plan.new_user
        || init
            .plan
            .join
            .iter()
            .any(|(t, _)| *t == oci_spec::runtime::LinuxNamespaceType::User);
    let setgroups_denied = in_userns
        && std::fs::read_to_string("/proc/self/setgroups")
            .map(|s| s.trim() == "deny")
            .unwrap_or(false);
    if let Some(c) = p.capabilities() {
        process::drop_bounding(c).map_err(e)?;
    }
    process::set_user(p, setgroups_denied).map_err(e)?;
    match p.capabilities() {
        Some(c) => process::apply_caps(c).map_err(e)?,
        None => process::apply_caps(&serde_json::from_str("{}").expect("empty caps")).map_err(e)?,
    }
    if let Some(u) = p.user().umask() {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(u));
    } else {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    }
    let env = p.env().clone().unwrap_or_default();
    let args = p.args().clone().unwrap_or_default();
    let path = process::lookup(&args[0], &env).map_err(e)?;
    let cpath = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).map_err(e)?;
    let cargs = process::cstrings(&args).map_err(e)?;
    let cenv = process::cstrings(&env).map_err(e)?;
    // Nothing of the host beyond stdio and the preserved fds may reach the
    // container: close the rest, but for the sync socket and the fifo, which
    // are close-on-exec.
    let mut keep: Vec<RawFd> = vec![chan.raw_fd()];
    if let Some(f) = &fifo_fd {
        keep.push(f.as_raw_fd());
    }
    process::close_fds_from(3 + init.preserve_fds, &keep);
    chan.send(&Msg::Ready).map_err(e)?;
    if !init.exec {
        match chan.recv() {
            Ok(Msg::Created) => {}
            Ok(m) => return Err(format!("sync: expected Created, got {m:?}")),
            Err(_) => exit(1),
        }
        // Wait for `start`: opening the fifo for writing blocks until a reader opens it.
        let fifo = fifo_fd.as_ref().expect("create has a fifo");
        let reopen = format!("/proc/self/fd/{}", fifo.as_raw_fd());
        let w = nix::fcntl::open(
            reopen.as_str(),
            nix::fcntl::OFlag::O_WRONLY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        );
        let w = match w {
            Ok(w) => w,
            Err(_) => exit(1),
        };
        let _ = nix::unistd::write(&w, b"0");
        drop(w);
        if let Err(x) = crate::hooks::run_all(
            "startContainer",
            hooks.start_container().as_deref().unwrap_or(&[]),
            &state,
        ) {
            eprintln!("berth-runtime: {x}");
            exit(1);
        }
    }
    if let (Some(f), true) = (&init.seccomp, nnp) {
        if let Err(x) = seccomp::load(f) {
            let _ = chan.send(&Msg::Error(x.to_string()));
            exit(1);
        }
    }
    // SAFETY: execve with NUL-terminated arrays built from owned CStrings.
    let _ = nix::unistd::execve(&cpath, &cargs, &cenv);
    let err = nix::Error::last();
    let msg = format!("exec {}: {err}", path.display());
    if chan.send(&Msg::Error(msg.clone())).is_err() {
        eprintln!("berth-runtime: {msg}");
    }
    exit(if err == nix::Error::ENOENT { 127 } else { 126 })
}
