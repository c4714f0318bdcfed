//! `stats` and `top`: resource use read from the container's cgroups (v1,
//! hybrid or v2), and its processes.

use super::{Engine, Error, Result};
use crate::db::{Record, Status};
use std::path::PathBuf;

/// One sample of a container's resource use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// CPU time used, ns.
    pub cpu_ns: u64,
    /// Memory in use, without the inactive page cache (as Docker shows it).
    pub mem_usage: u64,
    /// The memory limit; the host's memory when unlimited.
    pub mem_limit: u64,
    pub pids: u64,
    pub blk_read: u64,
    pub blk_write: u64,
}

fn read(dirs: &[PathBuf], file: &str) -> Option<String> {
    dirs.iter()
        .find_map(|d| std::fs::read_to_string(d.join(file)).ok())
}

fn num(s: Option<String>) -> Option<u64> {
    s.and_then(|v| v.trim().parse().ok())
}

/// `key value` lines: the value of `key`.
fn field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let mut w = l.split_whitespace();
        (w.next() == Some(key)).then(|| w.next()?.parse().ok())?
    })
}

fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| field(&m, "MemTotal:"))
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// Reads a sample from the cgroup dirs `dirs` (all controllers' dirs).
pub fn sample(dirs: &[PathBuf]) -> Stats {
    let host = host_memory();
    let cpu_ns = num(read(dirs, "cpuacct.usage"))
        .or_else(|| {
            read(dirs, "cpu.stat")
                .and_then(|s| field(&s, "usage_usec"))
                .map(|u| u * 1000)
        })
        .unwrap_or(0);
    let (usage, inactive, limit) = match num(read(dirs, "memory.usage_in_bytes")) {
        Some(u) => (
            u,
            read(dirs, "memory.stat").and_then(|s| field(&s, "total_inactive_file")),
            num(read(dirs, "memory.limit_in_bytes")),
        ),
        None => (
            num(read(dirs, "memory.current")).unwrap_or(0),
            read(dirs, "memory.stat").and_then(|s| field(&s, "inactive_file")),
            num(read(dirs, "memory.max")),
        ),
    };
    let mem_limit = match limit {
        Some(l) if l > 0 && l < host => l,
        _ => host,
    };
    let (mut blk_read, mut blk_write) = (0, 0);
    if let Some(t) = read(dirs, "blkio.throttle.io_service_bytes") {
        for l in t.lines() {
            let w: Vec<&str> = l.split_whitespace().collect();
            if w.len() == 3 {
                let n: u64 = w[2].parse().unwrap_or(0);
                match w[1] {
                    "Read" => blk_read += n,
                    "Write" => blk_write += n,
                    _ => {}
                }
            }
        }
    } else if let Some(t) = read(dirs, "io.stat") {
        for w in t.split_whitespace() {
            if let Some(v) = w.strip_prefix("rbytes=") {
                blk_read += v.parse::<u64>().unwrap_or(0);
            } else if let Some(v) = w.strip_prefix("wbytes=") {
                blk_write += v.parse::<u64>().unwrap_or(0);
            }
        }
    }
    Stats {
        cpu_ns,
        mem_usage: usage.saturating_sub(inactive.unwrap_or(0)),
        mem_limit,
        pids: num(read(dirs, "pids.current")).unwrap_or(0),
        blk_read,
        blk_write,
    }
}

impl Engine {
    fn cgroup_dirs(&self, rec: &Record) -> Result<Vec<PathBuf>> {
        if rec.status != Status::Running {
            return Err(Error::NotRunning(rec.name.clone()));
        }
        let m = self.cgroup(&rec.id).ok_or_else(|| Error::State {
            id: rec.id.clone(),
            what: "cannot find its cgroup".into(),
        })?;
        Ok(m.fs_paths())
    }

    /// One sample of a running container's resource use.
    pub fn stats(&self, rec: &Record) -> Result<Stats> {
        Ok(sample(&self.cgroup_dirs(rec)?))
    }

    /// `ps` output for the container's processes (`ps -ef` by default).
    pub fn top(&self, rec: &Record, ps_args: &[String]) -> Result<String> {
        if rec.status != Status::Running {
            return Err(Error::NotRunning(rec.name.clone()));
        }
        let args: Vec<String> = if ps_args.is_empty() {
            vec!["-ef".into()]
        } else {
            ps_args.to_vec()
        };
        if let Some(x) = self.external(&super::Config::parse(rec)?) {
            let out = std::process::Command::new(&x.bin)
                .arg("--root")
                .arg(&x.root)
                .arg("ps")
                .arg(&rec.id)
                .args(&args)
                .output()
                .map_err(super::io(&x.bin))?;
            if !out.status.success() {
                return Err(Error::Invalid(format!(
                    "{} ps: {}",
                    x.bin.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        Ok(berth_runtime::container::info::ps(
            &self.runtime,
            &rec.id,
            false,
            &args,
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn v1_and_v2_files() {
        let d = tempfile::tempdir().unwrap();
        let v1 = d.path().join("v1");
        std::fs::create_dir(&v1).unwrap();
        let w = |dir: &Path, f: &str, t: &str| std::fs::write(dir.join(f), t).unwrap();
        w(&v1, "cpuacct.usage", "5000\n");
        w(&v1, "memory.usage_in_bytes", "3000\n");
        w(&v1, "memory.stat", "cache 9\ntotal_inactive_file 1000\n");
        w(&v1, "memory.limit_in_bytes", "67108864\n");
        w(&v1, "pids.current", "3\n");
        w(
            &v1,
            "blkio.throttle.io_service_bytes",
            "8:0 Read 10\n8:0 Write 20\nTotal 30\n",
        );
        let s = sample(&[v1]);
        assert_eq!(
            (
                s.cpu_ns,
                s.mem_usage,
                s.mem_limit,
                s.pids,
                s.blk_read,
                s.blk_write
            ),
            (5000, 2000, 67108864, 3, 10, 20)
        );
        let v2 = d.path().join("v2");
        std::fs::create_dir(&v2).unwrap();
        w(&v2, "cpu.stat", "usage_usec 7\nuser_usec 5\n");
        w(&v2, "memory.current", "4096\n");
        w(&v2, "memory.stat", "anon 1\ninactive_file 96\n");
        w(&v2, "memory.max", "max\n");
        w(&v2, "io.stat", "8:0 rbytes=5 wbytes=6 rios=1\n");
        let s = sample(&[v2]);
        assert_eq!(
            (s.cpu_ns, s.mem_usage, s.blk_read, s.blk_write),
            (7000, 4000, 5, 6)
        );
        assert_eq!(s.mem_limit, host_memory());
    }
}
