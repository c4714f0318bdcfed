//! The client: configuration, endpoints (mirrors), and sending one request
//! with authentication, scheme fallback for insecure hosts, and redirects.
//! The verbs live in `manifest.rs` and `blob.rs`.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::blocking::Response;
use reqwest::header::{HeaderName, AUTHORIZATION, LOCATION, WWW_AUTHENTICATE};
use reqwest::{Method, Url};
use sha2::{Digest, Sha256};

use crate::auth::{retry_after, AuthCache, AuthRequest, Challenge};
use crate::error::{http_reason, Error, Result};
use crate::hosts::{is_docker_hub, is_loopback, url_authority, Endpoint, Scheme};
use crate::http::{url_host_port, Http};
use crate::retry::{is_retryable_status, Failure};
use crate::{ClientConfig, Credential};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a response (its headers, then each read of its body) may stall.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
const MAX_REDIRECTS: usize = 10;
/// The most of an error body read to find the registry's message.
const MAX_ERROR_BODY: u64 = 64 * 1024;

/// A registry client. Cheap to share: `Send + Sync`, with a token cache and a
/// connection pool shared by all threads using it.
pub struct Client {
    pub(crate) cfg: ClientConfig,
    pub(crate) http: Http,
    auth: AuthCache,
    /// The scheme found to work for insecure hosts (https tried first).
    schemes: Mutex<HashMap<String, Scheme>>,
    mirrors: Vec<Endpoint>,
}

/// A manifest as the registry sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchedManifest {
    /// The bytes exactly as received (their digest is the manifest's digest).
    pub bytes: Vec<u8>,
    /// The media type: the Content-Type, or the manifest's own `mediaType`
    /// when the registry sent none.
    pub media_type: String,
    /// `sha256:<hex>` of `bytes`.
    pub digest: String,
}

/// The reqwest clients: one verifying certificates, one for insecure
/// hosts that does not, and one per host with its own CA certificates.
/// `scheme://host[:port]` of a URL, for messages.
fn url_origin(url: &Url) -> String {
    format!("{}://{}", url.scheme(), url_host_port(url))
}

/// The first `message` of a distribution-spec JSON error body.
fn registry_message(resp: Response) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(&resp.text().ok()?).ok()?;
    let m = v["errors"][0]["message"].as_str()?.trim();
    (!m.is_empty()).then(|| m.to_string())
}

/// `503 service unavailable`
pub(crate) fn status_text(status: reqwest::StatusCode) -> String {
    match status.canonical_reason() {
        Some(r) => format!("{} {}", status.as_u16(), r.to_lowercase()),
        None => status.as_u16().to_string(),
    }
}

fn origin(url: &Url) -> (String, String, Option<u16>) {
    (
        url.scheme().to_string(),
        url.host_str().unwrap_or("").to_ascii_lowercase(),
        url.port_or_known_default(),
    )
}

/// The proxies of the environment (`https_proxy`, `http_proxy`, `all_proxy`,
/// `no_proxy`, either case). As in Docker, loopback hosts are never proxied.
#[derive(Clone, Default)]
struct EnvProxies {
    http: Option<String>,
    https: Option<String>,
}

impl EnvProxies {
    fn read() -> EnvProxies {
        let var = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| std::env::var(n).ok().filter(|v| !v.trim().is_empty()))
        };
        EnvProxies {
            http: var(&["http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"]),
            https: var(&["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"]),
        }
    }

    /// The proxy for `url`, if any.
    fn for_url(&self, url: &Url) -> Option<String> {
        if is_loopback(&url_host_port(url)) {
            return None;
        }
        match url.scheme() {
            "https" => self.https.clone(),
            _ => self.http.clone(),
        }
    }

    fn proxy(&self) -> Option<reqwest::Proxy> {
        if self.http.is_none() && self.https.is_none() {
            return None;
        }
        let me = self.clone();
        let proxy = reqwest::Proxy::custom(move |url| me.for_url(url));
        Some(proxy.no_proxy(reqwest::NoProxy::from_env()))
    }
}

