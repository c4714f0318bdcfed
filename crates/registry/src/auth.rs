//! Registry authentication: WWW-Authenticate challenges, the bearer token
//! flow (GET with Basic credentials or anonymous; OAuth2 POST with an
//! identity token), Basic auth, and a token cache per (host, scope).

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use reqwest::blocking::Response;
use reqwest::header::{AUTHORIZATION, RETRY_AFTER};
use reqwest::Url;

use crate::error::{http_reason, Error};
use crate::http::Http;
use crate::retry::{is_retryable_status, parse_retry_after, Failure};
use crate::Credential;

/// The shortest token lifetime assumed (the token spec's default).
const MIN_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// A token is dropped from the cache this long before it expires.
const EXPIRY_MARGIN: Duration = Duration::from_secs(10);
/// The largest token response read.
const MAX_TOKEN_RESPONSE: u64 = 1 << 20;
/// The OAuth2 client id sent with identity tokens.
const CLIENT_ID: &str = "berth";

/// What went wrong while authenticating (other than being refused, which is
/// [`Error::Unauthorized`]).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("invalid token realm {realm:?} from {host}: {reason}")]
    BadRealm {
        host: String,
        realm: String,
        reason: String,
    },
    #[error(
        "token realm {realm} for {host} is plain http: add its host to the insecure hosts \
         to allow this"
    )]
    InsecureRealm { host: String, realm: String },
    #[error("token endpoint {realm} for {host} answered {status}")]
    TokenStatus {
        host: String,
        realm: String,
        status: u16,
    },
    #[error("invalid token response from {realm} for {host}: {reason}")]
    BadTokenResponse {
        host: String,
        realm: String,
        reason: String,
    },
    #[error("{host} asks for {scheme} authentication, which berth does not support")]
    UnsupportedScheme { host: String, scheme: String },
}

/// One challenge of a WWW-Authenticate header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Challenge {
    /// Lowercase: `bearer`, `basic`.
    pub scheme: String,
    /// Parameter names are lowercase.
    pub params: Vec<(String, String)>,
}

impl Challenge {
    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses a WWW-Authenticate header value: `Bearer realm="…",service="…",
/// scope="repository:a/b:pull,push", Basic realm="x"`.
pub(crate) fn parse_challenges(header: &str) -> Vec<Challenge> {
    let b = header.as_bytes();
    let mut out: Vec<Challenge> = Vec::new();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < b.len() && (b[*i] == b' ' || b[*i] == b'\t') {
            *i += 1;
        }
    };
    loop {
        while i < b.len() && (b[i] == b' ' || b[i] == b'\t' || b[i] == b',') {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let start = i;
        while i < b.len() && !matches!(b[i], b' ' | b'\t' | b'=' | b',') {
            i += 1;
        }
        let token = &header[start..i];
        skip_ws(&mut i);
        if i < b.len() && b[i] == b'=' {
            // An auth-param of the current challenge.
            i += 1;
            skip_ws(&mut i);
            let value = if i < b.len() && b[i] == b'"' {
                i += 1;
                let mut v = Vec::new();
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' && i + 1 < b.len() {
                        i += 1;
                    }
                    v.push(b[i]);
                    i += 1;
                }
                i += 1; // the closing quote
                String::from_utf8_lossy(&v).into_owned()
            } else {
                let vstart = i;
                while i < b.len() && b[i] != b',' {
                    i += 1;
                }
                header[vstart..i].trim().to_string()
            };
            if let Some(ch) = out.last_mut() {
                ch.params.push((token.to_ascii_lowercase(), value));
            }
        } else if !token.is_empty() {
            out.push(Challenge {
                scheme: token.to_ascii_lowercase(),
                params: Vec::new(),
            });
        }
    }
    out
}

