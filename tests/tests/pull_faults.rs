//! `berth pull` under faults, against a real docker-registry on loopback:
//! concurrent pulls into one store, `kill -9` mid-download (and the resume
//! with Range), a registry killed mid-pull, an image whose config diff_ids
//! do not match its layers. Also `history` and `image prune` on the store
//! such pulls leave.
//!
//! Downloads are slowed down by a throttling TCP proxy written here (plain
//! http on loopback), which also records the requests berth sends.

use berth_integration::engine::{busybox, text, Opts, Store};
use berth_integration::images::{self, OciLayout};
use berth_integration::registry::Registry;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Output};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// This file's stores set `DOCKER_CONFIG` but not `BERTH_CONFIG`.
fn new_store() -> Store {
    Store::with(Opts {
        berth_config: false,
        ..Opts::default()
    })
}

/// What these tests look at in a store.
trait StoreExt {
    fn layers(&self) -> Vec<String>;
    fn blobs(&self) -> Vec<String>;
    fn ingest_bytes(&self) -> u64;
}

impl StoreExt for Store {
    /// Committed layer dirs (not staging `tmp-*`).
    fn layers(&self) -> Vec<String> {
        self.names("layers")
            .into_iter()
            .filter(|n| !n.starts_with("tmp-"))
            .collect()
    }

    fn blobs(&self) -> Vec<String> {
        self.names("blobs/sha256")
    }

    /// Size of the largest partial download under `ingest/`.
    fn ingest_bytes(&self) -> u64 {
        self.names("ingest")
            .iter()
            .filter_map(|k| {
                std::fs::metadata(self.root.path().join("ingest").join(k).join("data")).ok()
            })
            .map(|m| m.len())
            .max()
            .unwrap_or(0)
    }
}

fn big() -> &'static OciLayout {
    static L: OnceLock<OciLayout> = OnceLock::new();
    L.get_or_init(|| {
        let l = images::big_random_layout();
        l.remove_at_exit();
        l
    })
}

/// The digests (`hex`) an image should leave in `blobs/`: manifest, config
/// and layers.
fn expected_blobs(l: &OciLayout, tag: &str) -> Vec<String> {
    let d = l.descriptor(tag);
    let m = l.manifest(tag);
    let mut v = vec![
        d["digest"].as_str().unwrap()[7..].to_string(),
        m["config"]["digest"].as_str().unwrap()[7..].to_string(),
    ];
    for layer in m["layers"].as_array().unwrap() {
        v.push(layer["digest"].as_str().unwrap()[7..].to_string());
    }
    v
}

/// Waits for `child` at most `limit`; kills it and panics past that.
fn wait_for(mut child: Child, limit: Duration) -> Output {
    let t0 = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let o = child.wait_with_output().unwrap();
            panic!("berth did not finish within {limit:?}: {}", text(&o));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls until `f` holds (or panics after `limit`).
fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------------------
// A throttling TCP proxy in front of the registry.

struct Proxy {
    addr: String,
    /// Bytes per second from the registry to berth, per connection; 0 = no limit.
    rate: Arc<AtomicU64>,
    /// Everything berth sent (request heads), lossily as text.
    requests: Arc<Mutex<String>>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    fn start(upstream: &str, rate: u64) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let p = Proxy {
            addr,
            rate: Arc::new(AtomicU64::new(rate)),
            requests: Arc::new(Mutex::new(String::new())),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let (rate, requests, stop) = (p.rate.clone(), p.requests.clone(), p.stop.clone());
        let upstream = upstream.to_string();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = conn else { continue };
                let Ok(server) = TcpStream::connect(&upstream) else {
                    // Registry gone: the connection is refused, as it would be.
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let log = requests.clone();
                std::thread::spawn(move || pipe(c2, s2, None, Some(log)));
                let rate = rate.clone();
                std::thread::spawn(move || pipe(server, client, Some(rate), None));
            }
        });
        p
    }

    fn image_ref(&self, repo_tag: &str) -> String {
        format!("{}/{repo_tag}", self.addr)
    }

    fn requests(&self) -> String {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
    }
}

