//! `berth exec`: run a command in a running container (`-d`, `-i`, `-t`,
//! `-e`, `-u`, `-w`); exits with its code (126/127 when it cannot run).

use berth_engine::container::exec::ExecRequest;
use berth_engine::Engine;
use std::path::Path;

#[derive(clap::Args)]
pub struct Args {
    /// Run in the background.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Keep STDIN open.
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY.
    #[arg(short = 't', long)]
    pub tty: bool,
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    pub container: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub cmd: Vec<String>,
}

pub fn run(root: &Path, a: Args) -> anyhow::Result<i32> {
    let r = (|| -> anyhow::Result<i32> {
        let eng = Engine::open(root)?;
        let rec = eng.lookup(&a.container)?;
        Ok(eng.exec(
            &rec,
            &ExecRequest {
                cmd: a.cmd,
                env: a.env,
                user: a.user,
                workdir: a.workdir,
                tty: a.tty,
                detach: a.detach,
            },
        )?)
    })();
    Ok(r.unwrap_or_else(|e| {
        eprintln!("berth: {e:#}");
        let code = super::run::error_code(&e);
        let msg = format!("{e:#}");
        // Docker: a user that does not resolve cannot execute.
        if msg.contains("unable to find user") || msg.contains("unable to find group") {
            return 126;
        }
        // Docker: 126/127 for the command, 1 for a bad container.
        if code == super::run::ENGINE_ERROR {
            1
        } else {
            code
        }
    }))
}
