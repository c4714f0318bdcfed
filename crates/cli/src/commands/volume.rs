//! `berth volume create/ls/inspect/rm/prune`.

use berth_engine::Engine;
use std::path::Path;

#[derive(clap::Subcommand)]
pub enum Cmd {
    /// Create a volume (a random name when none is given).
    Create { name: Option<String> },
    /// List volumes.
    #[command(alias = "list")]
    Ls {
        #[arg(short = 'q', long)]
        quiet: bool,
    },
    /// Docker-shaped JSON of volumes.
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove volumes.
    #[command(alias = "remove")]
    Rm {
        /// Remove even when a container uses it.
        #[arg(short = 'f', long)]
        force: bool,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove volumes no container uses.
    Prune {
        #[arg(short = 'f', long)]
        force: bool,
    },
}

pub fn run(root: &Path, cmd: Cmd) -> anyhow::Result<i32> {
    let eng = Engine::open(root)?;
    match cmd {
        Cmd::Create { name } => {
            let name = match name {
                Some(n) => n,
                None => berth_engine::container::new_id()?,
            };
            println!("{}", eng.volume_create(&name)?.name);
        }
        Cmd::Ls { quiet } => {
            let vols = eng.volume_list()?;
            if !quiet {
                println!("DRIVER    VOLUME NAME");
            }
            for v in vols {
                if quiet {
                    println!("{}", v.name);
                } else {
                    println!("local     {}", v.name);
                }
            }
        }
        Cmd::Inspect { names } => {
            let mut out = Vec::new();
            let mut code = 0;
            for n in &names {
                match eng.volume(n) {
                    Ok(v) => out.push(serde_json::json!({
                        "CreatedAt": v.created, "Driver": "local", "Labels": {},
                        "Mountpoint": v.mountpoint, "Name": v.name, "Options": {}, "Scope": "local",
                    })),
                    Err(e) => {
                        eprintln!("berth: {e}");
                        code = 1;
                    }
                }
            }
            println!("{}", serde_json::to_string_pretty(&out)?);
            return Ok(code);
        }
        Cmd::Rm { force, names } => {
            let mut code = 0;
            for n in &names {
                match eng.volume_remove(n, force) {
                    Ok(()) => println!("{n}"),
                    Err(e) => {
                        eprintln!("berth: {e}");
                        code = 1;
                    }
                }
            }
            return Ok(code);
        }
        Cmd::Prune { .. } => {
            let removed = eng.volume_prune()?;
            if !removed.is_empty() {
                println!("Deleted Volumes:");
                for n in &removed {
                    println!("{n}");
                }
                println!();
            }
        }
    }
    Ok(0)
}
