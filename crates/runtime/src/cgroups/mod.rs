//! Control groups: layout detection (v1, hybrid, unified v2), path resolution and a
//! [`Manager`] that creates a container's cgroup, applies `linux.resources`, moves
//! processes in, freezes and removes it.
//!
//! Translation of the OCI resources follows runc (`libcontainer/cgroups/fs` for v1,
//! `fs2` for v2). On a hybrid host every resource goes to the v1 controllers; the
//! cgroup2 directory is created and joined too, like runc does.

mod devices_bpf;
mod v1;
mod v2;

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;
use std::{fs, thread};

use oci_spec::runtime::LinuxResources;

/// Errors of the cgroup module. Messages name the file or path and the value involved.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("failed to write {value:?} to {path}: {source}")]
    Write {
        path: PathBuf,
        value: String,
        source: io::Error,
    },
    #[error("failed to create cgroup directory {path}: {source}")]
    Mkdir { path: PathBuf, source: io::Error },
    #[error("failed to remove cgroup directory {path}: {source}")]
    Rmdir { path: PathBuf, source: io::Error },
    #[error("no cgroup or cgroup2 filesystem is mounted (according to {0})")]
    NoCgroupMounts(String),
    #[error("malformed line in {file}: {line:?}")]
    Parse { file: String, line: String },
    #[error("cgroup controller {controller:?} is not mounted (needed for {setting})")]
    ControllerNotMounted { controller: String, setting: String },
    #[error("cgroup controller {controller:?} is not enabled in {path} (needed for {setting})")]
    ControllerNotAvailable {
        controller: String,
        path: PathBuf,
        setting: String,
    },
    #[error("systemd cgroup paths (slice:prefix:name) are not supported: {0:?}")]
    SystemdNotSupported(String),
    #[error("invalid cgroups path {path:?}: {reason}")]
    InvalidPath { path: String, reason: String },
    #[error(
        "cannot resolve relative cgroups path {path:?}: no {hierarchy} entry in /proc/self/cgroup"
    )]
    OwnCgroupNotFound { hierarchy: String, path: String },
    #[error("invalid {setting} value {value}: {reason}")]
    InvalidValue {
        setting: String,
        value: String,
        reason: String,
    },
    #[error("{setting} = {value} cannot be applied: {reason}")]
    Unsupported {
        setting: String,
        value: String,
        reason: String,
    },
    #[error("unable to set memory limit to {limit} in {path} (current usage: {usage}, peak usage: {peak})")]
    MemoryLimitTooLow {
        path: PathBuf,
        limit: i64,
        usage: String,
        peak: String,
    },
    #[error("timed out waiting for {path} to become {state}")]
    FreezeTimeout { path: PathBuf, state: String },
    #[error("bpf {op} failed for {path}: {source}{log}")]
    Bpf {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
        log: String,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

/// Which cgroup hierarchies are mounted where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// Only v1 hierarchies: controller (or `name=xxx`) -> mount point.
    V1 {
        controllers: BTreeMap<String, PathBuf>,
    },
    /// v1 controllers plus a cgroup2 mount (usually `/sys/fs/cgroup/unified`).
    Hybrid {
        controllers: BTreeMap<String, PathBuf>,
        unified: PathBuf,
    },
    /// Pure cgroup2.
    V2 { root: PathBuf },
}

const V1_CONTROLLERS: &[&str] = &[
    "blkio",
    "cpu",
    "cpuacct",
    "cpuset",
    "devices",
    "freezer",
    "hugetlb",
    "memory",
    "misc",
    "net_cls",
    "net_prio",
    "perf_event",
    "pids",
    "rdma",
    "debug",
];

/// Detects the layout from `/proc/self/mountinfo`.
pub fn detect() -> Result<Layout> {
    let file = "/proc/self/mountinfo";
    let text = fs::read_to_string(file).map_err(|source| Error::Read {
        path: file.into(),
        source,
    })?;
    detect_from(&text)
}

