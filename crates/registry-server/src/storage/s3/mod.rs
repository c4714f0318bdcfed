//! The S3-compatible backend (`[storage.s3]`): the same layout as the
//! filesystem one (see [`super`]) as object keys under `prefix/`, so that
//! several registry replicas can share one bucket. No state is kept in the
//! process that correctness depends on:
//!
//! - an upload is `uploads/<id>/repo` (its repository) and one object per
//!   chunk, `uploads/<id>/chunks/<offset, 20 digits>`; its size is the sum
//!   of its chunks, which must follow each other. A chunk object appears
//!   whole (a single PUT, or a multipart upload completed only when the
//!   request body ended with the announced length) or not at all, so any
//!   replica can take the next chunk, and an upload survives restarts;
//! - a blob is written to `tmp/<random>` (a monolithic upload's body as it
//!   arrives, an upload's chunks read back at its end) while it is hashed,
//!   and only when its digest matches copied to `blobs/<alg>/<hex>` (S3 has
//!   no rename); readers look only there. Only the request that made a
//!   temp key writes it, so the bytes copied are the bytes hashed. Two
//!   replicas storing the same blob at once copy the same bytes to the
//!   same key;
//! - gc's grace period looks at the newest of a blob's own last-modified
//!   time and those of its links (`_blobs`, `_manifests`), which every
//!   link and manifest put rewrites: there is no lock across replicas.

use super::{random_id, valid_upload_id, BlobInfo, ByteStream, Commit, Result, StorageError};
use crate::names::{Digest, Hasher};
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::buffered::BufWriter;
use object_store::path::Path as Key;
use object_store::{
    BackoffConfig, ClientOptions, GetOptions, GetRange, ObjectMeta, ObjectStore, ObjectStoreExt,
    PutPayload, RetryConfig,
};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::io::AsyncWriteExt;

mod config;
pub use config::S3Config;

/// The S3 backend. Cheap to clone.
#[derive(Clone)]
pub struct S3Storage {
    store: Arc<dyn ObjectStore>,
    /// `""` or `"a/b/"`.
    prefix: String,
    desc: String,
}

/// Chunks are buffered up to this many bytes before a multipart upload
/// starts (its parts are at least 5 MiB, as S3 needs).
const WRITE_BUFFER: usize = 8 << 20;

fn s3err(op: &'static str, key: &Key, e: object_store::Error) -> StorageError {
    StorageError::S3 {
        op,
        key: key.to_string(),
        source: Box::new(e),
    }
}

fn io_err(e: object_store::Error) -> std::io::Error {
    std::io::Error::other(e)
}

