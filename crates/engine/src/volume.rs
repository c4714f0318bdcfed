//! Named volumes: directories under `<root>/volumes/<name>/_data`, made by
//! `volume create` or on first use by `-v NAME:/path`. A volume is in use
//! while any container (running or not) names it in its mounts.

use crate::container::{io, Config, Engine, Error, Result};
use crate::spec_gen::mounts::{valid_volume_name, volume_data, MountKind};
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    pub name: String,
    pub mountpoint: PathBuf,
    /// RFC 3339 time the dir was made.
    pub created: String,
}

impl Engine {
    pub fn volumes_dir(&self) -> PathBuf {
        self.root.join("volumes")
    }

    /// Makes a volume (an existing one is fine, as in Docker).
    pub fn volume_create(&self, name: &str) -> Result<Volume> {
        if !valid_volume_name(name) {
            return Err(Error::Invalid(format!(
                "invalid volume name {name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )));
        }
        crate::container::create::private_dir(&self.volumes_dir())?;
        let data = volume_data(&self.volumes_dir(), name);
        std::fs::create_dir_all(&data).map_err(io(&data))?;
        self.volume(name)
    }

    pub fn volume(&self, name: &str) -> Result<Volume> {
        let data = volume_data(&self.volumes_dir(), name);
        let meta = std::fs::metadata(&data)
            .map_err(|_| Error::Invalid(format!("no such volume: {name}")))?;
        let created = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| berth_runtime::state::rfc3339(d.as_secs() as i64, 0))
            .unwrap_or_default();
        Ok(Volume {
            name: name.to_string(),
            mountpoint: data,
            created,
        })
    }

    pub fn volume_list(&self) -> Result<Vec<Volume>> {
        let dir = self.volumes_dir();
        let mut names: Vec<String> = match std::fs::read_dir(&dir) {
            Ok(rd) => rd
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| valid_volume_name(n))
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io(&dir)(e)),
        };
        names.sort();
        names.iter().map(|n| self.volume(n)).collect()
    }

    /// Names of the containers whose mounts use volume `name`.
    pub fn volume_users(&self, name: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for rec in self.db.list()? {
            let Ok(cfg) = Config::parse(&rec) else {
                continue;
            };
            if cfg
                .spec
                .mounts
                .iter()
                .any(|m| m.kind == MountKind::Volume && m.source == name)
            {
                out.push(rec.name);
            }
        }
        Ok(out)
    }

    /// Removes a volume that no container uses (or, with `force`, any).
    pub fn volume_remove(&self, name: &str, force: bool) -> Result<()> {
        self.volume(name)?;
        let users = self.volume_users(name)?;
        if !users.is_empty() && !force {
            return Err(Error::Invalid(format!(
                "remove {name}: volume is in use by container(s) {}",
                users.join(", ")
            )));
        }
        let dir = self.volumes_dir().join(name);
        std::fs::remove_dir_all(&dir).map_err(io(&dir))
    }

    /// Removes every unused volume; returns their names.
    pub fn volume_prune(&self) -> Result<Vec<String>> {
        let mut removed = Vec::new();
        for v in self.volume_list()? {
            if self.volume_users(&v.name)?.is_empty() {
                self.volume_remove(&v.name, false)?;
                removed.push(v.name);
            }
        }
        Ok(removed)
    }

    /// Removes the anonymous volumes of a container being removed.
    pub fn remove_anonymous_volumes(&self, cfg: &Config) {
        for m in &cfg.spec.mounts {
            if m.anonymous && m.kind == MountKind::Volume {
                let _ = std::fs::remove_dir_all(self.volumes_dir().join(&m.source));
            }
        }
    }
}
