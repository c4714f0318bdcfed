//! `commit` and `diff`: the container's upper dir as a new image layer (see
//! `berth_image::commit`), and as Docker's A/C/D change list. `--pause`
//! (the default, as in Docker) freezes a running container meanwhile.

use super::{Config, Engine, Error, Result};
use crate::db::{Record, Status};
use crate::rootfs;
use berth_image::commit::{changes, commit, Change, CommitOptions, Committed};
use berth_runtime::container::pause;

impl Engine {
    /// Makes a new image of the container's image plus its changes.
    pub fn commit(
        &self,
        rec: &Record,
        mut opts: CommitOptions,
        pause_it: bool,
    ) -> Result<Committed> {
        let digest = rec.image_id.parse().map_err(|_| Error::State {
            id: rec.id.clone(),
            what: format!("bad image id {}", rec.image_id),
        })?;
        let parent = self.images.image(&digest)?.ok_or_else(|| Error::State {
            id: rec.id.clone(),
            what: format!("its image {} is no longer in the store", rec.image_id),
        })?;
        let cfg = Config::parse(rec)?;
        if opts.created_by.is_none() {
            let args = crate::spec_gen::args(&cfg.image(), &cfg.spec).unwrap_or_default();
            opts.created_by = Some(args.join(" "));
        }
        opts.container.get_or_insert_with(|| rec.id.clone());
        let ext = self.external(&cfg);
        let dir = self.dir(&rec.id);
        let paused = pause_it && rec.status == Status::Running;
        if paused {
            // Frozen already: a commit killed mid-way left it so. Go on, and
            // thaw it when done.
            let frozen = ext.is_none()
                && self
                    .runtime
                    .load(&rec.id)
                    .is_ok_and(|c| c.status == berth_runtime::state::Status::Paused);
            if !frozen {
                match &ext {
                    Some(x) => x.pause(&rec.id, &dir)?,
                    None => pause::pause(&self.runtime, &rec.id)?,
                }
            }
        }
        let r = commit(
            &self.store,
            &self.images,
            &parent,
            &rootfs::upper(&self.dir(&rec.id)),
            &opts,
        );
        if paused {
            let _ = match &ext {
                Some(x) => x.resume(&rec.id, &dir),
                None => pause::resume(&self.runtime, &rec.id).map_err(Error::from),
            };
        }
        r.map_err(|e| Error::Invalid(format!("commit {}: {e}", rec.name)))
    }

    /// The files added, changed and deleted in the container.
    pub fn diff(&self, rec: &Record) -> Result<Vec<Change>> {
        let dir = self.dir(&rec.id);
        let mut lowers = vec![rootfs::init_layer(&dir)];
        lowers.extend(rootfs::lowers(&dir)?);
        changes(&rootfs::upper(&dir), &lowers)
            .map_err(|e| Error::Invalid(format!("diff {}: {e}", rec.name)))
    }
}
