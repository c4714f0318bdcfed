//! Token auth as Docker Hub does it: the registry answers 401 with
//! `WWW-Authenticate: Bearer realm=…,service=…,scope=…`; the client gets a
//! JWT from the realm (`GET /token?service=…&scope=…`, served here, with
//! Basic credentials checked against the htpasswd file or none for
//! anonymous) and sends it as `Authorization: Bearer …`.
//!
//! Tokens are EdDSA (Ed25519) JWTs signed with `ring`: the key is generated
//! at first start under the registry root (`token-key.pk8`, PKCS#8, mode
//! 0600) unless the config names one. Verification accepts tokens signed
//! by that key or by a trusted external issuer's key ([`crate::keys`]):
//! EdDSA, RS256 (RSA PKCS#1 v1.5, SHA-256) or ES256 (ECDSA P-256, SHA-256);
//! the header's `kid`, when present, picks the key, and `alg` must be the
//! key's (`none`, HMAC and everything else are refused). It then checks
//! the issuer, audience (= service), `exp`/`nbf` and the `access` list.

use crate::config::{Action, TrustedKeyFile};
use crate::keys::{KeyKind, TrustedKey};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token signing key {path}: {source}")]
    KeyIo {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("token signing key {path}: not an Ed25519 PKCS#8 key ({what}); make one with `openssl genpkey -algorithm ed25519`")]
    KeyFormat { path: PathBuf, what: String },
    #[error("token signing key: cannot generate one: {0}")]
    Generate(String),
    #[error("trusted token key {path}: {what}")]
    PublicKey { path: PathBuf, what: String },
}

/// Why a bearer token was refused (for the challenge's `error_description`).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Invalid {
    #[error("malformed token")]
    Malformed,
    #[error("token algorithm {0:?} is not accepted (EdDSA, RS256 and ES256 are)")]
    Algorithm(String),
    #[error("token algorithm {alg:?} does not match its key ({key})")]
    KeyMismatch { alg: String, key: &'static str },
    #[error("token key id {0:?} is not a trusted key")]
    UnknownKey(String),
    #[error("token signature is invalid")]
    Signature,
    #[error("token issuer is not {0:?}")]
    Issuer(String),
    #[error("token audience is not {0:?}")]
    Audience(String),
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYet,
}

/// One entry of a token's `access` claim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Access {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    #[serde(default)]
    pub sub: String,
    /// A string or a list of strings.
    pub aud: serde_json::Value,
    #[serde(deserialize_with = "numeric_date")]
    pub exp: u64,
    #[serde(default, deserialize_with = "numeric_date")]
    pub nbf: u64,
    #[serde(default, deserialize_with = "numeric_date")]
    pub iat: u64,
    #[serde(default)]
    pub jti: String,
    #[serde(default)]
    pub access: Vec<Access>,
}

/// A NumericDate (RFC 7519): seconds, an integer or (from some issuers) a
/// fraction, rounded down.
fn numeric_date<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let n = serde_json::Number::deserialize(d)?;
    if let Some(v) = n.as_u64() {
        return Ok(v);
    }
    match n.as_f64() {
        Some(f) if (0.0..1e18).contains(&f) => Ok(f as u64),
        _ => Err(serde::de::Error::custom("not a NumericDate")),
    }
}

