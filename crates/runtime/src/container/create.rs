//! `create`: set up a container and leave its init process waiting on
//! exec.fifo for `start`.

use super::{oci_state, sys, write_pid_file, Error, Result, Runtime};
use crate::cgroups;
use crate::init::{self, Init};
use crate::namespaces::Plan;
use crate::rootfs::CgroupMounts;
use crate::state::{self, Dir, Record, Status};
use crate::sync::{Channel, Msg};
use crate::{hooks, seccomp, spec};
use nix::unistd::{ForkResult, Pid};
use std::os::fd::OwnedFd;
use std::path::PathBuf;

#[derive(Debug, Default)]
pub struct CreateOpts {
    pub id: String,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    /// Already-connected console socket (used by `run` to receive the pty itself).
    pub console_fd: Option<OwnedFd>,
    pub no_pivot: bool,
    pub preserve_fds: i32,
    /// The bundle, if the caller has loaded it already (`run` does).
    pub loaded: Option<spec::Bundle>,
}

pub struct Created {
    pub pid: i32,
    pub dir: Dir,
    pub rec: Record,
    pub cgroup: cgroups::Manager,
}

/// Undo list for a create that fails part-way: nothing may be left behind.
struct Cleanup {
    dir: Option<Dir>,
    cgroup: Option<cgroups::Manager>,
    pids: Vec<i32>,
}

