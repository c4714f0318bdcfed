//! `pull`: manifest -> config -> layers, every blob verified before it is
//! visible, every layer unpacked into its own directory, layers in parallel.
//!
//! The network side is the `Source` seam (the registry client in berth's
//! CLI, a fake in tests), so this module knows nothing of HTTP.

use crate::db::{Db, ImageRecord, LayerRecord};
use crate::digest::Digest;
use crate::manifest::{self, Manifest, Platform};
use crate::reference::Reference;
use crate::store::{chain_ids, Store};
use crate::unpack;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

pub type SourceError = Box<dyn std::error::Error + Send + Sync>;

/// Where images come from.
pub trait Source: Sync {
    /// The manifest (or index) `reference` names: bytes, media type, digest.
    fn manifest(
        &self,
        r: &Reference,
        reference: &str,
    ) -> std::result::Result<(Vec<u8>, String, Digest), SourceError>;
    /// Download a blob into `out` (append mode; may hold a partial download).
    fn blob(
        &self,
        r: &Reference,
        digest: &Digest,
        size: Option<u64>,
        out: &mut std::fs::File,
        progress: &mut dyn FnMut(u64, Option<u64>),
    ) -> std::result::Result<(), SourceError>;
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Source(SourceError),
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    #[error(transparent)]
    Manifest(#[from] crate::manifest::Error),
    #[error(transparent)]
    Db(#[from] crate::db::Error),
    #[error(transparent)]
    Digest(#[from] crate::digest::Error),
    #[error("layer {digest}: {source}")]
    Unpack {
        digest: Digest,
        source: unpack::Error,
    },
    #[error("layer {blob}: its content hashes to {got}, but the image config says {want}")]
    DiffId {
        blob: Digest,
        want: String,
        got: String,
    },
    #[error("{reference}: {0}", reference = .1)]
    Invalid(String, String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// What the caller sees as a pull proceeds (progress bars or plain lines).
pub trait Progress: Sync {
    fn event(&self, layer: &Digest, what: Event);
}

#[derive(Debug, Clone, Copy)]
pub enum Event {
    Exists,
    Waiting,
    Downloading(u64, Option<u64>),
    Verifying,
    Extracting,
    Done,
}

pub struct Options {
    pub platform: Platform,
    /// Layers downloaded and unpacked at once.
    pub parallel: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            platform: Platform::host(),
            parallel: 3,
        }
    }
}

pub struct Pulled {
    pub image_id: Digest,
    pub manifest_digest: Digest,
    /// False when every layer and the config were already stored.
    pub downloaded: bool,
}

pub fn pull(
    store: &Store,
    db: &Db,
    source: &dyn Source,
    reference: &Reference,
    opts: &Options,
    progress: &dyn Progress,
) -> Result<Pulled> {
    let shown = reference.to_string();
    let mut repo_ref = reference.clone();
    let (mut bytes, mut media_type, mut digest) = source
        .manifest(reference, &reference.manifest_ref())
        .map_err(Error::Source)?;
    let mut parsed = Manifest::parse(&bytes, Some(&media_type), &shown)?;
    if let Manifest::Index(index) = &parsed {
        let desc = manifest::select_platform(index, &opts.platform)?;
        let d: Digest = desc.digest().to_string().parse()?;
        let (b, m, dg) = source
            .manifest(reference, d.as_str())
            .map_err(Error::Source)?;
        // The index's own bytes are kept too, for a byte-identical re-push,
        // and the repo digest is the index's, as in Docker.
        store.put_blob(&bytes, &digest)?;
        if reference.digest.is_none() {
            repo_ref = reference.with_digest(digest.clone());
        }
        bytes = b;
        media_type = m;
        digest = dg;
        parsed = Manifest::parse(&bytes, Some(&media_type), &shown)?;
    }
    let Manifest::Image(image) = parsed else {
        return Err(Error::Invalid(
            "an index must point at image manifests".into(),
            shown,
        ));
    };
    let config_desc = image.config();
    let config_digest: Digest = config_desc.digest().to_string().parse()?;
    let mut downloaded = false;
    if !store.has_blob(&config_digest) {
        fetch_blob(
            store,
            source,
            reference,
            &config_digest,
            Some(config_desc.size()),
            &mut |_, _| {},
        )?;
        downloaded = true;
    }
    let config_bytes = store.read_blob(&config_digest, manifest::MAX_CONFIG)?;
    let config = manifest::parse_config(&config_bytes)?;
    let diff_ids = manifest::diff_ids(&config)?;
    let layers = image.layers();
    if layers.len() != diff_ids.len() {
        return Err(Error::Invalid(
            format!(
                "manifest has {} layers but its config lists {} diff ids",
                layers.len(),
                diff_ids.len()
            ),
            shown,
        ));
    }
    let chains = chain_ids(&diff_ids);
    let mut records = Vec::with_capacity(layers.len());
    for (i, l) in layers.iter().enumerate() {
        records.push(LayerRecord {
            chain_id: chains[i].clone(),
            diff_id: diff_ids[i].clone(),
            blob_digest: l.digest().to_string().parse()?,
            media_type: l.media_type().to_string(),
            size: l.size(),
        });
    }
    // All layers at once, bounded: each is independent (its own dir).
    let next = AtomicUsize::new(0);
    let failed: Mutex<Option<Error>> = Mutex::new(None);
    let did_download = std::sync::atomic::AtomicBool::new(false);
    let workers = opts.parallel.clamp(1, 16).min(records.len().max(1));
    for r in &records {
        if store.has_layer(&r.chain_id) {
            progress.event(&r.blob_digest, Event::Exists);
        } else {
            progress.event(&r.blob_digest, Event::Waiting);
        }
    }
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= records.len() || failed.lock().map(|f| f.is_some()).unwrap_or(true) {
                    return;
                }
                let r = &records[i];
                if store.has_layer(&r.chain_id) {
                    continue;
                }
                if manifest::is_non_distributable(&r.media_type) {
                    // Per the image spec, clients do not fetch these; the
                    // layer is left absent and reported.
                    progress.event(&r.blob_digest, Event::Exists);
                    continue;
                }
                did_download.store(true, Ordering::SeqCst);
                if let Err(e) = fetch_and_unpack(store, source, reference, r, progress) {
                    let mut f = failed.lock().unwrap_or_else(|p| p.into_inner());
                    if f.is_none() {
                        *f = Some(e);
                    }
                    return;
                }
            });
        }
    });
    if let Some(e) = failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    downloaded |= did_download.load(Ordering::SeqCst);
    store.put_blob(&bytes, &digest)?;
    let rec = ImageRecord {
        id: config_digest.clone(),
        manifest_digest: digest.clone(),
        manifest_media_type: media_type,
        created: config.created().clone().unwrap_or_default(),
        size: records.iter().map(|r| r.size).sum::<u64>() + config_desc.size(),
        architecture: config.architecture().to_string(),
        os: config.os().to_string(),
        config: String::from_utf8_lossy(&config_bytes).into_owned(),
        layers: records,
    };
    db.record_pull(&rec, &repo_ref)?;
    Ok(Pulled {
        image_id: config_digest,
        manifest_digest: digest,
        downloaded,
    })
}

