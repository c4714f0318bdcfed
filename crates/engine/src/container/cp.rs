//! `cp` and `export`: files in and out of a container as tar streams, as
//! the container sees them (volumes, bind mounts, its /etc files included).
//! Every path inside the container is resolved by a forked child chrooted
//! into the container's root, so a symlink the container made (absolute,
//! `..`, swapped in while we copy) cannot lead outside it (the
//! CVE-2018-15664 class). A running container's root is `/proc/<pid>/root`
//! (its own mount namespace); for a stopped one the child mounts the
//! rootfs's volumes and binds in a private mount namespace of its own, and
//! the rootfs is mounted only for the copy.

use super::{io, Engine, Error, Result};
use crate::db::{Record, Status};
use crate::rootfs;
use crate::spec_gen::mounts::{volume_data, MountKind};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// What a path in the container is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    Missing,
    Dir,
    Other,
}

/// The rootfs mounted for the length of a copy.
struct Mounted<'a> {
    dir: PathBuf,
    ours: bool,
    /// Where the child chroots.
    root: PathBuf,
    /// A running container's root, opened while its pid was checked (so a
    /// reused pid cannot send the child elsewhere).
    root_fd: Option<OwnedFd>,
    /// For a stopped container: (host source, container target, read-only)
    /// to bind in the child's mount namespace first.
    binds: Vec<(PathBuf, String, bool)>,
    _eng: &'a Engine,
}

impl Drop for Mounted<'_> {
    fn drop(&mut self) {
        if self.ours {
            let _ = rootfs::unmount(&self.dir);
        }
    }
}

/// Whose view a copy takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum View {
    /// What the container sees: its mounts included (`cp`).
    Container,
    /// Its root filesystem only, as `docker export` writes it.
    Rootfs,
}

