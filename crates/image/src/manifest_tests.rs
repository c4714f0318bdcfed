use super::*;
use serde_json::json;

fn d(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

fn docker_manifest() -> serde_json::Value {
    json!({
        "schemaVersion": 2,
        "mediaType": mt::DOCKER_MANIFEST,
        "config": {"mediaType": mt::DOCKER_CONFIG, "size": 1457, "digest": d('a')},
        "layers": [
            {"mediaType": mt::DOCKER_LAYER_GZIP, "size": 2_000_000, "digest": d('b')},
            {"mediaType": mt::DOCKER_FOREIGN_LAYER, "size": 5, "digest": d('c'),
             "urls": ["https://example.com/layer"]}
        ]
    })
}

fn entry(digest: char, platform: serde_json::Value) -> serde_json::Value {
    json!({"mediaType": mt::OCI_MANIFEST, "size": 500, "digest": d(digest), "platform": platform})
}

fn index(entries: Vec<serde_json::Value>) -> ImageIndex {
    let doc = json!({"schemaVersion": 2, "mediaType": mt::OCI_INDEX, "manifests": entries});
    match Manifest::parse(doc.to_string().as_bytes(), None, "test").unwrap() {
        Manifest::Index(i) => i,
        other => panic!("not an index: {other:?}"),
    }
}

#[test]
fn docker_schema2_parses_into_oci_types() {
    let bytes = docker_manifest().to_string();
    let m = Manifest::parse(bytes.as_bytes(), Some(mt::DOCKER_MANIFEST), "busybox").unwrap();
    assert_eq!(m.media_type(), mt::DOCKER_MANIFEST);
    let Manifest::Image(m) = m else { panic!() };
    assert_eq!(m.layers().len(), 2);
    assert_eq!(m.config().size(), 1457);
    assert_eq!(descriptor_digest(m.config()).unwrap().to_string(), d('a'));
    assert_eq!(
        m.layers()[1].urls().as_ref().unwrap()[0],
        "https://example.com/layer"
    );
    // Content type with parameters, or none at all: the document decides.
    let with_params = format!("{}; charset=utf-8", mt::DOCKER_MANIFEST);
    assert!(matches!(
        Manifest::parse(bytes.as_bytes(), Some(&with_params), "x").unwrap(),
        Manifest::Image(_)
    ));
    let m = Manifest::parse(bytes.as_bytes(), None, "x").unwrap();
    assert_eq!(m.media_type(), mt::DOCKER_MANIFEST);
    let m = Manifest::parse(bytes.as_bytes(), Some("application/json"), "x").unwrap();
    assert_eq!(m.media_type(), mt::DOCKER_MANIFEST);
}

#[test]
fn oci_manifest_without_media_type_field() {
    let doc = json!({
        "schemaVersion": 2,
        "config": {"mediaType": mt::OCI_CONFIG, "size": 2, "digest": d('a')},
        "layers": []
    });
    let bytes = doc.to_string();
    let m = Manifest::parse(bytes.as_bytes(), Some(mt::OCI_MANIFEST), "x").unwrap();
    assert_eq!(m.media_type(), mt::OCI_MANIFEST);
    // Neither content type nor mediaType: the shape decides.
    let m = Manifest::parse(bytes.as_bytes(), None, "x").unwrap();
    assert!(matches!(m, Manifest::Image(_)));
    assert_eq!(m.media_type(), mt::OCI_MANIFEST);
}

#[test]
fn index_and_manifest_list() {
    let doc = json!({
        "schemaVersion": 2,
        "mediaType": mt::DOCKER_MANIFEST_LIST,
        "manifests": [entry('1', json!({"architecture": "amd64", "os": "linux"}))]
    });
    let m = Manifest::parse(
        doc.to_string().as_bytes(),
        Some(mt::DOCKER_MANIFEST_LIST),
        "x",
    )
    .unwrap();
    assert_eq!(m.media_type(), mt::DOCKER_MANIFEST_LIST);
    assert!(matches!(m, Manifest::Index(_)));
}

#[test]
fn schema1_is_refused_clearly() {
    let doc = json!({"schemaVersion": 1, "name": "library/busybox", "tag": "latest",
                     "fsLayers": [{"blobSum": d('a')}]});
    for ct in [
        Some(mt::DOCKER_SCHEMA1_SIGNED),
        Some(mt::DOCKER_SCHEMA1),
        Some("application/json"),
        None,
    ] {
        let e =
            Manifest::parse(doc.to_string().as_bytes(), ct, "docker.io/library/old:1").unwrap_err();
        assert_eq!(
            e.to_string(),
            "unsupported manifest schema 1 for docker.io/library/old:1: re-push the image with a newer client"
        );
    }
}

#[test]
fn bad_documents() {
    let bytes = docker_manifest().to_string();
    let e =
        Manifest::parse(bytes.as_bytes(), Some("application/vnd.example+json"), "r").unwrap_err();
    assert!(matches!(e, Error::UnsupportedMediaType { .. }), "{e}");
    assert!(e.to_string().contains("application/vnd.example+json"));
    // Served as an index but is a manifest.
    let e = Manifest::parse(bytes.as_bytes(), Some(mt::OCI_INDEX), "r").unwrap_err();
    assert!(e.to_string().contains("does not match mediaType"), "{e}");
    let e = Manifest::parse(b"not json", None, "r").unwrap_err();
    assert!(
        e.to_string()
            .starts_with("invalid manifest for r: not a JSON object"),
        "{e}"
    );
    let e = Manifest::parse(b"{}", None, "r").unwrap_err();
    assert!(
        e.to_string()
            .contains("neither an image manifest nor an index"),
        "{e}"
    );
    let mut doc = docker_manifest();
    doc["layers"][0]["digest"] = json!("sha256:1234");
    let e = Manifest::parse(doc.to_string().as_bytes(), None, "r").unwrap_err();
    assert!(e.to_string().starts_with("invalid manifest for r"), "{e}");
    let mut doc = docker_manifest();
    doc["layers"][0]["digest"] = json!(format!("md5:{}", "a".repeat(32)));
    let e = Manifest::parse(doc.to_string().as_bytes(), None, "r").unwrap_err();
    assert!(
        e.to_string().contains("unsupported digest algorithm"),
        "{e}"
    );
    let mut doc = docker_manifest();
    doc["schemaVersion"] = json!(3);
    assert!(Manifest::parse(doc.to_string().as_bytes(), None, "r").is_err());
    let mut doc = docker_manifest();
    doc["manifests"] = json!([]);
    assert!(Manifest::parse(doc.to_string().as_bytes(), None, "r").is_err());
}

#[test]
fn size_caps() {
    let mut big = docker_manifest().to_string().into_bytes();
    big.resize(MAX_MANIFEST as usize + 1, b' ');
    let e = Manifest::parse(&big, None, "r").unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "manifest for r is {} bytes, more than the 4194304-byte limit",
            MAX_MANIFEST + 1
        )
    );
    let mut big = b"{}".to_vec();
    big.resize(MAX_CONFIG as usize + 1, b' ');
    let e = parse_config(&big).unwrap_err();
    assert!(
        e.to_string().contains("more than the 8388608-byte limit"),
        "{e}"
    );
}