/// The value of an `Authorization: Basic` header.
pub(crate) fn basic_header(username: &str, password: &str) -> String {
    let raw = format!("{username}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

struct CachedToken {
    token: String,
    expires: Instant,
}

#[derive(Default)]
struct State {
    /// Bearer tokens by (api host, scope).
    tokens: HashMap<(String, String), CachedToken>,
    /// Api hosts that asked for Basic auth: credentials go with every request.
    basic: HashSet<String>,
}

/// Tokens and auth schemes learnt so far, shared by a client's threads.
#[derive(Default)]
pub(crate) struct AuthCache {
    state: Mutex<State>,
}

/// Who is authenticating, for what.
pub(crate) struct AuthRequest<'a> {
    /// The host as the user named it (messages).
    pub host: &'a str,
    /// The api host (cache key).
    pub key: &'a str,
    /// `repository:REPO:pull`; several are separated by spaces.
    pub scope: &'a str,
    pub credential: Option<&'a Credential>,
}

impl AuthCache {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The Authorization header to send up front, if one is known.
    pub(crate) fn cached(&self, req: &AuthRequest<'_>) -> Option<String> {
        let mut st = self.state();
        let k = (req.key.to_string(), req.scope.to_string());
        if let Some(t) = st.tokens.get(&k) {
            if t.expires > Instant::now() {
                return Some(format!("Bearer {}", t.token));
            }
            st.tokens.remove(&k);
        }
        match req.credential {
            Some(Credential::Basic { username, password }) if st.basic.contains(req.key) => {
                Some(basic_header(username, password))
            }
            _ => None,
        }
    }

    /// Answers the challenges of a 401: returns the Authorization header to
    /// retry with.
    pub(crate) fn authenticate(
        &self,
        http: &Http,
        req: &AuthRequest<'_>,
        challenges: &[Challenge],
    ) -> Result<String, Failure> {
        self.state()
            .tokens
            .remove(&(req.key.to_string(), req.scope.to_string()));
        let unauthorized = || {
            Failure::Fatal(Error::Unauthorized {
                host: req.host.to_string(),
            })
        };
        if let Some(ch) = challenges.iter().find(|c| c.scheme == "bearer") {
            let (token, lifetime) = fetch_token(http, req, ch)?;
            let lifetime = lifetime.max(MIN_TOKEN_LIFETIME) - EXPIRY_MARGIN;
            self.state().tokens.insert(
                (req.key.to_string(), req.scope.to_string()),
                CachedToken {
                    token: token.clone(),
                    expires: Instant::now() + lifetime,
                },
            );
            return Ok(format!("Bearer {token}"));
        }
        if challenges.iter().any(|c| c.scheme == "basic") {
            return match req.credential {
                Some(Credential::Basic { username, password }) => {
                    self.state().basic.insert(req.key.to_string());
                    Ok(basic_header(username, password))
                }
                _ => Err(unauthorized()),
            };
        }
        match challenges.first() {
            Some(ch) => Err(Failure::Fatal(
                AuthError::UnsupportedScheme {
                    host: req.host.to_string(),
                    scheme: ch.scheme.clone(),
                }
                .into(),
            )),
            None => Err(unauthorized()),
        }
    }
}

#[derive(serde::Deserialize)]
struct TokenResponse {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// Gets a bearer token from the challenge's realm: returns it and its lifetime.
fn fetch_token(
    http: &Http,
    req: &AuthRequest<'_>,
    ch: &Challenge,
) -> Result<(String, Duration), Failure> {
    let realm_str = ch.param("realm").unwrap_or("");
    let bad_realm = |reason: &str| {
        Failure::Fatal(
            AuthError::BadRealm {
                host: req.host.to_string(),
                realm: realm_str.to_string(),
                reason: reason.to_string(),
            }
            .into(),
        )
    };
    if realm_str.is_empty() {
        return Err(bad_realm("the bearer challenge has no realm"));
    }
    let mut url = Url::parse(realm_str).map_err(|e| bad_realm(&e.to_string()))?;
    match url.scheme() {
        "https" => {}
        "http" if http.is_insecure_url(&url) => {}
        "http" => {
            return Err(Failure::Fatal(
                AuthError::InsecureRealm {
                    host: req.host.to_string(),
                    realm: realm_str.to_string(),
                }
                .into(),
            ))
        }
        _ => return Err(bad_realm("not an http(s) url")),
    }
    // Several scopes (a push with a cross-repository mount) go as several
    // `scope` parameters, as Docker sends them.
    let mut scopes: Vec<String> = req
        .scope
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    for s in ch.param("scope").unwrap_or("").split(' ') {
        if !s.is_empty() && !scopes.iter().any(|x| x == s) {
            scopes.push(s.to_string());
        }
    }
    let service = ch.param("service");
    let client = http.for_url(&url).map_err(Failure::Fatal)?;
    let builder = match req.credential {
        Some(Credential::IdentityToken(refresh)) => {
            let mut form = vec![
                ("grant_type", "refresh_token".to_string()),
                ("refresh_token", refresh.clone()),
                ("client_id", CLIENT_ID.to_string()),
                ("scope", scopes.join(" ")),
            ];
            if let Some(s) = service {
                form.push(("service", s.to_string()));
            }
            client.post(url.clone()).form(&form)
        }
        cred => {
            {
                let mut q = url.query_pairs_mut();
                if let Some(s) = service {
                    q.append_pair("service", s);
                }
                for s in &scopes {
                    q.append_pair("scope", s);
                }
                if let Some(Credential::Basic { username, .. }) = cred {
                    q.append_pair("account", username);
                }
            }
            let b = client.get(url.clone());
            match cred {
                Some(Credential::Basic { username, password }) => {
                    b.header(AUTHORIZATION, basic_header(username, password))
                }
                _ => b,
            }
        }
    };
    let resp = builder.send().map_err(|e| {
        Failure::retry(format!(
            "cannot reach the token endpoint {realm_str} of {}: {}",
            req.host,
            http_reason(&e)
        ))
    })?;
    let status = resp.status().as_u16();
    if status == 401 || status == 403 {
        return Err(Failure::Fatal(Error::Unauthorized {
            host: req.host.to_string(),
        }));
    }
    if is_retryable_status(status) {
        return Err(Failure::Retry {
            reason: format!(
                "the token endpoint {realm_str} of {} answered {status}",
                req.host
            ),
            after: retry_after(&resp),
        });
    }
    if !resp.status().is_success() {
        return Err(Failure::Fatal(
            AuthError::TokenStatus {
                host: req.host.to_string(),
                realm: realm_str.to_string(),
                status,
            }
            .into(),
        ));
    }
    let bad_response = |reason: String| {
        Failure::Fatal(
            AuthError::BadTokenResponse {
                host: req.host.to_string(),
                realm: realm_str.to_string(),
                reason,
            }
            .into(),
        )
    };
    let mut body = Vec::new();
    resp.take(MAX_TOKEN_RESPONSE)
        .read_to_end(&mut body)
        .map_err(|e| {
            Failure::retry(format!(
                "reading the token from {realm_str} for {}: {e}",
                req.host
            ))
        })?;
    let parsed: TokenResponse =
        serde_json::from_slice(&body).map_err(|e| bad_response(e.to_string()))?;
    let token = parsed
        .token
        .filter(|t| !t.is_empty())
        .or(parsed.access_token.filter(|t| !t.is_empty()))
        .ok_or_else(|| bad_response("no token or access_token".to_string()))?;
    if token.contains(['\r', '\n']) {
        return Err(bad_response("the token holds a line break".to_string()));
    }
    let lifetime = Duration::from_secs(parsed.expires_in.unwrap_or(0));
    Ok((token, lifetime))
}

pub(crate) fn retry_after(resp: &Response) -> Option<Duration> {
    resp.headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_hub_challenge() {
        let c = parse_challenges(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].param("realm"), Some("https://auth.docker.io/token"));
        assert_eq!(c[0].param("service"), Some("registry.docker.io"));
        assert_eq!(c[0].param("scope"), Some("repository:library/alpine:pull"));
    }

    #[test]
    fn parses_commas_in_quotes_and_several_challenges() {
        let c = parse_challenges(
            r#"Bearer realm="https://a/token", scope="repository:x/y:pull,push",error="insufficient_scope", Basic realm="reg \"x\"""#,
        );
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].param("scope"), Some("repository:x/y:pull,push"));
        assert_eq!(c[0].param("error"), Some("insufficient_scope"));
        assert_eq!(c[1].scheme, "basic");
        assert_eq!(c[1].param("realm"), Some("reg \"x\""));
    }

    #[test]
    fn parses_unquoted_and_bare() {
        let c = parse_challenges("Basic realm=registry , Negotiate");
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].param("realm"), Some("registry"));
        assert_eq!(c[1].scheme, "negotiate");
        assert!(parse_challenges("").is_empty());
        assert!(parse_challenges(" , ").is_empty());
        // An unterminated quote does not panic.
        let c = parse_challenges(r#"Bearer realm="https://x"#);
        assert_eq!(c[0].param("realm"), Some("https://x"));
    }

    #[test]
    fn basic_header_encodes() {
        assert_eq!(basic_header("user", "pass"), "Basic dXNlcjpwYXNz");
    }
}
