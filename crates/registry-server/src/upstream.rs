//! The upstream registry of a pull-through cache (`--proxy-remote URL`):
//! an async client that sends one request with the upstream's auth —
//! HTTP Basic, or a Bearer token fetched from the realm of the upstream's
//! `WWW-Authenticate` challenge (with the configured credentials, or
//! anonymously) and cached per scope until it expires.
//!
//! Nothing here trusts what the upstream sends: callers verify digests and
//! sizes, and bodies read here (tokens, error messages) are capped.

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use base64::Engine;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one read of a response (headers, then each body chunk) may stall.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// A whole small request (manifest HEAD, token, tag list page).
const SMALL_TIMEOUT: Duration = Duration::from_secs(30);
/// The most of a token response read.
const MAX_TOKEN_BODY: usize = 1 << 20;

/// A bad `--proxy-remote` / `[proxy]` setting.
#[derive(Debug, thiserror::Error)]
pub enum ProxyConfigError {
    #[error("registry proxy: remote url {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("registry proxy: setting up the http client: {0}")]
    Client(reqwest::Error),
}

/// Why the upstream could not answer.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// A 404: the upstream does not have it.
    #[error("upstream {what}: not found")]
    NotFound { what: String },
    /// Unreachable, a 5xx, refused credentials, a malformed answer...
    #[error("upstream {what}: {reason}")]
    Unavailable { what: String, reason: String },
}

impl UpstreamError {
    pub fn unavailable(what: &str, reason: impl Into<String>) -> UpstreamError {
        UpstreamError::Unavailable {
            what: what.to_string(),
            reason: reason.into(),
        }
    }
}

/// The upstream registry and its credentials.
pub struct Upstream {
    /// `scheme://host[:port]` without a trailing `/`.
    base: String,
    creds: Option<(String, String)>,
    http: reqwest::Client,
    /// Bearer tokens by scope, with their expiry.
    tokens: Mutex<HashMap<String, (String, Instant)>>,
    /// The upstream asked for Basic auth once: send it up front.
    basic: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("base", &self.base)
            .field("user", &self.creds.as_ref().map(|c| &c.0))
            .finish()
    }
}

/// The parts of a `WWW-Authenticate` challenge: scheme and parameters.
#[derive(Debug, PartialEq)]
pub(crate) struct Challenge {
    pub scheme: String,
    pub params: HashMap<String, String>,
}

/// Parses `Bearer realm="…",service="…",scope="…"` (quoted values may hold
/// commas and `\"`).
pub(crate) fn parse_challenge(v: &str) -> Option<Challenge> {
    let v = v.trim();
    let (scheme, rest) = v.split_once(' ').unwrap_or((v, ""));
    if scheme.is_empty() {
        return None;
    }
    let mut params = HashMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if key.is_empty() || chars.next() != Some('=') {
            break;
        }
        let mut val = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            val.push(n);
                        }
                    }
                    '"' => break,
                    c => val.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                val.push(c);
                chars.next();
            }
        }
        params.insert(key.trim().to_ascii_lowercase(), val.trim().to_string());
    }
    Some(Challenge {
        scheme: scheme.to_ascii_lowercase(),
        params,
    })
}

/// An error with its causes (`reqwest`'s message alone hides them):
/// `a: b: c`.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s = format!("{s}: {m}");
        }
        cur = c.source();
    }
    s
}

/// Reads at most `max` bytes of a body; `None` when it is longer.
pub(crate) async fn read_capped(
    resp: &mut reqwest::Response,
    max: usize,
) -> Result<Option<Vec<u8>>, reqwest::Error> {
    if resp.content_length().is_some_and(|l| l > max as u64) {
        return Ok(None);
    }
    let mut out = Vec::new();
    while let Some(c) = resp.chunk().await? {
        if out.len() + c.len() > max {
            return Ok(None);
        }
        out.extend_from_slice(&c);
    }
    Ok(Some(out))
}

