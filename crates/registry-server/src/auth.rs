//! Who a request comes from (HTTP Basic against an `htpasswd -B` file) and
//! what it may do (the config's per-repository rules).
//!
//! A request without the permission it needs gets `401 UNAUTHORIZED` with a
//! Basic challenge when it came without credentials (so clients log in), and
//! `403 DENIED` when the user it came from lacks the action. In token mode
//! ([`crate::token`]) it gets `401` with a Bearer challenge naming the scope
//! it needs (`error="insufficient_scope"` when its token lacked it,
//! `error="invalid_token"` when the token was bad or expired).

use crate::config::{Action, AuthMode, Config, Rule, ANONYMOUS};
use crate::error::ApiError;
use crate::token::{Access, Claims, Issuer, TokenError};
use axum::http::{header, HeaderMap, StatusCode};
use base64::Engine;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("htpasswd file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("htpasswd file {path}, line {line}: {what}; write it with `htpasswd -B`")]
    Line {
        path: PathBuf,
        line: usize,
        what: &'static str,
    },
}

/// User name → bcrypt hash.
#[derive(Debug, Default)]
pub struct Htpasswd {
    users: HashMap<String, String>,
}

impl Htpasswd {
    pub fn load(path: &Path) -> Result<Htpasswd, AuthError> {
        let text = std::fs::read_to_string(path).map_err(|source| AuthError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut users = HashMap::new();
        for (i, l) in text.lines().enumerate() {
            let l = l.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let err = |what| AuthError::Line {
                path: path.to_path_buf(),
                line: i + 1,
                what,
            };
            let (user, hash) = l.split_once(':').ok_or_else(|| err("no `user:hash`"))?;
            if !hash.starts_with("$2") {
                return Err(err("not a bcrypt hash"));
            }
            users.insert(user.to_string(), hash.to_string());
        }
        Ok(Htpasswd { users })
    }

    /// Whether `password` is `user`'s.
    pub fn verify(&self, user: &str, password: &str) -> bool {
        self.users
            .get(user)
            .is_some_and(|h| bcrypt::verify(password, h).unwrap_or(false))
    }
}

/// Who a request comes from.
#[derive(Debug, Default)]
pub struct Identity {
    /// `None`: anonymous.
    pub user: Option<String>,
    /// Token mode: the claims of its valid token.
    pub claims: Option<Claims>,
    /// Token mode: why its token was refused.
    pub invalid: Option<String>,
}

/// Token mode: the issuer and the realm the challenge names.
#[derive(Debug)]
struct TokenMode {
    issuer: Issuer,
    realm: String,
}

/// The registry's access policy.
#[derive(Debug)]
pub struct Auth {
    mode: AuthMode,
    token: Option<TokenMode>,
    htpasswd: Htpasswd,
    rules: Vec<Rule>,
    realm: String,
    /// `Authorization` header values already verified (bcrypt is slow by
    /// design; a push sends dozens of requests) → user name.
    verified: Mutex<HashMap<String, String>>,
}

impl Auth {
    /// No auth: everyone may do everything.
    pub fn none() -> Auth {
        Auth {
            mode: AuthMode::None,
            token: None,
            htpasswd: Htpasswd::default(),
            rules: Vec::new(),
            realm: String::new(),
            verified: Mutex::new(HashMap::new()),
        }
    }

    /// `root`: where a generated token key goes; `addr`: the listen
    /// address, for the default token realm (https when `c` has a TLS
    /// certificate).
    pub fn from_config(c: &Config, root: &Path, addr: &str) -> Result<Auth, AuthError> {
        let htpasswd = match (&c.auth, &c.htpasswd) {
            (AuthMode::None, _) | (_, None) => Htpasswd::default(),
            (_, Some(p)) => Htpasswd::load(p)?,
        };
        let token = match c.auth {
            AuthMode::Token => {
                let t = &c.token;
                let name = || "berth-registry".to_string();
                let issuer = Issuer::new(
                    &t.key.clone().unwrap_or_else(|| root.join("token-key.pk8")),
                    &t.trusted(),
                    t.issuer.clone().unwrap_or_else(name),
                    t.service.clone().unwrap_or_else(name),
                    t.expires_in.unwrap_or(300),
                )?;
                let realm = t
                    .realm
                    .clone()
                    .unwrap_or_else(|| format!("{}://{addr}/token", c.scheme()));
                Some(TokenMode { issuer, realm })
            }
            _ => None,
        };
        Ok(Auth {
            mode: c.auth,
            token,
            htpasswd,
            rules: c.access.clone(),
            realm: c
                .realm
                .clone()
                .unwrap_or_else(|| "berth registry".to_string()),
            verified: Mutex::new(HashMap::new()),
        })
    }

    pub fn enabled(&self) -> bool {
        self.mode != AuthMode::None
    }

