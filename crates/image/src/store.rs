//! The content store on disk:
//!
//! ```text
//! blobs/sha256/<hex>   blobs exactly as pulled, verified before they appear
//! ingest/<key>/        a resumable partial download (flock'ed `lock`, `data`)
//! layers/<hex>/diff    an unpacked layer, named by chain id; appears complete
//! layers/tmp-*         layer staging dirs (locked while in use)
//! tmp/                 temporary files for atomic writes
//! ```
//!
//! Nothing here holds a lock across the store: each ingest and each staging
//! dir has its own, so many processes can pull at once.

use crate::digest::{self, Digest};
use nix::fcntl::{Flock, FlockArg};
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

pub use crate::ingest::Ingest;

/// Unlocked staging dirs and temp files older than this are removed on open.
pub const STALE_TMP: Duration = Duration::from_secs(60 * 60);
/// Unlocked partial downloads untouched for this long are removed on open.
pub const STALE_INGEST: Duration = Duration::from_secs(24 * 60 * 60);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("lock {}: {source}", path.display())]
    Lock { path: PathBuf, source: nix::Error },
    #[error("digest mismatch for {what}: expected {expected}, the content hashes to {actual}; nothing was stored")]
    DigestMismatch {
        what: String,
        expected: Digest,
        actual: Digest,
    },
    #[error(
        "size mismatch for {what}: expected {expected} bytes, got {actual}; nothing was stored"
    )]
    SizeMismatch {
        what: String,
        expected: u64,
        actual: u64,
    },
    #[error("download of {what} is incomplete: {actual} of {expected} bytes; it can be resumed")]
    Incomplete {
        what: String,
        expected: u64,
        actual: u64,
    },
    #[error("blob {digest} is {size} bytes, more than the {limit}-byte limit")]
    TooLarge {
        digest: Digest,
        size: u64,
        limit: u64,
    },
    #[error("blob {digest} is corrupt: its content hashes to {actual}; remove {} and pull again", path.display())]
    Corrupt {
        digest: Digest,
        actual: Digest,
        path: PathBuf,
    },
    #[error("blob {0} is not in the store")]
    BlobNotFound(Digest),
    #[error("invalid ingest key {0:?}: use letters, digits, '.', '_', ':' and '-'")]
    InvalidKey(String),
    #[error("layer staging dir {} has no diff directory", .0.display())]
    StagingIncomplete(PathBuf),
    #[error("write layer metadata {}: {source}", path.display())]
    Meta {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error(transparent)]
    Digest(#[from] digest::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io { op, path, source }
}

/// Metadata kept beside a layer's `diff` as `layer.json`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LayerMeta {
    pub diff_id: Digest,
    /// Chain id of the layer below, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Digest>,
    /// The (compressed) blob it was unpacked from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blob_digest: Option<Digest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Bytes of uncompressed tar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

