//! Layer applier: an OCI/Docker layer tar -> an overlayfs lower directory.
//!
//! [`unpack_layer`] applies an (uncompressed) layer tar to an empty directory,
//! in overlayfs' format, per the OCI image spec's `layer.md`:
//! regular files, directories, symlinks, hardlinks, device nodes and FIFOs
//! with their modes (setuid/setgid/sticky included), owners, times and
//! `SCHILY.xattr.*` extended attributes; `dir/.wh.name` becomes a 0:0
//! character device `dir/name`, and `dir/.wh..wh..opq` becomes
//! `trusted.overlay.opaque=y` on `dir`. Whiteout entries themselves never
//! appear. The `tar` crate only reads entries; nothing of its `unpack` is used.
//!
//! # Hostile layers
//!
//! Nothing is ever created, changed, chowned, chmodded or xattr'd outside
//! the layer directory (see `apply` for how): every parent is resolved with
//! `openat2(RESOLVE_IN_ROOT)` and only the last component is touched, without
//! following it.
//! - Absolute names are taken relative to the layer directory (as Docker
//!   does); `..` is applied lexically and an entry whose `..` would climb
//!   above the layer root is refused ([`Error::Escape`]).
//! - Symlinks are created as they are (`evil -> /etc` is a valid symlink in
//!   an image); an entry written *through* one (`evil/passwd`) is resolved as
//!   if the layer directory were `/`, so it lands in the layer's own `etc`,
//!   or fails when that does not exist.
//! - A hardlink must name a non-directory entry written earlier by this
//!   layer, reached through no symlink ([`Error::Hardlink`]).
//! - A name or link target with a NUL byte is refused; other bytes (non
//!   UTF-8 included) are used as they are.
//! - PAX headers and GNU long names over 1 MiB and malformed PAX records are
//!   refused, and so is a PAX `size` that the `tar` crate's parser reads
//!   differently from a correct one (the framing would differ); names, link
//!   targets and ids come from our own PAX parse. A stream that ends inside
//!   an entry is refused.
//! - Sparse files (old GNU `S` entries and the PAX formats 0.0/0.1/1.0 that
//!   GNU tar writes) are written sparsely, and zero blocks of any file become
//!   holes, so neither a declared size nor a stream of zeros fills the disk.
//!   Old GNU sparse files may declare at most 1 TiB per layer in total (the
//!   `tar` crate hands their holes out as zeros that must be read through);
//!   a bad sparse map is refused.
//! - `trusted.overlay.*` / `user.overlay.*` xattrs in a layer are dropped:
//!   overlayfs metadata comes only from whiteouts.
//!
//! When a layer whites out an entry it wrote itself earlier, the later
//! whiteout wins (the entry is removed), and a directory created over a
//! whiteout of the same layer is made opaque, so the merged view is what
//! the tar's order says.

mod apply;
mod sparse;
pub(crate) mod sys;
mod tap;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_hostile;
mod util;

use std::cell::RefCell;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("layer directory {}: {source}", path.display())]
    Dest { path: PathBuf, source: io::Error },
    #[error("starting {format} decompression of the layer: {source}")]
    Decompress {
        format: &'static str,
        source: io::Error,
    },
    #[error("reading the layer tar (after entry {after:?}): {source}")]
    Read { after: String, source: io::Error },
    #[error("tar entry {path:?}: {what}: {source}")]
    Fs {
        path: String,
        what: String,
        source: io::Error,
    },
    #[error("tar entry {path:?}: setting xattr {name}: {source}")]
    Xattr {
        path: String,
        name: String,
        source: io::Error,
    },
    #[error("tar entry {path:?}: the name leaves the layer directory ('..' above its root)")]
    Escape { path: String },
    #[error("tar entry {path:?}: hardlink to {target:?} refused: {reason}")]
    Hardlink {
        path: String,
        target: String,
        reason: &'static str,
    },
    #[error("tar entry {path:?}: {what} of {size} bytes is over the limit of {limit} bytes")]
    TooLarge {
        path: String,
        what: &'static str,
        size: u64,
        limit: u64,
    },
    #[error("the layer tar has more than {limit} entries")]
    TooManyEntries { limit: u64 },
    #[error("tar entry {path:?}: {reason}")]
    Malformed { path: String, reason: String },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// The compression of a blob from its first bytes.
pub fn sniff(magic: &[u8]) -> Compression {
    if magic.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// The uncompressed stream of a layer blob. Gzip may have several members
/// (pigz), zstd several frames.
pub fn decompress<'a, R: Read + 'a>(r: R, c: Compression) -> Result<Box<dyn Read + 'a>> {
    Ok(match c {
        Compression::None => Box::new(r),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(r)),
        Compression::Zstd => {
            Box::new(
                zstd::stream::read::Decoder::new(r).map_err(|source| Error::Decompress {
                    format: "zstd",
                    source,
                })?,
            )
        }
    })
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unpacked {
    /// `sha256:<hex>` of the whole uncompressed stream, read to EOF
    /// (padding and the end-of-archive blocks included).
    pub diff_id: String,
    /// Bytes of regular file content (logical sizes).
    pub size: u64,
    /// Tar entries (PAX and GNU long-name headers not counted).
    pub entries: u64,
}

#[derive(Clone, Debug)]
pub struct UnpackOptions {
    /// Apply the entries' uid/gid (lchown) and whiteout ownership: true as root.
    pub keep_ownership: bool,
    /// Refuse a layer with more entries than this.
    pub max_entries: Option<u64>,
}

/// Apply an uncompressed tar stream to the empty directory `dest`.
///
/// On error `dest` holds a partial layer: the caller discards it (berth
/// unpacks into a staging directory that becomes visible only when complete).
pub fn unpack_layer<R: Read>(tar: R, dest: &Path, opts: &UnpackOptions) -> Result<Unpacked> {
    let state = RefCell::new(tap::TapState::new());
    let mut applier = apply::Applier::open(dest, opts)?;
    let mut archive = tar::Archive::new(tap::Tap::new(tar, &state));
    let mut entries = 0u64;
    let mut size = 0u64;
    let mut after = String::from("(start)");
    // A refusal by the tap reaches us as an io::Error from the tar crate;
    // report the refusal itself.
    let read_err = |after: &str, source: io::Error| match state.borrow_mut().violation.take() {
        Some(v) => v,
        None => Error::Read {
            after: after.to_string(),
            source,
        },
    };
    let iter = archive.entries().map_err(|e| read_err(&after, e))?;
    for item in iter {
        let mut entry = item.map_err(|e| read_err(&after, e))?;
        entries += 1;
        if let Some(limit) = opts.max_entries {
            if entries > limit {
                return Err(Error::TooManyEntries { limit });
            }
        }
        let Some(info) = state.borrow_mut().current.take() else {
            return Err(Error::Read {
                after,
                source: io::Error::other("tar entry without a header seen by the reader"),
            });
        };
        match applier.apply(&mut entry, &info) {
            Ok(n) => size += n,
            Err(e) => return Err(state.borrow_mut().violation.take().unwrap_or(e)),
        }
        after = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
    }
    applier.finish_dirs()?;
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(|e| read_err(&after, e))?;
    Ok(Unpacked {
        diff_id: state.into_inner().diff_id(),
        size,
        entries,
    })
}
