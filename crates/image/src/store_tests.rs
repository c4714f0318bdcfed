use super::*;
use std::sync::mpsc;
use std::thread;

fn store() -> (tempfile::TempDir, Store) {
    let t = tempfile::tempdir().unwrap();
    let s = Store::open(t.path().join("root")).unwrap();
    (t, s)
}

fn names(dir: &Path) -> Vec<String> {
    let mut v = read_dir_names(dir).unwrap();
    v.sort();
    v
}

fn set_old(path: &Path, age: Duration) {
    use nix::sys::stat::{utimensat, UtimensatFlags};
    use nix::sys::time::TimeSpec;
    let t = SystemTime::now() - age;
    let ts = TimeSpec::from_duration(t.duration_since(SystemTime::UNIX_EPOCH).unwrap());
    utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &ts,
        &ts,
        UtimensatFlags::NoFollowSymlink,
    )
    .unwrap();
}

#[test]
fn open_creates_private_layout() {
    let (_t, s) = store();
    for d in ["blobs/sha256", "ingest", "layers", "tmp"] {
        let m = fs::metadata(s.root().join(d)).unwrap();
        assert!(m.is_dir(), "{d}");
        assert_eq!(m.mode() & 0o777, 0o700, "{d}");
    }
    // Opening again is fine.
    Store::open(s.root()).unwrap();
}

