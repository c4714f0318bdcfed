//! A real OCI registry on loopback for image tests: Debian's
//! `docker-registry` (distribution 2.8) with its own config and storage in a
//! temp dir, optionally behind htpasswd Basic auth or behind Docker Hub-style
//! bearer tokens issued by a small token server written here.
//!
//! Everything is torn down on drop (also when the test panics): the registry
//! process is killed and its dir removed. The process is also started with
//! `PR_SET_PDEATHSIG = SIGKILL` from a thread that lives as long as the test
//! binary, so a test binary killed outright (a CI timeout) leaves no registry
//! behind either.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The `service` the token-auth registry announces and expects as `aud`.
pub const TOKEN_SERVICE: &str = "berth-test-registry";
/// The `iss` of the tokens our token server signs.
pub const TOKEN_ISSUER: &str = "berth-test-token-issuer";

fn registry_bin() -> PathBuf {
    if let Ok(p) = std::env::var("BERTH_DOCKER_REGISTRY_BIN") {
        return PathBuf::from(p);
    }
    crate::find_in_path("docker-registry")
        .or_else(|| crate::find_in_path("registry"))
        .expect("docker-registry is missing: apt-get install docker-registry (scripts/deps.sh)")
}

/// A running registry. `addr` is `127.0.0.1:PORT`; plain HTTP.
pub struct Registry {
    pub addr: String,
    /// `Some((user, pass))` for the auth kinds.
    pub creds: Option<(String, String)>,
    child: Child,
    token: Option<TokenServer>,
    dir: tempfile::TempDir,
}

/// How a registry authenticates clients.
enum AuthKind<'a> {
    None,
    Htpasswd(&'a str, &'a str),
    Token(&'a str, &'a str, bool),
}

impl Registry {
    /// An anonymous read/write registry.
    pub fn start() -> Registry {
        Self::launch(AuthKind::None)
    }

    /// A registry behind htpasswd (bcrypt) Basic auth with one user.
    pub fn start_htpasswd(user: &str, pass: &str) -> Registry {
        Self::launch(AuthKind::Htpasswd(user, pass))
    }

    /// A registry behind bearer-token auth, like Docker Hub: `/v2/` answers
    /// 401 with `WWW-Authenticate: Bearer realm=…,service=…`, and the realm is
    /// our token server, which checks Basic auth (or an OAuth2 password-grant
    /// POST) and signs a JWT granting the requested scopes. Anonymous token
    /// requests get a token with no access at all (so anonymous pulls fail).
    pub fn start_token(user: &str, pass: &str) -> Registry {
        Self::launch(AuthKind::Token(user, pass, false))
    }

    /// Like [`Registry::start_token`], but anonymous token requests are
    /// granted `pull` (a public repository: anonymous pull, authed push).
    pub fn start_token_public_pull(user: &str, pass: &str) -> Registry {
        Self::launch(AuthKind::Token(user, pass, true))
    }

