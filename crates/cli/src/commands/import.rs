//! `berth import [--change INSTR]... [-m MSG] FILE|- [REPOSITORY[:TAG]]`

use berth_image::archive::import::{import, open_input, ImportOptions};
use berth_image::Reference;
use std::path::Path;

#[derive(clap::Args)]
pub struct Args {
    /// A Dockerfile instruction to apply to the image config
    /// (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR).
    #[arg(short, long = "change")]
    pub changes: Vec<String>,
    /// Commit message for the imported image.
    #[arg(short, long)]
    pub message: Option<String>,
    /// A rootfs tarball (plain, gzip or zstd), or `-` for stdin.
    pub file: String,
    pub reference: Option<String>,
}

pub fn run(root: &Path, a: Args) -> anyhow::Result<i32> {
    let reference = match &a.reference {
        Some(r) => {
            let r = Reference::parse(r)?;
            if r.digest.is_some() {
                anyhow::bail!("refusing to create a tag with a digest reference: {r}");
            }
            Some(r)
        }
        None => None,
    };
    let (store, db) = super::open(root)?;
    let input = open_input(&a.file)?;
    let loaded = import(
        &store,
        &db,
        input,
        &ImportOptions {
            changes: a.changes,
            message: a.message,
            source_name: a.file.clone(),
            reference,
        },
    )?;
    println!("{}", loaded.id);
    Ok(0)
}
