//! `berth system df` (space used by images, containers and volumes) and
//! `berth system prune` (stopped containers, unused images, with
//! `--volumes` unused volumes).

use crate::output::{human_size, table};
use berth_engine::container::dir_size;
use berth_engine::db::Status;
use berth_engine::Engine;
use std::collections::HashSet;
use std::io::BufRead;
use std::path::Path;

#[derive(clap::Subcommand)]
pub enum Cmd {
    /// Disk space used by images, containers and volumes.
    Df,
    /// Remove stopped containers and unused images (and volumes).
    Prune {
        /// All unused images, not only dangling ones.
        #[arg(short, long)]
        all: bool,
        /// Unused volumes too.
        #[arg(long)]
        volumes: bool,
        /// Do not prompt for confirmation.
        #[arg(short, long)]
        force: bool,
    },
    /// Remove everything in the store: containers, networks (their bridges
    /// and firewall table), volumes and images.
    Reset {
        /// Do not prompt for confirmation.
        #[arg(short, long)]
        force: bool,
    },
}

fn pct(part: u64, total: u64) -> String {
    format!("{}%", (part * 100).checked_div(total).unwrap_or(0))
}

pub fn run(root: &Path, cmd: Cmd) -> anyhow::Result<i32> {
    match cmd {
        Cmd::Df => df(root),
        Cmd::Prune {
            all,
            volumes,
            force,
        } => prune(root, all, volumes, force),
        Cmd::Reset { force } => reset(root, force),
    }
}

fn reset(root: &Path, force: bool) -> anyhow::Result<i32> {
    if !force {
        eprint!(
            "WARNING! This will remove all containers, networks, volumes and images in {}.\n\
             Are you sure you want to continue? [y/N] ",
            root.display()
        );
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        if !matches!(line.trim(), "y" | "Y" | "yes") {
            return Ok(0);
        }
    }
    if !root.exists() {
        return Ok(0);
    }
    let eng = Engine::open(root)?;
    let mut code = 0;
    for c in eng.list()? {
        if let Err(e) = eng.remove(&c, true, true) {
            eprintln!("berth: remove container {}: {e}", c.name);
            code = 1;
        }
    }
    eng.reset_networks()?;
    drop(eng);
    if code == 0 {
        std::fs::remove_dir_all(root)
            .map_err(|e| anyhow::anyhow!("remove {}: {e}", root.display()))?;
    }
    Ok(code)
}

fn df(root: &Path) -> anyhow::Result<i32> {
    let eng = Engine::open(root)?;
    let containers = eng.list()?;
    let used: HashSet<String> = containers.iter().map(|c| c.image_id.clone()).collect();
    let images = eng.images.list_images()?;
    // Layers shared by several images count once, as Docker counts them;
    // a layer any used image needs is not reclaimable.
    let mut needed = HashSet::new();
    let mut iactive = 0;
    for e in images.iter().filter(|e| used.contains(e.image.id.as_str())) {
        iactive += 1;
        needed.extend(e.image.layers.iter().map(|l| l.blob_digest.clone()));
    }
    let mut seen = HashSet::new();
    let (mut isize, mut ireclaim) = (0u64, 0u64);
    for l in images.iter().flat_map(|e| e.image.layers.iter()) {
        if seen.insert(l.blob_digest.clone()) {
            isize += l.size;
            if !needed.contains(&l.blob_digest) {
                ireclaim += l.size;
            }
        }
    }
    let (mut csize, mut creclaim, mut cactive) = (0u64, 0u64, 0);
    for c in &containers {
        let s = eng.upper_size(&c.id);
        csize += s;
        if c.status == Status::Running {
            cactive += 1;
        } else {
            creclaim += s;
        }
    }
    let vols = eng.volume_list()?;
    let (mut vsize, mut vreclaim, mut vactive) = (0u64, 0u64, 0);
    for v in &vols {
        let s = dir_size(&v.mountpoint);
        vsize += s;
        if eng.volume_users(&v.name)?.is_empty() {
            vreclaim += s;
        } else {
            vactive += 1;
        }
    }
    let row = |t: &str, total: usize, active: usize, size: u64, rec: u64| {
        vec![
            t.to_string(),
            total.to_string(),
            active.to_string(),
            human_size(size),
            format!("{} ({})", human_size(rec), pct(rec, size)),
        ]
    };
    print!(
        "{}",
        table(&[
            ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
                .map(String::from)
                .to_vec(),
            row("Images", images.len(), iactive, isize, ireclaim),
            row("Containers", containers.len(), cactive, csize, creclaim),
            row("Local Volumes", vols.len(), vactive, vsize, vreclaim),
        ])
    );
    Ok(0)
}

fn prune(root: &Path, all: bool, volumes: bool, force: bool) -> anyhow::Result<i32> {
    if !force {
        eprintln!("WARNING! This will remove:");
        eprintln!("  - all stopped containers");
        if volumes {
            eprintln!("  - all volumes not used by at least one container");
        }
        eprintln!("  - all {} images", if all { "unused" } else { "dangling" });
        eprint!("Are you sure you want to continue? [y/N] ");
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        if !matches!(line.trim(), "y" | "Y" | "yes") {
            return Ok(0);
        }
    }
    let eng = Engine::open(root)?;
    let mut reclaimed = super::container::remove_stopped(&eng)?;
    if volumes {
        let mut gone = Vec::new();
        for v in eng.volume_list()? {
            if eng.volume_users(&v.name)?.is_empty() {
                reclaimed += dir_size(&v.mountpoint);
                eng.volume_remove(&v.name, false)?;
                gone.push(v.name);
            }
        }
        if !gone.is_empty() {
            println!("Deleted Volumes:");
            for n in &gone {
                println!("{n}");
            }
            println!();
        }
    }
    drop(eng);
    let (lines, freed) = super::prune::prune_images(root, all)?;
    if !lines.is_empty() {
        println!("Deleted Images:");
        for l in &lines {
            println!("{l}");
        }
        println!();
    }
    reclaimed += freed;
    println!("Total reclaimed space: {}", human_size(reclaimed));
    Ok(0)
}