impl Cleanup {
    fn run(&mut self) {
        for pid in self.pids.drain(..) {
            let p = Pid::from_raw(pid);
            let _ = nix::sys::signal::kill(p, nix::sys::signal::Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(p, None);
        }
        if let Some(m) = self.cgroup.take() {
            // Processes the container forked die with its init (pid ns) or here.
            for pid in m.pids().unwrap_or_default() {
                let _ =
                    nix::sys::signal::kill(Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            }
            let _ = m.destroy();
        }
        if let Some(d) = self.dir.take() {
            let _ = d.remove();
        }
    }
}

pub fn create(rt: &Runtime, mut opts: CreateOpts) -> Result<Created> {
    state::validate_id(&opts.id)?;
    let bundle = match opts.loaded.take() {
        Some(b) => b,
        None => spec::load(&opts.bundle)?,
    };
    let process = bundle
        .spec
        .process()
        .clone()
        .ok_or_else(|| Error::Invalid("config.json has no process to run".into()))?;
    let plan = Plan::from_spec(&bundle.spec);
    // Compile seccomp before anything exists, so a bad profile leaves nothing.
    let seccomp = match bundle
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
    {
        Some(s) => Some(seccomp::compile(s, Some(&rt.seccomp_cache()))?),
        None => None,
    };
    let cg_path = bundle
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().as_ref())
        .map(|p| p.to_string_lossy().into_owned());
    let cgroup = cgroups::Manager::new(cg_path.as_deref(), &opts.id)?;
    let console = match (&opts.console_fd, &opts.console_socket) {
        (Some(_), _) => None,
        (None, Some(p)) => Some(crate::console::connect(&p.to_string_lossy())?),
        (None, None) => None,
    };
    if process.terminal().unwrap_or(false) && console.is_none() && opts.console_fd.is_none() {
        return Err(Error::Invalid(
            "process.terminal is true: --console-socket is required".into(),
        ));
    }

    let dir = Dir::create(&rt.root, &opts.id)?;
    let mut cleanup = Cleanup {
        dir: Some(dir.clone()),
        cgroup: None,
        pids: Vec::new(),
    };
    let r = create_inner(
        rt,
        opts,
        bundle,
        process,
        plan,
        seccomp,
        cgroup,
        console,
        &dir,
        &mut cleanup,
    );
    if r.is_err() {
        cleanup.run();
    }
    r
}

#[allow(clippy::too_many_arguments)]
fn create_inner(
    _rt: &Runtime,
    mut opts: CreateOpts,
    mut bundle: spec::Bundle,
    process: oci_spec::runtime::Process,
    plan: Plan,
    seccomp: Option<seccomp::Filter>,
    cgroup: cgroups::Manager,
    console: Option<OwnedFd>,
    dir: &Dir,
    cleanup: &mut Cleanup,
) -> Result<Created> {
    let mut rec = Record {
        id: opts.id.clone(),
        pid: 0,
        pid_start: 0,
        bundle: bundle.dir.clone(),
        rootfs: bundle.rootfs.clone(),
        created: state::now_rfc3339(),
        cgroup_path: cgroup.path().to_string(),
        cgroup_spec: bundle
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.cgroups_path().as_ref())
            .map(|p| p.to_string_lossy().into_owned()),
        creator_cgroup: std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default(),
        annotations: bundle.spec.annotations().clone().unwrap_or_default(),
        owner: "root".into(),
        started: false,
    };
    dir.save_config(&bundle.spec)?;
    dir.save(&rec)?;
    // The profile is compiled already (and saved with the config for exec):
    // the children need not carry a second copy.
    if let Some(l) = bundle.spec.linux_mut() {
        l.set_seccomp(None);
    }
    let hooks = bundle.spec.hooks().clone().unwrap_or_default();
    let id_maps = id_maps(&bundle.spec);
    cgroup.create()?;
    let cgroup = {
        cleanup.cgroup = Some(cgroup);
        cleanup.cgroup.as_ref().expect("just set")
    };
    if let Some(r) = bundle
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
    {
        cgroup.apply_resources(&with_default_device_rules(r, &bundle.spec))?;
    }
    let fifo = dir.fifo();
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o622))
        .map_err(sys(format!("mkfifo {}", fifo.display())))?;
    // 0622 whatever the umask: the container process reopens it for writing
    // after switching to process.user (or to a user namespace's root).
    nix::sys::stat::fchmodat(
        nix::fcntl::AT_FDCWD,
        &fifo,
        nix::sys::stat::Mode::from_bits_truncate(0o622),
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )
    .map_err(sys(format!("chmod {}", fifo.display())))?;
    let fifo_fd = nix::fcntl::open(
        &fifo,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(sys(format!("open {}", fifo.display())))?;
    let cgroups_for_mounts = CgroupMounts::discover(&cgroup.fs_paths());
    let (pchan, cchan) = Channel::pair()?;
    let init = Init {
        spec: bundle.spec,
        process,
        rootfs: bundle.rootfs.clone(),
        bundle: bundle.dir.clone(),
        plan: plan.clone(),
        no_pivot: opts.no_pivot,
        preserve_fds: opts.preserve_fds,
        console: console.or(opts.console_fd.take()),
        fifo: Some(fifo_fd),
        seccomp,
        cgroups: cgroups_for_mounts,
        exec: false,
    };
    // On cgroup v2, start stage 1 directly inside the container's cgroup.
    let into = cgroup.v2_dir().and_then(|d| {
        nix::fcntl::open(
            &d,
            nix::fcntl::OFlag::O_PATH
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .ok()
    });
    let mut joined = false;
    let forked = match &into {
        Some(dir) => match crate::namespaces::fork_into_cgroup(dir) {
            Ok(pid) => {
                joined = true;
                if pid != 0 {
                    crate::log::debug(
                        "stage 1 started inside its cgroup (clone3 CLONE_INTO_CGROUP)",
                    );
                }
                Ok(pid)
            }
            // SAFETY: as below.
            Err(_) => unsafe { nix::unistd::fork() }.map(fork_pid),
        },
        // SAFETY: berth-runtime is single-threaded here; the child only runs
        // our own code up to execve or _exit.
        None => unsafe { nix::unistd::fork() }.map(fork_pid),
    };
    let c1 = forked.map_err(sys("fork"))?;
    if c1 == 0 {
        drop(pchan);
        init::stage1(init, cchan)
    }
    drop(into);
    drop(init);
    drop(cchan);
    cleanup.pids.push(c1);
    if !joined {
        // Stage 1 sets up namespaces while this (slow) first cgroup write runs.
        cgroup.add_pid(c1)?;
    }
    let pid = loop {
        match pchan.recv()? {
            Msg::MapIds => {
                write_id_maps(c1, &id_maps)?;
                pchan.send(&Msg::IdsMapped)?;
            }
            Msg::Pid(p) => break p,
            Msg::Error(e) => return Err(Error::Child(e)),
            m => return Err(Error::Child(format!("sync: unexpected {m:?} from stage 1"))),
        }
    };
    cleanup.pids.insert(0, pid);
    // The container process may have been cloned before stage 1 moved.
    if !joined {
        cgroup.add_pid(pid)?;
    }
    let _ = nix::sys::wait::waitpid(Pid::from_raw(c1), None);
    cleanup.pids.retain(|p| *p != c1);
    rec.pid = pid;
    rec.pid_start = state::process_start_time(pid).unwrap_or(0);
    let state_json = oci_state(&rec, Status::Creating).to_string();
    pchan.send(&Msg::Continue {
        state: state_json.clone(),
    })?;
    loop {
        match pchan.recv() {
            Ok(Msg::RunHooks) => {
                hooks::run_all(
                    "prestart",
                    hooks.prestart().as_deref().unwrap_or(&[]),
                    &state_json,
                )?;
                hooks::run_all(
                    "createRuntime",
                    hooks.create_runtime().as_deref().unwrap_or(&[]),
                    &state_json,
                )?;
                pchan.send(&Msg::HooksDone)?;
            }
            Ok(Msg::Ready) => break,
            Ok(Msg::Error(e)) => return Err(Error::Child(e)),
            Ok(m) => return Err(Error::Child(format!("sync: unexpected {m:?} from init"))),
            Err(crate::sync::Error::Closed) => {
                return Err(Error::Child("container init exited during setup".into()))
            }
            Err(e) => return Err(e.into()),
        }
    }
    dir.save(&rec)?;
    if let Some(p) = &opts.pid_file {
        write_pid_file(p, pid)?;
    }
    pchan.send(&Msg::Created)?;
    let cgroup = cleanup.cgroup.take().expect("cgroup set");
    cleanup.pids.clear();
    cleanup.dir = None;
    Ok(Created {
        pid,
        dir: dir.clone(),
        rec,
        cgroup,
    })
}

/// runc's `AllowedDevices`: a spec whose device rules start with "deny all"
/// (Podman, Docker) still expects the default devices, the ptys and mknod to
/// work. Appended after the spec's rules (later rules win), plus an allow rule
/// for every node in `linux.devices`. A spec without device rules is left as is.
fn with_default_device_rules(
    r: &oci_spec::runtime::LinuxResources,
    spec: &oci_spec::runtime::Spec,
) -> oci_spec::runtime::LinuxResources {
    use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};
    let Some(rules) = r.devices() else {
        return r.clone();
    };
    let rule = |typ: LinuxDeviceType, major: Option<i64>, minor: Option<i64>, access: &str| {
        let mut d = LinuxDeviceCgroup::default();
        d.set_allow(true);
        d.set_typ(Some(typ));
        d.set_major(major);
        d.set_minor(minor);
        d.set_access(Some(access.to_string()));
        d
    };
    let c = LinuxDeviceType::C;
    let mut all = rules.clone();
    all.push(rule(c, None, None, "m"));
    all.push(rule(LinuxDeviceType::B, None, None, "m"));
    for (_, major, minor) in crate::rootfs::default_devices() {
        all.push(rule(c, Some(major as i64), Some(minor as i64), "rwm"));
    }
    all.push(rule(c, Some(136), None, "rwm")); // /dev/pts/*
    all.push(rule(c, Some(5), Some(2), "rwm")); // /dev/ptmx
    all.push(rule(c, Some(10), Some(200), "rwm")); // /dev/net/tun
    for d in spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().as_ref())
        .into_iter()
        .flatten()
    {
        if matches!(
            d.typ(),
            LinuxDeviceType::C | LinuxDeviceType::U | LinuxDeviceType::B
        ) {
            all.push(rule(d.typ(), Some(d.major()), Some(d.minor()), "rwm"));
        }
    }
    let mut r = r.clone();
    r.set_devices(Some(all));
    r
}

fn fork_pid(r: ForkResult) -> i32 {
    match r {
        ForkResult::Child => 0,
        ForkResult::Parent { child } => child.as_raw(),
    }
}

/// The uid_map and gid_map file contents from linux.uidMappings/gidMappings.
fn id_maps(spec: &oci_spec::runtime::Spec) -> (String, String) {
    let linux = spec.linux().as_ref();
    let fmt = |m: Option<&Vec<oci_spec::runtime::LinuxIdMapping>>| -> String {
        m.into_iter()
            .flatten()
            .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
            .collect()
    };
    (
        fmt(linux.and_then(|l| l.uid_mappings().as_ref())),
        fmt(linux.and_then(|l| l.gid_mappings().as_ref())),
    )
}

fn write_id_maps(pid: i32, maps: &(String, String)) -> Result<()> {
    for (file, data) in [("uid_map", &maps.0), ("gid_map", &maps.1)] {
        if data.is_empty() {
            continue;
        }
        let p = format!("/proc/{pid}/{file}");
        std::fs::write(&p, data.as_bytes()).map_err(|source| Error::Io {
            path: p.into(),
            source,
        })?;
    }
    Ok(())
}
