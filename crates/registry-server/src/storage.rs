//! The registry's storage, behind one trait ([`Storage`]) with two backends:
//!
//! - [`FsStorage`] (the default, `--root DIR`): files under one directory;
//! - [`S3Storage`] (`[storage.s3]` in the config): objects in an
//!   S3-compatible bucket (`object_store`), shareable by several replicas.
//!
//! Both keep the same layout (the S3 one under its key prefix):
//!
//! ```text
//! blobs/<alg>/<hex>                          every blob (layers, configs, manifests) once
//! uploads/<id>/...                           an upload in progress: its repository and bytes
//! tmp/<random>                               blobs being written; moved into blobs/ when verified
//! repositories/<name>/_blobs/<alg>/<hex>     the blob belongs to the repository (empty)
//! repositories/<name>/_manifests/<alg>/<hex> the manifest belongs to it (holds its media type)
//! repositories/<name>/_tags/<tag>            holds the digest the tag points at
//! repositories/<name>/_referrers/<alg>/<subject hex>/<alg>-<hex>
//!                                            a manifest whose subject is that digest
//!                                            (holds its descriptor as JSON)
//! ```
//!
//! A blob becomes visible (under `blobs/`) only once its digest was
//! verified: it is written elsewhere first (`tmp/`, an upload) and then
//! renamed (fs) or copied (S3, which has no rename) into place; readers
//! only ever look at `blobs/`. See `docs/architecture.md` for each
//! backend's details and what gc may assume of each.

mod fs;
mod s3;

pub use fs::FsStorage;
pub use s3::{S3Config, S3Storage};

use crate::names::{Digest, Hasher};
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::BoxStream;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("registry storage: {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("registry storage: S3 {op} {key}: {source}")]
    S3 {
        op: &'static str,
        key: String,
        source: Box<object_store::Error>,
    },
    #[error("registry storage: {0}")]
    Other(String),
}

pub type Result<T> = std::result::Result<T, StorageError>;

/// A blob's bytes as they are read.
pub type ByteStream = BoxStream<'static, std::io::Result<Bytes>>;

/// 16 random bytes as hex.
pub fn random_id() -> Result<String> {
    let p = Path::new("/dev/urandom");
    let mut b = [0u8; 16];
    let mut f = std::fs::File::open(p).map_err(|source| StorageError::Io {
        op: "open",
        path: p.to_path_buf(),
        source,
    })?;
    f.read_exact(&mut b).map_err(|source| StorageError::Io {
        op: "read",
        path: p.to_path_buf(),
        source,
    })?;
    Ok(hex::encode(b))
}

/// Whether `id` can be an upload id (hex, as [`random_id`] makes them),
/// so that it cannot name another path or key.
pub fn valid_upload_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The outcome of finishing an upload against an expected digest.
pub enum Commit {
    Stored,
    /// The data hashed to this digest instead; nothing was stored.
    Mismatch(Digest),
}

/// A stored blob, as gc sees it.
#[derive(Debug, Clone)]
pub struct BlobInfo {
    pub digest: Digest,
    pub size: u64,
    /// When it was last written or made referenced (linked into a
    /// repository, or its manifest put again): gc spares it while young.
    pub touched: SystemTime,
}

/// A blob being written. Nothing of it is visible until [`Self::commit`],
/// which the caller calls only after checking the digest of what it wrote.
#[async_trait]
pub trait BlobWriter: Send {
    async fn write(&mut self, data: Bytes) -> Result<()>;
    /// Stores what was written as blob `d` (kept as it is when already
    /// stored) and links it into `repo`.
    async fn commit(self: Box<Self>, d: &Digest, repo: &str) -> Result<()>;
    /// Throws away what was written.
    async fn abort(self: Box<Self>) -> Result<()>;
}

/// One chunk being appended to an upload: taken whole ([`Self::finish`])
/// or not at all ([`Self::abort`]).
#[async_trait]
pub trait ChunkWriter: Send {
    async fn write(&mut self, data: Bytes) -> Result<()>;
    async fn finish(self: Box<Self>) -> Result<()>;
    async fn abort(self: Box<Self>) -> Result<()>;
}