/// Detects the layout from the text of a mountinfo file. The first mount of each
/// hierarchy wins. Named-only v1 hierarchies (`name=systemd`) next to a cgroup2 mount
/// count as pure v2.
pub fn detect_from(mountinfo: &str) -> Result<Layout> {
    let mut v1: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut v2: Option<PathBuf> = None;
    for line in mountinfo.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let Some(mount_point) = pre.split(' ').nth(4) else {
            return Err(Error::Parse {
                file: "mountinfo".into(),
                line: line.into(),
            });
        };
        let mut post = post.split(' ');
        let (fstype, _source, opts) = (post.next(), post.next(), post.next().unwrap_or(""));
        match fstype {
            Some("cgroup2") => {
                v2.get_or_insert_with(|| unescape_mount(mount_point));
            }
            Some("cgroup") => {
                for opt in opts.split(',') {
                    if V1_CONTROLLERS.contains(&opt) || opt.starts_with("name=") {
                        v1.entry(opt.to_string())
                            .or_insert_with(|| unescape_mount(mount_point));
                    }
                }
            }
            _ => {}
        }
    }
    let real_v1 = v1.keys().any(|k| !k.starts_with("name="));
    match (v2, real_v1) {
        (Some(unified), true) => Ok(Layout::Hybrid {
            controllers: v1,
            unified,
        }),
        (Some(root), false) => Ok(Layout::V2 { root }),
        (None, _) if !v1.is_empty() => Ok(Layout::V1 { controllers: v1 }),
        (None, _) => Err(Error::NoCgroupMounts("mountinfo".into())),
    }
}

/// Undoes the octal escapes (`\040` for a space) of mountinfo fields.
fn unescape_mount(s: &str) -> PathBuf {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    use std::os::unix::ffi::OsStringExt;
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

/// One line of /proc/self/cgroup: the controllers of the hierarchy (empty for cgroup2)
/// and the process's cgroup in it.
struct OwnCgroup {
    controllers: Vec<String>,
    path: String,
}

fn parse_own_cgroups(text: &str) -> Result<Vec<OwnCgroup>> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut parts = line.splitn(3, ':');
        let (Some(_id), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(Error::Parse {
                file: "/proc/self/cgroup".into(),
                line: line.into(),
            });
        };
        let controllers = ctrls
            .split(',')
            .filter(|c| !c.is_empty())
            .map(str::to_string)
            .collect();
        out.push(OwnCgroup {
            controllers,
            path: path.to_string(),
        });
    }
    Ok(out)
}

/// `linux.cgroupsPath` after validation: absolute, or relative to the caller's cgroup.
enum CgroupsPath {
    Absolute(String),
    Relative(String),
}

impl CgroupsPath {
    fn parse(cgroups_path: Option<&str>, container_id: &str) -> Result<CgroupsPath> {
        let raw = cgroups_path.unwrap_or("").trim();
        if raw.is_empty() {
            if container_id.is_empty()
                || container_id.contains('/')
                || container_id.starts_with('.')
            {
                return Err(Error::InvalidPath {
                    path: format!("/berth/{container_id}"),
                    reason: "the container id cannot be used as a cgroup name".into(),
                });
            }
            return Ok(CgroupsPath::Absolute(format!("/berth/{container_id}")));
        }
        if raw.contains(':') {
            return Err(Error::SystemdNotSupported(raw.into()));
        }
        let comps: Vec<&str> = raw.split('/').filter(|c| !c.is_empty()).collect();
        if let Some(bad) = comps.iter().find(|c| **c == "." || **c == "..") {
            return Err(Error::InvalidPath {
                path: raw.into(),
                reason: format!("component {bad:?} is not allowed"),
            });
        }
        if comps.is_empty() {
            return Err(Error::InvalidPath {
                path: raw.into(),
                reason: "the root cgroup cannot be a container's cgroup".into(),
            });
        }
        let joined = comps.join("/");
        Ok(if raw.starts_with('/') {
            CgroupsPath::Absolute(format!("/{joined}"))
        } else {
            CgroupsPath::Relative(joined)
        })
    }

