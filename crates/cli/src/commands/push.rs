//! `berth push [-q] [--tls-verify=false] NAME[:TAG] [DESTINATION]`

use berth_image::digest::Digest;
use berth_image::push::{
    push, BlobOutcome, Destination, DestinationError, Event, Options, Progress,
};
use berth_image::Reference;
use berth_registry::{BlobPush, Client, LocalBlob};
use std::path::Path;

#[derive(clap::Args)]
pub struct Args {
    /// Print only the pushed reference.
    #[arg(short, long)]
    pub quiet: bool,
    /// Verify TLS; `--tls-verify=false` allows plain http to the registry.
    #[arg(long = "tls-verify", default_value_t = true, action = clap::ArgAction::Set)]
    pub tls_verify: bool,
    /// Layers uploaded at once.
    #[arg(long = "max-concurrent-uploads", default_value_t = 5)]
    pub parallel: usize,
    /// NAME[:TAG] (or id) of a local image.
    pub image: String,
    /// Where to push it (default: IMAGE itself), as in `podman push`.
    pub destination: Option<String>,
}

pub fn run(root: &Path, a: Args) -> anyhow::Result<i32> {
    let target = Reference::parse(a.destination.as_deref().unwrap_or(&a.image))?;
    let (store, db) = super::open(root)?;
    let insecure = if a.tls_verify {
        Vec::new()
    } else {
        vec![target.domain.clone()]
    };
    let dest = RegistryDestination {
        client: crate::source::client(insecure)?,
    };
    if !a.quiet {
        println!("The push refers to repository [{}]", target.name());
    }
    let pushed = push(
        &store,
        &db,
        &dest,
        &a.image,
        &target,
        &Options {
            parallel: a.parallel,
        },
        &PushProgress { quiet: a.quiet },
    )?;
    if a.quiet {
        println!("{}", target.familiar());
    } else {
        println!(
            "{}: digest: {} size: {}",
            target.tag.as_deref().unwrap_or("latest"),
            pushed.manifest_digest,
            pushed.manifest_size
        );
    }
    Ok(0)
}

/// The registry client as the image store's `Destination`.
struct RegistryDestination {
    client: Client,
}

impl Destination for RegistryDestination {
    fn push_blob(
        &self,
        target: &Reference,
        digest: &Digest,
        size: u64,
        path: &Path,
        mount_from: Option<&str>,
    ) -> Result<BlobOutcome, DestinationError> {
        let blob = LocalBlob {
            digest: digest.as_str(),
            size,
            path,
        };
        let r = self
            .client
            .push_blob(&target.domain, &target.path, &blob, mount_from)?;
        Ok(match r {
            BlobPush::Exists => BlobOutcome::Exists,
            BlobPush::Mounted { from } => BlobOutcome::Mounted(from),
            BlobPush::Uploaded => BlobOutcome::Uploaded,
        })
    }

    fn push_manifest(
        &self,
        target: &Reference,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<Digest, DestinationError> {
        let tag = target.manifest_ref();
        let d = self
            .client
            .push_manifest(&target.domain, &target.path, &tag, bytes, media_type)?;
        Ok(d.parse()?)
    }
}

/// Docker's plain push output: one line per layer state.
struct PushProgress {
    quiet: bool,
}

impl Progress for PushProgress {
    fn event(&self, layer: &Digest, what: &Event) {
        if self.quiet {
            return;
        }
        let line = match what {
            Event::Preparing => "Preparing".to_string(),
            Event::Pushing => return,
            Event::Done(BlobOutcome::Exists) => "Layer already exists".to_string(),
            Event::Done(BlobOutcome::Mounted(from)) => format!("Mounted from {from}"),
            Event::Done(BlobOutcome::Uploaded) => "Pushed".to_string(),
        };
        let id: String = layer.hex().chars().take(12).collect();
        println!("{id}: {line}");
    }
}