impl Claims {
    /// Whether the token grants `action` on repository `repo`.
    pub fn grants(&self, repo: &str, action: Action) -> bool {
        self.access.iter().any(|a| {
            a.kind == "repository"
                && a.name == repo
                && a.actions.iter().any(|x| x == action.as_str() || x == "*")
        })
    }
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The longest token accepted (a header with an `x5c` chain of a few
/// certificates fits easily).
pub const MAX_TOKEN: usize = 64 * 1024;

/// Clock skew allowed on `nbf`, seconds.
pub const LEEWAY: u64 = 60;

/// Signs and verifies tokens.
pub struct Issuer {
    key: Ed25519KeyPair,
    /// The `kid` of our tokens: the libtrust id of our key.
    kid: String,
    /// Public keys of tokens we accept: ours and the trusted external ones.
    trusted: Vec<TrustedKey>,
    pub issuer: String,
    pub service: String,
    pub lifetime: u64,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("issuer", &self.issuer)
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

/// DER from a PEM file, or the bytes themselves when they are not PEM.
fn unpem(path: &Path, bytes: Vec<u8>) -> Result<Vec<u8>, TokenError> {
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return Ok(bytes);
    };
    if !text.trim_start().starts_with("-----BEGIN") {
        return Ok(bytes);
    }
    let b64: String = text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|e| TokenError::KeyFormat {
            path: path.to_path_buf(),
            what: format!("bad PEM: {e}"),
        })
}

/// The keys of a trusted key file (see [`crate::keys`]).
pub fn load_public_keys(file: &TrustedKeyFile) -> Result<Vec<TrustedKey>, TokenError> {
    use std::io::Read;
    let path = file.path();
    let err = |what: String| TokenError::PublicKey {
        path: path.to_path_buf(),
        what,
    };
    let io = |source| TokenError::KeyIo {
        path: path.to_path_buf(),
        source,
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .map_err(io)?
        .take(crate::keys::MAX_KEY_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > crate::keys::MAX_KEY_FILE {
        return Err(err("larger than 1 MiB".into()));
    }
    let kinds = crate::keys::parse_key_file(&bytes).map_err(err)?;
    if kinds.len() > 1 && file.kid().is_some() {
        return Err(err(format!(
            "holds {} keys: a `kid` names one key",
            kinds.len()
        )));
    }
    Ok(kinds
        .into_iter()
        .map(|k| TrustedKey::new(k, file.kid()))
        .collect())
}

/// Loads the signing key at `path`, generating it first when it is missing.
fn load_or_generate(path: &Path) -> Result<Ed25519KeyPair, TokenError> {
    let io = |source| TokenError::KeyIo {
        path: path.to_path_buf(),
        source,
    };
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let rng = ring::rand::SystemRandom::new();
            let doc = Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(|e| TokenError::Generate(e.to_string()))?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
            let tmp = path.with_extension("tmp");
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode_0600()
                .open(&tmp)
                .map_err(io)?;
            f.write_all(doc.as_ref()).map_err(io)?;
            f.sync_all().map_err(io)?;
            std::fs::rename(&tmp, path).map_err(io)?;
            doc.as_ref().to_vec()
        }
        Err(e) => return Err(io(e)),
    };
    let der = unpem(path, bytes)?;
    Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der).map_err(|e| TokenError::KeyFormat {
        path: path.to_path_buf(),
        what: e.to_string(),
    })
}

trait Mode0600 {
    fn mode_0600(&mut self) -> &mut Self;
}

impl Mode0600 for std::fs::OpenOptions {
    fn mode_0600(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.mode(0o600)
    }
}

impl Issuer {
    /// `key`: the signing key file (generated when missing); `trusted`:
    /// public key files of external issuers whose tokens are accepted too.
    pub fn new(
        key: &Path,
        trusted: &[TrustedKeyFile],
        issuer: String,
        service: String,
        lifetime: u64,
    ) -> Result<Issuer, TokenError> {
        let key = load_or_generate(key)?;
        let own = TrustedKey::new(KeyKind::Ed25519(key.public_key().as_ref().to_vec()), None);
        let kid = own.kind.libtrust_kid();
        let mut keys = vec![own];
        for f in trusted {
            keys.extend(load_public_keys(f)?);
        }
        Ok(Issuer {
            key,
            kid,
            trusted: keys,
            issuer,
            service,
            lifetime,
        })
    }

