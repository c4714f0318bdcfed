//! `docker diff`: what a container changed, from its overlay upper dir and
//! the image's layer dirs below it.
//!
//! Every entry of the upper dir is a change: `D` for a whiteout, else `C`
//! when the lower layers show something at that path and `A` when they do
//! not. A directory in the upper dir that also exists below was copied up
//! because something in it (or its metadata) changed, so it is `C`, as
//! Docker reports it. An opaque directory also hides what the layers had
//! in it: each such name that the upper dir does not have again is `D`.

use super::walk::{self, Node};
use super::{Error, Result};
use nix::sys::stat::SFlag;
use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChangeKind {
    Added,
    Changed,
    Deleted,
}

impl ChangeKind {
    /// `A`, `C` or `D`, as `docker diff` prints it.
    pub fn letter(self) -> char {
        match self {
            ChangeKind::Added => 'A',
            ChangeKind::Changed => 'C',
            ChangeKind::Deleted => 'D',
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Change {
    pub kind: ChangeKind,
    /// Absolute in the container: `/etc/passwd`.
    pub path: String,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind.letter(), self.path)
    }
}

/// The changes in `upper` against the layer dirs `lowers` (top-most
/// first), sorted by path.
pub fn changes(upper: &Path, lowers: &[PathBuf]) -> Result<Vec<Change>> {
    let mut out = Vec::new();
    // Relative dirs of the upper dir the lowers know nothing of: all below
    // them is new, without asking the lowers again.
    let mut added_dirs: Vec<Vec<u8>> = Vec::new();
    walk::walk(upper, &mut |node: &Node<'_>| {
        let path = format!("/{}", String::from_utf8_lossy(node.rel));
        if node.is_whiteout() {
            out.push(Change {
                kind: ChangeKind::Deleted,
                path,
            });
            return Ok(false);
        }
        let under_added = added_dirs
            .iter()
            .any(|d| node.rel.starts_with(d) && node.rel.get(d.len()) == Some(&b'/'));
        let below = if under_added {
            Below::Nothing
        } else {
            lower_view(lowers, node.rel)?
        };
        let is_dir = node.kind() == SFlag::S_IFDIR;
        let kind = match below {
            Below::Nothing => ChangeKind::Added,
            _ => ChangeKind::Changed,
        };
        if is_dir && kind == ChangeKind::Added {
            added_dirs.push(node.rel.to_vec());
        }
        if let Below::Dir(layers) = &below {
            if is_dir && node.is_opaque(upper)? {
                let hidden = lower_names(layers, node.rel)?;
                let dir = nix::fcntl::openat(
                    node.dir,
                    node.name,
                    nix::fcntl::OFlag::O_RDONLY
                        | nix::fcntl::OFlag::O_DIRECTORY
                        | nix::fcntl::OFlag::O_NOFOLLOW
                        | nix::fcntl::OFlag::O_CLOEXEC,
                    nix::sys::stat::Mode::empty(),
                )
                .map_err(|e| walk::upper_err("open", upper, node.rel)(e.into()))?;
                let present: BTreeSet<Vec<u8>> =
                    walk::list(upper, &dir, node.rel)?.into_iter().collect();
                for name in hidden.difference(&present) {
                    out.push(Change {
                        kind: ChangeKind::Deleted,
                        path: format!("{path}/{}", String::from_utf8_lossy(name)),
                    });
                }
            }
        }
        out.push(Change { kind, path });
        Ok(is_dir)
    })?;
    out.sort_by(|a, b| a.path.cmp(&b.path).then(a.kind.cmp(&b.kind)));
    Ok(out)
}

/// What the lower layers show at a path.
enum Below {
    Nothing,
    NotDir,
    /// A directory, merged from these layer dirs (top-most first).
    Dir(Vec<PathBuf>),
}

fn lower_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Lower {
        path: path.to_path_buf(),
        source,
    }
}

fn lstat(path: &Path) -> Result<Option<fs::Metadata>> {
    match fs::symlink_metadata(path) {
        Ok(m) => Ok(Some(m)),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(lower_err(path)(e)),
    }
}

fn whiteout(m: &fs::Metadata) -> bool {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    m.file_type().is_char_device() && m.rdev() == 0
}

fn opaque(path: &Path) -> Result<bool> {
    for key in walk::OPAQUE_XATTRS {
        match crate::unpack::sys::get_xattr(path, key) {
            Ok(v) if v.as_deref() == Some(b"y") => return Ok(true),
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => {}
            Err(e) => return Err(lower_err(path)(e)),
        }
    }
    Ok(false)
}

/// Resolves `rel` through the layers as overlayfs merges them: a whiteout
/// or a non-directory hides everything below it in lower layers, and so
/// does an opaque directory.
fn lower_view(lowers: &[PathBuf], rel: &[u8]) -> Result<Below> {
    let comps: Vec<&[u8]> = rel
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty())
        .collect();
    let mut dirs: Vec<PathBuf> = Vec::new();
    let done = |dirs: Vec<PathBuf>| {
        Ok(if dirs.is_empty() {
            Below::Nothing
        } else {
            Below::Dir(dirs)
        })
    };
    for layer in lowers {
        let mut p = layer.clone();
        let mut present = true;
        let mut stop = false;
        for (i, c) in comps.iter().enumerate() {
            p.push(OsStr::from_bytes(c));
            let Some(m) = lstat(&p)? else {
                present = false;
                break;
            };
            if whiteout(&m) {
                return done(dirs);
            }
            if !m.is_dir() {
                if i + 1 == comps.len() && dirs.is_empty() {
                    return Ok(Below::NotDir);
                }
                return done(dirs);
            }
            if opaque(&p)? {
                stop = true;
            }
        }
        if present {
            dirs.push(layer.clone());
        }
        if stop {
            break;
        }
    }
    done(dirs)
}

/// The names the lowers show in the directory `rel` (given the layers that
/// make it up).
fn lower_names(layers: &[PathBuf], rel: &[u8]) -> Result<BTreeSet<Vec<u8>>> {
    let mut shown = BTreeSet::new();
    let mut hidden = BTreeSet::new();
    for layer in layers {
        let dir = layer.join(OsStr::from_bytes(rel));
        for e in fs::read_dir(&dir).map_err(lower_err(&dir))? {
            let e = e.map_err(lower_err(&dir))?;
            let name = e.file_name().as_bytes().to_vec();
            if hidden.contains(&name) || shown.contains(&name) {
                continue;
            }
            let Some(m) = lstat(&e.path())? else { continue };
            if whiteout(&m) {
                hidden.insert(name);
            } else {
                shown.insert(name);
            }
        }
    }
    Ok(shown)
}
