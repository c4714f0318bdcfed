//! Garbage collection of the registry's storage (`berth registry gc`), and
//! the purge of abandoned uploads (also run by the server periodically).
//!
//! Mark: every manifest any repository holds (tagged or only by digest),
//! and what it references: config and layers, or an index's child
//! manifests (recursively). Sweep: every other blob under `blobs/`, except
//! those touched within the grace period (an upload just committed, a blob
//! a push is about to reference): on the filesystem writers refresh the
//! mtime of a blob they link and gc sweeps under the exclusive gc lock; on
//! S3 a blob's age is the newest of its own and its links' last-modified
//! times, and there is no lock (see docs/architecture.md).
//! Repository links to removed blobs are removed with them.

use crate::names::Digest;
use crate::storage::{Storage, StorageError};
use serde_json::Value;
use std::collections::HashSet;
use std::time::{Duration, SystemTime};

/// Blobs younger than this are kept (the default of `--grace`).
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10 * 60);
/// Uploads idle for longer than this are purged (the default of
/// `upload_max_age`).
pub const DEFAULT_UPLOAD_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);

#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error(transparent)]
    Storage(#[from] StorageError),
}

#[derive(Debug, Clone)]
pub struct GcOptions {
    /// Report what would be removed; remove nothing.
    pub dry_run: bool,
    /// Keep unreferenced blobs modified less than this long ago.
    pub grace: Duration,
    /// Purge uploads idle for longer than this.
    pub upload_max_age: Duration,
}

impl Default for GcOptions {
    fn default() -> GcOptions {
        GcOptions {
            dry_run: false,
            grace: DEFAULT_GRACE,
            upload_max_age: DEFAULT_UPLOAD_MAX_AGE,
        }
    }
}

#[derive(Debug, Default)]
pub struct GcReport {
    /// Unreferenced blobs removed (or, dry run, to be removed), with sizes;
    /// sorted by digest.
    pub removed: Vec<(Digest, u64)>,
    /// Unreferenced blobs kept because they are within the grace period.
    pub kept_young: Vec<Digest>,
    /// Abandoned uploads purged (or to be purged).
    pub uploads_purged: Vec<String>,
}

impl GcReport {
    pub fn bytes_freed(&self) -> u64 {
        self.removed.iter().map(|(_, n)| n).sum()
    }
}

/// The digests a manifest references: config and layers, or child manifests.
fn references(v: &Value) -> Vec<Digest> {
    let mut out = Vec::new();
    let descs = std::iter::once(&v["config"])
        .chain(v["layers"].as_array().into_iter().flatten())
        .chain(v["manifests"].as_array().into_iter().flatten());
    for d in descs {
        if let Some(d) = d["digest"].as_str().and_then(Digest::parse) {
            out.push(d);
        }
    }
    out
}

/// Every blob reachable from the manifests of any repository.
pub async fn mark(storage: &dyn Storage) -> Result<HashSet<Digest>, GcError> {
    let mut live = HashSet::new();
    let mut todo: Vec<(Digest, bool)> = Vec::new();
    for repo in storage.repositories().await? {
        for d in storage.manifest_digests(&repo).await? {
            todo.push((d, true));
        }
    }
    while let Some((d, manifest)) = todo.pop() {
        if !live.insert(d.clone()) || !manifest {
            continue;
        }
        // Only what can be a manifest is read: a manifest whose JSON also
        // has a `manifests` array must not make gc read its layers whole.
        let small = storage
            .blob_size(&d)
            .await?
            .is_some_and(|n| n <= crate::manifests::MAX_MANIFEST as u64);
        if !small {
            continue;
        }
        let Some(body) = storage.read_blob(&d).await? else {
            continue;
        };
        let Ok(v) = serde_json::from_slice::<Value>(&body) else {
            continue;
        };
        let children_are_manifests = v["manifests"].is_array();
        for r in references(&v) {
            todo.push((r, children_are_manifests));
        }
    }
    Ok(live)
}

