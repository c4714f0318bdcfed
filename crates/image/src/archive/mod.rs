//! Image archives: `docker save` archives and OCI image layouts in a tar
//! (`save`/`load`), and rootfs tarballs made into one-layer images
//! (`import`).
//!
//! Loading never trusts the archive: the outer tar is read entry by entry
//! (only regular files and directories are written, into a private dir
//! under the store's `tmp/`; names with `..` or a leading `/` are refused;
//! symlinks are only recorded and resolved lexically inside the archive),
//! every JSON document is size-capped, and every blob and layer is checked
//! against its digest / diff id before anything becomes visible in the
//! store. Only after every image of the archive verified are blobs,
//! layers and database records written.

pub mod docker;
pub mod import;
pub mod oci;

use crate::db::{Db, ImageRecord, LayerRecord};
use crate::digest::{self, Digest};
use crate::manifest::{self, media_type as mt};
use crate::reference::Reference;
use crate::store::{self, chain_ids, LayerMeta, Staging, Store};
use crate::unpack;
use std::collections::{BTreeSet, HashMap};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// Most entries an outer archive may have.
pub const MAX_ENTRIES: u64 = 1_000_000;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error(transparent)]
    Db(#[from] crate::db::Error),
    #[error(transparent)]
    Manifest(#[from] manifest::Error),
    #[error(transparent)]
    Digest(#[from] digest::Error),
    #[error(transparent)]
    Reference(#[from] crate::reference::Error),
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("reading the archive: {0}; nothing was loaded")]
    Read(io::Error),
    #[error("archive entry {name:?}: {reason}; nothing was loaded")]
    Entry { name: String, reason: String },
    #[error("invalid archive: {0}; nothing was loaded")]
    Invalid(String),
    #[error("layer {name}: {source}; nothing was loaded")]
    Unpack { name: String, source: unpack::Error },
    #[error("layer {name}: its content hashes to {got}, but the image config says {want}; nothing was loaded")]
    DiffId {
        name: String,
        want: Digest,
        got: String,
    },
    #[error("{name}: expected {expected}, the content hashes to {actual}; nothing was loaded")]
    Mismatch {
        name: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("no such image: {0}")]
    NoSuchImage(String),
    #[error("image {image}: {reason}")]
    Unsavable { image: String, reason: String },
    #[error("invalid --change {change:?}: {reason}")]
    Change { change: String, reason: String },
    #[error("invalid image config: {0}")]
    Config(serde_json::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io { op, path, source }
}

/// Archive formats `save` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `docker save`: manifest.json, repositories, `<hex>.json`,
    /// `<hex>/layer.tar` (uncompressed).
    DockerArchive,
    /// An OCI image layout in a tar, blobs as stored.
    OciArchive,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Format, String> {
        match s {
            "docker-archive" | "docker" => Ok(Format::DockerArchive),
            "oci-archive" | "oci" => Ok(Format::OciArchive),
            _ => Err(format!(
                "unknown archive format {s:?}: use docker-archive or oci-archive"
            )),
        }
    }
}

/// An image a `load` or `import` stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    pub id: Digest,
    /// Familiar names (`busybox:latest`).
    pub tags: Vec<String>,
}

/// Writes `images` as one archive to `out`.
pub fn save(
    store: &Store,
    db: &Db,
    images: &[String],
    format: Format,
    out: &mut dyn Write,
) -> Result<()> {
    let selected = select(db, images)?;
    match format {
        Format::DockerArchive => docker::write(store, &selected, out),
        Format::OciArchive => oci::write(store, &selected, out),
    }
}

/// [`save`] into `path`, atomically: a temp file beside it, synced, renamed.
pub fn save_to_path(
    store: &Store,
    db: &Db,
    images: &[String],
    format: Format,
    path: &Path,
) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "archive".into());
    let tmp = dir.join(store::unique_name(&format!(".{name}.tmp-")));
    let result = (|| -> Result<()> {
        let f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(io_err("create", &tmp))?;
        let mut w = io::BufWriter::with_capacity(1 << 20, f);
        save(store, db, images, format, &mut w)?;
        let f = w
            .into_inner()
            .map_err(|e| io_err("write", &tmp)(e.into_error()))?;
        f.sync_all().map_err(io_err("sync", &tmp))?;
        fs::rename(&tmp, path).map_err(io_err("rename into", path))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// An image picked for `save`, with the names it is saved under.
pub(crate) struct Selected {
    pub image: ImageRecord,
    pub tags: Vec<Reference>,
}

fn select(db: &Db, names: &[String]) -> Result<Vec<Selected>> {
    let mut out: Vec<Selected> = Vec::new();
    for name in names {
        let img = db
            .image_by_ref(name)?
            .ok_or_else(|| Error::NoSuchImage(name.clone()))?;
        let tags = db.tags_of(&img.id)?;
        let is_hex = name.len() >= 4
            && name
                .strip_prefix("sha256:")
                .unwrap_or(name)
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        let tag = Reference::parse(name)
            .ok()
            .filter(|r| !is_hex && r.digest.is_none())
            .filter(|r| r.tagged_name().is_some_and(|t| tags.contains(&t)));
        match out.iter_mut().find(|s| s.image.id == img.id) {
            Some(s) => {
                if let Some(t) = tag {
                    if !s.tags.contains(&t) {
                        s.tags.push(t);
                    }
                }
            }
            None => out.push(Selected {
                image: img,
                tags: tag.into_iter().collect(),
            }),
        }
    }
    Ok(out)
}

/// A tar header for a file of `size` bytes, mode 0644, owned by root.
pub(crate) fn file_header(size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    h
}

pub(crate) fn dir_header() -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(0);
    h.set_mode(0o755);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Directory);
    h
}