/// One request to a registry endpoint.
pub(crate) struct Request<'a> {
    pub ep: &'a Endpoint,
    pub repo: &'a str,
    /// For messages: `manifest HOST/REPO:TAG`, `blob DIGEST in HOST/REPO`.
    pub what: &'a str,
    pub method: Method,
    /// `/v2/…`
    pub path: String,
    pub headers: Vec<(HeaderName, String)>,
}

/// Makes the body of a request, again for each attempt (the retry after a
/// 401, the http fallback of an insecure host).
pub(crate) type BodyFn<'b> = &'b dyn Fn() -> std::result::Result<reqwest::blocking::Body, Failure>;

enum SendError {
    /// Could not connect (or shake hands) with the registry itself.
    Connect(String),
    Other(Failure),
}

impl Client {
    /// A client for `cfg`. Fails on an invalid mirror or if no TLS backend
    /// can be set up.
    pub fn new(cfg: ClientConfig) -> Result<Client> {
        let proxies = EnvProxies::read();
        let user_agent = cfg.user_agent.clone();
        let builder = move |accept_invalid_certs: bool| {
            let mut b = reqwest::blocking::Client::builder()
                .user_agent(user_agent.clone())
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(CONNECT_TIMEOUT)
                .timeout(READ_TIMEOUT)
                .danger_accept_invalid_certs(accept_invalid_certs)
                // Nothing is verified for an insecure registry: no roots to load.
                .tls_built_in_root_certs(!accept_invalid_certs)
                .no_proxy();
            if let Some(p) = proxies.proxy() {
                b = b.proxy(p);
            }
            b
        };
        let mut with_ca = HashMap::new();
        for (host, pems) in &cfg.ca_certs {
            let ca_err = |reason: String| Error::CaCert {
                host: host.clone(),
                reason,
            };
            let mut all = Vec::new();
            for pem in pems {
                let certs = reqwest::Certificate::from_pem_bundle(pem)
                    .map_err(|e| ca_err(e.to_string()))?;
                if certs.is_empty() {
                    return Err(ca_err("no CERTIFICATE block in it".into()));
                }
                all.extend(certs);
            }
            with_ca.insert(host.clone(), all);
        }
        let mirrors = cfg
            .mirrors
            .iter()
            .map(|m| Endpoint::mirror(m, &cfg.insecure_hosts))
            .collect::<Result<Vec<_>>>()?;
        Ok(Client {
            http: Http::new(builder, cfg.insecure_hosts.clone(), with_ca),
            cfg,
            auth: AuthCache::default(),
            schemes: Mutex::new(HashMap::new()),
            mirrors,
        })
    }

    /// The endpoints to try for `host`, in order: Docker Hub's mirrors, then
    /// the registry itself.
    pub(crate) fn endpoints(&self, host: &str) -> Vec<Endpoint> {
        let mut eps = Vec::new();
        if is_docker_hub(host) {
            eps.extend(self.mirrors.iter().cloned());
        }
        eps.push(Endpoint::registry(host, &self.cfg.insecure_hosts));
        eps
    }

    /// Runs `f` on each endpoint of `host` until one succeeds; the error of
    /// the last endpoint (the registry itself) is the one reported.
    pub(crate) fn on_endpoints<T>(
        &self,
        host: &str,
        mut f: impl FnMut(&Endpoint) -> Result<T>,
    ) -> Result<T> {
        let eps = self.endpoints(host);
        let last = eps.len() - 1;
        for (i, ep) in eps.iter().enumerate() {
            match f(ep) {
                Ok(v) => return Ok(v),
                Err(e) if i == last => return Err(e),
                Err(_) => continue,
            }
        }
        unreachable!("there is always one endpoint")
    }