impl S3Storage {
    pub fn new(c: &S3Config) -> Result<S3Storage> {
        if let Some(p) = c.problem() {
            return Err(StorageError::Other(p));
        }
        let (key_id, secret) = c.credentials()?;
        let endpoint = c.endpoint.trim_end_matches('/').to_string();
        let store = AmazonS3Builder::new()
            .with_endpoint(&endpoint)
            .with_bucket_name(&c.bucket)
            .with_region(&c.region)
            .with_access_key_id(key_id)
            .with_secret_access_key(secret)
            .with_virtual_hosted_style_request(false)
            .with_client_options(
                ClientOptions::new()
                    .with_allow_http(endpoint.starts_with("http://"))
                    .with_connect_timeout(Duration::from_secs(5))
                    // No total timeout: a blob download may take long.
                    .with_timeout_disabled(),
            )
            .with_retry(RetryConfig {
                backoff: BackoffConfig::default(),
                max_retries: 3,
                retry_timeout: Duration::from_secs(30),
            })
            .build()
            .map_err(|e| StorageError::Other(format!("[storage.s3]: {e}")))?;
        let prefix = if c.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", c.prefix.trim_end_matches('/'))
        };
        Ok(S3Storage {
            store: Arc::new(store),
            desc: format!("s3 {endpoint} bucket {} prefix {:?}", c.bucket, c.prefix),
            prefix,
        })
    }

    /// The key of `rel` (a path of the layout).
    fn key(&self, rel: &str) -> Result<Key> {
        let full = format!("{}{rel}", self.prefix);
        Key::parse(&full).map_err(|e| StorageError::Other(format!("bad key {full:?}: {e}")))
    }

    /// `rel` of a listed key.
    fn rel<'a>(&self, key: &'a Key) -> &'a str {
        let s = key.as_ref();
        s.strip_prefix(&self.prefix).unwrap_or(s)
    }

    fn blob_key(&self, d: &Digest) -> Result<Key> {
        self.key(&format!("blobs/{}/{}", d.algorithm, d.hex))
    }

    fn repo_key(&self, repo: &str, rest: &str) -> Result<Key> {
        self.key(&format!("repositories/{repo}/{rest}"))
    }

    fn blob_link(&self, repo: &str, d: &Digest) -> Result<Key> {
        self.repo_key(repo, &format!("_blobs/{}/{}", d.algorithm, d.hex))
    }

    fn manifest_link(&self, repo: &str, d: &Digest) -> Result<Key> {
        self.repo_key(repo, &format!("_manifests/{}/{}", d.algorithm, d.hex))
    }

    fn tag_key(&self, repo: &str, tag: &str) -> Result<Key> {
        self.repo_key(repo, &format!("_tags/{tag}"))
    }

    fn referrer_key(&self, repo: &str, subject: &Digest, referrer: &Digest) -> Result<Key> {
        self.repo_key(
            repo,
            &format!(
                "_referrers/{}/{}/{}-{}",
                subject.algorithm, subject.hex, referrer.algorithm, referrer.hex
            ),
        )
    }

    fn upload_key(&self, id: &str, rest: &str) -> Result<Key> {
        if !valid_upload_id(id) {
            return Err(StorageError::Other(format!("invalid upload id {id:?}")));
        }
        self.key(&format!("uploads/{id}/{rest}"))
    }

    async fn head(&self, key: &Key) -> Result<Option<ObjectMeta>> {
        match self.store.head(key).await {
            Ok(m) => Ok(Some(m)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(s3err("head", key, e)),
        }
    }

    async fn get(&self, key: &Key) -> Result<Option<Bytes>> {
        let r = match self.store.get(key).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(s3err("get", key, e)),
        };
        match r.bytes().await {
            Ok(b) => Ok(Some(b)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(s3err("get", key, e)),
        }
    }

    async fn put(&self, key: &Key, data: impl Into<PutPayload>) -> Result<()> {
        self.store
            .put(key, data.into())
            .await
            .map(|_| ())
            .map_err(|e| s3err("put", key, e))
    }

    async fn delete(&self, key: &Key) -> Result<()> {
        match self.store.delete(key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(s3err("delete", key, e)),
        }
    }

    /// Deletes `key`: whether it was there.
    async fn delete_existing(&self, key: &Key) -> Result<bool> {
        if self.head(key).await?.is_none() {
            return Ok(false);
        }
        self.delete(key).await?;
        Ok(true)
    }

    /// Every object under `rel/`.
    async fn list(&self, rel: &str) -> Result<Vec<ObjectMeta>> {
        let p = self.key(rel)?;
        self.store
            .list(Some(&p))
            .try_collect()
            .await
            .map_err(|e| s3err("list", &p, e))
    }

    /// Whether anything is under `rel/`.
    async fn any_under(&self, rel: &str) -> Result<bool> {
        let p = self.key(rel)?;
        match self.store.list(Some(&p)).next().await {
            None => Ok(false),
            Some(Ok(_)) => Ok(true),
            Some(Err(e)) => Err(s3err("list", &p, e)),
        }
    }

    /// The digests named by keys `rel/<alg>/<hex>`, with their metadata.
    /// The digests under `rel`, without their metadata.
    async fn digest_list(&self, rel: &str) -> Result<Vec<Digest>> {
        Ok(self
            .digests_under(rel)
            .await?
            .into_iter()
            .map(|(d, _)| d)
            .collect())
    }

    async fn digests_under(&self, rel: &str) -> Result<Vec<(Digest, ObjectMeta)>> {
        let mut out = Vec::new();
        for m in self.list(rel).await? {
            let r = self.rel(&m.location);
            let Some(tail) = r.strip_prefix(rel).and_then(|t| t.strip_prefix('/')) else {
                continue;
            };
            let Some((alg, hex)) = tail.split_once('/') else {
                continue;
            };
            if let Some(d) = Digest::parse(&format!("{alg}:{hex}")) {
                out.push((d, m));
            }
        }
        Ok(out)
    }

    /// Copies verified bytes at `from` to blob `d` (kept when already
    /// there); `from` stays.
    async fn place(&self, from: &Key, d: &Digest) -> Result<()> {
        let dest = self.blob_key(d)?;
        if self.head(&dest).await?.is_none() {
            self.store
                .copy(from, &dest)
                .await
                .map_err(|e| s3err("copy", from, e))?;
        }
        Ok(())
    }

    fn writer(&self, key: Key) -> BufWriter {
        BufWriter::with_capacity(self.store.clone(), key, WRITE_BUFFER).with_max_concurrency(2)
    }

    fn new_blob_writer(&self) -> Result<S3BlobWriter> {
        let key = self.key(&format!("tmp/{}", random_id()?))?;
        Ok(S3BlobWriter {
            storage: self.clone(),
            w: Some(self.writer(key.clone())),
            key,
        })
    }

    /// Upload `id`'s chunks: (offset, size, key), in order. They must
    /// follow each other.
    async fn chunks(&self, id: &str) -> Result<Vec<(u64, u64, Key)>> {
        let rel = format!("uploads/{id}/chunks");
        if !valid_upload_id(id) {
            return Err(StorageError::Other(format!("invalid upload id {id:?}")));
        }
        let mut out = Vec::new();
        for m in self.list(&rel).await? {
            let name = self.rel(&m.location).rsplit('/').next().unwrap_or("");
            let Ok(off) = name.parse::<u64>() else {
                return Err(StorageError::Other(format!(
                    "upload {id}: unexpected object {}",
                    m.location
                )));
            };
            out.push((off, m.size, m.location));
        }
        out.sort_by_key(|c| c.0);
        let mut at = 0u64;
        for (off, size, key) in &out {
            if *off != at {
                return Err(StorageError::Other(format!(
                    "upload {id}: chunk {key} starts at byte {off}, not {at}"
                )));
            }
            at += size;
        }
        Ok(out)
    }

    /// Streams upload chunks through `h` into `w`.
    async fn concat(
        &self,
        chunks: &[(u64, u64, Key)],
        h: &mut Hasher,
        w: &mut S3BlobWriter,
    ) -> Result<()> {
        use super::BlobWriter as _;
        for (_, _, key) in chunks {
            let r = self
                .store
                .get(key)
                .await
                .map_err(|e| s3err("get", key, e))?;
            let mut s = r.into_stream();
            while let Some(b) = s.next().await {
                let b = b.map_err(|e| s3err("get", key, e))?;
                h.update(&b);
                w.write(b).await?;
            }
        }
        Ok(())
    }
}

