//! `berth registry serve`, berth's own registry: real clients (berth
//! push/pull/run, skopeo) against it, and its endpoints one by one over raw
//! HTTP (status codes, headers, error bodies, what lands on disk).

use berth_integration::berth_registry::BerthRegistry;
use berth_integration::engine::{busybox, Store};
use berth_integration::images::{self, sha256_hex, OciLayout};
use serde_json::{json, Value};

fn digest_of(data: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(data))
}

fn skopeo_ok(args: &[&str]) -> Vec<u8> {
    let o = images::skopeo(args);
    assert!(
        o.status.success(),
        "skopeo {args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

/// The JSON error code of a response.
fn error_code(r: &berth_integration::registry::HttpResponse) -> String {
    let v = r.json();
    v["errors"][0]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// POST + PUT of `data` (digest `d`) to `repo`: the final response.
fn upload(
    reg: &BerthRegistry,
    repo: &str,
    data: &[u8],
    d: &str,
) -> berth_integration::registry::HttpResponse {
    let r = reg.req("POST", &format!("/v2/{repo}/blobs/uploads/"), &[], b"");
    assert_eq!(r.status, 202, "{}", r.text());
    let loc = r.header("location").unwrap().to_string();
    reg.req("PUT", &format!("{loc}?digest={d}"), &[], data)
}

#[test]
fn berth_pushes_pulls_and_runs_an_image_through_its_own_registry() {
    let reg = BerthRegistry::start();
    let s = Store::new();
    let r = reg.image_ref("team/busybox:1");
    let tar = berth_integration::containers::rootfs_tar()
        .display()
        .to_string();
    let id = s
        .ok(&["import", "--change", r#"CMD ["sh"]"#, &tar, &r])
        .trim()
        .to_string();
    let out = s.ok(&["push", &r]);
    assert!(out.contains(": Pushed"), "{out}");
    // Again: everything is already there.
    let out = s.ok(&["push", &r]);
    assert!(out.contains("Layer already exists"), "{out}");
    assert!(!out.contains(": Pushed"), "{out}");
    // Another repository: the layer is mounted, not uploaded.
    let r2 = reg.image_ref("team/copy:1");
    s.ok(&["tag", &r, &r2]);
    let out = s.ok(&["push", &r2]);
    assert!(out.contains("Mounted from team/busybox"), "{out}");
    // A fresh store pulls it: the same image, and it runs.
    let s2 = Store::new();
    s2.ok(&["pull", &r]);
    assert_eq!(s2.inspect(&r)["Id"], id);
    assert_eq!(s2.ok(&["run", "--rm", &r, "echo", "ok"]), "ok\n");
}

#[test]
fn skopeo_copies_oci_and_docker_images_in_and_reads_them_back() {
    let reg = BerthRegistry::start();
    let layout: &OciLayout = busybox();
    let dest = format!("docker://{}", reg.image_ref("sk/busybox:1"));
    skopeo_ok(&[
        "copy",
        "--dest-tls-verify=false",
        &layout.reference("latest"),
        &dest,
    ]);
    let raw: Value = serde_json::from_slice(&skopeo_ok(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &dest,
    ]))
    .unwrap();
    assert_eq!(raw, layout.manifest("latest"));
    let insp: Value =
        serde_json::from_slice(&skopeo_ok(&["inspect", "--tls-verify=false", &dest])).unwrap();
    assert_eq!(insp["Digest"], layout.descriptor("latest")["digest"]);
    assert_eq!(insp["Architecture"], images::host_arch());
    // Docker schema 2, and a multi-platform OCI index with all its children.
    let v2 = format!("docker://{}", reg.image_ref("sk/v2s2:1"));
    skopeo_ok(&[
        "copy",
        "--dest-tls-verify=false",
        "--format",
        "v2s2",
        &layout.reference("latest"),
        &v2,
    ]);
    let raw: Value =
        serde_json::from_slice(&skopeo_ok(&["inspect", "--raw", "--tls-verify=false", &v2]))
            .unwrap();
    assert_eq!(
        raw["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    let multi = images::multiplatform_layout();
    let idx = format!("docker://{}", reg.image_ref("sk/multi:1"));
    skopeo_ok(&[
        "copy",
        "--all",
        "--dest-tls-verify=false",
        &multi.reference("index"),
        &idx,
    ]);
    let raw: Value = serde_json::from_slice(&skopeo_ok(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &idx,
    ]))
    .unwrap();
    assert_eq!(raw, multi.manifest("index"));
    // And back out into a layout, every platform.
    let out = tempfile::tempdir().unwrap();
    let back = format!("oci:{}:x", out.path().join("l").display());
    skopeo_ok(&["copy", "--all", "--src-tls-verify=false", &idx, &back]);
    let r = reg.req("GET", "/v2/_catalog", &[], b"");
    assert_eq!(
        r.json(),
        json!({"repositories": ["sk/busybox", "sk/multi", "sk/v2s2"]})
    );
}

#[test]
fn unknown_blob_and_manifest_are_404_with_json_errors() {
    let reg = BerthRegistry::start();
    let r = reg.req("GET", "/v2/", &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("docker-distribution-api-version"),
        Some("registry/2.0")
    );
    let d = digest_of(b"nothing");
    let r = reg.req("GET", &format!("/v2/a/b/blobs/{d}"), &[], b"");
    assert_eq!(r.status, 404);
    assert_eq!(error_code(&r), "BLOB_UNKNOWN");
    assert_eq!(
        r.header("docker-distribution-api-version"),
        Some("registry/2.0")
    );
    let r = reg.req("HEAD", &format!("/v2/a/b/blobs/{d}"), &[], b"");
    assert_eq!(r.status, 404);
    let r = reg.req("GET", "/v2/a/b/manifests/latest", &[], b"");
    assert_eq!(r.status, 404);
    assert_eq!(error_code(&r), "MANIFEST_UNKNOWN");
    let r = reg.req("GET", "/v2/a/b/tags/list", &[], b"");
    assert_eq!(r.status, 404);
    assert_eq!(error_code(&r), "NAME_UNKNOWN");
    // Names outside the grammar, traversal included.
    for bad in [
        "/v2/A/manifests/x",
        "/v2/a/../b/manifests/x",
        "/v2/a//b/tags/list",
    ] {
        let r = reg.req("GET", bad, &[], b"");
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
        assert_eq!(error_code(&r), "NAME_INVALID", "{bad}");
    }
}

#[test]
fn digest_mismatch_is_400_and_stores_nothing() {
    let reg = BerthRegistry::start();
    let data = b"the real bytes";
    let wrong = digest_of(b"other bytes");
    let r = upload(&reg, "m", data, &wrong);
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(error_code(&r), "DIGEST_INVALID");
    // Monolithic POST too.
    let r = reg.req(
        "POST",
        &format!("/v2/m/blobs/uploads/?digest={wrong}"),
        &[],
        data,
    );
    assert_eq!(r.status, 400);
    assert_eq!(error_code(&r), "DIGEST_INVALID");
    for d in [&wrong, &digest_of(data)] {
        let r = reg.req("HEAD", &format!("/v2/m/blobs/{d}"), &[], b"");
        assert_eq!(r.status, 404, "{d}");
    }
    assert!(reg.blob_files().is_empty(), "{:?}", reg.blob_files());
    // The right digest stores it.
    let d = digest_of(data);
    let r = upload(&reg, "m", data, &d);
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("docker-content-digest"), Some(d.as_str()));
    assert_eq!(
        r.header("location"),
        Some(format!("/v2/m/blobs/{d}").as_str())
    );
    let r = reg.req("HEAD", &format!("/v2/m/blobs/{d}"), &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-length"),
        Some(data.len().to_string().as_str())
    );
}

#[test]
fn chunked_upload_rejects_out_of_order_chunks_with_416() {
    let reg = BerthRegistry::start();
    let data: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    let d = digest_of(&data);
    let r = reg.req("POST", "/v2/c/blobs/uploads/", &[], b"");
    let loc = r.header("location").unwrap().to_string();
    let r = reg.req("PATCH", &loc, &[("Content-Range", "0-999")], &data[..1000]);
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.header("range"), Some("0-999"));
    let loc = r.header("location").unwrap().to_string();
    // Skips a chunk: 416, and the upload is where it was.
    let r = reg.req(
        "PATCH",
        &loc,
        &[("Content-Range", "2000-2999")],
        &data[2000..],
    );
    assert_eq!(r.status, 416, "{}", r.text());
    assert_eq!(r.header("range"), Some("0-999"));
    let r = reg.req("GET", &loc, &[], b"");
    assert_eq!(r.status, 204);
    assert_eq!(r.header("range"), Some("0-999"));
    // A chunk shorter than its Content-Range is taken back whole.
    let r = reg.req(
        "PATCH",
        &loc,
        &[("Content-Range", "1000-1999")],
        &data[1000..1500],
    );
    assert_eq!(r.status, 416, "{}", r.text());
    assert_eq!(
        reg.req("GET", &loc, &[], b"").header("range"),
        Some("0-999")
    );
    let r = reg.req(
        "PATCH",
        &loc,
        &[("Content-Range", "1000-1999")],
        &data[1000..2000],
    );
    assert_eq!(r.status, 202);
    // The last chunk with the PUT.
    let r = reg.req(
        "PUT",
        &format!("{loc}?digest={d}"),
        &[("Content-Range", "2000-2999")],
        &data[2000..],
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let r = reg.req("GET", &format!("/v2/c/blobs/{d}"), &[], b"");
    assert_eq!(r.body, data);
    // The upload is gone; a cancelled one too.
    assert_eq!(reg.req("GET", &loc, &[], b"").status, 404);
    let r = reg.req("POST", "/v2/c/blobs/uploads/", &[], b"");
    let loc = r.header("location").unwrap().to_string();
    assert_eq!(reg.req("DELETE", &loc, &[], b"").status, 204);
    let r = reg.req("GET", &loc, &[], b"");
    assert_eq!(r.status, 404);
    assert_eq!(error_code(&r), "BLOB_UPLOAD_UNKNOWN");
}

#[test]
fn range_get_is_206_with_the_right_bytes() {
    let reg = BerthRegistry::start();
    let data: Vec<u8> = (0..10000u32).map(|i| (i * 7 % 256) as u8).collect();
    let d = digest_of(&data);
    assert_eq!(upload(&reg, "r", &data, &d).status, 201);
    let r = reg.req(
        "GET",
        &format!("/v2/r/blobs/{d}"),
        &[("Range", "bytes=100-199")],
        b"",
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &data[100..200]);
    assert_eq!(r.header("content-range"), Some("bytes 100-199/10000"));
    let r = reg.req(
        "GET",
        &format!("/v2/r/blobs/{d}"),
        &[("Range", "bytes=9990-")],
        b"",
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &data[9990..]);
    let r = reg.req(
        "GET",
        &format!("/v2/r/blobs/{d}"),
        &[("Range", "bytes=20000-")],
        b"",
    );
    assert_eq!(r.status, 416);
    let r = reg.req("GET", &format!("/v2/r/blobs/{d}"), &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, data);
}

/// Uploads a config blob and puts a one-config OCI manifest as `reference`
/// of `repo`; returns the response.
fn put_manifest(
    reg: &BerthRegistry,
    repo: &str,
    reference: &str,
    label: &str,
) -> (berth_integration::registry::HttpResponse, String) {
    let config = format!(r#"{{"label":"{label}"}}"#);
    let cd = digest_of(config.as_bytes());
    assert_eq!(upload(reg, repo, config.as_bytes(), &cd).status, 201);
    let m = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
        "layers": []
    })
    .to_string();
    let r = reg.req(
        "PUT",
        &format!("/v2/{repo}/manifests/{reference}"),
        &[("Content-Type", "application/vnd.oci.image.manifest.v1+json")],
        m.as_bytes(),
    );
    (r, digest_of(m.as_bytes()))
}

#[test]
fn manifests_by_tag_and_digest_and_what_put_rejects() {
    let reg = BerthRegistry::start();
    let (r, d) = put_manifest(&reg, "x/y", "v1", "one");
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("docker-content-digest"), Some(d.as_str()));
    for reference in ["v1", d.as_str()] {
        let r = reg.req("GET", &format!("/v2/x/y/manifests/{reference}"), &[], b"");
        assert_eq!(r.status, 200);
        assert_eq!(digest_of(&r.body), d);
        assert_eq!(
            r.header("content-type"),
            Some("application/vnd.oci.image.manifest.v1+json")
        );
        let h = reg.req("HEAD", &format!("/v2/x/y/manifests/{reference}"), &[], b"");
        assert_eq!(h.status, 200);
        assert_eq!(
            h.header("content-length"),
            Some(r.body.len().to_string().as_str())
        );
    }
    // A missing blob.
    let m = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest_of(b"absent"), "size": 6},
        "layers": []
    })
    .to_string();
    let ct = [("Content-Type", "application/vnd.oci.image.manifest.v1+json")];
    let r = reg.req("PUT", "/v2/x/y/manifests/v2", &ct, m.as_bytes());
    assert_eq!(r.status, 400);
    assert_eq!(error_code(&r), "MANIFEST_BLOB_UNKNOWN");
    // A body that is not the digest it is put under.
    let r = reg.req(
        "PUT",
        &format!("/v2/x/y/manifests/{}", digest_of(b"x")),
        &ct,
        m.as_bytes(),
    );
    assert_eq!(r.status, 400);
    assert_eq!(error_code(&r), "DIGEST_INVALID");
    // Not JSON; over 4 MiB.
    let r = reg.req("PUT", "/v2/x/y/manifests/v3", &ct, b"{not json");
    assert_eq!(error_code(&r), "MANIFEST_INVALID");
    let big = vec![b' '; (4 << 20) + 1];
    let r = reg.req("PUT", "/v2/x/y/manifests/v4", &ct, &big);
    assert_eq!(r.status, 413);
    let r = reg.req("GET", "/v2/x/y/tags/list", &[], b"");
    assert_eq!(r.json(), json!({"name": "x/y", "tags": ["v1"]}));
    // Delete by tag, then by digest.
    assert_eq!(
        reg.req("DELETE", "/v2/x/y/manifests/v1", &[], b"").status,
        202
    );
    assert_eq!(reg.req("GET", "/v2/x/y/manifests/v1", &[], b"").status, 404);
    assert_eq!(
        reg.req("GET", &format!("/v2/x/y/manifests/{d}"), &[], b"")
            .status,
        200
    );
    assert_eq!(
        reg.req("DELETE", &format!("/v2/x/y/manifests/{d}"), &[], b"")
            .status,
        202
    );
    assert_eq!(
        reg.req("GET", &format!("/v2/x/y/manifests/{d}"), &[], b"")
            .status,
        404
    );
}

