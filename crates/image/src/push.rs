//! `push`: a stored image -> a registry repository. Layers the repository
//! has are skipped, layers another repository of the same registry has (a
//! repo digest of the image names it) are mounted, the rest uploaded (in
//! parallel); then the config, then the manifest as stored, byte for byte,
//! so that its digest stays the one the image was pulled or built with.
//!
//! The network side is the `Destination` seam (the registry client in
//! berth's CLI, a fake in tests), so this module knows nothing of HTTP.

use crate::db::{Db, ImageRecord};
use crate::digest::Digest;
use crate::manifest::{self, Manifest};
use crate::reference::Reference;
use crate::store::Store;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

pub type DestinationError = Box<dyn std::error::Error + Send + Sync>;

/// What the destination did with one blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobOutcome {
    /// The repository had it already: nothing was sent.
    Exists,
    /// Linked from this repository (a path on the same registry).
    Mounted(String),
    Uploaded,
}

/// Where images go.
pub trait Destination: Sync {
    /// Pushes the blob in `path` to `target`'s repository unless it is there;
    /// `mount_from` names a repository of the same registry that has it.
    fn push_blob(
        &self,
        target: &Reference,
        digest: &Digest,
        size: u64,
        path: &Path,
        mount_from: Option<&str>,
    ) -> std::result::Result<BlobOutcome, DestinationError>;
    /// Stores `bytes` as `target`'s tag; returns the digest the registry
    /// stored it under.
    fn push_manifest(
        &self,
        target: &Reference,
        bytes: &[u8],
        media_type: &str,
    ) -> std::result::Result<Digest, DestinationError>;
}

