//! Blob downloads against fake registries that misbehave.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine;
use berth_registry::{Client, ClientConfig, Credential, Error};
use common::*;

fn client_with(f: impl FnOnce(&mut ClientConfig)) -> Client {
    let mut cfg = ClientConfig::default();
    f(&mut cfg);
    Client::new(cfg).unwrap()
}

fn client() -> Client {
    client_with(|_| {})
}

fn blob_path(bytes: &[u8]) -> String {
    format!("/v2/team/app/blobs/{}", digest(bytes))
}

#[test]
fn anonymous_blob_with_progress() {
    let blob = blob_bytes(700_000, 1);
    let mut content = Content::default();
    content.blobs.insert(digest(&blob), blob.clone());
    let server = Server::start(move |req, s| assert!(content.serve(req, s)));
    let dir = tempfile::tempdir().unwrap();
    let (path, mut f) = ingest_file(&dir, b"");
    let mut calls = Vec::new();
    client()
        .fetch_blob(
            &server.host(),
            "team/app",
            &digest(&blob),
            Some(blob.len() as u64),
            &mut f,
            &mut |done, total| calls.push((done, total)),
        )
        .unwrap();
    assert_eq!(std::fs::read(path).unwrap(), blob);
    let total = Some(blob.len() as u64);
    assert_eq!(calls.last(), Some(&(blob.len() as u64, total)));
    assert!(calls.windows(2).all(|w| w[0].0 <= w[1].0));
    assert!(calls.iter().all(|c| c.1 == total));
    assert_eq!(server.requests()[0].target, blob_path(&blob));
}

#[test]
fn blob_without_expected_size() {
    let blob = blob_bytes(1000, 2);
    let mut content = Content::default();
    content.blobs.insert(digest(&blob), blob.clone());
    let server = Server::start(move |req, s| assert!(content.serve(req, s)));
    let dir = tempfile::tempdir().unwrap();
    let (path, mut f) = ingest_file(&dir, b"");
    client()
        .fetch_blob(
            &server.host(),
            "team/app",
            &digest(&blob),
            None,
            &mut f,
            &mut |_, _| {},
        )
        .unwrap();
    assert_eq!(std::fs::read(path).unwrap(), blob);
}

