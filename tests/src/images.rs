//! Test images made by other tools (umoci, skopeo, GNU tar), never by berth,
//! as OCI image layouts in temp dirs, and pushed to a [`Registry`] with
//! skopeo in the wire formats berth must pull: OCI + gzip, OCI + zstd,
//! Docker schema 2, and multi-platform indexes / manifest lists.
//!
//! Every skopeo call gets a private, empty blob-info cache: skopeo keeps one
//! in /var/lib/containers/cache for root, and with it a push silently reuses
//! a gzip blob it already pushed instead of recompressing to zstd.

use crate::registry::Registry;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// An OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/…`) in a
/// temp dir, removed on drop. Tags are `org.opencontainers.image.ref.name`
/// annotations in index.json.
pub struct OciLayout {
    tmp: tempfile::TempDir,
}

impl OciLayout {
    /// For a layout kept in a `static`: removed when the test binary exits.
    pub fn remove_at_exit(&self) {
        crate::remove_at_exit(self.tmp.path());
    }

    fn new() -> OciLayout {
        OciLayout {
            tmp: tempfile::Builder::new()
                .prefix("berth-oci-")
                .tempdir()
                .unwrap(),
        }
    }

    /// A fresh copy of the layout `build` makes, built once and cached under
    /// `<target>/berth-test-images/NAME-VERSION` (umoci repack of the
    /// busybox rootfs takes ~1.3 s: it hashes every hard link). Built in a
    /// temp dir and renamed into place, so concurrent test binaries never
    /// see half of one. `BERTH_TEST_NO_IMAGE_CACHE=1` always rebuilds.
    fn cached(name: &str, build: fn(&OciLayout)) -> OciLayout {
        let out = OciLayout::new();
        if std::env::var_os("BERTH_TEST_NO_IMAGE_CACHE").is_some() {
            build(&out);
            return out;
        }
        let root = crate::target_dir().join("berth-test-images");
        let done = root.join(format!("{name}-{CACHE_VERSION}"));
        if !done.join("index.json").exists() {
            std::fs::create_dir_all(&root).unwrap();
            let tmp = OciLayout {
                tmp: tempfile::Builder::new()
                    .prefix("tmp-")
                    .tempdir_in(&root)
                    .unwrap(),
            };
            build(&tmp);
            // Another test binary may have won the race: keep its copy.
            let _ = std::fs::rename(tmp.path(), &done);
        }
        let st = Command::new("cp")
            .arg("-a")
            .arg(&done)
            .arg(out.path())
            .status()
            .unwrap();
        assert!(st.success(), "cp -a {}", done.display());
        out
    }

    /// The layout dir.
    pub fn path(&self) -> PathBuf {
        self.tmp.path().join("layout")
    }

    /// `PATH:TAG`, as umoci's `--image` wants it.
    pub fn image_arg(&self, tag: &str) -> String {
        format!("{}:{tag}", self.path().display())
    }

    /// `oci:PATH:TAG`, a containers-image reference (skopeo).
    pub fn reference(&self, tag: &str) -> String {
        format!("oci:{}", self.image_arg(tag))
    }

    pub fn index(&self) -> Value {
        read_json(&self.path().join("index.json"))
    }

