//! Mount options, the `Mounter` seam over mount(2), and path resolution that
//! never leaves the container's rootfs.

use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::mount::{MntFlags, MsFlags};
use nix::sys::stat::Mode;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Component, Path};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("mount option {0:?} is not supported")]
    Unsupported(String),
    #[error("{op} {path}: {source}")]
    Sys {
        op: &'static str,
        path: String,
        source: nix::Error,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

pub fn sys(op: &'static str, path: impl std::fmt::Display) -> impl FnOnce(nix::Error) -> Error {
    move |source| Error::Sys {
        op,
        path: path.to_string(),
        source,
    }
}

/// Parsed fstab-style options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub flags: MsFlags,
    /// Flags explicitly cleared ("rw", "suid", ...), needed for remounts.
    pub cleared: MsFlags,
    pub propagation: Vec<MsFlags>,
    pub data: Vec<String>,
    pub bind: bool,
    pub recursive: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            flags: MsFlags::empty(),
            cleared: MsFlags::empty(),
            propagation: Vec::new(),
            data: Vec::new(),
            bind: false,
            recursive: false,
        }
    }
}

impl Options {
    pub fn data_string(&self) -> Option<String> {
        if self.data.is_empty() {
            None
        } else {
            Some(self.data.join(","))
        }
    }
}

pub fn parse_options(opts: &[String]) -> Result<Options> {
    let mut o = Options::default();
    for opt in opts {
        let (set, clear): (MsFlags, MsFlags) = match opt.as_str() {
            "defaults" => (MsFlags::empty(), MsFlags::empty()),
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "remount" => (MsFlags::MS_REMOUNT, MsFlags::empty()),
            "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty()),
            "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "nostrictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME),
            "lazytime" => (MsFlags::MS_LAZYTIME, MsFlags::empty()),
            "nolazytime" => (MsFlags::empty(), MsFlags::MS_LAZYTIME),
            "silent" => (MsFlags::MS_SILENT, MsFlags::empty()),
            "loud" => (MsFlags::empty(), MsFlags::MS_SILENT),
            "bind" => {
                o.bind = true;
                (MsFlags::MS_BIND, MsFlags::empty())
            }
            "rbind" => {
                o.bind = true;
                o.recursive = true;
                (MsFlags::MS_BIND | MsFlags::MS_REC, MsFlags::empty())
            }
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable"
            | "runbindable" => {
                o.propagation.push(propagation(opt).expect("listed"));
                continue;
            }
            // runc's tmpfs helper option; harmless to ignore on an empty tmpfs.
            "tmpcopyup" => continue,
            "idmap" | "ridmap" => return Err(Error::Unsupported(opt.clone())),
            other => {
                o.data.push(other.to_string());
                continue;
            }
        };
        o.flags.insert(set);
        o.flags.remove(clear);
        o.cleared.insert(clear);
        o.cleared.remove(set);
    }
    Ok(o)
}

/// `rootfsPropagation` and propagation mount options.
pub fn propagation(name: &str) -> Option<MsFlags> {
    Some(match name {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        _ => return None,
    })
}

/// The seam over mount(2)/umount2(2) so the order of mounts can be checked
/// without root.
pub trait Mounter {
    fn mount(
        &self,
        source: Option<&str>,
        target: &str,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> nix::Result<()>;
    fn umount(&self, target: &str, flags: MntFlags) -> nix::Result<()>;
}

pub struct RealMounter;

impl Mounter for RealMounter {
    fn mount(
        &self,
        source: Option<&str>,
        target: &str,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> nix::Result<()> {
        nix::mount::mount(source, target, fstype, flags, data)
    }
    fn umount(&self, target: &str, flags: MntFlags) -> nix::Result<()> {
        nix::mount::umount2(target, flags)
    }
}

/// Flags the kernel locks on a mount (in a user namespace they cannot be
/// cleared by a remount), read back with statvfs so a remount keeps them.
pub fn locked_flags(path: &str) -> MsFlags {
    let Ok(st) = nix::sys::statvfs::statvfs(path) else {
        return MsFlags::empty();
    };
    use nix::sys::statvfs::FsFlags;
    let f = st.flags();
    let mut out = MsFlags::empty();
    for (a, b) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if f.contains(a) {
            out |= b;
        }
    }
    out
}

/// What to create at a mount destination when it is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
}

fn in_root_how(flags: OFlag) -> OpenHow {
    OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS)
}

/// Opens (O_PATH) `path` inside `root`, creating missing directories and,
/// with `Kind::File`, an empty final file. Every lookup happens with
/// RESOLVE_IN_ROOT, so symlinks (absolute or `..`) in the container's tree
/// are resolved as if `root` were `/` and can never reach the host.
pub fn open_in_root(root: &OwnedFd, path: &Path, kind: Kind) -> Result<OwnedFd> {
    open_in_root_depth(root, path, kind, 0)
}

/// Symlinks followed while creating a path, like the kernel's MAXSYMLINKS.
const MAX_LINKS: usize = 40;