/// A blob being written to `tmp/<random>`.
struct S3BlobWriter {
    storage: S3Storage,
    key: Key,
    w: Option<BufWriter>,
}

#[async_trait]
impl super::BlobWriter for S3BlobWriter {
    async fn write(&mut self, data: Bytes) -> Result<()> {
        let w = self.w.as_mut().expect("blob writer used after commit");
        w.put(data).await.map_err(|e| s3err("put", &self.key, e))
    }

    async fn commit(mut self: Box<Self>, d: &Digest, repo: &str) -> Result<()> {
        use super::Storage as _;
        let mut w = self.w.take().expect("blob writer used after commit");
        if let Err(e) = w.shutdown().await {
            let _ = w.abort().await;
            return Err(StorageError::Other(format!("S3 put {}: {e}", self.key)));
        }
        let r = self.storage.place(&self.key, d).await;
        self.storage.delete(&self.key).await?;
        r?;
        self.storage.link_blob(repo, d).await
    }

    async fn abort(mut self: Box<Self>) -> Result<()> {
        if let Some(mut w) = self.w.take() {
            w.abort().await.map_err(|e| s3err("abort", &self.key, e))?;
        }
        Ok(())
    }
}

/// One chunk of an upload: `uploads/<id>/chunks/<offset>`.
struct S3ChunkWriter {
    key: Key,
    w: BufWriter,
    n: u64,
}

#[async_trait]
impl super::ChunkWriter for S3ChunkWriter {
    async fn write(&mut self, data: Bytes) -> Result<()> {
        self.n += data.len() as u64;
        self.w
            .put(data)
            .await
            .map_err(|e| s3err("put", &self.key, e))
    }

    async fn finish(mut self: Box<Self>) -> Result<()> {
        if self.n == 0 {
            // An empty chunk adds nothing: no object.
            return self
                .w
                .abort()
                .await
                .map_err(|e| s3err("abort", &self.key, e));
        }
        if let Err(e) = self.w.shutdown().await {
            let _ = self.w.abort().await;
            return Err(StorageError::Other(format!("S3 put {}: {e}", self.key)));
        }
        Ok(())
    }

