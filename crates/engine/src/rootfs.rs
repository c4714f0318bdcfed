//! The container's root filesystem: an overlay of the image's layer dirs
//! (read-only lower dirs) with a per-container upper dir.
//!
//! Layout under `<root>/containers/<id>/`: `l/<n>` symlinks to the layer dirs
//! (short names keep the mount options under a page with many layers),
//! `upper/`, `work/`, `merged/`.

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("mount overlay on {path}: {source} (does the kernel support overlayfs?)")]
    Mount { path: PathBuf, source: nix::Error },
    #[error("mount options for {layers} layers are too long ({len} bytes)")]
    TooManyLayers { layers: usize, len: usize },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A mounted overlay; [`Overlay::remove`] unmounts it and deletes its dirs.
#[derive(Debug)]
pub struct Overlay {
    dir: PathBuf,
    mounted: bool,
}

impl Overlay {
    /// Mounts `lower` (top-most layer first) under `dir`, which must not exist.
    pub fn mount(dir: &Path, lower: &[PathBuf]) -> Result<Overlay, Error> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let mut ov = Overlay {
            dir: dir.to_path_buf(),
            mounted: false,
        };
        if let Err(e) = ov.setup(lower) {
            let _ = ov.remove();
            return Err(e);
        }
        Ok(ov)
    }

    fn setup(&mut self, lower: &[PathBuf]) -> Result<(), Error> {
        let links = self.dir.join("l");
        std::fs::create_dir(&links).map_err(io(&links))?;
        let mut names = Vec::new();
        for (i, l) in lower.iter().enumerate() {
            let link = links.join(i.to_string());
            std::os::unix::fs::symlink(l, &link).map_err(io(&link))?;
            names.push(format!("l/{i}"));
        }
        if names.is_empty() {
            // An image without layers: overlay needs one lower dir.
            let empty = self.dir.join("empty");
            std::fs::create_dir(&empty).map_err(io(&empty))?;
            names.push("empty".into());
        }
        for d in ["upper", "work", "merged"] {
            let p = self.dir.join(d);
            std::fs::create_dir(&p).map_err(io(&p))?;
        }
        let opts = format!("lowerdir={},upperdir=upper,workdir=work", names.join(":"));
        let page = 4096;
        if opts.len() >= page {
            return Err(Error::TooManyLayers {
                layers: lower.len(),
                len: opts.len(),
            });
        }
        // Relative paths resolve against the cwd of the mounting process.
        let prev = std::env::current_dir().map_err(io(Path::new(".")))?;
        std::env::set_current_dir(&self.dir).map_err(io(&self.dir))?;
        let r = mount(
            Some("overlay"),
            "merged",
            Some("overlay"),
            MsFlags::empty(),
            Some(opts.as_str()),
        );
        let back = std::env::set_current_dir(&prev).map_err(io(&prev));
        r.map_err(|source| Error::Mount {
            path: self.merged(),
            source,
        })?;
        self.mounted = true;
        back
    }

    pub fn merged(&self) -> PathBuf {
        self.dir.join("merged")
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Unmounts (lazily when busy) and removes the whole container dir.
    pub fn remove(&mut self) -> Result<(), Error> {
        if self.mounted {
            let m = self.merged();
            if umount2(&m, MntFlags::empty()).is_err() {
                umount2(&m, MntFlags::MNT_DETACH).map_err(|source| Error::Mount {
                    path: m.clone(),
                    source,
                })?;
            }
            self.mounted = false;
        }
        match std::fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(&self.dir)(e)),
        }
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        if self.mounted {
            let _ = self.remove();
        }
    }
}