impl Engine {
    fn mount_for_copy(&self, rec: &Record, view: View) -> Result<Mounted<'_>> {
        let dir = self.dir(&rec.id);
        let running = rec.status == Status::Running && super::pid_alive(rec.pid, rec.pid_start);
        if running && view == View::Container {
            let root = PathBuf::from(format!("/proc/{}/root", rec.pid));
            let fd = nix::fcntl::open(
                &root,
                nix::fcntl::OFlag::O_PATH
                    | nix::fcntl::OFlag::O_DIRECTORY
                    | nix::fcntl::OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )
            .map_err(|e| io(&root)(e.into()))?;
            // Still the container's init now that we hold its root?
            if !super::pid_alive(rec.pid, rec.pid_start) {
                return Err(Error::NotRunning(rec.name.clone()));
            }
            return Ok(Mounted {
                root,
                root_fd: Some(fd),
                dir,
                ours: false,
                binds: Vec::new(),
                _eng: self,
            });
        }
        let ours = !rootfs::is_mounted(&dir)?;
        rootfs::mount(&dir)?;
        let cfg = super::Config::parse(rec)?;
        let mut binds = Vec::new();
        if view == View::Container {
            let etc = dir.join("etc");
            for f in ["hostname", "hosts", "resolv.conf"] {
                if etc.join(f).exists() {
                    binds.push((etc.join(f), format!("/etc/{f}"), false));
                }
            }
            for m in &cfg.spec.mounts {
                match m.kind {
                    MountKind::Bind => {
                        binds.push((PathBuf::from(&m.source), m.target.clone(), m.readonly))
                    }
                    MountKind::Volume => binds.push((
                        volume_data(&self.volumes_dir(), &m.source),
                        m.target.clone(),
                        m.readonly,
                    )),
                    // Its files died with the container.
                    MountKind::Tmpfs => {}
                }
            }
        }
        Ok(Mounted {
            root: rootfs::merged(&dir),
            root_fd: None,
            dir,
            ours,
            binds,
            _eng: self,
        })
    }

    /// Is `path` (in the container) a directory, something else, or absent?
    pub fn path_kind(&self, rec: &Record, path: &str) -> Result<PathKind> {
        let m = self.mount_for_copy(rec, View::Container)?;
        let path = path.to_string();
        let mut out = Vec::new();
        in_root(&m, None, Some(&mut out), move |_, w| {
            let kind = match std::fs::metadata(&path) {
                Ok(md) if md.is_dir() => b'd',
                Ok(_) => b'f',
                Err(_) => b'-',
            };
            w.expect("output")
                .write_all(&[kind])
                .map_err(|e| e.to_string())
        })?;
        Ok(match out.first() {
            Some(b'd') => PathKind::Dir,
            Some(b'f') => PathKind::Other,
            _ => PathKind::Missing,
        })
    }

    /// The container's root filesystem (no volumes or binds, as `docker
    /// export`) as a tar on `out`.
    pub fn export(&self, rec: &Record, out: &mut dyn Write) -> Result<()> {
        self.copy_out(rec, "/", ".", out, View::Rootfs)
    }

    /// Writes a tar of the directory `path` of the container's root
    /// filesystem (without its mounts), named `.`, to `out`; writes nothing
    /// when the image has no directory there.
    pub(crate) fn image_dir_tar(
        &self,
        rec: &Record,
        path: &str,
        out: &mut dyn Write,
    ) -> Result<()> {
        let m = self.mount_for_copy(rec, View::Rootfs)?;
        let path = path.to_string();
        in_root(&m, None, Some(out), move |_, w| {
            let src = Path::new(&path);
            if !std::fs::metadata(src).is_ok_and(|md| md.is_dir()) {
                return Ok(());
            }
            let mut b = tar::Builder::new(w.expect("output"));
            append_tree(&mut b, src, Path::new("."))
                .and_then(|()| b.finish())
                .map_err(|e| format!("copy {path}: {e}"))
        })
    }

    /// Writes a tar of `path` (named `name` in the archive) to `out`.
    pub fn copy_from(
        &self,
        rec: &Record,
        path: &str,
        name: &str,
        out: &mut dyn Write,
    ) -> Result<()> {
        self.copy_out(rec, path, name, out, View::Container)
    }

    fn copy_out(
        &self,
        rec: &Record,
        path: &str,
        name: &str,
        out: &mut dyn Write,
        view: View,
    ) -> Result<()> {
        let m = self.mount_for_copy(rec, view)?;
        let (path, name) = (path.to_string(), name.to_string());
        in_root(&m, None, Some(out), move |_, w| {
            let w = w.expect("output");
            let src = Path::new(&path);
            let md = std::fs::symlink_metadata(src)
                .map_err(|e| format!("could not find the file {path} in container: {e}"))?;
            let _ = md;
            let mut b = tar::Builder::new(w);
            append_tree(&mut b, src, Path::new(&name))
                .and_then(|()| b.finish())
                .map_err(|e| format!("copy {path}: {e}"))
        })
    }

    /// Extracts the tar `input` into the directory `dir` of the container
    /// (owned by root, like `docker cp`).
    pub fn copy_to(&self, rec: &Record, dir: &str, input: &mut dyn Read) -> Result<()> {
        if super::Config::parse(rec)?.spec.read_only {
            return Err(Error::Invalid(format!(
                "container {} has a read-only root filesystem",
                rec.name
            )));
        }
        let m = self.mount_for_copy(rec, View::Container)?;
        let dir = dir.to_string();
        in_root(&m, Some(input), None, move |r, _| {
            let target = Path::new(&dir);
            if !std::fs::metadata(target)
                .map(|m| m.is_dir())
                .unwrap_or(false)
            {
                return Err(format!("{dir} is not a directory in the container"));
            }
            let mut a = tar::Archive::new(r.expect("input"));
            a.set_preserve_permissions(true);
            a.set_preserve_mtime(true);
            a.set_overwrite(true);
            for entry in a.entries().map_err(|e| e.to_string())? {
                let mut e = entry.map_err(|e| format!("read tar: {e}"))?;
                // unpack_in refuses `..`, absolute names and writes through
                // symlinks; inside the chroot nothing else is reachable.
                e.unpack_in(target)
                    .map_err(|err| format!("extract {:?}: {err}", e.path().unwrap_or_default()))?;
            }
            Ok(())
        })
    }
}

