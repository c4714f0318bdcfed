//! `berth registry serve`, third slice: blob DELETE, the referrers API, and
//! `berth registry gc` (mark and sweep with a grace period, abandoned
//! uploads), over raw HTTP, skopeo, and berth pull/run.

use berth_integration::berth_registry::BerthRegistry;
use berth_integration::engine::{berth_bin, busybox, Store};
use berth_integration::images::{self, sha256_hex};
use berth_integration::registry::{b64, HttpResponse};
use serde_json::{json, Value};
use std::process::Command;
use std::time::{Duration, SystemTime};

fn digest_of(data: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(data))
}

fn error_code(r: &HttpResponse) -> String {
    r.json()["errors"][0]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// POST + PUT of `data` to `repo` with `headers`; asserts 201; its digest.
fn upload_with(reg: &BerthRegistry, repo: &str, data: &[u8], headers: &[(&str, &str)]) -> String {
    let d = digest_of(data);
    let r = reg.req("POST", &format!("/v2/{repo}/blobs/uploads/"), headers, b"");
    assert_eq!(r.status, 202, "{}", r.text());
    let loc = r.header("location").unwrap().to_string();
    let r = reg.req("PUT", &format!("{loc}?digest={d}"), headers, data);
    assert_eq!(r.status, 201, "{}", r.text());
    d
}

fn upload(reg: &BerthRegistry, repo: &str, data: &[u8]) -> String {
    upload_with(reg, repo, data, &[])
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// PUTs `manifest` to `repo` at `reference`; the response (asserted 201).
fn put_manifest(
    reg: &BerthRegistry,
    repo: &str,
    reference: &str,
    manifest: &Value,
) -> HttpResponse {
    let body = serde_json::to_vec(manifest).unwrap();
    let r = reg.req(
        "PUT",
        &format!("/v2/{repo}/manifests/{reference}"),
        &[("Content-Type", OCI_MANIFEST)],
        &body,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    r
}

fn berth_gc(reg: &BerthRegistry, args: &[&str]) -> String {
    let o = Command::new(berth_bin())
        .arg("--root")
        .arg(reg.root())
        .args(["registry", "gc"])
        .args(args)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "berth registry gc {args:?}: {out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// Sets the mtime of `path` to an hour ago.
fn age(path: &std::path::Path) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
}

fn blob_file(reg: &BerthRegistry, digest: &str) -> std::path::PathBuf {
    let hex = digest.strip_prefix("sha256:").unwrap();
    reg.root().join("blobs/sha256").join(hex)
}

#[test]
fn blob_delete_unlinks_from_the_repository_only() {
    let reg = BerthRegistry::start();
    let d = upload(&reg, "del/a", b"to be deleted");
    upload(&reg, "del/b", b"to be deleted");
    let r = reg.req("DELETE", &format!("/v2/del/a/blobs/{d}"), &[], b"");
    assert_eq!(r.status, 202, "{}", r.text());
    let r = reg.req("GET", &format!("/v2/del/a/blobs/{d}"), &[], b"");
    assert_eq!(r.status, 404);
    assert_eq!(error_code(&r), "BLOB_UNKNOWN");
    // Still in the other repository.
    let r = reg.req("GET", &format!("/v2/del/b/blobs/{d}"), &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"to be deleted");
    let r = reg.req("DELETE", &format!("/v2/del/a/blobs/{d}"), &[], b"");
    assert_eq!(r.status, 404);
    assert_eq!(error_code(&r), "BLOB_UNKNOWN");
    let r = reg.req("DELETE", "/v2/del/a/blobs/sha256:zz", &[], b"");
    assert_eq!(r.status, 400);
    assert_eq!(error_code(&r), "DIGEST_INVALID");
}

#[test]
fn blob_delete_needs_the_delete_permission() {
    let line = |u: &str, p: &str| {
        let o = Command::new("htpasswd")
            .args(["-nbB", u, p])
            .output()
            .expect("run htpasswd (apache2-utils)");
        format!("{}\n", String::from_utf8(o.stdout).unwrap().trim())
    };
    let pw = line("alice", "a-pw") + &line("bob", "b-pw");
    let config = r#"
auth = "htpasswd"
htpasswd = "htpasswd"
[[access]]
repository = "*"
user = "alice"
actions = ["pull", "push", "delete"]
[[access]]
repository = "*"
user = "bob"
actions = ["pull", "push"]
"#;
    let reg = BerthRegistry::start_with_config(Some(config), &[("htpasswd", pw.as_bytes())]);
    let alice = format!("Basic {}", b64(b"alice:a-pw"));
    let bob = format!("Basic {}", b64(b"bob:b-pw"));
    let d = upload_with(&reg, "p/x", b"guarded", &[("Authorization", &bob)]);
    let path = format!("/v2/p/x/blobs/{d}");
    let r = reg.req("DELETE", &path, &[("Authorization", &bob)], b"");
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(error_code(&r), "DENIED");
    let r = reg.req("DELETE", &path, &[], b"");
    assert_eq!(r.status, 401);
    let r = reg.req("GET", &path, &[("Authorization", &bob)], b"");
    assert_eq!(r.status, 200);
    let r = reg.req("DELETE", &path, &[("Authorization", &alice)], b"");
    assert_eq!(r.status, 202, "{}", r.text());
    let r = reg.req("GET", &path, &[("Authorization", &bob)], b"");
    assert_eq!(r.status, 404);
}

/// An artifact manifest with `subject`: blobs uploaded first.
fn artifact(reg: &BerthRegistry, repo: &str, subject: &Value, kind: &str, data: &[u8]) -> Value {
    let empty = upload(reg, repo, b"{}");
    let layer = upload(reg, repo, data);
    json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": kind,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
        "layers": [{"mediaType": "application/octet-stream", "digest": layer, "size": data.len()}],
        "subject": subject,
        "annotations": {"org.example.kind": kind},
    })
}

#[test]
fn referrers_are_recorded_listed_filtered_and_dropped_with_their_manifest() {
    let reg = BerthRegistry::start();
    let layout = busybox();
    let dest = format!("docker://{}", reg.image_ref("ref/app:1"));
    let o = images::skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &layout.reference("latest"),
        &dest,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let subject = layout.descriptor("latest");
    let sd = subject["digest"].as_str().unwrap().to_string();
    let subj = json!({"mediaType": OCI_MANIFEST, "digest": sd, "size": subject["size"]});

    let sig = artifact(
        &reg,
        "ref/app",
        &subj,
        "application/vnd.example.sig",
        b"sig",
    );
    let r = put_manifest(&reg, "ref/app", "sig", &sig);
    assert_eq!(r.header("oci-subject"), Some(sd.as_str()));
    let sig_d = r.header("docker-content-digest").unwrap().to_string();
    // No artifactType: the config's media type stands in.
    let cfg = upload(&reg, "ref/app", b"{\"sbom\":true}");
    let layer = upload(&reg, "ref/app", b"sbom");
    let sbom = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.example.sbom.config", "digest": cfg, "size": 13},
        "layers": [{"mediaType": "application/octet-stream", "digest": layer, "size": 4}],
        "subject": subj,
    });
    let r = put_manifest(
        &reg,
        "ref/app",
        &digest_of(&serde_json::to_vec(&sbom).unwrap()),
        &sbom,
    );
    assert_eq!(r.header("oci-subject"), Some(sd.as_str()));
    let sbom_d = r.header("docker-content-digest").unwrap().to_string();
    // A plain image manifest has no OCI-Subject.
    let plain = reg.req("GET", "/v2/ref/app/manifests/1", &[], b"");
    let r = reg.req(
        "PUT",
        "/v2/ref/app/manifests/again",
        &[("Content-Type", OCI_MANIFEST)],
        &plain.body,
    );
    assert_eq!(r.status, 201);
    assert_eq!(r.header("oci-subject"), None);

    let r = reg.req("GET", &format!("/v2/ref/app/referrers/{sd}"), &[], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some(OCI_INDEX));
    assert_eq!(r.header("oci-filters-applied"), None);
    let idx = r.json();
    assert_eq!(idx["schemaVersion"], 2);
    assert_eq!(idx["mediaType"], OCI_INDEX);
    let mut got: Vec<Value> = idx["manifests"].as_array().unwrap().clone();
    got.sort_by_key(|m| m["digest"].as_str().unwrap().to_string());
    let sig_body = serde_json::to_vec(&sig).unwrap();
    let mut want = vec![
        json!({"mediaType": OCI_MANIFEST, "digest": sig_d, "size": sig_body.len(),
               "artifactType": "application/vnd.example.sig",
               "annotations": {"org.example.kind": "application/vnd.example.sig"}}),
        json!({"mediaType": OCI_MANIFEST, "digest": sbom_d,
               "size": serde_json::to_vec(&sbom).unwrap().len(),
               "artifactType": "application/vnd.example.sbom.config"}),
    ];
    want.sort_by_key(|m| m["digest"].as_str().unwrap().to_string());
    assert_eq!(got, want);

    let r = reg.req(
        "GET",
        &format!("/v2/ref/app/referrers/{sd}?artifactType=application/vnd.example.sig"),
        &[],
        b"",
    );
    assert_eq!(r.header("oci-filters-applied"), Some("artifactType"));
    let m = r.json()["manifests"].clone();
    assert_eq!(m.as_array().unwrap().len(), 1, "{m}");
    assert_eq!(m[0]["digest"], sig_d);

    // None: an empty index.
    let none = digest_of(b"no referrers");
    let r = reg.req("GET", &format!("/v2/ref/app/referrers/{none}"), &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["manifests"], json!([]));

    // A subject that is not stored is fine.
    let absent = json!({"mediaType": OCI_MANIFEST, "digest": digest_of(b"absent"), "size": 6});
    let a = artifact(
        &reg,
        "ref/app",
        &absent,
        "application/vnd.example.sig",
        b"s2",
    );
    let r = put_manifest(&reg, "ref/app", "dangling", &a);
    let a_d = r.header("docker-content-digest").unwrap().to_string();
    let path = format!("/v2/ref/app/referrers/{}", digest_of(b"absent"));
    let r = reg.req("GET", &path, &[], b"");
    assert_eq!(r.json()["manifests"][0]["digest"], a_d);

    // Deleting the referring manifest drops it.
    let r = reg.req(
        "DELETE",
        &format!("/v2/ref/app/manifests/{sig_d}"),
        &[],
        b"",
    );
    assert_eq!(r.status, 202);
    let r = reg.req("GET", &format!("/v2/ref/app/referrers/{sd}"), &[], b"");
    let m = r.json()["manifests"].clone();
    assert_eq!(m.as_array().unwrap().len(), 1, "{m}");
    assert_eq!(m[0]["digest"], sbom_d);
    // Another repository sees none of them.
    let r = reg.req("GET", &format!("/v2/other/referrers/{sd}"), &[], b"");
    assert_eq!(r.json()["manifests"], json!([]));
}

