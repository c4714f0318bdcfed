//! The few syscall wrappers the applier needs beyond nix: path resolution
//! confined to the layer directory (`openat2`), safe recursive removal, and
//! xattrs, which nix does not wrap.
//!
//! Every path handed to the kernel here is either resolved by `openat2` with
//! `RESOLVE_IN_ROOT`/`RESOLVE_BENEATH` from the layer directory's fd, or is a
//! single name component looked up in such a directory fd without following
//! a symlink in that last component.

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;
use nix::unistd::UnlinkatFlags;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

/// Resolution for everything that may legitimately follow a symlink the layer
/// itself created: `..` and absolute targets stay clamped inside the layer
/// directory, as if it were `/` (what a chroot would do).
pub(super) fn in_root() -> ResolveFlag {
    ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS | ResolveFlag::RESOLVE_NO_XDEV
}

/// Resolution for hardlink targets: beneath the layer directory and through
/// no symlink at all.
pub(super) fn beneath_no_symlinks() -> ResolveFlag {
    ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS | ResolveFlag::RESOLVE_NO_XDEV
}

/// `openat2(dirfd, path, flags | O_CLOEXEC, resolve)`; an empty path means
/// `dirfd` itself. Retries the EAGAIN the kernel returns when a `..` lookup
/// races with a rename somewhere on the filesystem.
pub(super) fn openat2(
    dirfd: BorrowedFd<'_>,
    path: &[u8],
    flags: OFlag,
    resolve: ResolveFlag,
) -> nix::Result<OwnedFd> {
    let path: &[u8] = if path.is_empty() { b"." } else { path };
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(resolve);
    let mut tries = 0;
    loop {
        match nix::fcntl::openat2(dirfd, path, how) {
            Err(Errno::EAGAIN) if tries < 64 => tries += 1,
            Err(Errno::EINTR) => {}
            r => return r,
        }
    }
}

/// An `O_PATH` fd of the directory at `path` (relative to `root`, resolved
/// in root).
pub(super) fn open_dir_path(root: BorrowedFd<'_>, path: &[u8]) -> nix::Result<OwnedFd> {
    openat2(root, path, OFlag::O_PATH | OFlag::O_DIRECTORY, in_root())
}

/// Remove `name` in `parent` and, if it is a directory, everything below it,
/// never following a symlink.
pub(super) fn remove_all(parent: BorrowedFd<'_>, name: &[u8]) -> nix::Result<()> {
    match nix::unistd::unlinkat(parent, name, UnlinkatFlags::NoRemoveDir) {
        Err(Errno::EISDIR) | Err(Errno::EPERM) => {}
        r => return r,
    }
    let fd = nix::fcntl::openat(
        parent,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let mut dir = nix::dir::Dir::from_fd(fd)?;
    let mut names = Vec::new();
    for e in dir.iter() {
        let e = e?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(n.to_vec());
        }
    }
    for n in names {
        remove_all(dir.as_fd(), &n)?;
    }
    nix::unistd::unlinkat(parent, name, UnlinkatFlags::RemoveDir)
}

fn proc_path(dirfd: BorrowedFd<'_>, name: &[u8]) -> io::Result<CString> {
    let mut p = format!("/proc/self/fd/{}/", dirfd.as_raw_fd()).into_bytes();
    p.extend_from_slice(name);
    CString::new(p).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// `lsetxattr` on `name` inside the directory `dirfd` (an `O_PATH` fd is
/// fine). The directory is reached through its `/proc/self/fd` magic link,
/// so no path is resolved again; the last component is not followed.
pub(super) fn set_xattr_at(
    dirfd: BorrowedFd<'_>,
    name: &[u8],
    key: &[u8],
    value: &[u8],
) -> io::Result<()> {
    let path = proc_path(dirfd, name)?;
    let key = CString::new(key).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `path` and `key` are NUL-terminated strings that live across
    // the call, and `value` is a readable buffer of `value.len()` bytes; the
    // kernel only reads from them.
    let r = unsafe {
        libc::lsetxattr(
            path.as_ptr(),
            key.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `lgetxattr` of a path: `None` when the attribute is absent. (Values
/// are at most 64 KiB, the kernel's `XATTR_SIZE_MAX`.)
pub(crate) fn get_xattr(path: &std::path::Path, key: &str) -> io::Result<Option<Vec<u8>>> {
    use std::os::unix::ffi::OsStrExt;
    let path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let key = CString::new(key).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut buf = vec![0u8; 65536];
    // SAFETY: `path` and `key` are NUL-terminated strings that live across the
    // call; `buf` is a writable buffer of `buf.len()` bytes the kernel fills.
    let r = unsafe {
        libc::lgetxattr(
            path.as_ptr(),
            key.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        return if e.raw_os_error() == Some(libc::ENODATA) {
            Ok(None)
        } else {
            Err(e)
        };
    }
    buf.truncate(r as usize);
    Ok(Some(buf))
}

/// Names of all xattrs of a path (at most 64 KiB of names, the kernel's
/// `XATTR_LIST_MAX`); the last component is not followed.
pub(crate) fn list_xattrs(path: &std::path::Path) -> io::Result<Vec<Vec<u8>>> {
    use std::os::unix::ffi::OsStrExt;
    let path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut buf = vec![0u8; 65536];
    // SAFETY: `path` is a NUL-terminated string that lives across the call;
    // `buf` is a writable buffer of `buf.len()` bytes the kernel fills.
    let r = unsafe { libc::llistxattr(path.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(r as usize);
    Ok(buf
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(<[u8]>::to_vec)
        .collect())
}