/// What the caller sees as a push proceeds, per layer.
pub trait Progress: Sync {
    fn event(&self, layer: &Digest, what: &Event);
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Preparing,
    Pushing,
    Done(BlobOutcome),
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no such image: {0}")]
    NoSuchImage(String),
    #[error("cannot push to {0}: give a tag, not a digest")]
    DigestTarget(String),
    #[error("cannot push {image}: layer {digest} ({media_type}) is not in the store{hint}")]
    MissingBlob {
        image: String,
        digest: Digest,
        media_type: String,
        hint: &'static str,
    },
    #[error("cannot push {image}: its manifest {digest} is an index, not an image manifest")]
    NotAnImage { image: String, digest: Digest },
    #[error("pushing {target}: the registry stored the manifest as {got}, but berth sent {sent}")]
    DigestChanged {
        target: String,
        sent: Digest,
        got: Digest,
    },
    #[error("pushing {target}: {source}")]
    Destination {
        target: String,
        source: DestinationError,
    },
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    #[error(transparent)]
    Manifest(#[from] crate::manifest::Error),
    #[error(transparent)]
    Db(#[from] crate::db::Error),
    #[error(transparent)]
    Digest(#[from] crate::digest::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

pub struct Options {
    /// Layers pushed at once.
    pub parallel: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options { parallel: 3 }
    }
}

pub struct Pushed {
    pub manifest_digest: Digest,
    /// Of the manifest, in bytes.
    pub manifest_size: u64,
    /// `domain/path@digest`, recorded for the image.
    pub repo_digest: String,
    /// The image's layer blobs, bottom first, and what became of each.
    pub layers: Vec<(Digest, BlobOutcome)>,
}

/// One blob to send.
struct Blob {
    digest: Digest,
    size: u64,
    media_type: String,
}

/// Pushes the image `image` (anything `db.image_by_ref` finds) as `target`
/// (which must carry a tag), then records `target`'s repo digest for it.
pub fn push(
    store: &Store,
    db: &Db,
    dest: &dyn Destination,
    image: &str,
    target: &Reference,
    opts: &Options,
    progress: &dyn Progress,
) -> Result<Pushed> {
    if target.digest.is_some() || target.tag.is_none() {
        return Err(Error::DigestTarget(target.to_string()));
    }
    let rec = db
        .image_by_ref(image)?
        .ok_or_else(|| Error::NoSuchImage(image.to_string()))?;
    let (bytes, media_type) = stored_manifest(store, &rec)?;
    let Manifest::Image(m) = Manifest::parse(&bytes, Some(&media_type), image)? else {
        return Err(Error::NotAnImage {
            image: image.to_string(),
            digest: rec.manifest_digest.clone(),
        });
    };
    let config_digest = manifest::descriptor_digest(m.config())?;
    if !store.has_blob(&config_digest) && config_digest == rec.id {
        // The database keeps the config too: restore the blob from it.
        store.put_blob(rec.config.as_bytes(), &config_digest)?;
    }
    let mut layers = Vec::new();
    for l in m.layers() {
        layers.push(Blob {
            digest: manifest::descriptor_digest(l)?,
            size: l.size(),
            media_type: l.media_type().to_string(),
        });
    }
    let config = Blob {
        digest: config_digest,
        size: m.config().size(),
        media_type: m.config().media_type().to_string(),
    };
    for b in layers.iter().chain(std::iter::once(&config)) {
        if !store.has_blob(&b.digest) {
            let hint = if manifest::is_non_distributable(&b.media_type) {
                ": it is a non-distributable layer, which berth does not download"
            } else {
                ": pull the image again"
            };
            return Err(Error::MissingBlob {
                image: image.to_string(),
                digest: b.digest.clone(),
                media_type: b.media_type.clone(),
                hint,
            });
        }
    }
    let from = mount_source(db, &rec, target)?;
    let dest_err = |source| Error::Destination {
        target: target.to_string(),
        source,
    };
    let outcomes = push_layers(
        store,
        dest,
        target,
        &layers,
        from.as_deref(),
        opts,
        progress,
    )
    .map_err(dest_err)?;
    dest.push_blob(
        target,
        &config.digest,
        config.size,
        &store.blob_path(&config.digest),
        from.as_deref(),
    )
    .map_err(dest_err)?;
    let sent = Digest::sha256_of(&bytes);
    let got = dest
        .push_manifest(target, &bytes, &media_type)
        .map_err(dest_err)?;
    if got != sent {
        return Err(Error::DigestChanged {
            target: target.to_string(),
            sent,
            got,
        });
    }
    let repo_digest = target
        .with_digest(got.clone())
        .digested_name()
        .unwrap_or_default();
    db.add_repo_digest(&repo_digest, &rec.id)?;
    Ok(Pushed {
        manifest_digest: got,
        manifest_size: bytes.len() as u64,
        repo_digest,
        layers: layers.into_iter().map(|b| b.digest).zip(outcomes).collect(),
    })
}

/// The image's manifest as stored (media type from the database), or an
/// OCI manifest made from the record when the blob is gone.
fn stored_manifest(store: &Store, rec: &ImageRecord) -> Result<(Vec<u8>, String)> {
    if store.has_blob(&rec.manifest_digest) {
        let bytes = store.read_blob(&rec.manifest_digest, manifest::MAX_MANIFEST)?;
        return Ok((bytes, rec.manifest_media_type.clone()));
    }
    let layers: Vec<(&str, &Digest, u64)> = rec
        .layers
        .iter()
        .map(|l| (l.media_type.as_str(), &l.blob_digest, l.size))
        .collect();
    let bytes = crate::archive::oci_manifest(rec.config.as_bytes(), &layers);
    Ok((bytes, manifest::media_type::OCI_MANIFEST.to_string()))
}

/// A repository of the target's registry the image was pulled from or
/// pushed to (a repo digest names it), other than the target's own.
fn mount_source(db: &Db, rec: &ImageRecord, target: &Reference) -> Result<Option<String>> {
    Ok(db
        .repo_digests_of(&rec.id)?
        .iter()
        .filter_map(|n| Reference::parse(n).ok())
        .find(|r| r.domain == target.domain && r.path != target.path)
        .map(|r| r.path))
}

/// Pushes the layers, `opts.parallel` at once; the outcomes in order.
fn push_layers(
    store: &Store,
    dest: &dyn Destination,
    target: &Reference,
    layers: &[Blob],
    from: Option<&str>,
    opts: &Options,
    progress: &dyn Progress,
) -> std::result::Result<Vec<BlobOutcome>, DestinationError> {
    for l in layers {
        progress.event(&l.digest, &Event::Preparing);
    }
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<BlobOutcome>>> = Mutex::new(vec![None; layers.len()]);
    let failed: Mutex<Option<DestinationError>> = Mutex::new(None);
    let workers = opts.parallel.clamp(1, 16).min(layers.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let stop = failed.lock().map(|f| f.is_some()).unwrap_or(true);
                if i >= layers.len() || stop {
                    return;
                }
                let l = &layers[i];
                progress.event(&l.digest, &Event::Pushing);
                let path = store.blob_path(&l.digest);
                match dest.push_blob(target, &l.digest, l.size, &path, from) {
                    Ok(o) => {
                        progress.event(&l.digest, &Event::Done(o.clone()));
                        results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(o);
                    }
                    Err(e) => {
                        let mut f = failed.lock().unwrap_or_else(|p| p.into_inner());
                        f.get_or_insert(e);
                        return;
                    }
                }
            });
        }
    });
    if let Some(e) = failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    Ok(results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .map(|o| o.unwrap_or(BlobOutcome::Exists))
        .collect())
}

#[cfg(test)]
#[path = "push_tests.rs"]
mod tests;
