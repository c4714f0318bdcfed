//! The Docker-Hub-like token server the `start_token*` registries trust,
//! also usable on its own ([`TokenIssuer`]) as the external issuer of a
//! `berth registry serve` in token mode: RS256 or ES256, signed by the
//! openssl CLI.

use super::*;

/// The key a token server signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningKey {
    /// RSA 2048, RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// ECDSA P-256 with SHA-256 (JWS `r || s`).
    Es256,
}

impl SigningKey {
    fn alg(self) -> &'static str {
        match self {
            SigningKey::Rs256 => "RS256",
            SigningKey::Es256 => "ES256",
        }
    }
}

/// A token server on loopback, for registries configured to trust its
/// key (`cert_pem`, `public_key_pem`): user `user`/`pass` gets every scope
/// asked, anonymous gets pull only when `public_pull`. Tokens have
/// `iss` = [`TOKEN_ISSUER`] and `aud` = the requested service. Stopped on
/// drop.
pub struct TokenIssuer {
    server: TokenServer,
}

impl TokenIssuer {
    /// Key files go to `dir`; `kid`: put into every token header.
    pub fn start(
        dir: &Path,
        key: SigningKey,
        kid: Option<&str>,
        user: &str,
        pass: &str,
        public_pull: bool,
    ) -> TokenIssuer {
        TokenIssuer {
            server: TokenServer::start_with(dir, user, pass, public_pull, key, kid),
        }
    }

    /// `http://127.0.0.1:PORT/token`
    pub fn realm(&self) -> String {
        self.server.realm()
    }

    /// `127.0.0.1:PORT`
    pub fn addr(&self) -> &str {
        &self.server.addr
    }

    /// The self-signed certificate of the signing key (PEM).
    pub fn cert_pem(&self) -> &Path {
        &self.server.cert_pem
    }

    /// The signing key's `-----BEGIN PUBLIC KEY-----` file.
    pub fn public_key_pem(&self) -> PathBuf {
        let key = &self.server.state.key_pem;
        let out = key.with_extension("pub");
        let o = Command::new("openssl")
            .arg("pkey")
            .arg("-in")
            .arg(key)
            .arg("-pubout")
            .arg("-out")
            .arg(&out)
            .output()
            .unwrap();
        assert!(o.status.success(), "openssl pkey -pubout: {o:?}");
        out
    }

    /// The `kid` of the tokens from now on.
    pub fn set_kid(&self, kid: Option<&str>) {
        *self.server.state.kid.lock().unwrap() = kid.map(str::to_string);
    }

    /// The key's id as distribution (libtrust) computes it, here with the
    /// openssl and coreutils CLIs: the SHA-256 of the DER public key,
    /// truncated to 30 bytes, base32, in groups of four joined by `:`.
    pub fn libtrust_kid(&self) -> String {
        let o = Command::new("bash")
            .arg("-c")
            .arg(
                "set -o pipefail; openssl pkey -in \"$1\" -pubout -outform DER \
                 | openssl dgst -sha256 -binary | head -c 30 | base32 -w0",
            )
            .arg("sh")
            .arg(&self.server.state.key_pem)
            .output()
            .unwrap();
        assert!(o.status.success(), "libtrust id: {o:?}");
        let b32 = String::from_utf8(o.stdout).unwrap();
        let b32 = b32.trim();
        assert_eq!(b32.len(), 48, "{b32}");
        b32.as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join(":")
    }

    /// Every request answered, oldest first.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.server.state.log.lock().unwrap().clone()
    }

    /// `GET /token?service=SERVICE&scope=SCOPE` with Basic `user:pass`:
    /// the token.
    pub fn token(&self, service: &str, scope: &str, creds: Option<(&str, &str)>) -> String {
        let auth = creds.map(|(u, p)| format!("Basic {}", b64(format!("{u}:{p}").as_bytes())));
        let h: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| ("Authorization", a))
            .into_iter()
            .collect();
        let r = http_request(
            self.addr(),
            "GET",
            &format!("/token?service={service}&scope={scope}"),
            &h,
            b"",
        )
        .expect("token request");
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["token"].as_str().unwrap().to_string()
    }
}

// ---------------------------------------------------------------------------
// The token server (distribution's `auth: token:` realm).

/// One request the token server answered.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// `GET` (Docker's token flow) or `POST` (OAuth2 password grant).
    pub method: String,
    pub service: Option<String>,
    /// The requested scopes, e.g. `repository:busybox:pull,push`.
    pub scopes: Vec<String>,
    /// The authenticated user; `None` for anonymous requests.
    pub user: Option<String>,
    /// The HTTP status answered (200, 401, 400).
    pub status: u16,
}

pub(super) struct TokenState {
    user: String,
    pass: String,
    public_pull: bool,
    key_pem: PathBuf,
    key: SigningKey,
    kid: Mutex<Option<String>>,
    cert_der_b64: String,
    pub(super) log: Mutex<Vec<TokenRequest>>,
}

