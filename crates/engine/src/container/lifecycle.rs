//! Starting and stopping: [`Engine::launch`] mounts the rootfs, writes
//! config.json and creates + starts the container with the runtime
//! in-process; [`Engine::finish`] records the exit and cleans up. Attached
//! runs do both in the CLI process; detached ones in a monitor
//! (`monitor.rs`). Stop, kill and remove work on any container whose pid is
//! recorded, whoever started it.

use super::{io, pid_alive, Config, Engine, Error, Result};
use crate::db::{Exit, Record, Started, Status};
use crate::{rootfs, spec_gen};
use berth_runtime::cgroups::Manager;
use berth_runtime::container::create::{create, CreateOpts};
use berth_runtime::container::{delete, kill, start};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

/// A container that is running: its init (our child) and cgroup.
pub struct Launched {
    pub pid: i32,
    pub pid_start: u64,
    pub cgroup: Manager,
    /// The pty master when the container has a terminal.
    pub master: Option<OwnedFd>,
    /// Sockets holding its published host ports (keep them while it runs).
    pub ports: Vec<OwnedFd>,
}

/// The network namespace a starting container joins: one berth wired, or
/// another container's.
struct NetJoin<'a> {
    wired: Option<&'a crate::network::Wired>,
    shared: Option<&'a SharedNetwork>,
}

/// Another container's network namespace, held open while we start.
pub struct SharedNetwork {
    ns: OwnedFd,
    hostname: String,
    /// Its dir with hosts and resolv.conf.
    etc: std::path::PathBuf,
}

impl SharedNetwork {
    fn path(&self) -> String {
        format!("/proc/{}/fd/{}", std::process::id(), self.ns.as_raw_fd())
    }
}

/// Default `--stop-timeout`.
pub const STOP_TIMEOUT: u32 = 10;

impl Engine {
    /// Mounts the rootfs, generates config.json and creates + starts the
    /// container; its stdio is ours (fds 0-2). On error nothing runs and
    /// the runtime state is gone.
    pub fn launch(&self, rec: &Record, cfg: &Config) -> Result<Launched> {
        self.launch_sized(rec, cfg, berth_runtime::console::get_size(0))
    }

    /// [`Engine::launch`] with the terminal size (rows, cols) a `-t`
    /// container starts with.
    pub fn launch_sized(
        &self,
        rec: &Record,
        cfg: &Config,
        size: Option<(u16, u16)>,
    ) -> Result<Launched> {
        let dir = self.dir(&rec.id);
        self.ensure_dir(rec)?;
        if !dir.join("l").exists() {
            return Err(Error::State {
                id: rec.id.clone(),
                what: format!("{} is missing; remove the container", dir.display()),
            });
        }
        // A run that died without cleaning up leaves runtime state behind.
        cleanup_runtime(self, &rec.id, Some(cfg));
        // The network is wired on a thread while the rootfs is mounted.
        let pending = self.net_begin(rec, cfg)?;
        let mounted = rootfs::mount(&dir);
        let wired = match pending.map(|p| p.wait()).transpose() {
            Ok(w) => w,
            Err(e) => {
                self.net_teardown(&rec.id);
                if mounted.is_ok() {
                    let _ = rootfs::unmount(&dir);
                }
                return Err(e);
            }
        };
        if let Err(e) = mounted {
            if wired.is_some() {
                self.net_teardown(&rec.id);
            }
            return Err(e.into());
        }
        let r = self.launch_mounted(rec, cfg, &dir, size, wired);
        if r.is_err() {
            let _ = rootfs::unmount(&dir);
        }
        r
    }

