//! Container lifecycle verbs: start, stop, kill, restart, rm, wait,
//! rename, container prune. Like Docker, each takes several containers,
//! prints each name as it succeeds and exits 1 when any failed.

use super::run::ENGINE_ERROR;
use berth_engine::container::restart::{is_restarting, RestartPolicy};
use berth_engine::db::Status;
use berth_engine::Engine;
use std::io::Write;
use std::path::Path;

#[derive(clap::Args)]
pub struct StartArgs {
    /// Attach: follow the output and exit with the container's code.
    #[arg(short = 'a', long)]
    pub attach: bool,
    /// Attach STDIN (accepted; detached containers read /dev/null for now).
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Start every stopped container (that matches the filters), as
    /// podman's `start --all`; for the boot unit of restart policies.
    #[arg(long, conflicts_with_all = ["attach", "containers"])]
    pub all: bool,
    /// With --all: `restart-policy=NAME` (repeatable; any of them matches).
    /// `unless-stopped` matches only containers the user did not stop.
    #[arg(long, requires = "all")]
    pub filter: Vec<String>,
    #[arg(required_unless_present = "all")]
    pub containers: Vec<String>,
}

#[derive(clap::Args)]
pub struct StopArgs {
    /// Seconds to wait before killing (default: the container's, else 10).
    #[arg(short = 't', long = "time", alias = "timeout")]
    pub time: Option<u32>,
    /// Signal to send instead of the container's stop signal.
    #[arg(short = 's', long)]
    pub signal: Option<String>,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(clap::Args)]
pub struct KillArgs {
    /// Signal to send (name or number).
    #[arg(short = 's', long, default_value = "KILL")]
    pub signal: String,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(clap::Args)]
pub struct RmArgs {
    /// Kill and remove a running container.
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Remove anonymous volumes too (there are none yet).
    #[arg(short = 'v', long)]
    pub volumes: bool,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(clap::Args)]
pub struct WaitArgs {
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(clap::Args)]
pub struct RenameArgs {
    pub container: String,
    pub new_name: String,
}

#[derive(clap::Args)]
pub struct PruneArgs {
    /// Do not prompt (berth never prompts).
    #[arg(short = 'f', long)]
    pub force: bool,
}

/// Runs `f` on each name; errors are printed, and make the exit code 1.
fn each(
    names: &[String],
    mut f: impl FnMut(&str) -> anyhow::Result<Option<String>>,
) -> anyhow::Result<i32> {
    let mut code = 0;
    for n in names {
        match f(n) {
            Ok(Some(line)) => {
                println!("{line}");
                let _ = std::io::stdout().flush();
            }
            Ok(None) => {}
            Err(e) => {
                eprintln!("berth: {e:#}");
                code = 1;
            }
        }
    }
    Ok(code)
}

/// The stopped containers `start --all --filter ...` starts, by name.
fn all_to_start(eng: &Engine, filters: &[String]) -> anyhow::Result<Vec<String>> {
    let mut policies = Vec::new();
    for f in filters {
        match f.split_once('=') {
            Some(("restart-policy", v)) => {
                let p = RestartPolicy::parse(v)?;
                policies.push(p.name());
            }
            _ => anyhow::bail!("invalid filter {f:?} (start --all takes restart-policy=NAME)"),
        }
    }
    Ok(eng
        .list()?
        .into_iter()
        .filter(|r| matches!(r.status, Status::Created | Status::Exited) && !is_restarting(r))
        .filter(|r| {
            let Ok(cfg) = berth_engine::Config::parse(r) else {
                return false;
            };
            let p = cfg.restart;
            policies.is_empty()
                || (policies.contains(&p.name())
                    && !(p == RestartPolicy::UnlessStopped && r.restarts.stopped_by_user))
        })
        .map(|r| r.name)
        .collect())
}

pub fn start(root: &Path, mut a: StartArgs) -> anyhow::Result<i32> {
    let eng = Engine::open(root)?;
    if a.all {
        a.containers = all_to_start(&eng, &a.filter)?;
    }
    if a.attach {
        if a.containers.len() != 1 {
            anyhow::bail!("you cannot start and attach multiple containers at once");
        }
        let rec = eng.lookup(&a.containers[0])?;
        if rec.status != Status::Running {
            eng.reset_restarts(&rec.id)?;
        }
        // Attached before the container starts: no output is missed.
        let (rec, sock) = match eng.start_and_attach(&rec) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("berth: {e}");
                return Ok(ENGINE_ERROR);
            }
        };
        let cfg = berth_engine::Config::parse(&rec)?;
        return super::attach::session(
            &eng,
            &rec,
            sock,
            a.interactive && cfg.interactive,
            cfg.spec.tty,
            super::attach::keys(None)?,
        );
    }
    each(&a.containers, |n| {
        let rec = eng.lookup(n)?;
        // A start by the user starts the count over (not of one running).
        if rec.status != Status::Running {
            eng.reset_restarts(&rec.id)?;
        }
        eng.start_detached(&rec)?;
        Ok(Some(n.to_string()))
    })
}

