//! Manifests and authentication against fake registries on 127.0.0.1.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

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

fn basic(user: &str, pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

fn creds(host: &str, cred: Credential) -> impl FnOnce(&mut ClientConfig) {
    let host = host.to_string();
    move |c: &mut ClientConfig| {
        c.credentials.insert(host, cred);
    }
}

#[test]
fn anonymous_manifest_by_tag_and_digest_and_head() {
    let blob = b"config blob".to_vec();
    let content = Content::with_image("v1", &blob);
    let server = Server::start(move |req, s| {
        assert!(content.serve(req, s), "unexpected {}", req.target);
    });
    let c = client();
    let host = server.host();

    let m = c.fetch_manifest(&host, "team/app", "v1").unwrap();
    assert_eq!(m.bytes, manifest_json(&blob));
    assert_eq!(m.digest, digest(&m.bytes));
    assert_eq!(m.media_type, OCI_MANIFEST);

    let by_digest = c.fetch_manifest(&host, "team/app", &m.digest).unwrap();
    assert_eq!(by_digest, m);

    let head = c.head_manifest(&host, "team/app", "v1").unwrap();
    assert_eq!(head, Some((m.digest.clone(), OCI_MANIFEST.to_string())));
    assert_eq!(c.head_manifest(&host, "team/app", "nope").unwrap(), None);

    let reqs = server.requests();
    let get = &reqs[0];
    assert_eq!(get.method, "GET");
    assert_eq!(get.target, "/v2/team/app/manifests/v1");
    let accept = get.header("accept").unwrap();
    for t in [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
    ] {
        assert!(accept.contains(t), "accept lacks {t}: {accept}");
    }
    assert!(get.header("user-agent").unwrap().starts_with("berth/"));
    assert!(get.header("authorization").is_none());
    assert!(reqs.iter().any(|r| r.method == "HEAD"));
}

#[test]
fn manifest_not_found_names_it() {
    let server = Server::start(|req, s| respond(s, req, 404, &[], b""));
    let host = server.host();
    let err = client().fetch_manifest(&host, "a/b", "v9").unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert_eq!(err.to_string(), format!("manifest {host}/a/b:v9 not found"));
}

#[test]
fn media_type_from_body_when_content_type_is_generic() {
    let body = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[]}"#;
    let server = Server::start(move |req, s| {
        respond(s, req, 200, &[("Content-Type", "application/json")], body)
    });
    let m = client().fetch_manifest(&server.host(), "a", "t").unwrap();
    assert_eq!(
        m.media_type,
        "application/vnd.docker.distribution.manifest.list.v2+json"
    );
}

#[test]
fn head_falls_back_to_get_without_docker_content_digest() {
    let body = manifest_json(b"x");
    let d = digest(&body);
    let server =
        Server::start(move |req, s| respond(s, req, 200, &[("Content-Type", OCI_MANIFEST)], &body));
    let got = client().head_manifest(&server.host(), "a", "t").unwrap();
    assert_eq!(got, Some((d, OCI_MANIFEST.to_string())));
    let methods: Vec<String> = server.requests().into_iter().map(|r| r.method).collect();
    assert_eq!(methods, ["HEAD", "GET"]);
}