/// The image store's files under one root.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Opens (creating if needed) a store at `root`, and removes what
    /// crashed processes left behind (unlocked and stale).
    pub fn open(root: impl AsRef<Path>) -> Result<Store> {
        let root = root.as_ref().to_path_buf();
        if !root.is_dir() {
            DirBuilder::new()
                .recursive(true)
                .mode(0o711)
                .create(&root)
                .map_err(io_err("create directory", &root))?;
        }
        let store = Store { root };
        for d in [
            store.root.join("blobs").join("sha256"),
            store.ingest_root(),
            store.layers_root(),
            store.tmp_dir(),
        ] {
            mkdir_private(&d)?;
        }
        // Each staging dir under layers/ is its own tree: spread them over
        // the filesystem (see topdir.rs for what this saves on ext4).
        crate::topdir::mark(&store.layers_root());
        store.cleanup_stale();
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Scratch space on the store's filesystem (for atomic renames).
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub(crate) fn ingest_root(&self) -> PathBuf {
        self.root.join("ingest")
    }

    fn layers_root(&self) -> PathBuf {
        self.root.join("layers")
    }

    // ---- blobs ----

    /// `blobs/<algorithm>/<hex>` (it may not exist).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(digest.algorithm().as_str())
            .join(digest.hex())
    }

    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// The blob's size, or `None` when it is not stored.
    pub fn blob_size(&self, digest: &Digest) -> Result<Option<u64>> {
        let path = self.blob_path(digest);
        match fs::metadata(&path) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("stat", &path)(e)),
        }
    }

    /// Opens a stored blob for streaming (verified when it was stored).
    pub fn open_blob(&self, digest: &Digest) -> Result<File> {
        let path = self.blob_path(digest);
        File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::BlobNotFound(digest.clone()),
            _ => io_err("open", &path)(e),
        })
    }

    /// Reads a whole blob of at most `max` bytes (a manifest or config),
    /// re-verifying its digest.
    pub fn read_blob(&self, digest: &Digest, max: u64) -> Result<Vec<u8>> {
        let path = self.blob_path(digest);
        let f = self.open_blob(digest)?;
        let size = f.metadata().map_err(io_err("stat", &path))?.len();
        if size > max {
            return Err(Error::TooLarge {
                digest: digest.clone(),
                size,
                limit: max,
            });
        }
        let mut bytes = Vec::with_capacity(size as usize);
        f.take(max + 1)
            .read_to_end(&mut bytes)
            .map_err(io_err("read", &path))?;
        let actual = Digest::of(digest.algorithm(), &bytes);
        if actual != *digest {
            return Err(Error::Corrupt {
                digest: digest.clone(),
                actual,
                path,
            });
        }
        Ok(bytes)
    }

    /// Stores `bytes` as blob `expected` after checking they hash to it.
    /// Atomic: the blob appears whole or not at all.
    pub fn put_blob(&self, bytes: &[u8], expected: &Digest) -> Result<PathBuf> {
        let actual = Digest::of(expected.algorithm(), bytes);
        if actual != *expected {
            return Err(Error::DigestMismatch {
                what: format!("blob {expected}"),
                expected: expected.clone(),
                actual,
            });
        }
        let target = self.blob_path(expected);
        if target.is_file() {
            return Ok(target);
        }
        let tmp = self.tmp_dir().join(unique_name("blob-"));
        let write = || -> io::Result<()> {
            let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()
        };
        if let Err(e) = write() {
            let _ = fs::remove_file(&tmp);
            return Err(io_err("write", &tmp)(e));
        }
        self.install_blob(&tmp, &target)?;
        Ok(target)
    }

    /// Renames a verified, synced file into `blobs/`, then syncs the dir.
    pub(crate) fn install_blob(&self, from: &Path, target: &Path) -> Result<()> {
        let parent = target.parent().unwrap_or(&self.root);
        mkdir_private(parent)?;
        if let Err(e) = fs::rename(from, target) {
            let _ = fs::remove_file(from);
            return Err(io_err("rename into", target)(e));
        }
        sync_dir(parent)
    }

    /// Removes a blob; false when it was not there.
    pub fn remove_blob(&self, digest: &Digest) -> Result<bool> {
        let path = self.blob_path(digest);
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err("remove", &path)(e)),
        }
    }

    /// Every stored blob (for garbage collection).
    pub fn list_blobs(&self) -> Result<Vec<Digest>> {
        let mut out = Vec::new();
        for alg in [digest::Algorithm::Sha256, digest::Algorithm::Sha512] {
            let dir = self.root.join("blobs").join(alg.as_str());
            for name in read_dir_names(&dir)? {
                if let Ok(d) = Digest::from_hex(alg, &name) {
                    out.push(d);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    // ---- ingest ----

    /// Opens the partial download `key` (e.g. a digest's hex), waiting while
    /// another process holds it. After it returns, check [`Store::has_blob`]:
    /// the other process may have finished the same blob meanwhile.
    pub fn ingest(&self, key: &str) -> Result<Ingest> {
        Ingest::open(self, key, true).map(|i| i.expect("blocking open yields an ingest"))
    }

    /// Like [`Store::ingest`], but `None` at once when another holds it.
    pub fn try_ingest(&self, key: &str) -> Result<Option<Ingest>> {
        Ingest::open(self, key, false)
    }

    // ---- layers ----

    /// `layers/<hex>`: a committed layer (its `diff` and `layer.json`).
    pub fn layer_path(&self, chain_id: &Digest) -> PathBuf {
        self.layers_root().join(chain_id.hex())
    }

    /// `layers/<hex>/diff`: the unpacked layer, an overlay lower dir.
    pub fn layer_dir(&self, chain_id: &Digest) -> PathBuf {
        self.layer_path(chain_id).join("diff")
    }

    pub fn has_layer(&self, chain_id: &Digest) -> bool {
        self.layer_dir(chain_id).is_dir()
    }

    /// The metadata written by [`Store::commit_layer_with`], if any.
    pub fn layer_meta(&self, chain_id: &Digest) -> Result<Option<LayerMeta>> {
        let path = self.layer_path(chain_id).join("layer.json");
        match fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|source| Error::Meta { path, source }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("read", &path)(e)),
        }
    }

    /// Every committed layer's chain id.
    pub fn list_layers(&self) -> Result<Vec<Digest>> {
        let mut out: Vec<Digest> = read_dir_names(&self.layers_root())?
            .iter()
            .filter_map(|n| Digest::from_hex(digest::Algorithm::Sha256, n).ok())
            .collect();
        out.sort();
        Ok(out)
    }

    /// A fresh, locked `layers/tmp-…` dir with an empty `diff/` to unpack
    /// into ([`Staging::path`]). Dropped without commit, it is removed.
    pub fn layer_staging(&self) -> Result<Staging> {
        let layers = self.layers_root();
        loop {
            let dir = layers.join(unique_name("tmp-"));
            match DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_err("create directory", &dir)(e)),
            }
            let mut staging = Staging {
                diff: dir.join("diff"),
                dir,
                lock: None,
                done: false,
            };
            let f = File::open(&staging.dir).map_err(io_err("open", &staging.dir))?;
            let lock = Flock::lock(f, FlockArg::LockExclusiveNonblock).map_err(|(_, source)| {
                Error::Lock {
                    path: staging.dir.clone(),
                    source,
                }
            })?;
            staging.lock = Some(lock);
            DirBuilder::new()
                .mode(0o755)
                .create(&staging.diff)
                .map_err(io_err("create directory", &staging.diff))?;
            return Ok(staging);
        }
    }

    /// Makes a fully unpacked staging dir the layer `chain_id`, atomically.
    /// If the layer already exists (another pull won), the staging dir is
    /// discarded. Returns the layer's `diff` dir.
    pub fn commit_layer(&self, staging: Staging, chain_id: &Digest) -> Result<PathBuf> {
        self.commit(staging, chain_id, None)
    }

    /// [`Store::commit_layer`] that also records `meta` as `layer.json`.
    pub fn commit_layer_with(
        &self,
        staging: Staging,
        chain_id: &Digest,
        meta: &LayerMeta,
    ) -> Result<PathBuf> {
        self.commit(staging, chain_id, Some(meta))
    }

    fn commit(
        &self,
        mut staging: Staging,
        chain_id: &Digest,
        meta: Option<&LayerMeta>,
    ) -> Result<PathBuf> {
        let target = self.layer_path(chain_id);
        if target.join("diff").is_dir() {
            return Ok(target.join("diff"));
        }
        if !staging.diff.is_dir() {
            return Err(Error::StagingIncomplete(staging.dir.clone()));
        }
        if let Some(meta) = meta {
            let path = staging.dir.join("layer.json");
            let json = serde_json::to_vec_pretty(meta).map_err(|source| Error::Meta {
                path: path.clone(),
                source,
            })?;
            let mut f = File::create(&path).map_err(io_err("create", &path))?;
            f.write_all(&json).map_err(io_err("write", &path))?;
        }
        // Everything unpacked must be on disk before the layer is visible.
        let dirf = File::open(&staging.dir).map_err(io_err("open", &staging.dir))?;
        nix::unistd::syncfs(&dirf).map_err(|e| Error::Io {
            op: "syncfs",
            path: staging.dir.clone(),
            source: e.into(),
        })?;
        match fs::rename(&staging.dir, &target) {
            Ok(()) => {
                staging.done = true;
                sync_dir(&self.layers_root())?;
                Ok(target.join("diff"))
            }
            // A complete layer is never an empty dir, so rename(2) refuses
            // to replace it: someone else committed it first.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTEMPTY) | Some(libc::EEXIST)) => {
                Ok(target.join("diff"))
            }
            Err(e) => Err(io_err("rename into", &target)(e)),
        }
    }

    /// Removes a layer: first renamed away (so it never looks complete while
    /// half deleted), then deleted. False when it was not there.
    pub fn remove_layer(&self, chain_id: &Digest) -> Result<bool> {
        let path = self.layer_path(chain_id);
        let doomed = self.layers_root().join(unique_name("tmp-del-"));
        match fs::rename(&path, &doomed) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io_err("rename", &path)(e)),
        }
        remove_tree(&doomed).map_err(io_err("remove", &doomed))?;
        Ok(true)
    }

    // ---- housekeeping ----

    /// Removes unlocked staging dirs, temp files and partial downloads that
    /// crashed processes left. Best effort: errors are ignored.
    pub fn cleanup_stale(&self) {
        let now = SystemTime::now();
        let older = |p: &Path, age: Duration| {
            fs::symlink_metadata(p)
                .and_then(|m| m.modified())
                .map(|t| now.duration_since(t).unwrap_or_default() > age)
                .unwrap_or(false)
        };
        for name in read_dir_names(&self.layers_root()).unwrap_or_default() {
            let p = self.layers_root().join(&name);
            if !name.starts_with("tmp-") || !older(&p, STALE_TMP) {
                continue;
            }
            let Ok(f) = File::open(&p) else { continue };
            if let Ok(_lock) = Flock::lock(f, FlockArg::LockExclusiveNonblock) {
                let _ = remove_tree(&p);
            }
        }
        for name in read_dir_names(&self.tmp_dir()).unwrap_or_default() {
            let p = self.tmp_dir().join(name);
            if older(&p, STALE_TMP) {
                let _ = fs::remove_file(&p).or_else(|_| remove_tree(&p));
            }
        }
        for name in read_dir_names(&self.ingest_root()).unwrap_or_default() {
            let dir = self.ingest_root().join(name);
            let newest = ["data", "lock"]
                .iter()
                .any(|f| !older(&dir.join(f), STALE_INGEST) && dir.join(f).exists());
            if newest || !older(&dir, STALE_INGEST) {
                continue;
            }
            let Ok(f) = File::open(dir.join("lock")) else {
                // Left between mkdir and open: remove it only if empty.
                let _ = fs::remove_dir(&dir);
                continue;
            };
            if let Ok(_lock) = Flock::lock(f, FlockArg::LockExclusiveNonblock) {
                let _ = crate::ingest::remove_ingest_dir(&dir);
            }
        }
    }
}