    fn launch_mounted(
        &self,
        rec: &Record,
        cfg: &Config,
        dir: &Path,
        size: Option<(u16, u16)>,
        wired: Option<crate::network::Wired>,
    ) -> Result<Launched> {
        // `--network container:X`: X's namespace, hostname, hosts and
        // resolv.conf.
        let shared = match &cfg.spec.network {
            spec_gen::Network::Container(target) => Some(self.shared_network(target)?),
            _ => None,
        };
        let hostname = cfg.spec.hostname.clone().unwrap_or_else(|| {
            if let Some(s) = &shared {
                s.hostname.clone()
            } else if cfg.spec.network == spec_gen::Network::Host {
                nix::unistd::gethostname()
                    .map(|h| h.to_string_lossy().into_owned())
                    .unwrap_or_else(|_| rec.id[..12].to_string())
            } else {
                rec.id[..12].to_string()
            }
        });
        let r = self.launch_wired(
            rec,
            cfg,
            dir,
            size,
            &hostname,
            NetJoin {
                wired: wired.as_ref(),
                shared: shared.as_ref(),
            },
        );
        if r.is_err() && wired.is_some() {
            self.net_teardown(&rec.id);
        }
        // The container's init is in the namespace now (or nothing runs):
        // our fd may go; the sockets holding its ports go with whoever
        // supervises it.
        r.map(|mut l| {
            if let Some(w) = wired {
                l.ports = w.ports;
            }
            l
        })
    }

