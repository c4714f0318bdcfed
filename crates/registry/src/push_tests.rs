use super::*;
use crate::ClientConfig;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

#[test]
fn relative_location_keeps_its_query() {
    let d = format!("sha256:{}", "a".repeat(64));
    let t = upload_target("a/b", "/v2/a/b/blobs/uploads/u1?_state=x%2By&n=1", &d).unwrap();
    assert_eq!(
        t,
        format!(
            "/v2/a/b/blobs/uploads/u1?_state=x%2By&n=1&digest=sha256%3A{}",
            "a".repeat(64)
        )
    );
    // Relative to the uploads endpoint, without a leading slash.
    let t = upload_target("a/b", "u2", &d).unwrap();
    assert!(
        t.starts_with("/v2/a/b/blobs/uploads/u2?digest=sha256%3A"),
        "{t}"
    );
}

#[test]
fn absolute_location_stays_absolute() {
    let d = format!("sha256:{}", "b".repeat(64));
    let t = upload_target("r", "https://uploads.example:8443/up/1?sig=abc", &d).unwrap();
    assert_eq!(
        t,
        format!(
            "https://uploads.example:8443/up/1?sig=abc&digest=sha256%3A{}",
            "b".repeat(64)
        )
    );
    assert!(upload_target("r", "ftp://x/y", &d).is_err());
}

// ---------------------------------------------------------------------------
// A scripted plain-http registry on loopback.

#[derive(Clone, Debug)]
struct Seen {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

type Reply = (u16, Vec<(String, String)>);
type Handler = dyn Fn(&Seen, usize) -> Reply + Send + Sync;

struct Fake {
    host: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

fn read_request(s: &mut TcpStream) -> Option<Seen> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    let end = loop {
        if let Some(p) = find(&buf, b"\r\n\r\n") {
            break p;
        }
        let n = s.read(&mut tmp).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
        if buf[0] == 0x16 {
            return None; // a TLS handshake: the client falls back to http
        }
    };
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let target = first.next()?.to_string();
    if !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return None;
    }
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[end + 4..].to_vec();
    while body.len() < len {
        let n = s.read(&mut tmp).ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&tmp[..n]);
    }
    Some(Seen {
        method,
        target,
        headers,
        body,
    })
}

impl Fake {
    /// Answers every request with `handler(request, index)`; one request
    /// per connection.
    fn start(handler: Box<Handler>) -> Fake {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let host = l.local_addr().unwrap().to_string();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let log = seen.clone();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(mut s) = conn else { continue };
                let Some(req) = read_request(&mut s) else {
                    continue;
                };
                let i = {
                    let mut l = log.lock().unwrap();
                    l.push(req.clone());
                    l.len() - 1
                };
                let (status, headers) = handler(&req, i);
                let mut out = format!("HTTP/1.1 {status} X\r\nConnection: close\r\n");
                for (k, v) in &headers {
                    out.push_str(&format!("{k}: {v}\r\n"));
                }
                out.push_str("Content-Length: 0\r\n\r\n");
                let _ = s.write_all(out.as_bytes());
            }
        });
        Fake { host, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn client() -> Client {
    Client::new(ClientConfig {
        max_retries: 2,
        ..ClientConfig::default()
    })
    .unwrap()
}

fn h(k: &str, v: &str) -> (String, String) {
    (k.to_string(), v.to_string())
}

fn blob_file(data: &[u8]) -> (tempfile::TempDir, std::path::PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("blob");
    std::fs::write(&p, data).unwrap();
    (dir, p, sha256_digest(data))
}

#[test]
fn existing_blob_is_not_uploaded() {
    let fake = Fake::start(Box::new(|_, _| (200, vec![])));
    let (_d, p, digest) = blob_file(b"layer");
    let b = LocalBlob {
        digest: &digest,
        size: 5,
        path: &p,
    };
    let r = client().push_blob(&fake.host, "a/b", &b, None).unwrap();
    assert_eq!(r, BlobPush::Exists);
    let seen = fake.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].method, "HEAD");
    assert_eq!(seen[0].target, format!("/v2/a/b/blobs/{digest}"));
}