#[test]
fn by_digest_fetch_of_other_bytes_is_an_error() {
    let wanted = digest(b"the real manifest");
    let server = Server::start(|req, s| {
        respond(
            s,
            req,
            200,
            &[("Content-Type", OCI_MANIFEST)],
            b"{\"evil\":1}",
        )
    });
    let host = server.host();
    let err = client().fetch_manifest(&host, "a/b", &wanted).unwrap_err();
    assert!(matches!(err, Error::ManifestDigestMismatch { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&format!("{host}/a/b@{wanted}")), "{msg}");
    assert!(msg.contains(&digest(b"{\"evil\":1}")), "{msg}");
}

#[test]
fn docker_content_digest_mismatch_is_an_error() {
    let lie = digest(b"something else");
    let lie2 = lie.clone();
    let server = Server::start(move |req, s| {
        respond(
            s,
            req,
            200,
            &[
                ("Content-Type", OCI_MANIFEST),
                ("Docker-Content-Digest", &lie2),
            ],
            b"{}",
        )
    });
    let host = server.host();
    let err = client().fetch_manifest(&host, "a", "latest").unwrap_err();
    assert!(matches!(err, Error::ContentDigestMismatch { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&host) && msg.contains(&lie), "{msg}");
}

#[test]
fn manifest_over_4_mib_by_content_length() {
    let server = Server::start(|req, s| {
        // Announce 5 MiB, send a little: the client must not wait for it.
        respond_partial(s, 200, &[("Content-Type", OCI_MANIFEST)], 5 << 20, b"{");
        let _ = req;
    });
    let host = server.host();
    let err = client().fetch_manifest(&host, "a", "big").unwrap_err();
    assert!(matches!(err, Error::ManifestTooLarge { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!("manifest for {host}/a:big is larger than 4 MiB")
    );
}

#[test]
fn manifest_over_4_mib_streamed_without_length_is_cut_off() {
    use std::io::Write;
    let sent = Arc::new(AtomicUsize::new(0));
    let sent2 = sent.clone();
    let server = Server::start(move |_req, s| {
        let _ = s.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        );
        let chunk = vec![b' '; 64 * 1024];
        // Up to 256 MiB, unless the client hangs up first.
        for _ in 0..4096 {
            let head = format!("{:x}\r\n", chunk.len());
            if s.write_all(head.as_bytes()).is_err()
                || s.write_all(&chunk).is_err()
                || s.write_all(b"\r\n").is_err()
            {
                return;
            }
            sent2.fetch_add(chunk.len(), Ordering::SeqCst);
        }
        let _ = s.write_all(b"0\r\n\r\n");
    });
    let err = client()
        .fetch_manifest(&server.host(), "a", "endless")
        .unwrap_err();
    assert!(matches!(err, Error::ManifestTooLarge { .. }), "{err}");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let sent = sent.load(Ordering::SeqCst);
    assert!(sent < 32 << 20, "the server could send {sent} bytes");
}

/// A registry requiring `Bearer <token>` from a token endpoint on the same server.
fn bearer_registry(
    content: Content,
    check_token_request: impl Fn(&Req) -> bool + Send + Sync + 'static,
    token_json: &'static str,
    token: &'static str,
) -> (Server, Arc<AtomicUsize>) {
    let issued = Arc::new(AtomicUsize::new(0));
    let issued2 = issued.clone();
    let realm = Arc::new(std::sync::OnceLock::<String>::new());
    let realm2 = realm.clone();
    let server = Server::start(move |req, s| {
        if req.path() == "/token" {
            if check_token_request(req) {
                issued2.fetch_add(1, Ordering::SeqCst);
                respond(
                    s,
                    req,
                    200,
                    &[("Content-Type", "application/json")],
                    token_json.as_bytes(),
                );
            } else {
                respond(s, req, 401, &[], b"{\"details\":\"bad credentials\"}");
            }
            return;
        }
        if req.header("authorization") != Some(&format!("Bearer {token}")) {
            let repo = req.path().trim_start_matches("/v2/");
            let repo = repo
                .split("/manifests/")
                .next()
                .unwrap()
                .split("/blobs/")
                .next()
                .unwrap();
            let challenge = format!(
                r#"Bearer realm="{}",service="fake-registry",scope="repository:{repo}:pull""#,
                realm2.get().unwrap()
            );
            respond(s, req, 401, &[("WWW-Authenticate", &challenge)], b"");
            return;
        }
        assert!(content.serve(req, s));
    });
    realm
        .set(format!("http://{}/token", server.host()))
        .unwrap();
    (server, issued)
}

#[test]
fn bearer_token_flow_anonymous() {
    let blob = b"layer".to_vec();
    let (server, issued) = bearer_registry(
        Content::with_image("v1", &blob),
        |req| {
            let p = req.params();
            req.method == "GET"
                && param(&p, "service") == ["fake-registry"]
                && param(&p, "scope") == ["repository:team/app:pull"]
                && req.header("authorization").is_none()
        },
        r#"{"token":"tok-123","expires_in":300}"#,
        "tok-123",
    );
    let c = client();
    let host = server.host();
    let m = c.fetch_manifest(&host, "team/app", "v1").unwrap();
    assert_eq!(m.media_type, OCI_MANIFEST);
    let dir = tempfile::tempdir().unwrap();
    let (path, mut f) = ingest_file(&dir, b"");
    c.fetch_blob(
        &host,
        "team/app",
        &digest(&blob),
        Some(5),
        &mut f,
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(std::fs::read(path).unwrap(), blob);
    // The token is cached: fetched once, then sent up front.
    assert_eq!(issued.load(Ordering::SeqCst), 1);
    let unauthorized = server
        .requests()
        .iter()
        .filter(|r| r.path() != "/token" && r.header("authorization").is_none())
        .count();
    assert_eq!(unauthorized, 1);
}

#[test]
fn bearer_token_with_basic_credentials() {
    let want = basic("alice", "s3cret");
    let (server, issued) = bearer_registry(
        Content::with_image("v1", b"x"),
        move |req| {
            let p = req.params();
            req.header("authorization") == Some(want.as_str())
                && param(&p, "account") == ["alice"]
                && param(&p, "scope") == ["repository:team/app:pull"]
        },
        r#"{"access_token":"at-9"}"#,
        "at-9",
    );
    let host = server.host();
    let good = client_with(creds(
        &host,
        Credential::Basic {
            username: "alice".into(),
            password: "s3cret".into(),
        },
    ));
    good.fetch_manifest(&host, "team/app", "v1").unwrap();
    assert_eq!(issued.load(Ordering::SeqCst), 1);

    let bad = client_with(creds(
        &host,
        Credential::Basic {
            username: "alice".into(),
            password: "wrong".into(),
        },
    ));
    let err = bad.fetch_manifest(&host, "team/app", "v1").unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!("authentication required: run berth login {host}")
    );
}

#[test]
fn identity_token_is_exchanged_with_an_oauth2_post() {
    let (server, issued) = bearer_registry(
        Content::with_image("v1", b"x"),
        |req| {
            let f = req.form();
            req.method == "POST"
                && param(&f, "grant_type") == ["refresh_token"]
                && param(&f, "refresh_token") == ["refresh-abc"]
                && param(&f, "service") == ["fake-registry"]
                && param(&f, "scope") == ["repository:team/app:pull"]
                && !param(&f, "client_id").is_empty()
        },
        r#"{"access_token":"from-refresh","expires_in":120}"#,
        "from-refresh",
    );
    let host = server.host();
    let c = client_with(creds(
        &host,
        Credential::IdentityToken("refresh-abc".into()),
    ));
    c.fetch_manifest(&host, "team/app", "v1").unwrap();
    assert_eq!(issued.load(Ordering::SeqCst), 1);
}

/// A registry requiring Basic alice:pw.
fn basic_registry(content: Content) -> Server {
    let want = basic("alice", "pw");
    Server::start(move |req, s| {
        if req.header("authorization") != Some(want.as_str()) {
            respond(
                s,
                req,
                401,
                &[("WWW-Authenticate", r#"Basic realm="fake""#)],
                b"",
            );
            return;
        }
        assert!(content.serve(req, s));
    })
}

#[test]
fn basic_auth() {
    let server = basic_registry(Content::with_image("v1", b"x"));
    let host = server.host();
    let c = client_with(creds(
        &host,
        Credential::Basic {
            username: "alice".into(),
            password: "pw".into(),
        },
    ));
    c.fetch_manifest(&host, "a", "v1").unwrap();
    c.fetch_manifest(&host, "a", "v1").unwrap();
    c.head_manifest(&host, "a", "v1").unwrap().unwrap();
    // Only the first request went without credentials.
    let reqs = server.requests();
    assert_eq!(reqs.len(), 4);
    assert_eq!(
        reqs.iter()
            .filter(|r| r.header("authorization").is_none())
            .count(),
        1
    );
}

#[test]
fn wrong_or_missing_credentials_are_unauthorized() {
    let server = basic_registry(Content::with_image("v1", b"x"));
    let host = server.host();
    let wrong = client_with(creds(
        &host,
        Credential::Basic {
            username: "alice".into(),
            password: "nope".into(),
        },
    ));
    let expected = format!("authentication required: run berth login {host}");
    let err = wrong.fetch_manifest(&host, "a", "v1").unwrap_err();
    assert_eq!(err.to_string(), expected);
    let err = client().fetch_manifest(&host, "a", "v1").unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err}");
    assert_eq!(err.to_string(), expected);
    // Not retried: one attempt with and one without credentials, one without.
    assert_eq!(server.requests().len(), 3);
}

#[test]
fn forbidden_is_denied_with_the_registry_message() {
    let server = Server::start(|req, s| respond(s, req, 403, &[], b""));
    let err = client()
        .fetch_manifest(&server.host(), "a", "v1")
        .unwrap_err();
    assert!(matches!(err, Error::Denied { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!("access denied by {}", server.host())
    );
    let body = br#"{"errors":[{"code":"DENIED","message":"user \"bob\" may not push a"}]}"#;
    let server = Server::start(|req, s| respond(s, req, 403, &[], body));
    let err = client()
        .fetch_manifest(&server.host(), "a", "v1")
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "access denied by {}: user \"bob\" may not push a",
            server.host()
        )
    );
}

#[test]
fn server_error_then_success_is_retried() {
    let n = Arc::new(AtomicUsize::new(0));
    let n2 = n.clone();
    let content = Content::with_image("v1", b"x");
    let server = Server::start(move |req, s| {
        if n2.fetch_add(1, Ordering::SeqCst) == 0 {
            respond(s, req, 500, &[], b"oops");
        } else {
            assert!(content.serve(req, s));
        }
    });
    client().fetch_manifest(&server.host(), "a", "v1").unwrap();
    assert_eq!(server.requests().len(), 2);
}

#[test]
fn too_many_requests_honours_retry_after() {
    let n = Arc::new(AtomicUsize::new(0));
    let n2 = n.clone();
    let content = Content::with_image("v1", b"x");
    let server = Server::start(move |req, s| {
        if n2.fetch_add(1, Ordering::SeqCst) == 0 {
            respond(s, req, 429, &[("Retry-After", "1")], b"");
        } else {
            assert!(content.serve(req, s));
        }
    });
    let start = std::time::Instant::now();
    client().fetch_manifest(&server.host(), "a", "v1").unwrap();
    let waited = start.elapsed();
    assert!(waited >= std::time::Duration::from_secs(1), "{waited:?}");
    assert_eq!(server.requests().len(), 2);
}

#[test]
fn retries_exhausted_names_host_and_manifest() {
    let server = Server::start(|req, s| respond(s, req, 503, &[], b""));
    let host = server.host();
    let c = client_with(|c| c.max_retries = 2);
    let err = c.fetch_manifest(&host, "a", "v1").unwrap_err();
    assert!(
        matches!(err, Error::RetriesExhausted { attempts: 3, .. }),
        "{err}"
    );
    let msg = err.to_string();
    assert!(msg.contains(&format!("manifest {host}/a:v1")), "{msg}");
    assert_eq!(server.requests().len(), 3);
}

#[test]
fn invalid_names_are_refused_before_any_request() {
    let c = client();
    assert!(matches!(
        c.fetch_manifest("127.0.0.1:1", "Bad/Name", "v1"),
        Err(Error::InvalidRepository { .. })
    ));
    assert!(matches!(
        c.fetch_manifest("127.0.0.1:1", "a", "bad/tag"),
        Err(Error::InvalidReference { .. })
    ));
    assert!(matches!(
        c.fetch_manifest("127.0.0.1:1", "a", "sha256:123"),
        Err(Error::InvalidDigest { .. })
    ));
}

#[test]
fn docker_hub_goes_to_a_mirror_first() {
    let content = Content::with_image("latest", b"x");
    let server = Server::start(move |req, s| assert!(content.serve(req, s)));
    let c = client_with(|c| c.mirrors = vec![format!("http://{}", server.host())]);
    let m = c.fetch_manifest("docker.io", "alpine", "latest").unwrap();
    assert_eq!(m.media_type, OCI_MANIFEST);
    assert_eq!(
        server.requests()[0].target,
        "/v2/library/alpine/manifests/latest"
    );
}

#[test]
fn registry_error_message_is_reported() {
    let server = Server::start(|req, s| {
        respond(
            s,
            req,
            400,
            &[],
            br#"{"errors":[{"code":"NAME_INVALID","message":"invalid repository name"}]}"#,
        )
    });
    let err = client()
        .fetch_manifest(&server.host(), "a", "v1")
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("400") && msg.contains("invalid repository name"),
        "{msg}"
    );
}

#[test]
fn http_mirror_needs_an_insecure_host() {
    let err = Client::new(ClientConfig {
        mirrors: vec!["http://mirror.example".into()],
        ..Default::default()
    })
    .err()
    .unwrap();
    assert!(err.to_string().contains("mirror.example"), "{err}");
}

#[test]
fn loopback_tries_https_once_then_remembers_http() {
    let content = Content::with_image("v1", b"x");
    let server = Server::start(move |req, s| assert!(content.serve(req, s)));
    let c = client();
    let host = server.host();
    c.fetch_manifest(&host, "a", "v1").unwrap();
    c.fetch_manifest(&host, "a", "v1").unwrap();
    c.head_manifest(&host, "a", "v1").unwrap().unwrap();
    assert_eq!(server.tls_probes(), 1);
    assert_eq!(server.requests().len(), 3);
}

/// A local address that is not loopback, if the machine has one.
fn non_loopback_ip() -> Option<String> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then(|| ip.to_string())
}

#[test]
fn other_hosts_get_https_only_unless_listed_insecure() {
    let Some(ip) = non_loopback_ip() else {
        eprintln!("no non-loopback address: skipped");
        return;
    };
    let content = Content::with_image("v1", b"x");
    let server = Server::start_on(&ip, move |req, s| assert!(content.serve(req, s)));
    let host = server.host();
    let err = client_with(|c| c.max_retries = 0)
        .fetch_manifest(&host, "a", "v1")
        .unwrap_err();
    assert!(matches!(err, Error::RetriesExhausted { .. }), "{err}");
    assert!(
        err.to_string().contains(&format!("https://{host}:")),
        "{err}"
    );
    assert!(server.requests().is_empty());
    assert_eq!(server.tls_probes(), 1);

    let insecure = client_with(|c| c.insecure_hosts = vec![ip.clone()]);
    insecure.fetch_manifest(&host, "a", "v1").unwrap();
    assert_eq!(server.requests().len(), 1);
}