    fn launch_wired(
        &self,
        rec: &Record,
        cfg: &Config,
        dir: &Path,
        size: Option<(u16, u16)>,
        hostname: &str,
        join: NetJoin,
    ) -> Result<Launched> {
        let (wired, shared) = (join.wired, join.shared);
        let etc = dir.join("etc");
        std::fs::create_dir_all(&etc).map_err(io(&etc))?;
        if let Some(s) = shared {
            std::fs::write(etc.join("hostname"), format!("{hostname}\n")).map_err(io(&etc))?;
            for f in ["hosts", "resolv.conf"] {
                std::fs::copy(s.etc.join(f), etc.join(f)).map_err(io(&s.etc.join(f)))?;
            }
        } else {
            spec_gen::mounts::write_etc(
                &etc,
                hostname,
                &spec_gen::mounts::EtcNet {
                    host_network: cfg.spec.network == spec_gen::Network::Host,
                    ip: wired.map(|w| w.endpoint.ip),
                    nameserver: wired.and_then(|w| w.dns),
                    add_host: &cfg.spec.add_host,
                    dns: &cfg.spec.dns,
                    dns_search: &cfg.spec.dns_search,
                    dns_option: &cfg.spec.dns_option,
                },
            )?;
        }
        let spec = spec_gen::generate(
            &cfg.image_config,
            &cfg.spec,
            &rootfs::merged(dir),
            hostname,
            &spec_gen::Context {
                volumes_dir: self.root.join("volumes"),
                etc_dir: Some(etc),
                cgroups_path: Some(format!("/berth/{}", rec.id)),
                init_binary: if cfg.spec.init {
                    Some(self.init_binary()?)
                } else {
                    None
                },
                netns_path: wired
                    .map(|w| w.ns.path())
                    .or_else(|| shared.map(|s| s.path())),
            },
        )?;
        let config = dir.join("config.json");
        spec.save(&config).map_err(|e| Error::Io {
            path: config.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        if let Some(x) = self.external(cfg) {
            let (pid, master) = x.create_start(&rec.id, dir, cfg.spec.tty)?;
            if let (Some(m), Some((r, c))) = (&master, size) {
                berth_runtime::console::set_size(m.as_raw_fd(), r, c);
            }
            let cgroup = self.cgroup(&rec.id).ok_or_else(|| Error::State {
                id: rec.id.clone(),
                what: "cannot find its cgroup".into(),
            })?;
            return Ok(Launched {
                pid,
                pid_start: berth_runtime::state::process_start_time(pid).unwrap_or(0),
                cgroup,
                master,
                ports: Vec::new(),
            });
        }
        let mut console: Option<OwnedFd> = None;
        let mut console_fd: Option<OwnedFd> = None;
        if cfg.spec.tty {
            let (a, b) =
                std::os::unix::net::UnixStream::pair().map_err(io(Path::new("socketpair")))?;
            console = Some(OwnedFd::from(a));
            console_fd = Some(OwnedFd::from(b));
        }
        let created = create(
            &self.runtime,
            CreateOpts {
                id: rec.id.clone(),
                bundle: dir.to_path_buf(),
                console_fd,
                ..CreateOpts::default()
            },
        )?;
        let master = match &console {
            Some(s) => match berth_runtime::console::recv_fd(s.as_raw_fd()) {
                Ok(m) => Some(m),
                Err(e) => {
                    let _ = delete::delete(&self.runtime, &rec.id, true);
                    return Err(Error::Start {
                        id: rec.id.clone(),
                        msg: format!("receive the pty: {e}"),
                    });
                }
            },
            None => None,
        };
        if let (Some(m), Some((r, c))) = (&master, size) {
            berth_runtime::console::set_size(m.as_raw_fd(), r, c);
        }
        if let Err(e) = start::start(&self.runtime, &rec.id) {
            let _ = delete::delete(&self.runtime, &rec.id, true);
            return Err(e.into());
        }
        let pid_start =
            berth_runtime::state::process_start_time(created.pid).unwrap_or(created.rec.pid_start);
        Ok(Launched {
            pid: created.pid,
            pid_start,
            cgroup: created.cgroup,
            master,
            ports: Vec::new(),
        })
    }

    /// The container dir of `rec`, made again from its image's layers if
    /// its create was killed before the dir was in place.
    pub(crate) fn ensure_dir(&self, rec: &Record) -> Result<()> {
        if self.dir(&rec.id).exists() {
            return Ok(());
        }
        self.remake_dir(rec)
    }

    fn remake_dir(&self, rec: &Record) -> Result<()> {
        let gone = || Error::State {
            id: rec.id.clone(),
            what: format!("its image {} is gone; remove the container", rec.image_id),
        };
        let digest: berth_image::Digest = rec.image_id.parse().map_err(|_| gone())?;
        let image = self.images.image(&digest)?.ok_or_else(gone)?;
        let mut lower = Vec::with_capacity(image.layers.len());
        for l in image.layers.iter().rev() {
            if !self.store.has_layer(&l.chain_id) {
                return Err(Error::MissingLayer(l.chain_id.to_string()));
            }
            lower.push(self.store.layer_dir(&l.chain_id));
        }
        rootfs::prepare(&self.dir(&rec.id), &lower)?;
        Ok(())
    }

    /// `--network container:ID`: the running container's namespace.
    fn shared_network(&self, target: &str) -> Result<SharedNetwork> {
        let t = self.lookup(target)?;
        if t.status != Status::Running || !super::pid_alive(t.pid, t.pid_start) {
            return Err(Error::Invalid(format!(
                "cannot join network of a non running container: {}",
                t.name
            )));
        }
        let path = format!("/proc/{}/ns/net", t.pid);
        let ns = std::fs::File::open(&path).map_err(io(Path::new(&path)))?;
        let etc = self.dir(&t.id).join("etc");
        let hostname = std::fs::read_to_string(etc.join("hostname"))
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| t.id[..12].to_string());
        Ok(SharedNetwork {
            ns: ns.into(),
            hostname,
            etc,
        })
    }

    /// Records that `l` runs, supervised by this process.
    pub fn record_running(&self, rec: &Record, l: &Launched) -> Result<()> {
        let me = std::process::id() as i32;
        let ok = self.db.set_running(
            &rec.id,
            &Started {
                pid: l.pid,
                pid_start: l.pid_start,
                monitor_pid: me,
                monitor_start: berth_runtime::state::process_start_time(me).unwrap_or(0),
                boot_id: super::boot_id(),
                started_at: berth_runtime::state::now_rfc3339(),
            },
        )?;
        if !ok {
            return Err(Error::State {
                id: rec.id.clone(),
                what: "its start was cancelled (the berth that started it is gone)".into(),
            });
        }
        Ok(())
    }

    /// After the init `pid` exited with `code`: OOM check, runtime state
    /// and cgroup removal, unmount, the exit in the database, `--rm`.
    pub fn finish(&self, id: &str, pid: i32, code: i32, cgroup: Option<&Manager>) -> Result<()> {
        let oom_killed = cgroup.map(oom_killed).unwrap_or(false);
        let cfg = self.db.get(id)?.and_then(|r| Config::parse(&r).ok());
        cleanup_runtime(self, id, cfg.as_ref());
        let unmounted = rootfs::unmount(&self.dir(id));
        let exit = Exit {
            code,
            oom_killed,
            error: String::new(),
            finished_at: berth_runtime::state::now_rfc3339(),
        };
        self.db.set_exited(id, pid, &exit)?;
        if let Some(rec) = self.db.get(id)? {
            let cfg = Config::parse(&rec)?;
            if rec.status == Status::Exited && cfg.auto_remove {
                self.db.record_exit(id, &exit)?;
                remove_files(self, id)?;
                self.db.remove(id)?;
                self.remove_anonymous_volumes(&cfg);
            }
        }
        unmounted?;
        Ok(())
    }

    /// `berth kill`: like [`Engine::kill`], and when `sig` ends the
    /// container (SIGKILL or its stop signal) the restart policy leaves it
    /// stopped, as Docker does; other signals leave the policy alone. A
    /// start in progress (a restart) is waited for first.
    pub fn kill_by_user(&self, rec: &Record, sig: i32) -> Result<()> {
        let now = self.current(rec)?;
        if now.status != Status::Running {
            return Err(Error::NotRunning(now.name.clone()));
        }
        let fatal = sig == libc::SIGKILL
            || Config::parse(&now)
                .ok()
                .and_then(|c| kill::parse_signal(&c.stop_signal()).ok())
                == Some(sig);
        if fatal {
            self.mark_stopped_by_user(&now.id)?;
        }
        self.kill(&now, sig)
    }

    /// Sends `sig` to the container's init.
    pub fn kill(&self, rec: &Record, sig: i32) -> Result<()> {
        if rec.status != Status::Running || !pid_alive(rec.pid, rec.pid_start) {
            return Err(Error::NotRunning(rec.name.clone()));
        }
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(rec.pid),
            nix::sys::signal::Signal::try_from(sig).ok(),
        )
        .map_err(|e| Error::State {
            id: rec.id.clone(),
            what: format!("kill {}: {e}", rec.pid),
        })?;
        Ok(())
    }

