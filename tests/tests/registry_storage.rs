//! The registry's storage conformance test: one set of test functions,
//! each run against every backend (module `fs`: files under `--root`;
//! module `s3`: a real Garage server started by the test on 127.0.0.1,
//! through `[storage.s3]`), over `berth registry serve`'s HTTP API and
//! `berth registry gc`. Then end-to-end tests of the S3 backend alone:
//! `berth push`/`berth pull` through it, and two servers sharing one bucket.

use berth_integration::berth_registry::BerthRegistry;
use berth_integration::engine::{berth_bin, Store};
use berth_integration::garage::Garage;
use berth_integration::images::sha256_hex;
use berth_integration::registry::HttpResponse;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn digest_of(data: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(data))
}

fn error_code(r: &HttpResponse) -> String {
    r.json()["errors"][0]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// A storage backend the registry runs on.
enum Backend {
    Fs,
    S3 { garage: Garage, prefix: String },
}

struct Fixture {
    backend: Backend,
}

impl Fixture {
    fn fs() -> Fixture {
        Fixture {
            backend: Backend::Fs,
        }
    }

    /// A fresh Garage, and a key prefix of this test's own.
    fn s3() -> Fixture {
        let garage = Garage::start();
        let prefix = format!("t{}/reg", std::process::id());
        Fixture {
            backend: Backend::S3 { garage, prefix },
        }
    }

    /// The server config for this backend, with `extra` lines.
    fn config(&self, extra: &str) -> Option<String> {
        match &self.backend {
            Backend::Fs if extra.is_empty() => None,
            Backend::Fs => Some(extra.to_string()),
            // Top-level keys first: the table ends the top level.
            Backend::S3 { garage, prefix } => Some(format!("{extra}\n{}", garage.s3_table(prefix))),
        }
    }

    fn start(&self) -> BerthRegistry {
        self.start_with(&[])
    }

    fn start_with(&self, extra: &[&str]) -> BerthRegistry {
        let reg = BerthRegistry::start_with_config(self.config(&extra.join("\n")).as_deref(), &[]);
        if let Backend::S3 { .. } = self.backend {
            assert!(
                reg.log().contains("serving s3 "),
                "not on S3: {}",
                reg.log()
            );
        }
        reg
    }

    /// Stored blobs: `<alg>/<hex>`, sorted.
    fn blobs(&self, reg: &BerthRegistry) -> Vec<String> {
        match &self.backend {
            Backend::Fs => reg.blob_files(),
            Backend::S3 { garage, prefix } => garage
                .keys(&format!("{prefix}/blobs/"))
                .into_iter()
                .map(|k| k[prefix.len() + "/blobs/".len()..].to_string())
                .collect(),
        }
    }

    /// Blobs being written, not yet verified (should be none at rest).
    fn temp_files(&self, reg: &BerthRegistry) -> Vec<String> {
        match &self.backend {
            Backend::Fs => std::fs::read_dir(reg.root().join("tmp"))
                .map(|rd| {
                    rd.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default(),
            Backend::S3 { garage, prefix } => garage.keys(&format!("{prefix}/tmp/")),
        }
    }

    /// `berth registry gc` of the registry's storage: its stdout.
    fn gc(&self, reg: &BerthRegistry, args: &[&str]) -> String {
        let mut c = Command::new(berth_bin());
        c.arg("--root")
            .arg(reg.root())
            .args(["registry", "gc"])
            .args(args);
        if let Some(p) = reg.config_path() {
            c.arg("--config").arg(p);
        }
        let o = c.output().unwrap();
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(
            o.status.success(),
            "berth registry gc {args:?}: {out}{}",
            String::from_utf8_lossy(&o.stderr)
        );
        out
    }
}

/// POST + PUT of `data` to `repo`; asserts 201; its digest.
fn upload(reg: &BerthRegistry, repo: &str, data: &[u8]) -> String {
    let d = digest_of(data);
    let loc = start_upload(reg, repo);
    let r = reg.req("PUT", &format!("{loc}?digest={d}"), &[], data);
    assert_eq!(r.status, 201, "{}", r.text());
    d
}

/// POST: the upload's location.
fn start_upload(reg: &BerthRegistry, repo: &str) -> String {
    let r = reg.req("POST", &format!("/v2/{repo}/blobs/uploads/"), &[], b"");
    assert_eq!(r.status, 202, "{}", r.text());
    r.header("location").unwrap().to_string()
}

/// Sends `method path` announcing `announced` body bytes, sends only
/// `body`, and closes the connection: an interrupted request.
fn send_cut(reg: &BerthRegistry, method: &str, path: &str, announced: usize, body: &[u8]) {
    let mut s = std::net::TcpStream::connect(&reg.addr).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {announced}\r\n\
         Content-Type: application/octet-stream\r\n\r\n",
        reg.addr
    )
    .unwrap();
    s.write_all(body).unwrap();
    s.flush().unwrap();
    // Let the server take what was sent before the connection goes.
    std::thread::sleep(Duration::from_millis(300));
    let _ = s.shutdown(std::net::Shutdown::Both);
    let mut sink = Vec::new();
    let _ = s.read_to_end(&mut sink);
}

/// Waits (5 s at most) until `f` holds.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(Instant::now() < deadline, "not within 5 s: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn put_manifest(reg: &BerthRegistry, repo: &str, reference: &str, m: &Value) -> HttpResponse {
    let body = serde_json::to_vec(m).unwrap();
    reg.req(
        "PUT",
        &format!("/v2/{repo}/manifests/{reference}"),
        &[("Content-Type", OCI_MANIFEST)],
        &body,
    )
}

/// An image manifest of a config and one layer uploaded to `repo`.
fn image(reg: &BerthRegistry, repo: &str, layer: &[u8]) -> Value {
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let c = upload(reg, repo, config);
    let l = upload(reg, repo, layer);
    json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": c, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": l, "size": layer.len()}],
    })
}

