//! `berth logs`: a container's json-file log (`-f`, `--tail`, `-t`,
//! `--since`, `--until`), stdout entries to our stdout, stderr to stderr.

use berth_engine::container::logs::{parse_since, Entry, ReadOptions, Stream};
use berth_engine::Engine;
use std::io::Write;
use std::path::Path;

#[derive(clap::Args)]
pub struct Args {
    /// Follow the output until the container stops.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Number of lines from the end, or `all`.
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Prefix each line with its time.
    #[arg(short = 't', long)]
    pub timestamps: bool,
    /// Only lines since a time (RFC 3339, unix seconds, or `10m` ago).
    #[arg(long)]
    pub since: Option<String>,
    /// Only lines before a time (same forms).
    #[arg(long)]
    pub until: Option<String>,
    pub container: String,
}

fn now_nanos() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

fn printer(timestamps: bool) -> impl FnMut(&Entry) -> std::io::Result<()> {
    move |e: &Entry| {
        let line = if timestamps {
            format!("{} {}", e.time, e.log)
        } else {
            e.log.clone()
        };
        match e.stream {
            Stream::Stdout => {
                let mut o = std::io::stdout().lock();
                o.write_all(line.as_bytes())?;
                o.flush()
            }
            Stream::Stderr => std::io::stderr().lock().write_all(line.as_bytes()),
        }
    }
}

pub fn run(root: &Path, a: Args) -> anyhow::Result<i32> {
    let eng = Engine::open(root)?;
    let rec = eng.lookup(&a.container)?;
    let tail = match a.tail.as_str() {
        "all" | "-1" => None,
        n => Some(
            n.parse::<usize>()
                .map_err(|_| anyhow::anyhow!("invalid --tail {n:?}: a number or all"))?,
        ),
    };
    let time = |s: &Option<String>, what: &str| -> anyhow::Result<Option<i128>> {
        s.as_deref()
            .map(|v| {
                parse_since(v, now_nanos()).ok_or_else(|| {
                    anyhow::anyhow!(
                        "invalid {what} {v:?}: a time, unix seconds or a duration like 10m"
                    )
                })
            })
            .transpose()
    };
    let opts = ReadOptions {
        tail,
        since: time(&a.since, "--since")?,
        until: time(&a.until, "--until")?,
        follow: a.follow,
    };
    eng.read_logs(&rec, &opts, &mut printer(a.timestamps))?;
    Ok(0)
}
