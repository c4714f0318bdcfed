use super::*;
use crate::archive::import::{import, ImportOptions};

/// A registry in memory: blobs by repository, manifests by tag.
#[derive(Default)]
struct Fake {
    blobs: Mutex<Vec<(String, Digest, Vec<u8>)>>,
    manifests: Mutex<Vec<(String, Vec<u8>, String)>>,
    calls: Mutex<Vec<String>>,
    /// Answer this digest instead of the manifest's own.
    lie: Option<Digest>,
}

impl Destination for Fake {
    fn push_blob(
        &self,
        target: &Reference,
        digest: &Digest,
        size: u64,
        path: &Path,
        mount_from: Option<&str>,
    ) -> std::result::Result<BlobOutcome, DestinationError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("blob {digest} from={mount_from:?}"));
        let mut blobs = self.blobs.lock().unwrap();
        if blobs
            .iter()
            .any(|(r, d, _)| *r == target.path && d == digest)
        {
            return Ok(BlobOutcome::Exists);
        }
        if let Some(f) = mount_from {
            if let Some(b) = blobs
                .iter()
                .find(|(r, d, _)| r == f && d == digest)
                .map(|(_, _, b)| b.clone())
            {
                blobs.push((target.path.clone(), digest.clone(), b));
                return Ok(BlobOutcome::Mounted(f.to_string()));
            }
        }
        let data = std::fs::read(path)?;
        assert_eq!(data.len() as u64, size);
        assert_eq!(Digest::sha256_of(&data), *digest);
        blobs.push((target.path.clone(), digest.clone(), data));
        Ok(BlobOutcome::Uploaded)
    }

    fn push_manifest(
        &self,
        target: &Reference,
        bytes: &[u8],
        media_type: &str,
    ) -> std::result::Result<Digest, DestinationError> {
        self.manifests.lock().unwrap().push((
            target.to_string(),
            bytes.to_vec(),
            media_type.to_string(),
        ));
        Ok(self.lie.clone().unwrap_or_else(|| Digest::sha256_of(bytes)))
    }
}

struct Events(Mutex<Vec<(Digest, Event)>>);

impl Progress for Events {
    fn event(&self, layer: &Digest, what: &Event) {
        self.0.lock().unwrap().push((layer.clone(), what.clone()));
    }
}

fn setup() -> (tempfile::TempDir, Store, Db, Digest) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let db = Db::open(dir.path()).unwrap();
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    let data = b"hello from a layer\n";
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_cksum();
    tar.append_data(&mut h, "etc/hello", &data[..]).unwrap();
    let tar = tar.into_inner().unwrap();
    let loaded = import(
        &store,
        &db,
        &tar[..],
        &ImportOptions {
            source_name: "test".into(),
            reference: Some(Reference::parse("reg.example:5000/app:1").unwrap()),
            ..ImportOptions::default()
        },
    )
    .unwrap();
    (dir, store, db, loaded.id)
}

fn target(s: &str) -> Reference {
    Reference::parse(s).unwrap()
}

#[test]
fn pushes_stored_manifest_byte_for_byte_and_records_the_repo_digest() {
    let (_d, store, db, id) = setup();
    let fake = Fake::default();
    let ev = Events(Mutex::new(Vec::new()));
    let t = target("reg.example:5000/app:1");
    let p = push(
        &store,
        &db,
        &fake,
        "reg.example:5000/app:1",
        &t,
        &Options::default(),
        &ev,
    )
    .unwrap();
    let rec = db.image(&id).unwrap().unwrap();
    assert_eq!(p.manifest_digest, rec.manifest_digest);
    let stored = store.read_blob(&rec.manifest_digest, 1 << 20).unwrap();
    let m = fake.manifests.lock().unwrap().clone();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].1, stored);
    assert_eq!(m[0].2, rec.manifest_media_type);
    // The layer and the config were uploaded.
    let blobs = fake.blobs.lock().unwrap().clone();
    assert_eq!(blobs.len(), 2);
    assert!(blobs.iter().any(|(_, d, _)| *d == id));
    assert_eq!(
        p.layers,
        vec![(rec.layers[0].blob_digest.clone(), BlobOutcome::Uploaded)]
    );
    let evs = ev.0.lock().unwrap().clone();
    assert_eq!(evs.first().map(|e| &e.1), Some(&Event::Preparing));
    assert_eq!(
        evs.last().map(|e| &e.1),
        Some(&Event::Done(BlobOutcome::Uploaded))
    );
    let want = format!("reg.example:5000/app@{}", rec.manifest_digest);
    assert_eq!(p.repo_digest, want);
    assert_eq!(db.repo_digests_of(&id).unwrap(), vec![want]);
    // Again: everything exists.
    let p = push(
        &store,
        &db,
        &fake,
        id.as_str(),
        &t,
        &Options::default(),
        &ev,
    )
    .unwrap();
    assert_eq!(p.layers[0].1, BlobOutcome::Exists);
    assert_eq!(fake.blobs.lock().unwrap().len(), 2);
}