    fn credential(&self, host: &str) -> Option<&Credential> {
        let creds = &self.cfg.credentials;
        if let Some(c) = creds.get(host) {
            return Some(c);
        }
        if is_docker_hub(host) {
            return [
                "docker.io",
                "index.docker.io",
                "registry-1.docker.io",
                "https://index.docker.io/v1/",
            ]
            .iter()
            .find_map(|k| creds.get(*k));
        }
        None
    }

    fn scheme(&self, ep: &Endpoint) -> (Scheme, bool) {
        if let Some(s) = ep.scheme {
            return (s, false);
        }
        if !ep.insecure {
            return (Scheme::Https, false);
        }
        let known = self
            .schemes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&ep.api)
            .copied();
        match known {
            Some(s) => (s, false),
            None => (Scheme::Https, true),
        }
    }

    fn remember_scheme(&self, ep: &Endpoint, scheme: Scheme) {
        self.schemes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(ep.api.clone(), scheme);
    }

    /// Sends `req`, answering one 401 with credentials or a token. Returns
    /// any response that is not a 401/403, 429 or 5xx.
    pub(crate) fn send(&self, req: &Request<'_>) -> std::result::Result<Response, Failure> {
        // No repository (the `/v2/` check of a login): a token without scope.
        let scope = if req.repo.is_empty() {
            String::new()
        } else {
            format!("repository:{}:pull", req.repo)
        };
        self.send_with(req, &scope, None)
    }

    /// [`Client::send`] with a token scope of the caller's (space-separated
    /// scopes, e.g. `repository:a:pull,push repository:b:pull`) and a body.
    pub(crate) fn send_with(
        &self,
        req: &Request<'_>,
        scope: &str,
        body: Option<BodyFn<'_>>,
    ) -> std::result::Result<Response, Failure> {
        let areq = AuthRequest {
            host: &req.ep.host,
            key: &req.ep.api,
            scope,
            credential: self.credential(&req.ep.host),
        };
        let mut auth = self.auth.cached(&areq);
        let mut answered = false;
        loop {
            let resp = self.send_once(req, auth.as_deref(), body)?;
            let status = resp.status().as_u16();
            match status {
                401 if !answered => {
                    answered = true;
                    let challenges: Vec<Challenge> = resp
                        .headers()
                        .get_all(WWW_AUTHENTICATE)
                        .iter()
                        .filter_map(|v| v.to_str().ok())
                        .flat_map(crate::auth::parse_challenges)
                        .collect();
                    auth = Some(self.auth.authenticate(&self.http, &areq, &challenges)?);
                }
                401 => {
                    return Err(Failure::Fatal(Error::Unauthorized {
                        host: req.ep.host.clone(),
                    }))
                }
                403 => {
                    let detail = registry_message(resp)
                        .map(|m| format!(": {m}"))
                        .unwrap_or_default();
                    return Err(Failure::Fatal(Error::Denied {
                        host: req.ep.host.clone(),
                        detail,
                    }));
                }
                s if is_retryable_status(s) => {
                    return Err(Failure::Retry {
                        reason: format!(
                            "{} answered {}",
                            url_host_port(resp.url()),
                            status_text(resp.status())
                        ),
                        after: retry_after(&resp),
                    })
                }
                _ => return Ok(resp),
            }
        }
    }

    /// One request, with https-then-http for insecure hosts.
    fn send_once(
        &self,
        req: &Request<'_>,
        auth: Option<&str>,
        body: Option<BodyFn<'_>>,
    ) -> std::result::Result<Response, Failure> {
        let (scheme, tentative) = self.scheme(req.ep);
        match self.follow(req, scheme, auth, body) {
            Ok(resp) => {
                if tentative {
                    self.remember_scheme(req.ep, scheme);
                }
                Ok(resp)
            }
            Err(SendError::Connect(_)) if tentative => {
                match self.follow(req, Scheme::Http, auth, body) {
                    Ok(resp) => {
                        self.remember_scheme(req.ep, Scheme::Http);
                        Ok(resp)
                    }
                    Err(SendError::Connect(reason)) => Err(Failure::retry(reason)),
                    Err(SendError::Other(f)) => Err(f),
                }
            }
            Err(SendError::Connect(reason)) => Err(Failure::retry(reason)),
            Err(SendError::Other(f)) => Err(f),
        }
    }

    /// Sends the request and follows redirects, dropping the Authorization
    /// header as soon as a redirect leaves the registry's origin. A path
    /// that is an absolute URL (an upload Location) is used as it is.
    fn follow(
        &self,
        req: &Request<'_>,
        scheme: Scheme,
        auth: Option<&str>,
        body: Option<BodyFn<'_>>,
    ) -> std::result::Result<Response, SendError> {
        let host = &req.ep.host;
        let redirect_error = |reason: String| {
            SendError::Other(Failure::Fatal(Error::Redirect {
                host: host.clone(),
                what: req.what.to_string(),
                reason,
            }))
        };
        let base = format!("{}://{}", scheme.as_str(), url_authority(&req.ep.api));
        let absolute = req.path.starts_with("https://") || req.path.starts_with("http://");
        let first = if absolute {
            req.path.clone()
        } else {
            format!("{base}{}", req.path)
        };
        let invalid = |e: String| {
            SendError::Other(Failure::Fatal(Error::InvalidRepository {
                host: host.clone(),
                repo: format!("{} ({e})", req.repo),
            }))
        };
        let mut url = Url::parse(&first).map_err(|e| invalid(e.to_string()))?;
        let registry_origin = origin(&Url::parse(&base).map_err(|e| invalid(e.to_string()))?);
        let mut auth = auth.filter(|_| origin(&url) == registry_origin);
        for hop in 0..=MAX_REDIRECTS {
            let mut rb = self
                .http
                .for_url(&url)
                .map_err(|e| SendError::Other(Failure::Fatal(e)))?
                .request(req.method.clone(), url.clone());
            for (name, value) in &req.headers {
                rb = rb.header(name, value);
            }
            if let Some(a) = auth {
                rb = rb.header(AUTHORIZATION, a);
            }
            if let Some(make) = body {
                rb = rb.body(make().map_err(SendError::Other)?);
            }
            let resp = match rb.send() {
                Ok(r) => r,
                Err(e) => {
                    let at = url_origin(&url);
                    return Err(if e.is_connect() {
                        let reason = format!("cannot connect to {at}: {}", http_reason(&e));
                        if hop == 0 {
                            SendError::Connect(reason)
                        } else {
                            SendError::Other(Failure::retry(reason))
                        }
                    } else {
                        let reason = format!("request to {at} failed: {}", http_reason(&e));
                        SendError::Other(Failure::retry(reason))
                    });
                }
            };
            if !resp.status().is_redirection() || resp.status().as_u16() == 304 {
                return Ok(resp);
            }
            let Some(location) = resp.headers().get(LOCATION) else {
                return Ok(resp);
            };
            let location = location
                .to_str()
                .map_err(|_| redirect_error("the Location header is not text".to_string()))?;
            let next = url
                .join(location)
                .map_err(|e| redirect_error(format!("invalid Location {location:?}: {e}")))?;
            match next.scheme() {
                "https" => {}
                "http" if url.scheme() == "http" || self.http.is_insecure_url(&next) => {}
                "http" => {
                    return Err(redirect_error(format!(
                        "refusing to follow a redirect from https to plain http ({next})"
                    )))
                }
                other => return Err(redirect_error(format!("unsupported scheme {other:?}"))),
            }
            if origin(&next) != registry_origin {
                auth = None;
            }
            url = next;
        }
        Err(redirect_error(format!(
            "more than {MAX_REDIRECTS} redirects"
        )))
    }

    /// The error for an unexpected status, with the registry's own message.
    pub(crate) fn status_error(&self, ep: &Endpoint, what: &str, resp: Response) -> Error {
        let status = resp.status().as_u16();
        let mut body = Vec::new();
        let _ = resp.take(MAX_ERROR_BODY).read_to_end(&mut body);
        Error::Status {
            host: ep.host.clone(),
            what: what.to_string(),
            status,
            detail: error_detail(&body),
        }
    }
}

