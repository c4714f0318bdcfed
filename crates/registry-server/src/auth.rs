//! Who a request comes from (HTTP Basic against an `htpasswd -B` file) and
//! what it may do (the config's per-repository rules).
//!
//! A request without the permission it needs gets `401 UNAUTHORIZED` with a
//! Basic challenge when it came without credentials (so clients log in), and
//! `403 DENIED` when the user it came from lacks the action.

use crate::config::{Action, AuthMode, Config, Rule};
use crate::error::ApiError;
use axum::http::{header, HeaderMap, StatusCode};
use base64::Engine;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
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

/// The registry's access policy.
#[derive(Debug)]
pub struct Auth {
    mode: AuthMode,
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
            htpasswd: Htpasswd::default(),
            rules: Vec::new(),
            realm: String::new(),
            verified: Mutex::new(HashMap::new()),
        }
    }

    pub fn from_config(c: &Config) -> Result<Auth, AuthError> {
        let htpasswd = match (&c.auth, &c.htpasswd) {
            (AuthMode::Htpasswd, Some(p)) => Htpasswd::load(p)?,
            _ => Htpasswd::default(),
        };
        Ok(Auth {
            mode: c.auth,
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

    /// The user of a request: `Ok(None)` without credentials; 401 when the
    /// credentials are wrong.
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

    /// Whether `user` may do `action` on `repo`.
    pub fn allows(&self, user: Option<&str>, repo: &str, action: Action) -> bool {
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

    /// Refuses `action` on `repo` unless `user` has it: 401 when not logged
    /// in, 403 `DENIED` otherwise.
    pub fn require(&self, user: Option<&str>, repo: &str, action: Action) -> Result<(), ApiError> {
        if self.allows(user, repo, action) {
            return Ok(());
        }
        match user {
            None => Err(self.unauthorized(&format!(
                "authentication required to {} {repo}",
                action.as_str()
            ))),
            Some(u) => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "DENIED",
                format!(
                    "requested access to the resource is denied: user {u:?} may not {} {repo}",
                    action.as_str()
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ANONYMOUS;

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
        assert!(a.allows(Some("alice"), "team/x", Action::Push));
        assert!(!a.allows(Some("alice"), "team/x", Action::Delete));
        assert!(!a.allows(Some("alice"), "other/x", Action::Pull));
        assert!(a.allows(None, "public/x", Action::Pull));
        assert!(!a.allows(None, "team/x", Action::Pull));
        assert!(a.allows(Some("bob"), "public/x", Action::Pull));
        assert_eq!(
            a.require(None, "team/x", Action::Pull).unwrap_err().status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            a.require(Some("alice"), "team/x", Action::Delete)
                .unwrap_err()
                .code,
            "DENIED"
        );
        assert!(Auth::none().allows(None, "x", Action::Delete));
    }
}