    async fn abort(mut self: Box<Self>) -> Result<()> {
        self.w
            .abort()
            .await
            .map_err(|e| s3err("abort", &self.key, e))
    }
}

#[async_trait]
impl super::Storage for S3Storage {
    fn describe(&self) -> String {
        self.desc.clone()
    }

    /// Writes, reads and deletes a probe object.
    async fn check(&self) -> Result<()> {
        let k = self.key(&format!("tmp/probe-{}", random_id()?))?;
        self.put(&k, Bytes::from_static(b"probe")).await?;
        let got = self.get(&k).await?;
        self.delete(&k).await?;
        if got.as_deref() != Some(b"probe".as_slice()) {
            return Err(StorageError::Other(format!(
                "{}: a probe object read back differently",
                self.desc
            )));
        }
        Ok(())
    }

    async fn blob_size(&self, d: &Digest) -> Result<Option<u64>> {
        Ok(self.head(&self.blob_key(d)?).await?.map(|m| m.size))
    }

    async fn repo_blob_size(&self, repo: &str, d: &Digest) -> Result<Option<u64>> {
        if self.head(&self.blob_link(repo, d)?).await?.is_none() {
            return Ok(None);
        }
        self.blob_size(d).await
    }

    async fn blob_stream(&self, d: &Digest, start: u64, count: u64) -> Result<ByteStream> {
        let key = self.blob_key(d)?;
        let opts = GetOptions {
            range: Some(GetRange::Bounded(start..start + count)),
            ..GetOptions::default()
        };
        let r = self
            .store
            .get_opts(&key, opts)
            .await
            .map_err(|e| s3err("get", &key, e))?;
        Ok(Box::pin(r.into_stream().map_err(io_err)))
    }

    async fn read_blob(&self, d: &Digest) -> Result<Option<Vec<u8>>> {
        Ok(self.get(&self.blob_key(d)?).await?.map(|b| b.to_vec()))
    }

    async fn blob_writer(&self) -> Result<Box<dyn super::BlobWriter>> {
        Ok(Box::new(self.new_blob_writer()?))
    }

    /// Always rewrites the link: its last-modified time is the blob's gc age.
    async fn link_blob(&self, repo: &str, d: &Digest) -> Result<()> {
        self.put(&self.blob_link(repo, d)?, Bytes::new()).await
    }

    async fn unlink_blob(&self, repo: &str, d: &Digest) -> Result<bool> {
        self.delete_existing(&self.blob_link(repo, d)?).await
    }

    async fn blob_links(&self, repo: &str) -> Result<Vec<Digest>> {
        self.digest_list(&format!("repositories/{repo}/_blobs"))
            .await
    }

    /// A blob's age is the newest of its own and its links' times.
    async fn all_blobs(&self) -> Result<Vec<BlobInfo>> {
        let mut touched: HashMap<Digest, SystemTime> = HashMap::new();
        for m in self.list("repositories").await? {
            let parts: Vec<&str> = self.rel(&m.location).split('/').collect();
            let n = parts.len();
            if n < 5 || !matches!(parts[n - 3], "_blobs" | "_manifests") {
                continue;
            }
            if let Some(d) = Digest::parse(&format!("{}:{}", parts[n - 2], parts[n - 1])) {
                let t = SystemTime::from(m.last_modified);
                let e = touched.entry(d).or_insert(t);
                *e = (*e).max(t);
            }
        }
        Ok(self
            .digests_under("blobs")
            .await?
            .into_iter()
            .map(|(d, m)| {
                let own = SystemTime::from(m.last_modified);
                BlobInfo {
                    touched: touched.get(&d).map_or(own, |t| own.max(*t)),
                    size: m.size,
                    digest: d,
                }
            })
            .collect())
    }

    async fn remove_blob(&self, d: &Digest) -> Result<bool> {
        self.delete_existing(&self.blob_key(d)?).await
    }

    /// Nothing: no lock spans replicas. gc relies on its grace period
    /// (see [`Self::all_blobs`] and docs/architecture.md).
    async fn sweep_lock(&self) -> Result<Box<dyn std::any::Any + Send>> {
        Ok(Box::new(()))
    }

