//! OCI image layouts in a tar (`oci-archive`): `oci-layout`, `index.json`
//! (names in `org.opencontainers.image.ref.name` annotations) and
//! `blobs/sha256/<hex>`, blobs byte for byte as the store holds them.

use super::{
    append_bytes, config_layers, dir_header, file_header, io_err, Error, Extracted, ImagePlan,
    LayerAt, Plan, Result, Selected,
};
use crate::digest::Digest;
use crate::manifest::{self, media_type as mt, Manifest, Platform};
use crate::reference::Reference;
use crate::store::Store;
use oci_spec_image::image::Descriptor;
use std::collections::HashSet;
use std::io::{self, Write};
use std::path::Path;

pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
pub const CONTAINERD_NAME: &str = "io.containerd.image.name";
const LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// Writes an OCI layout of `selected` as a tar to `out`.
pub(crate) fn write(store: &Store, selected: &[Selected], out: &mut dyn Write) -> Result<()> {
    let mut b = tar::Builder::new(out);
    append_bytes(&mut b, "oci-layout", LAYOUT)?;
    for d in ["blobs/", "blobs/sha256/"] {
        b.append_data(&mut dir_header(), d, io::empty())
            .map_err(io_err("write archive entry", Path::new(d)))?;
    }
    let mut written: HashSet<Digest> = HashSet::new();
    let mut manifests = Vec::new();
    for s in selected {
        let img = &s.image;
        let unsavable = |reason: String| Error::Unsavable {
            image: img.id.to_string(),
            reason,
        };
        for l in &img.layers {
            if !store.has_blob(&l.blob_digest) {
                return Err(unsavable(format!(
                    "layer blob {} is not in the store (a non-distributable layer?)",
                    l.blob_digest
                )));
            }
            blob(store, &mut b, &l.blob_digest, &mut written)?;
        }
        if store.has_blob(&img.id) {
            blob(store, &mut b, &img.id, &mut written)?;
        } else if written.insert(img.id.clone()) {
            let config = super::docker::config_bytes(store, img)?;
            append_bytes(&mut b, &format!("blobs/sha256/{}", img.id.hex()), &config)?;
        }
        let size = store.blob_size(&img.manifest_digest)?.ok_or_else(|| {
            unsavable(format!(
                "manifest {} is not in the store",
                img.manifest_digest
            ))
        })?;
        blob(store, &mut b, &img.manifest_digest, &mut written)?;
        let desc = |annotations: Option<serde_json::Value>| {
            let mut d = serde_json::json!({
                "mediaType": img.manifest_media_type,
                "digest": img.manifest_digest.to_string(),
                "size": size,
            });
            if let Some(a) = annotations {
                d["annotations"] = a;
            }
            d
        };
        if s.tags.is_empty() {
            manifests.push(desc(None));
        }
        for t in &s.tags {
            manifests.push(desc(Some(serde_json::json!({
                REF_NAME: t.familiar(),
                CONTAINERD_NAME: t.to_string(),
            }))));
        }
    }
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": mt::OCI_INDEX,
        "manifests": manifests,
    });
    let index = serde_json::to_vec(&index).map_err(Error::Config)?;
    append_bytes(&mut b, "index.json", &index)?;
    let out = b
        .into_inner()
        .map_err(io_err("write archive", Path::new("(archive)")))?;
    out.flush()
        .map_err(io_err("write archive", Path::new("(archive)")))
}

fn blob(
    store: &Store,
    b: &mut tar::Builder<&mut dyn Write>,
    d: &Digest,
    written: &mut HashSet<Digest>,
) -> Result<()> {
    if !written.insert(d.clone()) {
        return Ok(());
    }
    let f = store.open_blob(d)?;
    let path = store.blob_path(d);
    let size = f.metadata().map_err(io_err("stat", &path))?.len();
    let name = format!("blobs/{}/{}", d.algorithm(), d.hex());
    b.append_data(
        &mut file_header(size),
        &name,
        io::BufReader::with_capacity(1 << 20, f),
    )
    .map_err(io_err("write archive entry", Path::new(&name)))
}

fn blob_name(d: &Digest) -> String {
    format!("blobs/{}/{}", d.algorithm(), d.hex())
}

/// Reads and verifies (size and digest) a small blob a descriptor names.
fn read_desc(ex: &Extracted, desc: &Descriptor, max: u64, what: &str) -> Result<(Vec<u8>, Digest)> {
    let d = manifest::descriptor_digest(desc)?;
    let bytes = ex.read_capped(&blob_name(&d), max)?;
    check(&bytes, &d, desc.size(), what)?;
    Ok((bytes, d))
}

fn check(bytes: &[u8], d: &Digest, size: u64, what: &str) -> Result<()> {
    let actual = Digest::of(d.algorithm(), bytes);
    if actual != *d {
        return Err(Error::Mismatch {
            name: format!("{what} {d}"),
            expected: d.clone(),
            actual,
        });
    }
    if bytes.len() as u64 != size {
        return Err(Error::Invalid(format!(
            "{what} {d} is {} bytes, but its descriptor says {size}",
            bytes.len()
        )));
    }
    Ok(())
}

