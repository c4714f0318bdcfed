//! `docker save` archives:
//!
//! ```text
//! manifest.json        [{"Config": "<hex>.json", "RepoTags": [...], "Layers": ["<hex>/layer.tar", ...]}]
//! repositories         {"name": {"tag": "<top layer hex>"}}
//! <config hex>.json    the image config, byte for byte
//! <diff id hex>/layer.tar   each layer, uncompressed (its sha256 is the diff id)
//! ```
//!
//! Loading also accepts compressed layers and Docker 25's
//! `blobs/sha256/<hex>` names (checked against their digest).

use super::{
    append_bytes, config_layers, dir_header, file_header, io_err, oci_manifest, Error, Extracted,
    ImagePlan, LayerAt, Plan, Result, Selected,
};
use crate::db::LayerRecord;
use crate::digest::{Digest, Sha256Writer};
use crate::manifest::{self, media_type as mt};
use crate::reference::Reference;
use crate::store::{self, Store};
use crate::unpack;
use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// Writes a docker-archive of `selected` to `out`.
pub(crate) fn write(store: &Store, selected: &[Selected], out: &mut dyn Write) -> Result<()> {
    let mut b = tar::Builder::new(out);
    let mut written: HashSet<Digest> = HashSet::new();
    let mut manifest = Vec::new();
    let mut repos: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for s in selected {
        let img = &s.image;
        let mut layers = Vec::new();
        for l in &img.layers {
            let dir = l.diff_id.hex().to_string();
            let name = format!("{dir}/layer.tar");
            if written.insert(l.diff_id.clone()) {
                let mut h = dir_header();
                b.append_data(&mut h, format!("{dir}/"), io::empty())
                    .map_err(io_err("write archive entry", Path::new(&dir)))?;
                write_layer(store, &mut b, l, &name, &img.id)?;
            }
            layers.push(name);
        }
        let config = config_bytes(store, img)?;
        let config_name = format!("{}.json", img.id.hex());
        append_bytes(&mut b, &config_name, &config)?;
        let tags: Vec<String> = s.tags.iter().map(Reference::familiar).collect();
        if let Some(top) = img.layers.last() {
            for t in &s.tags {
                if let Some(tag) = &t.tag {
                    repos
                        .entry(t.familiar_name())
                        .or_default()
                        .insert(tag.clone(), top.diff_id.hex().to_string());
                }
            }
        }
        manifest.push(serde_json::json!({
            "Config": config_name,
            "RepoTags": if tags.is_empty() { serde_json::Value::Null } else { tags.into() },
            "Layers": layers,
        }));
    }
    let m = serde_json::to_vec(&manifest).map_err(Error::Config)?;
    append_bytes(&mut b, "manifest.json", &m)?;
    if !repos.is_empty() {
        let r = serde_json::to_vec(&repos).map_err(Error::Config)?;
        append_bytes(&mut b, "repositories", &r)?;
    }
    let out = b
        .into_inner()
        .map_err(io_err("write archive", Path::new("(archive)")))?;
    out.flush()
        .map_err(io_err("write archive", Path::new("(archive)")))
}

/// The config bytes as pulled: the database copy when it hashes right,
/// else the blob.
pub(crate) fn config_bytes(store: &Store, img: &crate::db::ImageRecord) -> Result<Vec<u8>> {
    if img.id.matches(img.config.as_bytes()) {
        return Ok(img.config.as_bytes().to_vec());
    }
    Ok(store.read_blob(&img.id, manifest::MAX_CONFIG)?)
}

