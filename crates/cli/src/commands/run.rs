//! `berth run [OPTIONS] IMAGE [CMD...]`: pull the image if needed, run it in
//! the foreground and exit with its code (125 engine error, 126 cannot
//! execute, 127 not found, like Docker).

use crate::output::PullProgress;
use berth_engine::spec_gen::{self, Network};
use berth_engine::{run_image, RunOptions};
use berth_image::manifest::Platform;
use berth_image::Reference;
use std::path::Path;

/// `berth run`'s flags (Docker's names).
#[derive(clap::Args)]
pub struct Args {
    /// Remove the container when it exits (always done for now).
    #[arg(long)]
    pub rm: bool,
    /// Set an environment variable (`K=V`, or `K` to pass ours through).
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Working directory inside the container.
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// USER[:GROUP], names or numeric ids.
    #[arg(short = 'u', long = "user")]
    pub user: Option<String>,
    /// Override the image's entrypoint ("" clears it).
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Memory limit (bytes, or with b/k/m/g).
    #[arg(short = 'm', long = "memory")]
    pub memory: Option<String>,
    /// Maximum number of processes.
    #[arg(long = "pids-limit")]
    pub pids_limit: Option<i64>,
    /// `none` (a new empty network namespace; the default for now) or `host`.
    #[arg(long, default_value = "none")]
    pub network: String,
    /// A name for the container (not recorded yet: there is no container state).
    #[arg(long)]
    pub name: Option<String>,
    /// Verify TLS when pulling; `--tls-verify=false` allows plain http.
    #[arg(long = "tls-verify", default_value_t = true, action = clap::ArgAction::Set)]
    pub tls_verify: bool,
    /// NAME[:TAG|@DIGEST] or image id.
    pub image: String,
    /// Command and arguments (replace the image's Cmd).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub cmd: Vec<String>,
}

const ENGINE_ERROR: i32 = 125;

pub fn run(root: &Path, a: Args) -> anyhow::Result<i32> {
    match go(root, a) {
        Ok(code) => Ok(code),
        Err(e) => {
            eprintln!("berth: {e:#}");
            let msg = format!("{e:#}");
            // The runtime's exec errors read `exec: "ARG0": ...` (process.rs).
            let exec_err = msg.contains("exec: \"");
            Ok(if exec_err && msg.contains("executable file not found") {
                127
            } else if exec_err
                && (msg.contains("permission denied") || msg.contains("is a directory"))
            {
                126
            } else {
                ENGINE_ERROR
            })
        }
    }
}

fn go(root: &Path, a: Args) -> anyhow::Result<i32> {
    let network = match a.network.as_str() {
        "none" => Network::None,
        "host" => Network::Host,
        other => anyhow::bail!("network {other:?} is not supported yet; use none or host"),
    };
    let memory = match &a.memory {
        Some(m) => Some(
            spec_gen::parse_size(m)
                .ok_or_else(|| anyhow::anyhow!("invalid memory size {m:?}, e.g. 64m"))?,
        ),
        None => None,
    };
    let (store, db) = super::open(root)?;
    let image = match db.image_by_ref(&a.image)? {
        Some(i) => i,
        None => {
            let reference = Reference::parse(&a.image)?;
            eprintln!("Unable to find image '{}' locally", reference.familiar());
            let pulled = super::pull::fetch(
                &store,
                &db,
                &reference,
                Platform::host(),
                a.tls_verify,
                3,
                &PullProgress::new(true),
            )?;
            eprintln!("Digest: {}", pulled.manifest_digest);
            eprintln!(
                "Status: Downloaded newer image for {}",
                reference.familiar()
            );
            db.image(&pulled.image_id)?
                .ok_or_else(|| anyhow::anyhow!("image {} vanished after pull", pulled.image_id))?
        }
    };
    let opts = RunOptions {
        spec: spec_gen::Options {
            env: a.env,
            workdir: a.workdir,
            user: a.user,
            entrypoint: a.entrypoint,
            cmd: a.cmd,
            memory,
            pids_limit: a.pids_limit,
            network,
        },
        runtime_root: None,
    };
    Ok(run_image(&store, &image, &opts)?)
}
