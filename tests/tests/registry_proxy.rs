//! `berth registry serve --proxy-remote URL`, the pull-through cache: Debian's
//! `docker-registry` (distribution 2.8) as the upstream, real clients (berth
//! pull, skopeo) through the cache, the upstream killed to prove the cache
//! serves alone, pushes refused, and a lying upstream (a small fake on a
//! std TcpListener) whose bad bytes must never be stored.
//!
//! Every external command runs with a deadline; every process is killed on
//! drop (fixtures), also when a test fails. Only 127.0.0.1 is contacted.

use berth_integration::berth_registry::BerthRegistry;
use berth_integration::engine::{busybox, text, Store};
use berth_integration::images::{self, sha256_hex};
use berth_integration::registry::{HttpResponse, Registry};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn digest_of(data: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(data))
}

/// Runs `cmd`, killing it (and failing the test) after `secs` seconds.
fn within(mut cmd: Command, secs: u64) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    cmd.stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {secs} s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: std::fs::read(&out).unwrap(),
        stderr: std::fs::read(&err).unwrap(),
    }
}

/// `berth ARGS` in store `s`, with a deadline.
fn berth(s: &Store, args: &[&str]) -> Output {
    within(s.cmd(args), 120)
}

fn berth_ok(s: &Store, args: &[&str]) -> String {
    let o = berth(s, args);
    assert!(o.status.success(), "berth {args:?} failed: {}", text(&o));
    String::from_utf8(o.stdout).unwrap()
}

/// `skopeo ARGS` (private cache and auth file, as the images helper does),
/// with a deadline.
fn skopeo(args: &[&str]) -> Output {
    let home = tempfile::tempdir().unwrap();
    let mut c = Command::new("skopeo");
    c.arg("--insecure-policy")
        .args(args)
        .env("_CONTAINERS_ROOTLESS_UID", "1")
        .env("XDG_DATA_HOME", home.path())
        .env("XDG_RUNTIME_DIR", home.path())
        .env("REGISTRY_AUTH_FILE", home.path().join("auth.json"));
    within(c, 120)
}

fn skopeo_ok(args: &[&str]) -> Vec<u8> {
    let o = skopeo(args);
    assert!(o.status.success(), "skopeo {args:?}: {}", text(&o));
    o.stdout
}