/// A layer being unpacked: `layers/tmp-…/` (locked) holding `diff/`.
#[derive(Debug)]
pub struct Staging {
    dir: PathBuf,
    diff: PathBuf,
    lock: Option<Flock<File>>,
    done: bool,
}

impl Staging {
    /// Where to unpack the layer (`layers/tmp-…/diff`, empty at first).
    pub fn path(&self) -> &Path {
        &self.diff
    }

    /// The staging dir itself (`layers/tmp-…`), renamed on commit.
    pub fn root(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.done {
            let _ = remove_tree(&self.dir);
        }
        self.lock.take();
    }
}

/// ChainIDs per the OCI image spec: `ChainID(L0) = DiffID(L0)`,
/// `ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))`.
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(parent) => Digest::sha256_of(format!("{parent} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}

/// `mkdir -p` with mode 0700 for what it creates.
pub(crate) fn mkdir_private(dir: &Path) -> Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_err("create directory", dir))
}

/// fsync a directory, so a rename in it is durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io_err("sync", dir))
}

/// A name unique within this host (pid, time, counter).
pub(crate) fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{}-{nanos:x}-{n}", std::process::id())
}

fn read_dir_names(dir: &Path) -> Result<Vec<String>> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("read directory", dir)(e)),
    };
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(io_err("read directory", dir))?;
        if let Ok(name) = entry.file_name().into_string() {
            out.push(name);
        }
    }
    Ok(out)
}

/// `rm -rf`, also of trees with read-only directories (as unpacked layers
/// have); a missing path is fine.
pub(crate) fn remove_tree(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            make_dirs_writable(path);
            match fs::remove_dir_all(path) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                r => r,
            }
        }
        Err(e) => Err(e),
    }
}

fn make_dirs_writable(path: &Path) {
    let Ok(m) = fs::symlink_metadata(path) else {
        return;
    };
    if !m.is_dir() {
        return;
    }
    if m.mode() & 0o700 != 0o700 {
        let _ = fs::set_permissions(path, fs::Permissions::from_mode(m.mode() | 0o700));
    }
    if let Ok(rd) = fs::read_dir(path) {
        for e in rd.flatten() {
            make_dirs_writable(&e.path());
        }
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