pub(crate) fn append_bytes<W: Write>(
    b: &mut tar::Builder<W>,
    name: &str,
    data: &[u8],
) -> Result<()> {
    let mut h = file_header(data.len() as u64);
    b.append_data(&mut h, name, data)
        .map_err(|e| io_err("write archive entry", Path::new(name))(e))
}

// ---------------------------------------------------------------------------
// load

/// Loads every image of a docker-archive or OCI-layout tar read from `r`
/// (which may be gzip- or zstd-compressed, as `docker load` accepts).
pub fn load(store: &Store, db: &Db, r: impl Read) -> Result<Vec<Loaded>> {
    let mut br = io::BufReader::with_capacity(1 << 20, r);
    let comp = unpack::sniff(io::BufRead::fill_buf(&mut br).map_err(Error::Read)?);
    let r = unpack::decompress(br, comp).map_err(|source| Error::Unpack {
        name: "(the archive)".into(),
        source,
    })?;
    let work = WorkDir::new(store)?;
    let ex = extract(r, &work.path)?;
    let plan = if ex.files.contains("manifest.json") {
        docker::plan(store, &ex)?
    } else if ex.files.contains("index.json") {
        oci::plan(store, &ex)?
    } else {
        return Err(Error::Invalid(
            "neither manifest.json (docker-archive) nor index.json (OCI layout) in the archive"
                .into(),
        ));
    };
    commit(store, db, plan)
}

/// A private dir under the store's `tmp/`, removed on drop.
pub(crate) struct WorkDir {
    pub path: PathBuf,
}

impl WorkDir {
    pub fn new(store: &Store) -> Result<WorkDir> {
        let path = store.tmp_dir().join(store::unique_name("archive-"));
        fs::DirBuilder::new()
            .recursive(false)
            .create(&path)
            .map_err(io_err("create directory", &path))?;
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o700))
            .map_err(io_err("chmod", &path))?;
        Ok(WorkDir { path })
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = store::remove_tree(&self.path);
    }
}