    /// A signed token for `sub` granting `access`, valid from now.
    pub fn sign(&self, sub: &str, access: Vec<Access>) -> (String, u64) {
        let iat = now();
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: sub.to_string(),
            aud: serde_json::Value::String(self.service.clone()),
            exp: iat + self.lifetime,
            nbf: iat.saturating_sub(1),
            iat,
            jti: hex::encode(iat.to_be_bytes()) + &hex::encode(rand_bytes()),
            access,
        };
        (self.sign_claims(&claims), iat)
    }

    /// `header.payload.signature` of `claims`.
    pub fn sign_claims(&self, claims: &Claims) -> String {
        let header = B64
            .encode(serde_json::json!({"alg": "EdDSA", "typ": "JWT", "kid": self.kid}).to_string());
        let payload = B64.encode(serde_json::to_vec(claims).expect("claims serialize"));
        let input = format!("{header}.{payload}");
        let sig = self.key.sign(input.as_bytes());
        format!("{input}.{}", B64.encode(sig.as_ref()))
    }

    /// The claims of a valid token.
    pub fn verify(&self, token: &str) -> Result<Claims, Invalid> {
        if token.len() > MAX_TOKEN {
            return Err(Invalid::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Invalid::Malformed);
        };
        // The base64url engine is strict: no padding, no stray characters,
        // no non-zero trailing bits.
        let header: serde_json::Map<String, serde_json::Value> = B64
            .decode(h)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(Invalid::Malformed)?;
        let alg = match header.get("alg") {
            Some(serde_json::Value::String(a)) => a.as_str(),
            _ => return Err(Invalid::Malformed),
        };
        if !matches!(alg, "EdDSA" | "RS256" | "ES256") {
            return Err(Invalid::Algorithm(alg.chars().take(32).collect()));
        }
        // Extensions that must be understood: none is.
        if header.contains_key("crit") {
            return Err(Invalid::Malformed);
        }
        let candidates: Vec<&TrustedKey> = match header.get("kid") {
            None => self.trusted.iter().collect(),
            Some(serde_json::Value::String(kid)) => {
                let c: Vec<&TrustedKey> =
                    self.trusted.iter().filter(|k| k.answers_to(kid)).collect();
                if c.is_empty() {
                    return Err(Invalid::UnknownKey(kid.chars().take(100).collect()));
                }
                c
            }
            Some(_) => return Err(Invalid::Malformed),
        };
        let matching: Vec<&TrustedKey> = candidates
            .iter()
            .copied()
            .filter(|k| k.kind.alg() == alg)
            .collect();
        if matching.is_empty() {
            // Only reachable with a `kid` (or a key set without such keys):
            // say which key the token named.
            return Err(match candidates.first() {
                Some(k) if header.contains_key("kid") => Invalid::KeyMismatch {
                    alg: alg.to_string(),
                    key: k.kind.alg(),
                },
                _ => Invalid::Signature,
            });
        }
        let sig = B64.decode(s).map_err(|_| Invalid::Malformed)?;
        let input = &token.as_bytes()[..h.len() + 1 + p.len()];
        if !matching.iter().any(|k| k.kind.verify(input, &sig)) {
            return Err(Invalid::Signature);
        }
        let claims: Claims = B64
            .decode(p)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(Invalid::Malformed)?;
        if claims.iss != self.issuer {
            return Err(Invalid::Issuer(self.issuer.clone()));
        }
        let aud_ok = match &claims.aud {
            serde_json::Value::String(a) => *a == self.service,
            serde_json::Value::Array(v) => v.iter().any(|a| *a == *self.service),
            _ => false,
        };
        if !aud_ok {
            return Err(Invalid::Audience(self.service.clone()));
        }
        let t = now();
        if claims.exp <= t {
            return Err(Invalid::Expired);
        }
        if claims.nbf > t + LEEWAY {
            return Err(Invalid::NotYet);
        }
        Ok(claims)
    }
}

fn rand_bytes() -> [u8; 8] {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 8];
    // A jti is an identifier, not a secret: zeros on failure are harmless.
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    b
}

