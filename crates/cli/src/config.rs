//! berth's settings file: `$BERTH_CONFIG`, else `/etc/berth/config.json`.
//! The keys are Docker's daemon.json names, so a Docker user's settings
//! carry over:
//!
//! ```json
//! { "insecure-registries": ["myreg.lan:5000", "10.0.0.0/8"],
//!   "registry-mirrors": ["https://mirror.example"] }
//! ```
//!
//! A registry with a private CA: its certificate(s) as `certs.d/<host:port>/ca.crt`
//! (any `*.crt`) beside that file, Docker's convention
//! (`/etc/berth/certs.d/myreg.lan:5000/ca.crt`), trusted for that host only.

use anyhow::Context;
use serde::Deserialize;
use std::collections::HashMap;
use std::path::PathBuf;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Registries reachable over plain http (loopback always is).
    #[serde(default, rename = "insecure-registries")]
    pub insecure_registries: Vec<String>,
    /// Mirrors tried in order before Docker Hub for docker.io images.
    #[serde(default, rename = "registry-mirrors")]
    pub registry_mirrors: Vec<String>,
}

pub fn path() -> PathBuf {
    std::env::var_os("BERTH_CONFIG")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/etc/berth/config.json"))
}

pub fn load() -> anyhow::Result<Config> {
    let p = path();
    match std::fs::read(&p) {
        Ok(b) => serde_json::from_slice(&b).with_context(|| format!("parse {}", p.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
        Err(e) => Err(e).with_context(|| format!("read {}", p.display())),
    }
}

/// The `certs.d` directory beside the settings file.
pub fn certs_dir() -> PathBuf {
    let p = path();
    p.parent()
        .map_or_else(|| PathBuf::from("certs.d"), |d| d.join("certs.d"))
}

/// PEM CA certificates by registry host from [`certs_dir`]: every `*.crt`
/// of `certs.d/<host>/` (none when the directory does not exist).
pub fn ca_certs() -> anyhow::Result<HashMap<String, Vec<Vec<u8>>>> {
    let dir = certs_dir();
    let mut out = HashMap::new();
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e).with_context(|| format!("read {}", dir.display())),
    };
    for host in rd {
        let host = host.with_context(|| format!("read {}", dir.display()))?;
        if !host.path().is_dir() {
            continue;
        }
        let mut pems = Vec::new();
        let files = std::fs::read_dir(host.path())
            .with_context(|| format!("read {}", host.path().display()))?;
        for f in files {
            let f = f
                .with_context(|| format!("read {}", host.path().display()))?
                .path();
            if f.extension().is_some_and(|e| e == "crt") {
                pems.push(std::fs::read(&f).with_context(|| format!("read {}", f.display()))?);
            }
        }
        if !pems.is_empty() {
            out.insert(host.file_name().to_string_lossy().into_owned(), pems);
        }
    }
    Ok(out)
}
