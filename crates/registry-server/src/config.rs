//! `berth registry serve --config FILE`: a TOML file choosing the auth mode
//! and the per-repository permissions.
//!
//! ```toml
//! auth = "htpasswd"            # or "none" (the default)
//! htpasswd = "/etc/berth/htpasswd"
//! realm = "berth registry"     # optional
//!
//! [[access]]
//! repository = "team/*"        # `*` matches any run of characters, `/` too
//! user = "alice"               # a user of the htpasswd file, "*" for any
//!                              # logged-in user, "anonymous" for no login
//! actions = ["pull", "push", "delete"]
//! ```
//!
//! `upload_max_age = 86400` (seconds, the default) is how long an upload may
//! sit idle before the server (at start and every tenth of that, at most
//! hourly) and `berth registry gc` purge it.
//!
//! `tls_cert = "cert.pem"` and `tls_key = "key.pem"` (PEM; both or
//! neither; `--tls-cert/--tls-key` win) serve https instead of http.
//! `access_log = false` turns off the JSON line per request on stderr.
//!
//! `auth = "token"` adds a `[token]` table (every key optional):
//!
//! ```toml
//! [token]
//! realm = "http://registry.example:5000/token"  # default: http(s)://ADDR/token
//! service = "berth-registry"   # the tokens' audience
//! issuer = "berth-registry"
//! expires_in = 300             # seconds
//! key = "token.pk8"            # Ed25519 PKCS#8; default ROOT/token-key.pk8,
//!                              # generated at first start
//! # Public keys of external issuers whose tokens are accepted too: PEM
//! # files (`PUBLIC KEY` of RSA, EC P-256 or Ed25519, `RSA PUBLIC KEY`,
//! # `CERTIFICATE`; several blocks per file) or a DER SPKI. A table names
//! # the `kid` the issuer puts in its token headers.
//! trusted_keys = ["issuer.pem", { path = "keycloak.pem", kid = "x1" }]
//! rootcertbundle = "bundle.pem"  # distribution's name: one more such file
//! ```
//!
//! A `[proxy]` table makes the registry a pull-through cache of another
//! (`--proxy-remote URL` sets or overrides `remote_url`):
//!
//! ```toml
//! [proxy]
//! remote_url = "https://registry-1.docker.io"  # scheme, host, port only
//! username = "me"              # optional, both or neither: Basic auth or
//! password = "secret"          # the upstream's token realm
//! ```
//!
//! A `[storage.s3]` table keeps the registry's data in an S3-compatible
//! bucket instead of under `--root` (which then holds only the token key),
//! so that several replicas can share it:
//!
//! ```toml
//! [storage.s3]
//! endpoint = "http://127.0.0.1:3900"   # http(s)://host[:port]
//! bucket = "registry"
//! region = "garage"            # default "us-east-1"
//! access_key_id = "GK..."      # both or neither; default
//! secret_access_key = "..."    # $AWS_ACCESS_KEY_ID, $AWS_SECRET_ACCESS_KEY
//! prefix = "berth"             # optional: keys go under prefix/
//! ```

use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("registry config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("registry config {path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("registry config {path}: auth = \"htpasswd\" needs `htpasswd = \"FILE\"`")]
    NoHtpasswd { path: PathBuf },
    #[error("registry config {path}: `tls_cert` and `tls_key` go together: give both or neither")]
    TlsHalf { path: PathBuf },
    #[error("registry config {path}: [proxy] `username` and `password` go together: give both or neither")]
    ProxyCredsHalf { path: PathBuf },
    #[error("registry config {path}: {problem}")]
    Storage { path: PathBuf, problem: String },
}

/// The `[storage]` table: where the registry keeps its data.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// An S3-compatible bucket; without it, files under `--root`.
    pub s3: Option<crate::storage::S3Config>,
}

/// The `[proxy]` table: pull-through cache mode.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    /// The upstream registry, `http(s)://host[:port]`.
    pub remote_url: String,
    pub username: Option<String>,
    pub password: Option<String>,
}

impl ProxyConfig {
    /// `(username, password)` when both are set.
    pub fn credentials(&self) -> Option<(String, String)> {
        Some((self.username.clone()?, self.password.clone()?))
    }
}

impl std::fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyConfig")
            .field("remote_url", &self.remote_url)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// How clients prove who they are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// Everyone may do everything (the default, for loopback use).
    #[default]
    None,
    /// HTTP Basic against an `htpasswd -B` file.
    Htpasswd,
    /// Bearer tokens, issued at `/token` (credentials from the htpasswd
    /// file, when there is one) or by a trusted external issuer.
    Token,
}

/// The `[token]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    pub realm: Option<String>,
    pub service: Option<String>,
    pub issuer: Option<String>,
    pub expires_in: Option<u64>,
    pub key: Option<PathBuf>,
    #[serde(default)]
    pub trusted_keys: Vec<TrustedKeyFile>,
    /// distribution's `rootcertbundle`: one more trusted key file.
    pub rootcertbundle: Option<PathBuf>,
}

