//! Filesystem storage of a registry under one root directory:
//!
//! ```text
//! blobs/<alg>/<hex>                          every blob (layers, configs, manifests) once
//! uploads/<id>/data, uploads/<id>/repo       an upload in progress: bytes so far, its repository
//! tmp/<random>                               files being written; renamed into blobs/ when verified
//! repositories/<name>/_blobs/<alg>/<hex>     the blob belongs to the repository (empty file)
//! repositories/<name>/_manifests/<alg>/<hex> the manifest belongs to it (holds its media type)
//! repositories/<name>/_tags/<tag>            holds the digest the tag points at
//! repositories/<name>/_referrers/<alg>/<subject hex>/<alg>-<hex>
//!                                            a manifest whose subject is that digest
//!                                            (holds its descriptor as JSON)
//! ```
//!
//! `gc.lock` is the gc lock: writers that make a blob referenced (commit,
//! link, manifest put) hold it shared and refresh the blob's mtime, `berth
//! registry gc` holds it exclusively while it sweeps, and spares blobs
//! whose mtime is within its grace period.
//!
//! Name components start with a letter or digit, so `_blobs`, `_manifests`
//! and `_tags` never collide with a nested repository name. Everything other
//! requests can see appears by `rename` of a complete, verified file.

use super::{random_id, BlobInfo, ByteStream, Commit, Result, StorageError};
use crate::names::{Digest, Hasher};
use async_trait::async_trait;
use bytes::Bytes;
use std::future::Future;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::SystemTime;
use tokio::task::JoinHandle;

mod batch;
mod chunks;
#[cfg(test)]
use chunks::READ_CHUNK;
use chunks::{FileChunks, FsBlobWriter, FsChunkWriter};

fn io<T>(op: &'static str, path: &Path, r: std::io::Result<T>) -> Result<T> {
    r.map_err(|source| StorageError::Io {
        op,
        path: path.to_path_buf(),
        source,
    })
}

/// `Ok(None)` for a missing file.
fn read_opt(path: &Path) -> Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => io("read", path, Err(e)),
    }
}

/// Removes a file; a missing one is `Ok(false)`.
fn remove_opt(path: &Path) -> Result<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => io("remove", path, Err(e)),
    }
}

/// Runs blocking filesystem work off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StorageError::Other(format!("storage task: {e}")))?
}

/// The filesystem backend. Cheap to clone.
#[derive(Clone)]
pub struct FsStorage {
    root: PathBuf,
}

