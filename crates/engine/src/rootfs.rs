//! The container's root filesystem: an overlay of the image's layer dirs
//! (read-only lower dirs) with a per-container upper dir.
//!
//! Layout under `<root>/containers/<id>/`: `l/<n>` symlinks to the layer dirs
//! (short names keep the mount options under a page with many layers),
//! `upper/`, `work/`, `merged/`. [`prepare`] makes the dirs when the
//! container is created; [`mount`] mounts `merged/` when it starts (again
//! after a reboot) and [`unmount`] undoes it when it stops.

use nix::mount::{mount as mount2, umount2, MntFlags, MsFlags};
use std::os::unix::fs::MetadataExt;
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
    #[error("unmount {path}: {source}")]
    Unmount { path: PathBuf, source: nix::Error },
    #[error("mount options for {layers} layers are too long ({len} bytes)")]
    TooManyLayers { layers: usize, len: usize },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The page the kernel copies mount options into.
const PAGE: usize = 4096;

/// Makes `dir` (which must not exist) with links to `lower` (top-most
/// layer first) and empty `upper`, `work` and `merged` dirs.
pub fn prepare(final_dir: &Path, lower: &[PathBuf]) -> Result<(), Error> {
    // Made under a temporary name and renamed into place: a berth killed
    // half-way leaves no half-made container dir (the next start makes it
    // again).
    let mut tmp = final_dir.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    prepare_in(&tmp, lower)?;
    std::fs::rename(&tmp, final_dir).map_err(io(final_dir))?;
    Ok(())
}

fn prepare_in(dir: &Path, lower: &[PathBuf]) -> Result<(), Error> {
    {
        use std::os::unix::fs::DirBuilderExt;
        // Only root may look in: upper/ and merged/ hold what the
        // container made (setuid files, device nodes).
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(dir)
            .map_err(io(dir))?;
    }
    let links = dir.join("l");
    std::fs::create_dir(&links).map_err(io(&links))?;
    for (i, l) in lower.iter().enumerate() {
        let link = links.join(i.to_string());
        std::os::unix::fs::symlink(l, &link).map_err(io(&link))?;
    }
    for d in ["upper", "work", "merged"] {
        let p = dir.join(d);
        std::fs::create_dir(&p).map_err(io(&p))?;
    }
    make_init(dir)?;
    let opts = options(dir)?;
    if opts.len() >= PAGE {
        return Err(Error::TooManyLayers {
            layers: lower.len(),
            len: opts.len(),
        });
    }
    Ok(())
}

/// The init layer (Docker's `-init`): a lower dir above the image's with
/// the mount points berth binds per container (/etc/hosts, /etc/hostname,
/// /etc/resolv.conf) and /dev, /proc, /sys, so they exist without
/// appearing in the container's upper dir (`diff`, `commit`).
fn make_init(dir: &Path) -> Result<(), Error> {
    let init = dir.join("init");
    for d in ["", "etc", "dev", "proc", "sys"] {
        let p = init.join(d);
        std::fs::create_dir_all(&p).map_err(io(&p))?;
    }
    for f in ["etc/hosts", "etc/hostname", "etc/resolv.conf"] {
        let p = init.join(f);
        std::fs::File::create(&p).map_err(io(&p))?;
    }
    Ok(())
}

/// The init layer's dir.
pub fn init_layer(dir: &Path) -> PathBuf {
    dir.join("init")
}

/// The lower dirs `l/<n>` points at, top-most first.
pub fn lowers(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let links = dir.join("l");
    let mut n = 0;
    let mut out = Vec::new();
    loop {
        let link = links.join(n.to_string());
        match std::fs::read_link(&link) {
            Ok(p) => out.push(p),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io(&link)(e)),
        }
        n += 1;
    }
}

fn options(dir: &Path) -> Result<String, Error> {
    let n = lowers(dir)?.len();
    let mut names: Vec<String> = vec!["init".into()];
    names.extend((0..n).map(|i| format!("l/{i}")));
    Ok(format!(
        "lowerdir={},upperdir=upper,workdir=work",
        names.join(":")
    ))
}

pub fn merged(dir: &Path) -> PathBuf {
    dir.join("merged")
}

pub fn upper(dir: &Path) -> PathBuf {
    dir.join("upper")
}

/// Is something mounted on `merged/`? (A mount point has its own device.)
pub fn is_mounted(dir: &Path) -> Result<bool, Error> {
    let m = merged(dir);
    let a = std::fs::metadata(dir).map_err(io(dir))?;
    let b = std::fs::metadata(&m).map_err(io(&m))?;
    Ok(a.dev() != b.dev())
}

/// Mounts the overlay on `merged/` unless it is mounted already.
pub fn mount(dir: &Path) -> Result<(), Error> {
    if is_mounted(dir)? {
        return Ok(());
    }
    let opts = options(dir)?;
    // Relative paths resolve against the cwd of the mounting process; a
    // process-wide chdir is fine here: the CLI and monitor are single-threaded
    // at this point.
    let prev = std::env::current_dir().map_err(io(Path::new(".")))?;
    std::env::set_current_dir(dir).map_err(io(dir))?;
    let r = mount2(
        Some("overlay"),
        "merged",
        Some("overlay"),
        MsFlags::empty(),
        Some(opts.as_str()),
    );
    let back = std::env::set_current_dir(&prev).map_err(io(&prev));
    r.map_err(|source| Error::Mount {
        path: merged(dir),
        source,
    })?;
    back
}

/// Unmounts `merged/` (lazily when busy); nothing mounted is fine.
pub fn unmount(dir: &Path) -> Result<(), Error> {
    let m = merged(dir);
    if !m.exists() || !is_mounted(dir)? {
        return Ok(());
    }
    if umount2(&m, MntFlags::empty()).is_err() {
        umount2(&m, MntFlags::MNT_DETACH).map_err(|source| Error::Unmount {
            path: m.clone(),
            source,
        })?;
    }
    Ok(())
}

/// Unmounts and deletes the whole container dir; a missing dir is fine.
pub fn remove(dir: &Path) -> Result<(), Error> {
    if dir.exists() {
        unmount(dir)?;
    }
    // What a create killed half-way left (see `prepare`).
    let mut tmp = dir.as_os_str().to_owned();
    tmp.push(".tmp");
    let _ = std::fs::remove_dir_all(PathBuf::from(tmp));
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(dir)(e)),
    }
}