    pub fn tags(&self) -> Vec<String> {
        self.index()["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|d| d["annotations"]["org.opencontainers.image.ref.name"].as_str())
            .map(str::to_string)
            .collect()
    }

    /// The index.json descriptor tagged `tag`.
    pub fn descriptor(&self, tag: &str) -> Value {
        self.index()["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == tag)
            .unwrap_or_else(|| panic!("no tag {tag} in {}", self.path().display()))
            .clone()
    }

    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let (alg, hex) = digest.split_once(':').expect("algo:hex digest");
        self.path().join("blobs").join(alg).join(hex)
    }

    pub fn blob_json(&self, digest: &str) -> Value {
        read_json(&self.blob_path(digest))
    }

    /// The manifest (or index) that `tag` points at.
    pub fn manifest(&self, tag: &str) -> Value {
        self.blob_json(self.descriptor(tag)["digest"].as_str().unwrap())
    }

    /// The image config of the image manifest tagged `tag`.
    pub fn config(&self, tag: &str) -> Value {
        self.blob_json(self.manifest(tag)["config"]["digest"].as_str().unwrap())
    }

    /// The layer descriptors of the image manifest tagged `tag`.
    pub fn layers(&self, tag: &str) -> Vec<Value> {
        self.manifest(tag)["layers"].as_array().unwrap().clone()
    }

    /// Entry names of layer `n` (0 = base) as `tar -t` lists them.
    pub fn layer_entries(&self, tag: &str, n: usize) -> Vec<String> {
        let l = &self.layers(tag)[n];
        tar_list(&self.blob_path(l["digest"].as_str().unwrap()))
    }
}

impl OciLayout {
    /// A copy of `tag` (image or index, recursively) in a new layout under
    /// the same tag, every gzip layer stored uncompressed
    /// (`application/vnd.oci.image.layer.v1.tar`, digest = diff_id).
    pub fn uncompressed(&self, tag: &str) -> OciLayout {
        let out = OciLayout::new();
        let p = out.path();
        std::fs::create_dir_all(p.join("blobs/sha256")).unwrap();
        std::fs::write(p.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        let mut d = self.descriptor(tag);
        let (digest, size) = self.copy_uncompressed(&out, d["digest"].as_str().unwrap());
        d["digest"] = json!(digest);
        d["size"] = json!(size);
        let index = json!({"schemaVersion": 2, "manifests": [d]});
        std::fs::write(p.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
        out
    }

    /// Copies manifest/index `digest` into `out` with uncompressed layers;
    /// returns the new (digest, size).
    fn copy_uncompressed(&self, out: &OciLayout, digest: &str) -> (String, usize) {
        let mut m = self.blob_json(digest);
        if let Some(children) = m["manifests"].as_array_mut() {
            for c in children {
                let (d, n) = self.copy_uncompressed(out, c["digest"].as_str().unwrap());
                c["digest"] = json!(d);
                c["size"] = json!(n);
            }
        } else {
            let cfg = m["config"]["digest"].as_str().unwrap().to_string();
            std::fs::copy(self.blob_path(&cfg), out.blob_path(&cfg)).unwrap();
            for l in m["layers"].as_array_mut().unwrap() {
                let src = self.blob_path(l["digest"].as_str().unwrap());
                let mt = l["mediaType"].as_str().unwrap().to_string();
                let tmp = out.path().join("blobs/tmp-layer");
                if mt.ends_with("+gzip") || mt.ends_with(".gzip") {
                    let f = std::fs::File::create(&tmp).unwrap();
                    let st = Command::new("gzip")
                        .arg("-dc")
                        .arg(&src)
                        .stdout(f)
                        .status()
                        .unwrap();
                    assert!(st.success(), "gunzip {}", src.display());
                    l["mediaType"] = json!("application/vnd.oci.image.layer.v1.tar");
                } else {
                    std::fs::copy(&src, &tmp).unwrap();
                }
                let mut c = Command::new("sha256sum");
                c.arg(&tmp);
                let hex = String::from_utf8_lossy(&run(c).stdout)
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .to_string();
                let d = format!("sha256:{hex}");
                l["size"] = json!(std::fs::metadata(&tmp).unwrap().len());
                std::fs::rename(&tmp, out.blob_path(&d)).unwrap();
                l["digest"] = json!(d);
            }
        }
        let bytes = serde_json::to_vec(&m).unwrap();
        let d = format!("sha256:{}", sha256_hex(&bytes));
        std::fs::write(out.blob_path(&d), &bytes).unwrap();
        (d, bytes.len())
    }
}

fn read_json(p: &Path) -> Value {
    let b = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_slice(&b).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn run(mut c: Command) -> Output {
    let out = c
        .output()
        .unwrap_or_else(|e| panic!("spawn {:?}: {e}", c.get_program()));
    assert!(
        out.status.success(),
        "{c:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn umoci(args: &[&str]) -> Output {
    let mut c = Command::new("umoci");
    c.args(args);
    run(c)
}

/// Names in a (possibly gzip- or zstd-compressed) tar, in archive order.
pub fn tar_list(path: &Path) -> Vec<String> {
    let mut c = Command::new("tar");
    c.arg("-tf").arg(path);
    let out = run(c);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// The OCI architecture name of this host.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        a => a,
    }
}

/// Bump when a builder below changes, to invalidate cached layouts.
const CACHE_VERSION: &str = "v1";

pub const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Busybox as one gzip layer (the rootfs of [`crate::make_busybox_rootfs`]),
/// config `Cmd ["sh"]`, `Env [PATH=…]`, this host's architecture; tag
/// `latest`. Built with `umoci init/new/unpack/repack/config/gc`.
pub fn busybox_oci_layout() -> OciLayout {
    OciLayout::cached("busybox", |l| build_busybox(l, "latest"))
}

fn build_busybox(l: &OciLayout, tag: &str) {
    let layout = l.path();
    let layout = layout.to_str().unwrap();
    let img = l.image_arg(tag);
    umoci(&["init", "--layout", layout]);
    umoci(&["new", "--image", &img]);
    let bundle = l.tmp.path().join("bundle");
    umoci(&["unpack", "--image", &img, bundle.to_str().unwrap()]);
    crate::make_busybox_rootfs(&bundle.join("rootfs"));
    umoci(&["repack", "--image", &img, bundle.to_str().unwrap()]);
    std::fs::remove_dir_all(&bundle).unwrap();
    umoci(&[
        "config",
        "--image",
        &img,
        "--config.cmd",
        "sh",
        "--config.env",
        PATH_ENV,
        "--os",
        "linux",
        "--architecture",
        host_arch(),
    ]);
    umoci(&["gc", "--layout", layout]);
}

/// Layer 2 of [`multilayer_with_whiteouts`] adds these (path, content).
pub const LAYER2_FILES: &[(&str, &str)] =
    &[("data/a", "a\n"), ("data/b", "b\n"), ("opt/keep/x", "x\n")];

/// Three layers, tags `base` (1 layer), `layer2` (2) and `latest` (3):
/// 1. busybox;
/// 2. adds /data/a, /data/b, /opt/keep/x (umoci unpack + repack);
/// 3. deletes /data/a (whiteout `data/.wh.a`) and makes /opt/keep opaque
///    (`opt/keep/.wh..wh..opq`) holding only a new `y` ("y\n"). umoci's
///    repack never writes opaque whiteouts, so this layer is a tar made by
///    GNU tar from literal whiteout files and appended verbatim with
///    `umoci raw add-layer`.
///
/// Pulled and applied, the rootfs must have /data/b, /opt/keep/y, and no
/// /data/a nor /opt/keep/x. The function checks the layer tars itself.
pub fn multilayer_with_whiteouts() -> OciLayout {
    let l = OciLayout::cached("whiteouts", build_whiteouts);
    check_whiteouts(&l);
    l
}

fn build_whiteouts(l: &OciLayout) {
    build_busybox(l, "base");
    let bundle = l.tmp.path().join("bundle");
    let b = bundle.to_str().unwrap();
    umoci(&["unpack", "--image", &l.image_arg("base"), b]);
    for (p, content) in LAYER2_FILES {
        let p = bundle.join("rootfs").join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
    umoci(&["repack", "--image", &l.image_arg("layer2"), b]);
    std::fs::remove_dir_all(&bundle).unwrap();

    let stage = l.tmp.path().join("stage");
    std::fs::create_dir_all(stage.join("data")).unwrap();
    std::fs::create_dir_all(stage.join("opt/keep")).unwrap();
    std::fs::write(stage.join("data/.wh.a"), "").unwrap();
    std::fs::write(stage.join("opt/keep/.wh..wh..opq"), "").unwrap();
    std::fs::write(stage.join("opt/keep/y"), "y\n").unwrap();
    let tar = l.tmp.path().join("layer3.tar");
    let mut c = Command::new("tar");
    c.arg("-C")
        .arg(&stage)
        .args([
            "--sort=name",
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            "--mtime=@1700000000",
            "--format=ustar",
            "-cf",
        ])
        .arg(&tar)
        .args(["data", "opt"]);
    run(c);
    umoci(&[
        "raw",
        "add-layer",
        "--image",
        &l.image_arg("layer2"),
        "--tag",
        "latest",
        "--history.created_by",
        "berth-test: rm /data/a; opaque /opt/keep with y",
        tar.to_str().unwrap(),
    ]);
    std::fs::remove_dir_all(&stage).unwrap();
    std::fs::remove_file(&tar).unwrap();
    umoci(&["gc", "--layout", l.path().to_str().unwrap()]);
}

fn check_whiteouts(l: &OciLayout) {
    assert_eq!(l.layers("latest").len(), 3);
    let l2 = l.layer_entries("latest", 1);
    for want in ["data/a", "data/b", "opt/keep/x"] {
        assert!(
            l2.iter().any(|e| e.trim_start_matches("./") == want),
            "layer 2 lacks {want}: {l2:?}"
        );
    }
    let l3 = l.layer_entries("latest", 2);
    for want in ["data/.wh.a", "opt/keep/.wh..wh..opq", "opt/keep/y"] {
        assert!(l3.iter().any(|e| e == want), "layer 3 lacks {want}: {l3:?}");
    }
}

/// Busybox for two platforms in one layout: tags `amd64` and `arm64` (same
/// layer, configs differing in `architecture`), and `index`, an OCI image
/// index listing both with their platforms (written by hand: umoci makes
/// no indexes). Push it with [`push_index`].
pub fn multiplatform_layout() -> OciLayout {
    OciLayout::cached("multiplatform", build_multiplatform)
}

fn build_multiplatform(l: &OciLayout) {
    build_busybox(l, "amd64");
    umoci(&[
        "config",
        "--image",
        &l.image_arg("amd64"),
        "--architecture",
        "amd64",
    ]);
    umoci(&[
        "config",
        "--image",
        &l.image_arg("amd64"),
        "--tag",
        "arm64",
        "--architecture",
        "arm64",
    ]);
    umoci(&["gc", "--layout", l.path().to_str().unwrap()]);
    let mut manifests = Vec::new();
    for tag in ["amd64", "arm64"] {
        let d = l.descriptor(tag);
        let cfg = l.config(tag);
        manifests.push(json!({
            "mediaType": d["mediaType"],
            "digest": d["digest"],
            "size": d["size"],
            "platform": {"architecture": cfg["architecture"], "os": cfg["os"]},
        }));
    }
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    });
    let bytes = serde_json::to_vec(&index).unwrap();
    let digest = format!("sha256:{}", sha256_hex(&bytes));
    std::fs::write(l.blob_path(&digest), &bytes).unwrap();
    let mut top = l.index();
    top["manifests"].as_array_mut().unwrap().push(json!({
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "digest": digest,
        "size": bytes.len(),
        "annotations": {"org.opencontainers.image.ref.name": "index"},
    }));
    std::fs::write(
        l.path().join("index.json"),
        serde_json::to_vec(&top).unwrap(),
    )
    .unwrap();
}

/// sha256 of `data` as hex, through coreutils' `sha256sum`.
pub fn sha256_hex(data: &[u8]) -> String {
    use std::io::Write;
    let mut c = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(data).unwrap();
    let out = c.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

// ---------------------------------------------------------------------------
// skopeo

/// The wire format of a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OCI manifest/index, layers as umoci wrote them (gzip).
    Oci,
    /// OCI manifest/index, layers recompressed to zstd
    /// (`application/vnd.oci.image.layer.v1.tar+zstd`).
    OciZstd,
    /// Docker schema 2 (`--format v2s2`): manifest
    /// `application/vnd.docker.distribution.manifest.v2+json`, manifest list
    /// `…manifest.list.v2+json`, gzip layers.
    DockerV2s2,
}

/// `skopeo ARGS` with a private blob-info cache and auth file, and
/// `--insecure-policy` (no host signature policy needed). Not asserted.
pub fn skopeo(args: &[&str]) -> Output {
    let home = tempfile::Builder::new()
        .prefix("berth-skopeo-")
        .tempdir()
        .unwrap();
    // skopeo takes the blob-info cache from $XDG_DATA_HOME only when it
    // believes it is rootless; root's cache is a fixed system path.
    Command::new("skopeo")
        .arg("--insecure-policy")
        .args(args)
        .env("_CONTAINERS_ROOTLESS_UID", "1")
        .env("XDG_DATA_HOME", home.path())
        .env("XDG_RUNTIME_DIR", home.path())
        .env("REGISTRY_AUTH_FILE", home.path().join("auth.json"))
        .output()
        .expect("skopeo is missing: apt-get install skopeo")
}

fn skopeo_ok(args: &[&str]) -> Output {
    let out = skopeo(args);
    assert!(
        out.status.success(),
        "skopeo {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn copy_to(
    layout: &OciLayout,
    tag: &str,
    reg: &Registry,
    repo_tag: &str,
    format: Format,
    all: bool,
) -> String {
    // skopeo 1.9 does not recompress a gzip layer the registry already
    // holds (it reuses the blob, zstd asked or not): push zstd from an
    // uncompressed copy, whose layer digests no registry has seen as blobs.
    let plain;
    let layout = if format == Format::OciZstd {
        plain = layout.uncompressed(tag);
        &plain
    } else {
        layout
    };
    let src = layout.reference(tag);
    let src = src.as_str();
    let digest_dir = tempfile::tempdir().unwrap();
    let digest_file = digest_dir.path().join("digest");
    let dest = format!("docker://{}", reg.image_ref(repo_tag));
    let creds = reg.creds_arg();
    let mut args = vec!["copy", "--dest-tls-verify=false"];
    if all {
        args.push("--all");
    }
    match format {
        Format::Oci => {}
        Format::OciZstd => args.extend(["--dest-compress", "--dest-compress-format", "zstd"]),
        Format::DockerV2s2 => args.extend(["--format", "v2s2"]),
    }
    if let Some(c) = &creds {
        args.extend(["--dest-creds", c]);
    }
    args.extend(["--digestfile", digest_file.to_str().unwrap(), src, &dest]);
    skopeo_ok(&args);
    std::fs::read_to_string(&digest_file)
        .unwrap()
        .trim()
        .to_string()
}

/// Push `layout:tag` to `reg` as `repo:tag` (OCI, layers as they are, with
/// the registry's credentials if any). Returns the manifest digest.
pub fn push(layout: &OciLayout, tag: &str, reg: &Registry, repo_tag: &str) -> String {
    push_as(layout, tag, reg, repo_tag, Format::Oci)
}

/// Like [`push`], recompressing every layer to zstd.
pub fn push_zstd(layout: &OciLayout, tag: &str, reg: &Registry, repo_tag: &str) -> String {
    push_as(layout, tag, reg, repo_tag, Format::OciZstd)
}

/// Like [`push`], converted to Docker schema 2 media types.
pub fn push_v2s2(layout: &OciLayout, tag: &str, reg: &Registry, repo_tag: &str) -> String {
    push_as(layout, tag, reg, repo_tag, Format::DockerV2s2)
}

/// Push one image manifest in the given format. Returns its digest.
pub fn push_as(
    layout: &OciLayout,
    tag: &str,
    reg: &Registry,
    repo_tag: &str,
    format: Format,
) -> String {
    copy_to(layout, tag, reg, repo_tag, format, false)
}

/// Push an index tag (e.g. `index` of [`multiplatform_layout`]) with every
/// platform (`skopeo copy --all`): an OCI image index, or with
/// [`Format::DockerV2s2`] a Docker manifest list. Returns the index digest.
pub fn push_index(
    layout: &OciLayout,
    tag: &str,
    reg: &Registry,
    repo_tag: &str,
    format: Format,
) -> String {
    copy_to(layout, tag, reg, repo_tag, format, true)
}

fn inspect_args<'a>(creds: &'a Option<String>, v: &mut Vec<&'a str>) {
    v.push("--tls-verify=false");
    if let Some(c) = creds {
        v.extend(["--creds", c]);
    }
}

/// `skopeo inspect --raw` of `repo:tag` with the registry's credentials:
/// the manifest or index exactly as stored.
pub fn inspect_raw(reg: &Registry, repo_tag: &str) -> Value {
    let creds = reg.creds_arg();
    let r = format!("docker://{}", reg.image_ref(repo_tag));
    let mut v = vec!["inspect", "--raw"];
    inspect_args(&creds, &mut v);
    v.push(&r);
    let out = skopeo_ok(&v);
    serde_json::from_slice(&out.stdout).expect("manifest JSON")
}

/// `skopeo inspect` (digest, architecture, layers, env…) of `repo:tag`,
/// choosing `arch` from an index when given.
pub fn inspect(reg: &Registry, repo_tag: &str, arch: Option<&str>) -> Value {
    let creds = reg.creds_arg();
    let r = format!("docker://{}", reg.image_ref(repo_tag));
    let mut v = vec!["inspect"];
    if let Some(a) = arch {
        v.extend(["--override-arch", a]);
    }
    inspect_args(&creds, &mut v);
    v.push(&r);
    let out = skopeo_ok(&v);
    serde_json::from_slice(&out.stdout).expect("inspect JSON")
}

/// Copy `repo:tag` back out of `reg` (with its credentials) into a fresh
/// OCI layout, tagged `latest`; with `all`, every platform of an index.
pub fn pull_to_layout(reg: &Registry, repo_tag: &str, all: bool) -> OciLayout {
    let l = OciLayout::new();
    let creds = reg.creds_arg();
    let src = format!("docker://{}", reg.image_ref(repo_tag));
    let dst = l.reference("latest");
    let mut v = vec!["copy", "--src-tls-verify=false"];
    if all {
        v.push("--all");
    }
    if let Some(c) = &creds {
        v.extend(["--src-creds", c]);
    }
    v.extend([src.as_str(), dst.as_str()]);
    skopeo_ok(&v);
    l
}

// ---------------------------------------------------------------------------
// Debian minbase (slow: for pull benchmarks, not for ordinary tests)

/// Where [`debian_minbase_layout`] keeps what it built.
pub const DEBIAN_CACHE: &str = "/var/cache/berth-test";

/// A Debian bookworm `debootstrap --variant=minbase` rootfs as an OCI image
/// of three gzip layers, tag `latest`: 1. `/usr`, 2. `/etc` and `/var`,
/// 3. everything else (the merged-usr symlinks, /root, /tmp…; /dev, /proc,
/// /sys, /run left empty). Config `Cmd ["bash"]`, `Env [PATH=…]`.
///
/// The first call runs debootstrap against the apt mirror configured on this
/// machine (a minute or more, needs the Debian mirror and `debootstrap`),
/// and caches the layout under [`DEBIAN_CACHE`]; later calls copy it.
/// `BERTH_DEBIAN_MIRROR` overrides the mirror URL.
pub fn debian_minbase_layout() -> OciLayout {
    let root = Path::new(DEBIAN_CACHE);
    let done = root.join(format!("debian-minbase-{CACHE_VERSION}"));
    if !done.join("index.json").exists() {
        std::fs::create_dir_all(root).unwrap();
        let tmp = OciLayout {
            tmp: tempfile::Builder::new()
                .prefix("tmp-")
                .tempdir_in(root)
                .unwrap(),
        };
        build_debian_minbase(&tmp);
        let _ = std::fs::rename(tmp.path(), &done);
    }
    let out = OciLayout::new();
    let st = Command::new("cp")
        .arg("-a")
        .arg(&done)
        .arg(out.path())
        .status()
        .unwrap();
    assert!(st.success(), "cp -a {}", done.display());
    out
}

fn build_debian_minbase(l: &OciLayout) {
    let rootfs = l.tmp.path().join("rootfs");
    let mirror = std::env::var("BERTH_DEBIAN_MIRROR")
        .unwrap_or_else(|_| "http://deb.debian.org/debian".to_string());
    let mut c = Command::new("debootstrap");
    c.args(["--variant=minbase", "bookworm"])
        .arg(&rootfs)
        .arg(&mirror);
    run(c);
    // Trim what no image ships: package caches, lists, logs, device nodes.
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(
            "cd \"$1\" && rm -rf var/cache/apt/archives/*.deb var/cache/apt/*.bin \
             var/lib/apt/lists/* var/log/* dev/* proc/* sys/* run/* tmp/* \
             var/cache/debconf/*-old var/lib/dpkg/*-old",
        )
        .arg("sh")
        .arg(&rootfs);
    run(c);
    let layout = l.path();
    let layout = layout.to_str().unwrap();
    let img = l.image_arg("latest");
    umoci(&["init", "--layout", layout]);
    umoci(&["new", "--image", &img]);
    let mut rest: Vec<String> = std::fs::read_dir(&rootfs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !["usr", "etc", "var"].contains(&n.as_str()))
        .collect();
    rest.sort();
    let groups: Vec<Vec<String>> = vec![vec!["usr".into()], vec!["etc".into(), "var".into()], rest];
    for (i, g) in groups.iter().enumerate() {
        let tar = l.tmp.path().join(format!("layer{i}.tar"));
        let mut c = Command::new("tar");
        c.arg("-C")
            .arg(&rootfs)
            .args(["--sort=name", "--numeric-owner", "--xattrs", "-cf"])
            .arg(&tar)
            .args(g);
        run(c);
        umoci(&[
            "raw",
            "add-layer",
            "--image",
            &img,
            "--history.created_by",
            &format!("debootstrap --variant=minbase bookworm: {}", g.join(" ")),
            tar.to_str().unwrap(),
        ]);
        std::fs::remove_file(&tar).unwrap();
    }
    umoci(&[
        "config",
        "--image",
        &img,
        "--config.cmd",
        "bash",
        "--config.env",
        PATH_ENV,
        "--os",
        "linux",
        "--architecture",
        host_arch(),
    ]);
    umoci(&["gc", "--layout", layout]);
    std::fs::remove_dir_all(&rootfs).unwrap();
}

// ---------------------------------------------------------------------------
// A big image (fault tests: kills and resumes mid-download)

/// Bytes of random content in [`big_random_layout`]'s layer.
pub const BIG_LAYER_BYTES: usize = 64 << 20;

/// One gzip layer holding `/big.bin`, [`BIG_LAYER_BYTES`] of random bytes
/// (so the compressed blob is about as large), tag `latest`, made with
/// `umoci raw add-layer` of a GNU tar; cached like the other layouts.
pub fn big_random_layout() -> OciLayout {
    OciLayout::cached("big-random-64m", build_big_random)
}

fn build_big_random(l: &OciLayout) {
    let layout = l.path();
    let layout = layout.to_str().unwrap();
    let img = l.image_arg("latest");
    umoci(&["init", "--layout", layout]);
    umoci(&["new", "--image", &img]);
    let stage = l.tmp.path().join("stage");
    std::fs::create_dir_all(&stage).unwrap();
    let mut c = Command::new("head");
    c.arg("-c")
        .arg(BIG_LAYER_BYTES.to_string())
        .arg("/dev/urandom")
        .stdout(std::fs::File::create(stage.join("big.bin")).unwrap());
    run(c);
    let tar = l.tmp.path().join("big.tar");
    let mut c = Command::new("tar");
    c.arg("-C")
        .arg(&stage)
        .args(["--owner=0", "--group=0", "--numeric-owner", "-cf"])
        .arg(&tar)
        .arg("big.bin");
    run(c);
    umoci(&[
        "raw",
        "add-layer",
        "--image",
        &img,
        "--history.created_by",
        "berth-test: 64 MiB of random bytes",
        tar.to_str().unwrap(),
    ]);
    umoci(&[
        "config",
        "--image",
        &img,
        "--os",
        "linux",
        "--architecture",
        host_arch(),
    ]);
    std::fs::remove_dir_all(&stage).unwrap();
    std::fs::remove_file(&tar).unwrap();
    umoci(&["gc", "--layout", layout]);
}