#[test]
fn put_and_read_blob() {
    let (_t, s) = store();
    let d = Digest::sha256_of(b"hello");
    assert!(!s.has_blob(&d));
    assert_eq!(s.blob_size(&d).unwrap(), None);
    let p = s.put_blob(b"hello", &d).unwrap();
    assert_eq!(p, s.root().join("blobs/sha256").join(d.hex()));
    assert!(s.has_blob(&d));
    assert_eq!(s.blob_size(&d).unwrap(), Some(5));
    assert_eq!(s.read_blob(&d, 5).unwrap(), b"hello");
    // Idempotent.
    s.put_blob(b"hello", &d).unwrap();
    let e = s.read_blob(&d, 4).unwrap_err();
    assert!(
        matches!(
            e,
            Error::TooLarge {
                size: 5,
                limit: 4,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(s.list_blobs().unwrap(), vec![d.clone()]);
    assert!(names(&s.tmp_dir()).is_empty());
    // sha512 blobs get their own directory.
    let d512 = Digest::of(digest::Algorithm::Sha512, b"x");
    s.put_blob(b"x", &d512).unwrap();
    assert!(s.root().join("blobs/sha512").join(d512.hex()).is_file());
    assert!(s.remove_blob(&d).unwrap());
    assert!(!s.remove_blob(&d).unwrap());
    let e = s.read_blob(&d, 100).unwrap_err();
    assert_eq!(e.to_string(), format!("blob {d} is not in the store"));
}

#[test]
fn put_blob_mismatch_stores_nothing() {
    let (_t, s) = store();
    let d = Digest::sha256_of(b"hello");
    let e = s.put_blob(b"hellO", &d).unwrap_err();
    assert!(matches!(e, Error::DigestMismatch { .. }));
    assert!(
        e.to_string()
            .starts_with(&format!("digest mismatch for blob {d}: expected {d}")),
        "{e}"
    );
    assert!(names(&s.root().join("blobs/sha256")).is_empty());
    assert!(names(&s.tmp_dir()).is_empty());
}

#[test]
fn read_blob_detects_corruption() {
    let (_t, s) = store();
    let d = Digest::sha256_of(b"hello");
    let p = s.put_blob(b"hello", &d).unwrap();
    fs::write(&p, b"jello").unwrap();
    let e = s.read_blob(&d, 100).unwrap_err();
    assert!(matches!(e, Error::Corrupt { .. }), "{e}");
    assert!(e.to_string().contains("is corrupt"));
}

#[test]
fn ingest_resume_and_commit() {
    let (_t, s) = store();
    let data = vec![42u8; 300_000];
    let d = Digest::sha256_of(&data);
    {
        let mut ing = s.ingest(d.hex()).unwrap();
        assert_eq!(ing.offset(), 0);
        ing.write_all(&data[..100_000]).unwrap();
        assert_eq!(ing.offset(), 100_000);
        // Dropped: the partial data stays, invisible.
    }
    assert!(!s.has_blob(&d));
    let mut ing = s.ingest(d.hex()).unwrap();
    assert_eq!(ing.offset(), 100_000);
    // Writes through the file handle append too.
    ing.file_mut().write_all(&data[100_000..200_000]).unwrap();
    // Too short: an error, the data kept for a resume.
    let e = ing.commit(&d, Some(300_000)).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Incomplete {
                actual: 200_000,
                ..
            }
        ),
        "{e}"
    );
    let mut ing = s.ingest(d.hex()).unwrap();
    assert_eq!(ing.offset(), 200_000);
    ing.write_all(&data[200_000..]).unwrap();
    let p = ing.commit(&d, Some(300_000)).unwrap();
    assert_eq!(p, s.blob_path(&d));
    assert_eq!(fs::read(&p).unwrap(), data);
    assert!(names(&s.root().join("ingest")).is_empty());
    // Committing a blob that exists just drops the ingest.
    let mut ing = s.ingest(d.hex()).unwrap();
    ing.write_all(b"whatever").unwrap();
    ing.commit(&d, None).unwrap();
    assert_eq!(fs::read(&p).unwrap(), data);
    assert!(names(&s.root().join("ingest")).is_empty());
}

#[test]
fn ingest_mismatch_leaves_nothing() {
    let (_t, s) = store();
    let d = Digest::sha256_of(b"the real content");
    let mut ing = s.ingest(d.hex()).unwrap();
    ing.write_all(b"the evil content").unwrap();
    let e = ing.commit(&d, Some(16)).unwrap_err();
    assert!(matches!(e, Error::DigestMismatch { .. }), "{e}");
    assert!(names(&s.root().join("blobs/sha256")).is_empty());
    assert!(names(&s.root().join("ingest")).is_empty());
    // Too long: removed too.
    let mut ing = s.ingest(d.hex()).unwrap();
    ing.write_all(b"the real content plus").unwrap();
    let e = ing.commit(&d, Some(16)).unwrap_err();
    assert!(matches!(e, Error::SizeMismatch { .. }), "{e}");
    assert!(names(&s.root().join("blobs/sha256")).is_empty());
    assert!(names(&s.root().join("ingest")).is_empty());
}

#[test]
fn ingest_reset_abort_and_keys() {
    let (_t, s) = store();
    let mut ing = s.ingest("k").unwrap();
    ing.write_all(b"abc").unwrap();
    ing.reset().unwrap();
    assert_eq!(ing.offset(), 0);
    ing.write_all(b"xy").unwrap();
    assert_eq!(fs::read(ing.path()).unwrap(), b"xy");
    ing.abort().unwrap();
    assert!(names(&s.root().join("ingest")).is_empty());
    for bad in ["", ".", "..", "../x", "a/b", ".hidden", "a b"] {
        let e = s.ingest(bad).unwrap_err();
        assert!(matches!(e, Error::InvalidKey(_)), "{bad:?}");
    }
    s.ingest("sha256:abc").unwrap().abort().unwrap();
}

#[test]
fn concurrent_ingests_of_one_key() {
    let (_t, s) = store();
    let data = vec![7u8; 1 << 20];
    let d = Digest::sha256_of(&data);
    let mut first = s.ingest(d.hex()).unwrap();
    // A second, non-blocking open sees it is taken.
    assert!(s.try_ingest(d.hex()).unwrap().is_none());
    let (tx, rx) = mpsc::channel();
    let s2 = s.clone();
    let d2 = d.clone();
    let waiter = thread::spawn(move || {
        let ing = s2.ingest(d2.hex()).unwrap();
        // Only get here once the first one is done.
        tx.send(()).unwrap();
        let had = s2.has_blob(&d2);
        let offset = ing.offset();
        ing.abort().unwrap();
        (had, offset)
    });
    first.write_all(&data[..1000]).unwrap();
    thread::sleep(Duration::from_millis(200));
    assert!(rx.try_recv().is_err(), "the second ingest did not wait");
    first.write_all(&data[1000..]).unwrap();
    first.commit(&d, Some(data.len() as u64)).unwrap();
    rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let (had, offset) = waiter.join().unwrap();
    assert!(had, "the waiter sees the committed blob");
    assert_eq!(
        offset, 0,
        "the waiter starts a fresh ingest, not the removed one"
    );
    assert_eq!(fs::read(s.blob_path(&d)).unwrap(), data);
}

#[test]
fn many_threads_race_one_ingest() {
    let (_t, s) = store();
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let d = Digest::sha256_of(&data);
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (s, d, data) = (s.clone(), d.clone(), data.clone());
            thread::spawn(move || {
                let mut ing = s.ingest(d.hex()).unwrap();
                if s.has_blob(&d) {
                    return ing.abort().unwrap();
                }
                let off = ing.offset() as usize;
                ing.write_all(&data[off..]).unwrap();
                ing.commit(&d, Some(data.len() as u64)).unwrap();
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(fs::read(s.blob_path(&d)).unwrap(), data);
    assert!(names(&s.root().join("ingest")).is_empty());
}

#[test]
fn chain_ids_per_spec() {
    let a = Digest::sha256_of(b"layer a");
    let b = Digest::sha256_of(b"layer b");
    let c = Digest::sha256_of(b"layer c");
    let ids = chain_ids(&[a.clone(), b.clone(), c.clone()]);
    assert_eq!(ids.len(), 3);
    assert_eq!(ids[0], a);
    // By hand, with sha2 directly.
    use sha2::Digest as _;
    let hand1 = format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(format!("{a} {b}")))
    );
    assert_eq!(ids[1].to_string(), hand1);
    let hand2 = format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(format!("{hand1} {c}")))
    );
    assert_eq!(ids[2].to_string(), hand2);
    // A fixed vector, computed with sha256sum:
    // printf 'sha256:aaaa…(64) sha256:bbbb…(64)' | sha256sum
    let x: Digest = format!("sha256:{}", "a".repeat(64)).parse().unwrap();
    let y: Digest = format!("sha256:{}", "b".repeat(64)).parse().unwrap();
    assert_eq!(
        chain_ids(&[x, y])[1].to_string(),
        "sha256:ccd722928bd92476ba1745586fed6e45a102504185ad88cd89e01ff116fd146c"
    );
    assert!(chain_ids(&[]).is_empty());
}

