//! Docker's volume copy-up: a volume that is empty when a container is
//! created gets what the image holds at the mount point — files, ownership,
//! modes, and the directory's own owner and mode — unless the mount says
//! `nocopy` (`-v NAME:/path:nocopy`, `--mount ...,volume-nocopy`). A volume
//! that has anything in it is left alone, so data is never overwritten and
//! a second container on the same volume copies nothing.
//!
//! The image side is read by the same chrooted child as `berth export`
//! (no symlink of the image can lead out of its root); the volume side is
//! written by the layer unpacker (`openat2` confined to the volume dir).

use super::{io, Engine, Error, Result};
use crate::db::Record;
use crate::spec_gen::mounts::{volume_data, MountKind, MountSpec};
use nix::fcntl::{Flock, FlockArg};
use std::path::Path;

/// Whether a volume mount asks not to be filled from the image.
fn is_nocopy(m: &MountSpec) -> bool {
    m.options.iter().any(|o| o == "nocopy")
}

fn is_empty_dir(p: &Path) -> Result<bool> {
    Ok(std::fs::read_dir(p).map_err(io(p))?.next().is_none())
}

impl Engine {
    /// Fills the empty volumes of a new container from its image.
    pub(crate) fn copy_up_volumes(&self, rec: &Record, mounts: &[MountSpec]) -> Result<()> {
        for m in mounts {
            if m.kind != MountKind::Volume || is_nocopy(m) {
                continue;
            }
            let data = volume_data(&self.volumes_dir(), &m.source);
            // One copy per volume at a time; the emptiness check under it.
            let dirf = std::fs::File::open(&data).map_err(io(&data))?;
            let _lock = Flock::lock(dirf, FlockArg::LockExclusive).map_err(|(_, e)| Error::Io {
                path: data.clone(),
                source: e.into(),
            })?;
            if !is_empty_dir(&data)? {
                continue;
            }
            self.copy_image_dir(rec, &m.target, &data)
                // Whatever got in is not the image's content: empty it again.
                .inspect_err(|_| empty_dir(&data))?;
        }
        Ok(())
    }

    fn copy_image_dir(&self, rec: &Record, target: &str, data: &Path) -> Result<()> {
        let (r, w) = std::io::pipe().map_err(io(Path::new("pipe")))?;
        let dest = data.to_path_buf();
        let unpacker = std::thread::spawn(move || {
            berth_image::unpack::unpack_layer(r, &dest, &berth_image::archive::unpack_options())
        });
        let mut w = Counted { w, n: 0 };
        let wrote = self.image_dir_tar(rec, target, &mut w);
        let n = w.n;
        drop(w);
        let unpacked = unpacker
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        if n == 0 {
            // No directory there in the image (Ok), or the tar side failed.
            return wrote;
        }
        // An unpacker that stopped makes the tar side fail with a broken
        // pipe: its own error is the cause.
        unpacked.map_err(|e| {
            Error::Invalid(format!("copying the image's {target} into the volume: {e}"))
        })?;
        wrote
    }
}

/// A writer that counts what went through.
struct Counted<W> {
    w: W,
    n: u64,
}

impl<W: std::io::Write> std::io::Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let k = self.w.write(buf)?;
        self.n += k as u64;
        Ok(k)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.w.flush()
    }
}

/// Removes everything inside `dir` (best effort), keeping `dir`.
fn empty_dir(dir: &Path) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            let _ = if e.file_type().is_ok_and(|t| t.is_dir()) {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
        }
    }
}