    /// The absolute cgroup path in a hierarchy whose own-cgroup line is `own`.
    fn resolve(&self, own: Option<&str>, hierarchy: &str) -> Result<String> {
        match self {
            CgroupsPath::Absolute(p) => Ok(p.clone()),
            CgroupsPath::Relative(rel) => {
                let own = own.ok_or_else(|| Error::OwnCgroupNotFound {
                    hierarchy: hierarchy.into(),
                    path: rel.clone(),
                })?;
                let own = own.trim_end_matches('/');
                Ok(format!("{own}/{rel}"))
            }
        }
    }
}

/// The directory of cgroup `path` (absolute cgroup path) in a hierarchy mounted at `mount`.
fn dir_in(mount: &Path, path: &str) -> PathBuf {
    mount.join(path.trim_start_matches('/'))
}

/// What every backend implements; the [`Manager`] dispatches over [`Backend`]s.
trait Backend {
    fn create(&self) -> Result<()>;
    fn apply(&self, r: &LinuxResources) -> Result<()>;
    fn add_pid(&self, pid: i32) -> Result<()>;
    fn pids(&self) -> Result<Vec<i32>>;
    fn freeze(&self) -> Result<()>;
    fn thaw(&self) -> Result<()>;
    fn is_frozen(&self) -> Result<bool>;
    fn destroy(&self) -> Result<()>;
    fn fs_paths(&self) -> Vec<PathBuf>;
}

enum Inner {
    V1(v1::V1),
    V2(v2::V2),
}

impl Inner {
    fn backend(&self) -> &dyn Backend {
        match self {
            Inner::V1(b) => b,
            Inner::V2(b) => b,
        }
    }
}

/// The `rdma.max` line for one device (same syntax on v1 and v2).
fn rdma_limit(dev: &str, l: &oci_spec::runtime::LinuxRdma) -> String {
    let mut v = dev.to_string();
    if let Some(h) = l.hca_handles() {
        v += &format!(" hca_handle={h}");
    }
    if let Some(o) = l.hca_objects() {
        v += &format!(" hca_object={o}");
    }
    v
}

/// A container's cgroup in every mounted hierarchy.
pub struct Manager {
    layout: Layout,
    path: String,
    inner: Inner,
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager")
            .field("path", &self.path)
            .field("dirs", &self.fs_paths())
            .finish()
    }
}

impl Manager {
    /// `cgroups_path` as in config.json `linux.cgroupsPath`: absolute = relative to each
    /// hierarchy's root; relative = relative to the calling process's own cgroup (from
    /// /proc/self/cgroup, per hierarchy); empty/None = `/berth/<container_id>`.
    /// The systemd form `slice:prefix:name` gives [`Error::SystemdNotSupported`].
    pub fn new(cgroups_path: Option<&str>, container_id: &str) -> Result<Manager> {
        // Validate first: no need to read /proc for a path we refuse anyway.
        CgroupsPath::parse(cgroups_path, container_id)?;
        let layout = detect()?;
        let file = "/proc/self/cgroup";
        let own = fs::read_to_string(file).map_err(|source| Error::Read {
            path: file.into(),
            source,
        })?;
        Manager::with_layout(layout, cgroups_path, container_id, &own)
    }