fn error_code(r: &HttpResponse) -> String {
    r.json()["errors"][0]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The proxy's storage holds blob `d` (under `blobs/`).
fn stored(proxy: &BerthRegistry, d: &str) -> bool {
    let (alg, hex) = d.split_once(':').unwrap();
    proxy.root().join("blobs").join(alg).join(hex).is_file()
}

/// Files left in the proxy's `tmp/` (half-written downloads).
fn tmp_files(proxy: &BerthRegistry) -> Vec<String> {
    std::fs::read_dir(proxy.root().join("tmp"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn start_proxy(upstream_url: &str) -> BerthRegistry {
    BerthRegistry::start_with_args(None, &[], &["--proxy-remote", upstream_url])
}

/// The digests of the manifest, config and layers of the busybox image.
fn busybox_digests(manifest_digest: &str) -> Vec<String> {
    let m = busybox().manifest("latest");
    let mut v = vec![
        manifest_digest.to_string(),
        m["config"]["digest"].as_str().unwrap().to_string(),
    ];
    for l in m["layers"].as_array().unwrap() {
        v.push(l["digest"].as_str().unwrap().to_string());
    }
    v
}

#[test]
fn pulls_go_through_the_cache_and_it_keeps_serving_when_the_upstream_is_down() {
    let up = Registry::start();
    let digest = images::push(busybox(), "latest", &up, "lib/busybox:1");
    images::push(busybox(), "latest", &up, "lib/busybox:2");
    let proxy = start_proxy(&up.url());
    let r = proxy.image_ref("lib/busybox:1");

    // Nothing is cached before the first pull; a HEAD of a blob asks the
    // upstream and stores nothing.
    let layer = &busybox().manifest("latest")["layers"][0];
    let h = proxy.req(
        "HEAD",
        &format!(
            "/v2/lib/busybox/blobs/{}",
            layer["digest"].as_str().unwrap()
        ),
        &[],
        b"",
    );
    assert_eq!(h.status, 200);
    assert_eq!(
        h.header("content-length")
            .map(|l| l.parse::<u64>().unwrap()),
        layer["size"].as_u64()
    );
    for d in busybox_digests(&digest) {
        assert!(!stored(&proxy, &d), "{d} cached before any pull");
    }
    let s = Store::new();
    berth_ok(&s, &["pull", &r]);
    assert_eq!(
        s.inspect(&r)["RepoDigests"][0],
        format!("{}/lib/busybox@{digest}", proxy.addr)
    );
    assert_eq!(berth_ok(&s, &["run", "--rm", &r, "echo", "ok"]), "ok\n");
    for d in busybox_digests(&digest) {
        assert!(stored(&proxy, &d), "{d} not cached after the pull");
    }
    assert!(tmp_files(&proxy).is_empty(), "{:?}", tmp_files(&proxy));

    // skopeo sees the upstream's manifest, byte for byte.
    let src = format!("docker://{r}");
    let raw = skopeo_ok(&["inspect", "--raw", "--tls-verify=false", &src]);
    assert_eq!(digest_of(&raw), digest);
    let oci = tempfile::tempdir().unwrap();
    let dest = format!("oci:{}:copy", oci.path().display());
    skopeo_ok(&["copy", "--src-tls-verify=false", &src, &dest]);

    // The tag list is the upstream's (tag 2 was never pulled through).
    let t = proxy.req("GET", "/v2/lib/busybox/tags/list", &[], b"");
    assert_eq!(t.status, 200, "{}", t.text());
    assert_eq!(t.json()["tags"], json!(["1", "2"]));
    let t = proxy.req("GET", "/v2/lib/busybox/tags/list?n=1", &[], b"");
    assert_eq!(t.json()["tags"], json!(["1"]));
    assert_eq!(
        t.header("link"),
        Some("</v2/lib/busybox/tags/list?n=1&last=1>; rel=\"next\"")
    );

    // The upstream goes away: the cache serves by tag and by digest.
    drop(up);
    let s2 = Store::new();
    berth_ok(&s2, &["pull", &r]);
    assert_eq!(
        s2.inspect(&r)["RepoDigests"][0],
        format!("{}/lib/busybox@{digest}", proxy.addr)
    );
    let by_digest = proxy.image_ref(&format!("lib/busybox@{digest}"));
    let s3 = Store::new();
    berth_ok(&s3, &["pull", &by_digest]);
    assert_eq!(
        berth_ok(&s3, &["run", "--rm", &by_digest, "echo", "ok"]),
        "ok\n"
    );
    let raw = skopeo_ok(&["inspect", "--raw", "--tls-verify=false", &src]);
    assert_eq!(digest_of(&raw), digest);
    // The tag list falls back to what is cached.
    let t = proxy.req("GET", "/v2/lib/busybox/tags/list", &[], b"");
    assert_eq!(t.status, 200, "{}", t.text());
    assert_eq!(t.json()["tags"], json!(["1"]));
    // What was never pulled cannot be served: a tag is unknown (as in
    // distribution), a blob is unavailable.
    let m = proxy.req("GET", "/v2/lib/busybox/manifests/2", &[], b"");
    assert_eq!(
        (m.status, error_code(&m).as_str()),
        (404, "MANIFEST_UNKNOWN"),
        "{}",
        m.text()
    );
    let missing = digest_of(b"never pushed anywhere");
    let b = proxy.req("GET", &format!("/v2/lib/busybox/blobs/{missing}"), &[], b"");
    assert_eq!(
        (b.status, error_code(&b).as_str()),
        (503, "UNAVAILABLE"),
        "{}",
        b.text()
    );
    let o = berth(&Store::new(), &["pull", &proxy.image_ref("lib/busybox:2")]);
    assert!(!o.status.success(), "{}", text(&o));
}

#[test]
fn the_cache_refuses_pushes_and_deletes() {
    let up = Registry::start();
    let digest = images::push(busybox(), "latest", &up, "lib/busybox:1");
    let proxy = start_proxy(&up.url());
    let s = Store::new();
    let r = proxy.image_ref("lib/busybox:1");
    berth_ok(&s, &["pull", &r]);

    let unsupported = |r: HttpResponse| {
        assert_eq!(
            (r.status, error_code(&r).as_str()),
            (405, "UNSUPPORTED"),
            "{}",
            r.text()
        );
    };
    unsupported(proxy.req("POST", "/v2/lib/busybox/blobs/uploads/", &[], b""));
    let data = b"some layer";
    let d = digest_of(data);
    unsupported(proxy.req(
        "POST",
        &format!("/v2/lib/busybox/blobs/uploads/?digest={d}"),
        &[],
        data,
    ));
    unsupported(proxy.req(
        "PUT",
        "/v2/lib/busybox/manifests/3",
        &[("Content-Type", "application/vnd.oci.image.manifest.v1+json")],
        br#"{"schemaVersion":2}"#,
    ));
    unsupported(proxy.req(
        "DELETE",
        &format!("/v2/lib/busybox/manifests/{digest}"),
        &[],
        b"",
    ));
    let layer = busybox().manifest("latest")["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    unsupported(proxy.req(
        "DELETE",
        &format!("/v2/lib/busybox/blobs/{layer}"),
        &[],
        b"",
    ));
    // Nothing changed: no upload was started, everything is still there.
    let uploads: Vec<_> = std::fs::read_dir(proxy.root().join("uploads"))
        .unwrap()
        .collect();
    assert!(uploads.is_empty());
    assert!(!stored(&proxy, &d));
    let m = proxy.req(
        "GET",
        &format!("/v2/lib/busybox/manifests/{digest}"),
        &[],
        b"",
    );
    assert_eq!(m.status, 200, "{}", m.text());

    // berth push gets the refusal too.
    let other = proxy.image_ref("lib/mine:1");
    berth_ok(&s, &["tag", &r, &other]);
    let o = berth(&s, &["push", &other]);
    assert!(
        !o.status.success(),
        "push to a cache succeeded: {}",
        text(&o)
    );
    let t = proxy.req("GET", "/v2/lib/mine/manifests/1", &[], b"");
    assert_eq!(t.status, 404, "{}", t.text());
}

#[test]
fn the_cache_logs_in_to_a_token_upstream_with_its_credentials() {
    let up = Registry::start_token("proxyuser", "proxypass");
    let digest = images::push(busybox(), "latest", &up, "team/busybox:1");
    let cfg = format!(
        "[proxy]\nremote_url = \"{}\"\nusername = \"proxyuser\"\npassword = \"proxypass\"\n",
        up.url()
    );
    let proxy = BerthRegistry::start_with_config(Some(&cfg), &[]);
    let r = proxy.image_ref("team/busybox:1");
    let s = Store::new();
    berth_ok(&s, &["pull", &r]);
    for d in busybox_digests(&digest) {
        assert!(stored(&proxy, &d), "{d} not cached");
    }
    let asked: Vec<_> = up
        .token_requests()
        .into_iter()
        .filter(|t| t.scopes.iter().any(|s| s == "repository:team/busybox:pull"))
        .collect();
    assert!(
        asked
            .iter()
            .any(|t| t.user.as_deref() == Some("proxyuser") && t.status == 200),
        "{asked:?}"
    );

    // Without credentials the upstream refuses the cache: nothing served.
    let anon = start_proxy(&up.url());
    let m = anon.req("GET", "/v2/team/busybox/manifests/1", &[], b"");
    assert_eq!(
        (m.status, error_code(&m).as_str()),
        (404, "MANIFEST_UNKNOWN"),
        "{}",
        m.text()
    );
    assert!(
        m.text().contains("401") || m.text().contains("denied"),
        "{}",
        m.text()
    );
}

#[test]
fn the_cache_logs_in_to_a_basic_auth_upstream() {
    let up = Registry::start_htpasswd("bob", "bobpass");
    let digest = images::push(busybox(), "latest", &up, "lib/busybox:1");
    let cfg = format!(
        "[proxy]\nremote_url = \"{}\"\nusername = \"bob\"\npassword = \"bobpass\"\n",
        up.url()
    );
    let proxy = BerthRegistry::start_with_config(Some(&cfg), &[]);
    let s = Store::new();
    berth_ok(&s, &["pull", &proxy.image_ref("lib/busybox:1")]);
    for d in busybox_digests(&digest) {
        assert!(stored(&proxy, &d), "{d} not cached");
    }
}

// ---------------------------------------------------------------------------
// A lying upstream.

/// One canned answer: content type and body.
type Canned = (String, Vec<u8>);

/// A tiny registry on a std TcpListener answering GET/HEAD of fixed paths
/// (with the Content-Length of what it sends), 404 otherwise. Stopped on
/// drop.
struct FakeUpstream {
    addr: String,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl FakeUpstream {
    fn start(routes: HashMap<String, Canned>) -> FakeUpstream {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (st, rq) = (stop.clone(), requests.clone());
        let thread = std::thread::spawn(move || {
            for c in l.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(c) = c {
                    let _ = answer(c, &routes, &rq);
                }
            }
        });
        FakeUpstream {
            addr,
            stop,
            thread: Some(thread),
            requests,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

fn answer(
    mut c: TcpStream,
    routes: &HashMap<String, Canned>,
    log: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    c.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if c.read(&mut b)? == 0 || head.len() > 64 * 1024 {
            return Ok(());
        }
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut first = head.split_whitespace();
    let (method, path) = (first.next().unwrap_or(""), first.next().unwrap_or(""));
    log.lock().unwrap().push(format!("{method} {path}"));
    let (status, ct, body) = match routes.get(path) {
        Some((ct, body)) => ("200 OK", ct.as_str(), body.as_slice()),
        None => (
            "404 Not Found",
            "application/json",
            &br#"{"errors":[{"code":"NOT_FOUND","message":"no"}]}"#[..],
        ),
    };
    let resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ct}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    c.write_all(resp.as_bytes())?;
    if method != "HEAD" {
        c.write_all(body)?;
    }
    c.flush()
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A one-layer image (gzip tar of one file): (manifest, config, layer).
fn tiny_image(dir: &Path) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("hello.txt"), "hello from the fake upstream\n").unwrap();
    let tar = dir.join("layer.tar");
    let o = within(
        {
            let mut c = Command::new("tar");
            c.args(["--owner=0", "--group=0", "--mtime=@0", "-cf"])
                .arg(&tar)
                .arg("-C")
                .arg(&src)
                .arg("hello.txt");
            c
        },
        30,
    );
    assert!(o.status.success(), "tar: {}", text(&o));
    let tar_bytes = std::fs::read(&tar).unwrap();
    let o = within(
        {
            let mut c = Command::new("gzip");
            c.args(["-n", "-k"]).arg(&tar);
            c
        },
        30,
    );
    assert!(o.status.success(), "gzip: {}", text(&o));
    let layer = std::fs::read(dir.join("layer.tar.gz")).unwrap();
    let config = serde_json::to_vec(&json!({
        "architecture": images::host_arch(),
        "os": "linux",
        "config": {"Cmd": ["/hello.txt"]},
        "rootfs": {"type": "layers", "diff_ids": [digest_of(&tar_bytes)]},
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": digest_of(&config),
            "size": config.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": digest_of(&layer),
            "size": layer.len(),
        }],
    }))
    .unwrap();
    (manifest, config, layer)
}

/// Routes of `repo` serving `manifest` (by tag `1` and by its digest),
/// `config` and `layer` (under the digests the manifest names).
fn routes(
    repo: &str,
    manifest: &[u8],
    manifest_digest: &str,
    config: (&str, &[u8]),
    layer: (&str, &[u8]),
) -> HashMap<String, Canned> {
    let mt = "application/vnd.oci.image.manifest.v1+json".to_string();
    let bin = "application/octet-stream".to_string();
    HashMap::from([
        (
            format!("/v2/{repo}/manifests/1"),
            (mt.clone(), manifest.to_vec()),
        ),
        (
            format!("/v2/{repo}/manifests/{manifest_digest}"),
            (mt, manifest.to_vec()),
        ),
        (
            format!("/v2/{repo}/blobs/{}", config.0),
            (bin.clone(), config.1.to_vec()),
        ),
        (
            format!("/v2/{repo}/blobs/{}", layer.0),
            (bin, layer.1.to_vec()),
        ),
    ])
}

#[test]
fn a_blob_that_does_not_match_its_digest_is_not_stored_and_the_pull_fails() {
    let dir = tempfile::tempdir().unwrap();
    let (manifest, config, layer) = tiny_image(dir.path());
    let (md, cd, ld) = (digest_of(&manifest), digest_of(&config), digest_of(&layer));

    // Control: the honest fake works through the cache.
    let honest = FakeUpstream::start(routes(
        "fake/img",
        &manifest,
        &md,
        (&cd, &config),
        (&ld, &layer),
    ));
    let proxy = start_proxy(&honest.url());
    let s = Store::new();
    berth_ok(&s, &["pull", &proxy.image_ref("fake/img:1")]);
    assert!(stored(&proxy, &ld) && stored(&proxy, &cd) && stored(&proxy, &md));
    drop(proxy);
    drop(honest);

    // The same layer with one byte flipped, same length.
    let mut bad = layer.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    let liar = FakeUpstream::start(routes(
        "fake/img",
        &manifest,
        &md,
        (&cd, &config),
        (&ld, &bad),
    ));
    let proxy = start_proxy(&liar.url());
    let o = berth(&Store::new(), &["pull", &proxy.image_ref("fake/img:1")]);
    assert!(
        !o.status.success(),
        "pull of a tampered layer succeeded: {}",
        text(&o)
    );
    assert!(
        liar.requests
            .lock()
            .unwrap()
            .contains(&format!("GET /v2/fake/img/blobs/{ld}")),
        "the cache never asked for the layer: {:?}",
        liar.requests.lock().unwrap()
    );
    assert!(!stored(&proxy, &ld), "the tampered layer was stored");
    let link = proxy.root().join(format!(
        "repositories/fake/img/_blobs/sha256/{}",
        ld.trim_start_matches("sha256:")
    ));
    assert!(!link.exists());
    assert!(tmp_files(&proxy).is_empty(), "{:?}", tmp_files(&proxy));
    assert!(proxy.log().contains("not stored"), "{}", proxy.log());

    // A client reading the blob directly gets a broken transfer, never the
    // whole (wrong) body.
    let out = dir.path().join("blob");
    let mut c = Command::new("curl");
    c.args(["-s", "--max-time", "30", "-o"])
        .arg(&out)
        .arg(format!("http://{}/v2/fake/img/blobs/{ld}", proxy.addr));
    let o = within(c, 60);
    assert!(!o.status.success(), "curl got a whole body: {}", text(&o));
    let got = std::fs::read(&out).unwrap_or_default();
    assert!(
        got.len() < bad.len(),
        "{} of {} bytes",
        got.len(),
        bad.len()
    );
    assert!(!stored(&proxy, &ld));
    // A second try fails the same way.
    let o = berth(&Store::new(), &["pull", &proxy.image_ref("fake/img:1")]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(!stored(&proxy, &ld));
}

#[test]
fn a_manifest_that_does_not_match_its_digest_is_refused_and_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let (manifest, config, layer) = tiny_image(dir.path());
    let (md, cd, ld) = (digest_of(&manifest), digest_of(&config), digest_of(&layer));
    // Asked by digest, the fake sends another (valid) manifest.
    let mut other: Value = serde_json::from_slice(&manifest).unwrap();
    other["annotations"] = json!({"tampered": "yes"});
    let other = serde_json::to_vec(&other).unwrap();
    let mut r = routes("fake/img", &manifest, &md, (&cd, &config), (&ld, &layer));
    r.insert(
        format!("/v2/fake/img/manifests/{md}"),
        ("application/vnd.oci.image.manifest.v1+json".into(), other),
    );
    // And a manifest larger than 4 MiB under tag `big`.
    let big = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
        "layers": [],
        "annotations": {"pad": "x".repeat(5 << 20)},
    }))
    .unwrap();
    r.insert(
        "/v2/fake/img/manifests/big".into(),
        ("application/vnd.oci.image.manifest.v1+json".into(), big),
    );
    let liar = FakeUpstream::start(r);
    let proxy = start_proxy(&liar.url());

    let m = proxy.req("GET", &format!("/v2/fake/img/manifests/{md}"), &[], b"");
    assert_eq!(
        (m.status, error_code(&m).as_str()),
        (502, "MANIFEST_INVALID"),
        "{}",
        m.text()
    );
    assert!(!stored(&proxy, &md));
    let o = berth(
        &Store::new(),
        &["pull", &proxy.image_ref(&format!("fake/img@{md}"))],
    );
    assert!(!o.status.success(), "{}", text(&o));
    // By tag the fake sends no Docker-Content-Digest: the cache takes the
    // manifest by tag and hashes it itself; that one is honest.
    let m = proxy.req("GET", "/v2/fake/img/manifests/1", &[], b"");
    assert_eq!(m.status, 200, "{}", m.text());
    assert_eq!(m.header("docker-content-digest"), Some(md.as_str()));
    assert_eq!(digest_of(&m.body), md);
    // Too big: refused, nothing stored, no tag.
    let m = proxy.req("GET", "/v2/fake/img/manifests/big", &[], b"");
    assert_eq!(
        (m.status, error_code(&m).as_str()),
        (502, "MANIFEST_INVALID"),
        "{}",
        m.text()
    );
    assert!(m.text().contains("larger than"), "{}", m.text());
    assert!(!proxy
        .root()
        .join("repositories/fake/img/_tags/big")
        .exists());
}