fn open_in_root_depth(root: &OwnedFd, path: &Path, kind: Kind, depth: usize) -> Result<OwnedFd> {
    let shown = path.display().to_string();
    if depth > MAX_LINKS {
        return Err(Error::Sys {
            op: "resolve",
            path: shown,
            source: nix::Error::ELOOP,
        });
    }
    if path.components().any(|c| c == Component::ParentDir) {
        // Lexical ".." is resolved by the kernel inside the root too, but a
        // destination that spells it out is almost certainly a mistake.
        return Err(Error::Sys {
            op: "resolve",
            path: shown,
            source: nix::Error::EINVAL,
        });
    }
    let comps: Vec<&std::ffi::OsStr> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s),
            _ => None,
        })
        .collect();
    let mut cur = std::path::PathBuf::from("/");
    for (i, name) in comps.iter().enumerate() {
        let last = i + 1 == comps.len();
        let parent =
            nix::fcntl::openat2(root, &cur, in_root_how(OFlag::O_PATH | OFlag::O_DIRECTORY))
                .map_err(sys("open", cur.display()))?;
        cur.push(name);
        let want_dir = !last || kind == Kind::Dir;
        let flags = if want_dir {
            OFlag::O_PATH | OFlag::O_DIRECTORY
        } else {
            OFlag::O_PATH
        };
        match nix::fcntl::openat2(root, &cur, in_root_how(flags)) {
            Ok(fd) => {
                if last {
                    return Ok(fd);
                }
            }
            Err(nix::Error::ENOENT) => {
                // A dangling symlink: create what it points to, resolved
                // inside the root (as runc's securejoin does), then go on.
                if let Ok(target) = nix::fcntl::readlinkat(&parent, *name) {
                    let target = Path::new(&target);
                    let base = if target.is_absolute() {
                        std::path::PathBuf::from("/")
                    } else {
                        in_root_path(root, &parent)?
                    };
                    let mut next = lexical_join(&base, target);
                    for rest in &comps[i + 1..] {
                        next.push(rest);
                    }
                    return open_in_root_depth(root, &next, kind, depth + 1);
                }
                // Missing: create it in the (already safely resolved) parent.
                let r = if want_dir {
                    nix::sys::stat::mkdirat(&parent, *name, Mode::from_bits_truncate(0o755))
                } else {
                    nix::fcntl::openat(
                        &parent,
                        *name,
                        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
                        Mode::from_bits_truncate(0o644),
                    )
                    .map(drop)
                };
                match r {
                    Ok(()) | Err(nix::Error::EEXIST) => {}
                    Err(e) => return Err(sys("create", cur.display())(e)),
                }
                let fd = nix::fcntl::openat2(root, &cur, in_root_how(flags))
                    .map_err(sys("open", cur.display()))?;
                if last {
                    return Ok(fd);
                }
            }
            Err(e) => return Err(sys("open", cur.display())(e)),
        }
    }
    nix::fcntl::openat2(root, "/", in_root_how(OFlag::O_PATH | OFlag::O_DIRECTORY))
        .map_err(sys("open", shown))
}

/// Where an fd inside the root is, as a path from the root.
fn in_root_path(root: &OwnedFd, fd: &OwnedFd) -> Result<std::path::PathBuf> {
    let r = std::fs::read_link(fd_path(root)).map_err(|e| Error::Sys {
        op: "readlink",
        path: fd_path(root),
        source: nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
    })?;
    let p = std::fs::read_link(fd_path(fd)).map_err(|e| Error::Sys {
        op: "readlink",
        path: fd_path(fd),
        source: nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
    })?;
    Ok(Path::new("/").join(p.strip_prefix(&r).unwrap_or(Path::new(""))))
}

/// `base` + `rel` with "." and ".." applied lexically, never above "/".
fn lexical_join(base: &Path, rel: &Path) -> std::path::PathBuf {
    let mut out = std::path::PathBuf::from("/");
    for c in base.components().chain(rel.components()) {
        match c {
            Component::Normal(s) => out.push(s),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// The procfs path that stands for an open fd, to use as a mount target.
pub fn fd_path(fd: &impl AsFd) -> String {
    format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd())
}

/// Opens a directory as the root for `open_in_root`.
pub fn open_root(path: &Path) -> Result<OwnedFd> {
    nix::fcntl::open(
        path,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(sys("open", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn options() {
        let o = parse_options(&s(&[
            "rbind", "ro", "nosuid", "rslave", "mode=755", "size=1k",
        ]))
        .unwrap();
        assert!(o.bind && o.recursive);
        assert!(o
            .flags
            .contains(MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_BIND));
        assert_eq!(o.propagation, vec![MsFlags::MS_SLAVE | MsFlags::MS_REC]);
        assert_eq!(o.data_string().unwrap(), "mode=755,size=1k");
        let o = parse_options(&s(&["ro", "rw"])).unwrap();
        assert!(!o.flags.contains(MsFlags::MS_RDONLY));
        assert!(o.cleared.contains(MsFlags::MS_RDONLY));
        assert!(parse_options(&s(&["idmap"])).is_err());
    }

    #[test]
    fn symlinks_cannot_escape_the_root() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        let outside = t.path().join("outside");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../outside", root.join("rel")).unwrap();
        let rfd = open_root(&root).unwrap();
        open_in_root(&rfd, Path::new("/abs/x/y"), Kind::Dir).unwrap();
        open_in_root(&rfd, Path::new("/rel/f"), Kind::File).unwrap();
        // Both were created inside the root, never outside.
        assert!(std::fs::read_dir(&outside).unwrap().next().is_none());
        assert!(root
            .join(outside.strip_prefix("/").unwrap())
            .join("x/y")
            .is_dir());
        assert!(root.join("outside/f").is_file());
    }

    #[test]
    fn dotdot_is_rejected() {
        let t = tempfile::tempdir().unwrap();
        let rfd = open_root(t.path()).unwrap();
        assert!(open_in_root(&rfd, Path::new("/a/../../b"), Kind::Dir).is_err());
    }
}
