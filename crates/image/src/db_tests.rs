use super::*;
use crate::store::chain_ids;
use std::thread;

fn dig(s: &str) -> Digest {
    Digest::sha256_of(s.as_bytes())
}

/// An image with layers made from `layer_names` (shared names, shared layers).
fn image(name: &str, layer_names: &[&str]) -> ImageRecord {
    let diff_ids: Vec<Digest> = layer_names
        .iter()
        .map(|l| dig(&format!("diff {l}")))
        .collect();
    let chains = chain_ids(&diff_ids);
    ImageRecord {
        id: dig(&format!("config {name}")),
        manifest_digest: dig(&format!("manifest {name}")),
        manifest_media_type: crate::manifest::media_type::OCI_MANIFEST.into(),
        created: "2024-01-02T03:04:05Z".into(),
        size: 1234,
        architecture: "amd64".into(),
        os: "linux".into(),
        config: format!("{{\"name\":\"{name}\"}}"),
        layers: layer_names
            .iter()
            .enumerate()
            .map(|(i, l)| LayerRecord {
                chain_id: chains[i].clone(),
                diff_id: diff_ids[i].clone(),
                blob_digest: dig(&format!("blob {l}")),
                media_type: crate::manifest::media_type::OCI_LAYER_GZIP.into(),
                size: 100 + i as u64,
            })
            .collect(),
    }
}

fn db() -> (tempfile::TempDir, Db) {
    let t = tempfile::tempdir().unwrap();
    let db = Db::open(t.path()).unwrap();
    (t, db)
}