#[test]
fn second_repository_mounts_from_the_first() {
    let (_d, store, db, _) = setup();
    let fake = Fake::default();
    let ev = Events(Mutex::new(Vec::new()));
    let src = "reg.example:5000/app:1";
    push(
        &store,
        &db,
        &fake,
        src,
        &target(src),
        &Options::default(),
        &ev,
    )
    .unwrap();
    let p = push(
        &store,
        &db,
        &fake,
        src,
        &target("reg.example:5000/other/app:2"),
        &Options::default(),
        &ev,
    )
    .unwrap();
    assert_eq!(p.layers[0].1, BlobOutcome::Mounted("app".into()));
    // Another registry: no mount source.
    let p = push(
        &store,
        &db,
        &fake,
        src,
        &target("elsewhere.example/fresh:1"),
        &Options::default(),
        &ev,
    )
    .unwrap();
    assert_eq!(p.layers[0].1, BlobOutcome::Uploaded);
    assert!(fake
        .calls
        .lock()
        .unwrap()
        .iter()
        .any(|c| c.ends_with("from=Some(\"app\")")));
}

#[test]
fn missing_layer_blob_is_a_clear_error_before_any_upload() {
    let (_d, store, db, id) = setup();
    let rec = db.image(&id).unwrap().unwrap();
    std::fs::remove_file(store.blob_path(&rec.layers[0].blob_digest)).unwrap();
    let fake = Fake::default();
    let ev = Events(Mutex::new(Vec::new()));
    let t = target("reg.example:5000/app:1");
    let e = push(
        &store,
        &db,
        &fake,
        "reg.example:5000/app:1",
        &t,
        &Options::default(),
        &ev,
    )
    .err()
    .unwrap();
    let msg = e.to_string();
    assert!(
        msg.contains(rec.layers[0].blob_digest.as_str()) && msg.contains("not in the store"),
        "{msg}"
    );
    assert!(fake.calls.lock().unwrap().is_empty());
    assert!(fake.manifests.lock().unwrap().is_empty());
}

#[test]
fn unknown_image_and_digest_targets_are_refused() {
    let (_d, store, db, _) = setup();
    let fake = Fake::default();
    let ev = Events(Mutex::new(Vec::new()));
    let e = push(
        &store,
        &db,
        &fake,
        "nope:1",
        &target("reg.example:5000/nope:1"),
        &Options::default(),
        &ev,
    )
    .err()
    .unwrap();
    assert_eq!(e.to_string(), "no such image: nope:1");
    let d = format!("reg.example:5000/app@sha256:{}", "a".repeat(64));
    let e = push(
        &store,
        &db,
        &fake,
        "reg.example:5000/app:1",
        &target(&d),
        &Options::default(),
        &ev,
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("give a tag"), "{e}");
    assert!(fake.calls.lock().unwrap().is_empty());
}

#[test]
fn a_registry_that_changes_the_digest_is_an_error_and_nothing_is_recorded() {
    let (_d, store, db, id) = setup();
    let fake = Fake {
        lie: Some(Digest::sha256_of(b"other")),
        ..Fake::default()
    };
    let ev = Events(Mutex::new(Vec::new()));
    let t = target("reg.example:5000/app:1");
    let e = push(
        &store,
        &db,
        &fake,
        "reg.example:5000/app:1",
        &t,
        &Options::default(),
        &ev,
    )
    .err()
    .unwrap();
    assert!(matches!(e, Error::DigestChanged { .. }), "{e}");
    assert!(db.repo_digests_of(&id).unwrap().is_empty());
}

#[test]
fn missing_manifest_blob_is_rebuilt_from_the_record() {
    let (_d, store, db, id) = setup();
    let rec = db.image(&id).unwrap().unwrap();
    std::fs::remove_file(store.blob_path(&rec.manifest_digest)).unwrap();
    let fake = Fake::default();
    let ev = Events(Mutex::new(Vec::new()));
    let t = target("reg.example:5000/app:1");
    let p = push(
        &store,
        &db,
        &fake,
        "reg.example:5000/app:1",
        &t,
        &Options::default(),
        &ev,
    )
    .unwrap();
    // import writes its manifest with the same helper: same bytes.
    assert_eq!(p.manifest_digest, rec.manifest_digest);
}