    fn launch(kind: AuthKind) -> Registry {
        let dir = tempfile::Builder::new()
            .prefix("berth-registry-")
            .tempdir()
            .unwrap();
        let creds = match kind {
            AuthKind::None => None,
            AuthKind::Htpasswd(u, p) | AuthKind::Token(u, p, _) => {
                Some((u.to_string(), p.to_string()))
            }
        };
        let mut token = None;
        let auth_yaml = match kind {
            AuthKind::None => String::new(),
            AuthKind::Htpasswd(user, pass) => {
                let out = Command::new("htpasswd")
                    .args(["-Bbn", user, pass])
                    .output()
                    .expect("htpasswd is missing: apt-get install apache2-utils");
                assert!(out.status.success(), "htpasswd: {out:?}");
                let path = dir.path().join("htpasswd");
                std::fs::write(&path, &out.stdout).unwrap();
                format!(
                    "auth:\n  htpasswd:\n    realm: berth-test-registry\n    path: {}\n",
                    path.display()
                )
            }
            AuthKind::Token(user, pass, public_pull) => {
                let ts = TokenServer::start(dir.path(), user, pass, public_pull);
                let yaml = format!(
                    "auth:\n  token:\n    realm: {}\n    service: {TOKEN_SERVICE}\n    issuer: {TOKEN_ISSUER}\n    rootcertbundle: {}\n",
                    ts.realm(),
                    ts.cert_pem.display()
                );
                token = Some(ts);
                yaml
            }
        };
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(&storage).unwrap();
        let log_path = dir.path().join("registry.log");
        let mut last_err = String::new();
        // A free port can be taken between our probe and the registry's bind:
        // retry with another one. A unique response header tells our registry
        // apart from any other process that may have won the port.
        for attempt in 0..5 {
            let port = free_port();
            let addr = format!("127.0.0.1:{port}");
            let id = format!(
                "{}-{}-{attempt}",
                std::process::id(),
                SEQ.fetch_add(1, Ordering::SeqCst)
            );
            let cfg = format!(
                "version: 0.1\n\
                 log:\n  level: info\n  formatter: text\n  accesslog:\n    disabled: false\n\
                 storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\n\
                 http:\n  addr: {addr}\n  secret: berth-test-{id}\n  headers:\n    X-Berth-Test-Registry: [\"{id}\"]\n\
                 health:\n  storagedriver:\n    enabled: false\n\
                 {auth_yaml}",
                storage = storage.display(),
            );
            let cfg_path = dir.path().join("config.yml");
            std::fs::write(&cfg_path, cfg).unwrap();
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .unwrap();
            let mut cmd = Command::new(registry_bin());
            cmd.arg("serve")
                .arg(&cfg_path)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log);
            let mut child = spawn_tied(cmd).expect("spawn docker-registry");
            let t0 = Instant::now();
            let up = loop {
                if let Ok(Some(st)) = child.try_wait() {
                    last_err = format!("docker-registry exited with {st}");
                    break false;
                }
                if let Ok(r) = http_request(&addr, "GET", "/v2/", &[], b"") {
                    if r.header("x-berth-test-registry") == Some(id.as_str()) {
                        break true;
                    }
                }
                if t0.elapsed() > Duration::from_secs(20) {
                    last_err = "docker-registry did not answer /v2/ within 20 s".into();
                    let _ = child.kill();
                    let _ = child.wait();
                    break false;
                }
                std::thread::sleep(Duration::from_millis(10));
            };
            if up {
                return Registry {
                    addr,
                    creds,
                    child,
                    token,
                    dir,
                };
            }
        }
        panic!(
            "registry did not start: {last_err}\n--- log ---\n{}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `127.0.0.1:PORT/<repo_tag>`, e.g. `image_ref("busybox:latest")`.
    pub fn image_ref(&self, repo_tag: &str) -> String {
        format!("{}/{repo_tag}", self.addr)
    }

    /// `user:pass` for `--creds`-style flags.
    pub fn creds_arg(&self) -> Option<String> {
        self.creds.as_ref().map(|(u, p)| format!("{u}:{p}"))
    }

    /// The token realm URL (`http://127.0.0.1:PORT/token`), for token auth.
    pub fn token_realm(&self) -> Option<String> {
        self.token.as_ref().map(|t| t.realm())
    }

    /// Every request the token server answered, oldest first.
    pub fn token_requests(&self) -> Vec<TokenRequest> {
        self.token
            .as_ref()
            .map(|t| t.state.log.lock().unwrap().clone())
            .unwrap_or_default()
    }

    /// The registry's filesystem storage root (`docker/registry/v2/…`
    /// below it), e.g. to corrupt a blob on purpose.
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// The registry's own log (stdout+stderr, incl. access log).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// One plain HTTP request to this registry (no auth handling).
    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
        http_request(&self.addr, "GET", path, headers, b"").expect("registry request")
    }

    /// The pid of the registry process.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // TokenServer and the TempDir drop after this.
        self.token.take();
    }
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