#[test]
fn docker_config_with_go_quirks() {
    let doc = json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "2023-05-19T20:19:23.123Z",
        "docker_version": "20.10.23",
        "container_config": {"Cmd": null},
        "config": {
            "Env": ["PATH=/bin"], "Cmd": ["sh"], "Entrypoint": null,
            "ExposedPorts": {"80/tcp": {}}, "Volumes": null, "WorkingDir": "",
            "Labels": null
        },
        "rootfs": {"type": "layers", "diff_ids": [d('1'), d('2')]},
        "history": [{"created": "2023-05-19T20:19:23Z", "created_by": "ADD file"}]
    });
    let bytes = doc.to_string();
    let c = parse_config(bytes.as_bytes()).unwrap();
    assert_eq!(c.architecture().to_string(), "amd64");
    assert_eq!(c.created().as_deref(), Some("2023-05-19T20:19:23.123Z"));
    let ids = diff_ids(&c).unwrap();
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[1].to_string(), d('2'));
    let ic = ImageConfig::parse(bytes.as_bytes(), "busybox").unwrap();
    assert_eq!(ic.diff_ids, ids);
    let Manifest::Image(m) =
        Manifest::parse(docker_manifest().to_string().as_bytes(), None, "x").unwrap()
    else {
        panic!()
    };
    ic.check_layers(&m, "busybox").unwrap();

    let mut bad = doc.clone();
    bad["rootfs"]["diff_ids"] = json!(["sha256:nothex"]);
    let e = ImageConfig::parse(bad.to_string().as_bytes(), "busybox").unwrap_err();
    assert!(
        e.to_string()
            .starts_with("invalid image config for busybox: rootfs.diff_ids"),
        "{e}"
    );
    let mut bad = doc.clone();
    bad["rootfs"]["type"] = json!("other");
    assert!(parse_config(bad.to_string().as_bytes()).is_err());
    let mut three = doc.clone();
    three["rootfs"]["diff_ids"] = json!([d('1'), d('2'), d('3')]);
    let ic = ImageConfig::parse(three.to_string().as_bytes(), "b").unwrap();
    let e = ic.check_layers(&m, "b").unwrap_err();
    assert!(
        e.to_string().contains("2 layers but the config lists 3"),
        "{e}"
    );
}

