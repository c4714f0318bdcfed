//! `create`: a row in the container table and the container dir with its
//! overlay layout (not mounted until start). Nothing runs yet.

use super::{names, new_id, Config, Engine, Error, Result};
use crate::db::{self, Record, Status};
use crate::spec_gen::mounts::{MountKind, MountSpec};
use crate::{rootfs, spec_gen};
use berth_image::db::ImageRecord;

pub struct CreateRequest {
    /// `--name`; a random `adjective_name` when unset.
    pub name: Option<String>,
    pub image: ImageRecord,
    /// The image as the user named it, for `ps` and `inspect`.
    pub image_ref: String,
    pub config: Config,
}

/// Makes `dir` (and parents) and keeps it to root: containers' files
/// (setuid binaries, device nodes, logs) must not be reachable by local
/// users (the CVE-2021-41091 class).
pub(crate) fn private_dir(dir: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(super::io(dir))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(super::io(dir))
}

impl Engine {
    /// Creates a container. On error nothing is left: no row, no dir.
    pub fn create(&self, mut req: CreateRequest) -> Result<Record> {
        let name = match &req.name {
            Some(n) => Some(names::validate(n).map_err(Error::Invalid)?),
            None => None,
        };
        req.config.image_config = req.image.config.clone();
        // The command must resolve now, as in Docker ("no command specified").
        let image = req.config.image();
        spec_gen::args(&image, &req.config.spec)?;
        // The image's VOLUMEs not covered by a user mount: anonymous volumes.
        if let Some(vols) = image["Volumes"].as_object() {
            for target in vols.keys() {
                let covered = req.config.spec.mounts.iter().any(|m| &m.target == target);
                if !covered && target.starts_with('/') {
                    req.config.spec.mounts.push(MountSpec {
                        kind: MountKind::Volume,
                        source: new_id()?,
                        target: target.clone(),
                        readonly: false,
                        options: Vec::new(),
                        anonymous: true,
                    });
                }
            }
        }
        let mut lower = Vec::with_capacity(req.image.layers.len());
        for l in req.image.layers.iter().rev() {
            if !self.store.has_layer(&l.chain_id) {
                return Err(Error::MissingLayer(l.chain_id.to_string()));
            }
            lower.push(self.store.layer_dir(&l.chain_id));
        }
        let options = serde_json::to_string(&req.config)
            .map_err(|e| Error::Invalid(format!("container options: {e}")))?;
        let id = new_id()?;
        let mut rec = Record {
            id: id.clone(),
            name: String::new(),
            image_id: req.image.id.to_string(),
            image_ref: req.image_ref.clone(),
            created: berth_runtime::state::now_rfc3339(),
            options,
            status: Status::Created,
            pid: 0,
            pid_start: 0,
            monitor_pid: 0,
            monitor_start: 0,
            boot_id: String::new(),
            exit_code: 0,
            oom_killed: false,
            error: String::new(),
            started_at: String::new(),
            finished_at: String::new(),
            restarts: Default::default(),
        };
        match name {
            Some(n) => {
                rec.name = n;
                self.db.insert(&rec)?;
            }
            None => {
                let mut attempt = 0u32;
                loop {
                    let at = (attempt as usize * 4) % 60;
                    let seed: Vec<u8> = (0..2)
                        .map(|k| {
                            u8::from_str_radix(&id[at + 2 * k..at + 2 * k + 2], 16).unwrap_or(0)
                        })
                        .collect();
                    rec.name = names::random(&seed);
                    if attempt >= 8 {
                        rec.name = format!("{}{}", rec.name, attempt);
                    }
                    match self.db.insert(&rec) {
                        Ok(()) => break,
                        Err(db::Error::NameInUse { .. }) if attempt < 50 => attempt += 1,
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
        let dir = self.dir(&id);
        let containers = self.root.join("containers");
        // Container dirs (and volumes below) are independent trees: the
        // ext4 Orlov flag spreads them (berth_image::topdir).
        let made = private_dir(&containers)
            .map(|()| {
                berth_image::topdir::mark(&containers);
            })
            .and_then(|()| rootfs::prepare(&dir, &lower).map_err(Error::from));
        // Volumes exist from create on, as in Docker (`volume ls` shows them).
        let made = made.and_then(|()| {
            for m in &req.config.spec.mounts {
                if m.kind == MountKind::Volume {
                    private_dir(&self.root.join("volumes"))?;
                    berth_image::topdir::mark(&self.root.join("volumes"));
                    let data = spec_gen::mounts::volume_data(&self.root.join("volumes"), &m.source);
                    std::fs::create_dir_all(&data).map_err(super::io(&data))?;
                }
            }
            Ok(())
        });
        // Docker's copy-up: empty volumes get the image's files there.
        let made = made.and_then(|()| self.copy_up_volumes(&rec, &req.config.spec.mounts));
        if let Err(e) = made {
            let _ = rootfs::remove(&dir);
            let _ = self.db.remove(&id);
            return Err(e);
        }
        Ok(rec)
    }
}