pub fn stop(root: &Path, a: StopArgs) -> anyhow::Result<i32> {
    let eng = Engine::open(root)?;
    if let Some(s) = &a.signal {
        berth_runtime::container::kill::parse_signal(s)?;
    }
    each(&a.containers, |n| {
        let rec = eng.lookup(n)?;
        match &a.signal {
            Some(s) if rec.status == Status::Running => {
                let sig = berth_runtime::container::kill::parse_signal(s)?;
                let _ = eng.kill(&rec, sig);
                let t = a
                    .time
                    .unwrap_or(berth_engine::container::lifecycle::STOP_TIMEOUT);
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(t.into());
                while std::time::Instant::now() < deadline
                    && berth_engine::container::pid_alive(rec.pid, rec.pid_start)
                {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                eng.stop(&rec, Some(0))?;
            }
            _ => {
                eng.stop(&rec, a.time)?;
            }
        }
        Ok(Some(n.to_string()))
    })
}

pub fn kill(root: &Path, a: KillArgs) -> anyhow::Result<i32> {
    let eng = Engine::open(root)?;
    let sig = berth_runtime::container::kill::parse_signal(&a.signal)?;
    each(&a.containers, |n| {
        let rec = eng.lookup(n)?;
        eng.kill_by_user(&rec, sig)
            .map_err(|e| anyhow::anyhow!("cannot kill container {n}: {e}"))?;
        Ok(Some(n.to_string()))
    })
}

pub fn restart(root: &Path, a: StopArgs) -> anyhow::Result<i32> {
    let eng = Engine::open(root)?;
    each(&a.containers, |n| {
        let rec = eng.lookup(n)?;
        let rec = eng.stop(&rec, a.time)?;
        eng.reset_restarts(&rec.id)?;
        eng.start_detached(&rec)?;
        Ok(Some(n.to_string()))
    })
}

pub fn rm(root: &Path, a: RmArgs) -> anyhow::Result<i32> {
    let eng = Engine::open(root)?;
    each(&a.containers, |n| {
        let rec = eng.lookup(n)?;
        eng.remove(&rec, a.force, a.volumes)?;
        Ok(Some(n.to_string()))
    })
}

pub fn wait(root: &Path, a: WaitArgs) -> anyhow::Result<i32> {
    let eng = Engine::open(root)?;
    each(&a.containers, |n| {
        let rec = eng.lookup(n)?;
        let done = eng.wait_exit(&rec, None)?;
        Ok(Some(done.exit_code.to_string()))
    })
}

pub fn rename(root: &Path, a: RenameArgs) -> anyhow::Result<i32> {
    let eng = Engine::open(root)?;
    let rec = eng.lookup(&a.container)?;
    let name = berth_engine::container::names::validate(&a.new_name).map_err(anyhow::Error::msg)?;
    eng.db.rename(&rec.id, &name)?;
    Ok(0)
}

/// Removes the stopped containers (and half-removed ones; not running,
/// being started, or restarting) and prints Docker's "Deleted Containers"
/// list; the bytes their writable layers held. `container prune` and
/// `system prune` both.
pub fn remove_stopped(eng: &Engine) -> anyhow::Result<u64> {
    let mut out = Vec::new();
    let mut reclaimed = 0;
    for rec in eng.list()? {
        let stopped = matches!(
            rec.status,
            Status::Created | Status::Exited | Status::Removing
        ) && !is_restarting(&rec);
        if !stopped {
            continue;
        }
        // One that was started (or restarted) since the listing is
        // skipped, not a reason to stop pruning.
        let size = eng.upper_size(&rec.id);
        match eng.remove(&rec, false, false) {
            Ok(()) => {
                reclaimed += size;
                out.push(rec.id);
            }
            Err(e) => eprintln!("berth: skipped container {}: {e}", rec.name),
        }
    }
    if !out.is_empty() {
        println!("Deleted Containers:");
        for id in &out {
            println!("{id}");
        }
        println!();
    }
    Ok(reclaimed)
}

pub fn prune(root: &Path, _a: PruneArgs) -> anyhow::Result<i32> {
    let eng = Engine::open(root)?;
    let reclaimed = remove_stopped(&eng)?;
    println!(
        "Total reclaimed space: {}",
        crate::output::human_size(reclaimed)
    );
    Ok(0)
}