#[test]
fn layer_staging_and_commit() {
    let (_t, s) = store();
    let chain = Digest::sha256_of(b"chain");
    let st = s.layer_staging().unwrap();
    assert!(st
        .root()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("tmp-"));
    assert_eq!(st.path(), st.root().join("diff"));
    fs::write(st.path().join("hello"), b"hi").unwrap();
    assert!(!s.has_layer(&chain));
    let meta = LayerMeta {
        diff_id: Digest::sha256_of(b"tar"),
        parent: None,
        blob_digest: Some(Digest::sha256_of(b"gz")),
        media_type: Some("application/vnd.oci.image.layer.v1.tar+gzip".into()),
        size: Some(3),
    };
    let dir = s.commit_layer_with(st, &chain, &meta).unwrap();
    assert_eq!(dir, s.layer_dir(&chain));
    assert_eq!(dir, s.root().join("layers").join(chain.hex()).join("diff"));
    assert!(s.has_layer(&chain));
    assert_eq!(fs::read(dir.join("hello")).unwrap(), b"hi");
    assert_eq!(s.layer_meta(&chain).unwrap(), Some(meta));
    assert_eq!(s.list_layers().unwrap(), vec![chain.clone()]);

    // A second commit of the same layer: the staging dir is discarded.
    let st = s.layer_staging().unwrap();
    fs::write(st.path().join("other"), b"x").unwrap();
    let root = st.root().to_path_buf();
    s.commit_layer(st, &chain).unwrap();
    assert!(!root.exists());
    assert!(!s.layer_dir(&chain).join("other").exists());
    assert_eq!(
        names(&s.root().join("layers")),
        vec![chain.hex().to_string()]
    );

    // Dropped without commit: removed, even with read-only dirs inside.
    let st = s.layer_staging().unwrap();
    fs::create_dir(st.path().join("ro")).unwrap();
    fs::write(st.path().join("ro/f"), b"x").unwrap();
    fs::set_permissions(st.path().join("ro"), fs::Permissions::from_mode(0o500)).unwrap();
    drop(st);
    assert_eq!(
        names(&s.root().join("layers")),
        vec![chain.hex().to_string()]
    );

    assert!(s.remove_layer(&chain).unwrap());
    assert!(!s.has_layer(&chain));
    assert!(!s.remove_layer(&chain).unwrap());
    assert!(names(&s.root().join("layers")).is_empty());
}

