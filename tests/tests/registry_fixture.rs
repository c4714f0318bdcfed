//! Proves the shared image-test fixtures: a real registry (anonymous,
//! htpasswd, bearer token) on loopback and images made by umoci/skopeo,
//! checked from the outside with skopeo and raw HTTP.

use berth_integration::images::{self, Format};
use berth_integration::pid_alive;
use berth_integration::registry::{self, Registry};
use serde_json::Value;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const OCI_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const DOCKER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

fn layer_types(m: &Value) -> Vec<String> {
    m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["mediaType"].as_str().unwrap().to_string())
        .collect()
}

fn anonymous_inspect_fails(reg: &Registry, repo_tag: &str) -> String {
    let r = format!("docker://{}", reg.image_ref(repo_tag));
    let out = images::skopeo(&["inspect", "--raw", "--tls-verify=false", &r]);
    assert!(!out.status.success(), "anonymous inspect of {r} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn plain_registry_oci_gzip() {
    let reg = Registry::start();
    assert_eq!(reg.get("/v2/", &[]).status, 200);
    assert!(reg.image_ref("bb:1").starts_with("127.0.0.1:"));
    assert_eq!(reg.url(), format!("http://{}", reg.addr));
    let l = images::busybox_oci_layout();
    assert_eq!(l.layers("latest").len(), 1);
    assert!(l
        .layer_entries("latest", 0)
        .iter()
        .any(|e| e.trim_start_matches("./") == "bin/busybox"));
    let digest = images::push(&l, "latest", &reg, "busybox:latest");
    assert!(digest.starts_with("sha256:"), "{digest}");

    let m = images::inspect_raw(&reg, "busybox:latest");
    assert_eq!(m["schemaVersion"], 2);
    assert_eq!(m["config"]["mediaType"], OCI_CONFIG);
    assert_eq!(layer_types(&m), vec![OCI_GZIP]);
    let i = images::inspect(&reg, "busybox:latest", None);
    assert_eq!(i["Digest"], digest.as_str());
    assert_eq!(i["Architecture"], images::host_arch());
    assert_eq!(i["Os"], "linux");
    assert_eq!(i["Env"][0], images::PATH_ENV);
    // The config as stored: Cmd sh.
    let pulled = images::pull_to_layout(&reg, "busybox:latest", false);
    assert_eq!(pulled.config("latest")["config"]["Cmd"][0], "sh");
    // Raw manifest GET by digest (what berth's client will do).
    let r = reg.get(
        &format!("/v2/busybox/manifests/{digest}"),
        &[("Accept", OCI_MANIFEST)],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("Docker-Content-Digest"), Some(digest.as_str()));
}

#[test]
fn zstd_push() {
    let reg = Registry::start();
    let l = images::busybox_oci_layout();
    images::push(&l, "latest", &reg, "bb:gzip");
    // Pushed after the gzip blob: must still be recompressed.
    images::push_zstd(&l, "latest", &reg, "bb:zstd");
    let m = images::inspect_raw(&reg, "bb:zstd");
    assert_eq!(layer_types(&m), vec![OCI_ZSTD]);
    let pulled = images::pull_to_layout(&reg, "bb:zstd", false);
    let layer = pulled.layers("latest")[0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let blob = std::fs::read(pulled.blob_path(&layer)).unwrap();
    assert_eq!(&blob[..4], &[0x28, 0xb5, 0x2f, 0xfd], "zstd magic");
}

#[test]
fn docker_v2s2_push() {
    let reg = Registry::start();
    let l = images::busybox_oci_layout();
    let d = images::push_v2s2(&l, "latest", &reg, "bb:v2s2");
    let m = images::inspect_raw(&reg, "bb:v2s2");
    assert_eq!(m["mediaType"], DOCKER_MANIFEST);
    assert_eq!(m["config"]["mediaType"], DOCKER_CONFIG);
    assert_eq!(layer_types(&m), vec![DOCKER_GZIP]);
    let r = reg.get("/v2/bb/manifests/v2s2", &[("Accept", DOCKER_MANIFEST)]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some(DOCKER_MANIFEST));
    assert_eq!(r.header("Docker-Content-Digest"), Some(d.as_str()));
}

#[test]
fn multilayer_whiteouts_survive_the_registry() {
    let reg = Registry::start();
    let l = images::multilayer_with_whiteouts();
    assert_eq!(l.layers("base").len(), 1);
    assert_eq!(l.layers("layer2").len(), 2);
    images::push(&l, "latest", &reg, "wh:latest");
    let m = images::inspect_raw(&reg, "wh:latest");
    assert_eq!(layer_types(&m), vec![OCI_GZIP; 3]);
    let pulled = images::pull_to_layout(&reg, "wh:latest", false);
    let l3 = pulled.layer_entries("latest", 2);
    assert_eq!(
        l3,
        vec![
            "data/",
            "data/.wh.a",
            "opt/",
            "opt/keep/",
            "opt/keep/.wh..wh..opq",
            "opt/keep/y"
        ]
    );
    // Also as Docker v2s2.
    images::push_v2s2(&l, "latest", &reg, "wh:v2s2");
    let m = images::inspect_raw(&reg, "wh:v2s2");
    assert_eq!(layer_types(&m), vec![DOCKER_GZIP; 3]);
}

fn check_index(reg: &Registry, repo_tag: &str, index_type: &str, manifest_type: &str) {
    let idx = images::inspect_raw(reg, repo_tag);
    assert_eq!(idx["mediaType"], index_type);
    let ms = idx["manifests"].as_array().unwrap();
    let mut plats: Vec<String> = ms
        .iter()
        .map(|m| {
            assert_eq!(m["mediaType"], manifest_type);
            format!(
                "{}/{}",
                m["platform"]["os"].as_str().unwrap(),
                m["platform"]["architecture"].as_str().unwrap()
            )
        })
        .collect();
    plats.sort();
    assert_eq!(plats, vec!["linux/amd64", "linux/arm64"]);
    for arch in ["amd64", "arm64"] {
        let i = images::inspect(reg, repo_tag, Some(arch));
        assert_eq!(i["Architecture"], arch);
        assert_eq!(i["Layers"].as_array().unwrap().len(), 1);
    }
}

#[test]
fn multiplatform_index_oci_and_docker_list() {
    let reg = Registry::start();
    let l = images::multiplatform_layout();
    assert_eq!(l.manifest("index")["mediaType"], OCI_INDEX);
    let d = images::push_index(&l, "index", &reg, "multi:oci", Format::Oci);
    check_index(&reg, "multi:oci", OCI_INDEX, OCI_MANIFEST);
    assert_eq!(
        reg.get("/v2/multi/manifests/oci", &[("Accept", OCI_INDEX)])
            .header("Docker-Content-Digest"),
        Some(d.as_str())
    );
    images::push_index(&l, "index", &reg, "multi:v2s2", Format::DockerV2s2);
    check_index(&reg, "multi:v2s2", DOCKER_LIST, DOCKER_MANIFEST);
    images::push_index(&l, "index", &reg, "multi:zstd", Format::OciZstd);
    check_index(&reg, "multi:zstd", OCI_INDEX, OCI_MANIFEST);
    let idx = images::inspect_raw(&reg, "multi:zstd");
    for c in idx["manifests"].as_array().unwrap() {
        let m = images::inspect_raw(&reg, &format!("multi@{}", c["digest"].as_str().unwrap()));
        assert_eq!(layer_types(&m), vec![OCI_ZSTD]);
    }
}

#[test]
fn htpasswd_registry() {
    let reg = Registry::start_htpasswd("alice", "s3cret");
    let r = reg.get("/v2/", &[]);
    assert_eq!(r.status, 401);
    assert!(r.header("WWW-Authenticate").unwrap().starts_with("Basic "));
    let basic = format!("Basic {}", registry::b64(b"alice:s3cret"));
    assert_eq!(reg.get("/v2/", &[("Authorization", &basic)]).status, 200);

    let l = images::busybox_oci_layout();
    images::push(&l, "latest", &reg, "priv/bb:1");
    let m = images::inspect_raw(&reg, "priv/bb:1");
    assert_eq!(layer_types(&m), vec![OCI_GZIP]);
    anonymous_inspect_fails(&reg, "priv/bb:1");
    let out = images::skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--creds",
        "alice:wrong",
        &format!("docker://{}", reg.image_ref("priv/bb:1")),
    ]);
    assert!(!out.status.success());
}