/// The outer archive, extracted.
pub(crate) struct Extracted {
    pub root: PathBuf,
    /// Regular files, as clean relative names.
    pub files: BTreeSet<String>,
    /// Symlinks: clean name -> target as written.
    pub links: HashMap<String, String>,
}

/// `./a//b/` -> `a/b`; refuses absolute names, `..`, NUL and non-UTF-8.
pub(crate) fn clean_name(raw: &[u8]) -> std::result::Result<String, String> {
    let s = std::str::from_utf8(raw).map_err(|_| "the name is not UTF-8".to_string())?;
    if s.contains('\0') {
        return Err("the name contains a NUL byte".into());
    }
    if s.starts_with('/') {
        return Err("absolute names are not allowed in an image archive".into());
    }
    let mut parts = Vec::new();
    for c in s.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err("'..' is not allowed in an image archive".into()),
            c => parts.push(c),
        }
    }
    Ok(parts.join("/"))
}

fn extract(r: impl Read, root: &Path) -> Result<Extracted> {
    let mut ex = Extracted {
        root: root.to_path_buf(),
        files: BTreeSet::new(),
        links: HashMap::new(),
    };
    let mut archive = tar::Archive::new(r);
    let mut n = 0u64;
    for entry in archive.entries().map_err(Error::Read)? {
        let mut entry = entry.map_err(Error::Read)?;
        n += 1;
        if n > MAX_ENTRIES {
            return Err(Error::Invalid(format!("more than {MAX_ENTRIES} entries")));
        }
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let bad = |reason: String| Error::Entry {
            name: shown.clone(),
            reason,
        };
        let name = clean_name(&raw).map_err(bad)?;
        let kind = entry.header().entry_type();
        if name.is_empty() {
            if kind.is_dir() {
                continue;
            }
            return Err(bad("an entry needs a name".into()));
        }
        if ex.files.contains(&name) || ex.links.contains_key(&name) {
            return Err(bad("duplicate entry".into()));
        }
        // A parent that is a file or symlink would be a way out.
        let mut prefix = String::new();
        for c in name.split('/') {
            if !prefix.is_empty() && (ex.files.contains(&prefix) || ex.links.contains_key(&prefix))
            {
                return Err(bad(format!("{prefix:?} is not a directory")));
            }
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(c);
        }
        let path = root.join(&name);
        match kind {
            tar::EntryType::Directory => {
                fs::create_dir_all(&path).map_err(io_err("create directory", &path))?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                if let Some(parent) = path.parent() {
                    fs::create_dir_all(parent).map_err(io_err("create directory", parent))?;
                }
                let f = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&path)
                    .map_err(io_err("create", &path))?;
                let mut w = io::BufWriter::with_capacity(1 << 20, f);
                io::copy(&mut entry, &mut w).map_err(Error::Read)?;
                w.flush().map_err(io_err("write", &path))?;
                ex.files.insert(name);
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                if target.contains('\0') || target.is_empty() {
                    return Err(bad("invalid symlink target".into()));
                }
                ex.links.insert(name, target);
            }
            other => {
                return Err(bad(format!(
                    "unsupported entry type {:?} in an image archive",
                    other
                )))
            }
        }
    }
    Ok(ex)
}

impl Extracted {
    /// The file `name` (as manifest.json or index.json names it), following
    /// the archive's own symlinks lexically, never leaving the archive.
    pub fn resolve(&self, name: &str) -> Result<PathBuf> {
        let escape = || Error::Entry {
            name: name.to_string(),
            reason: "the path leaves the archive".into(),
        };
        if name.starts_with('/') || name.contains('\0') {
            return Err(escape());
        }
        let mut todo: Vec<String> = name.split('/').rev().map(str::to_string).collect();
        let mut parts: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(c) = todo.pop() {
            match c.as_str() {
                "" | "." => continue,
                ".." => {
                    parts.pop().ok_or_else(escape)?;
                    continue;
                }
                _ => {}
            }
            parts.push(c);
            let cur = parts.join("/");
            if let Some(target) = self.links.get(&cur) {
                hops += 1;
                if hops > 40 || target.starts_with('/') {
                    return Err(escape());
                }
                parts.pop();
                todo.extend(target.split('/').rev().map(str::to_string));
            }
        }
        let clean = parts.join("/");
        if !self.files.contains(&clean) {
            return Err(Error::Entry {
                name: name.to_string(),
                reason: "no such file in the archive".into(),
            });
        }
        Ok(self.root.join(clean))
    }