#[test]
fn tags_list_and_catalog_paginate_with_link() {
    let reg = BerthRegistry::start();
    for (i, t) in ["a", "b", "c", "d", "e"].iter().enumerate() {
        assert_eq!(put_manifest(&reg, "p/q", t, &i.to_string()).0.status, 201);
    }
    put_manifest(&reg, "p/r", "x", "r");
    put_manifest(&reg, "z", "x", "z");
    let r = reg.req("GET", "/v2/p/q/tags/list?n=2", &[], b"");
    assert_eq!(r.json()["tags"], json!(["a", "b"]));
    assert_eq!(
        r.header("link"),
        Some(r#"</v2/p/q/tags/list?n=2&last=b>; rel="next""#)
    );
    let r = reg.req("GET", "/v2/p/q/tags/list?n=2&last=b", &[], b"");
    assert_eq!(r.json()["tags"], json!(["c", "d"]));
    let r = reg.req("GET", "/v2/p/q/tags/list?n=2&last=d", &[], b"");
    assert_eq!(r.json()["tags"], json!(["e"]));
    assert_eq!(r.header("link"), None);
    let r = reg.req("GET", "/v2/p/q/tags/list", &[], b"");
    assert_eq!(r.json()["tags"], json!(["a", "b", "c", "d", "e"]));
    let r = reg.req("GET", "/v2/_catalog?n=2", &[], b"");
    assert_eq!(r.json(), json!({"repositories": ["p/q", "p/r"]}));
    assert_eq!(
        r.header("link"),
        Some(r#"</v2/_catalog?n=2&last=p/r>; rel="next""#)
    );
    let r = reg.req("GET", "/v2/_catalog?n=2&last=p/r", &[], b"");
    assert_eq!(r.json(), json!({"repositories": ["z"]}));
}

#[test]
fn a_blob_in_two_repositories_is_stored_once_and_mounts() {
    let reg = BerthRegistry::start();
    let data = b"shared layer bytes".repeat(1000);
    let d = digest_of(&data);
    assert_eq!(upload(&reg, "one", &data, &d).status, 201);
    assert_eq!(upload(&reg, "two/deep", &data, &d).status, 201);
    // A third repository by cross-repository mount.
    let r = reg.req(
        "POST",
        &format!("/v2/three/blobs/uploads/?mount={d}&from=one"),
        &[],
        b"",
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        r.header("location"),
        Some(format!("/v2/three/blobs/{d}").as_str())
    );
    // A mount from a repository without it falls back to an upload.
    let r = reg.req(
        "POST",
        &format!("/v2/four/blobs/uploads/?mount={d}&from=nowhere"),
        &[],
        b"",
    );
    assert_eq!(r.status, 202);
    assert!(r
        .header("location")
        .unwrap()
        .starts_with("/v2/four/blobs/uploads/"));
    // Not visible in a repository it was never pushed or mounted to.
    assert_eq!(
        reg.req("HEAD", &format!("/v2/four/blobs/{d}"), &[], b"")
            .status,
        404
    );
    for repo in ["one", "two/deep", "three"] {
        let r = reg.req("GET", &format!("/v2/{repo}/blobs/{d}"), &[], b"");
        assert_eq!(r.body, data, "{repo}");
    }
    assert_eq!(reg.blob_files(), vec![format!("sha256/{}", &d[7..])]);
}

#[test]
fn a_chunked_upload_survives_a_server_restart() {
    let mut reg = BerthRegistry::start();
    let data: Vec<u8> = (0..4096u32).map(|i| (i % 13) as u8).collect();
    let d = digest_of(&data);
    let r = reg.req("POST", "/v2/restart/me/blobs/uploads/", &[], b"");
    let loc = r.header("location").unwrap().to_string();
    let r = reg.req("PATCH", &loc, &[("Content-Range", "0-2047")], &data[..2048]);
    assert_eq!(r.status, 202);
    reg.restart();
    let r = reg.req("GET", &loc, &[], b"");
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(r.header("range"), Some("0-2047"));
    let r = reg.req(
        "PATCH",
        &loc,
        &[("Content-Range", "2048-4095")],
        &data[2048..],
    );
    assert_eq!(r.status, 202);
    let r = reg.req("PUT", &format!("{loc}?digest={d}"), &[], b"");
    assert_eq!(r.status, 201, "{}", r.text());
    let r = reg.req("GET", &format!("/v2/restart/me/blobs/{d}"), &[], b"");
    assert_eq!(r.body, data);
}

#[test]
fn twenty_clients_pushing_the_same_blob_store_it_once() {
    let reg = BerthRegistry::start();
    let data: Vec<u8> = (0..(1u32 << 20)).map(|i| (i % 241) as u8).collect();
    let d = digest_of(&data);
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..20)
            .map(|i| {
                let (reg, data, d) = (&reg, &data, &d);
                s.spawn(move || {
                    let repo = format!("many/r{i}");
                    let r = reg.req("POST", &format!("/v2/{repo}/blobs/uploads/"), &[], b"");
                    let loc = r.header("location").unwrap().to_string();
                    let r = reg.req("PATCH", &loc, &[], data);
                    assert_eq!(r.status, 202, "{}", r.text());
                    let r = reg.req("PUT", &format!("{loc}?digest={d}"), &[], b"");
                    assert_eq!(r.status, 201, "{}", r.text());
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
    });
    assert_eq!(reg.blob_files(), vec![format!("sha256/{}", &d[7..])]);
    for i in 0..20 {
        let r = reg.req("HEAD", &format!("/v2/many/r{i}/blobs/{d}"), &[], b"");
        assert_eq!(r.status, 200, "r{i}");
    }
    // Nothing half-written is left behind.
    for dir in ["tmp", "uploads"] {
        let left: Vec<_> = std::fs::read_dir(reg.root().join(dir)).unwrap().collect();
        assert!(left.is_empty(), "{dir}: {left:?}");
    }
}

#[test]
fn podman_pulls_from_and_pushes_to_it() {
    let reg = BerthRegistry::start();
    let src = reg.image_ref("pm/src:1");
    skopeo_ok(&[
        "copy",
        "--dest-tls-verify=false",
        &busybox().reference("latest"),
        &format!("docker://{src}"),
    ]);
    let pm = berth_integration::podman::Podman::new(&reg.addr);
    pm.ok(&["pull", "-q", &src]);
    let dst = reg.image_ref("pm/dst:2");
    pm.ok(&["push", &src, &format!("docker://{dst}")]);
    let raw = |r: &str| -> Value {
        serde_json::from_slice(&skopeo_ok(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{r}"),
        ]))
        .unwrap()
    };
    assert_eq!(raw(&dst)["config"]["digest"], raw(&src)["config"]["digest"]);
    let r = reg.req("GET", "/v2/pm/dst/tags/list", &[], b"");
    assert_eq!(r.json(), json!({"name": "pm/dst", "tags": ["2"]}));
}