impl TokenConfig {
    /// Every trusted key file: `trusted_keys`, then `rootcertbundle`.
    pub fn trusted(&self) -> Vec<TrustedKeyFile> {
        let mut v = self.trusted_keys.clone();
        v.extend(self.rootcertbundle.clone().map(TrustedKeyFile::Path));
        v
    }
}

/// One entry of `trusted_keys`: a path, or `{ path, kid }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum TrustedKeyFile {
    Path(PathBuf),
    Table(KeyFileTable),
}

/// `{ path = "…", kid = "…" }` in `trusted_keys`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFileTable {
    pub path: PathBuf,
    /// The `kid` tokens signed with this key carry (besides the libtrust
    /// id and the JWK thumbprint, always accepted).
    pub kid: Option<String>,
}

impl TrustedKeyFile {
    pub fn path(&self) -> &Path {
        match self {
            TrustedKeyFile::Path(p) | TrustedKeyFile::Table(KeyFileTable { path: p, .. }) => p,
        }
    }

    pub fn kid(&self) -> Option<&str> {
        match self {
            TrustedKeyFile::Path(_) => None,
            TrustedKeyFile::Table(t) => t.kid.as_deref(),
        }
    }

    fn path_mut(&mut self) -> &mut PathBuf {
        match self {
            TrustedKeyFile::Path(p) | TrustedKeyFile::Table(KeyFileTable { path: p, .. }) => p,
        }
    }
}

/// What a request may do to a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Pull,
    Push,
    Delete,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Delete => "delete",
        }
    }
}

/// One permission rule: `user` may do `actions` on repositories matching
/// `repository`. Rules add up; nothing is allowed that no rule grants.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub repository: String,
    pub user: String,
    pub actions: Vec<Action>,
}

/// The user name rules use for requests without credentials.
pub const ANONYMOUS: &str = "anonymous";

impl Rule {
    /// Whether this rule speaks about `user` (`None`: not logged in).
    pub fn applies_to(&self, user: Option<&str>) -> bool {
        match user {
            None => self.user == ANONYMOUS,
            Some(u) => self.user == "*" || self.user == u,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub auth: AuthMode,
    /// The `htpasswd -B` file (relative paths: to the config file's directory).
    pub htpasswd: Option<PathBuf>,
    /// The realm of the Basic challenge.
    pub realm: Option<String>,
    #[serde(default)]
    pub token: TokenConfig,
    #[serde(default)]
    pub access: Vec<Rule>,
    /// Seconds an upload may stay idle before it is purged.
    pub upload_max_age: Option<u64>,
    /// PEM certificate chain: serve https.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// One JSON line per request on stderr (default true).
    pub access_log: Option<bool>,
    /// Pull-through cache of another registry.
    pub proxy: Option<ProxyConfig>,
    /// Where blobs, manifests and uploads are kept.
    #[serde(default)]
    pub storage: StorageConfig,
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut c: Config = toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source,
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let abs = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        };
        if let Some(p) = c.htpasswd.as_mut() {
            abs(p);
        }
        if let Some(p) = c.token.key.as_mut() {
            abs(p);
        }
        c.token
            .trusted_keys
            .iter_mut()
            .map(TrustedKeyFile::path_mut)
            .chain(c.token.rootcertbundle.iter_mut())
            .for_each(abs);
        c.tls_cert
            .iter_mut()
            .chain(c.tls_key.iter_mut())
            .for_each(abs);
        if c.auth == AuthMode::Htpasswd && c.htpasswd.is_none() {
            return Err(ConfigError::NoHtpasswd {
                path: path.to_path_buf(),
            });
        }
        if c.tls_cert.is_some() != c.tls_key.is_some() {
            return Err(ConfigError::TlsHalf {
                path: path.to_path_buf(),
            });
        }
        if let Some(p) = &c.proxy {
            if p.username.is_some() != p.password.is_some() {
                return Err(ConfigError::ProxyCredsHalf {
                    path: path.to_path_buf(),
                });
            }
        }
        if let Some(problem) = c.storage.s3.as_ref().and_then(|s| s.problem()) {
            return Err(ConfigError::Storage {
                path: path.to_path_buf(),
                problem,
            });
        }
        Ok(c)
    }

    /// `https` with a TLS certificate, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls_cert.is_some() {
            "https"
        } else {
            "http"
        }
    }
}