/// Removes a temp file on drop.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// Appends layer `l` as an uncompressed tar named `name`, checking that
/// it hashes to the diff id.
fn write_layer(
    store: &Store,
    b: &mut tar::Builder<&mut dyn Write>,
    l: &LayerRecord,
    name: &str,
    image: &Digest,
) -> Result<()> {
    let unsavable = |reason: String| Error::Unsavable {
        image: image.to_string(),
        reason,
    };
    if !store.has_blob(&l.blob_digest) {
        return Err(unsavable(format!(
            "layer blob {} is not in the store (a non-distributable layer?)",
            l.blob_digest
        )));
    }
    let path = store.blob_path(&l.blob_digest);
    let comp = match manifest::layer_compression(&l.media_type) {
        Some(manifest::Compression::None) => unpack::Compression::None,
        Some(manifest::Compression::Gzip) => unpack::Compression::Gzip,
        Some(manifest::Compression::Zstd) => unpack::Compression::Zstd,
        None => {
            let mut magic = [0u8; 4];
            let n = File::open(&path)
                .and_then(|mut f| f.read(&mut magic))
                .map_err(io_err("read", &path))?;
            unpack::sniff(&magic[..n])
        }
    };
    if comp == unpack::Compression::None && l.blob_digest == l.diff_id {
        let f = File::open(&path).map_err(io_err("open", &path))?;
        let size = f.metadata().map_err(io_err("stat", &path))?.len();
        let mut h = file_header(size);
        return b
            .append_data(&mut h, name, io::BufReader::with_capacity(1 << 20, f))
            .map_err(io_err("write archive entry", Path::new(name)));
    }
    // Decompress into a temp file first: a tar header needs the size.
    let tmp = TempFile(store.tmp_dir().join(store::unique_name("layer-")));
    let f = File::open(&path).map_err(io_err("open", &path))?;
    let mut reader = unpack::decompress(io::BufReader::with_capacity(1 << 20, f), comp)
        .map_err(|e| unsavable(format!("layer {}: {e}", l.blob_digest)))?;
    let out = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp.0)
        .map_err(io_err("create", &tmp.0))?;
    let mut w = Sha256Writer::new(io::BufWriter::with_capacity(1 << 20, out));
    io::copy(&mut reader, &mut w).map_err(|e| {
        unsavable(format!(
            "decompressing layer {} ({}): {e}",
            l.blob_digest,
            path.display()
        ))
    })?;
    let size = w.bytes_written();
    let (got, mut out) = w.finish();
    out.flush().map_err(io_err("write", &tmp.0))?;
    drop(out);
    if got != l.diff_id {
        return Err(unsavable(format!(
            "layer {} decompresses to {got}, not its diff id {}; remove {} and pull again",
            l.blob_digest,
            l.diff_id,
            path.display()
        )));
    }
    let f = File::open(&tmp.0).map_err(io_err("open", &tmp.0))?;
    let mut h = file_header(size);
    b.append_data(&mut h, name, io::BufReader::with_capacity(1 << 20, f))
        .map_err(io_err("write archive entry", Path::new(name)))
}

#[derive(serde::Deserialize)]
struct Entry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    layers: Vec<String>,
}

/// The digest a name like `blobs/sha256/<hex>` or `<hex>.json` claims.
fn named_digest(name: &str, json_suffix: bool) -> Option<Digest> {
    let name = name.trim_start_matches("./");
    if let Some(hex) = name.strip_prefix("blobs/sha256/") {
        return Digest::from_hex(crate::digest::Algorithm::Sha256, hex).ok();
    }
    if json_suffix {
        if let Some(hex) = name.strip_suffix(".json") {
            return Digest::from_hex(crate::digest::Algorithm::Sha256, hex).ok();
        }
    }
    None
}

/// Verifies a docker-archive's images and unpacks their layers.
pub(crate) fn plan(store: &Store, ex: &Extracted) -> Result<Plan> {
    let bytes = ex.read_capped("manifest.json", manifest::MAX_MANIFEST)?;
    let entries: Vec<Entry> = serde_json::from_slice(&bytes)
        .map_err(|e| Error::Invalid(format!("manifest.json: {e}")))?;
    if entries.is_empty() {
        return Err(Error::Invalid("manifest.json lists no image".into()));
    }
    let mut plan = Plan::default();
    for e in entries {
        let cfg = ex.read_capped(&e.config, manifest::MAX_CONFIG)?;
        let config_digest = Digest::sha256_of(&cfg);
        if let Some(want) = named_digest(&e.config, true) {
            if want != config_digest {
                return Err(Error::Mismatch {
                    name: format!("image config {}", e.config),
                    expected: want,
                    actual: config_digest,
                });
            }
        }
        let (_, diff_ids, chains) = config_layers(&cfg, &e.config)?;
        if e.layers.len() != diff_ids.len() {
            return Err(Error::Invalid(format!(
                "manifest.json lists {} layers for {} but its config has {} diff ids",
                e.layers.len(),
                e.config,
                diff_ids.len()
            )));
        }
        let mut tags = Vec::new();
        for t in e.repo_tags.iter().flatten() {
            let r = Reference::parse(t)?;
            if r.digest.is_some() {
                return Err(Error::Invalid(format!(
                    "manifest.json: RepoTags entry {t:?} has a digest"
                )));
            }
            tags.push(r);
        }
        let mut idx = Vec::new();
        for (i, name) in e.layers.iter().enumerate() {
            let path = ex.resolve(name)?;
            let claimed = named_digest(name, false);
            let k = plan.layer(
                store,
                &path,
                name,
                claimed.as_ref(),
                LayerAt {
                    diff_ids: &diff_ids,
                    chain_ids: &chains,
                    index: i,
                },
            )?;
            idx.push(k);
        }
        let descs: Vec<(&str, &Digest, u64)> = idx
            .iter()
            .map(|&k| {
                let l = &plan.layers[k];
                (l.media_type.as_str(), &l.blob, l.size)
            })
            .collect();
        let manifest = oci_manifest(&cfg, &descs);
        plan.images.push(ImagePlan {
            manifest_digest: Digest::sha256_of(&manifest),
            manifest,
            manifest_media_type: mt::OCI_MANIFEST.to_string(),
            config: cfg,
            config_digest,
            base: Vec::new(),
            layers: idx,
            tags,
        });
    }
    Ok(plan)
}