/// The name an index.json entry gives its image, if a usable one.
fn desc_name(desc: &Descriptor) -> Result<Option<Reference>> {
    let Some(a) = desc.annotations() else {
        return Ok(None);
    };
    if let Some(n) = a.get(CONTAINERD_NAME) {
        return Ok(Some(Reference::parse(n)?));
    }
    match a.get(REF_NAME) {
        // A bare tag (umoci's, skopeo's `oci:dir:tag`) names no repository.
        Some(n) if n.contains('/') || n.contains(':') => match Reference::parse(n) {
            Ok(r) if r.digest.is_none() => Ok(Some(r)),
            _ => Ok(None),
        },
        _ => Ok(None),
    }
}

/// Verifies an OCI layout's images and unpacks their layers.
pub(crate) fn plan(store: &Store, ex: &Extracted) -> Result<Plan> {
    if ex.files.contains("oci-layout") {
        let b = ex.read_capped("oci-layout", 64 << 10)?;
        let v: serde_json::Value =
            serde_json::from_slice(&b).map_err(|e| Error::Invalid(format!("oci-layout: {e}")))?;
        let version = v["imageLayoutVersion"].as_str().unwrap_or("");
        if !version.starts_with("1.") {
            return Err(Error::Invalid(format!(
                "oci-layout: unsupported imageLayoutVersion {version:?}"
            )));
        }
    } else {
        return Err(Error::Invalid(
            "index.json without oci-layout: not an OCI image layout".into(),
        ));
    }
    let index_bytes = ex.read_capped("index.json", manifest::MAX_MANIFEST)?;
    let Manifest::Index(index) = Manifest::parse(&index_bytes, Some(mt::OCI_INDEX), "index.json")?
    else {
        return Err(Error::Invalid("index.json is not an image index".into()));
    };
    if index.manifests().is_empty() {
        return Err(Error::Invalid("index.json lists no image".into()));
    }
    let mut plan = Plan::default();
    for top in index.manifests() {
        let name = desc_name(top)?;
        let mut desc = top.clone();
        let (mut bytes, mut digest) = read_desc(ex, &desc, manifest::MAX_MANIFEST, "manifest")?;
        let mut parsed = Manifest::parse(&bytes, Some(desc.media_type().as_ref()), "index.json")?;
        if let Manifest::Index(i) = &parsed {
            desc = manifest::select_platform(i, &Platform::host())?;
            (bytes, digest) = read_desc(ex, &desc, manifest::MAX_MANIFEST, "manifest")?;
            parsed = Manifest::parse(&bytes, Some(desc.media_type().as_ref()), "index.json")?;
        }
        let Manifest::Image(m) = parsed else {
            return Err(Error::Invalid(format!(
                "{digest}: an index must point at image manifests"
            )));
        };
        if let Some(p) = plan.images.iter_mut().find(|p| p.manifest_digest == digest) {
            p.tags.extend(name);
            continue;
        }
        let (cfg, config_digest) = read_desc(ex, m.config(), manifest::MAX_CONFIG, "config")?;
        let (_, diff_ids, chains) = config_layers(&cfg, config_digest.as_str())?;
        if m.layers().len() != diff_ids.len() {
            return Err(Error::Invalid(format!(
                "manifest {digest} has {} layers but its config lists {} diff ids",
                m.layers().len(),
                diff_ids.len()
            )));
        }
        let mut idx = Vec::new();
        for (i, l) in m.layers().iter().enumerate() {
            let d = manifest::descriptor_digest(l)?;
            let media_type = l.media_type().to_string();
            if manifest::is_non_distributable(&media_type) {
                return Err(Error::Invalid(format!(
                    "layer {d} is non-distributable ({media_type}); berth cannot load it"
                )));
            }
            let path = ex.resolve(&blob_name(&d))?;
            let len = std::fs::metadata(&path)
                .map_err(io_err("stat", &path))?
                .len();
            if len != l.size() {
                return Err(Error::Invalid(format!(
                    "layer {d} is {len} bytes, but its descriptor says {}",
                    l.size()
                )));
            }
            let k = plan.layer(
                store,
                &path,
                d.as_str(),
                Some(&d),
                LayerAt {
                    diff_ids: &diff_ids,
                    chain_ids: &chains,
                    index: i,
                },
            )?;
            plan.layers[k].media_type = media_type;
            idx.push(k);
        }
        plan.images.push(ImagePlan {
            config: cfg,
            config_digest,
            manifest: bytes,
            manifest_digest: digest,
            manifest_media_type: desc.media_type().to_string(),
            base: Vec::new(),
            layers: idx,
            tags: name.into_iter().collect(),
        });
    }
    Ok(plan)
}