/// Runs `job` in a child chrooted at the container's root, feeding it
/// `input` through a pipe or collecting its output into `output`.
fn in_root(
    m: &Mounted<'_>,
    input: Option<&mut dyn Read>,
    output: Option<&mut dyn Write>,
    job: impl FnOnce(Option<File>, Option<File>) -> std::result::Result<(), String>,
) -> Result<()> {
    let root = m.root.as_path();
    let pipe = || -> Result<(OwnedFd, OwnedFd)> {
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| io(Path::new("pipe"))(e.into()))
    };
    let (in_r, in_w) = pipe()?;
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let root_c = root.to_path_buf();
    // SAFETY: the child only runs `job` (which allocates; glibc's malloc is
    // fork-safe) and exits with _exit, never returning into the caller.
    match unsafe { fork() }.map_err(|e| io(root)(e.into()))? {
        ForkResult::Child => {
            drop((in_w, out_r, err_r));
            let mut err = File::from(err_w);
            let r = bind_mounts(&root_c, &m.binds)
                .and_then(|()| {
                    match &m.root_fd {
                        Some(fd) => nix::unistd::fchdir(fd)
                            .and_then(|()| nix::unistd::chroot("."))
                            .and_then(|()| nix::unistd::chdir("/")),
                        None => nix::unistd::chroot(&root_c).and_then(|()| nix::unistd::chdir("/")),
                    }
                    .map_err(|e| format!("chroot {}: {e}", root_c.display()))
                })
                .and_then(|()| job(Some(File::from(in_r)), Some(File::from(out_w))));
            let code = match r {
                Ok(()) => 0,
                Err(m) => {
                    let _ = err.write_all(m.as_bytes());
                    1
                }
            };
            // SAFETY: leaves the forked child without running the parent's
            // destructors or atexit handlers.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            drop((in_r, out_w, err_w));
            let mut copy_err = None;
            if let Some(inp) = input {
                let mut w = File::from(in_w);
                if let Err(e) = std::io::copy(inp, &mut w) {
                    // The child may have stopped reading because it failed.
                    if e.kind() != std::io::ErrorKind::BrokenPipe {
                        copy_err = Some(e);
                    }
                }
            } else {
                drop(in_w);
            }
            if let Some(out) = output {
                if let Err(e) = std::io::copy(&mut File::from(out_r), out) {
                    copy_err = Some(e);
                }
            } else {
                drop(out_r);
            }
            let mut msg = String::new();
            let _ = File::from(err_r).read_to_string(&mut msg);
            let status = loop {
                match waitpid(child, None) {
                    Err(nix::Error::EINTR) => continue,
                    other => break other,
                }
            };
            if !msg.is_empty() {
                return Err(Error::Invalid(msg));
            }
            match status {
                Ok(WaitStatus::Exited(_, 0)) => {}
                other => {
                    return Err(Error::Invalid(format!("copy failed: {other:?}")));
                }
            }
            if let Some(e) = copy_err {
                return Err(io(Path::new("copy stream"))(e));
            }
            Ok(())
        }
    }
}