#[test]
fn open_sets_up_schema_and_wal() {
    let (t, db) = db();
    assert_eq!(db.path(), t.path().join("berth.db"));
    let mode: String = db
        .connection()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let fk: i64 = db
        .connection()
        .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
        .unwrap();
    assert_eq!(fk, 1);
    let v: u32 = db
        .connection()
        .query_row(
            "SELECT version FROM schema_version WHERE component = 'image'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(v, IMAGE_MIGRATIONS.len() as u32);
    drop(db);
    // Re-opening migrates nothing and keeps data.
    let db = Db::open(t.path()).unwrap();
    db.put_image(&image("a", &["x"])).unwrap();
    drop(db);
    let db = Db::open(t.path()).unwrap();
    assert_eq!(db.list_images().unwrap().len(), 1);
}

#[test]
fn newer_schema_is_refused() {
    let (t, db) = db();
    db.connection()
        .execute(
            "UPDATE schema_version SET version = 99 WHERE component = 'image'",
            [],
        )
        .unwrap();
    drop(db);
    let e = Db::open(t.path()).unwrap_err();
    assert!(matches!(e, Error::NewerSchema { found: 99, .. }), "{e}");
    assert!(e.to_string().contains("upgrade berth"), "{e}");
}

#[test]
fn other_components_migrate_independently() {
    let (_t, db) = db();
    let m: &[&str] = &[
        "CREATE TABLE containers (id TEXT PRIMARY KEY)",
        "ALTER TABLE containers ADD COLUMN name TEXT",
    ];
    assert_eq!(
        migrate(db.connection(), db.path(), "engine", &m[..1]).unwrap(),
        1
    );
    assert_eq!(migrate(db.connection(), db.path(), "engine", m).unwrap(), 2);
    assert_eq!(migrate(db.connection(), db.path(), "engine", m).unwrap(), 2);
    db.connection()
        .execute("INSERT INTO containers (id, name) VALUES ('c', 'n')", [])
        .unwrap();
}

#[test]
fn record_pull_and_lookups() {
    let (_t, db) = db();
    let rec = image("busybox", &["base", "top"]);
    let r = Reference::parse("busybox").unwrap();
    assert_eq!(db.record_pull(&rec, &r).unwrap(), None);
    assert_eq!(db.image(&rec.id).unwrap().unwrap(), rec);
    assert_eq!(
        db.tags_of(&rec.id).unwrap(),
        ["docker.io/library/busybox:latest"]
    );
    assert_eq!(
        db.repo_digests_of(&rec.id).unwrap(),
        [format!("docker.io/library/busybox@{}", rec.manifest_digest)]
    );
    let hex = rec.id.hex().to_string();
    for q in [
        "busybox".to_string(),
        "busybox:latest".to_string(),
        "docker.io/library/busybox:latest".to_string(),
        format!("busybox@{}", rec.manifest_digest),
        rec.id.to_string(),
        hex.clone(),
        hex[..4].to_string(),
        hex[..12].to_string(),
        format!("sha256:{}", &hex[..6]),
    ] {
        let got = db.image_by_ref(&q).unwrap();
        assert_eq!(got.as_ref().map(|i| &i.id), Some(&rec.id), "{q}");
    }
    for q in [
        "busybox:other",
        &hex[..3],
        "alpine",
        "sha256:zzzz",
        "",
        "UPPER",
    ] {
        assert_eq!(db.image_by_ref(q).unwrap(), None, "{q}");
    }
    assert!(db
        .image_by_ref(&format!("busybox@{}", dig("nope")))
        .unwrap()
        .is_none());
}

#[test]
fn ambiguous_prefix() {
    let (_t, db) = db();
    // Find two images whose ids share a 4-digit prefix.
    let mut by_prefix = std::collections::HashMap::new();
    let mut pair = None;
    for i in 0..100_000 {
        let rec = image(&format!("img{i}"), &[]);
        let p = rec.id.hex()[..4].to_string();
        if let Some(other) = by_prefix.insert(p.clone(), rec.clone()) {
            pair = Some((p, other, rec));
            break;
        }
    }
    let (prefix, a, b) = pair.unwrap();
    db.put_image(&a).unwrap();
    db.put_image(&b).unwrap();
    let e = db.image_by_ref(&prefix).unwrap_err();
    assert!(matches!(e, Error::Ambiguous { .. }), "{e}");
    assert!(e.to_string().contains("ambiguous"));
    assert_eq!(db.image_by_ref(a.id.hex()).unwrap().unwrap().id, a.id);
}

#[test]
fn tags_move_and_untag() {
    let (_t, db) = db();
    let a = image("a", &["x"]);
    let b = image("b", &["y"]);
    db.put_image(&a).unwrap();
    db.put_image(&b).unwrap();
    assert_eq!(db.set_tag("app:1", &a.id).unwrap(), None);
    assert_eq!(db.set_tag("app:1", &a.id).unwrap(), None);
    assert_eq!(
        db.set_tag("docker.io/library/app:1", &b.id).unwrap(),
        Some(a.id.clone())
    );
    assert_eq!(db.image_by_ref("app:1").unwrap().unwrap().id, b.id);
    assert!(db.tags_of(&a.id).unwrap().is_empty());
    let e = db.set_tag(&format!("app@{}", a.id), &a.id).unwrap_err();
    assert!(matches!(e, Error::InvalidTag { .. }), "{e}");
    assert!(db.set_tag("Bad Name", &a.id).is_err());
    // A tag to a missing image violates the foreign key.
    assert!(db.set_tag("ghost", &dig("ghost")).is_err());
    assert_eq!(db.untag("app:1").unwrap(), Some(b.id.clone()));
    assert_eq!(db.untag("app:1").unwrap(), None);
}

#[test]
fn remove_image_reports_unused_layers() {
    let (_t, db) = db();
    let a = image("a", &["base", "a-top"]);
    let b = image("b", &["base", "b-top"]);
    db.record_pull(&a, &Reference::parse("a").unwrap()).unwrap();
    db.record_pull(&b, &Reference::parse("b").unwrap()).unwrap();
    let base = a.layers[0].chain_id.clone();
    assert_eq!(db.layer_users(&base).unwrap().len(), 2);
    assert!(db.blob_in_use(&a.layers[1].blob_digest).unwrap());
    assert!(db.blob_in_use(&a.id).unwrap());
    assert!(db.blob_in_use(&a.manifest_digest).unwrap());

    let unused = db.remove_image(&a.id).unwrap();
    assert_eq!(unused, vec![a.layers[1].chain_id.clone()]);
    assert_eq!(db.layer_users(&base).unwrap(), vec![b.id.clone()]);
    assert!(db.image(&a.id).unwrap().is_none());
    assert!(
        db.image_by_ref("a").unwrap().is_none(),
        "tags go with the image"
    );
    assert!(!db.blob_in_use(&a.layers[1].blob_digest).unwrap());
    assert!(db.blob_in_use(&a.layers[0].blob_digest).unwrap());
    let e = db.remove_image(&a.id).unwrap_err();
    assert!(matches!(e, Error::NoSuchImage(_)));
    assert_eq!(e.to_string(), format!("no such image: {}", a.id));

    let mut unused = db.remove_image(&b.id).unwrap();
    unused.sort();
    let mut want = vec![base, b.layers[1].chain_id.clone()];
    want.sort();
    assert_eq!(unused, want);
    assert!(db.list_images().unwrap().is_empty());
    let n: i64 = db
        .connection()
        .query_row("SELECT count(*) FROM image_layers", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 0);
}

#[test]
fn list_images_with_names() {
    let (_t, db) = db();
    let mut old = image("old", &["x"]);
    old.created = "2020-01-01T00:00:00Z".into();
    let new = image("new", &["y"]);
    db.record_pull(&old, &Reference::parse("old:1").unwrap())
        .unwrap();
    db.record_pull(&new, &Reference::parse("localhost:5000/new").unwrap())
        .unwrap();
    db.set_tag("old:2", &old.id).unwrap();
    let list = db.list_images().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].image.id, new.id, "newest first");
    assert_eq!(list[0].tags, ["localhost:5000/new:latest"]);
    assert_eq!(
        list[1].tags,
        ["docker.io/library/old:1", "docker.io/library/old:2"]
    );
    assert!(list[1].added.ends_with('Z'), "{}", list[1].added);
    assert_eq!(list[1].image.layers, old.layers);
}