// --- the conformance tests, one function per property, for every backend ---

fn blob_round_trip_stored_once_across_repositories(f: &Fixture) {
    let reg = f.start();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let d = digest_of(&data);
    assert_eq!(upload(&reg, "one", &data), d);
    // Chunked this time, into a nested repository.
    let loc = start_upload(&reg, "two/deep");
    let r = reg.req(
        "PATCH",
        &loc,
        &[("Content-Range", "0-99999")],
        &data[..100_000],
    );
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.header("range"), Some("0-99999"));
    let r = reg.req(
        "PATCH",
        &loc,
        &[("Content-Range", "100000-299999")],
        &data[100_000..],
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let r = reg.req("PUT", &format!("{loc}?digest={d}"), &[], b"");
    assert_eq!(r.status, 201, "{}", r.text());
    // A mount into a third.
    let r = reg.req(
        "POST",
        &format!("/v2/three/blobs/uploads/?mount={d}&from=one"),
        &[],
        b"",
    );
    assert_eq!(r.status, 201, "{}", r.text());
    for repo in ["one", "two/deep", "three"] {
        let r = reg.req("GET", &format!("/v2/{repo}/blobs/{d}"), &[], b"");
        assert_eq!(r.status, 200, "{repo}");
        assert!(r.body == data, "{repo}: other bytes came back");
        assert_eq!(r.header("docker-content-digest"), Some(d.as_str()));
        let r = reg.req("HEAD", &format!("/v2/{repo}/blobs/{d}"), &[], b"");
        assert_eq!(r.header("content-length"), Some("300000"));
    }
    // Not in a repository it was never pushed or mounted to.
    let r = reg.req("HEAD", &format!("/v2/four/blobs/{d}"), &[], b"");
    assert_eq!(r.status, 404);
    assert_eq!(f.blobs(&reg), vec![format!("sha256/{}", &d[7..])]);
    // An empty blob is a blob too.
    let e = upload(&reg, "one", b"");
    let r = reg.req("GET", &format!("/v2/one/blobs/{e}"), &[], b"");
    assert_eq!((r.status, r.body.len()), (200, 0));
    // A blob DELETE unlinks it from that repository only.
    let r = reg.req("DELETE", &format!("/v2/one/blobs/{d}"), &[], b"");
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(
        reg.req("HEAD", &format!("/v2/one/blobs/{d}"), &[], b"")
            .status,
        404
    );
    assert_eq!(
        reg.req("HEAD", &format!("/v2/three/blobs/{d}"), &[], b"")
            .status,
        200
    );
    assert!(f.temp_files(&reg).is_empty(), "{:?}", f.temp_files(&reg));
}