    /// Like [`Manager::new`] with an explicit layout and /proc/self/cgroup text.
    pub fn with_layout(
        layout: Layout,
        cgroups_path: Option<&str>,
        container_id: &str,
        self_cgroup: &str,
    ) -> Result<Manager> {
        let spec = CgroupsPath::parse(cgroups_path, container_id)?;
        let own = parse_own_cgroups(self_cgroup)?;
        let own_v2 = own
            .iter()
            .find(|o| o.controllers.is_empty())
            .map(|o| o.path.as_str());
        let (inner, path) = match &layout {
            Layout::V2 { root } => {
                let path = spec.resolve(own_v2, "cgroup2")?;
                (Inner::V2(v2::V2::new(root.clone(), &path)), path)
            }
            Layout::V1 { controllers } | Layout::Hybrid { controllers, .. } => {
                // Group controllers sharing a mount (e.g. cpu,cpuacct) into one hierarchy.
                let mut by_mount: BTreeMap<&Path, Vec<String>> = BTreeMap::new();
                for (ctrl, mount) in controllers {
                    by_mount
                        .entry(mount.as_path())
                        .or_default()
                        .push(ctrl.clone());
                }
                let mut hierarchies = Vec::new();
                for (mount, ctrls) in by_mount {
                    let own_path = own
                        .iter()
                        .find(|o| o.controllers.iter().any(|c| ctrls.contains(c)))
                        .map(|o| o.path.as_str());
                    let path = spec.resolve(own_path, &ctrls.join(","))?;
                    hierarchies.push(v1::Hierarchy {
                        dir: dir_in(mount, &path),
                        mount: mount.to_path_buf(),
                        controllers: ctrls,
                        path,
                    });
                }
                let unified = match &layout {
                    Layout::Hybrid { unified, .. } => {
                        let p = spec.resolve(own_v2, "cgroup2")?;
                        Some(dir_in(unified, &p))
                    }
                    _ => None,
                };
                let primary = hierarchies
                    .iter()
                    .find(|h| h.controllers.iter().any(|c| c == "memory"))
                    .or(hierarchies.first())
                    .map(|h| h.path.clone())
                    .unwrap_or_default();
                (
                    Inner::V1(v1::V1 {
                        hierarchies,
                        unified,
                    }),
                    primary,
                )
            }
        };
        Ok(Manager {
            layout,
            path,
            inner,
        })
    }

    /// Creates the cgroup (mkdir -p) in every hierarchy. v2: enables the available
    /// controllers in the ancestors' cgroup.subtree_control; v1 cpuset: fills empty
    /// cpuset.cpus/mems from the parent.
    pub fn create(&self) -> Result<()> {
        self.inner.backend().create()
    }

    pub fn apply_resources(&self, r: &LinuxResources) -> Result<()> {
        self.inner.backend().apply(r)
    }

    /// Moves `pid` into the cgroup of every hierarchy (hybrid: v1 and cgroup2).
    pub fn add_pid(&self, pid: i32) -> Result<()> {
        self.inner.backend().add_pid(pid)
    }

    /// Every process of the cgroup and its descendants, sorted; empty if it is gone.
    pub fn pids(&self) -> Result<Vec<i32>> {
        self.inner.backend().pids()
    }

    pub fn freeze(&self) -> Result<()> {
        self.inner.backend().freeze()
    }

    pub fn thaw(&self) -> Result<()> {
        self.inner.backend().thaw()
    }

    pub fn is_frozen(&self) -> Result<bool> {
        self.inner.backend().is_frozen()
    }

    /// Removes the container's directories (children first); Ok if already gone.
    /// Parents such as `/berth` are never removed.
    pub fn destroy(&self) -> Result<()> {
        self.inner.backend().destroy()
    }

    /// The resolved cgroup path, e.g. `/berth/abc`. With a relative cgroupsPath the
    /// path can differ per hierarchy: this is the one of the memory hierarchy (v1) or
    /// of cgroup2 (v2); [`Manager::fs_paths`] has them all.
    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The concrete directories, one per hierarchy (plus the cgroup2 one on hybrid).
    pub fn fs_paths(&self) -> Vec<PathBuf> {
        self.inner.backend().fs_paths()
    }

    /// The cgroup2 directory, for clone3(CLONE_INTO_CGROUP); pure v2 only.
    pub fn v2_dir(&self) -> Option<PathBuf> {
        match &self.inner {
            Inner::V2(b) => Some(b.dir.clone()),
            Inner::V1(_) => None,
        }
    }
}

