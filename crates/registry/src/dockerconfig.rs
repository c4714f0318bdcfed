//! Docker's `config.json`: credentials from `auths` (base64 `user:pass` in
//! `auth`, or an `identitytoken`), `credHelpers` and `credsStore` (the
//! `docker-credential-<name>` helper protocol); and storing a credential
//! with an atomic write (mode 0600).
//!
//! Keys are normalised to registry hosts: `https://index.docker.io/v1/` is
//! `docker.io`, `https://reg.example:5000/v2/` is `reg.example:5000`.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::alphabet;
use base64::engine::{DecodePaddingMode, Engine, GeneralPurpose, GeneralPurposeConfig};
use serde::Deserialize;

use crate::hosts::is_docker_hub;
use crate::Credential;

/// The key Docker uses for Docker Hub in `auths`.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";
/// The user name a credential helper returns for an identity token.
const TOKEN_USERNAME: &str = "<token>";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read docker config {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("invalid docker config {}: {source}", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("invalid auth for {host} in docker config {}: {reason}", path.display())]
    InvalidAuth {
        path: PathBuf,
        host: String,
        reason: String,
    },
    #[error("credential helper docker-credential-{helper} failed for {host}: {reason}")]
    Helper {
        helper: String,
        host: String,
        reason: String,
    },
    #[error("cannot write docker config {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

type Result<T> = std::result::Result<T, ConfigError>;

/// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
pub fn default_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".docker").join("config.json"))
}

/// The registry host a config key names: scheme and path dropped, Docker
/// Hub's names folded into `docker.io`.
pub fn normalize_host(key: &str) -> String {
    let k = key.trim();
    let k = k
        .strip_prefix("https://")
        .or_else(|| k.strip_prefix("http://"))
        .unwrap_or(k);
    let host = k.split('/').next().unwrap_or("").to_ascii_lowercase();
    if is_docker_hub(&host) {
        "docker.io".to_string()
    } else {
        host
    }
}

#[derive(Deserialize, Default)]
struct ConfigFile {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: HashMap<String, String>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
}

#[derive(Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

/// Reads the credentials of a Docker config file (a missing file holds
/// none). Credential helpers are looked up on `PATH`; one that is not
/// installed is skipped.
pub fn load(path: &Path) -> Result<HashMap<String, Credential>> {
    load_with_helper_path(path, None)
}

/// [`load`], looking credential helpers up in `helper_path` (a `PATH`-like
/// list) instead of the process's `PATH`.
pub fn load_with_helper_path(
    path: &Path,
    helper_path: Option<&OsStr>,
) -> Result<HashMap<String, Credential>> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(source) => {
            return Err(ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(HashMap::new());
    }
    let cfg: ConfigFile = serde_json::from_slice(&bytes).map_err(|source| ConfigError::Parse {
        path: path.to_path_buf(),
        source,
    })?;
    let mut out = HashMap::new();
    for (key, entry) in &cfg.auths {
        if let Some(cred) = entry_credential(path, key, entry)? {
            out.insert(normalize_host(key), cred);
        }
    }
    if let Some(store) = cfg.creds_store.as_deref().filter(|s| !s.is_empty()) {
        if let Some(servers) = helper_list(store, helper_path)? {
            for server in servers {
                if let Some(cred) = helper_get(store, &server, helper_path)? {
                    out.insert(normalize_host(&server), cred);
                }
            }
        }
    }
    for (key, helper) in &cfg.cred_helpers {
        if helper.is_empty() {
            continue;
        }
        if let Some(cred) = helper_get(helper, key, helper_path)? {
            out.insert(normalize_host(key), cred);
        }
    }
    Ok(out)
}

fn entry_credential(path: &Path, key: &str, e: &AuthEntry) -> Result<Option<Credential>> {
    if let Some(tok) = e.identitytoken.as_deref().filter(|t| !t.is_empty()) {
        return Ok(Some(Credential::IdentityToken(tok.to_string())));
    }
    if let Some(auth) = e.auth.as_deref().map(str::trim).filter(|a| !a.is_empty()) {
        let invalid = |reason: &str| ConfigError::InvalidAuth {
            path: path.to_path_buf(),
            host: key.to_string(),
            reason: reason.to_string(),
        };
        let engine = GeneralPurpose::new(
            &alphabet::STANDARD,
            GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
        );
        let raw = engine
            .decode(auth)
            .map_err(|e| invalid(&format!("auth is not base64: {e}")))?;
        let text = String::from_utf8(raw).map_err(|_| invalid("auth is not utf-8"))?;
        let (username, password) = text
            .split_once(':')
            .ok_or_else(|| invalid("auth is not user:password"))?;
        return Ok(Some(Credential::Basic {
            username: username.to_string(),
            password: password.trim_end_matches('\0').to_string(),
        }));
    }
    match (&e.username, &e.password) {
        (Some(u), Some(p)) if !u.is_empty() => Ok(Some(Credential::Basic {
            username: u.clone(),
            password: p.clone(),
        })),
        _ => Ok(None),
    }
}