pub(super) struct TokenServer {
    addr: String,
    pub(super) cert_pem: PathBuf,
    pub(super) state: Arc<TokenState>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TokenServer {
    pub(super) fn start(dir: &Path, user: &str, pass: &str, public_pull: bool) -> TokenServer {
        Self::start_with(dir, user, pass, public_pull, SigningKey::Rs256, None)
    }

    fn start_with(
        dir: &Path,
        user: &str,
        pass: &str,
        public_pull: bool,
        key: SigningKey,
        kid: Option<&str>,
    ) -> TokenServer {
        let key_pem = dir.join("token-key.pem");
        let cert_pem = dir.join("token-cert.pem");
        let newkey: &[&str] = match key {
            SigningKey::Rs256 => &["-newkey", "rsa:2048"],
            SigningKey::Es256 => &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"],
        };
        let out = Command::new("openssl")
            .args(["req", "-x509"])
            .args(newkey)
            .args(["-nodes", "-days", "2"])
            .args(["-subj", &format!("/CN={TOKEN_ISSUER}")])
            .arg("-keyout")
            .arg(&key_pem)
            .arg("-out")
            .arg(&cert_pem)
            .output()
            .expect("openssl is missing: apt-get install openssl");
        assert!(out.status.success(), "openssl req: {out:?}");
        let der = Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&cert_pem)
            .output()
            .unwrap();
        assert!(der.status.success(), "openssl x509: {der:?}");
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let state = Arc::new(TokenState {
            user: user.into(),
            pass: pass.into(),
            public_pull,
            key_pem,
            key,
            kid: Mutex::new(kid.map(str::to_string)),
            cert_der_b64: b64(&der.stdout),
            log: Mutex::new(Vec::new()),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("berth-test-token-server".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if sp.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let st = st.clone();
                    std::thread::spawn(move || {
                        let _ = serve_token_conn(conn, &st);
                    });
                }
            })
            .unwrap();
        TokenServer {
            addr,
            cert_pem,
            state,
            stop,
            thread: Some(thread),
        }
    }

    pub(super) fn realm(&self) -> String {
        format!("http://{}/token", self.addr)
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_token_conn(mut s: TcpStream, st: &TokenState) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    let head_end = loop {
        if let Some(p) = find(&buf, b"\r\n\r\n") {
            break p;
        }
        let n = s.read(&mut tmp)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&tmp[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let reqline = lines.next().unwrap_or("");
    let mut parts = reqline.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let hdr = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let clen: usize = hdr("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < clen {
        let n = s.read(&mut tmp)?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&tmp[..n]);
    }
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let (status, ctype, resp_body, extra) = token_response(
        st,
        &method,
        path,
        query,
        hdr("authorization").as_deref(),
        &body,
    );
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        _ => "Error",
    };
    let mut resp = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n",
        resp_body.len()
    );
    for h in extra {
        resp.push_str(&h);
        resp.push_str("\r\n");
    }
    resp.push_str("\r\n");
    s.write_all(resp.as_bytes())?;
    s.write_all(resp_body.as_bytes())?;
    s.flush()
}