fn range_reads(f: &Fixture) {
    let reg = f.start();
    let data: Vec<u8> = (0..1000u32).map(|i| (i % 256) as u8).collect();
    let d = upload(&reg, "ranged", &data);
    let path = format!("/v2/ranged/blobs/{d}");
    for (range, start, end) in [
        ("bytes=10-19", 10, 19),
        ("bytes=990-", 990, 999),
        ("bytes=-5", 995, 999),
        ("bytes=500-5000", 500, 999),
        ("bytes=0-0", 0, 0),
    ] {
        let r = reg.req("GET", &path, &[("Range", range)], b"");
        assert_eq!(r.status, 206, "{range}: {}", r.text());
        assert_eq!(r.body, &data[start..=end], "{range}");
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes {start}-{end}/1000").as_str()),
            "{range}"
        );
    }
    let r = reg.req("GET", &path, &[("Range", "bytes=1000-")], b"");
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some("bytes */1000"));
}

fn interrupted_uploads_never_become_blobs(f: &Fixture) {
    let mut reg = f.start();
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 97) as u8).collect();
    let d = digest_of(&data);
    // A monolithic upload whose body stops halfway.
    send_cut(
        &reg,
        "POST",
        &format!("/v2/cut/blobs/uploads/?digest={d}"),
        data.len(),
        &data[..100_000],
    );
    // A chunk whose body stops halfway: not taken at all.
    let loc = start_upload(&reg, "cut");
    let r = reg.req("PATCH", &loc, &[], &data[..1000]);
    assert_eq!(r.status, 202);
    send_cut(&reg, "PATCH", &loc, 50_000, &data[1000..20_000]);
    eventually("the cut chunk is dropped", || {
        reg.req("GET", &loc, &[], b"").header("range") == Some("0-999")
    });
    // The wrong bytes for a digest: refused, nothing stored.
    let r = reg.req(
        "POST",
        &format!("/v2/cut/blobs/uploads/?digest={d}"),
        &[],
        &data[..199_999],
    );
    assert_eq!(r.status, 400);
    assert_eq!(error_code(&r), "DIGEST_INVALID");
    let loc2 = start_upload(&reg, "cut");
    let r = reg.req("PATCH", &loc2, &[], &data[1..]);
    assert_eq!(r.status, 202);
    let r = reg.req("PUT", &format!("{loc2}?digest={d}"), &[], b"");
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(error_code(&r), "DIGEST_INVALID");
    // The upload is gone after a failed finish.
    assert_eq!(reg.req("GET", &loc2, &[], b"").status, 404);
    // A server killed in the middle of an upload.
    let loc3 = start_upload(&reg, "cut");
    let r = reg.req("PATCH", &loc3, &[], &data[..50_000]);
    assert_eq!(r.status, 202);
    reg.kill9_and_restart();
    assert_eq!(
        reg.req("HEAD", &format!("/v2/cut/blobs/{d}"), &[], b"")
            .status,
        404
    );
    assert!(f.blobs(&reg).is_empty(), "{:?}", f.blobs(&reg));
    eventually("no half-written blob is left", || {
        f.temp_files(&reg).is_empty()
    });
    // What was interrupted can still be finished properly.
    let r = reg.req("PUT", &format!("{loc}?digest={d}"), &[], &data[1000..]);
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(f.blobs(&reg), vec![format!("sha256/{}", &d[7..])]);
}

