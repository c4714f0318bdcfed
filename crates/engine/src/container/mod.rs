//! Containers: create, start (attached or under a monitor), stop, kill,
//! remove, and the truth about their state. A verb a file; this file holds
//! the shared pieces: [`Engine`] (the store, both databases and the
//! runtime), the stored create options and liveness checks.

pub mod attach;
pub mod attached;
pub mod commit;
mod copyup;
pub mod cp;
pub mod create;
pub mod exec;
pub mod external;
pub mod lifecycle;
pub mod logs;
pub mod monitor;
pub mod names;
pub mod restart;
pub mod stats;
pub mod update;

use crate::db::{self, ContainerDb, Record, Status};
use crate::{rootfs, spec_gen};
use berth_image::Store;
use berth_runtime::Runtime;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Db(#[from] db::Error),
    #[error(transparent)]
    Images(#[from] berth_image::db::Error),
    #[error(transparent)]
    Store(#[from] berth_image::store::Error),
    #[error(transparent)]
    Rootfs(#[from] rootfs::Error),
    #[error(transparent)]
    Spec(#[from] spec_gen::Error),
    #[error(transparent)]
    Runtime(#[from] berth_runtime::container::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("layer {0} of the image is missing from the store; pull the image again")]
    MissingLayer(String),
    #[error("container {0} is not running")]
    NotRunning(String),
    #[error("cannot remove container {0}: container is running: stop the container before removing or force remove")]
    Running(String),
    #[error("container {id}: {what}")]
    State { id: String, what: String },
    #[error("starting container {id}: {msg}")]
    Start { id: String, msg: String },
    #[error("{0}")]
    Network(String),
    #[error("network {0} not found")]
    NoNetwork(String),
    #[error("network with name {0} already exists")]
    NetworkExists(String),
}

pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What a container was created with, stored as JSON with its row.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Config {
    pub spec: spec_gen::Options,
    /// The image config JSON as it was at create (the image may be removed
    /// or retagged later).
    pub image_config: String,
    pub auto_remove: bool,
    pub labels: BTreeMap<String, String>,
    /// `--stop-signal`, else the image's StopSignal, else SIGTERM.
    pub stop_signal: Option<String>,
    /// `--stop-timeout` in seconds (default 10).
    pub stop_timeout: Option<u32>,
    /// `--log-opt max-size` in bytes (0: no rotation) and `max-file`.
    pub log_max_size: u64,
    pub log_max_file: u32,
    /// Keep stdin open (`-i`); detached containers get /dev/null for now.
    pub interactive: bool,
    /// `--runtime`: a runc-compatible binary to use instead of the
    /// in-process berth-runtime.
    #[serde(default)]
    pub runtime: Option<String>,
    /// `--restart`.
    #[serde(default)]
    pub restart: restart::RestartPolicy,
}

impl Config {
    pub fn parse(rec: &Record) -> Result<Config> {
        serde_json::from_str(&rec.options).map_err(|e| Error::State {
            id: rec.id.clone(),
            what: format!("stored options are not valid: {e}"),
        })
    }

    /// The image config's `config` object.
    pub fn image(&self) -> serde_json::Value {
        serde_json::from_str::<serde_json::Value>(&self.image_config)
            .ok()
            .and_then(|v| v.get("config").cloned())
            .unwrap_or(serde_json::Value::Null)
    }

    pub fn stop_signal(&self) -> String {
        self.stop_signal
            .clone()
            .or_else(|| self.image()["StopSignal"].as_str().map(str::to_string))
            .unwrap_or_else(|| "SIGTERM".into())
    }
}

/// The store, the image and container databases and the runtime.
pub struct Engine {
    pub root: PathBuf,
    pub store: Store,
    pub images: berth_image::db::Db,
    pub db: ContainerDb,
    pub runtime: Runtime,
}

impl Engine {
    pub fn open(root: &Path) -> Result<Engine> {
        let store = Store::open(root)?;
        let images = berth_image::db::Db::open(root)?;
        let db = ContainerDb::open(root)?;
        Ok(Engine {
            root: root.to_path_buf(),
            store,
            images,
            db,
            runtime: Runtime::new(root.join("runtime")),
        })
    }

    /// The external runtime `cfg` asks for, if any.
    pub fn external(&self, cfg: &Config) -> Option<external::External> {
        cfg.runtime
            .as_deref()
            .map(|r| external::External::new(r, &self.root))
    }

    /// The container's cgroup (`/berth/<id>`, the path every spec berth
    /// writes names, whichever runtime made it).
    pub fn cgroup(&self, id: &str) -> Option<berth_runtime::cgroups::Manager> {
        berth_runtime::cgroups::Manager::new(Some(&format!("/berth/{id}")), id).ok()
    }

    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join("containers").join(id)
    }

    pub fn log_path(&self, id: &str) -> PathBuf {
        self.dir(id).join(format!("{id}-json.log"))
    }

    /// Finds a container and brings its state up to date (see [`refresh`]).
    pub fn lookup(&self, s: &str) -> Result<Record> {
        let rec = self.db.find(s)?;
        self.refresh(rec)
    }

    /// Every container, with its state up to date.
    pub fn list(&self) -> Result<Vec<Record>> {
        let mut out = Vec::new();
        for r in self.db.list()? {
            out.push(self.refresh(r)?);
        }
        Ok(out)
    }

    /// A `running` row whose init is gone and whose monitor is gone too
    /// (killed, or the host rebooted) is recorded as exited here, and the
    /// runtime state, cgroup and mount are cleaned up; nobody else would.
    pub fn refresh(&self, rec: Record) -> Result<Record> {
        if rec.status == Status::Starting {
            let claimer_alive =
                rec.boot_id == boot_id() && pid_alive(rec.monitor_pid, rec.monitor_start);
            if !claimer_alive {
                self.db
                    .undo_start(&rec.id, "the berth that was starting it is gone")?;
                // Its lease and published ports, if it got that far.
                self.net_teardown(&rec.id);
                return Ok(self.db.get(&rec.id)?.unwrap_or(rec));
            }
            return Ok(rec);
        }
        if rec.status != Status::Running {
            return Ok(rec);
        }
        let same_boot = rec.boot_id == boot_id();
        if same_boot && pid_alive(rec.pid, rec.pid_start) {
            return Ok(rec);
        }
        if same_boot && rec.monitor_pid > 0 && pid_alive(rec.monitor_pid, rec.monitor_start) {
            // The monitor records the exit in a moment; wait for it briefly.
            for _ in 0..200 {
                std::thread::sleep(std::time::Duration::from_millis(5));
                if let Some(r) = self.db.get(&rec.id)? {
                    if r.status != Status::Running || r.pid != rec.pid {
                        return Ok(r);
                    }
                }
                if !pid_alive(rec.monitor_pid, rec.monitor_start) {
                    break;
                }
            }
        }
        let exit = db::Exit {
            code: 255,
            oom_killed: false,
            error: "the container's monitor is gone; its exit code is unknown".into(),
            finished_at: berth_runtime::state::now_rfc3339(),
        };
        lifecycle::cleanup_runtime(self, &rec.id, Config::parse(&rec).ok().as_ref());
        let _ = rootfs::unmount(&self.dir(&rec.id));
        self.db.set_exited(&rec.id, rec.pid, &exit)?;
        let rec = self.db.get(&rec.id)?.unwrap_or(rec);
        if rec.status == Status::Exited {
            if let Ok(cfg) = Config::parse(&rec) {
                if cfg.auto_remove {
                    self.db.record_exit(&rec.id, &exit)?;
                    lifecycle::remove_files(self, &rec.id)?;
                    self.db.remove(&rec.id)?;
                    self.remove_anonymous_volumes(&cfg);
                }
            }
        }
        Ok(rec)
    }
}

/// A unix socket path for `name` in `dir` that fits in sun_path whatever
/// the store's path: `/proc/self/fd/<dirfd>/<name>`; keep the fd while the
/// path is used.
pub fn socket_path(dir: &Path, name: &str) -> Result<(std::os::fd::OwnedFd, PathBuf)> {
    use std::os::fd::AsRawFd;
    let fd = nix::fcntl::open(
        dir,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| io(dir)(e.into()))?;
    let p = PathBuf::from(format!("/proc/self/fd/{}/{name}", fd.as_raw_fd()));
    Ok((fd, p))
}

/// Is `pid` the same live process that started at `start` (clock ticks)?
pub fn pid_alive(pid: i32, start: u64) -> bool {
    pid > 0 && berth_runtime::state::process_start_time(pid) == Some(start)
}

/// This kernel boot's id: pids from another boot are meaningless.
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// A new container id: 64 random hex digits.
pub fn new_id() -> Result<String> {
    use std::io::Read;
    let mut b = [0u8; 32];
    let path = Path::new("/dev/urandom");
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(io(path))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// berth-init (crates/engine/init), built static by build.rs.
const INIT_BINARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/berth-init"));
/// berth-monitor (crates/monitor), built static by build.rs.
const MONITOR_BINARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/berth-monitor"));

/// An embedded binary on disk as `<root>/init/<name>-<tag>`, written once:
/// synced, then renamed into place, so a crash never leaves a short one
/// under the final name (one of the wrong size is written again).
pub(crate) fn embedded_binary(root: &Path, name: &str, tag: &str, bytes: &[u8]) -> Result<PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let dir = root.join("init");
    let path = dir.join(format!("{name}-{tag}"));
    if std::fs::metadata(&path).is_ok_and(|m| m.len() == bytes.len() as u64) {
        return Ok(path);
    }
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    // Said now, not as an exec failure once the container runs.
    if nix::sys::statvfs::statvfs(&dir)
        .is_ok_and(|st| st.flags().contains(nix::sys::statvfs::FsFlags::ST_NOEXEC))
    {
        return Err(Error::Invalid(format!(
            "{} is on a noexec mount: berth runs its {name} from there; use a --root that allows exec",
            dir.display()
        )));
    }
    let tmp = dir.join(format!(".tmp-{name}-{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o755)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(io(&tmp))?;
    drop(f);
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).map_err(io(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(io(&path))?;
    Ok(path)
}

/// berth-monitor on disk (see [`embedded_binary`]).
pub(crate) fn monitor_binary(root: &Path) -> Result<PathBuf> {
    embedded_binary(
        root,
        "berth-monitor",
        env!("BERTH_MONITOR_TAG"),
        MONITOR_BINARY,
    )
}

impl Engine {
    /// berth-init on disk (`<root>/init/berth-init-<hash>`), written once.
    pub fn init_binary(&self) -> Result<PathBuf> {
        let hash = berth_image::digest::Digest::sha256_of(INIT_BINARY);
        embedded_binary(&self.root, "berth-init", &hash.hex()[..16], INIT_BINARY)
    }
}

/// Bytes of the regular files under `path` (not following symlinks).
pub fn dir_size(path: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&p) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            } else if m.is_file() {
                total += m.len();
            }
        }
    }
    total
}

impl Engine {
    /// The size of the container's writable layer.
    pub fn upper_size(&self, id: &str) -> u64 {
        dir_size(&rootfs::upper(&self.dir(id)))
    }
}