type TokenResp = (u16, &'static str, String, Vec<String>);

fn token_response(
    st: &TokenState,
    method: &str,
    path: &str,
    query: &str,
    authz: Option<&str>,
    body: &[u8],
) -> TokenResp {
    let json = "application/json";
    if path != "/token" {
        return (404, json, r#"{"error":"not found"}"#.into(), vec![]);
    }
    let mut form = parse_form(query);
    let mut user: Option<(String, String)> = None;
    let oauth = method == "POST";
    if oauth {
        form.extend(parse_form(&String::from_utf8_lossy(body)));
        let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        match get("grant_type").as_deref() {
            Some("password") => {
                user = Some((
                    get("username").unwrap_or_default(),
                    get("password").unwrap_or_default(),
                ));
            }
            _ => {
                let r = TokenRequest {
                    method: method.into(),
                    service: get("service"),
                    scopes: vec![],
                    user: None,
                    status: 400,
                };
                st.log.lock().unwrap().push(r);
                return (
                    400,
                    json,
                    r#"{"error":"unsupported_grant_type"}"#.into(),
                    vec![],
                );
            }
        }
    } else if method != "GET" {
        return (404, json, r#"{"error":"not found"}"#.into(), vec![]);
    } else if let Some(a) = authz {
        if let Some(enc) = a
            .strip_prefix("Basic ")
            .or_else(|| a.strip_prefix("basic "))
        {
            let dec = b64_decode(enc).unwrap_or_default();
            let dec = String::from_utf8_lossy(&dec).into_owned();
            let (u, p) = dec.split_once(':').unwrap_or((&dec, ""));
            user = Some((u.to_string(), p.to_string()));
        }
    }
    let service = form
        .iter()
        .find(|(k, _)| k == "service")
        .map(|(_, v)| v.clone());
    let scopes: Vec<String> = form
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split(' ').map(str::to_string).collect::<Vec<_>>())
        .filter(|s| !s.is_empty())
        .collect();
    let mut rec = TokenRequest {
        method: method.into(),
        service: service.clone(),
        scopes: scopes.clone(),
        user: user.as_ref().map(|(u, _)| u.clone()),
        status: 200,
    };
    if let Some((u, p)) = &user {
        if *u != st.user || *p != st.pass {
            rec.status = 401;
            st.log.lock().unwrap().push(rec);
            return (
                401,
                json,
                r#"{"details":"incorrect username or password"}"#.into(),
                vec![r#"WWW-Authenticate: Basic realm="berth-test-token""#.into()],
            );
        }
    }
    // Grant what was asked to the user; anonymous gets pull only on a
    // public-pull server, else nothing.
    let mut access = Vec::new();
    for sc in &scopes {
        let Some((ty, rest)) = sc.split_once(':') else {
            continue;
        };
        let Some((name, actions)) = rest.rsplit_once(':') else {
            continue;
        };
        let actions: Vec<&str> = actions
            .split(',')
            .filter(|a| !a.is_empty())
            .filter(|a| user.is_some() || (st.public_pull && *a == "pull"))
            .collect();
        if actions.is_empty() {
            continue;
        }
        access.push(serde_json::json!({"type": ty, "name": name, "actions": actions}));
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = serde_json::json!({
        "iss": TOKEN_ISSUER,
        "sub": user.as_ref().map(|(u, _)| u.as_str()).unwrap_or(""),
        "aud": service.clone().unwrap_or_else(|| TOKEN_SERVICE.to_string()),
        "exp": now + 300,
        "nbf": now - 10,
        "iat": now,
        "jti": format!("{}-{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::SeqCst), now),
        "access": access,
    });
    let mut header =
        serde_json::json!({"typ": "JWT", "alg": st.key.alg(), "x5c": [st.cert_der_b64]});
    if let Some(kid) = st.kid.lock().unwrap().as_deref() {
        header["kid"] = kid.into();
    }
    let signing_input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let sig = match sign(&st.key_pem, st.key, signing_input.as_bytes()) {
        Ok(s) => s,
        Err(e) => {
            rec.status = 500;
            st.log.lock().unwrap().push(rec);
            return (
                500,
                json,
                format!("{{\"error\":{:?}}}", e.to_string()),
                vec![],
            );
        }
    };
    let jwt = format!("{signing_input}.{}", b64url(&sig));
    st.log.lock().unwrap().push(rec);
    let body = if oauth {
        serde_json::json!({"access_token": jwt, "token_type": "Bearer", "expires_in": 300, "scope": scopes.join(" ")})
    } else {
        serde_json::json!({"token": jwt, "access_token": jwt, "expires_in": 300})
    };
    (200, json, body.to_string(), vec![])
}

/// The JWS signature of `data`: RSASSA-PKCS1-v1_5 or ECDSA (DER from
/// openssl, made the fixed-size `r || s` of JWS) with SHA-256.
fn sign(key: &Path, kind: SigningKey, data: &[u8]) -> std::io::Result<Vec<u8>> {
    let der = openssl_sign(key, data)?;
    match kind {
        SigningKey::Rs256 => Ok(der),
        SigningKey::Es256 => ecdsa_der_to_jws(&der).ok_or_else(|| {
            std::io::Error::other(format!("openssl wrote a bad ECDSA signature: {der:02x?}"))
        }),
    }
}

/// `SEQUENCE { INTEGER r, INTEGER s }` → 32-byte `r` then 32-byte `s`.
fn ecdsa_der_to_jws(der: &[u8]) -> Option<Vec<u8>> {
    // A P-256 signature is at most 72 bytes: short-form lengths only.
    let (&0x30, rest) = der.split_first()? else {
        return None;
    };
    let (&len, mut rest) = rest.split_first()?;
    if usize::from(len) != rest.len() {
        return None;
    }
    let mut out = Vec::with_capacity(64);
    for _ in 0..2 {
        let (&0x02, r) = rest.split_first()? else {
            return None;
        };
        let (&n, r) = r.split_first()?;
        let int = r.get(..usize::from(n))?;
        rest = &r[usize::from(n)..];
        let int = match int {
            [0, tail @ ..] => tail,
            _ => int,
        };
        if int.len() > 32 {
            return None;
        }
        out.extend(std::iter::repeat_n(0u8, 32 - int.len()));
        out.extend_from_slice(int);
    }
    rest.is_empty().then_some(out)
}

/// `openssl dgst -sha256 -sign KEY` of `data`.
fn openssl_sign(key: &Path, data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut c = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    c.stdin.take().unwrap().write_all(data)?;
    let out = c.wait_with_output()?;
    if !out.status.success() {
        return Err(std::io::Error::other(
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ));
    }
    Ok(out.stdout)
}