impl FsStorage {
    /// Opens (creating) the storage directories under `root`.
    pub fn open(root: &Path) -> Result<FsStorage> {
        for d in [
            "blobs/sha256",
            "blobs/sha512",
            "uploads",
            "tmp",
            "repositories",
        ] {
            let p = root.join(d);
            io("create directory", &p, std::fs::create_dir_all(&p))?;
        }
        Ok(FsStorage {
            root: root.to_path_buf(),
        })
    }

    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs").join(d.algorithm).join(&d.hex)
    }

    fn repo_dir(&self, repo: &str) -> PathBuf {
        self.root.join("repositories").join(repo)
    }

    fn blob_link(&self, repo: &str, d: &Digest) -> PathBuf {
        self.repo_dir(repo)
            .join("_blobs")
            .join(d.algorithm)
            .join(&d.hex)
    }

    fn manifest_link(&self, repo: &str, d: &Digest) -> PathBuf {
        self.repo_dir(repo)
            .join("_manifests")
            .join(d.algorithm)
            .join(&d.hex)
    }

    fn tag_path(&self, repo: &str, tag: &str) -> PathBuf {
        self.repo_dir(repo).join("_tags").join(tag)
    }

    /// A fresh path in `tmp/` (same filesystem as `blobs/`).
    pub fn temp_path(&self) -> Result<PathBuf> {
        Ok(self.root.join("tmp").join(random_id()?))
    }

    /// Writes `data` to `path` atomically (temp file, fsync, rename).
    fn write_atomic(&self, path: &Path, data: &[u8]) -> Result<()> {
        if let Some(dir) = path.parent() {
            io("create directory", dir, std::fs::create_dir_all(dir))?;
        }
        let tmp = self.temp_path()?;
        let mut f = io("create", &tmp, std::fs::File::create(&tmp))?;
        io("write", &tmp, f.write_all(data))?;
        io("fsync", &tmp, f.sync_all())?;
        io("rename into place", path, std::fs::rename(&tmp, path))
    }

    /// The size of a stored blob, in any repository.
    pub fn blob_size(&self, d: &Digest) -> Option<u64> {
        std::fs::metadata(self.blob_path(d)).ok().map(|m| m.len())
    }

    /// The size of a blob if it is stored and belongs to `repo`.
    pub fn repo_blob_size(&self, repo: &str, d: &Digest) -> Option<u64> {
        self.blob_link(repo, d)
            .exists()
            .then(|| self.blob_size(d))
            .flatten()
    }

    pub fn link_blob(&self, repo: &str, d: &Digest) -> Result<()> {
        let _gc = self.gc_lock(false)?;
        self.link_blob_locked(repo, d)
    }

    /// [`Self::link_blob`] with the gc lock already held.
    fn link_blob_locked(&self, repo: &str, d: &Digest) -> Result<()> {
        self.touch_blob(d)?;
        let p = self.blob_link(repo, d);
        if p.exists() {
            return Ok(());
        }
        self.write_atomic(&p, b"")
    }

    /// The gc lock (see the module doc), held until the file is dropped.
    pub fn gc_lock(&self, exclusive: bool) -> Result<std::fs::File> {
        let p = self.root.join("gc.lock");
        let f = io(
            "open",
            &p,
            std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&p),
        )?;
        if exclusive {
            io("lock", &p, f.lock())?;
        } else {
            io("lock", &p, f.lock_shared())?;
        }
        Ok(f)
    }

    /// Sets a stored blob's mtime to now, so gc's grace period spares it
    /// while it becomes referenced. A missing blob is fine.
    fn touch_blob(&self, d: &Digest) -> Result<()> {
        let p = self.blob_path(d);
        match std::fs::File::options().write(true).open(&p) {
            Ok(f) => io(
                "set mtime",
                &p,
                f.set_modified(std::time::SystemTime::now()),
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => io("open", &p, Err(e)),
        }
    }

    /// Removes blob `d` from `repo` (the bytes stay for other repositories
    /// and gc); `false` when it was not linked there.
    pub fn unlink_blob(&self, repo: &str, d: &Digest) -> Result<bool> {
        remove_opt(&self.blob_link(repo, d))
    }

    /// Moves a verified file (same filesystem) to `blobs/` and links it into
    /// `repo`. A blob that is already there is kept as it is.
    pub fn commit_file(&self, file: &Path, d: &Digest, repo: &str) -> Result<()> {
        let _gc = self.gc_lock(false)?;
        let dest = self.blob_path(d);
        if dest.exists() {
            remove_opt(file)?;
        } else {
            let f = io("open", file, std::fs::File::open(file))?;
            io("fsync", file, f.sync_all())?;
            io("rename into place", &dest, std::fs::rename(file, &dest))?;
        }
        self.link_blob_locked(repo, d)
    }

    // --- uploads ---

    fn upload_dir(&self, id: &str) -> PathBuf {
        self.root.join("uploads").join(id)
    }

    pub fn upload_data(&self, id: &str) -> PathBuf {
        self.upload_dir(id).join("data")
    }

    /// Starts an upload into `repo`; returns its id.
    pub fn new_upload(&self, repo: &str) -> Result<String> {
        let id = random_id()?;
        let dir = self.upload_dir(&id);
        // Written under tmp/ and renamed, so a crash leaves no upload without
        // its repository file.
        let tmp = self.temp_path()?;
        io("create directory", &tmp, std::fs::create_dir(&tmp))?;
        io("write", &tmp, std::fs::write(tmp.join("repo"), repo))?;
        io("create", &tmp, std::fs::write(tmp.join("data"), b""))?;
        io("rename into place", &dir, std::fs::rename(&tmp, &dir))?;
        Ok(id)
    }

    /// The repository of upload `id` (`None`: no such upload). Ids are
    /// checked to be hex so they cannot name another path.
    pub fn upload_repo(&self, id: &str) -> Result<Option<String>> {
        if !super::valid_upload_id(id) {
            return Ok(None);
        }
        let repo = read_opt(&self.upload_dir(id).join("repo"))?;
        Ok(repo.map(|r| String::from_utf8_lossy(&r).into_owned()))
    }

    /// Bytes received so far.
    pub fn upload_size(&self, id: &str) -> Result<u64> {
        let p = self.upload_data(id);
        Ok(io("stat", &p, std::fs::metadata(&p))?.len())
    }

    pub fn delete_upload(&self, id: &str) -> Result<()> {
        let dir = self.upload_dir(id);
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => io("remove", &dir, Err(e)),
            _ => Ok(()),
        }
    }

    /// Checks the upload's data against `expected` (with its running hash
    /// when it covers every byte, else by reading it); when it matches,
    /// stores it as a blob of `repo`. The upload is gone afterwards either way.
    pub fn commit_upload(
        &self,
        id: &str,
        expected: &Digest,
        repo: &str,
        running: Option<(Hasher, u64)>,
    ) -> Result<Commit> {
        let data = self.upload_data(id);
        let size = self.upload_size(id)?;
        let got = match running {
            Some((h, n)) if n == size && h.algorithm() == expected.algorithm => h.finish(),
            _ => {
                let mut f = io("open", &data, std::fs::File::open(&data))?;
                let mut h = Hasher::new(expected.algorithm);
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let n = io("read", &data, f.read(&mut buf))?;
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                }
                h.finish()
            }
        };
        let out = if &got == expected {
            self.commit_file(&data, expected, repo)?;
            Commit::Stored
        } else {
            Commit::Mismatch(got)
        };
        self.delete_upload(id)?;
        Ok(out)
    }

    // --- manifests and tags ---

    /// Stores a verified manifest in `repo` with its media type, and points
    /// `tag` at it.
    pub fn put_manifest(
        &self,
        repo: &str,
        body: &[u8],
        d: &Digest,
        media_type: &str,
        tag: Option<&str>,
    ) -> Result<()> {
        let _gc = self.gc_lock(false)?;
        let blob = self.blob_path(d);
        if blob.exists() {
            self.touch_blob(d)?;
        } else {
            self.write_atomic(&blob, body)?;
        }
        self.write_atomic(&self.manifest_link(repo, d), media_type.as_bytes())?;
        if let Some(t) = tag {
            self.write_atomic(&self.tag_path(repo, t), d.to_string().as_bytes())?;
        }
        Ok(())
    }

    /// The manifest `d` of `repo`: (bytes, media type).
    pub fn manifest(&self, repo: &str, d: &Digest) -> Result<Option<(Vec<u8>, String)>> {
        let Some(mt) = read_opt(&self.manifest_link(repo, d))? else {
            return Ok(None);
        };
        let Some(body) = read_opt(&self.blob_path(d))? else {
            return Ok(None);
        };
        Ok(Some((body, String::from_utf8_lossy(&mt).into_owned())))
    }

    pub fn has_manifest(&self, repo: &str, d: &Digest) -> bool {
        self.manifest_link(repo, d).exists() && self.blob_path(d).exists()
    }

    pub fn resolve_tag(&self, repo: &str, tag: &str) -> Result<Option<Digest>> {
        let t = read_opt(&self.tag_path(repo, tag))?;
        Ok(t.and_then(|b| Digest::parse(String::from_utf8_lossy(&b).trim())))
    }

    fn referrers_dir(&self, repo: &str, subject: &Digest) -> PathBuf {
        self.repo_dir(repo)
            .join("_referrers")
            .join(subject.algorithm)
            .join(&subject.hex)
    }

    /// Records that manifest `referrer` of `repo` has `subject`, with its
    /// descriptor (JSON) as the referrers API lists it.
    pub fn add_referrer(
        &self,
        repo: &str,
        subject: &Digest,
        referrer: &Digest,
        descriptor: &[u8],
    ) -> Result<()> {
        let p = self
            .referrers_dir(repo, subject)
            .join(format!("{}-{}", referrer.algorithm, referrer.hex));
        self.write_atomic(&p, descriptor)
    }

    pub fn remove_referrer(&self, repo: &str, subject: &Digest, referrer: &Digest) -> Result<()> {
        let p = self
            .referrers_dir(repo, subject)
            .join(format!("{}-{}", referrer.algorithm, referrer.hex));
        remove_opt(&p).map(|_| ())
    }

    /// The descriptors (JSON) of `repo`'s manifests whose subject is
    /// `subject`, ordered by referrer digest.
    pub fn referrers(&self, repo: &str, subject: &Digest) -> Result<Vec<Vec<u8>>> {
        let dir = self.referrers_dir(repo, subject);
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return io("list", &dir, Err(e)),
        };
        let mut names = Vec::new();
        for e in rd {
            names.push(io("list", &dir, e)?.path());
        }
        names.sort();
        let mut out = Vec::new();
        for p in names {
            if let Some(b) = read_opt(&p)? {
                out.push(b);
            }
        }
        Ok(out)
    }

    /// Removes manifest `d` from `repo` and every tag pointing at it. The
    /// blob stays (other repositories may share it; gc is a later slice).
    pub fn delete_manifest(&self, repo: &str, d: &Digest) -> Result<bool> {
        if !remove_opt(&self.manifest_link(repo, d))? {
            return Ok(false);
        }
        for t in self.tags(repo)?.unwrap_or_default() {
            if self.resolve_tag(repo, &t)?.as_ref() == Some(d) {
                remove_opt(&self.tag_path(repo, &t))?;
            }
        }
        Ok(true)
    }

    pub fn delete_tag(&self, repo: &str, tag: &str) -> Result<bool> {
        remove_opt(&self.tag_path(repo, tag))
    }

    /// Sorted tags of `repo`; `None` when the repository does not exist.
    pub fn tags(&self, repo: &str) -> Result<Option<Vec<String>>> {
        let dir = self.repo_dir(repo);
        if !dir.join("_manifests").is_dir() && !dir.join("_blobs").is_dir() {
            return Ok(None);
        }
        let tags = dir.join("_tags");
        let mut out = Vec::new();
        if tags.is_dir() {
            for e in io("list", &tags, std::fs::read_dir(&tags))? {
                let e = io("list", &tags, e)?;
                out.push(e.file_name().to_string_lossy().into_owned());
            }
        }
        out.sort();
        Ok(Some(out))
    }

    // --- for gc ---

    /// The digests named by files `dir/<alg>/<hex>`, with each file's
    /// metadata.
    fn digests_under(dir: &Path) -> Result<Vec<(Digest, std::fs::Metadata)>> {
        let mut out = Vec::new();
        for alg in ["sha256", "sha512"] {
            let d = dir.join(alg);
            let rd = match std::fs::read_dir(&d) {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return io("list", &d, Err(e)),
            };
            for e in rd {
                let e = io("list", &d, e)?;
                let name = e.file_name().to_string_lossy().into_owned();
                let Some(digest) = Digest::parse(&format!("{alg}:{name}")) else {
                    continue;
                };
                match e.metadata() {
                    Ok(m) => out.push((digest, m)),
                    // Removed meanwhile.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(err) => return io("stat", &e.path(), Err(err)),
                }
            }
        }
        Ok(out)
    }

    /// Every stored blob: digest, size, mtime (refreshed when linked).
    pub fn all_blobs(&self) -> Result<Vec<BlobInfo>> {
        let mut out = Vec::new();
        for (d, m) in Self::digests_under(&self.root.join("blobs"))? {
            let p = self.blob_path(&d);
            out.push(BlobInfo {
                touched: io("stat", &p, m.modified())?,
                size: m.len(),
                digest: d,
            });
        }
        Ok(out)
    }

    /// Removes files under `tmp/` last written before `before`.
    pub fn purge_temp(&self, before: SystemTime) -> Result<usize> {
        let dir = self.root.join("tmp");
        let mut n = 0;
        for e in io("list", &dir, std::fs::read_dir(&dir))? {
            let e = io("list", &dir, e)?;
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t < before);
            if old {
                let p = e.path();
                let r = if p.is_dir() {
                    std::fs::remove_dir_all(&p)
                } else {
                    std::fs::remove_file(&p)
                };
                match r {
                    Ok(()) => n += 1,
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                    Err(err) => return io("remove", &p, Err(err)),
                }
            }
        }
        Ok(n)
    }

    /// The manifests `repo` holds (by digest; tags point at these).
    pub fn manifest_digests(&self, repo: &str) -> Result<Vec<Digest>> {
        let dir = self.repo_dir(repo).join("_manifests");
        Ok(Self::digests_under(&dir)?
            .into_iter()
            .map(|(d, _)| d)
            .collect())
    }

    /// The blobs linked into `repo`.
    pub fn blob_links(&self, repo: &str) -> Result<Vec<Digest>> {
        let dir = self.repo_dir(repo).join("_blobs");
        Ok(Self::digests_under(&dir)?
            .into_iter()
            .map(|(d, _)| d)
            .collect())
    }

    /// A stored blob's bytes (`None`: not stored).
    pub fn read_blob(&self, d: &Digest) -> Result<Option<Vec<u8>>> {
        read_opt(&self.blob_path(d))
    }

    /// Removes a blob's bytes; call only under the exclusive gc lock.
    pub fn remove_blob(&self, d: &Digest) -> Result<bool> {
        remove_opt(&self.blob_path(d))
    }

    /// Uploads in progress: id and the time of their last write.
    pub fn uploads(&self) -> Result<Vec<(String, std::time::SystemTime)>> {
        let dir = self.root.join("uploads");
        let mut out = Vec::new();
        for e in io("list", &dir, std::fs::read_dir(&dir))? {
            let e = io("list", &dir, e)?;
            let id = e.file_name().to_string_lossy().into_owned();
            let data = self.upload_data(&id);
            let t = std::fs::metadata(&data)
                .or_else(|_| e.metadata())
                .and_then(|m| m.modified());
            if let Ok(t) = t {
                out.push((id, t));
            }
        }
        Ok(out)
    }

    /// Sorted names of all repositories holding at least one manifest.
    pub fn repositories(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let base = self.root.join("repositories");
        let mut stack = vec![(base.clone(), String::new())];
        while let Some((dir, name)) = stack.pop() {
            for e in io("list", &dir, std::fs::read_dir(&dir))? {
                let e = io("list", &dir, e)?;
                let file = e.file_name().to_string_lossy().into_owned();
                if file == "_manifests" {
                    out.push(name.clone());
                } else if !file.starts_with('_') && e.path().is_dir() {
                    let sub = if name.is_empty() {
                        file
                    } else {
                        format!("{name}/{file}")
                    };
                    stack.push((e.path(), sub));
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

#[async_trait]
impl super::Storage for FsStorage {
    fn describe(&self) -> String {
        format!("filesystem {}", self.root.display())
    }

    async fn check(&self) -> Result<()> {
        Ok(())
    }

    async fn blob_size(&self, d: &Digest) -> Result<Option<u64>> {
        Ok(FsStorage::blob_size(self, d))
    }

    async fn repo_blob_size(&self, repo: &str, d: &Digest) -> Result<Option<u64>> {
        Ok(FsStorage::repo_blob_size(self, repo, d))
    }

    async fn blob_stream(&self, d: &Digest, start: u64, count: u64) -> Result<ByteStream> {
        let path = self.blob_path(d);
        let p = path.clone();
        let file = blocking(move || {
            let mut f = io("open", &p, std::fs::File::open(&p))?;
            if start > 0 {
                io("seek", &p, f.seek(std::io::SeekFrom::Start(start)))?;
            }
            Ok(f)
        })
        .await?;
        Ok(Box::pin(FileChunks::new(file, path, count)))
    }

    async fn read_blob(&self, d: &Digest) -> Result<Option<Vec<u8>>> {
        let s = self.clone();
        let d = d.clone();
        blocking(move || FsStorage::read_blob(&s, &d)).await
    }

    async fn blob_writer(&self) -> Result<Box<dyn super::BlobWriter>> {
        let path = self.temp_path()?;
        let file = io("create", &path, std::fs::File::create(&path))?;
        Ok(Box::new(FsBlobWriter {
            storage: self.clone(),
            path,
            file: Some(batch::BatchFile::new(file)),
        }))
    }

    async fn link_blob(&self, repo: &str, d: &Digest) -> Result<()> {
        let (s, repo, d) = (self.clone(), repo.to_string(), d.clone());
        blocking(move || FsStorage::link_blob(&s, &repo, &d)).await
    }

    async fn unlink_blob(&self, repo: &str, d: &Digest) -> Result<bool> {
        FsStorage::unlink_blob(self, repo, d)
    }

    async fn blob_links(&self, repo: &str) -> Result<Vec<Digest>> {
        FsStorage::blob_links(self, repo)
    }

    async fn all_blobs(&self) -> Result<Vec<BlobInfo>> {
        let s = self.clone();
        blocking(move || FsStorage::all_blobs(&s)).await
    }

    async fn remove_blob(&self, d: &Digest) -> Result<bool> {
        FsStorage::remove_blob(self, d)
    }

    /// The exclusive gc lock: writers that make a blob referenced hold it
    /// shared (see the module doc).
    async fn sweep_lock(&self) -> Result<Box<dyn std::any::Any + Send>> {
        let s = self.clone();
        let f = blocking(move || s.gc_lock(true)).await?;
        Ok(Box::new(f))
    }

    async fn new_upload(&self, repo: &str) -> Result<String> {
        FsStorage::new_upload(self, repo)
    }

    async fn upload_repo(&self, id: &str) -> Result<Option<String>> {
        FsStorage::upload_repo(self, id)
    }

    async fn upload_size(&self, id: &str) -> Result<u64> {
        FsStorage::upload_size(self, id)
    }

    async fn chunk_writer(&self, id: &str, start: u64) -> Result<Box<dyn super::ChunkWriter>> {
        let path = self.upload_data(id);
        let file = io(
            "open",
            &path,
            std::fs::OpenOptions::new().append(true).open(&path),
        )?;
        Ok(Box::new(FsChunkWriter {
            path,
            start,
            file: Some(batch::BatchFile::new(file)),
        }))
    }

    async fn commit_upload(
        &self,
        id: &str,
        expected: &Digest,
        repo: &str,
        running: Option<(Hasher, u64)>,
    ) -> Result<Commit> {
        let (s, id, expected, repo) = (
            self.clone(),
            id.to_string(),
            expected.clone(),
            repo.to_string(),
        );
        blocking(move || FsStorage::commit_upload(&s, &id, &expected, &repo, running)).await
    }

    async fn delete_upload(&self, id: &str) -> Result<()> {
        FsStorage::delete_upload(self, id)
    }

    async fn uploads(&self) -> Result<Vec<(String, SystemTime)>> {
        FsStorage::uploads(self)
    }

    async fn purge_temp(&self, before: SystemTime) -> Result<usize> {
        let s = self.clone();
        blocking(move || FsStorage::purge_temp(&s, before)).await
    }

    async fn put_manifest(
        &self,
        repo: &str,
        body: &[u8],
        d: &Digest,
        media_type: &str,
        tag: Option<&str>,
    ) -> Result<()> {
        let (s, repo, body, d, mt, tag) = (
            self.clone(),
            repo.to_string(),
            body.to_vec(),
            d.clone(),
            media_type.to_string(),
            tag.map(str::to_string),
        );
        blocking(move || FsStorage::put_manifest(&s, &repo, &body, &d, &mt, tag.as_deref())).await
    }

    async fn manifest(&self, repo: &str, d: &Digest) -> Result<Option<(Vec<u8>, String)>> {
        FsStorage::manifest(self, repo, d)
    }

    async fn has_manifest(&self, repo: &str, d: &Digest) -> Result<bool> {
        Ok(FsStorage::has_manifest(self, repo, d))
    }

    async fn manifest_digests(&self, repo: &str) -> Result<Vec<Digest>> {
        FsStorage::manifest_digests(self, repo)
    }

    async fn delete_manifest(&self, repo: &str, d: &Digest) -> Result<bool> {
        FsStorage::delete_manifest(self, repo, d)
    }

    async fn resolve_tag(&self, repo: &str, tag: &str) -> Result<Option<Digest>> {
        FsStorage::resolve_tag(self, repo, tag)
    }

    async fn delete_tag(&self, repo: &str, tag: &str) -> Result<bool> {
        FsStorage::delete_tag(self, repo, tag)
    }

    async fn tags(&self, repo: &str) -> Result<Option<Vec<String>>> {
        FsStorage::tags(self, repo)
    }

    async fn add_referrer(
        &self,
        repo: &str,
        subject: &Digest,
        referrer: &Digest,
        descriptor: &[u8],
    ) -> Result<()> {
        FsStorage::add_referrer(self, repo, subject, referrer, descriptor)
    }

    async fn remove_referrer(&self, repo: &str, subject: &Digest, referrer: &Digest) -> Result<()> {
        FsStorage::remove_referrer(self, repo, subject, referrer)
    }

    async fn referrers(&self, repo: &str, subject: &Digest) -> Result<Vec<Vec<u8>>> {
        FsStorage::referrers(self, repo, subject)
    }

    async fn repositories(&self) -> Result<Vec<String>> {
        let s = self.clone();
        blocking(move || FsStorage::repositories(&s)).await
    }
}

#[cfg(test)]
mod tests;
