//! `berth push` to a real registry (Debian's docker-registry on loopback),
//! checked by reading back with skopeo and with `berth pull` into another
//! store, and by the registry's own access log (what was uploaded).

use berth_integration::engine::{busybox, text, Store};
use berth_integration::images;
use berth_integration::registry::Registry;
use serde_json::Value;
use std::io::Write;
use std::path::PathBuf;
use std::process::Stdio;

/// A tar of the busybox rootfs, made once.
fn busybox_tar() -> PathBuf {
    berth_integration::containers::rootfs_tar().to_path_buf()
}

/// `berth import` of the busybox rootfs as `name`; returns the image id.
fn import_busybox(s: &Store, name: &str) -> String {
    let tar = busybox_tar().display().to_string();
    s.ok(&["import", "--change", r#"CMD ["sh"]"#, &tar, name])
        .trim()
        .to_string()
}

/// The `<tag>: digest: sha256:… size: N` line: (digest, size).
fn pushed_digest(out: &str) -> (String, u64) {
    let last = out.lines().last().unwrap_or_default();
    let rest = last
        .split_once(": digest: ")
        .unwrap_or_else(|| panic!("no digest line: {out}"))
        .1;
    let (d, size) = rest.split_once(" size: ").unwrap();
    (d.to_string(), size.parse().unwrap())
}

/// The stored manifest of image `r` in `s` (bytes, parsed).
fn stored_manifest(s: &Store, r: &str) -> (Vec<u8>, Value) {
    let d = s.inspect(r)["Descriptor"]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let bytes = std::fs::read(s.root.path().join("blobs/sha256").join(&d[7..])).unwrap();
    let v = serde_json::from_slice(&bytes).unwrap();
    (bytes, v)
}

/// Upload requests (POST/PUT of blobs) in the registry's access log.
fn uploads(reg: &Registry) -> usize {
    reg.log()
        .lines()
        .filter(|l| l.contains("\"POST /v2/") || l.contains("\"PUT /v2/") && l.contains("/blobs/"))
        .count()
}

fn short(digest: &str) -> &str {
    &digest[7..19]
}

#[test]
fn push_imported_image_then_pull_it_into_another_store() {
    let reg = Registry::start();
    let s = Store::new();
    let r = reg.image_ref("bb/busybox:1");
    let id = import_busybox(&s, &r);
    let out = s.ok(&["push", &r]);
    let (manifest, m) = stored_manifest(&s, &r);
    let layer = m["layers"][0]["digest"].as_str().unwrap().to_string();
    assert!(
        out.starts_with(&format!(
            "The push refers to repository [{}/bb/busybox]",
            reg.addr
        )),
        "{out}"
    );
    assert!(out.contains(&format!("{}: Pushed", short(&layer))), "{out}");
    let (digest, size) = pushed_digest(&out);
    assert!(
        out.lines().last().unwrap().starts_with("1: digest: "),
        "{out}"
    );
    assert_eq!(digest, format!("sha256:{}", images::sha256_hex(&manifest)));
    assert_eq!(size, manifest.len() as u64);
    // The repo digest is recorded.
    assert_eq!(
        s.inspect(&r)["RepoDigests"],
        serde_json::json!([format!("{}/bb/busybox@{digest}", reg.addr)])
    );
    // skopeo reads the same manifest, digest and layers.
    let raw = images::inspect_raw(&reg, "bb/busybox:1");
    assert_eq!(raw, m);
    let insp = images::inspect(&reg, "bb/busybox:1", None);
    assert_eq!(insp["Digest"], digest);
    assert_eq!(insp["Layers"], serde_json::json!([layer]));
    assert_eq!(insp["Architecture"], images::host_arch());
    // Another store pulls it: same image id, same config.
    let s2 = Store::new();
    let out = s2.ok(&["pull", &r]);
    assert!(out.contains(&format!("Digest: {digest}")), "{out}");
    let i2 = s2.inspect(&r);
    assert_eq!(i2["Id"], id);
    assert_eq!(i2["Config"]["Cmd"], serde_json::json!(["sh"]));
    assert_eq!(s2.diff_ids(&r), s.diff_ids(&r));
    assert!(s2.layer_dirs(&r)[0].join("bin/busybox").is_file());
}

#[test]
fn second_push_uploads_nothing() {
    let reg = Registry::start();
    let s = Store::new();
    let r = reg.image_ref("again:latest");
    import_busybox(&s, &r);
    let first = s.ok(&["push", &r]);
    let before = uploads(&reg);
    assert!(before >= 2, "{}", reg.log());
    let out = s.ok(&["push", &r]);
    let (_, m) = stored_manifest(&s, &r);
    let layer = m["layers"][0]["digest"].as_str().unwrap();
    assert!(
        out.contains(&format!("{}: Layer already exists", short(layer))),
        "{out}"
    );
    assert!(!out.contains("Pushed"), "{out}");
    assert_eq!(pushed_digest(&out), pushed_digest(&first));
    assert_eq!(
        uploads(&reg),
        before,
        "the second push uploaded blobs: {}",
        reg.log()
    );
    // Quiet: only the reference.
    let out = s.ok(&["push", "-q", &r]);
    assert_eq!(out.trim(), r);
}

#[test]
fn push_to_a_second_repository_mounts_the_blobs() {
    let reg = Registry::start();
    let s = Store::new();
    let a = reg.image_ref("team/a:1");
    let b = reg.image_ref("team/b:1");
    import_busybox(&s, &a);
    let (da, _) = pushed_digest(&s.ok(&["push", &a]));
    s.ok(&["tag", &a, &b]);
    let before = reg.log();
    let out = s.ok(&["push", &b]);
    let (db, _) = pushed_digest(&out);
    assert_eq!(da, db);
    let (_, m) = stored_manifest(&s, &b);
    let layer = m["layers"][0]["digest"].as_str().unwrap();
    assert!(
        out.contains(&format!("{}: Mounted from team/a", short(layer))),
        "{out}"
    );
    // The registry saw mounts (201) and no PUT of blob data.
    let log = reg.log();
    let new = &log[before.len()..];
    assert!(
        new.lines()
            .any(|l| l.contains("mount=") && l.contains("from=team") && l.contains("\" 201 ")),
        "{new}"
    );
    assert!(
        !new.lines()
            .any(|l| l.contains("\"PUT /v2/team/b/blobs/uploads/")),
        "{new}"
    );
    assert_eq!(images::inspect(&reg, "team/b:1", None)["Digest"], db);
    // Both repo digests are recorded.
    let rd = s.inspect(&a)["RepoDigests"].clone();
    assert_eq!(rd.as_array().unwrap().len(), 2, "{rd}");
}

#[test]
fn pulled_image_keeps_its_digest_and_mounts_from_its_source() {
    let reg = Registry::start();
    let digest = images::push(busybox(), "latest", &reg, "src/bb:1");
    let s = Store::new();
    let src = reg.image_ref("src/bb:1");
    let dst = reg.image_ref("dst/bb:2");
    s.ok(&["pull", "-q", &src]);
    // podman's form: push SOURCE DESTINATION.
    let out = s.ok(&["push", &src, &dst]);
    assert_eq!(pushed_digest(&out).0, digest, "{out}");
    assert!(out.contains("Mounted from src/bb"), "{out}");
    assert_eq!(images::inspect(&reg, "dst/bb:2", None)["Digest"], digest);
}

#[test]
fn image_pulled_from_an_index_pushes_its_platform_manifest() {
    let reg = Registry::start();
    let layout = images::multiplatform_layout();
    images::push_index(&layout, "index", &reg, "multi:1", images::Format::Oci);
    let index = images::inspect_raw(&reg, "multi:1");
    let arm = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["platform"]["architecture"] == "arm64")
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let s = Store::new();
    let r = reg.image_ref("multi:1");
    s.ok(&["pull", "-q", "--platform", "linux/arm64", &r]);
    let out = s.ok(&["push", &r, &reg.image_ref("single:arm")]);
    assert_eq!(pushed_digest(&out).0, arm, "{out}");
    let raw = images::inspect_raw(&reg, "single:arm");
    assert!(raw.get("layers").is_some(), "not an image manifest: {raw}");
}

#[test]
fn push_with_token_auth_needs_login() {
    let reg = Registry::start_token("alice", "s3cret");
    let s = Store::new();
    let r = reg.image_ref("private/bb:1");
    import_busybox(&s, &r);
    let o = s.berth(&["push", &r]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.starts_with("berth: ")
            && err.contains(&format!(
                "authentication required: run berth login {}",
                reg.addr
            )),
        "{err}"
    );
    // Log in (credentials go to the store's private DOCKER_CONFIG).
    let mut c = s
        .cmd(&["login", "-u", "alice", "--password-stdin", &reg.addr])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(b"s3cret\n").unwrap();
    let o = c.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let out = s.ok(&["push", &r]);
    let (digest, _) = pushed_digest(&out);
    assert!(
        reg.token_requests()
            .iter()
            .any(|t| t.user.as_deref() == Some("alice")
                && t.scopes
                    .iter()
                    .any(|sc| sc == "repository:private/bb:pull,push")),
        "{:?}",
        reg.token_requests()
    );
    // Pull it back with the same credentials into another store.
    let s2 = Store::new();
    std::fs::copy(
        s.docker_config.path().join("config.json"),
        s2.docker_config.path().join("config.json"),
    )
    .unwrap();
    let out = s2.ok(&["pull", &r]);
    assert!(out.contains(&format!("Digest: {digest}")), "{out}");
}

#[test]
fn unknown_image_and_missing_blobs_fail_clearly() {
    let reg = Registry::start();
    let s = Store::new();
    let o = s.berth(&["push", &reg.image_ref("nope:1")]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("no such image: {}/nope:1", reg.addr)),
        "{err}"
    );
    // A layer blob gone from the store: named, and nothing is uploaded.
    let r = reg.image_ref("broken:1");
    import_busybox(&s, &r);
    let (_, m) = stored_manifest(&s, &r);
    let layer = m["layers"][0]["digest"].as_str().unwrap().to_string();
    std::fs::remove_file(s.root.path().join("blobs/sha256").join(&layer[7..])).unwrap();
    let o = s.berth(&["push", &r]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&layer) && err.contains("not in the store"),
        "{err}"
    );
    assert_eq!(uploads(&reg), 0, "{}", reg.log());
    // A digest as the destination is refused.
    let o = s.berth(&[
        "push",
        &r,
        &format!("{}/x@sha256:{}", reg.addr, "a".repeat(64)),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
}
