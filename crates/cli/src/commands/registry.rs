//! `berth registry serve [--addr HOST:PORT] [--root DIR] [--config FILE]`: the registry
//! server of `berth-registry-server`, in the foreground until SIGTERM or
//! SIGINT (then in-flight requests finish; unfinished uploads stay resumable).

use anyhow::Context;
use std::path::{Path, PathBuf};

/// Where the registry keeps its data when `--root` is not given.
pub const DEFAULT_ROOT: &str = "/var/lib/berth-registry";

#[derive(clap::Subcommand)]
pub enum Cmd {
    /// Serve an OCI distribution registry (plain HTTP; auth from --config).
    Serve(ServeArgs),
}

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:5000")]
    pub addr: String,
    /// TOML file: `auth = "none" | "htpasswd" | "token"`, `htpasswd = FILE`,
    /// a `[token]` table, and `[[access]]` rules (repository, user, actions).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// `root`: the `--root` given on the command line, if any.
pub fn run(root: Option<&Path>, cmd: Cmd) -> anyhow::Result<i32> {
    match cmd {
        Cmd::Serve(a) => serve(root, a),
    }
}

fn serve(root: Option<&Path>, a: ServeArgs) -> anyhow::Result<i32> {
    let root = root.map_or_else(|| PathBuf::from(DEFAULT_ROOT), Path::to_path_buf);
    let auth = berth_registry_server::load_auth(a.config.as_deref(), &root, &a.addr)
        .context("berth registry serve --config")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the registry's async runtime")?;
    rt.block_on(async {
        let shutdown = async {
            let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
            match term {
                Ok(mut term) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = tokio::signal::ctrl_c() => {}
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        };
        eprintln!(
            "berth registry: serving {} on http://{}",
            root.display(),
            a.addr
        );
        berth_registry_server::serve(&a.addr, &root, auth, shutdown).await
    })
    .with_context(|| format!("berth registry serve --addr {}", a.addr))?;
    Ok(0)
}