/// The registry's error message from an OCI error body, as `: CODE: message`.
fn error_detail(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<OneError>,
    }
    #[derive(serde::Deserialize)]
    struct OneError {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    if let Ok(e) = serde_json::from_slice::<Errors>(body) {
        let parts: Vec<String> = e
            .errors
            .iter()
            .map(|e| match (e.code.is_empty(), e.message.is_empty()) {
                (false, false) => format!("{}: {}", e.code.to_lowercase(), e.message),
                (false, true) => e.code.to_lowercase(),
                _ => e.message.clone(),
            })
            .filter(|s| !s.is_empty())
            .collect();
        if !parts.is_empty() {
            return format!(": {}", parts.join("; "));
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if !text.is_empty() && text.len() <= 200 && !text.contains('<') {
        format!(": {text}")
    } else {
        String::new()
    }
}

impl Client {
    /// Checks the configured credential of `host` the way `docker login`
    /// does: GET `/v2/` on the registry itself (never a mirror), answering
    /// its challenge (bearer token without scope, or Basic). Ok when the
    /// registry accepts it; [`Error::Unauthorized`] when it refuses it.
    pub fn check_login(&self, host: &str) -> Result<()> {
        check_host(host)?;
        let ep = Endpoint::registry(host, &self.cfg.insecure_hosts);
        let what = format!("login to {host}");
        let req = Request {
            ep: &ep,
            repo: "",
            what: &what,
            method: Method::GET,
            path: "/v2/".to_string(),
            headers: Vec::new(),
        };
        let mut retry = crate::retry::Retry::new(&ep.host, &what, self.cfg.max_retries);
        loop {
            match self.send(&req) {
                Ok(resp) if resp.status().is_success() => return Ok(()),
                Ok(resp) => return Err(self.status_error(&ep, &what, resp)),
                Err(f) => retry.handle(f)?,
            }
        }
    }
}

/// Docker Hub's official images live under `library/`.
pub(crate) fn normalize_repo(host: &str, repo: &str) -> String {
    if is_docker_hub(host) && !repo.contains('/') {
        format!("library/{repo}")
    } else {
        repo.to_string()
    }
}

/// Checks a registry host: `name[:port]` or `[v6]:port`, nothing else.
pub(crate) fn check_host(host: &str) -> Result<()> {
    let ok = !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_:[]".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidHost {
            host: host.to_string(),
        })
    }
}

