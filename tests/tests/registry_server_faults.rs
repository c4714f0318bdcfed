//! `berth registry serve` under faults: `kill -9` in the middle of an
//! upload (the upload resumes after a restart, nothing half-written is
//! served), `kill -9` during a `berth push` (the push can be repeated), and
//! a pull during a push of the same tag (old or new manifest, never broken).

use berth_integration::berth_registry::BerthRegistry;
use berth_integration::containers::*;

fn digest_of(b: &[u8]) -> String {
    use std::io::Write;
    let mut c = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(b).unwrap();
    let o = c.wait_with_output().unwrap();
    format!(
        "sha256:{}",
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .next()
            .unwrap()
    )
}

/// Starts an upload into `repo` (a `/v2/...` path) and sends its first
/// 32 KiB chunk; the upload's location.
fn upload_first_chunk(reg: &BerthRegistry, repo: &str, data: &[u8]) -> String {
    let r = reg.req("POST", &format!("{repo}/blobs/uploads/"), &[], b"");
    assert_eq!(r.status, 202, "{}", r.text());
    let loc = r.header("location").unwrap().to_string();
    let r = reg.req(
        "PATCH",
        &loc,
        &[("Content-Range", "0-32767")],
        &data[..32768],
    );
    assert_eq!(r.status, 202, "{}", r.text());
    loc
}

#[test]
fn kill_9_mid_upload_then_the_upload_resumes() {
    let mut reg = BerthRegistry::start();
    let data: Vec<u8> = (0..65536u32).map(|i| (i % 251) as u8).collect();
    let d = digest_of(&data);
    let loc = upload_first_chunk(&reg, "/v2/faults/up", &data);
    reg.kill9_and_restart();
    // Nothing of it is served yet.
    let r = reg.req("HEAD", &format!("/v2/faults/up/blobs/{d}"), &[], b"");
    assert_eq!(r.status, 404);
    let r = reg.req("GET", &loc, &[], b"");
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(r.header("range"), Some("0-32767"));
    let r = reg.req(
        "PATCH",
        &loc,
        &[("Content-Range", "32768-65535")],
        &data[32768..],
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let r = reg.req("PUT", &format!("{loc}?digest={d}"), &[], b"");
    assert_eq!(r.status, 201, "{}", r.text());
    let r = reg.req("GET", &format!("/v2/faults/up/blobs/{d}"), &[], b"");
    assert_eq!(r.body, data);
}

/// A client that goes away in the middle of a chunk leaves the upload as
/// it was before that chunk: its cleanup (the write in flight, then the cut
/// back) is done under the upload's lock, so the client's retry of the same
/// chunk right away is taken, and the blob is whole.
#[test]
fn a_client_gone_mid_chunk_leaves_the_upload_as_it_was() {
    use std::io::Write;
    let reg = BerthRegistry::start();
    let data: Vec<u8> = (0..(6u32 << 20)).map(|i| (i % 253) as u8).collect();
    let d = digest_of(&data);
    for round in 0..3 {
        let repo = format!("/v2/faults/gone{round}");
        let loc = upload_first_chunk(&reg, &repo, &data);
        // Announce the rest, send most of it, and hang up.
        let rest = &data[32768..];
        let mut s = std::net::TcpStream::connect(&reg.addr).unwrap();
        write!(
            s,
            "PATCH {loc} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/octet-stream\r\n\
             Content-Range: 32768-{}\r\nContent-Length: {}\r\n\r\n",
            reg.addr,
            data.len() - 1,
            rest.len()
        )
        .unwrap();
        s.write_all(&rest[..rest.len() - 4096]).unwrap();
        s.flush().unwrap();
        drop(s);
        // The same chunk again, at once.
        let r = reg.req(
            "PATCH",
            &loc,
            &[("Content-Range", &format!("32768-{}", data.len() - 1))],
            rest,
        );
        assert_eq!(r.status, 202, "round {round}: {}", r.text());
        assert_eq!(
            r.header("range"),
            Some(format!("0-{}", data.len() - 1).as_str())
        );
        let r = reg.req("PUT", &format!("{loc}?digest={d}"), &[], b"");
        assert_eq!(r.status, 201, "round {round}: {}", r.text());
        let r = reg.req("GET", &format!("{repo}/blobs/{d}"), &[], b"");
        assert!(r.body == data, "round {round}: the blob differs");
    }
}

#[test]
fn kill_9_during_berth_push_then_push_again() {
    let mut reg = BerthRegistry::start();
    let c = Ctx::new();
    let target = reg.image_ref("faults/app:1");
    commit_big(&c, &target, 16777216);
    let p = c.spawn(&["push", &target]);
    std::thread::sleep(std::time::Duration::from_millis(150));
    reg.kill9_and_restart();
    let _ = p.finish(60.0);
    // Whatever the tag names now is whole: every blob it references is there.
    let r = reg.req(
        "GET",
        "/v2/faults/app/manifests/1",
        &[("Accept", "application/vnd.oci.image.manifest.v1+json")],
        b"",
    );
    if r.status == 200 {
        let m: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        for b in m["layers"]
            .as_array()
            .unwrap()
            .iter()
            .chain(std::iter::once(&m["config"]))
        {
            let d = b["digest"].as_str().unwrap();
            let h = reg.req("HEAD", &format!("/v2/faults/app/blobs/{d}"), &[], b"");
            assert_eq!(h.status, 200, "manifest served before its blob {d}");
        }
    } else {
        assert_eq!(r.status, 404, "{}", r.text());
    }
    push_again_and_pull(&c, &target, 16777216);
}

#[test]
fn a_pull_during_a_push_of_the_same_tag_sees_old_or_new() {
    let reg = BerthRegistry::start();
    let c = Ctx::new();
    let target = reg.image_ref("race/app:t");
    c.ok(&["tag", IMG, &target]);
    c.ok(&["push", &target]);
    let accept = [(
        "Accept",
        "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json",
    )];
    let first = reg.req("GET", "/v2/race/app/manifests/t", &accept, b"");
    let old = first.header("docker-content-digest").unwrap().to_string();
    // A second image for the same tag.
    c.run_d(&["--name", "bnew", IMG, "sleep", "1000"]);
    c.ok(&["exec", "bnew", "sh", "-c", "echo new > /root/new"]);
    c.ok(&["commit", "bnew", &target]);
    c.ok(&["rm", "-f", "bnew"]);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let seen = std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut seen = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let r = reg.req("GET", "/v2/race/app/manifests/t", &accept, b"");
                assert_eq!(r.status, 200, "{}", r.text());
                let d = r.header("docker-content-digest").unwrap().to_string();
                assert_eq!(digest_of(&r.body), d, "a body that is not its digest");
                seen.push(d);
            }
            seen
        });
        c.ok(&["push", &target]);
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        reader.join().unwrap()
    });
    let last = reg.req("GET", "/v2/race/app/manifests/t", &accept, b"");
    let new = last.header("docker-content-digest").unwrap().to_string();
    assert_ne!(old, new);
    assert!(!seen.is_empty());
    for d in &seen {
        assert!(d == &old || d == &new, "unknown manifest {d} served");
    }
    c.assert_empty();
}