#[test]
fn racing_layer_commits_both_succeed() {
    let (_t, s) = store();
    let chain = Digest::sha256_of(b"chain");
    let hs: Vec<_> = (0..4)
        .map(|i| {
            let (s, chain) = (s.clone(), chain.clone());
            thread::spawn(move || {
                let st = s.layer_staging().unwrap();
                fs::write(st.path().join("f"), format!("{i}")).unwrap();
                s.commit_layer(st, &chain).unwrap();
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    assert!(s.has_layer(&chain));
    assert_eq!(
        names(&s.root().join("layers")),
        vec![chain.hex().to_string()]
    );
}

#[test]
fn stale_leftovers_are_cleaned_on_open() {
    let (_t, s) = store();
    // A crashed unpack (unlocked, old), a live one (locked, old), a fresh one.
    let dead = s.root().join("layers/tmp-dead");
    fs::create_dir_all(dead.join("diff")).unwrap();
    set_old(&dead, Duration::from_secs(7200));
    let live = s.layer_staging().unwrap();
    set_old(live.root(), Duration::from_secs(7200));
    let fresh = s.root().join("layers/tmp-fresh");
    fs::create_dir_all(&fresh).unwrap();
    // Temp files.
    let old_tmp = s.tmp_dir().join("blob-old");
    fs::write(&old_tmp, b"x").unwrap();
    set_old(&old_tmp, Duration::from_secs(7200));
    let new_tmp = s.tmp_dir().join("blob-new");
    fs::write(&new_tmp, b"x").unwrap();
    // An abandoned ingest and a held one, both old.
    let mut ing = s.ingest("abandoned").unwrap();
    ing.write_all(b"x").unwrap();
    drop(ing);
    let held = s.ingest("held").unwrap();
    for k in ["abandoned", "held"] {
        for f in ["data", "lock", ""] {
            set_old(
                &s.root().join("ingest").join(k).join(f),
                Duration::from_secs(2 * 86400),
            );
        }
    }
    let _ = Store::open(s.root()).unwrap();
    assert!(!dead.exists());
    assert!(live.root().exists());
    assert!(fresh.exists());
    assert!(!old_tmp.exists());
    assert!(new_tmp.exists());
    assert!(!s.root().join("ingest/abandoned").exists());
    assert!(s.root().join("ingest/held").exists());
    drop(held);
    drop(live);
}

#[test]
fn layers_dir_is_an_orlov_top_dir_on_ext4() {
    let t = tempfile::Builder::new()
        .prefix("berth-store-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let root = t.path().join("root");
    let s = Store::open(&root).unwrap();
    let ext4 = crate::topdir::on_ext4(&root);
    if !ext4 {
        eprintln!("skipped: /var/tmp is not ext4");
        return;
    }
    let flags = crate::topdir::flags(&s.layers_root()).unwrap();
    assert_ne!(flags & crate::topdir::FS_TOPDIR_FL, 0, "layers/ lacks +T");
    // A staging dir is not marked itself: only its parent spreads it.
    let st = s.layer_staging().unwrap();
    assert_eq!(
        crate::topdir::flags(&st.dir).unwrap() & crate::topdir::FS_TOPDIR_FL,
        0
    );
}