fn fetch_blob(
    store: &Store,
    source: &dyn Source,
    reference: &Reference,
    digest: &Digest,
    size: Option<u64>,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<()> {
    let mut ingest = store.ingest(digest.hex())?;
    if store.has_blob(digest) {
        // Another process finished it while we waited for the lock.
        ingest.abort()?;
        return Ok(());
    }
    // The blob is fsynced before it is installed: its pages are sent to the
    // disk while the download goes on (through a second handle, as the
    // source holds the first).
    let handle = ingest.file_mut().try_clone().ok();
    let mut writeback = crate::writeback::Tracker::default();
    let mut last = 0u64;
    let mut progress = |done: u64, total: Option<u64>| {
        if let Some(h) = &handle {
            writeback.wrote(h, done.saturating_sub(last) as usize);
        }
        last = done;
        progress(done, total)
    };
    let r = source.blob(reference, digest, size, ingest.file_mut(), &mut progress);
    if let Err(e) = r {
        // Keep the partial download for a resume; it is not visible.
        return Err(Error::Source(e));
    }
    ingest.commit(digest, size)?;
    Ok(())
}

fn fetch_and_unpack(
    store: &Store,
    source: &dyn Source,
    reference: &Reference,
    r: &LayerRecord,
    progress: &dyn Progress,
) -> Result<()> {
    if !store.has_blob(&r.blob_digest) {
        let d = r.blob_digest.clone();
        fetch_blob(
            store,
            source,
            reference,
            &r.blob_digest,
            Some(r.size),
            &mut |n, t| progress.event(&d, Event::Downloading(n, t)),
        )?;
        progress.event(&r.blob_digest, Event::Verifying);
    }
    progress.event(&r.blob_digest, Event::Extracting);
    let path = store.blob_path(&r.blob_digest);
    let f = std::fs::File::open(&path).map_err(|e| {
        Error::Invalid(
            format!("open {}: {e}", path.display()),
            r.blob_digest.to_string(),
        )
    })?;
    let comp = match manifest::layer_compression(&r.media_type) {
        Some(manifest::Compression::None) => unpack::Compression::None,
        Some(manifest::Compression::Gzip) => unpack::Compression::Gzip,
        Some(manifest::Compression::Zstd) => unpack::Compression::Zstd,
        None => {
            let mut magic = [0u8; 4];
            use std::io::Read;
            let n = std::fs::File::open(&path)
                .and_then(|mut f| f.read(&mut magic))
                .unwrap_or(0);
            unpack::sniff(&magic[..n])
        }
    };
    let staging = store.layer_staging()?;
    let out = unpack_threaded(
        f,
        comp,
        staging.path(),
        &unpack::UnpackOptions {
            keep_ownership: nix::unistd::geteuid().is_root(),
            max_entries: None,
        },
    )
    .map_err(|source| Error::Unpack {
        digest: r.blob_digest.clone(),
        source,
    })?;
    if out.diff_id != r.diff_id.to_string() {
        return Err(Error::DiffId {
            blob: r.blob_digest.clone(),
            want: r.diff_id.to_string(),
            got: out.diff_id,
        });
    }
    store.commit_layer(staging, &r.chain_id)?;
    progress.event(&r.blob_digest, Event::Done);
    Ok(())
}

/// Decompression on its own thread, feeding the unpacker (which hashes the
/// tar stream for the diff id and writes files) through a bounded channel:
/// a layer then takes about max(decompress, untar) instead of their sum.
fn unpack_threaded(
    f: std::fs::File,
    comp: unpack::Compression,
    dest: &std::path::Path,
    opts: &unpack::UnpackOptions,
) -> std::result::Result<unpack::Unpacked, unpack::Error> {
    use std::io::Read;
    const CHUNK: usize = 256 * 1024;
    let (tx, rx) = std::sync::mpsc::sync_channel::<std::io::Result<Vec<u8>>>(8);
    std::thread::scope(|s| {
        s.spawn(move || {
            let mut r = match unpack::decompress(std::io::BufReader::with_capacity(CHUNK, f), comp)
            {
                Ok(r) => r,
                Err(e) => {
                    let _ = tx.send(Err(std::io::Error::other(e.to_string())));
                    return;
                }
            };
            loop {
                let mut buf = vec![0u8; CHUNK];
                match r.read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => {
                        buf.truncate(n);
                        // The unpacker stopped (error): nobody reads any more.
                        if tx.send(Ok(buf)).is_err() {
                            return;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                }
            }
        });
        let reader = ChannelReader {
            rx,
            cur: Vec::new(),
            pos: 0,
        };
        unpack::unpack_layer(reader, dest, opts)
    })
}

/// `Read` over chunks arriving on a channel; end of stream when the sender
/// is gone.
struct ChannelReader {
    rx: std::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>,
    cur: Vec<u8>,
    pos: usize,
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.cur.len() {
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    self.cur = chunk;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn channel_reader_delivers_everything_then_eof() {
        let (tx, rx) = std::sync::mpsc::sync_channel(2);
        let t = std::thread::spawn(move || {
            for i in 0..100u8 {
                tx.send(Ok(vec![i; 1000])).unwrap();
            }
        });
        let mut r = ChannelReader {
            rx,
            cur: Vec::new(),
            pos: 0,
        };
        let mut all = Vec::new();
        r.read_to_end(&mut all).unwrap();
        t.join().unwrap();
        assert_eq!(all.len(), 100_000);
        assert!(all
            .chunks(1000)
            .enumerate()
            .all(|(i, c)| c.iter().all(|b| *b as usize == i)));
    }

    #[test]
    fn channel_reader_passes_errors() {
        let (tx, rx) = std::sync::mpsc::sync_channel(2);
        tx.send(Ok(vec![1, 2, 3])).unwrap();
        tx.send(Err(std::io::Error::other("corrupt gzip"))).unwrap();
        drop(tx);
        let mut r = ChannelReader {
            rx,
            cur: Vec::new(),
            pos: 0,
        };
        let mut all = Vec::new();
        let e = r.read_to_end(&mut all).unwrap_err();
        assert_eq!(e.to_string(), "corrupt gzip");
    }
}
