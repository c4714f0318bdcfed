//! `berth save`, `berth load` and `berth import` against real peers:
//! archives berth writes are read by podman and skopeo; archives podman
//! writes are loaded by berth; hostile archives change nothing.
//!
//! Needs root, skopeo, umoci, podman and Debian's docker-registry.

use berth_integration::engine::{berth_bin, Opts, Store};
use berth_integration::images::{self, OciLayout};
use berth_integration::podman::Podman;
use berth_integration::registry::Registry;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

fn show(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// This file's stores set neither `DOCKER_CONFIG` nor `BERTH_CONFIG`.
fn new_store() -> Store {
    Store::with(Opts {
        docker_config: false,
        berth_config: false,
        ..Opts::default()
    })
}

trait StoreExt {
    fn assert_empty(&self);
}

impl StoreExt for Store {
    /// Nothing stored: no image, no layer (or staging) dir, no blob, no temp.
    fn assert_empty(&self) {
        assert_eq!(self.ok(&["images", "-q"]).trim(), "", "an image was stored");
        for sub in ["layers", "blobs/sha256", "tmp"] {
            assert!(
                self.entries(sub).is_empty(),
                "{sub} is not empty: {:?}",
                self.entries(sub)
            );
        }
    }
}

fn whiteouts() -> &'static OciLayout {
    static L: OnceLock<OciLayout> = OnceLock::new();
    L.get_or_init(|| {
        let l = images::multilayer_with_whiteouts();
        l.remove_at_exit();
        l
    })
}