/// In the (forked) child: a private mount namespace with each `(source,
/// target, read-only)` bound at `target` inside `root`. Targets are
/// resolved inside the root (openat2 RESOLVE_IN_ROOT), so a symlink there
/// cannot send a mount elsewhere; a missing target is made.
fn bind_mounts(root: &Path, binds: &[(PathBuf, String, bool)]) -> std::result::Result<(), String> {
    use nix::mount::{mount, MsFlags};
    use std::os::fd::AsRawFd;
    if binds.is_empty() {
        return Ok(());
    }
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .map_err(|e| format!("unshare: {e}"))?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| format!("make / private: {e}"))?;
    let rootfd = berth_runtime::mounts::open_root(root).map_err(|e| e.to_string())?;
    for (src, target, readonly) in binds {
        if !src.exists() {
            continue;
        }
        let rel = Path::new(target.trim_start_matches('/'));
        let how = nix::fcntl::OpenHow::new()
            .flags(nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC)
            .resolve(
                nix::fcntl::ResolveFlag::RESOLVE_IN_ROOT
                    | nix::fcntl::ResolveFlag::RESOLVE_NO_MAGICLINKS,
            );
        // A mount point the container never got (it never started) is made
        // here, as the runtime would: inside the root, symlinks contained.
        let kind = if src.is_dir() {
            berth_runtime::mounts::Kind::Dir
        } else {
            berth_runtime::mounts::Kind::File
        };
        let fd = berth_runtime::mounts::open_in_root(&rootfd, rel, kind)
            .map_err(|e| format!("mount point {target}: {e}"))?;
        let at = format!("/proc/self/fd/{}", fd.as_raw_fd());
        mount(
            Some(src.as_path()),
            at.as_str(),
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(|e| format!("bind {} at {target}: {e}", src.display()))?;
        if *readonly {
            // The fd still names what is under the new mount: look again.
            let fd2 = nix::fcntl::openat2(&rootfd, rel, how)
                .map_err(|e| format!("reopen {target}: {e}"))?;
            let at = format!("/proc/self/fd/{}", fd2.as_raw_fd());
            mount(
                None::<&str>,
                at.as_str(),
                None::<&str>,
                MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY,
                None::<&str>,
            )
            .map_err(|e| format!("make {target} read-only: {e}"))?;
        }
    }
    Ok(())
}

/// Appends `src` (file, symlink or directory tree, never following
/// symlinks) to `b` as `name`; files with several links inside the tree are
/// stored once and then as hard links, as `docker export` does.
pub fn append_tree<W: Write>(
    b: &mut tar::Builder<W>,
    src: &Path,
    name: &Path,
) -> std::io::Result<()> {
    use std::collections::HashMap;
    use std::os::unix::fs::MetadataExt;
    b.follow_symlinks(false);
    let mut seen: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let mut stack = vec![(src.to_path_buf(), name.to_path_buf())];
    while let Some((path, name)) = stack.pop() {
        let md = std::fs::symlink_metadata(&path)?;
        if md.is_dir() {
            b.append_dir(&name, &path)?;
            let mut kids: Vec<_> = std::fs::read_dir(&path)?
                .map(|e| e.map(|e| e.file_name()))
                .collect::<std::io::Result<_>>()?;
            kids.sort();
            for k in kids.into_iter().rev() {
                stack.push((path.join(&k), name.join(&k)));
            }
            continue;
        }
        let ft = md.file_type();
        use std::os::unix::fs::FileTypeExt;
        if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
            // The tar crate's path helpers refuse these: write the header.
            let mut h = tar::Header::new_gnu();
            h.set_metadata(&md);
            h.set_size(0);
            h.set_entry_type(if ft.is_char_device() {
                tar::EntryType::Char
            } else if ft.is_block_device() {
                tar::EntryType::Block
            } else {
                tar::EntryType::Fifo
            });
            if !ft.is_fifo() {
                h.set_device_major(libc::major(md.rdev()))?;
                h.set_device_minor(libc::minor(md.rdev()))?;
            }
            b.append_data(&mut h, &name, std::io::empty())?;
            continue;
        }
        if ft.is_socket() {
            continue;
        }
        if md.is_file() && md.nlink() > 1 {
            let key = (md.dev(), md.ino());
            if let Some(first) = seen.get(&key) {
                let mut h = tar::Header::new_gnu();
                h.set_metadata(&md);
                h.set_entry_type(tar::EntryType::Link);
                h.set_size(0);
                b.append_link(&mut h, &name, first)?;
                continue;
            }
            seen.insert(key, name.clone());
        }
        b.append_path_with_name(&path, &name)?;
    }
    Ok(())
}
