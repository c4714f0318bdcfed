//! A walk of a container's overlay upper dir by directory fds: every entry
//! is looked at with `fstatat(AT_SYMLINK_NOFOLLOW)` in its parent's fd and
//! opened (if at all) with `O_NOFOLLOW`, so a symlink the container put
//! anywhere in the tree is recorded, never followed. Names are visited in
//! byte order, a directory before its children.

use super::{Error, Result};
use crate::unpack::sys;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FileStat, Mode, SFlag};
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The xattrs overlayfs marks an opaque directory with (the second in
/// `userxattr` mode, as rootless overlay mounts use).
pub(crate) const OPAQUE_XATTRS: [&str; 2] = ["trusted.overlay.opaque", "user.overlay.opaque"];

/// A name the walk fails on in unit tests, to check that a failure in the
/// middle of a commit leaves nothing behind.
#[cfg(test)]
pub(crate) const FAIL_NAME: &[u8] = b"berth-test-walk-fails-here";

/// One entry of the upper dir.
pub(crate) struct Node<'a> {
    /// Its parent directory.
    pub dir: BorrowedFd<'a>,
    pub name: &'a [u8],
    /// Relative to the upper dir, `/`-separated (`etc/passwd`).
    pub rel: &'a [u8],
    pub st: &'a FileStat,
}

impl Node<'_> {
    pub fn kind(&self) -> SFlag {
        kind(self.st)
    }

    pub fn is_whiteout(&self) -> bool {
        is_whiteout(self.st)
    }

    /// `trusted.overlay.opaque=y` (or `user.overlay.opaque=y`) on a directory.
    pub fn is_opaque(&self, upper: &Path) -> Result<bool> {
        if self.kind() != SFlag::S_IFDIR {
            return Ok(false);
        }
        for key in OPAQUE_XATTRS {
            if self
                .xattr(key)
                .map_err(upper_err("read xattrs of", upper, self.rel))?
                == Some(b"y".to_vec())
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// One xattr (`None` when absent or unsupported).
    pub fn xattr(&self, key: &str) -> io::Result<Option<Vec<u8>>> {
        match sys::get_xattr(&proc_path(self.dir, self.name), key) {
            Err(e) if unsupported(&e) => Ok(None),
            r => r,
        }
    }

    /// All xattrs as (name, value), sorted by name.
    pub fn xattrs(&self) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let path = proc_path(self.dir, self.name);
        let mut names = match sys::list_xattrs(&path) {
            Err(e) if unsupported(&e) => return Ok(Vec::new()),
            r => r?,
        };
        names.sort();
        let mut out = Vec::with_capacity(names.len());
        for n in names {
            let key = String::from_utf8_lossy(&n).into_owned();
            // It may have gone since the listing.
            if let Some(v) = sys::get_xattr(&path, &key)? {
                out.push((n, v));
            }
        }
        Ok(out)
    }

    /// Opens the (regular) file for reading, checking it is still the
    /// entry that was stat'ed.
    pub fn open_file(&self, upper: &Path) -> Result<(std::fs::File, FileStat)> {
        let err = upper_err("open", upper, self.rel);
        let fd = nix::fcntl::openat(
            self.dir,
            self.name,
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| err(e.into()))?;
        let st =
            nix::sys::stat::fstat(&fd).map_err(|e| upper_err("stat", upper, self.rel)(e.into()))?;
        if kind(&st) != SFlag::S_IFREG || st.st_ino != self.st.st_ino {
            return Err(upper_err("read", upper, self.rel)(io::Error::other(
                "the file was replaced while the container's changes were read; stop or pause the container and try again",
            )));
        }
        Ok((std::fs::File::from(fd), st))
    }
}

pub(crate) fn kind(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits())
}

/// An overlay whiteout: a 0:0 character device.
pub(crate) fn is_whiteout(st: &FileStat) -> bool {
    kind(st) == SFlag::S_IFCHR && st.st_rdev == 0
}

fn unsupported(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOTSUP) | Some(libc::ENODATA))
}

/// `/proc/self/fd/<dir>/<name>`: the entry without resolving its parent's
/// path again (the xattr calls do not follow the last component).
fn proc_path(dir: BorrowedFd<'_>, name: &[u8]) -> PathBuf {
    let mut p = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    p.extend_from_slice(name);
    PathBuf::from(OsStr::from_bytes(&p))
}

pub(crate) fn upper_err(
    op: &'static str,
    upper: &Path,
    rel: &[u8],
) -> impl FnOnce(io::Error) -> Error {
    let path = upper.join(OsStr::from_bytes(rel));
    move |source| Error::Upper { op, path, source }
}

/// Visits every entry under `upper` (not `upper` itself); `visit` returns
/// whether to descend into a directory.
pub(crate) fn walk(upper: &Path, visit: &mut dyn FnMut(&Node<'_>) -> Result<bool>) -> Result<()> {
    let root = nix::fcntl::open(
        upper,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| upper_err("open", upper, b"")(e.into()))?;
    walk_dir(upper, &root, b"", visit)
}

fn walk_dir(
    upper: &Path,
    dir: &OwnedFd,
    rel: &[u8],
    visit: &mut dyn FnMut(&Node<'_>) -> Result<bool>,
) -> Result<()> {
    for name in list(upper, dir, rel)? {
        let mut child = rel.to_vec();
        if !child.is_empty() {
            child.push(b'/');
        }
        child.extend_from_slice(&name);
        #[cfg(test)]
        if name == FAIL_NAME {
            return Err(upper_err("read", upper, &child)(io::Error::other(
                "injected test failure",
            )));
        }
        let st = match nix::sys::stat::fstatat(dir, name.as_slice(), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            // Removed since the listing (a running container).
            Err(nix::errno::Errno::ENOENT) => continue,
            Err(e) => return Err(upper_err("stat", upper, &child)(e.into())),
        };
        let node = Node {
            dir: dir.as_fd(),
            name: &name,
            rel: &child,
            st: &st,
        };
        if visit(&node)? && kind(&st) == SFlag::S_IFDIR {
            let sub = nix::fcntl::openat(
                dir,
                name.as_slice(),
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| upper_err("open", upper, &child)(e.into()))?;
            walk_dir(upper, &sub, &child, visit)?;
        }
    }
    Ok(())
}

/// The names in `dir`, sorted bytewise.
pub(crate) fn list(upper: &Path, dir: &OwnedFd, rel: &[u8]) -> Result<Vec<Vec<u8>>> {
    let err = |e: nix::Error| upper_err("list", upper, rel)(e.into());
    let mut d = nix::dir::Dir::openat(
        dir,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(err)?;
    let mut names = Vec::new();
    for e in d.iter() {
        let e = e.map_err(err)?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(n.to_vec());
        }
    }
    names.sort();
    Ok(names)
}
