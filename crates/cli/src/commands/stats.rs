//! `berth stats` (CPU, memory, block I/O and pids from cgroups, Docker's
//! table) and `berth top` (the container's processes, via ps).

use crate::output::{human_size, table};
use berth_engine::db::{Record, Status};
use berth_engine::Engine;
use std::path::Path;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct Args {
    /// Print one sample and exit.
    #[arg(long = "no-stream")]
    pub no_stream: bool,
    /// Show all containers (default: running ones).
    #[arg(short = 'a', long)]
    pub all: bool,
    /// `json`: one JSON object per line.
    #[arg(long)]
    pub format: Option<String>,
    /// Containers (default: all running).
    pub containers: Vec<String>,
}

#[derive(clap::Args)]
pub struct TopArgs {
    pub container: String,
    /// ps options (default -ef).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

/// Docker's binary sizes with 4 significant digits ("2.137MiB").
pub fn binary_size(n: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    let digits = if v >= 1000.0 {
        0
    } else if v >= 100.0 {
        1
    } else if v >= 10.0 {
        2
    } else {
        3
    };
    let s = format!("{v:.digits$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    format!("{s}{}", units[i])
}

fn rows(eng: &Engine, recs: &[Record], json: bool) -> anyhow::Result<Vec<Vec<String>>> {
    let t0 = Instant::now();
    let first: Vec<_> = recs.iter().map(|r| eng.stats(r).ok()).collect();
    std::thread::sleep(Duration::from_millis(500));
    let wall = t0.elapsed().as_nanos() as f64;
    let mut out = Vec::new();
    for (r, a) in recs.iter().zip(first) {
        let (Some(a), Ok(b)) = (a, eng.stats(r)) else {
            out.push(vec![
                r.id[..12].to_string(),
                r.name.clone(),
                "--".into(),
                "-- / --".into(),
                "--".into(),
                "--".into(),
                "--".into(),
                "--".into(),
            ]);
            continue;
        };
        let cpu = (b.cpu_ns.saturating_sub(a.cpu_ns)) as f64 / wall * 100.0;
        let mem = if b.mem_limit > 0 {
            b.mem_usage as f64 / b.mem_limit as f64 * 100.0
        } else {
            0.0
        };
        if json {
            println!(
                "{}",
                serde_json::json!({
                    "ID": &r.id[..12], "Name": r.name, "CPUPerc": format!("{cpu:.2}%"),
                    "MemUsage": format!("{} / {}", binary_size(b.mem_usage), binary_size(b.mem_limit)),
                    "MemPerc": format!("{mem:.2}%"), "NetIO": "0B / 0B",
                    "BlockIO": format!("{} / {}", human_size(b.blk_read), human_size(b.blk_write)),
                    "PIDs": b.pids.to_string(),
                })
            );
            continue;
        }
        out.push(vec![
            r.id[..12].to_string(),
            r.name.clone(),
            format!("{cpu:.2}%"),
            format!(
                "{} / {}",
                binary_size(b.mem_usage),
                binary_size(b.mem_limit)
            ),
            format!("{mem:.2}%"),
            "0B / 0B".into(),
            format!("{} / {}", human_size(b.blk_read), human_size(b.blk_write)),
            b.pids.to_string(),
        ]);
    }
    Ok(out)
}

pub fn run(root: &Path, a: Args) -> anyhow::Result<i32> {
    let eng = Engine::open(root)?;
    let json = match a.format.as_deref() {
        None => false,
        Some("json") => true,
        Some(f) => anyhow::bail!("unsupported --format {f:?}: only json"),
    };
    loop {
        let recs: Vec<Record> = if a.containers.is_empty() {
            eng.list()?
                .into_iter()
                .filter(|r| a.all || r.status == Status::Running)
                .collect()
        } else {
            a.containers
                .iter()
                .map(|c| eng.lookup(c))
                .collect::<Result<_, _>>()?
        };
        let mut t = vec![[
            "CONTAINER ID",
            "NAME",
            "CPU %",
            "MEM USAGE / LIMIT",
            "MEM %",
            "NET I/O",
            "BLOCK I/O",
            "PIDS",
        ]
        .map(String::from)
        .to_vec()];
        t.extend(rows(&eng, &recs, json)?);
        if !json {
            if !a.no_stream {
                // Docker redraws in place.
                print!("\x1b[2J\x1b[H");
            }
            print!("{}", table(&t));
        }
        if a.no_stream {
            return Ok(0);
        }
    }
}

pub fn top(root: &Path, a: TopArgs) -> anyhow::Result<i32> {
    let eng = Engine::open(root)?;
    let rec = eng.lookup(&a.container)?;
    print!("{}", eng.top(&rec, &a.ps_args)?);
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::binary_size;

    #[test]
    fn sizes() {
        assert_eq!(binary_size(0), "0B");
        assert_eq!(binary_size(67108864), "64MiB");
        assert_eq!(binary_size(2_240_000), "2.136MiB");
        assert_eq!(binary_size(1536), "1.5KiB");
    }
}
