//! `run_image`: overlay rootfs + generated config.json under
//! `<root>/containers/<id>/`, the runtime's `run` in-process, then remove
//! everything (there is no container state to keep yet).

use crate::rootfs::{self, Overlay};
use crate::spec_gen::{self, Options};
use berth_image::db::ImageRecord;
use berth_image::Store;
use berth_runtime::container::create::CreateOpts;
use berth_runtime::container::run::{run, RunOpts};
use berth_runtime::Runtime;
use std::io::Read;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Rootfs(#[from] rootfs::Error),
    #[error(transparent)]
    Spec(#[from] spec_gen::Error),
    #[error("layer {0} of the image is missing from the store; pull the image again")]
    MissingLayer(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("write {path}: {source}")]
    WriteSpec {
        path: PathBuf,
        source: oci_spec::OciSpecError,
    },
    #[error(transparent)]
    Runtime(#[from] berth_runtime::container::Error),
}

/// Options for [`run_image`].
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub spec: Options,
    /// Runtime state root; `<root>/runtime` when unset.
    pub runtime_root: Option<PathBuf>,
}

/// A new container id: 64 random hex digits.
pub fn new_id() -> Result<String, Error> {
    let mut b = [0u8; 32];
    let path = Path::new("/dev/urandom");
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|source| Error::Io {
            path: path.into(),
            source,
        })?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Runs `image` from `store` in the foreground and returns its exit code.
/// The container's dir and rootfs are removed afterwards, also on error.
pub fn run_image(store: &Store, image: &ImageRecord, opts: &RunOptions) -> Result<i32, Error> {
    let id = new_id()?;
    let dir = store.root().join("containers").join(&id);
    let mut lower = Vec::with_capacity(image.layers.len());
    for l in image.layers.iter().rev() {
        if !store.has_layer(&l.chain_id) {
            return Err(Error::MissingLayer(l.chain_id.to_string()));
        }
        lower.push(store.layer_dir(&l.chain_id));
    }
    let mut ov = Overlay::mount(&dir, &lower)?;
    let result = run_in(store, image, opts, &id, &ov);
    let cleanup = ov.remove();
    let code = result?;
    cleanup?;
    Ok(code)
}

fn run_in(
    store: &Store,
    image: &ImageRecord,
    opts: &RunOptions,
    id: &str,
    ov: &Overlay,
) -> Result<i32, Error> {
    let hostname = &id[..12];
    let spec = spec_gen::generate(&image.config, &opts.spec, &ov.merged(), hostname)?;
    let config = ov.dir().join("config.json");
    spec.save(&config).map_err(|source| Error::WriteSpec {
        path: config.clone(),
        source,
    })?;
    let rt = Runtime::new(
        opts.runtime_root
            .clone()
            .unwrap_or_else(|| store.root().join("runtime")),
    );
    let code = run(
        &rt,
        RunOpts {
            create: CreateOpts {
                id: id.to_string(),
                bundle: ov.dir().to_path_buf(),
                ..CreateOpts::default()
            },
            detach: false,
            keep: false,
        },
    )?;
    Ok(code)
}