fn uploads_resume_after_a_restart(f: &Fixture) {
    let mut reg = f.start();
    let data: Vec<u8> = (0..6000u32).map(|i| (i % 13) as u8).collect();
    let d = digest_of(&data);
    let loc = start_upload(&reg, "restart/me");
    let r = reg.req("PATCH", &loc, &[("Content-Range", "0-1999")], &data[..2000]);
    assert_eq!(r.status, 202);
    reg.restart();
    let r = reg.req("GET", &loc, &[], b"");
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(r.header("range"), Some("0-1999"));
    // A chunk that does not follow is refused; the upload stays.
    let r = reg.req(
        "PATCH",
        &loc,
        &[("Content-Range", "3000-3999")],
        &data[3000..4000],
    );
    assert_eq!(r.status, 416);
    let r = reg.req(
        "PATCH",
        &loc,
        &[("Content-Range", "2000-3999")],
        &data[2000..4000],
    );
    assert_eq!(r.status, 202);
    reg.kill9_and_restart();
    assert_eq!(
        reg.req("GET", &loc, &[], b"").header("range"),
        Some("0-3999")
    );
    let r = reg.req("PUT", &format!("{loc}?digest={d}"), &[], &data[4000..]);
    assert_eq!(r.status, 201, "{}", r.text());
    let r = reg.req("GET", &format!("/v2/restart/me/blobs/{d}"), &[], b"");
    assert!(r.body == data);
    // A cancelled upload is gone.
    let loc = start_upload(&reg, "restart/me");
    assert_eq!(reg.req("DELETE", &loc, &[], b"").status, 204);
    assert_eq!(reg.req("GET", &loc, &[], b"").status, 404);
    // Not another repository's, and not a made-up id.
    let loc = start_upload(&reg, "restart/me");
    let other = loc.replace("/v2/restart/me/", "/v2/other/");
    assert_eq!(reg.req("GET", &other, &[], b"").status, 404);
    let r = reg.req("GET", "/v2/restart/me/blobs/uploads/..%2f..%2fx", &[], b"");
    assert_eq!(r.status, 404);
}