    async fn new_upload(&self, repo: &str) -> Result<String> {
        let id = random_id()?;
        self.put(
            &self.upload_key(&id, "repo")?,
            Bytes::from(repo.as_bytes().to_vec()),
        )
        .await?;
        Ok(id)
    }

    async fn upload_repo(&self, id: &str) -> Result<Option<String>> {
        if !valid_upload_id(id) {
            return Ok(None);
        }
        let repo = self.get(&self.upload_key(id, "repo")?).await?;
        Ok(repo.map(|r| String::from_utf8_lossy(&r).into_owned()))
    }

    async fn upload_size(&self, id: &str) -> Result<u64> {
        Ok(self.chunks(id).await?.iter().map(|c| c.1).sum())
    }

    async fn chunk_writer(&self, id: &str, start: u64) -> Result<Box<dyn super::ChunkWriter>> {
        let key = self.upload_key(id, &format!("chunks/{start:020}"))?;
        Ok(Box::new(S3ChunkWriter {
            w: self.writer(key.clone()),
            key,
            n: 0,
        }))
    }

    async fn commit_upload(
        &self,
        id: &str,
        expected: &Digest,
        repo: &str,
        running: Option<(Hasher, u64)>,
    ) -> Result<Commit> {
        use super::BlobWriter as _;
        let chunks = self.chunks(id).await?;
        let size: u64 = chunks.iter().map(|c| c.1).sum();
        let known = match running {
            Some((h, n)) if n == size && h.algorithm() == expected.algorithm => Some(h.finish()),
            _ => None,
        };
        // What this process hashed as it came in may not be what the bucket
        // holds now (another replica may have written a chunk of the same
        // upload meanwhile): it can refuse, or link a blob already stored
        // and verified, but a new blob is always hashed from the bytes
        // copied into a temp object only this request writes.
        let out = match known {
            Some(got) if &got != expected => Commit::Mismatch(got),
            Some(_) if self.blob_size(expected).await?.is_some() => {
                self.link_blob(repo, expected).await?;
                Commit::Stored
            }
            _ => {
                let mut h = Hasher::new(expected.algorithm);
                let mut w = self.new_blob_writer()?;
                if let Err(e) = self.concat(&chunks, &mut h, &mut w).await {
                    let _ = Box::new(w).abort().await;
                    return Err(e);
                }
                let got = h.finish();
                if &got == expected {
                    Box::new(w).commit(expected, repo).await?;
                    Commit::Stored
                } else {
                    Box::new(w).abort().await?;
                    Commit::Mismatch(got)
                }
            }
        };
        self.delete_upload(id).await?;
        Ok(out)
    }

    /// Chunks first, then the repository object: an upload half deleted is
    /// still listed, and purged later.
    async fn delete_upload(&self, id: &str) -> Result<()> {
        if !valid_upload_id(id) {
            return Ok(());
        }
        let repo_key = self.upload_key(id, "repo")?;
        for m in self.list(&format!("uploads/{id}")).await? {
            if m.location != repo_key {
                self.delete(&m.location).await?;
            }
        }
        self.delete(&repo_key).await
    }

    async fn uploads(&self) -> Result<Vec<(String, SystemTime)>> {
        let mut last: BTreeMap<String, SystemTime> = BTreeMap::new();
        for m in self.list("uploads").await? {
            let rel = self.rel(&m.location);
            let Some(id) = rel
                .strip_prefix("uploads/")
                .and_then(|r| r.split('/').next())
            else {
                continue;
            };
            let t = SystemTime::from(m.last_modified);
            let e = last.entry(id.to_string()).or_insert(t);
            *e = (*e).max(t);
        }
        Ok(last.into_iter().collect())
    }

    async fn purge_temp(&self, before: SystemTime) -> Result<usize> {
        let mut n = 0;
        for m in self.list("tmp").await? {
            if SystemTime::from(m.last_modified) < before {
                self.delete(&m.location).await?;
                n += 1;
            }
        }
        Ok(n)
    }

    async fn put_manifest(
        &self,
        repo: &str,
        body: &[u8],
        d: &Digest,
        media_type: &str,
        tag: Option<&str>,
    ) -> Result<()> {
        let blob = self.blob_key(d)?;
        // The digest of `body` was checked: one PUT is atomic.
        if self.head(&blob).await?.is_none() {
            self.put(&blob, Bytes::from(body.to_vec())).await?;
        }
        self.put(
            &self.manifest_link(repo, d)?,
            Bytes::from(media_type.as_bytes().to_vec()),
        )
        .await?;
        if let Some(t) = tag {
            self.put(
                &self.tag_key(repo, t)?,
                Bytes::from(d.to_string().into_bytes()),
            )
            .await?;
        }
        Ok(())
    }