/// `*` matches any run of characters (including `/`), `?` one character;
/// everything else matches itself.
pub fn glob_match(pattern: &str, s: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = s.chars().collect();
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, si));
            pi += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_prefixes_and_whole_names() {
        assert!(glob_match("team/*", "team/a"));
        assert!(glob_match("team/*", "team/a/b"));
        assert!(!glob_match("team/*", "teams/a"));
        assert!(!glob_match("team/*", "other/team/a"));
        assert!(glob_match("*", "x"));
        assert!(glob_match("a?c", "abc"));
        assert!(glob_match("lib", "lib"));
        assert!(!glob_match("lib", "library"));
        assert!(glob_match("*/app", "x/y/app"));
    }

    #[test]
    fn config_parses_and_rejects_unknown_keys_and_modes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(
            &p,
            "auth = \"htpasswd\"\nhtpasswd = \"pw\"\n[[access]]\nrepository = \"team/*\"\nuser = \"alice\"\nactions = [\"pull\", \"push\"]\n",
        )
        .unwrap();
        let c = Config::load(&p).unwrap();
        assert_eq!(c.auth, AuthMode::Htpasswd);
        assert_eq!(c.htpasswd, Some(dir.path().join("pw")));
        assert_eq!(c.access[0].actions, vec![Action::Pull, Action::Push]);
        assert!(c.access[0].applies_to(Some("alice")));
        assert!(!c.access[0].applies_to(None));

        std::fs::write(&p, "auth = \"kerberos\"\n").unwrap();
        let e = Config::load(&p).unwrap_err().to_string();
        assert!(e.contains("c.toml") && e.contains("kerberos"), "{e}");
        std::fs::write(&p, "auth = \"htpasswd\"\n").unwrap();
        let e = Config::load(&p).unwrap_err().to_string();
        assert!(e.contains("needs `htpasswd"), "{e}");
        std::fs::write(&p, "auth = \"none\"\n[[access]]\nrepo = \"x\"\n").unwrap();
        assert!(Config::load(&p).is_err());
        std::fs::write(&p, "tls_cert = \"c.pem\"\n").unwrap();
        let e = Config::load(&p).unwrap_err().to_string();
        assert!(e.contains("go together"), "{e}");
        std::fs::write(
            &p,
            "tls_cert = \"c.pem\"\ntls_key = \"k.pem\"\naccess_log = false\n",
        )
        .unwrap();
        let c = Config::load(&p).unwrap();
        assert_eq!(c.tls_key, Some(dir.path().join("k.pem")));
        assert_eq!((c.scheme(), c.access_log), ("https", Some(false)));
        std::fs::write(
            &p,
            "[proxy]\nremote_url = \"http://127.0.0.1:5000\"\nusername = \"u\"\npassword = \"hunter2\"\n",
        )
        .unwrap();
        let c = Config::load(&p).unwrap();
        let px = c.proxy.unwrap();
        assert_eq!(px.remote_url, "http://127.0.0.1:5000");
        assert_eq!(px.credentials(), Some(("u".into(), "hunter2".into())));
        assert!(!format!("{px:?}").contains("hunter2"));
        std::fs::write(&p, "[proxy]\nremote_url = \"http://x\"\nusername = \"u\"\n").unwrap();
        let e = Config::load(&p).unwrap_err().to_string();
        assert!(e.contains("go together"), "{e}");
        std::fs::write(&p, "[proxy]\nremote = \"http://x\"\n").unwrap();
        assert!(Config::load(&p).is_err());
        std::fs::write(
            &p,
            "[storage.s3]\nendpoint = \"http://127.0.0.1:3900\"\nbucket = \"reg\"\nregion = \"garage\"\naccess_key_id = \"GK1\"\nsecret_access_key = \"s3cr3t\"\nprefix = \"a/b\"\n",
        )
        .unwrap();
        let c = Config::load(&p).unwrap();
        let s3 = c.storage.s3.unwrap();
        assert_eq!((s3.bucket.as_str(), s3.prefix.as_str()), ("reg", "a/b"));
        assert!(!format!("{s3:?}").contains("s3cr3t"));
        std::fs::write(
            &p,
            "[storage.s3]\nendpoint = \"http://x\"\nbucket = \"reg\"\nprefix = \"../up\"\n",
        )
        .unwrap();
        let e = Config::load(&p).unwrap_err().to_string();
        assert!(e.contains("prefix"), "{e}");
        std::fs::write(&p, "[storage.s3]\nendpoint = \"http://x\"\n").unwrap();
        let e = Config::load(&p).unwrap_err().to_string();
        assert!(e.contains("bucket"), "{e}");
        std::fs::write(&p, "[storage.gcs]\nbucket = \"x\"\n").unwrap();
        assert!(Config::load(&p).is_err());
    }

    #[test]
    fn trusted_keys_are_paths_or_tables_and_rootcertbundle_adds_one() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(
            &p,
            "auth = \"token\"\n[token]\ntrusted_keys = [\"a.pem\", { path = \"/k/b.pem\", kid = \"k1\" }]\nrootcertbundle = \"bundle.pem\"\n",
        )
        .unwrap();
        let c = Config::load(&p).unwrap();
        let t = c.token.trusted();
        assert_eq!(t.len(), 3);
        assert_eq!(
            (t[0].path(), t[0].kid()),
            (dir.path().join("a.pem").as_path(), None)
        );
        assert_eq!(
            (t[1].path(), t[1].kid()),
            (Path::new("/k/b.pem"), Some("k1"))
        );
        assert_eq!(t[2].path(), dir.path().join("bundle.pem"));
        std::fs::write(
            &p,
            "[token]\ntrusted_keys = [{ path = \"a\", id = \"k\" }]\n",
        )
        .unwrap();
        assert!(Config::load(&p).is_err());
        std::fs::write(&p, "[token]\ntrusted_keys = \"a.pem\"\n").unwrap();
        assert!(Config::load(&p).is_err());
    }
}
