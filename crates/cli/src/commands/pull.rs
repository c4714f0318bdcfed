//! `berth pull [-q] [--platform os/arch[/variant]] [--tls-verify=false] REF`

use crate::output::PullProgress;
use crate::source::RegistrySource;
use berth_image::db::Db;
use berth_image::manifest::Platform;
use berth_image::pull::{pull, Options, Pulled};
use berth_image::{Reference, Store};
use std::path::Path;

#[derive(clap::Args)]
pub struct Args {
    /// Print only the image reference.
    #[arg(short, long)]
    pub quiet: bool,
    /// Platform to select from a multi-platform image (default: this host's).
    #[arg(long)]
    pub platform: Option<String>,
    /// Verify TLS; `--tls-verify=false` allows plain http to the image's registry.
    #[arg(long = "tls-verify", default_value_t = true, action = clap::ArgAction::Set)]
    pub tls_verify: bool,
    /// Layers downloaded and unpacked at once.
    #[arg(long = "max-concurrent-downloads", default_value_t = 3)]
    pub parallel: usize,
    /// NAME[:TAG|@DIGEST]
    pub image: String,
}

pub fn run(root: &Path, a: Args) -> anyhow::Result<i32> {
    let reference = Reference::parse(&a.image)?;
    let platform = match &a.platform {
        Some(p) => Platform::parse(p)?,
        None => Platform::host(),
    };
    let (store, db) = super::open(root)?;
    let progress = PullProgress::new(a.quiet);
    if !a.quiet {
        let tag = reference
            .tag
            .clone()
            .or_else(|| reference.digest.as_ref().map(|d| d.to_string()))
            .unwrap_or_else(|| "latest".into());
        println!("{}: Pulling from {}", tag, reference.familiar_name());
    }
    let pulled = fetch(
        &store,
        &db,
        &reference,
        platform,
        a.tls_verify,
        a.parallel,
        &progress,
    )?;
    progress.finish();
    if a.quiet {
        println!("{}", reference);
    } else {
        println!("Digest: {}", pulled.manifest_digest);
        if pulled.downloaded {
            println!(
                "Status: Downloaded newer image for {}",
                reference.familiar()
            );
        } else {
            println!("Status: Image is up to date for {}", reference.familiar());
        }
        println!("{}", reference);
    }
    Ok(0)
}

/// Pulls `reference` into the store (shared by `pull` and `run`).
pub fn fetch(
    store: &Store,
    db: &Db,
    reference: &Reference,
    platform: Platform,
    tls_verify: bool,
    parallel: usize,
    progress: &PullProgress,
) -> anyhow::Result<Pulled> {
    let insecure = if tls_verify {
        Vec::new()
    } else {
        vec![reference.domain.clone()]
    };
    let source = RegistrySource::new(insecure)?;
    Ok(pull(
        store,
        db,
        &source,
        reference,
        &Options { platform, parallel },
        progress,
    )?)
}