/// Checks a repository name against the distribution spec's grammar:
/// lowercase alphanumeric components separated by `.`, `_`, `__` or dashes.
pub(crate) fn check_repo(host: &str, repo: &str) -> Result<()> {
    let component_ok = |c: &str| {
        let b = c.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter()
                .all(|&x| x.is_ascii_lowercase() || x.is_ascii_digit() || b"._-".contains(&x))
    };
    if repo.len() <= 255 && repo.split('/').all(component_ok) {
        Ok(())
    } else {
        Err(Error::InvalidRepository {
            host: host.to_string(),
            repo: repo.to_string(),
        })
    }
}

/// Checks a tag (`[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`) or a digest.
pub(crate) fn check_reference(host: &str, repo: &str, reference: &str) -> Result<()> {
    if reference.contains(':') {
        return check_digest(reference);
    }
    let b = reference.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&x| x.is_ascii_alphanumeric() || b"_.-".contains(&x));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidReference {
            host: host.to_string(),
            repo: repo.to_string(),
            reference: reference.to_string(),
        })
    }
}

/// Checks that `digest` is `sha256:` and 64 lowercase hex digits.
pub(crate) fn check_digest(digest: &str) -> Result<()> {
    match digest.strip_prefix("sha256:") {
        Some(hex)
            if hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
        {
            Ok(())
        }
        _ => Err(Error::InvalidDigest {
            digest: digest.to_string(),
        }),
    }
}