#[test]
fn gc_sweeps_exactly_the_unreferenced_blobs_and_the_rest_still_pulls_and_runs() {
    let reg = BerthRegistry::start();
    let keep = reg.image_ref("gc/keep:1");
    let o = images::skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &busybox().reference("latest"),
        &format!("docker://{keep}"),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // A second image sharing nothing with the first.
    let cfg_bytes: &[u8] =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let layer_bytes: &[u8] = b"a layer nobody needs after the delete";
    let cfg = upload(&reg, "gc/drop", cfg_bytes);
    let layer = upload(&reg, "gc/drop", layer_bytes);
    let m = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg, "size": cfg_bytes.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": layer_bytes.len()}],
    });
    let r = put_manifest(&reg, "gc/drop", "1", &m);
    let md = r.header("docker-content-digest").unwrap().to_string();
    let r = reg.req("DELETE", "/v2/gc/drop/manifests/1", &[], b"");
    assert_eq!(r.status, 202);
    let r = reg.req("DELETE", &format!("/v2/gc/drop/manifests/{md}"), &[], b"");
    assert_eq!(r.status, 202);
    let before = reg.blob_files();
    // Everything old, but for one orphan just uploaded.
    for f in &before {
        age(&reg.root().join("blobs").join(f));
    }
    let young = upload(&reg, "gc/drop", b"a young orphan");
    let mut gone = vec![cfg.clone(), layer.clone(), md.clone()];
    gone.sort();

    let out = berth_gc(&reg, &["--dry-run"]);
    let listed: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("would remove blob "))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(listed, gone, "{out}");
    assert!(out.contains(&format!("kept young blob {young}")), "{out}");
    let mut with_young = before.clone();
    with_young.push(format!("sha256/{}", young.strip_prefix("sha256:").unwrap()));
    with_young.sort();
    assert_eq!(reg.blob_files(), with_young, "dry run removed something");

    let out = berth_gc(&reg, &[]);
    let removed: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("removed blob "))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(removed, gone, "{out}");
    let m_size = serde_json::to_vec(&m).unwrap().len();
    let freed = cfg_bytes.len() + layer_bytes.len() + m_size;
    assert!(
        out.contains(&format!("removed 3 blob(s), {freed} bytes")),
        "{out}"
    );
    for d in &gone {
        assert!(!blob_file(&reg, d).exists(), "{d} still stored");
        let r = reg.req("HEAD", &format!("/v2/gc/drop/blobs/{d}"), &[], b"");
        assert_eq!(r.status, 404, "{d}");
    }
    assert!(blob_file(&reg, &young).exists(), "young orphan removed");
    // With no grace the young orphan goes too.
    let out = berth_gc(&reg, &["--grace", "0"]);
    assert!(out.contains(&format!("removed blob {young}")), "{out}");
    assert!(out.contains("removed 1 blob(s)"), "{out}");
    // The remaining image pulls and runs.
    let s = Store::new();
    s.ok(&["pull", &keep]);
    assert_eq!(s.ok(&["run", "--rm", &keep, "echo", "ok"]), "ok\n");
}