#[test]
fn token_registry_like_docker_hub() {
    let reg = Registry::start_token("bob", "hunter2");
    let realm = reg.token_realm().unwrap();
    let r = reg.get("/v2/", &[]);
    assert_eq!(r.status, 401);
    let chal = r.header("WWW-Authenticate").unwrap().to_string();
    assert_eq!(
        chal,
        format!(
            "Bearer realm=\"{realm}\",service=\"{}\"",
            registry::TOKEN_SERVICE
        )
    );

    let l = images::busybox_oci_layout();
    images::push(&l, "latest", &reg, "library/bb:1");
    let m = images::inspect_raw(&reg, "library/bb:1");
    assert_eq!(layer_types(&m), vec![OCI_GZIP]);
    let reqs = reg.token_requests();
    assert!(
        reqs.iter().any(|t| t.user.as_deref() == Some("bob")
            && t.service.as_deref() == Some(registry::TOKEN_SERVICE)
            && t.scopes
                .iter()
                .any(|s| s == "repository:library/bb:pull,push")),
        "{reqs:?}"
    );

    // Anonymous: a token with no access, and the registry refuses it.
    let err = anonymous_inspect_fails(&reg, "library/bb:1");
    assert!(
        err.contains("unauthorized") || err.contains("denied"),
        "{err}"
    );
    // Wrong password: the token server itself says 401.
    let out = images::skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--creds",
        "bob:nope",
        &format!("docker://{}", reg.image_ref("library/bb:1")),
    ]);
    assert!(!out.status.success());
    assert!(reg.token_requests().iter().any(|t| t.status == 401));

    // The flow by hand: challenge scope -> GET realm with Basic -> Bearer.
    let r = reg.get("/v2/library/bb/manifests/1", &[("Accept", OCI_MANIFEST)]);
    assert_eq!(r.status, 401);
    let chal = r.header("WWW-Authenticate").unwrap();
    assert!(
        chal.contains("scope=\"repository:library/bb:pull\""),
        "{chal}"
    );
    let realm_addr = realm
        .trim_start_matches("http://")
        .trim_end_matches("/token");
    let basic = format!("Basic {}", registry::b64(b"bob:hunter2"));
    let t = registry::http_request(
        realm_addr,
        "GET",
        &format!(
            "/token?service={}&scope=repository%3Alibrary%2Fbb%3Apull",
            registry::TOKEN_SERVICE
        ),
        &[("Authorization", &basic)],
        b"",
    )
    .unwrap();
    assert_eq!(t.status, 200, "{}", t.text());
    let tok = t.json()["token"].as_str().unwrap().to_string();
    let claims: Value =
        serde_json::from_slice(&registry::b64_decode(tok.split('.').nth(1).unwrap()).unwrap())
            .unwrap();
    assert_eq!(claims["access"][0]["name"], "library/bb");
    assert_eq!(claims["access"][0]["actions"][0], "pull");
    let bearer = format!("Bearer {tok}");
    let r = reg.get(
        "/v2/library/bb/manifests/1",
        &[("Accept", OCI_MANIFEST), ("Authorization", &bearer)],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // A pull-only token cannot start an upload.
    let r = registry::http_request(
        &reg.addr,
        "POST",
        "/v2/library/bb/blobs/uploads/",
        &[("Authorization", &bearer)],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 401);
    assert!(r
        .header("WWW-Authenticate")
        .unwrap()
        .contains("insufficient_scope"));

    // OAuth2 password grant (POST) works too.
    let t = registry::http_request(
        realm_addr,
        "POST",
        "/token",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        format!(
            "grant_type=password&username=bob&password=hunter2&service={}&scope=repository:library/bb:pull&client_id=berth",
            registry::TOKEN_SERVICE
        )
        .as_bytes(),
    )
    .unwrap();
    assert_eq!(t.status, 200, "{}", t.text());
    let tok = t.json()["access_token"].as_str().unwrap().to_string();
    let r = reg.get(
        "/v2/library/bb/manifests/1",
        &[
            ("Accept", OCI_MANIFEST),
            ("Authorization", &format!("Bearer {tok}")),
        ],
    );
    assert_eq!(r.status, 200);
}