    /// The stop signal, then SIGKILL after `timeout` seconds; returns once
    /// the exit is recorded. Stopping a stopped container is fine.
    pub fn stop(&self, rec: &Record, timeout: Option<u32>) -> Result<Record> {
        self.mark_stopped_by_user(&rec.id)?;
        // A restart that claimed its start before the mark goes on: stop
        // the container as it is now, not as the caller last saw it.
        let now = self.current(rec)?;
        let rec = &now;
        if rec.status != Status::Running {
            return Ok(rec.clone());
        }
        let cfg = Config::parse(rec)?;
        let sig = kill::parse_signal(&cfg.stop_signal())?;
        let timeout = timeout.or(cfg.stop_timeout).unwrap_or(STOP_TIMEOUT);
        self.thaw(rec, &cfg);
        let _ = self.kill(rec, sig);
        let deadline = Instant::now() + Duration::from_secs(timeout.into());
        while pid_alive(rec.pid, rec.pid_start) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if pid_alive(rec.pid, rec.pid_start) {
            let _ = kill::kill(&self.runtime, &rec.id, libc::SIGKILL, true);
            let _ = self.kill(rec, libc::SIGKILL);
        }
        self.wait_exit(rec, Some(Duration::from_secs(30)))
    }

    /// A frozen container (a commit killed while it was paused) takes no
    /// signals: thaw it first.
    fn thaw(&self, rec: &Record, cfg: &Config) {
        match self.external(cfg) {
            Some(x) => {
                let _ = x.resume(&rec.id, &self.dir(&rec.id));
            }
            None => {
                if self
                    .runtime
                    .load(&rec.id)
                    .is_ok_and(|c| c.status == berth_runtime::state::Status::Paused)
                {
                    let _ = berth_runtime::container::pause::resume(&self.runtime, &rec.id);
                }
            }
        }
    }