/// Runs `docker-credential-<helper> <verb>` with `input` on stdin. `None`
/// when the helper is not installed.
fn run_helper(
    helper: &str,
    verb: &str,
    input: &str,
    host: &str,
    helper_path: Option<&OsStr>,
) -> Result<Option<(bool, Vec<u8>)>> {
    let fail = |reason: String| ConfigError::Helper {
        helper: helper.to_string(),
        host: host.to_string(),
        reason,
    };
    if helper.contains('/') {
        return Err(fail("a helper name cannot hold a slash".to_string()));
    }
    let mut cmd = Command::new(format!("docker-credential-{helper}"));
    cmd.arg(verb)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(p) = helper_path {
        cmd.env("PATH", p);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(fail(e.to_string())),
    };
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading its input is not an error here.
        let _ = stdin.write_all(input.as_bytes());
    }
    let output = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
    if output.status.success() {
        return Ok(Some((true, output.stdout)));
    }
    let mut msg = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if msg.is_empty() {
        msg = String::from_utf8_lossy(&output.stderr).trim().to_string();
    }
    Ok(Some((false, msg.into_bytes())))
}

/// `docker-credential-<helper> get`: the credential for `server`, `None` if
/// the helper has none (or is not installed).
fn helper_get(helper: &str, server: &str, hp: Option<&OsStr>) -> Result<Option<Credential>> {
    let fail = |reason: String| ConfigError::Helper {
        helper: helper.to_string(),
        host: server.to_string(),
        reason,
    };
    let Some((ok, out)) = run_helper(helper, "get", &format!("{server}\n"), server, hp)? else {
        return Ok(None);
    };
    if !ok {
        let msg = String::from_utf8_lossy(&out).to_string();
        if msg.to_ascii_lowercase().contains("credentials not found") {
            return Ok(None);
        }
        return Err(fail(if msg.is_empty() {
            "it exited with an error".to_string()
        } else {
            msg.to_lowercase()
        }));
    }
    #[derive(Deserialize)]
    struct HelperCred {
        #[serde(rename = "Username", default)]
        username: String,
        #[serde(rename = "Secret", default)]
        secret: String,
    }
    let c: HelperCred = serde_json::from_slice(&out)
        .map_err(|e| fail(format!("its answer is not the expected json: {e}")))?;
    if c.secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(if c.username == TOKEN_USERNAME {
        Credential::IdentityToken(c.secret)
    } else {
        Credential::Basic {
            username: c.username,
            password: c.secret,
        }
    }))
}

/// `docker-credential-<helper> list`: the servers the store has credentials for.
fn helper_list(helper: &str, hp: Option<&OsStr>) -> Result<Option<Vec<String>>> {
    let fail = |reason: String| ConfigError::Helper {
        helper: helper.to_string(),
        host: "(list)".to_string(),
        reason,
    };
    let Some((ok, out)) = run_helper(helper, "list", "", "(list)", hp)? else {
        return Ok(None);
    };
    if !ok {
        return Err(fail(String::from_utf8_lossy(&out).to_lowercase()));
    }
    let map: HashMap<String, String> = serde_json::from_slice(&out)
        .map_err(|e| fail(format!("its answer is not the expected json: {e}")))?;
    let mut servers: Vec<String> = map.into_keys().collect();
    servers.sort();
    Ok(Some(servers))
}

/// Reads the config as a JSON object (empty if missing), keeping every
/// field berth does not know.
fn read_object(path: &Path) -> Result<serde_json::Map<String, serde_json::Value>> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Default::default()),
        Err(source) => {
            return Err(ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Default::default());
    }
    let parse_err = |source| ConfigError::Parse {
        path: path.to_path_buf(),
        source,
    };
    match serde_json::from_slice(&bytes).map_err(parse_err)? {
        serde_json::Value::Object(m) => Ok(m),
        _ => Err(parse_err(serde::de::Error::custom("not a json object"))),
    }
}