/// Uploads idle for longer than `max_age`: removed unless `dry_run`
/// (and so are blobs left half-written that long ago).
pub async fn purge_uploads(
    storage: &dyn Storage,
    max_age: Duration,
    dry_run: bool,
) -> Result<Vec<String>, GcError> {
    let now = SystemTime::now();
    let mut out = Vec::new();
    for (id, t) in storage.uploads().await? {
        if now.duration_since(t).unwrap_or_default() > max_age {
            if !dry_run {
                storage.delete_upload(&id).await?;
            }
            out.push(id);
        }
    }
    if !dry_run {
        let before = now.checked_sub(max_age).unwrap_or(SystemTime::UNIX_EPOCH);
        storage.purge_temp(before).await?;
    }
    out.sort();
    Ok(out)
}

/// Marks, then sweeps unreferenced blobs older than the grace period, and
/// purges abandoned uploads.
pub async fn collect(storage: &dyn Storage, opts: &GcOptions) -> Result<GcReport, GcError> {
    let start = SystemTime::now();
    let cutoff = start
        .checked_sub(opts.grace)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let live = mark(storage).await?;
    let mut report = GcReport {
        uploads_purged: purge_uploads(storage, opts.upload_max_age, opts.dry_run).await?,
        ..GcReport::default()
    };
    // Filesystem: writers that link a blob hold the lock shared and
    // refresh its mtime, so under the exclusive lock a blob linked since
    // the mark began is young. S3: no lock; links refresh the age.
    let _lock = if opts.dry_run {
        None
    } else {
        Some(storage.sweep_lock().await?)
    };
    let mut blobs = storage.all_blobs().await?;
    blobs.sort_by_key(|b| b.digest.to_string());
    for b in blobs {
        if live.contains(&b.digest) {
            continue;
        }
        if b.touched > cutoff {
            report.kept_young.push(b.digest);
            continue;
        }
        if opts.dry_run || storage.remove_blob(&b.digest).await? {
            report.removed.push((b.digest, b.size));
        }
    }
    if !opts.dry_run && !report.removed.is_empty() {
        let gone: HashSet<&Digest> = report.removed.iter().map(|(d, _)| d).collect();
        for repo in storage.repositories().await? {
            for d in storage.blob_links(&repo).await? {
                if gone.contains(&d) {
                    storage.unlink_blob(&repo, &d).await?;
                }
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::FsStorage;

    fn put_blob(s: &FsStorage, repo: &str, data: &[u8]) -> Digest {
        let d = Digest::of("sha256", data);
        let tmp = s.temp_path().unwrap();
        std::fs::write(&tmp, data).unwrap();
        s.commit_file(&tmp, &d, repo).unwrap();
        d
    }

    fn age(s: &FsStorage, d: &Digest) {
        let f = std::fs::File::options()
            .write(true)
            .open(s.blob_path(d))
            .unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(3600))
            .unwrap();
    }

    #[tokio::test]
    async fn unreferenced_old_blobs_go_and_referenced_or_young_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsStorage::open(dir.path()).unwrap();
        let config = put_blob(&s, "a", b"{}");
        let layer = put_blob(&s, "a", b"layer");
        let orphan = put_blob(&s, "a", b"orphan");
        let young = put_blob(&s, "a", b"young");
        let m = format!(
            r#"{{"schemaVersion":2,"config":{{"digest":"{config}"}},"layers":[{{"digest":"{layer}"}}]}}"#
        );
        let md = Digest::of("sha256", m.as_bytes());
        s.put_manifest(
            "a",
            m.as_bytes(),
            &md,
            crate::manifests::OCI_MANIFEST,
            Some("t"),
        )
        .unwrap();
        for d in [&config, &layer, &orphan, &md] {
            age(&s, d);
        }
        let dry = collect(
            &s,
            &GcOptions {
                dry_run: true,
                ..GcOptions::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(dry.removed, vec![(orphan.clone(), 6)]);
        assert_eq!(dry.kept_young, vec![young.clone()]);
        assert!(s.blob_path(&orphan).exists());
        let r = collect(&s, &GcOptions::default()).await.unwrap();
        assert_eq!(r.removed, vec![(orphan.clone(), 6)]);
        assert_eq!(r.bytes_freed(), 6);
        assert!(!s.blob_path(&orphan).exists());
        assert!(s.repo_blob_size("a", &orphan).is_none());
        assert!(!FsStorage::blob_links(&s, "a").unwrap().contains(&orphan));
        for d in [&config, &layer, &md, &young] {
            assert!(s.blob_path(d).exists(), "{d} was removed");
        }
    }
}