    async fn manifest(&self, repo: &str, d: &Digest) -> Result<Option<(Vec<u8>, String)>> {
        let Some(mt) = self.get(&self.manifest_link(repo, d)?).await? else {
            return Ok(None);
        };
        let Some(body) = self.get(&self.blob_key(d)?).await? else {
            return Ok(None);
        };
        Ok(Some((
            body.to_vec(),
            String::from_utf8_lossy(&mt).into_owned(),
        )))
    }

    async fn has_manifest(&self, repo: &str, d: &Digest) -> Result<bool> {
        Ok(self.head(&self.manifest_link(repo, d)?).await?.is_some()
            && self.head(&self.blob_key(d)?).await?.is_some())
    }

    async fn manifest_digests(&self, repo: &str) -> Result<Vec<Digest>> {
        self.digest_list(&format!("repositories/{repo}/_manifests"))
            .await
    }

    async fn delete_manifest(&self, repo: &str, d: &Digest) -> Result<bool> {
        if !self.delete_existing(&self.manifest_link(repo, d)?).await? {
            return Ok(false);
        }
        for t in self.tags(repo).await?.unwrap_or_default() {
            if self.resolve_tag(repo, &t).await?.as_ref() == Some(d) {
                self.delete(&self.tag_key(repo, &t)?).await?;
            }
        }
        Ok(true)
    }

    async fn resolve_tag(&self, repo: &str, tag: &str) -> Result<Option<Digest>> {
        let t = self.get(&self.tag_key(repo, tag)?).await?;
        Ok(t.and_then(|b| Digest::parse(String::from_utf8_lossy(&b).trim())))
    }

    async fn delete_tag(&self, repo: &str, tag: &str) -> Result<bool> {
        self.delete_existing(&self.tag_key(repo, tag)?).await
    }

    async fn tags(&self, repo: &str) -> Result<Option<Vec<String>>> {
        let base = format!("repositories/{repo}");
        if !self.any_under(&format!("{base}/_manifests")).await?
            && !self.any_under(&format!("{base}/_blobs")).await?
        {
            return Ok(None);
        }
        let dir = format!("{base}/_tags/");
        let mut out: Vec<String> = self
            .list(&format!("{base}/_tags"))
            .await?
            .iter()
            .filter_map(|m| self.rel(&m.location).strip_prefix(&dir).map(str::to_string))
            .filter(|t| !t.contains('/'))
            .collect();
        out.sort();
        Ok(Some(out))
    }

    async fn add_referrer(
        &self,
        repo: &str,
        subject: &Digest,
        referrer: &Digest,
        descriptor: &[u8],
    ) -> Result<()> {
        self.put(
            &self.referrer_key(repo, subject, referrer)?,
            Bytes::from(descriptor.to_vec()),
        )
        .await
    }

    async fn remove_referrer(&self, repo: &str, subject: &Digest, referrer: &Digest) -> Result<()> {
        self.delete(&self.referrer_key(repo, subject, referrer)?)
            .await
    }

    async fn referrers(&self, repo: &str, subject: &Digest) -> Result<Vec<Vec<u8>>> {
        let rel = format!(
            "repositories/{repo}/_referrers/{}/{}",
            subject.algorithm, subject.hex
        );
        let mut keys: Vec<Key> = self
            .list(&rel)
            .await?
            .into_iter()
            .map(|m| m.location)
            .collect();
        keys.sort_by(|a, b| a.as_ref().cmp(b.as_ref()));
        let mut out = Vec::new();
        for k in keys {
            if let Some(b) = self.get(&k).await? {
                out.push(b.to_vec());
            }
        }
        Ok(out)
    }

    async fn repositories(&self) -> Result<Vec<String>> {
        let mut out = BTreeSet::new();
        for m in self.list("repositories").await? {
            let rel = self.rel(&m.location);
            let Some(r) = rel.strip_prefix("repositories/") else {
                continue;
            };
            if let Some((name, _)) = r.split_once("/_manifests/") {
                out.insert(name.to_string());
            }
        }
        Ok(out.into_iter().collect())
    }
}

#[cfg(test)]
mod tests;