/// The `auths` object of a config, created if missing.
fn auths_of(
    obj: &mut serde_json::Map<String, serde_json::Value>,
) -> &mut serde_json::Map<String, serde_json::Value> {
    let auths = obj
        .entry("auths")
        .or_insert_with(|| serde_json::Value::Object(Default::default()));
    if !auths.is_object() {
        *auths = serde_json::Value::Object(Default::default());
    }
    auths.as_object_mut().expect("an object")
}

/// Stores `cred` for `host` in the `auths` of the config at `path` (created
/// if missing), keeping everything else in the file. The file is replaced
/// atomically and has mode 0600.
pub fn store(path: &Path, host: &str, cred: &Credential) -> Result<()> {
    let mut obj = read_object(path)?;
    let auths = auths_of(&mut obj);
    let target = normalize_host(host);
    auths.retain(|k, _| normalize_host(k) != target);
    let key = if target == "docker.io" {
        DOCKER_HUB_KEY.to_string()
    } else {
        target
    };
    let entry = match cred {
        Credential::Basic { username, password } => serde_json::json!({
            "auth": base64::engine::general_purpose::STANDARD
                .encode(format!("{username}:{password}")),
        }),
        Credential::IdentityToken(t) => serde_json::json!({ "identitytoken": t }),
    };
    auths.insert(key, entry);
    write_config(path, &obj)
}

/// Removes the credentials of `host` from `auths`; whether there were any.
pub fn remove(path: &Path, host: &str) -> Result<bool> {
    let mut obj = read_object(path)?;
    let auths = auths_of(&mut obj);
    let target = normalize_host(host);
    let before = auths.len();
    auths.retain(|k, _| normalize_host(k) != target);
    if auths.len() == before {
        return Ok(false);
    }
    write_config(path, &obj)?;
    Ok(true)
}

fn write_config(path: &Path, obj: &serde_json::Map<String, serde_json::Value>) -> Result<()> {
    let mut bytes = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut ser = serde_json::Serializer::with_formatter(&mut bytes, fmt);
    serde::Serialize::serialize(obj, &mut ser).map_err(|e| ConfigError::Write {
        path: path.to_path_buf(),
        source: io::Error::other(e),
    })?;
    bytes.push(b'\n');
    // Write through a symlinked config (dotfile managers) to its target.
    let target = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    write_atomic(&target, &bytes).map_err(|source| ConfigError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes `bytes` to a temporary file (mode 0600) next to `path`, syncs it,
/// and renames it over `path`.
fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "config.json".to_string());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let tmp = dir.join(format!(".{name}.{}.{nanos}.tmp", std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.set_permissions(fs::Permissions::from_mode(0o600))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        if let Ok(d) = fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_keys() {
        assert_eq!(normalize_host("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(normalize_host("registry-1.docker.io"), "docker.io");
        assert_eq!(
            normalize_host("https://Reg.Example:5000/v2/"),
            "reg.example:5000"
        );
        assert_eq!(normalize_host("http://localhost:5000"), "localhost:5000");
        assert_eq!(normalize_host("quay.io"), "quay.io");
    }

    #[test]
    fn decodes_auth_entries() {
        let p = Path::new("/x/config.json");
        let e = AuthEntry {
            auth: Some("dXNlcjpwYTpzcw==".into()), // user:pa:ss
            ..Default::default()
        };
        assert_eq!(
            entry_credential(p, "h", &e).unwrap(),
            Some(Credential::Basic {
                username: "user".into(),
                password: "pa:ss".into()
            })
        );
        let unpadded = AuthEntry {
            auth: Some("dXNlcjpwYTpzcw".into()),
            ..Default::default()
        };
        assert!(entry_credential(p, "h", &unpadded).unwrap().is_some());
        let tok = AuthEntry {
            auth: Some("dXNlcjo=".into()),
            identitytoken: Some("tok".into()),
            ..Default::default()
        };
        assert_eq!(
            entry_credential(p, "h", &tok).unwrap(),
            Some(Credential::IdentityToken("tok".into()))
        );
        let bad = AuthEntry {
            auth: Some("bm9jb2xvbg==".into()), // "nocolon"
            ..Default::default()
        };
        let err = entry_credential(p, "reg.example", &bad).unwrap_err();
        assert!(err.to_string().contains("reg.example"), "{err}");
        assert_eq!(
            entry_credential(p, "h", &AuthEntry::default()).unwrap(),
            None
        );
    }
}
