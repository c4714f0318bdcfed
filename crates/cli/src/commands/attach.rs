//! `berth attach`: the terminal (or stdin/stdout/stderr) of a running
//! container, through its monitor; the detach keys leave it running.

use berth_engine::container::attach::{self, End, Options};
use berth_engine::db::Record;
use berth_engine::{Config, Engine};
use std::os::unix::net::UnixStream;
use std::path::Path;

#[derive(clap::Args)]
pub struct Args {
    /// Do not attach stdin.
    #[arg(long = "no-stdin")]
    pub no_stdin: bool,
    /// Keys that detach (default ctrl-p,ctrl-q).
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    pub container: String,
}

pub fn keys(s: Option<&str>) -> anyhow::Result<Vec<u8>> {
    Ok(match s {
        Some(k) => attach::parse_detach_keys(k)?,
        None => attach::DEFAULT_DETACH_KEYS.to_vec(),
    })
}

/// One attach session; the container's exit code, or 0 when detached.
pub fn session(
    eng: &Engine,
    rec: &Record,
    sock: UnixStream,
    stdin: bool,
    tty: bool,
    detach_keys: Vec<u8>,
) -> anyhow::Result<i32> {
    let end = attach::attach(
        sock,
        &Options {
            stdin,
            tty,
            detach_keys,
        },
        &|sig| {
            let _ = eng.kill(rec, sig);
        },
    )?;
    match end {
        End::Detached => {
            if tty {
                eprintln!("\r");
            }
            Ok(0)
        }
        End::Exited => {
            let code = eng.wait_exit(rec, None)?.exit_code;
            if berth_engine::Config::parse(rec).is_ok_and(|c| c.auto_remove) {
                eng.wait_removed(&rec.id, std::time::Duration::from_secs(10))?;
            }
            Ok(code)
        }
    }
}

pub fn run(root: &Path, a: Args) -> anyhow::Result<i32> {
    let eng = Engine::open(root)?;
    let rec = eng.lookup(&a.container)?;
    let cfg = Config::parse(&rec)?;
    let sock = eng.attach_socket(&rec)?;
    let keys = keys(a.detach_keys.as_deref())?;
    session(
        &eng,
        &rec,
        sock,
        cfg.interactive && !a.no_stdin,
        cfg.spec.tty,
        keys,
    )
}
