//! `berth registry serve [--addr HOST:PORT] [--root DIR] [--config FILE]
//! [--tls-cert PEM --tls-key PEM] [--proxy-remote URL]`: the registry
//! server of `berth-registry-server`, in the foreground until SIGTERM or
//! SIGINT (then in-flight requests finish; unfinished uploads stay resumable).
//!
//! `berth registry gc [--root DIR] [--config FILE] [--dry-run] [--grace SECS]
//! [--upload-max-age SECS]`: removes blobs no manifest references (safe
//! while the server runs). With `[storage.s3]` in the config both work on
//! that bucket instead of `--root`.

use anyhow::Context;
use std::path::{Path, PathBuf};

/// Where the registry keeps its data when `--root` is not given.
pub const DEFAULT_ROOT: &str = "/var/lib/berth-registry";

#[derive(clap::Subcommand)]
pub enum Cmd {
    /// Serve an OCI distribution registry (https with --tls-cert/--tls-key
    /// or the config's tls_cert/tls_key, else plain http; auth from --config).
    Serve(ServeArgs),
    /// Remove blobs that no manifest of any repository references, and
    /// abandoned uploads (safe while the server runs).
    Gc(GcArgs),
}

#[derive(clap::Args)]
pub struct GcArgs {
    /// The server's TOML config: its `[storage.s3]` bucket is collected
    /// instead of --root.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// List what would be removed; remove nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Keep unreferenced blobs written or linked less than this many
    /// seconds ago (pushes in progress).
    #[arg(long, default_value_t = berth_registry_server::gc::DEFAULT_GRACE.as_secs())]
    pub grace: u64,
    /// Purge uploads idle for longer than this many seconds.
    #[arg(long, default_value_t = berth_registry_server::gc::DEFAULT_UPLOAD_MAX_AGE.as_secs())]
    pub upload_max_age: u64,
}

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:5000")]
    pub addr: String,
    /// TOML file: `auth = "none" | "htpasswd" | "token"`, `htpasswd = FILE`,
    /// a `[token]` table, `[[access]]` rules (repository, user, actions), and
    /// `[storage.s3]` (endpoint, bucket, region, access_key_id,
    /// secret_access_key, prefix) to keep the data in an S3 bucket.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// PEM certificate chain: serve https (overrides the config's tls_cert).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert (overrides the config's tls_key).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Be a pull-through cache of this registry (http(s)://HOST[:PORT]):
    /// serve what is stored, fetch (and verify, and store) what is not,
    /// refuse pushes. Overrides the config's [proxy] remote_url; upstream
    /// credentials go in the config's [proxy] username and password.
    #[arg(long, value_name = "URL")]
    pub proxy_remote: Option<String>,
}

/// `root`: the `--root` given on the command line, if any.
pub fn run(root: Option<&Path>, cmd: Cmd) -> anyhow::Result<i32> {
    match cmd {
        Cmd::Serve(a) => serve(root, a),
        Cmd::Gc(a) => gc(root, a),
    }
}

fn gc(root: Option<&Path>, a: GcArgs) -> anyhow::Result<i32> {
    use berth_registry_server::gc;
    let root = root.map_or_else(|| PathBuf::from(DEFAULT_ROOT), Path::to_path_buf);
    let cfg =
        berth_registry_server::load_config(a.config.as_deref()).context("berth registry gc")?;
    let opts = gc::GcOptions {
        dry_run: a.dry_run,
        grace: std::time::Duration::from_secs(a.grace),
        upload_max_age: std::time::Duration::from_secs(a.upload_max_age),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("start the async runtime of berth registry gc")?;
    let r = rt.block_on(async {
        let storage = berth_registry_server::storage::open(cfg.storage.s3.as_ref(), &root)
            .await
            .context("berth registry gc: open the storage")?;
        gc::collect(&*storage, &opts)
            .await
            .with_context(|| format!("berth registry gc of {}", storage.describe()))
    })?;
    let verb = if a.dry_run { "would remove" } else { "removed" };
    for (d, size) in &r.removed {
        println!("{verb} blob {d} ({size} bytes)");
    }
    for id in &r.uploads_purged {
        println!("{verb} upload {id}");
    }
    for d in &r.kept_young {
        println!(
            "kept young blob {d} (within the {} s grace period)",
            a.grace
        );
    }
    println!(
        "{verb} {} blob(s), {} bytes; {} upload(s)",
        r.removed.len(),
        r.bytes_freed(),
        r.uploads_purged.len()
    );
    Ok(0)
}

fn serve(root: Option<&Path>, a: ServeArgs) -> anyhow::Result<i32> {
    let root = root.map_or_else(|| PathBuf::from(DEFAULT_ROOT), Path::to_path_buf);
    let mut cfg =
        berth_registry_server::load_config(a.config.as_deref()).context("berth registry serve")?;
    if a.tls_cert.is_some() {
        cfg.tls_cert = a.tls_cert.clone();
        cfg.tls_key = a.tls_key.clone();
    }
    if let Some(url) = a.proxy_remote.clone() {
        match cfg.proxy.as_mut() {
            Some(p) => p.remote_url = url,
            None => {
                cfg.proxy = Some(berth_registry_server::config::ProxyConfig {
                    remote_url: url,
                    username: None,
                    password: None,
                })
            }
        }
    }
    let auth = berth_registry_server::auth::Auth::from_config(&cfg, &root, &a.addr)
        .context("berth registry serve --config")?;
    let opts =
        berth_registry_server::ServeOptions::from_config(&cfg).context("berth registry serve")?;
    let scheme = cfg.scheme();
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
        let storage = berth_registry_server::storage::open(cfg.storage.s3.as_ref(), &root)
            .await
            .map_err(berth_registry_server::ServeError::from)?;
        eprintln!(
            "berth registry: serving {} on {scheme}://{}",
            storage.describe(),
            a.addr
        );
        if let Some(up) = &opts.proxy {
            eprintln!(
                "berth registry: pull-through cache of {} (pushes refused)",
                up.url()
            );
        }
        berth_registry_server::serve(&a.addr, storage, auth, opts, shutdown).await
    })
    .with_context(|| format!("berth registry serve --addr {}", a.addr))?;
    Ok(0)
}