/// Copies `from` to `to` (at most `rate` bytes/s), logging what passes.
fn pipe(
    mut from: TcpStream,
    mut to: TcpStream,
    rate: Option<Arc<AtomicU64>>,
    log: Option<Arc<Mutex<String>>>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    let t0 = Instant::now();
    let mut sent = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(log) = &log {
            log.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        // Small writes, so that the throttle is smooth.
        for chunk in buf[..n].chunks(16 * 1024) {
            if let Some(r) = rate.as_ref().map(|r| r.load(Ordering::SeqCst)) {
                if r > 0 {
                    let due = Duration::from_secs_f64(sent as f64 / r as f64);
                    if let Some(wait) = due.checked_sub(t0.elapsed()) {
                        std::thread::sleep(wait);
                    }
                }
            }
            if to.write_all(chunk).is_err() {
                let _ = from.shutdown(Shutdown::Both);
                return;
            }
            sent += chunk.len() as u64;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

// ---------------------------------------------------------------------------

#[test]
fn concurrent_pulls_into_one_store_share_every_blob_and_layer() {
    let reg = Registry::start();
    let wh = images::multilayer_with_whiteouts();
    images::push(&wh, "latest", &reg, "wh:1");
    images::push(big(), "latest", &reg, "big:1");
    // The big one through a throttle, so both pulls overlap on its ingest.
    let proxy = Proxy::start(&reg.addr, 24 << 20);
    let s = new_store();
    let wr = reg.image_ref("wh:1");
    let br = proxy.image_ref("big:1");
    let kids = vec![
        s.spawn(&["pull", &wr]),
        s.spawn(&["pull", &wr]),
        s.spawn(&["pull", &br]),
        s.spawn(&["pull", &br]),
    ];
    for k in kids {
        let o = wait_for(k, Duration::from_secs(120));
        assert!(o.status.success(), "{}", text(&o));
    }
    let imgs = s.images();
    assert_eq!(imgs.len(), 2, "{imgs:?}");
    let mut want = expected_blobs(&wh, "latest");
    want.extend(expected_blobs(big(), "latest"));
    want.sort();
    want.dedup();
    assert_eq!(s.blobs(), want);
    // 3 layers + 1, each once; no staging dir, partial download or temp file left.
    let all = s.names("layers");
    assert_eq!(all.len(), 4, "{all:?}");
    assert!(all.iter().all(|n| !n.starts_with("tmp-")), "{all:?}");
    assert!(s.names("ingest").is_empty(), "{:?}", s.names("ingest"));
    assert!(s.names("tmp").is_empty(), "{:?}", s.names("tmp"));
}

#[test]
fn kill_9_mid_download_leaves_nothing_visible_and_the_next_pull_resumes() {
    let reg = Registry::start();
    images::push(big(), "latest", &reg, "big:1");
    let proxy = Proxy::start(&reg.addr, 8 << 20);
    let s = new_store();
    let r = proxy.image_ref("big:1");
    let mut child = s.spawn(&["pull", &r]);
    wait_until("a partial download", Duration::from_secs(60), || {
        s.ingest_bytes() > 4 << 20
    });
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let partial = s.ingest_bytes();
    assert!(
        partial > 0 && partial < images::BIG_LAYER_BYTES as u64,
        "{partial}"
    );
    assert!(s.images().is_empty());
    assert!(s.layers().is_empty(), "{:?}", s.layers());
    let layer_hex = expected_blobs(big(), "latest").pop().unwrap();
    assert!(!s.blobs().contains(&layer_hex), "partial blob is visible");
    // The next pull completes, resuming where the killed one stopped.
    proxy.rate.store(0, Ordering::SeqCst);
    let out = s.ok(&["pull", &r]);
    assert!(out.contains("Downloaded newer image"), "{out}");
    let reqs = proxy.requests().to_ascii_lowercase();
    assert!(
        reqs.contains(&format!("range: bytes={partial}-")),
        "no Range resume from byte {partial} in:\n{reqs}"
    );
    assert_eq!(s.images().len(), 1);
    assert_eq!(s.layers().len(), 1);
    assert!(s.names("ingest").is_empty());
}

#[test]
fn registry_killed_mid_pull_gives_a_clear_error_and_nothing_visible() {
    let reg = Registry::start();
    images::push(big(), "latest", &reg, "big:1");
    let proxy = Proxy::start(&reg.addr, 8 << 20);
    let s = new_store();
    let child = s.spawn(&["pull", &proxy.image_ref("big:1")]);
    wait_until("a partial download", Duration::from_secs(60), || {
        s.ingest_bytes() > 4 << 20
    });
    // SAFETY: kill(2) of the registry process this test started.
    assert_eq!(unsafe { libc::kill(reg.pid() as i32, libc::SIGKILL) }, 0);
    let o = wait_for(child, Duration::from_secs(120));
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.starts_with("berth: "), "{err}");
    assert!(
        err.contains("giving up") && err.contains(&proxy.addr),
        "unclear error: {err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(s.images().is_empty());
    assert!(s.layers().is_empty(), "{:?}", s.layers());
}

/// A copy of busybox whose config's first diff_id is wrong (the manifest,
/// config and layer digests are all consistent otherwise).
fn busybox_with_wrong_diff_id() -> OciLayout {
    let l = images::busybox_oci_layout();
    let mut m = l.manifest("latest");
    let mut cfg = l.config("latest");
    let bogus = format!("sha256:{}", images::sha256_hex(b"not this layer"));
    cfg["rootfs"]["diff_ids"][0] = json!(bogus);
    let put = |v: &Value| -> (String, usize) {
        let bytes = serde_json::to_vec(v).unwrap();
        let d = format!("sha256:{}", images::sha256_hex(&bytes));
        std::fs::write(l.blob_path(&d), &bytes).unwrap();
        (d, bytes.len())
    };
    let (cd, cs) = put(&cfg);
    m["config"]["digest"] = json!(cd);
    m["config"]["size"] = json!(cs);
    let (md, ms) = put(&m);
    let mut index = l.index();
    for d in index["manifests"].as_array_mut().unwrap() {
        if d["annotations"]["org.opencontainers.image.ref.name"] == "latest" {
            d["digest"] = json!(md);
            d["size"] = json!(ms);
        }
    }
    std::fs::write(
        l.path().join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    l
}

#[test]
fn config_diff_ids_not_matching_the_layers_is_an_error_and_nothing_stored() {
    let reg = Registry::start();
    let l = busybox_with_wrong_diff_id();
    images::push(&l, "latest", &reg, "lies:1");
    let s = new_store();
    let o = s.berth(&["pull", &reg.image_ref("lies:1")]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("image config says"), "{err}");
    assert!(s.images().is_empty());
    // No layer dir, not even a staging one.
    assert!(s.names("layers").is_empty(), "{:?}", s.names("layers"));
}

#[test]
fn history_and_image_prune() {
    let reg = Registry::start();
    let wh = images::multilayer_with_whiteouts();
    images::push(&wh, "latest", &reg, "wh:1");
    let s = new_store();
    let r = reg.image_ref("wh:1");
    s.ok(&["pull", "-q", &r]);
    // history: newest first, Docker's columns, one row per history entry.
    let out = s.ok(&["history", &r]);
    let lines: Vec<&str> = out.lines().collect();
    for col in ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"] {
        assert!(lines[0].contains(col), "{out}");
    }
    let hist = wh.config("latest")["history"].as_array().unwrap().len();
    assert_eq!(lines.len(), hist + 1, "{out}");
    let id = s.images()[0]["ID"].as_str().unwrap().to_string();
    assert!(lines[1].starts_with(&id), "{out}");
    assert!(lines[2].starts_with("<missing>"), "{out}");
    assert!(lines[1].contains("berth-test: rm /data/a"), "{out}");
    let json: Vec<Value> = s
        .ok(&["image", "history", "--format", "json", "--no-trunc", &r])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(json.len(), hist);
    assert!(json[0]["ID"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(
        json[0]["CreatedBy"],
        "berth-test: rm /data/a; opaque /opt/keep with y"
    );
    // The top layer holds one 2-byte file; the whiteout and dirs count 0.
    assert_eq!(json[0]["Size"], "2B");
    let q = s.ok(&["history", "-q", &r]);
    assert_eq!(q.lines().count(), hist);
    let o = s.berth(&["history", "nope:1"]);
    assert!(!o.status.success());

    // prune: the tag moves to another image in the registry and is pulled
    // again; the old image is left untagged (dangling), the new one is not.
    images::push(busybox(), "latest", &reg, "wh:1");
    s.ok(&["pull", "-q", &r]);
    let before = s.images();
    assert_eq!(before.len(), 2, "{before:?}");
    // Without -f and no "y" on stdin: nothing happens.
    s.ok(&["image", "prune"]);
    assert_eq!(s.images().len(), 2);
    let out = s.ok(&["image", "prune", "-f"]);
    assert!(out.contains("Deleted Images:"), "{out}");
    assert!(out.contains("deleted: sha256:"), "{out}");
    assert!(out.contains("Total reclaimed space: "), "{out}");
    assert!(!out.contains("Total reclaimed space: 0B"), "{out}");
    let after = s.images();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0]["Tag"], "1");
    assert_ne!(after[0]["ID"].as_str().unwrap(), id);
    assert_eq!(s.layers().len(), 1);
    assert_eq!(s.blobs(), {
        let mut v = expected_blobs(busybox(), "latest");
        v.sort();
        v
    });
    // Nothing dangling left.
    let out = s.ok(&["image", "prune", "-f"]);
    assert!(out.contains("Total reclaimed space: 0B"), "{out}");
    // -a removes every image, and every blob and layer with it.
    let out = s.ok(&["image", "prune", "-a", "-f"]);
    assert!(out.contains(&format!("untagged: {r}")), "{out}");
    assert!(s.images().is_empty());
    assert!(s.layers().is_empty());
    assert!(s.blobs().is_empty());
}