    /// Reads a JSON document of at most `max` bytes.
    pub fn read_capped(&self, name: &str, max: u64) -> Result<Vec<u8>> {
        let path = self.resolve(name)?;
        read_capped(&path, name, max)
    }
}

pub(crate) fn read_capped(path: &Path, name: &str, max: u64) -> Result<Vec<u8>> {
    let len = fs::metadata(path).map_err(io_err("stat", path))?.len();
    if len > max {
        return Err(Error::Entry {
            name: name.to_string(),
            reason: format!("{len} bytes is more than the {max}-byte limit"),
        });
    }
    fs::read(path).map_err(io_err("read", path))
}

// ---------------------------------------------------------------------------
// verification and commit

/// A verified layer, ready to store.
pub(crate) struct LayerPlan {
    /// The blob file (in the work dir).
    pub file: PathBuf,
    pub blob: Digest,
    pub media_type: String,
    pub size: u64,
    pub diff_id: Digest,
    pub chain_id: Digest,
    pub parent: Option<Digest>,
    /// Unpacked, when the store lacked the layer.
    pub staging: Option<Staging>,
}

/// A verified image, ready to store.
pub(crate) struct ImagePlan {
    pub config: Vec<u8>,
    pub config_digest: Digest,
    pub manifest: Vec<u8>,
    pub manifest_digest: Digest,
    pub manifest_media_type: String,
    /// Layers the store already has, below [`ImagePlan::layers`] (the
    /// parent image's, for `commit`).
    pub base: Vec<LayerRecord>,
    /// Indexes into [`Plan::layers`], bottom first, above `base`.
    pub layers: Vec<usize>,
    pub tags: Vec<Reference>,
}

/// Layer `index` of an image with these diff ids and chain ids.
pub(crate) struct LayerAt<'a> {
    pub diff_ids: &'a [Digest],
    pub chain_ids: &'a [Digest],
    pub index: usize,
}

#[derive(Default)]
pub(crate) struct Plan {
    pub layers: Vec<LayerPlan>,
    pub images: Vec<ImagePlan>,
}