/// The `scope` values of a token request (`repository:NAME:ACTIONS`, several
/// `scope` parameters or space-separated), as (name, actions).
pub fn parse_scopes(query: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for kv in query.split('&') {
        let Some(v) = kv.strip_prefix("scope=") else {
            continue;
        };
        for s in percent_decode(v).split(' ') {
            let Some((kind, rest)) = s.split_once(':') else {
                continue;
            };
            let Some((name, actions)) = rest.rsplit_once(':') else {
                continue;
            };
            if kind != "repository" || name.is_empty() {
                continue;
            }
            let actions = actions
                .split(',')
                .filter(|a| !a.is_empty())
                .map(str::to_string)
                .collect();
            out.push((name.to_string(), actions));
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
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

/// `2026-11-29T18:00:00Z` for a Unix time.
pub fn rfc3339(t: u64) -> String {
    let days = (t / 86400) as i64;
    let secs = t % 86400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
#[path = "token_tests.rs"]
mod jwt_tests;

#[cfg(test)]
mod tests {
    use super::*;

    fn issuer(dir: &Path) -> Issuer {
        Issuer::new(&dir.join("k.pk8"), &[], "iss".into(), "svc".into(), 300).unwrap()
    }

    #[test]
    fn tokens_verify_and_tampering_or_expiry_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let i = issuer(dir.path());
        let access = vec![Access {
            kind: "repository".into(),
            name: "a/b".into(),
            actions: vec!["pull".into()],
        }];
        let (t, _) = i.sign("alice", access.clone());
        let c = i.verify(&t).unwrap();
        assert_eq!((c.sub.as_str(), c.access), ("alice", access));
        // The key is kept: a second issuer on the same file accepts it.
        assert!(issuer(dir.path()).verify(&t).is_ok());
        let (h, rest) = t.split_once('.').unwrap();
        let (_, sig) = rest.split_once('.').unwrap();
        let mut claims = i.verify(&t).unwrap();
        claims.access[0].actions.push("push".into());
        let forged = format!(
            "{h}.{}.{sig}",
            B64.encode(serde_json::to_vec(&claims).unwrap())
        );
        assert_eq!(i.verify(&forged).unwrap_err(), Invalid::Signature);
        claims.exp = now() - 1;
        assert_eq!(
            i.verify(&i.sign_claims(&claims)).unwrap_err(),
            Invalid::Expired
        );
        claims.exp = now() + 10;
        claims.aud = "other".into();
        assert!(matches!(
            i.verify(&i.sign_claims(&claims)),
            Err(Invalid::Audience(_))
        ));
        // Another registry's key: its kid is unknown here; without the kid,
        // the signature is no good.
        let other = tempfile::tempdir().unwrap();
        assert!(matches!(
            issuer(other.path()).verify(&t),
            Err(Invalid::UnknownKey(_))
        ));
        let no_kid = format!(
            "{}.{}",
            B64.encode(br#"{"alg":"EdDSA","typ":"JWT"}"#),
            t.split_once('.').unwrap().1
        );
        assert_eq!(
            issuer(other.path()).verify(&no_kid).unwrap_err(),
            Invalid::Signature
        );
        assert_eq!(i.verify("x.y").unwrap_err(), Invalid::Malformed);
    }

    #[test]
    fn scopes_and_dates() {
        assert_eq!(
            parse_scopes(
                "service=x&scope=repository%3Aa%2Fb%3Apull%2Cpush&scope=repository:c:pull"
            ),
            vec![
                (
                    "a/b".to_string(),
                    vec!["pull".to_string(), "push".to_string()]
                ),
                ("c".to_string(), vec!["pull".to_string()])
            ]
        );
        assert_eq!(
            parse_scopes("scope=repository:a:pull+repository:b:*&scope=registry:catalog:*"),
            vec![
                ("a".to_string(), vec!["pull".to_string()]),
                ("b".to_string(), vec!["*".to_string()])
            ]
        );
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_798_570_800), "2026-12-29T19:00:00Z");
    }
}