#[test]
fn compression_and_distributability() {
    assert_eq!(layer_compression(mt::OCI_LAYER), Some(Compression::None));
    assert_eq!(
        layer_compression(mt::OCI_LAYER_GZIP),
        Some(Compression::Gzip)
    );
    assert_eq!(
        layer_compression(mt::OCI_LAYER_ZSTD),
        Some(Compression::Zstd)
    );
    assert_eq!(
        layer_compression(mt::OCI_LAYER_NONDIST_ZSTD),
        Some(Compression::Zstd)
    );
    assert_eq!(
        layer_compression(mt::DOCKER_LAYER_GZIP),
        Some(Compression::Gzip)
    );
    assert_eq!(
        layer_compression(mt::DOCKER_FOREIGN_LAYER),
        Some(Compression::Gzip)
    );
    assert_eq!(
        layer_compression("application/vnd.oci.image.layer.v1.tar+encrypted"),
        None
    );
    assert!(is_non_distributable(mt::DOCKER_FOREIGN_LAYER));
    assert!(is_non_distributable(mt::OCI_LAYER_NONDIST_GZIP));
    assert!(!is_non_distributable(mt::OCI_LAYER_GZIP));
    assert_eq!(Compression::detect(&[0x1f, 0x8b, 8, 0]), Compression::Gzip);
    assert_eq!(
        Compression::detect(&[0x28, 0xb5, 0x2f, 0xfd]),
        Compression::Zstd
    );
    assert_eq!(Compression::detect(b"etc/"), Compression::None);
    assert!(is_index(mt::DOCKER_MANIFEST_LIST));
    assert!(is_image_manifest(mt::OCI_MANIFEST));
    assert!(!is_image_manifest(mt::OCI_INDEX));
}

#[test]
fn platform_parse_and_normalize() {
    let p = Platform::parse("linux/arm64/v8").unwrap();
    assert_eq!(p, Platform::new("linux", "arm64", Some("v8")));
    assert_eq!(p.to_string(), "linux/arm64/v8");
    assert_eq!(p.normalize(), Platform::new("linux", "arm64", None));
    assert!(p.matches(&Platform::new("linux", "aarch64", None)));
    assert_eq!(
        Platform::parse("linux/amd64").unwrap(),
        Platform::new("linux", "amd64", None)
    );
    assert_eq!(
        Platform::parse("arm").unwrap().normalize(),
        Platform::new("linux", "arm", Some("v7"))
    );
    assert_eq!(Platform::parse("linux").unwrap().os, "linux");
    assert_eq!(
        Platform::parse("Linux/X86_64").unwrap().normalize(),
        Platform::new("linux", "amd64", None)
    );
    assert_eq!(
        Platform::new("linux", "armhf", None).normalize(),
        Platform::new("linux", "arm", Some("v7"))
    );
    assert_eq!(
        Platform::new("linux", "i386", None).normalize(),
        Platform::new("linux", "386", None)
    );
    for bad in ["", "linux/", "/amd64", "linux/amd64/v8/x", "linux amd64"] {
        let e = Platform::parse(bad).unwrap_err();
        assert!(e.to_string().starts_with("invalid platform"), "{bad}: {e}");
    }
    let host = Platform::host();
    assert_eq!(host.os, "linux");
    #[cfg(target_arch = "x86_64")]
    assert_eq!(host, Platform::new("linux", "amd64", None));
    #[cfg(target_arch = "aarch64")]
    assert_eq!(host, Platform::new("linux", "arm64", Some("v8")));
}

