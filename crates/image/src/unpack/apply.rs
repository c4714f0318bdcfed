//! Applying one tar entry to the layer directory.
//!
//! The layer directory is held as an `O_PATH` fd (`root`). For every entry the
//! parent directory is resolved with `openat2(root, parent, RESOLVE_IN_ROOT)`
//! (missing parents are created one component at a time, each `mkdirat`
//! relative to an fd resolved the same way), and the last component is then
//! only touched with `*at()` calls relative to that parent fd that do not
//! follow a symlink there. So a symlink the layer creates (`evil -> /etc`)
//! is resolved as if the layer directory were `/`, never outside it.

use super::sparse;
use super::sys;
use super::tap::{EntryInfo, Pax};
use super::util::{
    copy_sparse, fs_err, join, lossy, normalize, parse_pax_time, pax_get, purge, purge_set,
};
use super::{Error, Result, UnpackOptions};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FchmodatFlags, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

/// The most logical (declared) bytes of GNU sparse files one layer may hold.
/// Holes are never written, but the `tar` crate hands them out as zeros that
/// must be read through, so this bounds the CPU a hostile header can cost.
pub(super) const SPARSE_LIMIT: u64 = 1 << 40;

const WHITEOUT_PREFIX: &[u8] = b".wh.";
const WHITEOUT_META_PREFIX: &[u8] = b".wh..wh.";
const WHITEOUT_OPAQUE: &[u8] = b".wh..wh..opq";
const OPAQUE_XATTR: &[u8] = b"trusted.overlay.opaque";

struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    atime: TimeSpec,
    mtime: TimeSpec,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

struct DirMeta {
    mode: u32,
    atime: TimeSpec,
    mtime: TimeSpec,
}

pub(super) struct Applier {
    root: OwnedFd,
    keep_ownership: bool,
    /// Non-directory entries of this layer: the only valid hardlink targets.
    created: BTreeSet<Vec<u8>>,
    /// Whiteouts this layer created (a directory later put in their place
    /// must hide the lower layers' directory: it becomes opaque).
    whiteouts: BTreeSet<Vec<u8>>,
    /// Directory modes and times, applied after all entries are written.
    dirs: BTreeMap<Vec<u8>, DirMeta>,
    sparse_total: u64,
    buf: Vec<u8>,
}

enum Kind {
    Dir,
    File,
    Symlink,
    Hardlink,
    Node(SFlag),
}

impl Applier {
    pub(super) fn open(dest: &Path, opts: &UnpackOptions) -> Result<Self> {
        let dest_err = |source: io::Error| Error::Dest {
            path: dest.to_path_buf(),
            source,
        };
        let root = nix::fcntl::open(
            dest,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| dest_err(e.into()))?;
        match sys::openat2(
            root.as_fd(),
            b".",
            OFlag::O_PATH | OFlag::O_DIRECTORY,
            sys::in_root(),
        ) {
            Ok(_) => {}
            Err(Errno::ENOSYS) => {
                return Err(dest_err(io::Error::other(
                    "openat2 is not available: linux 5.6 or later is needed",
                )))
            }
            Err(e) => return Err(dest_err(e.into())),
        }
        Ok(Applier {
            root,
            keep_ownership: opts.keep_ownership,
            created: BTreeSet::new(),
            whiteouts: BTreeSet::new(),
            dirs: BTreeMap::new(),
            sparse_total: 0,
            buf: vec![0; 1 << 20],
        })
    }