fn abandoned_uploads_are_purged(f: &Fixture) {
    let reg = f.start_with(&["upload_max_age = 2"]);
    let loc = start_upload(&reg, "idle");
    let r = reg.req("PATCH", &loc, &[], b"some bytes");
    assert_eq!(r.status, 202);
    let deadline = Instant::now() + Duration::from_secs(15);
    while reg.req("GET", &loc, &[], b"").status != 404 {
        assert!(
            Instant::now() < deadline,
            "the idle upload was not purged: {}",
            reg.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(f.blobs(&reg).is_empty());
}

fn manifests_put_get_delete(f: &Fixture) {
    let reg = f.start();
    let m = image(&reg, "app", b"layer one");
    let r = put_manifest(&reg, "app", "v1", &m);
    assert_eq!(r.status, 201, "{}", r.text());
    let md = r.header("docker-content-digest").unwrap().to_string();
    let body = serde_json::to_vec(&m).unwrap();
    assert_eq!(md, digest_of(&body));
    for reference in ["v1", md.as_str()] {
        let r = reg.req("GET", &format!("/v2/app/manifests/{reference}"), &[], b"");
        assert_eq!(r.status, 200, "{reference}");
        assert_eq!(r.body, body);
        assert_eq!(r.header("content-type"), Some(OCI_MANIFEST));
        assert_eq!(r.header("docker-content-digest"), Some(md.as_str()));
        let r = reg.req("HEAD", &format!("/v2/app/manifests/{reference}"), &[], b"");
        assert_eq!(r.status, 200);
    }
    // A manifest naming a blob the repository does not have is refused.
    let mut bad = m.clone();
    bad["layers"][0]["digest"] = json!(digest_of(b"never uploaded"));
    let r = put_manifest(&reg, "app", "bad", &bad);
    assert_eq!(r.status, 400);
    assert_eq!(error_code(&r), "MANIFEST_BLOB_UNKNOWN");
    // By digest, with the wrong digest.
    let r = put_manifest(&reg, "app", &digest_of(b"x"), &m);
    assert_eq!(error_code(&r), "DIGEST_INVALID");
    // Another tag on the same manifest; deleting a tag keeps the manifest.
    assert_eq!(put_manifest(&reg, "app", "latest", &m).status, 201);
    assert_eq!(
        reg.req("DELETE", "/v2/app/manifests/latest", &[], b"")
            .status,
        202
    );
    assert_eq!(
        reg.req("GET", "/v2/app/manifests/latest", &[], b"").status,
        404
    );
    assert_eq!(reg.req("GET", "/v2/app/manifests/v1", &[], b"").status, 200);
    // Deleting by digest takes its tags along.
    assert_eq!(put_manifest(&reg, "app", "latest", &m).status, 201);
    let r = reg.req("DELETE", &format!("/v2/app/manifests/{md}"), &[], b"");
    assert_eq!(r.status, 202, "{}", r.text());
    for reference in ["v1", "latest", md.as_str()] {
        let r = reg.req("GET", &format!("/v2/app/manifests/{reference}"), &[], b"");
        assert_eq!(r.status, 404, "{reference}");
        assert_eq!(error_code(&r), "MANIFEST_UNKNOWN");
    }
    let r = reg.req("DELETE", &format!("/v2/app/manifests/{md}"), &[], b"");
    assert_eq!(r.status, 404);
    let r = reg.req("GET", "/v2/app/tags/list", &[], b"");
    assert_eq!(r.json()["tags"], json!([]));
}

fn tags_list_with_pagination(f: &Fixture) {
    let reg = f.start();
    let m = image(&reg, "tagged", b"l");
    for t in ["c", "a", "e", "b", "d"] {
        assert_eq!(put_manifest(&reg, "tagged", t, &m).status, 201);
    }
    let r = reg.req("GET", "/v2/tagged/tags/list", &[], b"");
    assert_eq!(
        r.json(),
        json!({"name": "tagged", "tags": ["a", "b", "c", "d", "e"]})
    );
    let r = reg.req("GET", "/v2/tagged/tags/list?n=2", &[], b"");
    assert_eq!(r.json()["tags"], json!(["a", "b"]));
    assert_eq!(
        r.header("link"),
        Some(r#"</v2/tagged/tags/list?n=2&last=b>; rel="next""#)
    );
    let r = reg.req("GET", "/v2/tagged/tags/list?n=2&last=d", &[], b"");
    assert_eq!(r.json()["tags"], json!(["e"]));
    assert_eq!(r.header("link"), None);
    let r = reg.req("GET", "/v2/nothing/here/tags/list", &[], b"");
    assert_eq!(r.status, 404);
    assert_eq!(error_code(&r), "NAME_UNKNOWN");
    // A repository with blobs but no manifest yet has no tags.
    upload(&reg, "blobs/only", b"b");
    let r = reg.req("GET", "/v2/blobs/only/tags/list", &[], b"");
    assert_eq!(r.json()["tags"], json!([]));
}

fn referrers_are_listed_and_filtered(f: &Fixture) {
    let reg = f.start();
    let m = image(&reg, "ref/app", b"subject layer");
    let r = put_manifest(&reg, "ref/app", "v1", &m);
    let sd = r.header("docker-content-digest").unwrap().to_string();
    let subject = json!({"mediaType": OCI_MANIFEST, "digest": sd, "size": serde_json::to_vec(&m).unwrap().len()});
    let mut digests = Vec::new();
    for kind in [
        "application/vnd.example.sig",
        "application/vnd.example.sbom",
    ] {
        let mut a = image(&reg, "ref/app", kind.as_bytes());
        a["artifactType"] = json!(kind);
        a["subject"] = subject.clone();
        let r = put_manifest(&reg, "ref/app", &kind.replace('/', "-"), &a);
        assert_eq!(r.status, 201, "{}", r.text());
        assert_eq!(r.header("oci-subject"), Some(sd.as_str()));
        digests.push(r.header("docker-content-digest").unwrap().to_string());
    }
    let r = reg.req("GET", &format!("/v2/ref/app/referrers/{sd}"), &[], b"");
    assert_eq!(r.status, 200);
    let v = r.json();
    let mut got: Vec<&str> = v["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap())
        .collect();
    got.sort();
    digests.sort();
    assert_eq!(got, digests);
    let r = reg.req(
        "GET",
        &format!("/v2/ref/app/referrers/{sd}?artifactType=application/vnd.example.sbom"),
        &[],
        b"",
    );
    let v = r.json();
    assert_eq!(v["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(
        v["manifests"][0]["artifactType"],
        "application/vnd.example.sbom"
    );
    // Deleting a referrer drops it from the list.
    let sig = &digests[0];
    assert_eq!(
        reg.req("DELETE", &format!("/v2/ref/app/manifests/{sig}"), &[], b"")
            .status,
        202
    );
    let v = reg
        .req("GET", &format!("/v2/ref/app/referrers/{sd}"), &[], b"")
        .json();
    assert_eq!(v["manifests"].as_array().unwrap().len(), 1);
    // None for another subject.
    let v = reg
        .req(
            "GET",
            &format!("/v2/ref/app/referrers/{}", digest_of(b"none")),
            &[],
            b"",
        )
        .json();
    assert_eq!(v["manifests"], json!([]));
}

fn repositories_are_listed(f: &Fixture) {
    let reg = f.start();
    for repo in ["z", "p/q", "p/r", "a/b/c"] {
        let m = image(&reg, repo, repo.as_bytes());
        assert_eq!(put_manifest(&reg, repo, "1", &m).status, 201);
    }
    // Blobs alone do not make a repository appear.
    upload(&reg, "only/blobs", b"x");
    let r = reg.req("GET", "/v2/_catalog", &[], b"");
    assert_eq!(
        r.json(),
        json!({"repositories": ["a/b/c", "p/q", "p/r", "z"]})
    );
    let r = reg.req("GET", "/v2/_catalog?n=2&last=a/b/c", &[], b"");
    assert_eq!(r.json(), json!({"repositories": ["p/q", "p/r"]}));
    assert_eq!(
        r.header("link"),
        Some(r#"</v2/_catalog?n=2&last=p/r>; rel="next""#)
    );
}

fn gc_removes_unreferenced_blobs_and_keeps_referenced_ones(f: &Fixture) {
    let reg = f.start();
    let m = image(&reg, "gc/app", b"kept layer");
    let r = put_manifest(&reg, "gc/app", "v1", &m);
    let md = r.header("docker-content-digest").unwrap().to_string();
    let orphan = upload(&reg, "gc/app", b"orphan layer");
    // The manifest that referenced this one is deleted: unreferenced too.
    let m2 = image(&reg, "gc/other", b"dropped layer");
    let r = put_manifest(&reg, "gc/other", "v1", &m2);
    let md2 = r.header("docker-content-digest").unwrap().to_string();
    assert_eq!(
        reg.req("DELETE", &format!("/v2/gc/other/manifests/{md2}"), &[], b"")
            .status,
        202
    );
    let dropped = m2["layers"][0]["digest"].as_str().unwrap().to_string();
    let before = f.blobs(&reg).len();
    // Within the (default) grace period nothing goes.
    let out = f.gc(&reg, &[]);
    assert!(out.contains("removed 0 blob(s)"), "{out}");
    assert!(out.contains(&format!("kept young blob {orphan}")), "{out}");
    assert_eq!(f.blobs(&reg).len(), before);
    // Last-modified times have a resolution of a second.
    std::thread::sleep(Duration::from_millis(1100));
    let out = f.gc(&reg, &["--grace", "0", "--dry-run"]);
    assert!(
        out.contains(&format!("would remove blob {orphan}")),
        "{out}"
    );
    assert_eq!(f.blobs(&reg).len(), before);
    let out = f.gc(&reg, &["--grace", "0"]);
    assert!(out.contains(&format!("removed blob {orphan}")), "{out}");
    assert!(out.contains(&format!("removed blob {dropped}")), "{out}");
    // The dropped manifest itself goes too (its config is the kept
    // image's as well); nothing else.
    assert!(out.contains(&format!("removed blob {md2}")), "{out}");
    assert!(out.contains("removed 3 blob(s)"), "{out}");
    let kept = f.blobs(&reg);
    assert_eq!(kept.len(), before - 3, "{out}\n{kept:?}");
    for d in [&orphan, &dropped, &md2] {
        assert!(!kept.contains(&format!("sha256/{}", &d[7..])), "{d}");
    }
    assert_eq!(
        reg.req("HEAD", &format!("/v2/gc/app/blobs/{orphan}"), &[], b"")
            .status,
        404
    );
    // What the tagged manifest references still pulls.
    let r = reg.req("GET", "/v2/gc/app/manifests/v1", &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("docker-content-digest"), Some(md.as_str()));
    for desc in [&m["config"], &m["layers"][0]] {
        let d = desc["digest"].as_str().unwrap();
        let r = reg.req("GET", &format!("/v2/gc/app/blobs/{d}"), &[], b"");
        assert_eq!(r.status, 200, "{d}");
        assert_eq!(digest_of(&r.body), d);
    }
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        /// Files under `--root`.
        mod fs {
            $(#[test] fn $name() { super::$name(&super::Fixture::fs()) })*
        }
        /// A Garage bucket, through `[storage.s3]`.
        mod s3 {
            $(#[test] fn $name() { super::$name(&super::Fixture::s3()) })*
        }
    };
}

conformance!(
    blob_round_trip_stored_once_across_repositories,
    range_reads,
    interrupted_uploads_never_become_blobs,
    uploads_resume_after_a_restart,
    abandoned_uploads_are_purged,
    manifests_put_get_delete,
    tags_list_with_pagination,
    referrers_are_listed_and_filtered,
    repositories_are_listed,
    gc_removes_unreferenced_blobs_and_keeps_referenced_ones,
);

// --- end to end, S3 only ---

/// `berth push` to one server and `berth pull` from another, both on the
/// same bucket; an upload started on one replica and finished on the other.
#[test]
fn s3_two_replicas_share_one_bucket_for_berth_push_and_pull() {
    let f = Fixture::s3();
    let a = f.start();
    let b = f.start();
    let s = Store::new();
    let tar = berth_integration::containers::rootfs_tar()
        .display()
        .to_string();
    let ra = a.image_ref("team/busybox:1");
    let id = s
        .ok(&["import", "--change", r#"CMD ["sh"]"#, &tar, &ra])
        .trim()
        .to_string();
    let out = s.ok(&["push", &ra]);
    assert!(out.contains(": Pushed"), "{out}");
    // The other replica already has every layer.
    let rb = b.image_ref("team/busybox:1");
    s.ok(&["tag", &ra, &rb]);
    let out = s.ok(&["push", &rb]);
    assert!(out.contains("Layer already exists"), "{out}");
    assert!(!out.contains(": Pushed"), "{out}");
    let s2 = Store::new();
    s2.ok(&["pull", &rb]);
    assert_eq!(s2.inspect(&rb)["Id"], id);
    assert_eq!(s2.ok(&["run", "--rm", &rb, "echo", "ok"]), "ok\n");
    let r = b.req("GET", "/v2/_catalog", &[], b"");
    assert_eq!(r.json(), json!({"repositories": ["team/busybox"]}));

    // Chunks of one upload through both replicas, then read from each.
    let data: Vec<u8> = (0..90_000u32).map(|i| (i % 251) as u8).collect();
    let d = digest_of(&data);
    let loc = start_upload(&a, "team/chunks");
    let r = a.req(
        "PATCH",
        &loc,
        &[("Content-Range", "0-29999")],
        &data[..30_000],
    );
    assert_eq!(r.status, 202);
    let r = b.req(
        "PATCH",
        &loc,
        &[("Content-Range", "30000-59999")],
        &data[30_000..60_000],
    );
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.header("range"), Some("0-59999"));
    let r = a.req("PUT", &format!("{loc}?digest={d}"), &[], &data[60_000..]);
    assert_eq!(r.status, 201, "{}", r.text());
    for reg in [&a, &b] {
        let r = reg.req("GET", &format!("/v2/team/chunks/blobs/{d}"), &[], b"");
        assert!(r.status == 200 && r.body == data, "{}", r.status);
    }
}

/// The digest of a chunked upload is checked against the bytes in the
/// bucket, not against what the server hashed as they came in: a chunk
/// replaced meanwhile (as a racing PATCH through another replica could)
/// does not become a blob under the digest of what was replaced.
#[test]
fn s3_commit_hashes_the_bytes_in_the_bucket() {
    let f = Fixture::s3();
    let Backend::S3 { garage, prefix } = &f.backend else {
        unreachable!()
    };
    let reg = f.start();
    let good = b"the bytes the server hashed".repeat(100);
    let evil = b"other bytes of the same size".repeat(100);
    let evil = &evil[..good.len()];
    let d = digest_of(&good);
    let loc = start_upload(&reg, "poison");
    let r = reg.req("PATCH", &loc, &[], &good);
    assert_eq!(r.status, 202);
    let id = loc.rsplit('/').next().unwrap();
    let chunk = format!("{prefix}/uploads/{id}/chunks/{:020}", 0);
    assert_eq!(garage.keys(&chunk), vec![chunk.clone()]);
    garage.s3_put(&chunk, evil).unwrap();
    let r = reg.req("PUT", &format!("{loc}?digest={d}"), &[], b"");
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(error_code(&r), "DIGEST_INVALID");
    assert!(r.text().contains(&digest_of(evil)), "{}", r.text());
    assert!(f.blobs(&reg).is_empty(), "{:?}", f.blobs(&reg));
    // The honest way still works.
    assert_eq!(upload(&reg, "poison", &good), d);
    assert_eq!(f.blobs(&reg), vec![format!("sha256/{}", &d[7..])]);
}

/// A larger blob than one S3 multipart part, in one request and in
/// chunks: the bytes come back whole.
#[test]
fn s3_blobs_larger_than_a_multipart_part_round_trip() {
    let f = Fixture::s3();
    let reg = f.start();
    let data: Vec<u8> = (0..(20u32 << 20))
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let d = upload(&reg, "big", &data);
    let r = reg.req("GET", &format!("/v2/big/blobs/{d}"), &[], b"");
    assert_eq!(r.status, 200);
    assert!(r.body == data, "other bytes came back");
    let r = reg.req(
        "GET",
        &format!("/v2/big/blobs/{d}"),
        &[("Range", "bytes=10485000-10485999")],
        b"",
    );
    assert_eq!(r.body, &data[10_485_000..10_486_000]);
    // Chunked, after a restart: hashed and copied at the end.
    let half = data.len() / 2;
    let mut reg = reg;
    let loc = start_upload(&reg, "big2");
    let r = reg.req("PATCH", &loc, &[], &data[..half]);
    assert_eq!(r.status, 202);
    reg.restart();
    let r = reg.req("PATCH", &loc, &[], &data[half..]);
    assert_eq!(r.status, 202);
    let r = reg.req("PUT", &format!("{loc}?digest={d}"), &[], b"");
    assert_eq!(r.status, 201, "{}", r.text());
    let r = reg.req("GET", &format!("/v2/big2/blobs/{d}"), &[], b"");
    assert!(r.body == data);
    assert_eq!(f.blobs(&reg).len(), 1);
}

/// A bucket that cannot be reached (or refuses the key) stops the server
/// at start, with the reason.
#[test]
fn s3_misconfigured_storage_fails_at_start() {
    let f = Fixture::s3();
    let Backend::S3 { garage, .. } = &f.backend else {
        unreachable!()
    };
    let dir = tempfile::tempdir().unwrap();
    let wrong_secret = garage
        .s3_table("x")
        .replace(&garage.secret, &"0".repeat(garage.secret.len()));
    let port = berth_integration::registry::free_port();
    let unreachable = garage
        .s3_table("x")
        .replace(&garage.endpoint, &format!("http://127.0.0.1:{port}"));
    for (what, conf) in [("wrong secret", wrong_secret), ("unreachable", unreachable)] {
        let p = dir.path().join("c.toml");
        std::fs::write(&p, conf).unwrap();
        let o = Command::new(berth_bin())
            .arg("--root")
            .arg(dir.path().join("root"))
            .args(["registry", "serve", "--addr", "127.0.0.1:1", "--config"])
            .arg(&p)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{what}: {err}");
        assert!(err.contains("S3"), "{what}: {err}");
    }
}