    /// Who a request comes from: Basic credentials (401 when wrong), or in
    /// token mode a bearer token (a bad one is kept as `invalid`).
    pub fn identify(&self, headers: &HeaderMap) -> Result<Identity, ApiError> {
        let Some(t) = &self.token else {
            return Ok(Identity {
                user: self.user(headers)?,
                ..Identity::default()
            });
        };
        let Some(v) = headers.get(header::AUTHORIZATION) else {
            return Ok(Identity::default());
        };
        let v = String::from_utf8_lossy(v.as_bytes());
        let Some(jwt) = v.strip_prefix("Bearer ") else {
            return Ok(Identity {
                invalid: Some("a bearer token is required".into()),
                ..Identity::default()
            });
        };
        Ok(match t.issuer.verify(jwt.trim()) {
            Ok(c) => Identity {
                user: (c.sub != ANONYMOUS && !c.sub.is_empty()).then(|| c.sub.clone()),
                claims: Some(c),
                invalid: None,
            },
            Err(e) => Identity {
                invalid: Some(e.to_string()),
                ..Identity::default()
            },
        })
    }

    /// The user of Basic credentials: `Ok(None)` without any; 401 when they
    /// are wrong.
    pub fn user(&self, headers: &HeaderMap) -> Result<Option<String>, ApiError> {
        let Some(v) = headers.get(header::AUTHORIZATION) else {
            return Ok(None);
        };
        let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
        if let Some(u) = self
            .verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&v)
        {
            return Ok(Some(u.clone()));
        }
        let bad = || self.unauthorized("invalid username or password");
        let b64 = v
            .strip_prefix("Basic ")
            .or_else(|| v.strip_prefix("basic "))
            .ok_or_else(bad)?;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|_| bad())?;
        let raw = String::from_utf8(raw).map_err(|_| bad())?;
        let (user, pass) = raw.split_once(':').ok_or_else(bad)?;
        if !self.htpasswd.verify(user, pass) {
            return Err(bad());
        }
        self.verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(v, user.to_string());
        Ok(Some(user.to_string()))
    }

    /// Whether the request of `id` may do `action` on `repo`: by its token
    /// in token mode, by the rules otherwise.
    pub fn allows(&self, id: &Identity, repo: &str, action: Action) -> bool {
        if self.token.is_some() {
            return id.claims.as_ref().is_some_and(|c| c.grants(repo, action));
        }
        self.rules_allow(id.user.as_deref(), repo, action)
    }

    /// Whether the rules let `user` do `action` on `repo`.
    pub fn rules_allow(&self, user: Option<&str>, repo: &str, action: Action) -> bool {
        if !self.enabled() {
            return true;
        }
        self.rules.iter().any(|r| {
            r.applies_to(user)
                && r.actions.contains(&action)
                && crate::config::glob_match(&r.repository, repo)
        })
    }

    /// 401 with the Basic challenge.
    pub fn unauthorized(&self, msg: &str) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", msg).with_header(
            header::WWW_AUTHENTICATE,
            format!("Basic realm=\"{}\"", self.realm.replace('"', "'")),
        )
    }

    /// 401 with a Bearer challenge for `scope` (token mode).
    fn bearer_challenge(&self, id: &Identity, scope: Option<String>, msg: &str) -> ApiError {
        let Some(t) = &self.token else {
            return self.unauthorized(msg);
        };
        let mut c = format!(
            "Bearer realm=\"{}\",service=\"{}\"",
            t.realm, t.issuer.service
        );
        if let Some(s) = scope {
            c.push_str(&format!(",scope=\"{s}\""));
        }
        let (err, msg) = match (&id.invalid, &id.claims) {
            (Some(why), _) => ("invalid_token", why.clone()),
            (None, Some(_)) => ("insufficient_scope", msg.to_string()),
            (None, None) => ("", msg.to_string()),
        };
        if !err.is_empty() {
            c.push_str(&format!(",error=\"{err}\""));
        }
        ApiError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", msg)
            .with_header(header::WWW_AUTHENTICATE, c)
    }

    /// `/v2/`: any authenticated user (token mode: any valid token).
    pub fn require_login(&self, id: &Identity) -> Result<(), ApiError> {
        if !self.enabled() || id.user.is_some() || id.claims.is_some() {
            return Ok(());
        }
        Err(self.bearer_challenge(id, None, "authentication required"))
    }

    /// Refuses `action` on `repo` unless `id` has it: 401 when not logged
    /// in (or, in token mode, without a token granting it), 403 `DENIED`
    /// otherwise.
    pub fn require(&self, id: &Identity, repo: &str, action: Action) -> Result<(), ApiError> {
        if self.allows(id, repo, action) {
            return Ok(());
        }
        if self.token.is_some() {
            // A user of our htpasswd file whom the rules refuse: no token
            // could help, so say so (403) rather than ask for another (401).
            if let Some(u) = id.user.as_deref() {
                if self.htpasswd.users.contains_key(u) && !self.rules_allow(Some(u), repo, action) {
                    return Err(denied(u, repo, action));
                }
            }
            let actions = match action {
                Action::Push => "pull,push".to_string(),
                a => a.as_str().to_string(),
            };
            return Err(self.bearer_challenge(
                id,
                Some(format!("repository:{repo}:{actions}")),
                &format!(
                    "authentication required to {} {repo}: the token does not grant it",
                    action.as_str()
                ),
            ));
        }
        match id.user.as_deref() {
            None => Err(self.unauthorized(&format!(
                "authentication required to {} {repo}",
                action.as_str()
            ))),
            Some(u) => Err(denied(u, repo, action)),
        }
    }

    /// `GET /token?service=…&scope=…` (token mode): a token granting the
    /// part of the requested actions the rules allow the caller.
    pub fn issue_token(&self, headers: &HeaderMap, query: &str) -> Result<String, ApiError> {
        let Some(t) = &self.token else {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "UNSUPPORTED",
                "this registry does not issue tokens (auth is not \"token\")",
            ));
        };
        let user = self.user(headers)?;
        let access: Vec<Access> = crate::token::parse_scopes(query)
            .into_iter()
            .map(|(name, asked)| {
                let asked: Vec<Action> = if asked.iter().any(|a| a == "*") {
                    vec![Action::Pull, Action::Push, Action::Delete]
                } else {
                    [Action::Pull, Action::Push, Action::Delete]
                        .into_iter()
                        .filter(|a| asked.iter().any(|x| x == a.as_str()))
                        .collect()
                };
                let actions = asked
                    .into_iter()
                    .filter(|a| self.rules_allow(user.as_deref(), &name, *a))
                    .map(|a| a.as_str().to_string())
                    .collect();
                Access {
                    kind: "repository".into(),
                    name,
                    actions,
                }
            })
            .collect();
        let (jwt, iat) = t.issuer.sign(user.as_deref().unwrap_or(ANONYMOUS), access);
        Ok(serde_json::json!({
            "token": jwt,
            "access_token": jwt,
            "expires_in": t.issuer.lifetime,
            "issued_at": crate::token::rfc3339(iat),
        })
        .to_string())
    }
}