type SpawnReq = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Spawn `cmd` from a thread that lives as long as this process, with
/// `PR_SET_PDEATHSIG = SIGKILL`: the kernel ties the death signal to the
/// thread that forked, so forking from a short-lived test thread would kill
/// the child when that test's thread ends.
pub fn spawn_tied(cmd: Command) -> std::io::Result<Child> {
    static TX: OnceLock<Mutex<mpsc::Sender<SpawnReq>>> = OnceLock::new();
    let tx = TX.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnReq>();
        std::thread::Builder::new()
            .name("berth-test-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    use std::os::unix::process::CommandExt;
                    // SAFETY: prctl is async-signal-safe.
                    unsafe {
                        cmd.pre_exec(|| {
                            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                                return Err(std::io::Error::last_os_error());
                            }
                            Ok(())
                        });
                    }
                    let _ = reply.send(cmd.spawn());
                }
            })
            .unwrap();
        Mutex::new(tx)
    });
    let (rtx, rrx) = mpsc::channel();
    tx.lock().unwrap().send((cmd, rtx)).unwrap();
    rrx.recv().unwrap()
}

// ---------------------------------------------------------------------------
// A minimal HTTP/1.0 client (readiness checks and protocol assertions).

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// First header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

/// One request over a fresh connection (`Connection: close`, body read to
/// EOF). `headers` are sent as given; `Host` and `Content-Length` are added.
pub fn http_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<HttpResponse> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    s.write_all(req.as_bytes())?;
    s.write_all(body)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    parse_response(&raw)
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "bad HTTP response"))
}

fn parse_response(raw: &[u8]) -> Option<HttpResponse> {
    let end = find(raw, b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        body = dechunk(&body)?;
    }
    Some(HttpResponse {
        status,
        headers,
        body,
    })
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let nl = find(b, b"\r\n")?;
        let size_s = std::str::from_utf8(&b[..nl]).ok()?;
        let size = usize::from_str_radix(size_s.split(';').next()?.trim(), 16).ok()?;
        b = &b[nl + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

// ---------------------------------------------------------------------------
// Base64 and URL helpers (no crypto or codec crates needed).

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub fn b64(data: &[u8]) -> String {
    let mut s = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                s.push(B64[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// Unpadded base64url (JOSE).
pub fn b64url(data: &[u8]) -> String {
    b64(data)
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_")
}

/// Decodes standard or URL-safe base64, padded or not.
pub fn b64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for ch in s.trim().bytes() {
        let v = match ch {
            b'A'..=b'Z' => ch - b'A',
            b'a'..=b'z' => ch - b'a' + 26,
            b'0'..=b'9' => ch - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => break,
            _ => return None,
        };
        acc = acc << 6 | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
                {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_form(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

mod token;
use token::TokenServer;
pub use token::{SigningKey, TokenIssuer, TokenRequest};

impl Registry {
    /// For a registry kept in a `static`: its temp dir goes when the test
    /// binary exits (statics are never dropped).
    pub fn remove_dir_at_exit(&self) {
        crate::remove_at_exit(self.dir.path());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_roundtrip() {
        for s in ["", "f", "fo", "foo", "foob", "fooba", "foobar"] {
            assert_eq!(b64_decode(&b64(s.as_bytes())).unwrap(), s.as_bytes());
            assert_eq!(b64_decode(&b64url(s.as_bytes())).unwrap(), s.as_bytes());
        }
        assert_eq!(b64(b"foobar"), "Zm9vYmFy");
        assert_eq!(b64(b"fo"), "Zm8=");
        assert_eq!(b64url(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn form_decoding() {
        let f = parse_form("service=reg&scope=repository%3Abb%3Apull%2Cpush+registry:catalog:*");
        assert_eq!(f[0], ("service".into(), "reg".into()));
        assert_eq!(
            f[1].1,
            "repository:bb:pull,push registry:catalog:*".to_string()
        );
    }
}