    /// Waits until the run recorded in `rec` has ended (and its exit is
    /// recorded), up to `limit`; returns the row as it is then.
    pub fn wait_exit(&self, rec: &Record, limit: Option<Duration>) -> Result<Record> {
        let start = Instant::now();
        loop {
            let cur = match self.db.get(&rec.id)? {
                Some(r) => r,
                // Removed (--rm): report the run as it ended.
                None => {
                    let mut r = rec.clone();
                    r.status = Status::Exited;
                    if let Some(e) = self.db.removed_exit(&rec.id)? {
                        r.exit_code = e.code;
                        r.oom_killed = e.oom_killed;
                        r.finished_at = e.finished_at;
                    }
                    return Ok(r);
                }
            };
            if cur.status == Status::Starting {
                self.refresh(cur)?;
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            if cur.status != Status::Running || (rec.pid != 0 && cur.pid != rec.pid) {
                return Ok(cur);
            }
            if !pid_alive(cur.pid, cur.pid_start) {
                let r = self.refresh(cur)?;
                if r.status != Status::Running {
                    return Ok(r);
                }
            }
            if let Some(l) = limit {
                if start.elapsed() > l {
                    return Err(Error::State {
                        id: rec.id.clone(),
                        what: "did not stop in time".into(),
                    });
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits (up to `limit`) until a `--rm` container's row is gone, so a
    /// foreground `run --rm` returns only once the container is removed.
    pub fn wait_removed(&self, id: &str, limit: Duration) -> Result<()> {
        let deadline = Instant::now() + limit;
        while self.db.get(id)?.is_some() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    /// Removes a container; a running one only with `force` (SIGKILL);
    /// its anonymous volumes too with `volumes`.
    pub fn remove(&self, rec: &Record, force: bool, volumes: bool) -> Result<()> {
        let mut rec = rec.clone();
        if super::restart::is_restarting(&rec) && !force {
            return Err(Error::Invalid(format!(
                "cannot remove container {}: container is restarting: stop the container before removing or force remove",
                rec.name
            )));
        }
        if force {
            // No restart policy brings it back from here on.
            self.mark_stopped_by_user(&rec.id)?;
        }
        // A restart already under way when it was marked may start it once
        // more: a forced removal stops that run too.
        for attempt in 0..3 {
            if rec.status == Status::Starting && force {
                rec = self.wait_started(&rec)?;
            }
            if rec.status == Status::Running || rec.status == Status::Starting {
                if !force {
                    return Err(Error::Running(rec.name.clone()));
                }
                if let Ok(cfg) = Config::parse(&rec) {
                    self.thaw(&rec, &cfg);
                }
                let _ = kill::kill(&self.runtime, &rec.id, libc::SIGKILL, true);
                let _ = self.kill(&rec, libc::SIGKILL);
                self.wait_exit(&rec, Some(Duration::from_secs(30)))?;
            }
            // The row is ours to remove only if nobody started it meanwhile.
            if self.db.claim_remove(&rec.id)? {
                break;
            }
            if !force || attempt == 2 {
                return Err(Error::Running(rec.name.clone()));
            }
            match self.db.get(&rec.id)? {
                Some(r) => rec = r,
                None => return Ok(()),
            }
        }
        let rec = &rec;
        cleanup_runtime(self, &rec.id, Config::parse(rec).ok().as_ref());
        remove_files(self, &rec.id)?;
        self.db.remove(&rec.id)?;
        if volumes {
            if let Ok(cfg) = Config::parse(rec) {
                self.remove_anonymous_volumes(&cfg);
            }
        }
        Ok(())
    }
}

/// Deletes the runtime's state for `id` (and its cgroup), if any.
pub fn cleanup_runtime(eng: &Engine, id: &str, cfg: Option<&Config>) {
    if cfg.is_some_and(|c| matches!(c.spec.network, spec_gen::Network::Bridge(_))) {
        eng.net_teardown(id);
    }
    if let Some(x) = cfg.and_then(|c| eng.external(c)) {
        x.delete(id, &eng.dir(id));
        // runc leaves the cgroup of a container killed outside it.
        if let Some(m) = eng.cgroup(id) {
            let _ = m.destroy();
        }
        return;
    }
    if eng.runtime.root.join(id).exists() {
        if let Err(e) = delete::delete(&eng.runtime, id, true) {
            berth_runtime::log::warn(&format!("delete runtime state of {id}: {e}"));
        }
    }
}

/// Unmounts and removes the container dir.
pub fn remove_files(eng: &Engine, id: &str) -> Result<()> {
    rootfs::remove(&eng.dir(id))?;
    Ok(())
}

/// Did the kernel's OOM killer kill a process of this cgroup? (v2
/// `memory.events`, v1 `memory.oom_control`, both count `oom_kill`.)
pub fn oom_killed(m: &Manager) -> bool {
    m.fs_paths().iter().any(|p| {
        ["memory.events", "memory.oom_control"].iter().any(|f| {
            std::fs::read_to_string(p.join(f))
                .map(|s| {
                    s.lines().any(|l| {
                        l.strip_prefix("oom_kill ")
                            .and_then(|n| n.trim().parse::<u64>().ok())
                            .is_some_and(|n| n > 0)
                    })
                })
                .unwrap_or(false)
        })
    })
}