#[test]
fn declined_mount_falls_back_to_the_returned_location() {
    let fake = Fake::start(Box::new(|req, _| match req.method.as_str() {
        "HEAD" => (404, vec![]),
        "POST" => (
            202,
            vec![h("Location", "/v2/a/b/blobs/uploads/u1?_state=s%3D1")],
        ),
        _ => (201, vec![]),
    }));
    let data = b"some layer bytes".repeat(1000);
    let (_d, p, digest) = blob_file(&data);
    let b = LocalBlob {
        digest: &digest,
        size: data.len() as u64,
        path: &p,
    };
    let r = client()
        .push_blob(&fake.host, "a/b", &b, Some("other/repo"))
        .unwrap();
    assert_eq!(r, BlobPush::Uploaded);
    let seen = fake.seen();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(
        seen[1].target,
        format!("/v2/a/b/blobs/uploads/?mount={digest}&from=other/repo")
    );
    let put = &seen[2];
    assert_eq!(put.method, "PUT");
    assert_eq!(
        put.target,
        format!(
            "/v2/a/b/blobs/uploads/u1?_state=s%3D1&digest={}",
            digest.replace(':', "%3A")
        )
    );
    assert_eq!(
        put.header("content-length"),
        Some(data.len().to_string().as_str())
    );
    assert_eq!(put.body, data);
}

#[test]
fn accepted_mount_sends_nothing() {
    let fake = Fake::start(Box::new(|req, _| match req.method.as_str() {
        "HEAD" => (404, vec![]),
        _ => (201, vec![]),
    }));
    let (_d, p, digest) = blob_file(b"x");
    let b = LocalBlob {
        digest: &digest,
        size: 1,
        path: &p,
    };
    let r = client()
        .push_blob(&fake.host, "a/b", &b, Some("src"))
        .unwrap();
    assert_eq!(
        r,
        BlobPush::Mounted {
            from: "src".to_string()
        }
    );
    assert_eq!(fake.seen().len(), 2);
}

#[test]
fn failed_upload_starts_a_new_session() {
    let fake = Fake::start(Box::new(|req, _| match req.method.as_str() {
        "HEAD" => (404, vec![]),
        "POST" => (202, vec![h("Location", "/v2/r/blobs/uploads/u")]),
        _ => (503, vec![]),
    }));
    let (_d, p, digest) = blob_file(b"abc");
    let b = LocalBlob {
        digest: &digest,
        size: 3,
        path: &p,
    };
    let e = client().push_blob(&fake.host, "r", &b, None).unwrap_err();
    assert!(
        e.to_string().contains("after 3 attempts"),
        "{e}: {:?}",
        fake.seen()
    );
    let posts = fake.seen().iter().filter(|s| s.method == "POST").count();
    assert_eq!(posts, 3, "every attempt opens a new upload session");
}

#[test]
fn upload_without_location_is_a_clear_error() {
    let fake = Fake::start(Box::new(|req, _| match req.method.as_str() {
        "HEAD" => (404, vec![]),
        _ => (202, vec![]),
    }));
    let (_d, p, digest) = blob_file(b"abc");
    let b = LocalBlob {
        digest: &digest,
        size: 3,
        path: &p,
    };
    let e = client().push_blob(&fake.host, "r", &b, None).unwrap_err();
    assert!(e.to_string().contains("without a usable Location"), "{e}");
}

#[test]
fn manifest_put_sends_type_and_checks_the_answer() {
    let bytes = br#"{"schemaVersion":2}"#;
    let good = sha256_digest(bytes);
    let answer = good.clone();
    let fake = Fake::start(Box::new(move |_, i| {
        let d = if i == 0 {
            answer.clone()
        } else {
            format!("sha256:{}", "0".repeat(64))
        };
        (201, vec![h("Docker-Content-Digest", &d)])
    }));
    let c = client();
    let d = c
        .push_manifest(&fake.host, "a", "v1", bytes, crate::OCI_IMAGE_MANIFEST)
        .unwrap();
    assert_eq!(d, good);
    let seen = fake.seen();
    assert_eq!(seen[0].method, "PUT");
    assert_eq!(seen[0].target, "/v2/a/manifests/v1");
    assert_eq!(
        seen[0].header("content-type"),
        Some(crate::OCI_IMAGE_MANIFEST)
    );
    assert_eq!(seen[0].body, bytes);
    let e = c
        .push_manifest(&fake.host, "a", "v1", bytes, crate::OCI_IMAGE_MANIFEST)
        .unwrap_err();
    assert!(matches!(e, Error::PushedDigestMismatch { .. }), "{e}");
}

#[test]
fn refused_push_asks_for_login() {
    let fake = Fake::start(Box::new(|_, _| {
        (401, vec![h("WWW-Authenticate", "Basic realm=\"x\"")])
    }));
    let e = client()
        .push_manifest(&fake.host, "a", "v1", b"{}", crate::OCI_IMAGE_MANIFEST)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("authentication required: run berth login {}", fake.host)
    );
}