#[test]
fn pull_by_digest_records_that_digest() {
    let (_t, db) = db();
    let rec = image("x", &["l"]);
    let index_digest = dig("index");
    let r = Reference::parse(&format!("x@{index_digest}")).unwrap();
    db.record_pull(&rec, &r).unwrap();
    assert!(db.tags_of(&rec.id).unwrap().is_empty());
    assert_eq!(
        db.repo_digests_of(&rec.id).unwrap(),
        [format!("docker.io/library/x@{index_digest}")]
    );
}

#[test]
fn concurrent_writers_on_two_connections() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().to_path_buf();
    let handles: Vec<_> = (0..2)
        .map(|w| {
            let root = root.clone();
            thread::spawn(move || {
                let db = Db::open(&root).unwrap();
                for i in 0..60 {
                    let rec = image(&format!("w{w}-{i}"), &["shared", &format!("w{w}-{i}")]);
                    db.record_pull(&rec, &Reference::parse(&format!("app{w}:{i}")).unwrap())
                        .unwrap();
                    // Both fight over one tag too.
                    db.set_tag("contested", &rec.id).unwrap();
                    assert!(db.image_by_ref(&format!("app{w}:{i}")).unwrap().is_some());
                    if i % 3 == 0 {
                        db.remove_image(&rec.id).unwrap();
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let db = Db::open(&root).unwrap();
    let list = db.list_images().unwrap();
    assert_eq!(list.len(), 2 * 40);
    let shared = chain_ids(&[dig("diff shared")])[0].clone();
    assert_eq!(db.layer_users(&shared).unwrap().len(), 80);
}

#[test]
fn concurrent_first_open() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().to_path_buf();
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let root = root.clone();
            thread::spawn(move || {
                let db = Db::open(&root).unwrap();
                db.put_image(&image(&format!("first{i}"), &[])).unwrap();
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(Db::open(&root).unwrap().list_images().unwrap().len(), 4);
}