impl Upstream {
    /// A client for `remote_url` (`http://` or `https://`, host and port
    /// only) with optional Basic credentials.
    pub fn new(
        remote_url: &str,
        creds: Option<(String, String)>,
    ) -> Result<Upstream, ProxyConfigError> {
        let base = check_remote_url(remote_url)?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("berth-registry-proxy/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .build()
            .map_err(ProxyConfigError::Client)?;
        Ok(Upstream {
            base,
            creds,
            http,
            tokens: Mutex::new(HashMap::new()),
            basic: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// `scheme://host[:port]`.
    pub fn url(&self) -> &str {
        &self.base
    }

    fn basic_value(&self) -> Option<String> {
        self.creds.as_ref().map(|(u, p)| {
            let b = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
            format!("Basic {b}")
        })
    }

    fn cached_token(&self, scope: &str) -> Option<String> {
        let m = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        m.get(scope)
            .filter(|(_, exp)| *exp > Instant::now())
            .map(|(t, _)| t.clone())
    }

    /// Sends `method path` (`/v2/…`) with `headers`, authenticating as
    /// the upstream asks (`scope`: the token scope to ask for, e.g.
    /// `repository:NAME:pull`). `what` names the request in errors.
    /// Every status is returned as it is except a 401 that survives auth.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &HeaderMap,
        scope: &str,
        what: &str,
        small: bool,
    ) -> Result<reqwest::Response, UpstreamError> {
        let url = format!("{}{path}", self.base);
        let build = |auth: Option<&str>| {
            let mut r = self
                .http
                .request(method.clone(), &url)
                .headers(headers.clone());
            if small {
                r = r.timeout(SMALL_TIMEOUT);
            }
            if let Some(a) = auth {
                r = r.header(reqwest::header::AUTHORIZATION, a);
            }
            r
        };
        let unreachable = |e: reqwest::Error| UpstreamError::unavailable(what, chain(&e));
        let first_auth = match self.cached_token(scope) {
            Some(t) => Some(format!("Bearer {t}")),
            None if self.basic.load(std::sync::atomic::Ordering::Relaxed) => self.basic_value(),
            None => None,
        };
        let resp = build(first_auth.as_deref())
            .send()
            .await
            .map_err(unreachable)?;
        if resp.status() != StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        let challenge = resp
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_challenge)
            .ok_or_else(|| {
                UpstreamError::unavailable(what, "401 unauthorized without a usable challenge")
            })?;
        let auth = match challenge.scheme.as_str() {
            "basic" => {
                let b = self.basic_value().ok_or_else(|| {
                    UpstreamError::unavailable(
                        what,
                        "the upstream asks for credentials: set [proxy] username and password",
                    )
                })?;
                self.basic.store(true, std::sync::atomic::Ordering::Relaxed);
                b
            }
            "bearer" => format!("Bearer {}", self.token(&challenge, scope, what).await?),
            s => {
                return Err(UpstreamError::unavailable(
                    what,
                    format!("unsupported auth scheme {s:?} in the upstream's challenge"),
                ))
            }
        };
        let resp = build(Some(&auth)).send().await.map_err(unreachable)?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            return Err(UpstreamError::unavailable(
                what,
                "401 unauthorized: the upstream refused the proxy's credentials",
            ));
        }
        Ok(resp)
    }

    /// A token from the challenge's realm, cached under `scope`.
    async fn token(
        &self,
        ch: &Challenge,
        scope: &str,
        what: &str,
    ) -> Result<String, UpstreamError> {
        let fail = |r: String| UpstreamError::unavailable(what, format!("token: {r}"));
        let realm = ch
            .params
            .get("realm")
            .ok_or_else(|| fail("the Bearer challenge has no realm".into()))?;
        let mut url = reqwest::Url::parse(realm)
            .map_err(|e| fail(format!("invalid realm {realm:?}: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(fail(format!("realm {realm:?} is not http(s)")));
        }
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = ch.params.get("service") {
                q.append_pair("service", s);
            }
            q.append_pair(
                "scope",
                ch.params.get("scope").map_or(scope, |s| s.as_str()),
            );
        }
        let mut req = self.http.get(url).timeout(SMALL_TIMEOUT);
        if let Some(b) = self.basic_value() {
            req = req.header(reqwest::header::AUTHORIZATION, b);
        }
        let mut resp = req.send().await.map_err(|e| fail(chain(&e)))?;
        if !resp.status().is_success() {
            return Err(fail(format!("the realm answered {}", resp.status())));
        }
        let body = read_capped(&mut resp, MAX_TOKEN_BODY)
            .await
            .map_err(|e| fail(chain(&e)))?
            .ok_or_else(|| fail("token response larger than 1 MiB".into()))?;
        let v: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| fail(format!("token response is not JSON: {e}")))?;
        let token = v["token"]
            .as_str()
            .or_else(|| v["access_token"].as_str())
            .filter(|t| !t.is_empty() && HeaderValue::from_str(&format!("Bearer {t}")).is_ok())
            .ok_or_else(|| fail("no usable token in the response".into()))?
            .to_string();
        // Renewed a little early; at least 60 s as the token spec says.
        let secs = v["expires_in"].as_u64().unwrap_or(60).clamp(60, 3600);
        let exp = Instant::now() + Duration::from_secs(secs) - Duration::from_secs(10);
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(scope.to_string(), (token.clone(), exp));
        Ok(token)
    }
}

/// `scheme://host[:port]` of a valid remote url (no path but `/`, no
/// query, no user info).
fn check_remote_url(u: &str) -> Result<String, ProxyConfigError> {
    let bad = |reason: &str| ProxyConfigError::BadUrl {
        url: u.to_string(),
        reason: reason.to_string(),
    };
    let url = reqwest::Url::parse(u).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("must be http:// or https://"));
    }
    let Some(host) = url.host_str() else {
        return Err(bad("has no host"));
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "put credentials in the config's [proxy] username and password",
        ));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(bad(
            "must name only the registry (scheme, host, port), no path",
        ));
    }
    Ok(match url.port() {
        Some(p) => format!("{}://{host}:{p}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="reg, x",scope="repository:a/b:pull""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.params["realm"], "https://auth.example/token");
        assert_eq!(c.params["service"], "reg, x");
        assert_eq!(c.params["scope"], "repository:a/b:pull");
        let c = parse_challenge(r#"Basic realm="r \"q\"""#).unwrap();
        assert_eq!(
            (c.scheme.as_str(), c.params["realm"].as_str()),
            ("basic", "r \"q\"")
        );
        let c = parse_challenge("Bearer realm=http://x/t, service=s").unwrap();
        assert_eq!(c.params["realm"], "http://x/t");
        assert_eq!(c.params["service"], "s");
        assert!(parse_challenge("").is_none());
    }

    #[test]
    fn remote_urls_are_checked() {
        assert_eq!(
            check_remote_url("http://127.0.0.1:5000").unwrap(),
            "http://127.0.0.1:5000"
        );
        assert_eq!(
            check_remote_url("https://registry-1.docker.io/").unwrap(),
            "https://registry-1.docker.io"
        );
        for bad in [
            "ftp://x",
            "127.0.0.1:5000",
            "http://u:p@x",
            "http://x/v2/",
            "http://x?a=b",
        ] {
            assert!(check_remote_url(bad).is_err(), "{bad}");
        }
    }
}
