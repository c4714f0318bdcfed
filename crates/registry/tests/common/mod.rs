//! A fake registry for the tests: a TcpListener on 127.0.0.1:0, a thread per
//! connection, one request per connection, hand-written HTTP/1.1 responses,
//! so that tests can script any behaviour, hostile included.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

/// A request as the fake server saw it.
#[derive(Clone, Debug)]
pub struct Req {
    pub method: String,
    /// The path and query, as sent.
    pub target: String,
    /// Header names are lowercase.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// The query parameters (or a form body's fields), decoded.
    pub fn params(&self) -> Vec<(String, String)> {
        let q = self.target.split_once('?').map(|(_, q)| q).unwrap_or("");
        parse_form(q)
    }

    pub fn form(&self) -> Vec<(String, String)> {
        parse_form(&String::from_utf8_lossy(&self.body))
    }
}

pub fn param<'a>(params: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    params
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

fn parse_form(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let h = std::str::from_utf8(&b[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(h, 16).unwrap());
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

type Handler = dyn Fn(&Req, &mut TcpStream) + Send + Sync;

pub struct Server {
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<Req>>>,
    probes: Arc<AtomicUsize>,
}

impl Server {
    /// Serves `handler` on 127.0.0.1 until the test process ends. TLS
    /// probes (the client tries https first on loopback) are hung up on.
    pub fn start(handler: impl Fn(&Req, &mut TcpStream) + Send + Sync + 'static) -> Server {
        Server::start_on("127.0.0.1", handler)
    }

    /// [`Server::start`] on another local address.
    pub fn start_on(
        ip: &str,
        handler: impl Fn(&Req, &mut TcpStream) + Send + Sync + 'static,
    ) -> Server {
        let listener = TcpListener::bind((ip, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let probes = Arc::new(AtomicUsize::new(0));
        let handler: Arc<Handler> = Arc::new(handler);
        let log2 = log.clone();
        let probes2 = probes.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let handler = handler.clone();
                let log = log2.clone();
                let probes = probes2.clone();
                std::thread::spawn(move || {
                    let mut first = [0u8; 1];
                    match stream.peek(&mut first) {
                        Ok(1) if first[0] != 0x16 => {}
                        Ok(1) => {
                            // A TLS ClientHello: hang up.
                            probes.fetch_add(1, Ordering::SeqCst);
                            return;
                        }
                        _ => return,
                    }
                    let Some(req) = read_request(&mut stream) else {
                        return;
                    };
                    log.lock().unwrap().push(req.clone());
                    handler(&req, &mut stream);
                    let _ = stream.flush();
                });
            }
        });
        Server { addr, log, probes }
    }

    /// `127.0.0.1:PORT`
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// How many TLS handshakes were attempted (and hung up on).
    pub fn tls_probes(&self) -> usize {
        self.probes.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> Vec<Req> {
        self.log.lock().unwrap().clone()
    }
}

fn read_request(stream: &mut TcpStream) -> Option<Req> {
    let mut r = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let len = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some(Req {
        method,
        target,
        headers,
        body,
    })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        307 => "Temporary Redirect",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Whatever",
    }
}

/// Writes a whole response (no body for HEAD requests).
pub fn respond(s: &mut TcpStream, req: &Req, status: u16, headers: &[(&str, &str)], body: &[u8]) {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        reason(status),
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = s.write_all(head.as_bytes());
    if req.method != "HEAD" {
        let _ = s.write_all(body);
    }
}

/// Writes the head of a response announcing `len` bytes, then only `body`.
pub fn respond_partial(
    s: &mut TcpStream,
    status: u16,
    headers: &[(&str, &str)],
    len: usize,
    body: &[u8],
) {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Length: {len}\r\nConnection: close\r\n",
        reason(status)
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = s.write_all(head.as_bytes());
    let _ = s.write_all(body);
    let _ = s.flush();
}

pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Deterministic pseudo-random bytes.
pub fn blob_bytes(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

pub fn manifest_json(blob: &[u8]) -> Vec<u8> {
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[]}}"#,
        digest(blob),
        blob.len()
    )
    .into_bytes()
}

/// Content a well-behaved registry serves: manifests by tag and digest,
/// blobs by digest (with Range support).
#[derive(Default, Clone)]
pub struct Content {
    /// reference (tag or digest) -> (bytes, media type)
    pub manifests: HashMap<String, (Vec<u8>, String)>,
    pub blobs: HashMap<String, Vec<u8>>,
}

impl Content {
    pub fn with_image(repo_tag: &str, blob: &[u8]) -> Content {
        let m = manifest_json(blob);
        let mut c = Content::default();
        c.manifests
            .insert(repo_tag.to_string(), (m.clone(), OCI_MANIFEST.to_string()));
        c.manifests
            .insert(digest(&m), (m, OCI_MANIFEST.to_string()));
        c.blobs.insert(digest(blob), blob.to_vec());
        c
    }

    /// Serves `req` if it is a manifest or blob request; false otherwise.
    pub fn serve(&self, req: &Req, s: &mut TcpStream) -> bool {
        let path = req.path();
        if let Some((_, reference)) = path.split_once("/manifests/") {
            match self.manifests.get(reference) {
                Some((bytes, mt)) => {
                    let d = digest(bytes);
                    respond(
                        s,
                        req,
                        200,
                        &[("Content-Type", mt), ("Docker-Content-Digest", &d)],
                        bytes,
                    )
                }
                None => respond(
                    s,
                    req,
                    404,
                    &[("Content-Type", "application/json")],
                    br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
                ),
            }
            return true;
        }
        if let Some((_, d)) = path.split_once("/blobs/") {
            match self.blobs.get(d) {
                Some(bytes) => serve_range(s, req, bytes),
                None => respond(s, req, 404, &[], b""),
            }
            return true;
        }
        false
    }
}

/// Serves `bytes`, honouring `Range: bytes=N-`.
pub fn serve_range(s: &mut TcpStream, req: &Req, bytes: &[u8]) {
    let start = req
        .header("range")
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse::<usize>().ok());
    match start {
        Some(n) if n < bytes.len() => {
            let cr = format!("bytes {n}-{}/{}", bytes.len() - 1, bytes.len());
            respond(s, req, 206, &[("Content-Range", &cr)], &bytes[n..]);
        }
        Some(_) => respond(s, req, 416, &[], b""),
        None => respond(s, req, 200, &[], bytes),
    }
}

/// A blocking tempfile opened for appending (and reading), like an ingest file.
pub fn ingest_file(dir: &tempfile::TempDir, initial: &[u8]) -> (std::path::PathBuf, std::fs::File) {
    let path = dir.path().join("ingest");
    std::fs::write(&path, initial).unwrap();
    let f = std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .open(&path)
        .unwrap();
    (path, f)
}
