//! `berth update`: Docker's `update` for resource limits and the restart
//! policy of existing containers (running ones get the limits at once).

use super::run::{size_flag, ENGINE_ERROR};
use berth_engine::container::restart::RestartPolicy;
use berth_engine::container::update::Update;
use berth_engine::Engine;
use std::io::Write;
use std::path::Path;

#[derive(clap::Args)]
pub struct Args {
    /// Memory limit (`64m`, `1g`).
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    /// Memory plus swap limit (`-1`: unlimited swap).
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Number of CPUs (`0.5`, `2`).
    #[arg(long, allow_hyphen_values = true)]
    pub cpus: Option<String>,
    /// CPU shares (relative weight).
    #[arg(long = "cpu-shares", short = 'c')]
    pub cpu_shares: Option<u64>,
    /// CPUs in which to allow execution (`0-3`, `0,1`).
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// Tune the container's pids limit (`-1` for unlimited).
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Restart policy: no, always, unless-stopped, on-failure[:max-retries].
    #[arg(long)]
    pub restart: Option<String>,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// The flags, checked: an error names the bad value.
fn parse(a: &Args) -> anyhow::Result<Update> {
    let memory = size_flag(&a.memory, "memory size")?;
    if memory == Some(-1) {
        anyhow::bail!("invalid memory size \"-1\": a size like 64m");
    }
    // Range checks (minimum memory, swap above memory, cpus > 0) are the
    // engine's, as at create.
    let cpus = match &a.cpus {
        Some(c) => Some(
            c.parse::<f64>()
                .map_err(|_| anyhow::anyhow!("invalid argument {c:?} for --cpus"))?,
        ),
        None => None,
    };
    let u = Update {
        memory,
        memory_swap: size_flag(&a.memory_swap, "memory-swap")?,
        cpus,
        cpu_shares: a.cpu_shares,
        cpuset_cpus: a.cpuset_cpus.clone(),
        pids_limit: a.pids_limit,
        restart: a.restart.as_deref().map(RestartPolicy::parse).transpose()?,
    };
    if u.is_empty() {
        anyhow::bail!("you must provide one or more flags when using this command");
    }
    Ok(u)
}

pub fn run(root: &Path, a: Args) -> anyhow::Result<i32> {
    let u = match parse(&a) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("berth: {e:#}");
            return Ok(ENGINE_ERROR);
        }
    };
    let eng = Engine::open(root)?;
    let mut code = 0;
    for n in &a.containers {
        match eng.lookup(n).map_err(anyhow::Error::from).and_then(|rec| {
            eng.update(&rec, &u)
                .map_err(|e| anyhow::anyhow!("cannot update container {n}: {e}"))
        }) {
            Ok(()) => {
                println!("{n}");
                let _ = std::io::stdout().flush();
            }
            Err(e) => {
                eprintln!("berth: {e:#}");
                code = 1;
            }
        }
    }
    Ok(code)
}