// ---- file helpers shared by the backends ----

/// Reads a file; `Ok(None)` if it does not exist.
fn read_opt(path: &Path) -> Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Read {
            path: path.into(),
            source,
        }),
    }
}

fn read(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.into(),
        source,
    })
}

/// Writes `value` to an existing control file (no O_CREAT: cgroupfs has no such thing).
fn write_raw(path: &Path, value: &str) -> io::Result<()> {
    #[cfg(test)]
    if let Some(r) = fake::with(|k| k.write(path, value)).flatten() {
        return r;
    }
    let mut f = fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)?;
    f.write_all(value.as_bytes())
}

fn write(dir: &Path, file: &str, value: &str) -> Result<()> {
    let path = dir.join(file);
    write_raw(&path, value).map_err(|source| Error::Write {
        path,
        value: value.into(),
        source,
    })
}

/// mkdir -p, one level at a time.
fn mkdir_p(dir: &Path) -> Result<()> {
    let mut missing = Vec::new();
    let mut cur = Some(dir);
    while let Some(d) = cur {
        if d.is_dir() {
            break;
        }
        missing.push(d);
        cur = d.parent();
    }
    for d in missing.into_iter().rev() {
        match fs::create_dir(d) {
            Ok(()) => {
                #[cfg(test)]
                fake::with(|k| k.mkdir(d));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(source) => {
                return Err(Error::Mkdir {
                    path: d.into(),
                    source,
                })
            }
        }
    }
    Ok(())
}

/// Removes `dir` and the cgroups below it, deepest first. EBUSY (tasks still exiting)
/// is retried for ~0.6 s; a directory that is already gone is fine.
fn remove_tree(dir: &Path) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(Error::Read {
                path: dir.into(),
                source,
            })
        }
    };
    for entry in entries.flatten() {
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            remove_tree(&entry.path())?;
        }
    }
    #[cfg(test)]
    fake::with(|k| k.rmdir(dir));
    let mut delay = Duration::from_millis(10);
    for attempt in 0.. {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempt < 6 => {
                thread::sleep(delay);
                delay *= 2;
            }
            Err(source) => {
                return Err(Error::Rmdir {
                    path: dir.into(),
                    source,
                })
            }
        }
    }
    unreachable!()
}

/// The pids in `dir`/cgroup.procs and in every cgroup below it.
fn collect_pids(dir: &Path, out: &mut Vec<i32>) -> Result<()> {
    let procs = dir.join("cgroup.procs");
    let Some(text) = read_opt(&procs)? else {
        return Ok(());
    };
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let pid = line.parse().map_err(|_| Error::Parse {
            file: procs.display().to_string(),
            line: line.into(),
        })?;
        out.push(pid);
    }
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                collect_pids(&entry.path(), out)?;
            }
        }
    }
    Ok(())
}

fn sorted_pids(dir: &Path) -> Result<Vec<i32>> {
    let mut pids = Vec::new();
    collect_pids(dir, &mut pids)?;
    pids.sort_unstable();
    pids.dedup();
    Ok(pids)
}

/// Hugepage size as used in hugetlb file names ("2MB"), validated.
fn hugepage_size(s: &str) -> Result<&str> {
    let ok = s.len() > 2
        && s.ends_with('B')
        && s.chars().all(|c| c.is_ascii_alphanumeric())
        && s.starts_with(|c: char| c.is_ascii_digit());
    if ok {
        Ok(s)
    } else {
        Err(Error::InvalidValue {
            setting: "hugepageLimits.pageSize".into(),
            value: s.into(),
            reason: "expected a size like 2MB or 1GB".into(),
        })
    }
}

/// A test-only "kernel" for fake cgroupfs trees in a tempdir: it creates the control
/// files on mkdir, removes them before rmdir, and can intercept writes and bpf.
#[cfg(test)]
pub(crate) mod fake;

#[cfg(test)]
pub(crate) mod tests;