#[test]
fn an_index_and_its_platform_manifest_come_through_with_every_accept_header() {
    let up = Registry::start();
    let multi = images::multiplatform_layout();
    let idx = images::push_index(&multi, "index", &up, "lib/multi:1", images::Format::Oci);
    let proxy = start_proxy(&up.url());
    // Docker sends one Accept header per type; distribution answers an OCI
    // index only to a client that accepts it, so all must reach upstream.
    let m = proxy.req(
        "GET",
        "/v2/lib/multi/manifests/1",
        &[
            (
                "Accept",
                "application/vnd.docker.distribution.manifest.v2+json",
            ),
            ("Accept", "application/vnd.oci.image.index.v1+json"),
        ],
        b"",
    );
    assert_eq!(m.status, 200, "{}", m.text());
    assert_eq!(
        m.header("content-type"),
        Some("application/vnd.oci.image.index.v1+json")
    );
    assert_eq!(digest_of(&m.body), idx);
    // berth pulls the host's platform through the index.
    let s = Store::new();
    let r = proxy.image_ref("lib/multi:1");
    berth_ok(&s, &["pull", &r]);
    let host = multi.descriptor(images::host_arch())["digest"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(stored(&proxy, &idx) && stored(&proxy, &host));
    assert_eq!(s.inspect(&r)["Architecture"], images::host_arch());
}