    /// Apply one entry; returns the bytes of file content it wrote.
    ///
    /// Names, link targets and ids come from the header as it was in the
    /// stream and from our own PAX parse (see `tap`), not from the `tar`
    /// crate's reading of the PAX records.
    pub(super) fn apply<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        info: &EntryInfo,
    ) -> Result<u64> {
        let pax = info.pax.as_ref();
        let get = |k: &[u8]| pax_get(pax, k);
        let h = tar::Header::from_byte_slice(&info.header);
        let sparse = sparse::detect(pax).map_err(|reason| Error::Malformed {
            path: lossy(&h.path_bytes()),
            reason,
        })?;
        // A PAX sparse file's real name wins, then a GNU long name, then the
        // PAX path, then the header's name (as in Go's archive/tar).
        let raw: Vec<u8> = if let Some(name) = sparse.as_ref().and_then(|s| s.name.clone()) {
            name
        } else if info.long_name {
            entry.path_bytes().into_owned()
        } else if let Some(p) = get(b"path") {
            p.to_vec()
        } else {
            h.path_bytes().into_owned()
        };
        let disp = lossy(&raw);
        let bad = |reason: &str| Error::Malformed {
            path: disp.clone(),
            reason: reason.to_string(),
        };
        let et = h.entry_type();
        if et.is_pax_global_extensions() {
            return Ok(0); // global PAX headers carry nothing berth applies
        }
        let comps = normalize(&raw).map_err(|r| {
            if r.contains("..") {
                Error::Escape { path: disp.clone() }
            } else {
                bad(r)
            }
        })?;
        let kind = if et.is_dir() || ((et.is_file() || et.is_contiguous()) && raw.ends_with(b"/")) {
            Kind::Dir
        } else if et.is_file() || et.is_contiguous() || et.is_gnu_sparse() || sparse.is_some() {
            Kind::File
        } else if et.is_symlink() {
            Kind::Symlink
        } else if et.is_hard_link() {
            Kind::Hardlink
        } else if et.is_character_special() {
            Kind::Node(SFlag::S_IFCHR)
        } else if et.is_block_special() {
            Kind::Node(SFlag::S_IFBLK)
        } else if et.is_fifo() {
            Kind::Node(SFlag::S_IFIFO)
        } else {
            return Err(bad(&format!(
                "unsupported tar entry type '{}'",
                et.as_byte().escape_ascii()
            )));
        };

        if let Some(last) = comps.last() {
            if last.starts_with(WHITEOUT_PREFIX) {
                self.whiteout(&comps, &disp)?;
                return Ok(0);
            }
        } else if !matches!(kind, Kind::Dir) {
            return Err(bad("the entry names the layer root but is not a directory"));
        }

        let link = match kind {
            Kind::Symlink | Kind::Hardlink => {
                let l: Vec<u8> = if info.long_link {
                    entry
                        .link_name_bytes()
                        .map(|c| c.into_owned())
                        .unwrap_or_default()
                } else if let Some(p) = get(b"linkpath") {
                    p.to_vec()
                } else {
                    h.link_name_bytes()
                        .map(|c| c.into_owned())
                        .unwrap_or_default()
                };
                if l.is_empty() {
                    return Err(bad("link entry without a target"));
                }
                if l.contains(&0) {
                    return Err(bad("link target contains a NUL byte"));
                }
                l
            }
            _ => Vec::new(),
        };
        let meta = self.meta(h, pax, &disp)?;

        match kind {
            Kind::Dir => self.dir(&comps, &meta, &disp).map(|()| 0),
            Kind::File => self.file(
                &comps,
                &meta,
                &disp,
                entry,
                et.is_gnu_sparse(),
                sparse.as_ref(),
            ),
            Kind::Symlink => self.symlink(&comps, &link, &meta, &disp).map(|()| 0),
            Kind::Hardlink => self.hardlink(&comps, &link, &disp).map(|()| 0),
            Kind::Node(k) => {
                let num = |r: io::Result<Option<u32>>| {
                    r.map(|v| u64::from(v.unwrap_or(0)))
                        .map_err(|e| bad(&e.to_string()))
                };
                let dev = nix::sys::stat::makedev(num(h.device_major())?, num(h.device_minor())?);
                self.node(&comps, k, dev, &meta, &disp).map(|()| 0)
            }
        }
    }

    fn meta(&self, h: &tar::Header, pax: Option<&Pax>, disp: &str) -> Result<Meta> {
        let get = |k: &[u8]| pax_get(pax, k);
        let bad = |reason: String| Error::Malformed {
            path: disp.to_string(),
            reason,
        };
        let id = |key: &[u8], hdr: io::Result<u64>| -> Result<u32> {
            let v = match get(key) {
                Some(v) => std::str::from_utf8(v)
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
                    .ok_or_else(|| bad(format!("invalid pax {} {:?}", lossy(key), lossy(v))))?,
                None => hdr.map_err(|e| bad(e.to_string()))?,
            };
            u32::try_from(v).map_err(|_| bad(format!("{} {v} is out of range", lossy(key))))
        };
        let time = |key: &[u8], fallback: Option<TimeSpec>| -> Result<TimeSpec> {
            match get(key) {
                Some(v) => parse_pax_time(v)
                    .ok_or_else(|| bad(format!("invalid pax {} {:?}", lossy(key), lossy(v)))),
                None => match fallback {
                    Some(t) => Ok(t),
                    None => {
                        let s = h.mtime().map_err(|e| bad(e.to_string()))?;
                        let s = i64::try_from(s)
                            .map_err(|_| bad(format!("mtime {s} is out of range")))?;
                        Ok(TimeSpec::new(s, 0))
                    }
                },
            }
        };
        let mtime = time(b"mtime", None)?;
        let atime = time(b"atime", Some(mtime))?;
        let mut xattrs = Vec::new();
        for (k, v) in pax.into_iter().flatten() {
            let Some(name) = k.strip_prefix(b"SCHILY.xattr.".as_slice()) else {
                continue;
            };
            // overlayfs' own metadata (opaque, redirect, metacopy, origin...)
            // is never taken from a layer: a whiteout is the only way in.
            if name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.") {
                continue;
            }
            if name.is_empty() || name.contains(&0) {
                return Err(bad(format!("invalid xattr name {:?}", lossy(name))));
            }
            xattrs.retain(|(n, _): &(Vec<u8>, Vec<u8>)| n.as_slice() != name);
            xattrs.push((name.to_vec(), v.clone()));
        }
        Ok(Meta {
            mode: h.mode().map_err(|e| bad(e.to_string()))? & 0o7777,
            uid: id(b"uid", h.uid())?,
            gid: id(b"gid", h.gid())?,
            atime,
            mtime,
            xattrs,
        })
    }

    /// `O_PATH` fd of the directory `comps` (relative to the layer root),
    /// creating missing directories (mode 0755) on the way. A whiteout this
    /// layer made in the way is replaced by an opaque directory.
    fn dir_fd(&mut self, comps: &[&[u8]], disp: &str) -> Result<OwnedFd> {
        match sys::open_dir_path(self.root.as_fd(), &join(comps)) {
            Ok(fd) => return Ok(fd),
            Err(Errno::ENOENT) | Err(Errno::ENOTDIR) => {}
            Err(e) => return Err(fs_err(disp, "resolving the parent directory", e)),
        }
        let mut fd = sys::open_dir_path(self.root.as_fd(), b"")
            .map_err(|e| fs_err(disp, "opening the layer directory", e))?;
        for i in 0..comps.len() {
            let prefix = join(&comps[..=i]);
            let what = || format!("parent directory {:?}", lossy(&prefix));
            let name = comps[i];
            fd = match sys::open_dir_path(self.root.as_fd(), &prefix) {
                Ok(next) => next,
                Err(Errno::ENOENT) => {
                    match nix::sys::stat::mkdirat(&fd, name, Mode::from_bits_truncate(0o755)) {
                        Ok(()) => {}
                        Err(Errno::EEXIST) => {
                            return Err(fs_err(
                                disp,
                                &format!(
                                "{} is a symlink to a directory that does not exist in this layer",
                                what()
                            ),
                                Errno::ENOENT,
                            ))
                        }
                        Err(e) => return Err(fs_err(disp, &format!("creating {}", what()), e)),
                    }
                    nix::sys::stat::fchmodat(
                        &fd,
                        name,
                        Mode::from_bits_truncate(0o755),
                        FchmodatFlags::NoFollowSymlink,
                    )
                    .map_err(|e| fs_err(disp, &format!("chmod of {}", what()), e))?;
                    sys::open_dir_path(self.root.as_fd(), &prefix)
                        .map_err(|e| fs_err(disp, &format!("opening {}", what()), e))?
                }
                Err(Errno::ENOTDIR) if self.whiteouts.contains(&prefix) => {
                    self.clear(&fd, name, &prefix, disp)?;
                    nix::sys::stat::mkdirat(&fd, name, Mode::from_bits_truncate(0o755))
                        .map_err(|e| fs_err(disp, &format!("creating {}", what()), e))?;
                    nix::sys::stat::fchmodat(
                        &fd,
                        name,
                        Mode::from_bits_truncate(0o755),
                        FchmodatFlags::NoFollowSymlink,
                    )
                    .map_err(|e| fs_err(disp, &format!("chmod of {}", what()), e))?;
                    self.set_xattr(&fd, name, OPAQUE_XATTR, b"y", disp)?;
                    sys::open_dir_path(self.root.as_fd(), &prefix)
                        .map_err(|e| fs_err(disp, &format!("opening {}", what()), e))?
                }
                Err(e) => return Err(fs_err(disp, &format!("opening {}", what()), e)),
            };
        }
        Ok(fd)
    }

    /// The parent directory fd and last name of a (non-root) entry.
    fn parent<'c>(&mut self, comps: &[&'c [u8]], disp: &str) -> Result<(OwnedFd, &'c [u8])> {
        let (name, dir) = comps.split_last().expect("non-root entry");
        Ok((self.dir_fd(dir, disp)?, name))
    }

    /// Remove whatever is at `name` in `parent` (recursively for a
    /// directory). Returns whether something was there.
    fn clear(&mut self, parent: &OwnedFd, name: &[u8], key: &[u8], disp: &str) -> Result<bool> {
        match nix::sys::stat::fstatat(parent, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Err(Errno::ENOENT) => Ok(false),
            Err(e) => Err(fs_err(disp, "stat of the existing entry", e)),
            Ok(_) => {
                sys::remove_all(parent.as_fd(), name)
                    .map_err(|e| fs_err(disp, "removing the existing entry", e))?;
                purge_set(&mut self.created, key);
                purge_set(&mut self.whiteouts, key);
                purge(&mut self.dirs, key);
                Ok(true)
            }
        }
    }

    fn set_xattr(
        &self,
        dir: &OwnedFd,
        name: &[u8],
        key: &[u8],
        value: &[u8],
        disp: &str,
    ) -> Result<()> {
        sys::set_xattr_at(dir.as_fd(), name, key, value).map_err(|source| Error::Xattr {
            path: disp.to_string(),
            name: lossy(key),
            source,
        })
    }

    /// Owner, mode (not for symlinks), xattrs, times (not for directories:
    /// those come at the end), in that order: chown clears setuid/setgid and
    /// security.capability, so those are set after it.
    fn finish(
        &self,
        parent: &OwnedFd,
        name: &[u8],
        meta: &Meta,
        disp: &str,
        kind: &Kind,
    ) -> Result<()> {
        if self.keep_ownership {
            nix::unistd::fchownat(
                parent,
                name,
                Some(Uid::from_raw(meta.uid)),
                Some(Gid::from_raw(meta.gid)),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .map_err(|e| fs_err(disp, "chown", e))?;
        }
        if !matches!(kind, Kind::Symlink | Kind::Dir) {
            nix::sys::stat::fchmodat(
                parent,
                name,
                Mode::from_bits_truncate(meta.mode),
                FchmodatFlags::NoFollowSymlink,
            )
            .map_err(|e| fs_err(disp, "chmod", e))?;
        }
        let plain = matches!(kind, Kind::File | Kind::Dir);
        for (k, v) in &meta.xattrs {
            match sys::set_xattr_at(parent.as_fd(), name, k, v) {
                Ok(()) => {}
                // The filesystem has no such namespace: skip it, but never
                // drop a file capability silently.
                Err(e)
                    if e.raw_os_error() == Some(libc::EOPNOTSUPP)
                        && !k.starts_with(b"security.capability") => {}
                // The kernel allows user.* only on regular files and dirs.
                Err(e)
                    if e.raw_os_error() == Some(libc::EPERM)
                        && !plain
                        && k.starts_with(b"user.") => {}
                Err(source) => {
                    return Err(Error::Xattr {
                        path: disp.to_string(),
                        name: lossy(k),
                        source,
                    })
                }
            }
        }
        if !matches!(kind, Kind::Dir) {
            nix::sys::stat::utimensat(
                parent,
                name,
                &meta.atime,
                &meta.mtime,
                UtimensatFlags::NoFollowSymlink,
            )
            .map_err(|e| fs_err(disp, "setting times", e))?;
        }
        Ok(())
    }

    fn dir(&mut self, comps: &[&[u8]], meta: &Meta, disp: &str) -> Result<()> {
        let key = join(comps);
        let (parent, name): (OwnedFd, &[u8]) = if comps.is_empty() {
            let fd = sys::open_dir_path(self.root.as_fd(), b"")
                .map_err(|e| fs_err(disp, "opening the layer directory", e))?;
            (fd, b".")
        } else {
            self.parent(comps, disp)?
        };
        let mut opaque = false;
        if !comps.is_empty() {
            match nix::sys::stat::fstatat(&parent, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
                Ok(st)
                    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR => {}
                Ok(_) | Err(Errno::ENOENT) => {
                    opaque = self.whiteouts.contains(&key);
                    self.clear(&parent, name, &key, disp)?;
                    nix::sys::stat::mkdirat(&parent, name, Mode::from_bits_truncate(0o700))
                        .map_err(|e| fs_err(disp, "mkdir", e))?;
                }
                Err(e) => return Err(fs_err(disp, "stat of the existing entry", e)),
            }
        }
        self.finish(&parent, name, meta, disp, &Kind::Dir)?;
        if opaque {
            self.set_xattr(&parent, name, OPAQUE_XATTR, b"y", disp)?;
        }
        self.dirs.insert(
            key,
            DirMeta {
                mode: meta.mode,
                atime: meta.atime,
                mtime: meta.mtime,
            },
        );
        Ok(())
    }

    fn file<R: Read>(
        &mut self,
        comps: &[&[u8]],
        meta: &Meta,
        disp: &str,
        entry: &mut tar::Entry<'_, R>,
        sparse: bool,
        pax_sparse: Option<&sparse::PaxSparse>,
    ) -> Result<u64> {
        let size = entry.size();
        if sparse {
            self.sparse_total = self.sparse_total.saturating_add(size);
            if self.sparse_total > SPARSE_LIMIT {
                return Err(Error::TooLarge {
                    path: disp.to_string(),
                    what: "sparse file (declared size, with the layer's other sparse files)",
                    size: self.sparse_total,
                    limit: SPARSE_LIMIT,
                });
            }
        }
        let key = join(comps);
        let (parent, name) = self.parent(comps, disp)?;
        self.clear(&parent, name, &key, disp)?;
        let fd = nix::fcntl::openat(
            &parent,
            name,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(|e| fs_err(disp, "creating the file", e))?;
        let f = std::fs::File::from(fd);
        let mut buf = std::mem::take(&mut self.buf);
        let copied = match pax_sparse {
            None => copy_sparse(entry, &f, &mut buf).map(|n| (n, n)),
            Some(sp) => match sparse::write(entry, size, sp, &f, &mut buf) {
                Ok(n) => Ok((n, size)),
                Err(sparse::SparseError::Io(e)) => Err(e),
                Err(sparse::SparseError::Bad(reason)) => {
                    self.buf = buf;
                    return Err(Error::Malformed {
                        path: disp.to_string(),
                        reason,
                    });
                }
            },
        };
        self.buf = buf;
        let (n, read) = copied.map_err(|e| fs_err(disp, "writing the file content", e))?;
        if n >= crate::writeback::WINDOW / 4 {
            // The layer is synced before it becomes visible: start now.
            crate::writeback::start(&f, 0, 0);
        }
        if read != size {
            return Err(Error::Malformed {
                path: disp.to_string(),
                reason: format!("the layer tar ends inside this entry ({read} of {size} bytes)"),
            });
        }
        drop(f);
        self.finish(&parent, name, meta, disp, &Kind::File)?;
        self.created.insert(key);
        Ok(n)
    }

    fn symlink(&mut self, comps: &[&[u8]], target: &[u8], meta: &Meta, disp: &str) -> Result<()> {
        let key = join(comps);
        let (parent, name) = self.parent(comps, disp)?;
        self.clear(&parent, name, &key, disp)?;
        nix::unistd::symlinkat(target, &parent, name)
            .map_err(|e| fs_err(disp, "creating the symlink", e))?;
        self.finish(&parent, name, meta, disp, &Kind::Symlink)?;
        self.created.insert(key);
        Ok(())
    }

    fn hardlink(&mut self, comps: &[&[u8]], target: &[u8], disp: &str) -> Result<()> {
        let herr = |reason: &'static str| Error::Hardlink {
            path: disp.to_string(),
            target: lossy(target),
            reason,
        };
        let tcomps = normalize(target)
            .map_err(|_| herr("the target leaves the layer directory or is not a valid name"))?;
        let Some((tname, tdir)) = tcomps.split_last() else {
            return Err(herr("the target is the layer root"));
        };
        let key = join(comps);
        let tkey = join(&tcomps);
        if tkey == key {
            return Err(herr("the entry links to itself"));
        }
        if !self.created.contains(&tkey) {
            return Err(herr("the target is not an earlier file of this layer"));
        }
        let tparent = sys::openat2(
            self.root.as_fd(),
            &join(tdir),
            OFlag::O_PATH | OFlag::O_DIRECTORY,
            sys::beneath_no_symlinks(),
        )
        .map_err(|e| match e {
            Errno::ELOOP | Errno::EXDEV => herr("the target path goes through a symlink"),
            e => fs_err(disp, "resolving the hardlink target's directory", e),
        })?;
        let tstat = nix::sys::stat::fstatat(&tparent, *tname, AtFlags::AT_SYMLINK_NOFOLLOW)
            .map_err(|e| fs_err(disp, "stat of the hardlink target", e))?;
        let (parent, name) = self.parent(comps, disp)?;
        if let Ok(st) = nix::sys::stat::fstatat(&parent, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            if st.st_dev == tstat.st_dev && st.st_ino == tstat.st_ino {
                return Ok(());
            }
        }
        self.clear(&parent, name, &key, disp)?;
        nix::unistd::linkat(&tparent, *tname, &parent, name, AtFlags::empty())
            .map_err(|e| fs_err(disp, "creating the hardlink", e))?;
        self.created.insert(key);
        Ok(())
    }

    fn node(
        &mut self,
        comps: &[&[u8]],
        kind: SFlag,
        dev: libc::dev_t,
        meta: &Meta,
        disp: &str,
    ) -> Result<()> {
        let key = join(comps);
        let (parent, name) = self.parent(comps, disp)?;
        self.clear(&parent, name, &key, disp)?;
        match nix::sys::stat::mknodat(&parent, name, kind, Mode::from_bits_truncate(0o600), dev) {
            Ok(()) => {}
            // Without CAP_MKNOD (rootless) device nodes are skipped, as
            // Docker does in a user namespace.
            Err(Errno::EPERM) if kind != SFlag::S_IFIFO && !self.keep_ownership => return Ok(()),
            Err(e) => return Err(fs_err(disp, "mknod", e)),
        }
        self.finish(&parent, name, meta, disp, &Kind::Node(kind))?;
        self.created.insert(key);
        Ok(())
    }

    fn whiteout(&mut self, comps: &[&[u8]], disp: &str) -> Result<()> {
        let (last, dir) = comps.split_last().expect("non-root entry");
        if *last == WHITEOUT_OPAQUE {
            let fd = self.dir_fd(dir, disp)?;
            return self.set_xattr(&fd, b".", OPAQUE_XATTR, b"y", disp);
        }
        if last.starts_with(WHITEOUT_META_PREFIX) {
            return Ok(()); // other AUFS metadata (.wh..wh.plnk, ...): not content
        }
        let name = &last[WHITEOUT_PREFIX.len()..];
        if name.is_empty() || name == b"." || name == b".." {
            return Err(Error::Malformed {
                path: disp.to_string(),
                reason: "the whiteout names no file".into(),
            });
        }
        let mut target: Vec<&[u8]> = dir.to_vec();
        target.push(name);
        let key = join(&target);
        let parent = self.dir_fd(dir, disp)?;
        // layer.md: whiteouts apply only to lower layers. An entry this layer
        // already wrote stays (it shadows the lower one by itself); a
        // directory also hides the lower one's contents: it becomes opaque.
        if self.created.contains(&key) {
            return Ok(());
        }
        if self.dirs.contains_key(&key) {
            let fd = self.dir_fd(&target, disp)?;
            return self.set_xattr(&fd, b".", OPAQUE_XATTR, b"y", disp);
        }
        self.clear(&parent, name, &key, disp)?;
        nix::sys::stat::mknodat(
            &parent,
            name,
            SFlag::S_IFCHR,
            Mode::empty(),
            nix::sys::stat::makedev(0, 0),
        )
        .map_err(|e| {
            let what = if e == Errno::EPERM {
                "creating the overlay whiteout (a 0:0 character device; needs CAP_MKNOD)"
            } else {
                "creating the overlay whiteout"
            };
            fs_err(disp, what, e)
        })?;
        if self.keep_ownership {
            nix::unistd::fchownat(
                &parent,
                name,
                Some(Uid::from_raw(0)),
                Some(Gid::from_raw(0)),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .map_err(|e| fs_err(disp, "chown of the whiteout", e))?;
        }
        self.whiteouts.insert(key);
        Ok(())
    }

    /// Directory modes and times, after everything inside them is written.
    pub(super) fn finish_dirs(&mut self) -> Result<()> {
        for (key, m) in std::mem::take(&mut self.dirs) {
            let disp = lossy(&key);
            let fd = match sys::openat2(
                self.root.as_fd(),
                &key,
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW,
                sys::in_root(),
            ) {
                Ok(fd) => fd,
                // Replaced by a later entry of another type.
                Err(Errno::ENOENT) | Err(Errno::ENOTDIR) | Err(Errno::ELOOP) => continue,
                Err(e) => {
                    return Err(fs_err(
                        &disp,
                        "opening the directory to set its mode and times",
                        e,
                    ))
                }
            };
            nix::sys::stat::fchmod(&fd, Mode::from_bits_truncate(m.mode))
                .map_err(|e| fs_err(&disp, "chmod", e))?;
            nix::sys::stat::futimens(&fd, &m.atime, &m.mtime)
                .map_err(|e| fs_err(&disp, "setting times", e))?;
        }
        Ok(())
    }
}
