//! berth's settings file: `$BERTH_CONFIG`, else `/etc/berth/config.json`.
//! The keys are Docker's daemon.json names, so a Docker user's settings
//! carry over:
//!
//! ```json
//! { "insecure-registries": ["myreg.lan:5000", "10.0.0.0/8"],
//!   "registry-mirrors": ["https://mirror.example"] }
//! ```

use anyhow::Context;
use serde::Deserialize;
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
