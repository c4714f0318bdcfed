//! `berth save [-o FILE] [--format docker-archive|oci-archive] IMAGE...`

use anyhow::Context;
use berth_image::archive::{self, Format};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct Args {
    /// Write to a file instead of stdout.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// docker-archive (as `docker save`) or oci-archive (an OCI image layout).
    #[arg(long, default_value = "docker-archive")]
    pub format: Format,
    #[arg(required = true)]
    pub images: Vec<String>,
}

pub fn run(root: &Path, a: Args) -> anyhow::Result<i32> {
    let (store, db) = super::open(root)?;
    match &a.output {
        Some(path) => archive::save_to_path(&store, &db, &a.images, a.format, path)
            .with_context(|| format!("save to {}", path.display()))?,
        None => {
            if std::io::stdout().is_terminal() {
                anyhow::bail!(
                    "cowardly refusing to save to a terminal. use the -o flag or redirect"
                );
            }
            // Written whole to a temp file first, so a failure never leaves
            // half an archive on stdout.
            let tmp = store
                .tmp_dir()
                .join(format!("save-{}.tar", std::process::id()));
            let r = archive::save_to_path(&store, &db, &a.images, a.format, &tmp).and_then(|()| {
                let mut f = std::fs::File::open(&tmp).map_err(|source| archive::Error::Io {
                    op: "open",
                    path: tmp.clone(),
                    source,
                })?;
                let mut out = std::io::stdout().lock();
                std::io::copy(&mut f, &mut out)
                    .and_then(|_| out.flush())
                    .map_err(|source| archive::Error::Io {
                        op: "write",
                        path: PathBuf::from("(stdout)"),
                        source,
                    })?;
                Ok(())
            });
            let _ = std::fs::remove_file(&tmp);
            r?;
        }
    }
    Ok(0)
}
