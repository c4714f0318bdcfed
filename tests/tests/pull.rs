//! `berth pull` against a real registry (Debian's docker-registry on
//! loopback) with images made by umoci/skopeo, not by berth.

use berth_integration::engine::{busybox, Store};
use berth_integration::images;
use berth_integration::registry::Registry;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::Command;

#[test]
fn pull_busybox_oci_then_up_to_date() {
    let reg = Registry::start();
    let digest = images::push(busybox(), "latest", &reg, "tools/busybox:1");
    let s = Store::new();
    let r = reg.image_ref("tools/busybox:1");
    let out = s.ok(&["pull", &r]);
    assert!(out.contains(&format!("Digest: {digest}")), "{out}");
    assert!(out.contains("Downloaded newer image"), "{out}");
    assert!(
        out.trim_end().ends_with(&r),
        "last line is the reference: {out}"
    );
    let imgs = s.images();
    assert_eq!(imgs.len(), 1);
    assert_eq!(imgs[0]["Repository"], format!("{}/tools/busybox", reg.addr));
    assert_eq!(imgs[0]["Tag"], "1");
    let insp = s.inspect(&r);
    assert_eq!(insp["Config"]["Cmd"], serde_json::json!(["sh"]));
    assert_eq!(
        insp["RepoDigests"][0],
        format!("{}/tools/busybox@{digest}", reg.addr)
    );
    // The layer is unpacked with the busybox binary and its applet hard links.
    let dirs = s.layer_dirs(&r);
    assert_eq!(dirs.len(), 1);
    let bb = std::fs::metadata(dirs[0].join("bin/busybox")).unwrap();
    assert!(
        bb.len() > 100_000 && bb.nlink() > 10,
        "busybox nlink {}",
        bb.nlink()
    );
    // Every blob in the store hashes to its name.
    for e in std::fs::read_dir(s.root.path().join("blobs/sha256")).unwrap() {
        let e = e.unwrap();
        let data = std::fs::read(e.path()).unwrap();
        assert_eq!(images::sha256_hex(&data), e.file_name().to_string_lossy());
    }
    // Second pull: nothing downloaded.
    let t0 = std::time::Instant::now();
    let out = s.ok(&["pull", &r]);
    assert!(out.contains("Image is up to date"), "{out}");
    assert!(t0.elapsed() < std::time::Duration::from_secs(2));
    // rmi frees layers and blobs.
    let out = s.ok(&["rmi", &r]);
    assert!(
        out.contains("Untagged:") && out.contains("Deleted:"),
        "{out}"
    );
    assert!(s.images().is_empty());
    assert!(!dirs[0].exists(), "layer dir not freed");
    assert_eq!(
        std::fs::read_dir(s.root.path().join("blobs/sha256"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn pull_whiteouts_become_overlay_whiteouts() {
    let reg = Registry::start();
    let layout = images::multilayer_with_whiteouts();
    images::push(&layout, "latest", &reg, "wh:latest");
    let s = Store::new();
    let r = reg.image_ref("wh:latest");
    s.ok(&["pull", "-q", &r]);
    let dirs = s.layer_dirs(&r);
    assert_eq!(dirs.len(), 3);
    let top = &dirs[2];
    let wh = std::fs::symlink_metadata(top.join("data/a")).unwrap();
    assert!(wh.file_type().is_char_device(), "data/a is not a whiteout");
    assert_eq!(wh.rdev(), 0);
    assert!(!top.join("data/.wh.a").exists());
    let opq = top.join("opt/keep");
    let out = Command::new("getfattr")
        .args(["--only-values", "-n", "trusted.overlay.opaque"])
        .arg(&opq)
        .output();
    match out {
        Ok(o) if o.status.success() => assert_eq!(String::from_utf8_lossy(&o.stdout), "y"),
        _ => {
            // getfattr (attr package) may be missing: read with nix.
            let v = xattr(&opq, "trusted.overlay.opaque");
            assert_eq!(v.as_deref(), Some(&b"y"[..]));
        }
    }
    assert!(top.join("opt/keep/y").exists());
    assert!(!top.join("opt/keep/.wh..wh..opq").exists());
    // Lower layer still has the original files.
    assert!(dirs[1].join("data/a").is_file() && dirs[1].join("opt/keep/x").is_file());
}

fn xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    let mut buf = vec![0u8; 256];
    // SAFETY: lgetxattr writes at most buf.len() bytes into buf.
    let r = unsafe { libc::lgetxattr(c.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (r >= 0).then(|| {
        buf.truncate(r as usize);
        buf
    })
}

#[test]
fn pull_zstd_docker_v2s2_and_by_digest() {
    let reg = Registry::start();
    images::push_zstd(busybox(), "latest", &reg, "z:1");
    let d2 = images::push_v2s2(busybox(), "latest", &reg, "v2:1");
    let s = Store::new();
    s.ok(&["pull", "-q", &reg.image_ref("z:1")]);
    let insp = s.inspect(&reg.image_ref("z:1"));
    assert_eq!(
        insp["Descriptor"]["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    let by_digest = format!("{}/v2@{d2}", reg.addr);
    s.ok(&["pull", "-q", &by_digest]);
    let insp = s.inspect(&by_digest);
    assert_eq!(
        insp["Descriptor"]["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    // Same rootfs content from a zstd and a gzip layer: same diff id, one layer dir.
    assert_eq!(
        s.layer_dirs(&reg.image_ref("z:1")),
        s.layer_dirs(&by_digest)
    );
}

#[test]
fn pull_selects_platform_from_an_index() {
    let reg = Registry::start();
    let layout = images::multiplatform_layout();
    images::push_index(&layout, "index", &reg, "multi:1", images::Format::Oci);
    let s = Store::new();
    let r = reg.image_ref("multi:1");
    s.ok(&["pull", "-q", "--platform", "linux/arm64", &r]);
    assert_eq!(s.inspect(&r)["Architecture"], "arm64");
    let s2 = Store::new();
    s2.ok(&["pull", "-q", "--platform", "linux/amd64", &r]);
    assert_eq!(s2.inspect(&r)["Architecture"], "amd64");
    let out = s2.berth(&["pull", "--platform", "linux/s390x", &r]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("s390x"));
}

#[test]
fn pull_with_token_auth_like_docker_hub() {
    let reg = Registry::start_token("alice", "s3cret");
    images::push(busybox(), "latest", &reg, "private/bb:1");
    let s = Store::new();
    let r = reg.image_ref("private/bb:1");
    // Anonymous: a clear error, nothing stored.
    let o = s.berth(&["pull", &r]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!(
            "authentication required: run berth login {}",
            reg.addr
        )),
        "{err}"
    );
    assert!(s.images().is_empty());
    // With Docker's config.json credentials.
    std::fs::write(
        s.docker_config.path().join("config.json"),
        serde_json::json!({"auths": {reg.addr.clone(): {"auth": berth_integration::registry::b64(b"alice:s3cret")}}})
            .to_string(),
    )
    .unwrap();
    s.ok(&["pull", "-q", &r]);
    assert_eq!(s.images().len(), 1);
    assert!(reg
        .token_requests()
        .iter()
        .any(|t| t.user.as_deref() == Some("alice")));
}

#[test]
fn bad_references_and_missing_images() {
    let reg = Registry::start();
    let s = Store::new();
    let o = s.berth(&["pull", "Upper/Case"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("must be lowercase"));
    let o = s.berth(&["pull", &reg.image_ref("nope:1")]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("nope"), "{err}");
    assert!(s.images().is_empty());
}

#[test]
fn corrupt_blob_in_registry_is_rejected_and_nothing_stored() {
    let reg = Registry::start();
    images::push(busybox(), "latest", &reg, "bad:1");
    // Corrupt the layer blob in the registry's storage.
    let layer = busybox().layers("latest")[0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let hex = &layer[7..];
    let data = reg.storage_dir().join(format!(
        "docker/registry/v2/blobs/sha256/{}/{hex}/data",
        &hex[..2]
    ));
    let mut bytes = std::fs::read(&data).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0xff;
    std::fs::write(&data, &bytes).unwrap();
    let s = Store::new();
    let o = s.berth(&["pull", &reg.image_ref("bad:1")]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(hex) || err.contains("digest"), "{err}");
    assert!(s.images().is_empty());
    assert!(!s.root.path().join("blobs/sha256").join(hex).exists());
    let layers: Vec<_> = std::fs::read_dir(s.root.path().join("layers"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with("tmp-"))
        .collect();
    assert!(layers.is_empty(), "{layers:?}");
}

#[test]
fn docker_hub_names_go_through_a_configured_mirror() {
    // No internet: a docker.io image can only come from the mirror.
    let reg = Registry::start();
    images::push(busybox(), "latest", &reg, "library/busybox:latest");
    let s = Store::new();
    std::fs::write(
        s.docker_config.path().join("berth.json"),
        serde_json::json!({"registry-mirrors": [format!("http://{}", reg.addr)]}).to_string(),
    )
    .unwrap();
    let out = s.ok(&["pull", "busybox"]);
    assert!(
        out.trim_end().ends_with("docker.io/library/busybox:latest"),
        "{out}"
    );
    let imgs = s.images();
    assert_eq!(imgs[0]["Repository"], "busybox");
    assert_eq!(imgs[0]["Tag"], "latest");
    assert_eq!(s.inspect("busybox")["RepoTags"][0], "busybox:latest");
    // A bad settings file is a clear error naming it.
    std::fs::write(
        s.docker_config.path().join("berth.json"),
        "{\"registry-mirror\": 1}",
    )
    .unwrap();
    let o = s.berth(&["pull", "busybox"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("berth.json"));
}

/// Age a file's mtime by `secs` (as if written that long ago).
fn age(p: &Path, secs: u64) {
    let t = std::time::SystemTime::now() - std::time::Duration::from_secs(secs);
    let f = std::fs::File::options().write(true).open(p).unwrap();
    f.set_modified(t).unwrap();
}

#[test]
fn image_prune_collects_old_orphan_blobs_only() {
    let reg = Registry::start();
    let layout = images::multiplatform_layout();
    let index = images::push_index(&layout, "index", &reg, "multi:1", images::Format::Oci);
    let s = Store::new();
    let r = reg.image_ref("multi:1");
    s.ok(&["pull", "-q", "--platform", "linux/amd64", &r]);
    let blobs = s.root.path().join("blobs/sha256");
    // Two orphans, as a killed pull leaves them: one old, one fresh.
    let old = b"an old orphan blob".to_vec();
    let fresh = b"a fresh orphan blob".to_vec();
    let old_p = blobs.join(images::sha256_hex(&old));
    let fresh_p = blobs.join(images::sha256_hex(&fresh));
    std::fs::write(&old_p, &old).unwrap();
    std::fs::write(&fresh_p, &fresh).unwrap();
    // Everything of the image (the index included) is old too.
    for e in std::fs::read_dir(&blobs).unwrap() {
        let p = e.unwrap().path();
        if p != fresh_p {
            age(&p, 7200);
        }
    }
    let before: Vec<_> = std::fs::read_dir(&blobs).unwrap().collect();
    s.ok(&["image", "prune", "-f"]);
    assert!(!old_p.exists(), "old orphan kept");
    assert!(
        fresh_p.exists(),
        "fresh orphan (a pull in progress?) removed"
    );
    assert!(
        blobs.join(&index[7..]).exists(),
        "the index blob behind the repo digest was removed"
    );
    assert_eq!(std::fs::read_dir(&blobs).unwrap().count(), before.len() - 1);
    assert_eq!(s.images().len(), 1);
}
