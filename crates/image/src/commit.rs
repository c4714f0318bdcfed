//! `commit` and `diff`: a container's overlay upper dir made into a new
//! image on top of its image, and the list of what it changed.
//!
//! The new layer is streamed, never staged whole: one thread walks the
//! upper dir and writes the layer tar (`layer_tar`) into a pipe; this
//! thread unpacks it into a store staging dir (which also hashes it into
//! the diff id) and tees it into a gzip encoder that compresses on every
//! core (`pgzip`), whose output is hashed into the blob digest on its way
//! to a file in a private work dir. Then the image is stored with the
//! same machinery as `import` and `load` (`archive::commit`): the blob is
//! renamed into `blobs/`, the staging dir becomes the layer, config and
//! manifest are written, the database record comes last. An error before
//! that leaves nothing behind: the work dir and the staging dir are
//! removed when dropped.

mod diff;
mod layer_tar;
mod pgzip;
mod pipe;
mod walk;

pub use diff::{changes, Change, ChangeKind};

use crate::archive::import::{apply_change, rfc3339_now, Tee};
use crate::archive::{self, oci_manifest, unpack_options, ImagePlan, LayerPlan, Loaded, Plan};
use crate::db::{Db, ImageRecord, LayerRecord};
use crate::digest::{self, Digest, Sha256Writer};
use crate::manifest::media_type as mt;
use crate::reference::Reference;
use crate::store::{self, chain_ids, Store};
use crate::unpack;
use serde_json::{json, Map, Value};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading the container's changes: {op} {}: {source}; nothing was committed", path.display())]
    Upper {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("reading the image layer {}: {source}", path.display())]
    Lower { path: PathBuf, source: io::Error },
    #[error("parent image {image}: {reason}")]
    Parent { image: Digest, reason: String },
    #[error("writing the layer blob {}: {source}; nothing was committed", path.display())]
    Blob { path: PathBuf, source: io::Error },
    #[error("unpacking the new layer into the store: {0}; nothing was committed")]
    Unpack(unpack::Error),
    #[error(transparent)]
    Archive(#[from] archive::Error),
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error(transparent)]
    Digest(#[from] digest::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    /// `-c/--change` Dockerfile instructions (CMD, ENTRYPOINT, ENV, EXPOSE,
    /// LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR), applied in order.
    pub changes: Vec<String>,
    /// `-a/--author`.
    pub author: Option<String>,
    /// `-m/--message`: the config's and the history entry's comment.
    pub message: Option<String>,
    /// The history entry's `created_by` (the container's command).
    pub created_by: Option<String>,
    /// The container's id, recorded as the config's `container`.
    pub container: Option<String>,
    /// The name to tag the new image with.
    pub reference: Option<Reference>,
}

/// What [`commit`] stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// The new image (its id and the tags it got).
    pub image: Loaded,
    /// The new layer's diff id, chain id and blob.
    pub layer: LayerRecord,
}