#[test]
fn token_registry_public_pull() {
    let reg = Registry::start_token_public_pull("carol", "pw");
    let l = images::busybox_oci_layout();
    images::push(&l, "latest", &reg, "pub/bb:1");
    // Anonymous pull works…
    let r = format!("docker://{}", reg.image_ref("pub/bb:1"));
    let out = images::skopeo(&["inspect", "--raw", "--tls-verify=false", &r]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // …anonymous push does not.
    let out = images::skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &l.reference("latest"),
        &format!("docker://{}", reg.image_ref("pub/bb:2")),
    ]);
    assert!(!out.status.success());
}

#[test]
fn registry_dies_and_cleans_up_on_drop_and_panic() {
    let reg = Registry::start_token("u", "p");
    let (pid, dir) = (reg.pid() as i32, reg.storage_dir());
    let realm = reg.token_realm().unwrap();
    assert!(pid_alive(pid) && dir.exists());
    drop(reg);
    assert!(!pid_alive(pid), "registry {pid} still alive");
    assert!(!dir.exists());
    let realm_addr = realm
        .trim_start_matches("http://")
        .trim_end_matches("/token");
    assert!(std::net::TcpStream::connect(realm_addr).is_err());

    let seen = std::sync::Mutex::new(None);
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let reg = Registry::start();
        *seen.lock().unwrap() = Some((reg.pid() as i32, reg.storage_dir()));
        panic!("test failure inside a registry test");
    }));
    assert!(res.is_err());
    let (pid, dir) = seen.lock().unwrap().take().unwrap();
    assert!(!pid_alive(pid), "registry {pid} survived a panic");
    assert!(!dir.exists());
}

/// Slow (debootstrap on first use, then cached): run with `--ignored`.
#[test]
#[ignore]
fn debian_minbase_three_layers() {
    let l = images::debian_minbase_layout();
    assert_eq!(l.layers("latest").len(), 3);
    assert!(l
        .layer_entries("latest", 0)
        .iter()
        .any(|e| e == "usr/bin/bash"));
    let reg = Registry::start();
    images::push(&l, "latest", &reg, "debian:bookworm");
    let m = images::inspect_raw(&reg, "debian:bookworm");
    assert_eq!(layer_types(&m), vec![OCI_GZIP; 3]);
}