/// Starts an upload with some bytes in it: its id.
fn start_upload(reg: &BerthRegistry, repo: &str) -> (String, String) {
    let r = reg.req("POST", &format!("/v2/{repo}/blobs/uploads/"), &[], b"");
    assert_eq!(r.status, 202, "{}", r.text());
    let loc = r.header("location").unwrap().to_string();
    let r = reg.req(
        "PATCH",
        &loc,
        &[("Content-Type", "application/octet-stream")],
        b"partial",
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let id = loc
        .rsplit('/')
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_string();
    (id, loc)
}

#[test]
fn gc_purges_abandoned_uploads_and_keeps_recent_ones() {
    let reg = BerthRegistry::start();
    let (old, old_loc) = start_upload(&reg, "up/a");
    let (fresh, fresh_loc) = start_upload(&reg, "up/a");
    let dir = reg.root().join("uploads").join(&old);
    age(&dir.join("data"));
    let out = berth_gc(&reg, &["--upload-max-age", "600", "--dry-run"]);
    assert!(out.contains(&format!("would remove upload {old}")), "{out}");
    assert!(dir.exists());
    let out = berth_gc(&reg, &["--upload-max-age", "600"]);
    assert!(out.contains(&format!("removed upload {old}")), "{out}");
    assert!(!out.contains(&fresh), "{out}");
    assert!(!dir.exists());
    assert_eq!(reg.req("GET", &old_loc, &[], b"").status, 404);
    assert_eq!(reg.req("GET", &fresh_loc, &[], b"").status, 204);
}

#[test]
fn the_server_purges_uploads_idle_past_upload_max_age() {
    let reg = BerthRegistry::start_with_config(Some("upload_max_age = 2\n"), &[]);
    let (_, loc) = start_upload(&reg, "up/b");
    assert_eq!(reg.req("GET", &loc, &[], b"").status, 204);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let st = reg.req("GET", &loc, &[], b"").status;
        if st == 404 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "upload not purged: {st}\n{}",
            reg.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(
        reg.log().contains("purged 1 abandoned upload"),
        "{}",
        reg.log()
    );
}