/// Makes a new image: `parent`'s layers plus one layer of the changes in
/// `upper` (a container's overlay upper dir), with `parent`'s config
/// updated by `opts`. An empty `upper` still makes a (empty) layer, as
/// Docker does.
pub fn commit(
    store: &Store,
    db: &Db,
    parent: &ImageRecord,
    upper: &Path,
    opts: &CommitOptions,
) -> Result<Committed> {
    // Everything that can be refused cheaply is, before any work.
    let mut config = parent_config(parent)?;
    {
        let c = config
            .as_object_mut()
            .and_then(|o| {
                o.entry("config")
                    .or_insert_with(|| json!({}))
                    .as_object_mut()
            })
            .ok_or_else(|| Error::Parent {
                image: parent.id.clone(),
                reason: "the config's \"config\" is not an object".into(),
            })?;
        for ch in &opts.changes {
            apply_change(c, ch)?;
        }
    }
    let meta = fs::symlink_metadata(upper).map_err(walk::upper_err("stat", upper, b""))?;
    if !meta.is_dir() {
        return Err(walk::upper_err("read", upper, b"")(io::Error::other(
            "not a directory",
        )));
    }

    let work = archive::WorkDir::new(store)?;
    let blob_path = work.path.join("layer.tar.gz");
    let layer = write_layer(store, upper, &blob_path)?;
    let Layer {
        blob,
        size,
        diff_id,
        staging,
    } = layer;

    let mut diff_ids: Vec<Digest> = parent.layers.iter().map(|l| l.diff_id.clone()).collect();
    diff_ids.push(diff_id.clone());
    let chain_id = chain_ids(&diff_ids)
        .pop()
        .unwrap_or_else(|| diff_id.clone());
    let parent_chain = parent.layers.last().map(|l| l.chain_id.clone());

    let now = rfc3339_now();
    update_config(&mut config, &now, &diff_id, opts);
    let config = serde_json::to_vec(&config).map_err(archive::Error::Config)?;
    let config_digest = Digest::sha256_of(&config);

    let base: Vec<LayerRecord> = parent
        .layers
        .iter()
        .map(|l| LayerRecord {
            media_type: oci_layer_type(&l.media_type).to_string(),
            ..l.clone()
        })
        .collect();
    let mut descs: Vec<(&str, &Digest, u64)> = base
        .iter()
        .map(|l| (l.media_type.as_str(), &l.blob_digest, l.size))
        .collect();
    descs.push((mt::OCI_LAYER_GZIP, &blob, size));
    let manifest = oci_manifest(&config, &descs);

    let record = LayerRecord {
        chain_id: chain_id.clone(),
        diff_id: diff_id.clone(),
        blob_digest: blob.clone(),
        media_type: mt::OCI_LAYER_GZIP.to_string(),
        size,
    };
    let plan = Plan {
        layers: vec![LayerPlan {
            file: blob_path,
            blob,
            media_type: mt::OCI_LAYER_GZIP.to_string(),
            size,
            diff_id,
            chain_id,
            parent: parent_chain,
            staging: Some(staging),
        }],
        images: vec![ImagePlan {
            config,
            config_digest,
            manifest_digest: Digest::sha256_of(&manifest),
            manifest,
            manifest_media_type: mt::OCI_MANIFEST.to_string(),
            base,
            layers: vec![0],
            tags: opts.reference.clone().into_iter().collect(),
        }],
    };
    let mut loaded = archive::commit(store, db, plan)?;
    drop(work);
    Ok(Committed {
        image: loaded.remove(0),
        layer: record,
    })
}

/// The new layer: its blob in the work dir, unpacked in a staging dir.
struct Layer {
    blob: Digest,
    size: u64,
    diff_id: Digest,
    staging: store::Staging,
}

fn write_layer(store: &Store, upper: &Path, blob_path: &Path) -> Result<Layer> {
    let blob_err = |source| Error::Blob {
        path: blob_path.to_path_buf(),
        source,
    };
    let file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(blob_path)
        .map_err(blob_err)?;
    let gz = pgzip::ParGzWriter::new(
        Sha256Writer::new(io::BufWriter::with_capacity(
            1 << 20,
            crate::writeback::Writer::new(file),
        )),
        pgzip::default_threads(),
    );
    let staging = store.layer_staging()?;
    let (tx, rx) = pipe::pipe();
    let (written, unpacked, tee) = std::thread::scope(|s| {
        let writer = s.spawn(move || match layer_tar::write(upper, tx) {
            Ok(tx) => tx
                .finish()
                .map_err(walk::upper_err("write the layer tar of", upper, b"")),
            Err(e) => Err(e),
        });
        let mut tee = Tee {
            r: rx,
            w: gz,
            err: None,
        };
        let unpacked = unpack::unpack_layer(&mut tee, staging.path(), &unpack_options());
        let Tee { r, w, err } = tee;
        // Unblocks the writer if the unpack stopped early.
        drop(r);
        let written = match writer.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        (written, unpacked, (w, err))
    });
    let (gz, tee_err) = tee;
    // Report the cause, not what followed from it: a failed walk ends the
    // tar early (the unpack then fails too); a failed blob write or unpack
    // stops the reading (the walk then fails on the closed pipe).
    match written {
        Err(Error::Upper { source, .. }) if source.kind() == io::ErrorKind::BrokenPipe => {}
        r => r?,
    }
    if let Some(e) = tee_err {
        return Err(blob_err(e));
    }
    let unpacked = unpacked.map_err(Error::Unpack)?;
    let hashed = gz.finish().map_err(blob_err)?;
    let size = hashed.bytes_written();
    let (blob, mut w) = hashed.finish();
    w.flush().map_err(blob_err)?;
    Ok(Layer {
        blob,
        size,
        diff_id: unpacked.diff_id.parse()?,
        staging,
    })
}