/// 403 `DENIED`: `user` may not do `action` on `repo`.
fn denied(user: &str, repo: &str, action: Action) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "DENIED",
        format!(
            "requested access to the resource is denied: user {user:?} may not {} {repo}",
            action.as_str()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(rules: Vec<Rule>) -> Auth {
        let hash = bcrypt::hash("secret", 4).unwrap();
        let mut a = Auth::none();
        a.mode = AuthMode::Htpasswd;
        a.htpasswd.users.insert("alice".into(), hash);
        a.rules = rules;
        a
    }

    fn rule(repo: &str, user: &str, actions: &[Action]) -> Rule {
        Rule {
            repository: repo.into(),
            user: user.into(),
            actions: actions.to_vec(),
        }
    }

    #[test]
    fn basic_credentials_are_checked_against_the_bcrypt_hash() {
        let a = auth(vec![]);
        let mut h = HeaderMap::new();
        assert_eq!(a.user(&h).unwrap(), None);
        h.insert(
            header::AUTHORIZATION,
            "Basic YWxpY2U6c2VjcmV0".parse().unwrap(),
        );
        assert_eq!(a.user(&h).unwrap().as_deref(), Some("alice"));
        h.insert(
            header::AUTHORIZATION,
            "Basic YWxpY2U6d3Jvbmc=".parse().unwrap(),
        );
        let e = a.user(&h).unwrap_err();
        assert_eq!(e.status, StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn rules_grant_only_what_they_name() {
        let a = auth(vec![
            rule("team/*", "alice", &[Action::Pull, Action::Push]),
            rule("public/*", ANONYMOUS, &[Action::Pull]),
            rule("public/*", "*", &[Action::Pull]),
        ]);
        let id = |u: Option<&str>| Identity {
            user: u.map(str::to_string),
            ..Identity::default()
        };
        assert!(a.allows(&id(Some("alice")), "team/x", Action::Push));
        assert!(!a.allows(&id(Some("alice")), "team/x", Action::Delete));
        assert!(!a.allows(&id(Some("alice")), "other/x", Action::Pull));
        assert!(a.allows(&id(None), "public/x", Action::Pull));
        assert!(!a.allows(&id(None), "team/x", Action::Pull));
        assert!(a.allows(&id(Some("bob")), "public/x", Action::Pull));
        assert_eq!(
            a.require(&id(None), "team/x", Action::Pull)
                .unwrap_err()
                .status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            a.require(&id(Some("alice")), "team/x", Action::Delete)
                .unwrap_err()
                .code,
            "DENIED"
        );
        assert!(Auth::none().allows(&id(None), "x", Action::Delete));
    }
}