/// Everything the registry's handlers and gc need of storage.
///
/// Repository names, tags and digests are checked by the callers (the
/// distribution grammar: no `..`, no empty components); upload ids are
/// checked here ([`valid_upload_id`]).
#[async_trait]
pub trait Storage: Send + Sync + 'static {
    /// For logs: `filesystem /var/lib/...` or `s3 http://...`.
    fn describe(&self) -> String;

    /// Checks at start that the storage can be used (the bucket answers
    /// and takes writes).
    async fn check(&self) -> Result<()>;

    // --- blobs ---

    /// The size of a stored blob, in any repository.
    async fn blob_size(&self, d: &Digest) -> Result<Option<u64>>;
    /// The size of a blob if it is stored and linked into `repo`.
    async fn repo_blob_size(&self, repo: &str, d: &Digest) -> Result<Option<u64>>;
    /// `count` bytes of blob `d` from byte `start` (both within its size).
    async fn blob_stream(&self, d: &Digest, start: u64, count: u64) -> Result<ByteStream>;
    /// A whole stored blob (manifests, for gc): `None` when not stored.
    async fn read_blob(&self, d: &Digest) -> Result<Option<Vec<u8>>>;
    /// A new blob to write, invisible until committed.
    async fn blob_writer(&self) -> Result<Box<dyn BlobWriter>>;
    /// Links stored blob `d` into `repo`, refreshing its gc age.
    async fn link_blob(&self, repo: &str, d: &Digest) -> Result<()>;
    /// Removes blob `d` from `repo` (the bytes stay for other repositories
    /// and gc); `false` when it was not linked there.
    async fn unlink_blob(&self, repo: &str, d: &Digest) -> Result<bool>;
    /// The blobs linked into `repo`.
    async fn blob_links(&self, repo: &str) -> Result<Vec<Digest>>;
    /// Every stored blob.
    async fn all_blobs(&self) -> Result<Vec<BlobInfo>>;
    /// Removes a blob's bytes (gc only).
    async fn remove_blob(&self, d: &Digest) -> Result<bool>;
    /// What gc holds while it sweeps (see each backend).
    async fn sweep_lock(&self) -> Result<Box<dyn std::any::Any + Send>>;

    // --- uploads ---

    /// Starts an upload into `repo`; returns its id.
    async fn new_upload(&self, repo: &str) -> Result<String>;
    /// The repository of upload `id` (`None`: no such upload).
    async fn upload_repo(&self, id: &str) -> Result<Option<String>>;
    /// Bytes received so far.
    async fn upload_size(&self, id: &str) -> Result<u64>;
    /// A chunk to append at byte `start` (the upload's size).
    async fn chunk_writer(&self, id: &str, start: u64) -> Result<Box<dyn ChunkWriter>>;
    /// Checks the upload's bytes against `expected` (`running`: their hash
    /// so far and how many bytes it covers, when this process has it; used
    /// when it covers every byte) and when they match stores them as a
    /// blob of `repo`. The upload is gone afterwards either way.
    async fn commit_upload(
        &self,
        id: &str,
        expected: &Digest,
        repo: &str,
        running: Option<(Hasher, u64)>,
    ) -> Result<Commit>;
    async fn delete_upload(&self, id: &str) -> Result<()>;
    /// Uploads in progress: id and the time of their last write.
    async fn uploads(&self) -> Result<Vec<(String, SystemTime)>>;
    /// Removes blobs left half-written (a crash between write and commit)
    /// last written before `before`: how many.
    async fn purge_temp(&self, before: SystemTime) -> Result<usize>;

    // --- manifests, tags, referrers ---

    /// Stores a verified manifest in `repo` with its media type, and points
    /// `tag` at it.
    async fn put_manifest(
        &self,
        repo: &str,
        body: &[u8],
        d: &Digest,
        media_type: &str,
        tag: Option<&str>,
    ) -> Result<()>;
    /// The manifest `d` of `repo`: (bytes, media type).
    async fn manifest(&self, repo: &str, d: &Digest) -> Result<Option<(Vec<u8>, String)>>;
    async fn has_manifest(&self, repo: &str, d: &Digest) -> Result<bool>;
    /// The manifests `repo` holds (by digest; tags point at these).
    async fn manifest_digests(&self, repo: &str) -> Result<Vec<Digest>>;
    /// Removes manifest `d` from `repo` and every tag pointing at it (the
    /// bytes stay for gc); `false` when `repo` did not hold it.
    async fn delete_manifest(&self, repo: &str, d: &Digest) -> Result<bool>;
    async fn resolve_tag(&self, repo: &str, tag: &str) -> Result<Option<Digest>>;
    async fn delete_tag(&self, repo: &str, tag: &str) -> Result<bool>;
    /// Sorted tags of `repo`; `None` when the repository does not exist.
    async fn tags(&self, repo: &str) -> Result<Option<Vec<String>>>;
    /// Records that manifest `referrer` of `repo` has `subject`, with its
    /// descriptor (JSON) as the referrers API lists it.
    async fn add_referrer(
        &self,
        repo: &str,
        subject: &Digest,
        referrer: &Digest,
        descriptor: &[u8],
    ) -> Result<()>;
    async fn remove_referrer(&self, repo: &str, subject: &Digest, referrer: &Digest) -> Result<()>;
    /// The descriptors (JSON) of `repo`'s manifests whose subject is
    /// `subject`, ordered by referrer digest.
    async fn referrers(&self, repo: &str, subject: &Digest) -> Result<Vec<Vec<u8>>>;
    /// Sorted names of all repositories holding at least one manifest.
    async fn repositories(&self) -> Result<Vec<String>>;
}

/// The storage a registry config asks for: its `[storage.s3]` bucket,
/// else the filesystem under `root`.
pub async fn open(
    s3: Option<&S3Config>,
    root: &Path,
) -> std::result::Result<Arc<dyn Storage>, StorageError> {
    let s: Arc<dyn Storage> = match s3 {
        Some(c) => Arc::new(S3Storage::new(c)?),
        None => Arc::new(FsStorage::open(root)?),
    };
    s.check().await?;
    Ok(s)
}