/// The parent's config as JSON, checked against its layers.
fn parent_config(parent: &ImageRecord) -> Result<Value> {
    let bad = |reason: String| Error::Parent {
        image: parent.id.clone(),
        reason,
    };
    let config: Value = serde_json::from_str(&parent.config)
        .map_err(|e| bad(format!("invalid image config: {e}")))?;
    if !config.is_object() {
        return Err(bad("the image config is not a JSON object".into()));
    }
    let listed: Vec<&str> = config
        .pointer("/rootfs/diff_ids")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let stored: Vec<&str> = parent.layers.iter().map(|l| l.diff_id.as_str()).collect();
    if listed != stored {
        return Err(bad(format!(
            "its config lists {} layer diff ids, its record {} different ones; pull or load the image again",
            listed.len(),
            stored.len()
        )));
    }
    Ok(config)
}

/// The new config: `created`, `author`, `comment`, `container`, the new
/// diff id and history entry; everything else as the parent has it
/// (fields berth does not know included), except the parent's
/// `container_config`, which described another container.
fn update_config(config: &mut Value, now: &str, diff_id: &Digest, opts: &CommitOptions) {
    let Some(o) = config.as_object_mut() else {
        return;
    };
    o.insert("created".into(), json!(now));
    o.remove("container_config");
    o.remove("container");
    o.remove("author");
    o.remove("comment");
    if let Some(c) = &opts.container {
        o.insert("container".into(), json!(c));
    }
    if let Some(a) = &opts.author {
        o.insert("author".into(), json!(a));
    }
    if let Some(m) = &opts.message {
        o.insert("comment".into(), json!(m));
    }
    let rootfs = o
        .entry("rootfs")
        .or_insert_with(|| json!({"type": "layers"}));
    if let Some(r) = rootfs.as_object_mut() {
        r.insert("type".into(), json!("layers"));
        let ids = r.entry("diff_ids").or_insert_with(|| json!([]));
        if let Some(a) = ids.as_array_mut() {
            a.push(json!(diff_id.to_string()));
        }
    }
    let mut entry = Map::new();
    entry.insert("created".into(), json!(now));
    if let Some(c) = &opts.created_by {
        entry.insert("created_by".into(), json!(c));
    }
    if let Some(a) = &opts.author {
        entry.insert("author".into(), json!(a));
    }
    if let Some(m) = &opts.message {
        entry.insert("comment".into(), json!(m));
    }
    let history = o.entry("history").or_insert_with(|| json!([]));
    if !history.is_array() {
        *history = json!([]);
    }
    if let Some(h) = history.as_array_mut() {
        h.push(Value::Object(entry));
    }
}

/// The OCI media type of a stored layer blob (Docker's types name the same
/// bytes; an OCI manifest must use OCI types).
fn oci_layer_type(media_type: &str) -> &str {
    match media_type {
        mt::DOCKER_LAYER => mt::OCI_LAYER,
        mt::DOCKER_LAYER_GZIP => mt::OCI_LAYER_GZIP,
        mt::DOCKER_LAYER_ZSTD => mt::OCI_LAYER_ZSTD,
        mt::DOCKER_FOREIGN_LAYER => mt::OCI_LAYER_NONDIST_GZIP,
        other => other,
    }
}

#[cfg(test)]
#[path = "commit_tests.rs"]
mod tests;