fn skopeo_json(args: &[&str]) -> Value {
    let o = images::skopeo(args);
    assert!(o.status.success(), "skopeo {args:?} failed: {}", show(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// Every entry under `dir`: relative path -> (kind, mode, uid, gid, rdev,
/// size, content hash).
fn tree(dir: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let ft = m.file_type();
            let content = if ft.is_file() {
                images::sha256_hex(&std::fs::read(&p).unwrap())
            } else if ft.is_symlink() {
                std::fs::read_link(&p).unwrap().display().to_string()
            } else {
                String::new()
            };
            let kind = if ft.is_dir() {
                "d"
            } else if ft.is_file() {
                "f"
            } else if ft.is_symlink() {
                "l"
            } else if ft.is_char_device() {
                "c"
            } else {
                "o"
            };
            out.insert(
                rel,
                format!(
                    "{kind} {:o} {}:{} {} {} {content}",
                    m.mode(),
                    m.uid(),
                    m.gid(),
                    m.rdev(),
                    if ft.is_dir() { 0 } else { m.len() }
                ),
            );
            if ft.is_dir() {
                walk(root, &p, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn save_is_read_by_skopeo_and_podman_and_round_trips() {
    let reg = Registry::start();
    images::push(whiteouts(), "latest", &reg, "wh:1");
    let s = new_store();
    let r = reg.image_ref("wh:1");
    s.ok(&["pull", "-q", &r]);
    let insp = s.inspect(&r);
    let id = insp["Id"].as_str().unwrap().to_string();
    let manifest_digest = insp["Descriptor"]["digest"].as_str().unwrap().to_string();
    let diff_ids = s.diff_ids(&r);
    assert_eq!(diff_ids.len(), 3);

    let out = tempfile::tempdir().unwrap();
    let docker = out.path().join("docker.tar");
    let oci = out.path().join("oci.tar");
    s.ok(&["save", "-o", path_str(&docker), &r]);
    s.ok(&[
        "image",
        "save",
        "--format",
        "oci-archive",
        "-o",
        path_str(&oci),
        &r,
    ]);
    // No temp files beside the archives.
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 2);

    // skopeo: docker-archive layers are the uncompressed tars (diff ids),
    // the config is byte-identical (its digest is the image id).
    let d = skopeo_json(&["inspect", &format!("docker-archive:{}", docker.display())]);
    assert_eq!(d["Layers"], serde_json::json!(diff_ids));
    let raw = skopeo_json(&[
        "inspect",
        "--raw",
        &format!("docker-archive:{}", docker.display()),
    ]);
    assert_eq!(raw["config"]["digest"], id.as_str());
    // oci-archive: the manifest and blobs as pulled.
    let o = images::skopeo(&[
        "inspect",
        "--raw",
        &format!("oci-archive:{}", oci.display()),
    ]);
    assert!(o.status.success(), "{}", show(&o));
    assert_eq!(
        format!("sha256:{}", images::sha256_hex(&o.stdout)),
        manifest_digest
    );
    let layout_layers: Vec<Value> = whiteouts()
        .layers("latest")
        .iter()
        .map(|l| l["digest"].clone())
        .collect();
    let oi = skopeo_json(&["inspect", &format!("oci-archive:{}", oci.display())]);
    assert_eq!(oi["Layers"], Value::Array(layout_layers));

    // podman loads both, as the same image.
    let pm = Podman::new(&reg.addr);
    let loaded = pm.ok(&["load", "-i", path_str(&docker)]);
    assert!(loaded.contains(&r), "{loaded}");
    let pi = pm.inspect(&r);
    assert_eq!(format!("sha256:{}", pi["Id"].as_str().unwrap()), id);
    assert_eq!(pi["RootFS"]["Layers"], serde_json::json!(diff_ids));
    pm.ok(&["rmi", "-a", "-f"]);
    let loaded = pm.ok(&["load", "-i", path_str(&oci)]);
    assert!(loaded.contains(&r), "{loaded}");
    let pi = pm.inspect(&r);
    assert_eq!(format!("sha256:{}", pi["Id"].as_str().unwrap()), id);

    // berth save -> berth load into fresh stores: same image, same layer dirs.
    for archive in [&docker, &oci] {
        let s2 = new_store();
        let out = s2.ok(&["load", "-i", path_str(archive)]);
        assert_eq!(
            out.trim(),
            format!("Loaded image: {r}"),
            "{}",
            archive.display()
        );
        let i2 = s2.inspect(&r);
        assert_eq!(i2["Id"], id.as_str());
        assert_eq!(i2["Config"], insp["Config"]);
        let (a, b) = (s.layer_dirs(&r), s2.layer_dirs(&r));
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(tree(x), tree(y), "{} vs {}", x.display(), y.display());
        }
        // Whiteouts survived as overlay whiteouts.
        let wh = std::fs::symlink_metadata(b[2].join("data/a")).unwrap();
        assert!(wh.file_type().is_char_device());
        assert!(s2.entries("tmp").is_empty());
    }

    // From stdin, and save to stdout.
    let s3 = new_store();
    let mut c = s3.cmd(&["load", "-q"]);
    c.stdin(std::fs::File::open(&docker).unwrap());
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", show(&o));
    assert!(o.stdout.is_empty(), "-q prints nothing");
    // A gzip-compressed archive loads too (as with docker load).
    let gz = out.path().join("docker.tar.gz");
    let st = Command::new("sh")
        .arg("-c")
        .arg(format!("gzip -c {} > {}", docker.display(), gz.display()))
        .status()
        .unwrap();
    assert!(st.success());
    let s4 = new_store();
    s4.ok(&["load", "-i", path_str(&gz)]);
    assert_eq!(s4.inspect(&r)["Id"], id.as_str());
    let o = s3.cmd(&["save", &r]).stdin(Stdio::null()).output().unwrap();
    assert!(o.status.success(), "{}", show(&o));
    assert_eq!(
        o.stdout,
        std::fs::read(&docker).unwrap(),
        "save is deterministic"
    );
}

#[test]
fn podman_save_is_loaded_by_berth() {
    let reg = Registry::start();
    images::push(whiteouts(), "latest", &reg, "pm:2");
    let r = reg.image_ref("pm:2");
    let pm = Podman::new(&reg.addr);
    pm.ok(&["pull", "-q", &r]);
    let pi = pm.inspect(&r);
    let id = format!("sha256:{}", pi["Id"].as_str().unwrap());
    let out = tempfile::tempdir().unwrap();
    for format in ["docker-archive", "oci-archive"] {
        let f = out.path().join(format!("{format}.tar"));
        pm.ok(&["save", "--format", format, "-o", path_str(&f), &r]);
        let s = new_store();
        let o = s.ok(&["load", "-i", path_str(&f)]);
        assert!(o.contains(&format!("Loaded image: {r}")), "{format}: {o}");
        let bi = s.inspect(&r);
        assert_eq!(bi["Id"], id.as_str(), "{format}");
        assert_eq!(bi["RootFS"]["Layers"], pi["RootFS"]["Layers"], "{format}");
        assert_eq!(bi["Config"]["Cmd"], pi["Config"]["Cmd"], "{format}");
        let dirs = s.layer_dirs(&r);
        assert!(dirs[0].join("bin/busybox").is_file());
        assert!(dirs[2].join("opt/keep/y").is_file());
        // And berth saves it again for skopeo.
        let again = out.path().join(format!("{format}-again.tar"));
        s.ok(&["save", "-o", path_str(&again), &r]);
        let d = skopeo_json(&["inspect", &format!("docker-archive:{}", again.display())]);
        assert_eq!(d["Layers"], pi["RootFS"]["Layers"]);
    }
}

#[test]
fn import_rootfs_tarball() {
    let rootfs = tempfile::tempdir().unwrap();
    berth_integration::make_busybox_rootfs(rootfs.path());
    let work = tempfile::tempdir().unwrap();
    let tar = work.path().join("rootfs.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(rootfs.path())
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    let s = new_store();
    let out = s.ok(&[
        "import",
        "--change",
        r#"CMD ["echo","hi"]"#,
        "-c",
        "ENV A=1",
        path_str(&tar),
        "imported/bb:1",
    ]);
    let id = out.trim();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{out}");
    let insp = s.inspect("imported/bb:1");
    assert_eq!(insp["Id"], id);
    assert_eq!(insp["Config"]["Cmd"], serde_json::json!(["echo", "hi"]));
    assert_eq!(insp["Config"]["Env"], serde_json::json!(["A=1"]));
    assert_eq!(insp["Os"], "linux");
    assert_eq!(insp["Architecture"], images::host_arch());
    let layers = s.diff_ids("imported/bb:1");
    assert_eq!(layers.len(), 1);
    // The diff id is the sha256 of the tar as given.
    assert_eq!(
        layers[0],
        format!(
            "sha256:{}",
            images::sha256_hex(&std::fs::read(&tar).unwrap())
        )
    );
    let dir = &s.layer_dirs("imported/bb:1")[0];
    assert!(dir.join("bin/busybox").is_file());
    // The layer blob is a gzip of the tar, and skopeo reads the image saved.
    let saved = work.path().join("bb.tar");
    s.ok(&[
        "save",
        "--format",
        "oci-archive",
        "-o",
        path_str(&saved),
        "imported/bb:1",
    ]);
    let raw = skopeo_json(&[
        "inspect",
        "--raw",
        &format!("oci-archive:{}", saved.display()),
    ]);
    assert_eq!(
        raw["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );

    // gzip from stdin, no name: only the id is printed.
    let gz = work.path().join("rootfs.tar.gz");
    let st = Command::new("sh")
        .arg("-c")
        .arg(format!("gzip -c {} > {}", tar.display(), gz.display()))
        .status()
        .unwrap();
    assert!(st.success());
    let s2 = new_store();
    let o = s2
        .cmd(&["import", "-m", "from a pipe", "-"])
        .stdin(std::fs::File::open(&gz).unwrap())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", show(&o));
    let id2 = String::from_utf8(o.stdout).unwrap().trim().to_string();
    let i2 = s2.inspect(&id2);
    assert_eq!(i2["Comment"], "from a pipe");
    assert_eq!(s2.diff_ids(&id2), layers);

    // A bad --change stores nothing.
    let s3 = new_store();
    let o = s3.berth(&["import", "-c", "RUN rm -rf /", path_str(&tar)]);
    assert!(!o.status.success());
    assert!(show(&o).contains("invalid --change"), "{}", show(&o));
    s3.assert_empty();
}

// ---------------------------------------------------------------------------
// hostile archives, written byte by byte

fn tar_entry(out: &mut Vec<u8>, name: &str, typ: u8, data: &[u8], link: &str) {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    let mode = if typ == b'5' {
        "0000755\0"
    } else {
        "0000644\0"
    };
    h[100..108].copy_from_slice(mode.as_bytes());
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..136].copy_from_slice(format!("{:011o}\0", data.len()).as_bytes());
    h[136..148].copy_from_slice(b"00000000000\0");
    h[148..156].copy_from_slice(b"        ");
    h[156] = typ;
    h[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    let sum: u32 = h.iter().map(|&b| b as u32).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data) in entries {
        tar_entry(&mut out, name, b'0', data, "");
    }
    out.resize(out.len() + 1024, 0);
    out
}

fn config_for(diff_id: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "architecture": images::host_arch(),
        "os": "linux",
        "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }))
    .unwrap()
}

/// A docker-archive with one layer, `manifest` rewritten by `edit`.
fn docker_archive(layer: &[u8], diff_id: &str, edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let config = config_for(diff_id);
    let config_name = format!("{}.json", images::sha256_hex(&config));
    let mut manifest = serde_json::json!([{
        "Config": config_name,
        "RepoTags": ["evil/img:1"],
        "Layers": ["abc/layer.tar"],
    }]);
    edit(&mut manifest);
    tar_of(&[
        ("abc/layer.tar", layer),
        (&config_name, &config),
        ("manifest.json", &serde_json::to_vec(&manifest).unwrap()),
    ])
}

fn load_fails(archive: &[u8], expect: &str) {
    let s = new_store();
    let mut child = s
        .cmd(&["load"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // The loader may stop reading early: a broken pipe is fine.
    let _ = stdin.write_all(archive);
    drop(stdin);
    let o = child.wait_with_output().unwrap();
    assert!(!o.status.success(), "load succeeded: {}", show(&o));
    let msg = show(&o);
    assert!(msg.contains(expect), "expected {expect:?} in: {msg}");
    s.assert_empty();
}

#[test]
fn hostile_archives_change_nothing() {
    let layer = tar_of(&[("hello", b"hi\n")]);
    let diff_id = format!("sha256:{}", images::sha256_hex(&layer));
    // The good archive loads (so the failures below are the hostile part).
    let s = new_store();
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), docker_archive(&layer, &diff_id, |_| {})).unwrap();
    let out = s.ok(&["load", "-i", path_str(f.path())]);
    assert_eq!(out.trim(), "Loaded image: evil/img:1");
    assert!(s.layer_dirs("evil/img:1")[0].join("hello").is_file());

    // Path traversal in the outer tar.
    let escape = Path::new("/tmp/berth-archive-escape-test");
    let _ = std::fs::remove_file(escape);
    let mut a = tar_of(&[("../../../../../../tmp/berth-archive-escape-test", b"x")]);
    load_fails(&a, "'..' is not allowed");
    assert!(!escape.exists());
    a = tar_of(&[("/tmp/berth-archive-escape-test", b"x")]);
    load_fails(&a, "absolute names are not allowed");
    assert!(!escape.exists());
    // A symlink entry, then a file written through it.
    let mut t = Vec::new();
    tar_entry(&mut t, "link", b'2', b"", "/tmp");
    tar_entry(&mut t, "link/berth-archive-escape-test", b'0', b"x", "");
    t.resize(t.len() + 1024, 0);
    load_fails(&t, "is not a directory");
    assert!(!escape.exists());

    // manifest.json pointing outside the archive.
    load_fails(
        &docker_archive(&layer, &diff_id, |m| {
            m[0]["Config"] = "../../etc/passwd".into()
        }),
        "the path leaves the archive",
    );
    load_fails(
        &docker_archive(&layer, &diff_id, |m| {
            m[0]["Layers"] = serde_json::json!(["/etc/passwd"])
        }),
        "the path leaves the archive",
    );
    // A symlink in the archive pointing out of it.
    let config = config_for(&diff_id);
    let config_name = format!("{}.json", images::sha256_hex(&config));
    let manifest = serde_json::json!([{"Config": config_name, "Layers": ["l/layer.tar"]}]);
    let mut t = Vec::new();
    tar_entry(&mut t, "l/layer.tar", b'2', b"", "../../../etc/passwd");
    tar_entry(&mut t, &config_name, b'0', &config, "");
    let m = serde_json::to_vec(&manifest).unwrap();
    tar_entry(&mut t, "manifest.json", b'0', &m, "");
    t.resize(t.len() + 1024, 0);
    load_fails(&t, "the path leaves the archive");

    // Layer content that does not hash to the diff id.
    let other = tar_of(&[("hello", b"evil\n")]);
    load_fails(
        &docker_archive(&other, &diff_id, |_| {}),
        "but the image config says",
    );
    // A config whose name claims another digest.
    let fake_name = format!("{}.json", "0".repeat(64));
    let m = serde_json::json!([{"Config": fake_name, "Layers": ["abc/layer.tar"]}]);
    let a = tar_of(&[
        ("abc/layer.tar", &layer),
        (&fake_name, &config_for(&diff_id)),
        ("manifest.json", &serde_json::to_vec(&m).unwrap()),
    ]);
    load_fails(&a, "the content hashes to");
    // An oversized manifest.json.
    let big = vec![b' '; 5 << 20];
    load_fails(&tar_of(&[("manifest.json", &big)]), "limit");

    // OCI layout: a blob that does not hash to its name.
    let config = config_for(&diff_id);
    let cd = images::sha256_hex(&config);
    let fake = "1".repeat(64);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": format!("sha256:{cd}"), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": format!("sha256:{fake}"), "size": layer.len()}],
    }))
    .unwrap();
    let md = images::sha256_hex(&manifest);
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": format!("sha256:{md}"), "size": manifest.len(),
                       "annotations": {"org.opencontainers.image.ref.name": "evil/oci:1"}}],
    }))
    .unwrap();
    let a = tar_of(&[
        ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#),
        ("index.json", &index),
        (&format!("blobs/sha256/{md}"), &manifest),
        (&format!("blobs/sha256/{cd}"), &config),
        (&format!("blobs/sha256/{fake}"), &layer),
    ]);
    load_fails(&a, "the content hashes to");
    // Not an archive at all.
    load_fails(b"this is not a tar", "nothing was loaded");
}

#[test]
fn save_refuses_a_terminal_and_missing_images() {
    let s = new_store();
    let o = s.berth(&["save", "nosuch:1"]);
    assert!(!o.status.success());
    assert!(show(&o).contains("no such image: nosuch:1"), "{}", show(&o));
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("x.tar");
    let o = s.berth(&["save", "-o", path_str(&f), "nosuch:1"]);
    assert!(!o.status.success());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no half archive"
    );
    // stdout a terminal (util-linux `script` gives it a pty).
    if berth_integration::find_in_path("script").is_some() {
        let cmd = format!(
            "{} --root {} save busybox",
            berth_bin().display(),
            s.root.path().display()
        );
        let o = Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(!o.status.success());
        assert!(
            show(&o).contains("cowardly refusing to save to a terminal"),
            "{}",
            show(&o)
        );
    }
}