#[test]
fn compatible_vectors() {
    let names = |p: &str| -> Vec<String> {
        Platform::parse(p)
            .unwrap()
            .compatible()
            .iter()
            .map(|p| p.to_string())
            .collect()
    };
    assert_eq!(names("linux/amd64"), ["linux/amd64", "linux/386"]);
    assert_eq!(
        names("linux/amd64/v3"),
        [
            "linux/amd64/v3",
            "linux/amd64/v2",
            "linux/amd64",
            "linux/386"
        ]
    );
    assert_eq!(
        names("linux/arm/v7"),
        ["linux/arm/v7", "linux/arm/v6", "linux/arm/v5"]
    );
    assert_eq!(
        names("linux/arm64/v8"),
        [
            "linux/arm64",
            "linux/arm/v8",
            "linux/arm/v7",
            "linux/arm/v6",
            "linux/arm/v5"
        ]
    );
}

#[test]
fn select_platform_rules() {
    let idx = index(vec![
        entry('1', json!({"architecture": "amd64", "os": "linux"})),
        entry(
            '2',
            json!({"architecture": "arm", "os": "linux", "variant": "v6"}),
        ),
        entry(
            '3',
            json!({"architecture": "arm", "os": "linux", "variant": "v7"}),
        ),
        entry(
            '4',
            json!({"architecture": "arm64", "os": "linux", "variant": "v8"}),
        ),
        entry('5', json!({"architecture": "unknown", "os": "unknown"})),
        entry(
            '6',
            json!({"architecture": "amd64", "os": "windows", "os.version": "10.0.17763.1"}),
        ),
    ]);
    let pick = |p: &str| {
        let desc = select_platform(&idx, &Platform::parse(p).unwrap()).unwrap();
        desc.digest().to_string()
    };
    assert_eq!(pick("linux/amd64"), d('1'));
    assert_eq!(pick("linux/arm64"), d('4'));
    assert_eq!(pick("linux/arm64/v8"), d('4'));
    assert_eq!(pick("linux/arm/v7"), d('3'));
    assert_eq!(pick("linux/arm"), d('3'));
    assert_eq!(pick("linux/arm/v6"), d('2'));
    assert_eq!(pick("windows/amd64"), d('6'));
    let e = select_platform(&idx, &Platform::parse("linux/s390x").unwrap()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "no matching manifest for linux/s390x in the manifest list entries \
         (available: linux/amd64, linux/arm/v6, linux/arm/v7, linux/arm64/v8, windows/amd64)"
    );
    // arm64 without its own entry falls back to 32-bit arm, best variant first.
    let idx = index(vec![
        entry(
            '2',
            json!({"architecture": "arm", "os": "linux", "variant": "v6"}),
        ),
        entry(
            '3',
            json!({"architecture": "arm", "os": "linux", "variant": "v7"}),
        ),
        entry('7', json!({"architecture": "386", "os": "linux"})),
    ]);
    assert_eq!(pick_in(&idx, "linux/arm64"), d('3'));
    assert_eq!(pick_in(&idx, "linux/amd64"), d('7'));
    // An arm64 entry with no variant matches an arm64/v8 host.
    let idx = index(vec![entry(
        '4',
        json!({"architecture": "arm64", "os": "linux"}),
    )]);
    assert_eq!(pick_in(&idx, "linux/arm64/v8"), d('4'));
    // No platform at all is a last resort.
    let doc = json!({"schemaVersion": 2, "manifests": [
        {"mediaType": mt::OCI_MANIFEST, "size": 1, "digest": d('9')}]});
    let Manifest::Index(idx) = Manifest::parse(doc.to_string().as_bytes(), None, "x").unwrap()
    else {
        panic!()
    };
    assert_eq!(pick_in(&idx, "linux/amd64"), d('9'));
}

fn pick_in(idx: &ImageIndex, p: &str) -> String {
    select_platform(idx, &Platform::parse(p).unwrap())
        .unwrap()
        .digest()
        .to_string()
}