impl Plan {
    /// Verifies (and unpacks, unless the store has it) the layer in `file`
    /// whose chain id is `chain_id`, unless this plan already holds it.
    /// `blob` is the digest the archive claims for the file, if any.
    pub fn layer(
        &mut self,
        store: &Store,
        file: &Path,
        name: &str,
        blob: Option<&Digest>,
        at: LayerAt<'_>,
    ) -> Result<usize> {
        let (diff_id, chain_id) = (&at.diff_ids[at.index], &at.chain_ids[at.index]);
        let parent = at.index.checked_sub(1).map(|j| &at.chain_ids[j]);
        if let Some(i) = self
            .layers
            .iter()
            .position(|l| l.chain_id == *chain_id && l.file == file)
        {
            return Ok(i);
        }
        let (actual, size) = hash_file(file)?;
        if let Some(want) = blob {
            if *want != actual {
                return Err(Error::Mismatch {
                    name: format!("layer {name}"),
                    expected: want.clone(),
                    actual,
                });
            }
        }
        let mut magic = [0u8; 4];
        let n = File::open(file)
            .and_then(|mut f| read_up_to(&mut f, &mut magic))
            .map_err(io_err("read", file))?;
        let comp = unpack::sniff(&magic[..n]);
        let media_type = match comp {
            unpack::Compression::None => mt::OCI_LAYER,
            unpack::Compression::Gzip => mt::OCI_LAYER_GZIP,
            unpack::Compression::Zstd => mt::OCI_LAYER_ZSTD,
        }
        .to_string();
        let f = File::open(file).map_err(io_err("open", file))?;
        let reader = unpack::decompress(io::BufReader::with_capacity(256 * 1024, f), comp)
            .map_err(|source| Error::Unpack {
                name: name.to_string(),
                source,
            })?;
        let unpack_err = |source| Error::Unpack {
            name: name.to_string(),
            source,
        };
        let (got, staging) = if store.has_layer(chain_id) {
            let (d, _) = digest::hash_reader(reader, digest::Algorithm::Sha256)
                .map_err(|e| io_err("read", file)(e))?;
            (d.to_string(), None)
        } else {
            let staging = store.layer_staging()?;
            let out = unpack::unpack_layer(reader, staging.path(), &unpack_options())
                .map_err(unpack_err)?;
            (out.diff_id, Some(staging))
        };
        if got != diff_id.as_str() {
            return Err(Error::DiffId {
                name: name.to_string(),
                want: diff_id.clone(),
                got,
            });
        }
        self.layers.push(LayerPlan {
            file: file.to_path_buf(),
            blob: actual,
            media_type,
            size,
            diff_id: diff_id.clone(),
            chain_id: chain_id.clone(),
            parent: parent.cloned(),
            staging,
        });
        Ok(self.layers.len() - 1)
    }
}

/// How berth unpacks layers: owners kept when running as root.
pub fn unpack_options() -> unpack::UnpackOptions {
    unpack::UnpackOptions {
        keep_ownership: nix::unistd::geteuid().is_root(),
        max_entries: None,
    }
}

fn read_up_to(f: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

pub(crate) fn hash_file(path: &Path) -> Result<(Digest, u64)> {
    let f = File::open(path).map_err(io_err("open", path))?;
    digest::hash_reader(
        io::BufReader::with_capacity(1 << 20, f),
        digest::Algorithm::Sha256,
    )
    .map_err(io_err("read", path))
}

/// Parses and checks an image config; returns diff ids and chain ids.
pub(crate) fn config_layers(
    bytes: &[u8],
    name: &str,
) -> Result<(
    oci_spec_image::image::ImageConfiguration,
    Vec<Digest>,
    Vec<Digest>,
)> {
    let c = manifest::ImageConfig::parse(bytes, name)?;
    let chains = chain_ids(&c.diff_ids);
    Ok((c.config, c.diff_ids, chains))
}

/// An OCI manifest for a config and layers (as load and import build it).
pub(crate) fn oci_manifest(config: &[u8], layers: &[(&str, &Digest, u64)]) -> Vec<u8> {
    let m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": mt::OCI_MANIFEST,
        "config": {
            "mediaType": mt::OCI_CONFIG,
            "digest": Digest::sha256_of(config).to_string(),
            "size": config.len(),
        },
        "layers": layers.iter().map(|(t, d, s)| serde_json::json!({
            "mediaType": t, "digest": d.to_string(), "size": s,
        })).collect::<Vec<_>>(),
    });
    serde_json::to_vec(&m).unwrap_or_default()
}

