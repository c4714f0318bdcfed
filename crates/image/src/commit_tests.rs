use super::*;
use crate::archive::import::{import, ImportOptions};
use crate::unpack::sys::get_xattr;
use nix::sys::stat::{mknod, Mode, SFlag};
use std::collections::BTreeMap;
use std::ffi::{CString, OsStr};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::process::Command;

struct Env {
    _t: tempfile::TempDir,
    dir: PathBuf,
    store: Store,
    db: Db,
    parent: ImageRecord,
}

fn set_xattr(path: &Path, key: &str, value: &[u8]) {
    let p = CString::new(path.as_os_str().as_bytes()).unwrap();
    let k = CString::new(key).unwrap();
    // SAFETY: `p` and `k` are NUL-terminated strings that outlive the call and
    // `value` is a readable buffer of `value.len()` bytes; the kernel only
    // reads them.
    let r = unsafe {
        libc::lsetxattr(
            p.as_ptr(),
            k.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    assert_eq!(
        r,
        0,
        "setxattr {key} on {}: {}",
        path.display(),
        io::Error::last_os_error()
    );
}

fn tar_of(entries: &[(&str, Option<&[u8]>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in entries {
        match data {
            Some(d) => {
                let mut h = archive::file_header(d.len() as u64);
                b.append_data(&mut h, name, *d).unwrap();
            }
            None => {
                let mut h = archive::dir_header();
                h.set_uid(0);
                h.set_gid(0);
                b.append_data(&mut h, name, io::empty()).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

/// A store with a one-layer parent image made by `import`.
fn env() -> Env {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().to_path_buf();
    let store = Store::open(dir.join("root")).unwrap();
    let db = Db::open(dir.join("root")).unwrap();
    let tar = tar_of(&[
        ("etc/", None),
        ("etc/passwd", Some(b"root:x:0:0::/root:/bin/sh\n")),
        ("etc/hostname", Some(b"base\n")),
        ("data/", None),
        ("data/a", Some(b"a")),
        ("data/b", Some(b"b")),
        ("data/keep", Some(b"k")),
    ]);
    let opts = ImportOptions {
        changes: vec!["CMD [\"/bin/sh\"]".into(), "ENV BASE=1".into()],
        source_name: "test".into(),
        ..Default::default()
    };
    let loaded = import(&store, &db, &tar[..], &opts).unwrap();
    let parent = db.image(&loaded.id).unwrap().unwrap();
    Env {
        _t: t,
        dir,
        store,
        db,
        parent,
    }
}

const LONG: &str = "a-file-name-long-enough-that-the-whole-relative-path-does-not-fit-in-the-hundred-bytes-of-ustar.txt";

/// An upper dir with every kind of change.
fn upper(dir: &Path) -> PathBuf {
    let u = dir.join("upper");
    fs::create_dir_all(u.join("etc")).unwrap();
    fs::write(u.join("etc/passwd"), b"root:x:0:0::/root:/bin/bash\n").unwrap();
    fs::write(u.join("etc/new.conf"), b"new\n").unwrap();
    set_xattr(&u.join("etc/new.conf"), "user.berth", b"yes");
    set_xattr(&u.join("etc/new.conf"), "trusted.overlay.origin", b"x");
    mknod(&u.join("etc/hostname"), SFlag::S_IFCHR, Mode::empty(), 0).unwrap();
    fs::create_dir(u.join("data")).unwrap();
    set_xattr(&u.join("data"), "trusted.overlay.opaque", b"y");
    fs::write(u.join("data/c"), b"c").unwrap();
    fs::write(u.join("data/keep"), b"again").unwrap();
    fs::create_dir(u.join("newdir")).unwrap();
    fs::write(u.join("newdir/f"), b"linked").unwrap();
    fs::hard_link(u.join("newdir/f"), u.join("newdir/g")).unwrap();
    std::os::unix::fs::symlink("../etc/passwd", u.join("newdir/link")).unwrap();
    nix::unistd::mkfifo(&u.join("newdir/fifo"), Mode::from_bits_truncate(0o640)).unwrap();
    fs::write(u.join("newdir").join(LONG), b"long").unwrap();
    nix::unistd::chown(
        &u.join("newdir/f"),
        Some(nix::unistd::Uid::from_raw(1000)),
        Some(nix::unistd::Gid::from_raw(3_000_000)),
    )
    .unwrap();
    u
}

fn lowers(e: &Env) -> Vec<PathBuf> {
    e.parent
        .layers
        .iter()
        .rev()
        .map(|l| e.store.layer_dir(&l.chain_id))
        .collect()
}

#[test]
fn changes_like_docker_diff() {
    let e = env();
    let u = upper(&e.dir);
    let got: Vec<String> = changes(&u, &lowers(&e))
        .unwrap()
        .iter()
        .map(|c| c.to_string())
        .collect();
    let long = format!("A /newdir/{LONG}");
    let want = vec![
        "C /data",
        "D /data/a",
        "D /data/b",
        "A /data/c",
        "C /data/keep",
        "C /etc",
        "D /etc/hostname",
        "A /etc/new.conf",
        "C /etc/passwd",
        "A /newdir",
        &long,
        "A /newdir/f",
        "A /newdir/fifo",
        "A /newdir/g",
        "A /newdir/link",
    ];
    assert_eq!(got, want);
}

#[test]
fn changes_respect_lower_whiteouts_and_opaque_dirs() {
    let t = tempfile::tempdir().unwrap();
    let (top, bottom, up) = (
        t.path().join("top"),
        t.path().join("bottom"),
        t.path().join("up"),
    );
    for d in [&top, &bottom, &up] {
        fs::create_dir(d).unwrap();
    }
    // bottom: /x, /d/old; top: whiteout of /x, /d opaque with /d/new.
    fs::write(bottom.join("x"), b"").unwrap();
    fs::create_dir(bottom.join("d")).unwrap();
    fs::write(bottom.join("d/old"), b"").unwrap();
    mknod(&top.join("x"), SFlag::S_IFCHR, Mode::empty(), 0).unwrap();
    fs::create_dir(top.join("d")).unwrap();
    set_xattr(&top.join("d"), "trusted.overlay.opaque", b"y");
    fs::write(top.join("d/new"), b"").unwrap();
    // upper: /x again, /d/old again, /d/new changed.
    fs::write(up.join("x"), b"").unwrap();
    fs::create_dir(up.join("d")).unwrap();
    fs::write(up.join("d/old"), b"").unwrap();
    fs::write(up.join("d/new"), b"").unwrap();
    let got: Vec<String> = changes(&up, &[top, bottom])
        .unwrap()
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(got, ["C /d", "C /d/new", "A /d/old", "A /x"]);
}

/// Decodes every gzip member (the blob is one per 1 MiB of tar: pgzip.rs);
/// each must start right where the last ended, with nothing else between
/// or after them.
fn gunzip_members(bytes: &[u8]) -> Vec<u8> {
    let mut rest = bytes;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let mut d = flate2::bufread::GzDecoder::new(rest);
        d.read_to_end(&mut out).unwrap();
        rest = d.into_inner();
    }
    out
}

fn gzip_t(path: &Path) {
    let st = Command::new("gzip").arg("-t").arg(path).status().unwrap();
    assert!(st.success(), "gzip -t {}", path.display());
}

/// (name, type, link name, size, xattrs) of each entry.
type Listed = (
    String,
    tar::EntryType,
    String,
    u64,
    BTreeMap<String, Vec<u8>>,
);

fn list_tar(bytes: &[u8]) -> Vec<Listed> {
    let mut a = tar::Archive::new(bytes);
    let mut out = Vec::new();
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let mut xattrs = BTreeMap::new();
        if let Some(exts) = e.pax_extensions().unwrap() {
            for x in exts {
                let x = x.unwrap();
                if let Some(k) = x.key().unwrap().strip_prefix("SCHILY.xattr.") {
                    xattrs.insert(k.to_string(), x.value_bytes().to_vec());
                }
            }
        }
        out.push((
            String::from_utf8(e.path_bytes().into_owned()).unwrap(),
            e.header().entry_type(),
            e.link_name_bytes()
                .map(|l| String::from_utf8(l.into_owned()).unwrap())
                .unwrap_or_default(),
            e.header().size().unwrap(),
            xattrs,
        ));
        io::copy(&mut e, &mut io::sink()).unwrap();
    }
    out
}

fn counts(s: &Store) -> (usize, usize, usize) {
    let tmp = fs::read_dir(s.tmp_dir()).unwrap().count();
    let layers_tmp = fs::read_dir(s.root().join("layers"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("tmp-")
        })
        .count();
    (
        s.list_blobs().unwrap().len() + s.list_layers().unwrap().len(),
        tmp,
        layers_tmp,
    )
}

#[test]
fn commit_makes_parent_layers_plus_one() {
    let e = env();
    let u = upper(&e.dir);
    let opts = CommitOptions {
        changes: vec![
            "CMD [\"/bin/bash\"]".into(),
            "ENV A=b".into(),
            "EXPOSE 80".into(),
        ],
        author: Some("Ann <ann@example.com>".into()),
        message: Some("my change".into()),
        created_by: Some("/bin/sh -c make".into()),
        container: Some("abc123".into()),
        reference: Some(Reference::parse("mine:v1").unwrap()),
    };
    let done = commit(&e.store, &e.db, &e.parent, &u, &opts).unwrap();
    assert_eq!(done.image.tags, ["mine:v1"]);
    let rec = e.db.image_by_ref("mine:v1").unwrap().unwrap();
    assert_eq!(rec.id, done.image.id);

    // The blob: gzip members that gzip(1) checks and that decode to the tar.
    let blob_path = e.store.blob_path(&done.layer.blob_digest);
    gzip_t(&blob_path);
    let gz = fs::read(&blob_path).unwrap();
    assert_eq!(Digest::sha256_of(&gz), done.layer.blob_digest);
    assert_eq!(gz.len() as u64, done.layer.size);
    let tar = gunzip_members(&gz);
    assert_eq!(Digest::sha256_of(&tar), done.layer.diff_id);

    let entries = list_tar(&tar);
    let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
    let long = format!("newdir/{LONG}");
    assert_eq!(
        names,
        [
            "data/",
            "data/.wh..wh..opq",
            "data/c",
            "data/keep",
            "etc/",
            "etc/.wh.hostname",
            "etc/new.conf",
            "etc/passwd",
            "newdir/",
            &long,
            "newdir/f",
            "newdir/fifo",
            "newdir/g",
            "newdir/link",
        ]
    );
    let by_name: BTreeMap<&str, &Listed> = entries.iter().map(|e| (e.0.as_str(), e)).collect();
    use tar::EntryType as T;
    assert_eq!(by_name["etc/.wh.hostname"].1, T::Regular);
    assert_eq!(by_name["etc/.wh.hostname"].3, 0);
    assert_eq!(by_name["data/.wh..wh..opq"].1, T::Regular);
    assert_eq!(by_name["newdir/g"].1, T::Link);
    assert_eq!(by_name["newdir/g"].2, "newdir/f");
    assert_eq!(by_name["newdir/link"].1, T::Symlink);
    assert_eq!(by_name["newdir/link"].2, "../etc/passwd");
    assert_eq!(by_name["newdir/fifo"].1, T::Fifo);
    assert_eq!(by_name["etc/passwd"].3, 28);
    let x = &by_name["etc/new.conf"].4;
    assert_eq!(x.get("user.berth").map(Vec::as_slice), Some(&b"yes"[..]));
    assert!(!x.keys().any(|k| k.contains("overlay")), "{x:?}");
    assert!(
        by_name["data/"].4.is_empty(),
        "overlay xattrs are not copied"
    );

    // The unpacked layer is in overlay format again.
    let dir = e.store.layer_dir(&done.layer.chain_id);
    let wh = fs::symlink_metadata(dir.join("etc/hostname")).unwrap();
    assert!(wh.file_type().is_char_device() && wh.rdev() == 0);
    assert_eq!(
        get_xattr(&dir.join("data"), "trusted.overlay.opaque").unwrap(),
        Some(b"y".to_vec())
    );
    assert!(!dir.join("data/.wh..wh..opq").exists());
    assert_eq!(
        get_xattr(&dir.join("etc/new.conf"), "user.berth").unwrap(),
        Some(b"yes".to_vec())
    );
    let (f, g) = (
        fs::metadata(dir.join("newdir/f")).unwrap(),
        fs::metadata(dir.join("newdir/g")).unwrap(),
    );
    assert_eq!(f.ino(), g.ino());
    assert_eq!((f.uid(), f.gid()), (1000, 3_000_000), "big gid through PAX");
    assert_eq!(fs::read(dir.join("newdir").join(LONG)).unwrap(), b"long");
    let meta = e.store.layer_meta(&done.layer.chain_id).unwrap().unwrap();
    assert_eq!(meta.parent.as_ref(), Some(&e.parent.layers[0].chain_id));

    // The record: the parent's layers and the new one.
    assert_eq!(rec.layers.len(), e.parent.layers.len() + 1);
    assert_eq!(rec.layers[..1], e.parent.layers[..]);
    assert_eq!(rec.layers[1], done.layer);
    let mut diffs: Vec<Digest> = e.parent.layers.iter().map(|l| l.diff_id.clone()).collect();
    diffs.push(done.layer.diff_id.clone());
    assert_eq!(done.layer.chain_id, *chain_ids(&diffs).last().unwrap());

    // The config.
    let c: Value = serde_json::from_str(&rec.config).unwrap();
    let p: Value = serde_json::from_str(&e.parent.config).unwrap();
    assert_eq!(c["author"], "Ann <ann@example.com>");
    assert_eq!(c["comment"], "my change");
    assert_eq!(c["container"], "abc123");
    assert_eq!(c["architecture"], p["architecture"]);
    assert_eq!(c["config"]["Cmd"], json!(["/bin/bash"]));
    assert_eq!(c["config"]["Env"], json!(["BASE=1", "A=b"]));
    assert_eq!(c["config"]["ExposedPorts"], json!({"80/tcp": {}}));
    assert_eq!(
        c["rootfs"]["diff_ids"],
        json!(diffs.iter().map(|d| d.to_string()).collect::<Vec<_>>())
    );
    let h = c["history"].as_array().unwrap();
    assert_eq!(h.len(), p["history"].as_array().unwrap().len() + 1);
    let last = h.last().unwrap();
    assert_eq!(last["created_by"], "/bin/sh -c make");
    assert_eq!(last["author"], "Ann <ann@example.com>");
    assert_eq!(last["comment"], "my change");
    assert_eq!(last["created"], c["created"]);
    assert_ne!(c["created"], p["created"]);

    // The manifest names the config and all layers.
    let m: Value = serde_json::from_slice(
        &e.store
            .read_blob(&rec.manifest_digest, crate::manifest::MAX_MANIFEST)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(m["config"]["digest"], rec.id.to_string());
    let layers = m["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2);
    assert_eq!(
        layers[0]["digest"],
        e.parent.layers[0].blob_digest.to_string()
    );
    assert_eq!(layers[1]["digest"], done.layer.blob_digest.to_string());
    assert_eq!(layers[1]["mediaType"], mt::OCI_LAYER_GZIP);
    assert_eq!(layers[1]["size"], done.layer.size);
}

#[test]
fn commit_keeps_unknown_config_fields_and_is_deterministic() {
    let e = env();
    let u = upper(&e.dir);
    let mut parent = e.parent.clone();
    let mut p: Value = serde_json::from_str(&parent.config).unwrap();
    p["x-vendor"] = json!({"k": [1, 2]});
    p["config"]["Labels"] = json!({"keep": "me"});
    p["container_config"] = json!({"Cmd": ["old"]});
    parent.config = p.to_string();
    let a = commit(&e.store, &e.db, &parent, &u, &CommitOptions::default()).unwrap();
    let b = commit(&e.store, &e.db, &parent, &u, &CommitOptions::default()).unwrap();
    assert_eq!(a.layer, b.layer, "same upper, same layer blob and diff id");
    let rec = e.db.image(&a.image.id).unwrap().unwrap();
    let c: Value = serde_json::from_str(&rec.config).unwrap();
    assert_eq!(c["x-vendor"], json!({"k": [1, 2]}));
    assert_eq!(c["config"]["Labels"], json!({"keep": "me"}));
    assert!(c.get("container_config").is_none());
    assert!(c.get("author").is_none() && c.get("comment").is_none());
}

#[test]
fn commit_of_an_empty_upper_makes_an_empty_layer() {
    let e = env();
    let u = e.dir.join("empty");
    fs::create_dir(&u).unwrap();
    assert!(changes(&u, &lowers(&e)).unwrap().is_empty());
    let done = commit(&e.store, &e.db, &e.parent, &u, &CommitOptions::default()).unwrap();
    let gz = fs::read(e.store.blob_path(&done.layer.blob_digest)).unwrap();
    let tar = gunzip_members(&gz);
    assert_eq!(tar, vec![0u8; 1024], "just the end-of-archive blocks");
    assert_eq!(done.layer.diff_id, Digest::sha256_of(&tar));
    let rec = e.db.image(&done.image.id).unwrap().unwrap();
    assert_eq!(rec.layers.len(), 2);
}

#[test]
fn failed_commit_leaves_nothing() {
    let e = env();
    let before = counts(&e.store);
    let images = e.db.all_image_ids().unwrap();
    let opts = CommitOptions {
        reference: Some(Reference::parse("never:made").unwrap()),
        ..Default::default()
    };

    // No upper dir at all.
    let err = commit(&e.store, &e.db, &e.parent, &e.dir.join("nosuch"), &opts).unwrap_err();
    assert!(err.to_string().contains("nosuch"), "{err}");

    // A failure in the middle: 3 MiB went through the tar, the unpack and
    // the gzip workers before the walk fails.
    let u = e.dir.join("upper-fails");
    fs::create_dir(&u).unwrap();
    fs::write(u.join("a-big-file"), vec![7u8; 3 << 20]).unwrap();
    fs::write(u.join(OsStr::from_bytes(walk::FAIL_NAME)), b"x").unwrap();
    let err = commit(&e.store, &e.db, &e.parent, &u, &opts).unwrap_err();
    assert!(
        matches!(err, Error::Upper { .. }) && err.to_string().contains("injected"),
        "{err}"
    );

    // A bad --change is refused before any work.
    let bad = CommitOptions {
        changes: vec!["RUN rm -rf /".into()],
        ..Default::default()
    };
    let err = commit(&e.store, &e.db, &e.parent, &u, &bad).unwrap_err();
    assert!(err.to_string().contains("invalid --change"), "{err}");

    assert_eq!(counts(&e.store), before, "(blobs+layers, tmp, staging)");
    assert_eq!(before.1 + before.2, 0);
    assert_eq!(e.db.all_image_ids().unwrap(), images);
    assert!(e.db.image_by_ref("never:made").unwrap().is_none());
}

#[test]
fn parent_with_mismatched_layers_is_refused() {
    let e = env();
    let mut parent = e.parent.clone();
    parent.layers.clear();
    let u = e.dir.join("u");
    fs::create_dir(&u).unwrap();
    let err = commit(&e.store, &e.db, &parent, &u, &CommitOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Parent { .. }), "{err}");
}

/// Deterministic, somewhat compressible bytes (base64-like text: base64
/// of random bytes, 6 bits a byte, nothing for LZ to find).
pub(super) fn text(n: usize, seed: u64) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut x = seed | 1;
    (0..n)
        .map(|i| {
            if i % 77 == 76 {
                return b'\n';
            }
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ALPHABET[(x % 64) as usize]
        })
        .collect()
}

/// `cargo test -p berth-image --release commit_100_mib -- --ignored --nocapture`
#[test]
#[ignore = "a measurement, not a check: prints how long a 100 MiB commit takes"]
fn commit_100_mib_timing() {
    let e = env();
    let u = e.dir.join("big");
    fs::create_dir(&u).unwrap();
    let sizes = [40 << 20, 20 << 20, 10 << 20];
    let mut total = 0usize;
    for (i, s) in sizes.iter().enumerate() {
        fs::write(u.join(format!("big{i}")), text(*s, i as u64 + 1)).unwrap();
        total += s;
    }
    let mut i = 0u64;
    while total < 100 << 20 {
        let d = u.join(format!("d{}", i % 16));
        fs::create_dir_all(&d).unwrap();
        let s = [4 << 10, 64 << 10, 1 << 20][(i % 3) as usize];
        fs::write(d.join(format!("f{i}")), text(s, i + 100)).unwrap();
        total += s;
        i += 1;
    }
    let t = std::time::Instant::now();
    let done = commit(&e.store, &e.db, &e.parent, &u, &CommitOptions::default()).unwrap();
    let took = t.elapsed();
    eprintln!(
        "commit of {} files, {:.1} MiB: {:.2?} on {} threads; blob {:.1} MiB",
        i + 3,
        total as f64 / (1 << 20) as f64,
        took,
        pgzip::default_threads(),
        done.layer.size as f64 / (1 << 20) as f64
    );
    gzip_t(&e.store.blob_path(&done.layer.blob_digest));
}

/// Go reads what we write: skopeo copies the committed image out of an
/// OCI archive, verifying every blob digest, and decompresses the layers.
#[test]
fn skopeo_reads_the_committed_image() {
    if Command::new("skopeo").arg("--version").output().is_err() {
        eprintln!("skopeo is not installed; skipped");
        return;
    }
    let e = env();
    let u = upper(&e.dir);
    let opts = CommitOptions {
        reference: Some(Reference::parse("skopeo-check:1").unwrap()),
        ..Default::default()
    };
    let done = commit(&e.store, &e.db, &e.parent, &u, &opts).unwrap();
    let archive_path = e.dir.join("image.tar");
    archive::save_to_path(
        &e.store,
        &e.db,
        &["skopeo-check:1".to_string()],
        archive::Format::OciArchive,
        &archive_path,
    )
    .unwrap();
    let out = e.dir.join("out");
    let r = Command::new("skopeo")
        .args(["--insecure-policy", "copy", "--dest-decompress"])
        .arg(format!("oci-archive:{}", archive_path.display()))
        .arg(format!("dir:{}", out.display()))
        .output()
        .unwrap();
    assert!(
        r.status.success(),
        "skopeo: {}",
        String::from_utf8_lossy(&r.stderr)
    );
    // The decompressed layer is our tar, byte for byte.
    let layer = out.join(done.layer.diff_id.hex());
    let tar = fs::read(&layer).unwrap_or_else(|e| panic!("{}: {e}", layer.display()));
    assert_eq!(Digest::sha256_of(&tar), done.layer.diff_id);
}