#[test]
fn dropped_connection_is_resumed_with_a_range_request() {
    const CUT: usize = 300_000;
    let blob = blob_bytes(1 << 20, 3);
    let blob2 = blob.clone();
    let n = Arc::new(AtomicUsize::new(0));
    let n2 = n.clone();
    let server = Server::start(move |req, s| {
        if n2.fetch_add(1, Ordering::SeqCst) == 0 {
            // Announce it all, send part, hang up.
            respond_partial(s, 200, &[], blob2.len(), &blob2[..CUT]);
        } else {
            serve_range(s, req, &blob2);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let (path, mut f) = ingest_file(&dir, b"");
    let mut last = 0;
    client()
        .fetch_blob(
            &server.host(),
            "team/app",
            &digest(&blob),
            Some(blob.len() as u64),
            &mut f,
            &mut |done, _| last = done,
        )
        .unwrap();
    assert_eq!(last, blob.len() as u64);
    assert!(std::fs::read(path).unwrap() == blob, "file differs");
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].header("range"), None);
    assert_eq!(
        reqs[1].header("range"),
        Some(format!("bytes={CUT}-").as_str())
    );
}

#[test]
fn partial_file_from_an_earlier_run_is_resumed() {
    let blob = blob_bytes(100_000, 4);
    let mut content = Content::default();
    content.blobs.insert(digest(&blob), blob.clone());
    let server = Server::start(move |req, s| assert!(content.serve(req, s)));
    let dir = tempfile::tempdir().unwrap();
    let (path, mut f) = ingest_file(&dir, &blob[..40_000]);
    client()
        .fetch_blob(
            &server.host(),
            "team/app",
            &digest(&blob),
            Some(blob.len() as u64),
            &mut f,
            &mut |_, _| {},
        )
        .unwrap();
    assert!(std::fs::read(path).unwrap() == blob);
    assert_eq!(server.requests()[0].header("range"), Some("bytes=40000-"));
}

#[test]
fn append_only_file_is_resumed() {
    let blob = blob_bytes(50_000, 5);
    let mut content = Content::default();
    content.blobs.insert(digest(&blob), blob.clone());
    let server = Server::start(move |req, s| assert!(content.serve(req, s)));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ingest");
    std::fs::write(&path, &blob[..1234]).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    client()
        .fetch_blob(
            &server.host(),
            "team/app",
            &digest(&blob),
            None,
            &mut f,
            &mut |_, _| {},
        )
        .unwrap();
    assert!(std::fs::read(path).unwrap() == blob);
}

#[test]
fn complete_file_is_verified_without_downloading() {
    let blob = blob_bytes(10_000, 6);
    let server = Server::start(|req, s| respond(s, req, 500, &[], b""));
    let dir = tempfile::tempdir().unwrap();
    let (_, mut f) = ingest_file(&dir, &blob);
    client()
        .fetch_blob(
            &server.host(),
            "team/app",
            &digest(&blob),
            Some(blob.len() as u64),
            &mut f,
            &mut |_, _| {},
        )
        .unwrap();
    assert!(server.requests().is_empty());
}

#[test]
fn server_ignoring_range_restarts_from_zero() {
    let blob = blob_bytes(200_000, 7);
    let blob2 = blob.clone();
    let server = Server::start(move |req, s| respond(s, req, 200, &[], &blob2));
    let dir = tempfile::tempdir().unwrap();
    // The partial file even holds wrong bytes: they must all go.
    let (path, mut f) = ingest_file(&dir, &[0xAA; 5000]);
    client()
        .fetch_blob(
            &server.host(),
            "team/app",
            &digest(&blob),
            Some(blob.len() as u64),
            &mut f,
            &mut |_, _| {},
        )
        .unwrap();
    assert!(std::fs::read(path).unwrap() == blob);
    assert_eq!(server.requests()[0].header("range"), Some("bytes=5000-"));
}

#[test]
fn unsatisfiable_range_restarts() {
    let blob = blob_bytes(1000, 8);
    let blob2 = blob.clone();
    let server = Server::start(move |req, s| {
        if req.header("range").is_some() {
            respond(s, req, 416, &[], b"");
        } else {
            respond(s, req, 200, &[], &blob2);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let (path, mut f) = ingest_file(&dir, b"junk");
    client()
        .fetch_blob(
            &server.host(),
            "team/app",
            &digest(&blob),
            None,
            &mut f,
            &mut |_, _| {},
        )
        .unwrap();
    assert!(std::fs::read(path).unwrap() == blob);
}

#[test]
fn digest_mismatch_truncates_the_file() {
    let claimed = blob_bytes(1000, 9);
    let server = Server::start(|req, s| respond(s, req, 200, &[], &blob_bytes(1000, 10)));
    let host = server.host();
    let dir = tempfile::tempdir().unwrap();
    let (path, mut f) = ingest_file(&dir, b"");
    let d = digest(&claimed);
    let err = client()
        .fetch_blob(&host, "team/app", &d, Some(1000), &mut f, &mut |_, _| {})
        .unwrap_err();
    assert!(matches!(err, Error::BlobDigestMismatch { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&d) && msg.contains(&host), "{msg}");
    assert_eq!(std::fs::metadata(path).unwrap().len(), 0);
}

#[test]
fn oversized_blob_is_cut_off_and_truncated() {
    let served = blob_bytes(5000, 11);
    let served2 = served.clone();
    let server = Server::start(move |req, s| {
        // No Content-Length: the size is only known by reading.
        use std::io::Write;
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
        let _ = s.write_all(&served2);
        let _ = req;
    });
    let dir = tempfile::tempdir().unwrap();
    let (path, mut f) = ingest_file(&dir, b"");
    let err = client()
        .fetch_blob(
            &server.host(),
            "team/app",
            &digest(&served[..100]),
            Some(100),
            &mut f,
            &mut |_, _| {},
        )
        .unwrap_err();
    assert!(
        matches!(err, Error::BlobSizeMismatch { expected: 100, .. }),
        "{err}"
    );
    assert_eq!(std::fs::metadata(path).unwrap().len(), 0);
}

#[test]
fn wrong_content_length_fails_early() {
    let server = Server::start(|req, s| respond(s, req, 200, &[], &[1u8; 50]));
    let dir = tempfile::tempdir().unwrap();
    let (_, mut f) = ingest_file(&dir, b"");
    let err = client()
        .fetch_blob(
            &server.host(),
            "team/app",
            &digest(b"x"),
            Some(10),
            &mut f,
            &mut |_, _| {},
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::BlobSizeMismatch {
                expected: 10,
                actual: 50,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn blob_not_found_names_it() {
    let server = Server::start(|req, s| respond(s, req, 404, &[], b""));
    let host = server.host();
    let dir = tempfile::tempdir().unwrap();
    let (_, mut f) = ingest_file(&dir, b"");
    let d = digest(b"missing");
    let err = client()
        .fetch_blob(&host, "team/app", &d, None, &mut f, &mut |_, _| {})
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!("blob {d} in {host}/team/app not found")
    );
}

#[test]
fn redirect_to_another_host_drops_the_authorization_header() {
    let blob = blob_bytes(64_000, 12);
    let blob2 = blob.clone();
    let storage = Server::start(move |req, s| serve_range(s, req, &blob2));
    let location = format!(
        "http://localhost:{}/storage/blob?sig=abc",
        storage.addr.port()
    );
    let want = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("alice:pw")
    );
    let registry = Server::start(move |req, s| {
        if req.header("authorization") != Some(want.as_str()) {
            respond(
                s,
                req,
                401,
                &[("WWW-Authenticate", r#"Basic realm="r""#)],
                b"",
            );
        } else {
            respond(s, req, 307, &[("Location", &location)], b"");
        }
    });
    let host = registry.host();
    let c = client_with(|c| {
        c.credentials.insert(
            host.clone(),
            Credential::Basic {
                username: "alice".into(),
                password: "pw".into(),
            },
        );
    });
    let dir = tempfile::tempdir().unwrap();
    let (path, mut f) = ingest_file(&dir, b"");
    c.fetch_blob(
        &host,
        "team/app",
        &digest(&blob),
        Some(64_000),
        &mut f,
        &mut |_, _| {},
    )
    .unwrap();
    assert!(std::fs::read(path).unwrap() == blob);
    let at_storage = storage.requests();
    assert_eq!(at_storage.len(), 1);
    assert_eq!(at_storage[0].target, "/storage/blob?sig=abc");
    assert_eq!(at_storage[0].header("authorization"), None);
    assert!(registry
        .requests()
        .iter()
        .any(|r| r.header("authorization").is_some()));
}

#[test]
fn redirect_within_the_registry_keeps_the_authorization_header() {
    let blob = blob_bytes(1000, 13);
    let blob2 = blob.clone();
    let registry = Server::start(move |req, s| {
        if req.header("authorization") != Some("Basic YTpi") {
            respond(
                s,
                req,
                401,
                &[("WWW-Authenticate", r#"Basic realm="r""#)],
                b"",
            );
        } else if req.path().starts_with("/v2/") {
            respond(s, req, 307, &[("Location", "/elsewhere/blob")], b"");
        } else {
            respond(s, req, 200, &[], &blob2);
        }
    });
    let host = registry.host();
    let c = client_with(|c| {
        c.credentials.insert(
            host.clone(),
            Credential::Basic {
                username: "a".into(),
                password: "b".into(),
            },
        );
    });
    let dir = tempfile::tempdir().unwrap();
    let (path, mut f) = ingest_file(&dir, b"");
    c.fetch_blob(
        &host,
        "team/app",
        &digest(&blob),
        None,
        &mut f,
        &mut |_, _| {},
    )
    .unwrap();
    assert!(std::fs::read(path).unwrap() == blob);
}

#[test]
fn retries_exhausted_names_host_and_digest() {
    let server = Server::start(|req, s| respond(s, req, 503, &[], b""));
    let host = server.host();
    let dir = tempfile::tempdir().unwrap();
    let (_, mut f) = ingest_file(&dir, b"");
    let d = digest(b"never");
    let err = client_with(|c| c.max_retries = 2)
        .fetch_blob(&host, "team/app", &d, None, &mut f, &mut |_, _| {})
        .unwrap_err();
    assert!(
        matches!(err, Error::RetriesExhausted { attempts: 3, .. }),
        "{err}"
    );
    let msg = err.to_string();
    assert!(msg.contains(&host) && msg.contains(&d), "{msg}");
    assert_eq!(server.requests().len(), 3);
}

#[test]
fn connection_refused_is_retried_then_reported() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let host = format!("127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let (_, mut f) = ingest_file(&dir, b"");
    let d = digest(b"x");
    let err = client_with(|c| c.max_retries = 1)
        .fetch_blob(&host, "team/app", &d, None, &mut f, &mut |_, _| {})
        .unwrap_err();
    assert!(matches!(err, Error::RetriesExhausted { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&host) && msg.contains(&d), "{msg}");
}

#[test]
fn repeated_drops_resume_until_done() {
    // Every response stops after 10 000 bytes: the download still completes
    // because each attempt gets further.
    let blob = blob_bytes(60_000, 14);
    let blob2 = blob.clone();
    let server = Server::start(move |req, s| {
        let start = req
            .header("range")
            .and_then(|r| r.strip_prefix("bytes="))
            .and_then(|r| r.strip_suffix('-'))
            .map(|n| n.parse::<usize>().unwrap())
            .unwrap_or(0);
        let end = (start + 10_000).min(blob2.len());
        let cr = format!("bytes {start}-{}/{}", blob2.len() - 1, blob2.len());
        let status = if start > 0 { 206 } else { 200 };
        respond_partial(
            s,
            status,
            &[("Content-Range", &cr)],
            blob2.len() - start,
            &blob2[start..end],
        );
    });
    let dir = tempfile::tempdir().unwrap();
    let (path, mut f) = ingest_file(&dir, b"");
    client_with(|c| c.max_retries = 1)
        .fetch_blob(
            &server.host(),
            "team/app",
            &digest(&blob),
            Some(60_000),
            &mut f,
            &mut |_, _| {},
        )
        .unwrap();
    assert!(std::fs::read(path).unwrap() == blob);
    assert_eq!(server.requests().len(), 6);
}

#[test]
fn parallel_downloads_share_one_client_and_token() {
    let blobs: Vec<Vec<u8>> = (0..4).map(|i| blob_bytes(30_000, 20 + i)).collect();
    let mut content = Content::default();
    for b in &blobs {
        content.blobs.insert(digest(b), b.clone());
    }
    let tokens = Arc::new(Mutex::new(0));
    let tokens2 = tokens.clone();
    let realm = Arc::new(std::sync::OnceLock::<String>::new());
    let realm2 = realm.clone();
    let server = Server::start(move |req, s| {
        if req.path() == "/token" {
            *tokens2.lock().unwrap() += 1;
            respond(s, req, 200, &[], br#"{"token":"t"}"#);
        } else if req.header("authorization") != Some("Bearer t") {
            let ch = format!(r#"Bearer realm="{}",service="s""#, realm2.get().unwrap());
            respond(s, req, 401, &[("WWW-Authenticate", &ch)], b"");
        } else {
            assert!(content.serve(req, s));
        }
    });
    realm
        .set(format!("http://{}/token", server.host()))
        .unwrap();
    let c = Arc::new(client());
    let dir = tempfile::tempdir().unwrap();
    std::thread::scope(|scope| {
        for (i, b) in blobs.iter().enumerate() {
            let c = c.clone();
            let host = server.host();
            let path = dir.path().join(format!("b{i}"));
            scope.spawn(move || {
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .read(true)
                    .append(true)
                    .open(&path)
                    .unwrap();
                c.fetch_blob(
                    &host,
                    "team/app",
                    &digest(b),
                    Some(30_000),
                    &mut f,
                    &mut |_, _| {},
                )
                .unwrap();
                assert!(std::fs::read(&path).unwrap() == *b);
            });
        }
    });
    assert!(*tokens.lock().unwrap() <= 4);
}