/// Stores a verified plan: blobs, layers, then the database records.
pub(crate) fn commit(store: &Store, db: &Db, plan: Plan) -> Result<Vec<Loaded>> {
    let mut records: Vec<LayerRecord> = Vec::new();
    for l in plan.layers {
        if !store.has_blob(&l.blob) {
            let f = File::open(&l.file).map_err(io_err("open", &l.file))?;
            f.sync_all().map_err(io_err("sync", &l.file))?;
            store.install_blob(&l.file, &store.blob_path(&l.blob))?;
        }
        if let Some(staging) = l.staging {
            store.commit_layer_with(
                staging,
                &l.chain_id,
                &LayerMeta {
                    diff_id: l.diff_id.clone(),
                    parent: l.parent.clone(),
                    blob_digest: Some(l.blob.clone()),
                    media_type: Some(l.media_type.clone()),
                    size: None,
                },
            )?;
        }
        records.push(LayerRecord {
            chain_id: l.chain_id,
            diff_id: l.diff_id,
            blob_digest: l.blob,
            media_type: l.media_type,
            size: l.size,
        });
    }
    let mut out = Vec::new();
    for img in plan.images {
        store.put_blob(&img.config, &img.config_digest)?;
        store.put_blob(&img.manifest, &img.manifest_digest)?;
        let config = manifest::parse_config(&img.config)?;
        let layers: Vec<LayerRecord> = img
            .base
            .iter()
            .cloned()
            .chain(img.layers.iter().map(|&i| records[i].clone()))
            .collect();
        let rec = ImageRecord {
            id: img.config_digest.clone(),
            manifest_digest: img.manifest_digest.clone(),
            manifest_media_type: img.manifest_media_type.clone(),
            created: config.created().clone().unwrap_or_default(),
            size: layers.iter().map(|l| l.size).sum::<u64>() + img.config.len() as u64,
            architecture: config.architecture().to_string(),
            os: config.os().to_string(),
            config: String::from_utf8_lossy(&img.config).into_owned(),
            layers,
        };
        db.put_image(&rec)?;
        let mut tags = Vec::new();
        for t in &img.tags {
            if let Some(name) = t.tagged_name() {
                db.set_tag(&name, &rec.id)?;
                tags.push(t.familiar());
            }
        }
        out.push(Loaded { id: rec.id, tags });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_names() {
        assert_eq!(clean_name(b"./a//b/").unwrap(), "a/b");
        assert_eq!(clean_name(b"manifest.json").unwrap(), "manifest.json");
        assert_eq!(clean_name(b"./").unwrap(), "");
        for bad in [&b"../x"[..], b"a/../../x", b"a/..", b"/etc/passwd", b"\xff"] {
            assert!(clean_name(bad).is_err(), "{bad:?}");
        }
    }

    fn extracted(files: &[&str], links: &[(&str, &str)]) -> Extracted {
        Extracted {
            root: PathBuf::from("/archive"),
            files: files.iter().map(|s| s.to_string()).collect(),
            links: links
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        }
    }

    #[test]
    fn resolve_stays_inside() {
        let ex = extracted(
            &["x.tar", "blobs/sha256/ab", "manifest.json"],
            &[
                ("id/layer.tar", "../x.tar"),
                ("up", "../.."),
                ("abs", "/etc/passwd"),
                ("loop", "loop"),
                ("d", "blobs/sha256"),
            ],
        );
        assert_eq!(
            ex.resolve("id/layer.tar").unwrap(),
            Path::new("/archive/x.tar")
        );
        assert_eq!(
            ex.resolve("./d/ab").unwrap(),
            Path::new("/archive/blobs/sha256/ab")
        );
        assert_eq!(
            ex.resolve("a/../x.tar").unwrap(),
            Path::new("/archive/x.tar")
        );
        for bad in [
            "../x.tar",
            "/x.tar",
            "up/etc/passwd",
            "abs",
            "loop",
            "nosuch",
            "d",
        ] {
            let e = ex.resolve(bad).unwrap_err().to_string();
            assert!(e.contains("nothing was loaded"), "{bad}: {e}");
        }
    }

    #[test]
    fn formats_parse() {
        assert_eq!(
            "docker-archive".parse::<Format>(),
            Ok(Format::DockerArchive)
        );
        assert_eq!("oci-archive".parse::<Format>(), Ok(Format::OciArchive));
        assert!("oci-dir".parse::<Format>().is_err());
    }
}
