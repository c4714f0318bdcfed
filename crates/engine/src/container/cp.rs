//! `cp` and `export`: files in and out of a container's root filesystem as
//! tar streams. Every path inside the container is resolved by a forked
//! child chrooted into the container's rootfs, so a symlink the container
//! made (absolute, `..`, swapped in while we copy) cannot lead outside it
//! (the CVE-2018-15664 class). A stopped container's rootfs is mounted for
//! the copy and unmounted after.

use super::{io, Engine, Error, Result};
use crate::db::{Record, Status};
use crate::rootfs;
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
    _eng: &'a Engine,
}

impl Drop for Mounted<'_> {
    fn drop(&mut self) {
        if self.ours {
            let _ = rootfs::unmount(&self.dir);
        }
    }
}

impl Engine {
    fn mount_for_copy(&self, rec: &Record) -> Result<Mounted<'_>> {
        let dir = self.dir(&rec.id);
        let ours = rec.status != Status::Running && !rootfs::is_mounted(&dir)?;
        rootfs::mount(&dir)?;
        Ok(Mounted {
            dir,
            ours,
            _eng: self,
        })
    }

    /// Is `path` (in the container) a directory, something else, or absent?
    pub fn path_kind(&self, rec: &Record, path: &str) -> Result<PathKind> {
        let m = self.mount_for_copy(rec)?;
        let path = path.to_string();
        let mut out = Vec::new();
        in_root(
            &rootfs::merged(&m.dir),
            None,
            Some(&mut out),
            move |_, w| {
                let kind = match std::fs::metadata(&path) {
                    Ok(md) if md.is_dir() => b'd',
                    Ok(_) => b'f',
                    Err(_) => b'-',
                };
                w.expect("output")
                    .write_all(&[kind])
                    .map_err(|e| e.to_string())
            },
        )?;
        Ok(match out.first() {
            Some(b'd') => PathKind::Dir,
            Some(b'f') => PathKind::Other,
            _ => PathKind::Missing,
        })
    }

    /// Writes a tar of `path` (named `name` in the archive; `.` for the
    /// whole rootfs) to `out`.
    pub fn copy_from(
        &self,
        rec: &Record,
        path: &str,
        name: &str,
        out: &mut dyn Write,
    ) -> Result<()> {
        let m = self.mount_for_copy(rec)?;
        let (path, name) = (path.to_string(), name.to_string());
        in_root(&rootfs::merged(&m.dir), None, Some(out), move |_, w| {
            let w = w.expect("output");
            let src = Path::new(&path);
            let md = std::fs::symlink_metadata(src)
                .map_err(|e| format!("could not find the file {path} in container: {e}"))?;
            let mut b = tar::Builder::new(w);
            b.follow_symlinks(false);
            let r = if md.is_dir() {
                b.append_dir_all(&name, src)
            } else {
                b.append_path_with_name(src, &name)
            };
            r.and_then(|()| b.finish())
                .map_err(|e| format!("copy {path}: {e}"))
        })
    }

    /// Extracts the tar `input` into the directory `dir` of the container
    /// (owned by root, like `docker cp`).
    pub fn copy_to(&self, rec: &Record, dir: &str, input: &mut dyn Read) -> Result<()> {
        let m = self.mount_for_copy(rec)?;
        let dir = dir.to_string();
        in_root(&rootfs::merged(&m.dir), Some(input), None, move |r, _| {
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

/// Runs `job` in a child chrooted at `root`, feeding it `input` through a
/// pipe or collecting its output into `output`.
fn in_root(
    root: &Path,
    input: Option<&mut dyn Read>,
    output: Option<&mut dyn Write>,
    job: impl FnOnce(Option<File>, Option<File>) -> std::result::Result<(), String>,
) -> Result<()> {
    let pipe = || -> Result<(OwnedFd, OwnedFd)> {
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| io(Path::new("pipe"))(e.into()))
    };
    let (in_r, in_w) = pipe()?;
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let root_c = root.to_path_buf();
    // SAFETY: the CLI is single-threaded here; the child only runs `job`
    // and exits with _exit, never returning into the caller.
    match unsafe { fork() }.map_err(|e| io(root)(e.into()))? {
        ForkResult::Child => {
            drop((in_w, out_r, err_r));
            let mut err = File::from(err_w);
            let r = nix::unistd::chroot(&root_c)
                .and_then(|()| nix::unistd::chdir("/"))
                .map_err(|e| format!("chroot {}: {e}", root_c.display()))
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