/// `sha256:<hex>` of `bytes`.
pub(crate) fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_names() {
        for ok in ["library/alpine", "a", "a-b/c.d/e__f", "x0/y--z"] {
            assert!(check_repo("h", ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "A", "a/", "/a", "a//b", "a/../b", "-a", "a?b", "a b", "a%2f",
        ] {
            assert!(check_repo("h", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn references() {
        let d = format!("sha256:{}", "a".repeat(64));
        for ok in ["latest", "v1.2.3", "_x", "A-b_c.d", d.as_str()] {
            assert!(check_reference("h", "r", ok).is_ok(), "{ok}");
        }
        let long = "a".repeat(129);
        for bad in ["", ".x", "-x", "a/b", "a?b", long.as_str(), "sha256:abc"] {
            assert!(check_reference("h", "r", bad).is_err(), "{bad}");
        }
        assert!(check_digest(&format!("sha256:{}", "A".repeat(64))).is_err());
        assert!(check_digest(&format!("sha512:{}", "a".repeat(128))).is_err());
    }

    #[test]
    fn digest_of_bytes() {
        assert_eq!(
            sha256_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn docker_hub_repos_get_library() {
        assert_eq!(normalize_repo("docker.io", "alpine"), "library/alpine");
        assert_eq!(normalize_repo("docker.io", "me/x"), "me/x");
        assert_eq!(normalize_repo("quay.io", "alpine"), "alpine");
    }

    #[test]
    fn error_details() {
        let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#;
        assert_eq!(error_detail(body), ": manifest_unknown: manifest unknown");
        assert_eq!(error_detail(b"no such thing\n"), ": no such thing");
        assert_eq!(error_detail(b"<html>big</html>"), "");
        assert_eq!(error_detail(b""), "");
    }

    #[test]
    fn hosts() {
        for ok in ["docker.io", "localhost:5000", "[::1]:5000", "::1", "a_b.c"] {
            assert!(check_host(ok).is_ok(), "{ok}");
        }
        for bad in ["", "http://x", "x/y", "user@x", "x y", "x?y"] {
            assert!(check_host(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn proxies_skip_loopback() {
        let p = EnvProxies {
            http: Some("http://proxy:3128".into()),
            https: Some("http://sproxy:3128".into()),
        };
        let url = |u: &str| Url::parse(u).unwrap();
        assert_eq!(p.for_url(&url("http://127.0.0.1:5000/v2/")), None);
        assert_eq!(p.for_url(&url("http://localhost/v2/")), None);
        assert_eq!(p.for_url(&url("https://[::1]:5000/v2/")), None);
        assert_eq!(
            p.for_url(&url("http://reg.lan/v2/")).as_deref(),
            Some("http://proxy:3128")
        );
        assert_eq!(
            p.for_url(&url("https://registry-1.docker.io/v2/"))
                .as_deref(),
            Some("http://sproxy:3128")
        );
    }

    #[test]
    fn origins() {
        let a = Url::parse("http://127.0.0.1:5000/v2/").unwrap();
        let b = Url::parse("http://127.0.0.1:5000/other").unwrap();
        let c = Url::parse("http://localhost:5000/v2/").unwrap();
        let d = Url::parse("http://127.0.0.1:5001/v2/").unwrap();
        assert_eq!(origin(&a), origin(&b));
        assert_ne!(origin(&a), origin(&c));
        assert_ne!(origin(&a), origin(&d));
        assert_eq!(url_host_port(&a), "127.0.0.1:5000");
    }
}
