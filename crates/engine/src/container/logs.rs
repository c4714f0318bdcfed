//! Container logs in Docker's json-file format: one JSON object per line,
//! `{"log":"text\n","stream":"stdout","time":"RFC 3339 nanos"}`, in
//! `<id>-json.log`, rotated by size into `.1`, `.2`, ... (`--log-opt
//! max-size`, `max-file`). berth-monitor (crates/monitor) writes them; this
//! reader gives `berth logs` `--tail`, `--since`, `--until`, `-t` and `-f`.

use super::{Engine, Result};
use crate::db::{Record, Status};
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// One log entry as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub stream: Stream,
    pub log: String,
    pub time: String,
    /// `time` as nanoseconds since the epoch.
    pub nanos: i128,
}

#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// Only the last N entries (before following).
    pub tail: Option<usize>,
    /// Only entries at or after / before these times (ns since the epoch).
    pub since: Option<i128>,
    pub until: Option<i128>,
    pub follow: bool,
}

fn parse_line(line: &str) -> Option<Entry> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let stream = match v["stream"].as_str()? {
        "stderr" => Stream::Stderr,
        _ => Stream::Stdout,
    };
    let time = v["time"].as_str().unwrap_or("").to_string();
    Some(Entry {
        stream,
        log: v["log"].as_str()?.to_string(),
        nanos: parse_time(&time).unwrap_or(0),
        time,
    })
}

/// The log files oldest first: `.N`, ..., `.1`, then the current one.
fn files(path: &Path) -> Vec<PathBuf> {
    let mut rotated: Vec<(u32, PathBuf)> = Vec::new();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    if let Some(dir) = path.parent() {
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                let f = e.file_name().to_string_lossy().to_string();
                if let Some(n) = f
                    .strip_prefix(&name)
                    .and_then(|s| s.strip_prefix('.'))
                    .and_then(|s| s.parse::<u32>().ok())
                {
                    rotated.push((n, e.path()));
                }
            }
        }
    }
    rotated.sort_by_key(|r| std::cmp::Reverse(r.0));
    let mut out: Vec<PathBuf> = rotated.into_iter().map(|(_, p)| p).collect();
    out.push(path.to_path_buf());
    out
}

impl Engine {
    /// Calls `out` for each entry of `rec`'s log; with `follow`, keeps
    /// reading until the container is no longer running.
    pub fn read_logs(
        &self,
        rec: &Record,
        opts: &ReadOptions,
        out: &mut dyn FnMut(&Entry) -> std::io::Result<()>,
    ) -> Result<()> {
        let path = self.log_path(&rec.id);
        let keep = |e: &Entry| {
            opts.since.is_none_or(|s| e.nanos >= s) && opts.until.is_none_or(|u| e.nanos <= u)
        };
        let mut entries = Vec::new();
        for f in files(&path) {
            let Ok(file) = File::open(&f) else { continue };
            for line in BufReader::new(file).lines().map_while(|l| l.ok()) {
                if let Some(e) = parse_line(&line) {
                    if keep(&e) {
                        entries.push(e);
                    }
                }
            }
        }
        let skip = opts
            .tail
            .map(|t| entries.len().saturating_sub(t))
            .unwrap_or(0);
        let emit = |e: &Entry, out: &mut dyn FnMut(&Entry) -> std::io::Result<()>| {
            out(e).map_err(|source| super::Error::Io {
                path: PathBuf::from("stdout"),
                source,
            })
        };
        for e in &entries[skip..] {
            emit(e, out)?;
        }
        if !opts.follow {
            return Ok(());
        }
        // Follow the current file from where it ends now.
        let file = File::open(&path).ok();
        let pos = file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map(|m| m.len())
            .unwrap_or(0);
        self.follow(rec, file, pos, &keep, out)
    }

    /// Emits the entries of the log from `pos` of `file` on, following
    /// rotation, until the container is no longer running. The file stays
    /// open: a `--rm` container's dir may be deleted under us, and what was
    /// written before that must still come out.
    pub fn follow(
        &self,
        rec: &Record,
        mut file: Option<File>,
        mut pos: u64,
        keep: &dyn Fn(&Entry) -> bool,
        out: &mut dyn FnMut(&Entry) -> std::io::Result<()>,
    ) -> Result<()> {
        use std::os::unix::fs::MetadataExt;
        let path = self.log_path(&rec.id);
        let emit = |e: &Entry, out: &mut dyn FnMut(&Entry) -> std::io::Result<()>| {
            out(e).map_err(|source| super::Error::Io {
                path: PathBuf::from("stdout"),
                source,
            })
        };
        let mut pending = String::new();
        loop {
            let running = match self.db.get(&rec.id)? {
                Some(r) => matches!(self.refresh(r)?.status, Status::Running | Status::Starting),
                None => false,
            };
            // Everything up to the end of the open file.
            if let Some(f) = file.as_mut() {
                if f.seek(SeekFrom::Start(pos)).is_ok() {
                    let mut chunk = String::new();
                    use std::io::Read;
                    pos += f.read_to_string(&mut chunk).unwrap_or(0) as u64;
                    pending.push_str(&chunk);
                    while let Some(nl) = pending.find('\n') {
                        let line: String = pending.drain(..=nl).collect();
                        if let Some(e) = parse_line(line.trim_end()) {
                            if keep(&e) {
                                emit(&e, out)?;
                            }
                        }
                    }
                }
            }
            // Rotated, truncated or created since: read the new file next.
            let ino = file
                .as_ref()
                .and_then(|f| f.metadata().ok())
                .map(|m| m.ino());
            if let Ok(m) = std::fs::metadata(&path) {
                if Some(m.ino()) != ino || m.len() < pos {
                    file = File::open(&path).ok();
                    pos = 0;
                    pending.clear();
                    continue;
                }
            }
            if !running {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// RFC 3339 (`2026-11-29T16:22:21.123Z`, `+01:00` offsets) to nanoseconds
/// since the epoch.
pub fn parse_time(s: &str) -> Option<i128> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || (b[10] != b'T' && b[10] != b't') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut i = 19;
    let mut nanos: i128 = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let frac = &s[start..i];
        let digits = frac.len().min(9);
        nanos = frac[..digits].parse::<i128>().ok()? * 10i128.pow((9 - digits) as u32);
    }
    let offset = match b.get(i)? {
        b'Z' | b'z' => 0,
        b'+' | b'-' => {
            let sign = if b[i] == b'+' { 1 } else { -1 };
            let oh = num(i + 1..i + 3)?;
            let om = num(i + 4..i + 6)?;
            sign * (oh * 3600 + om * 60)
        }
        _ => return None,
    };
    // Howard Hinnant's days_from_civil.
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset;
    Some(secs as i128 * 1_000_000_000 + nanos)
}

/// `--since`/`--until`: RFC 3339, a unix time (`1700000000[.5]`) or a
/// duration before now (`10m`, `1h30m`, `45s`).
pub fn parse_since(s: &str, now_nanos: i128) -> Option<i128> {
    if let Some(t) = parse_time(s) {
        return Some(t);
    }
    if let Ok(f) = s.parse::<f64>() {
        return Some((f * 1e9) as i128);
    }
    let mut total: i128 = 0;
    let mut num = String::new();
    let mut any = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let unit: i128 = match c {
            'h' => 3_600_000_000_000,
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                1_000_000
            }
            'm' => 60_000_000_000,
            's' => 1_000_000_000,
            _ => return None,
        };
        let n: f64 = num.parse().ok()?;
        total += (n * unit as f64) as i128;
        num.clear();
        any = true;
    }
    if !num.is_empty() || !any {
        return None;
    }
    Some(now_nanos - total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_time("1970-01-01T00:00:01Z"), Some(1_000_000_000));
        assert_eq!(
            parse_time("2026-11-29T16:22:21.5Z"),
            Some(1_795_969_341_500_000_000)
        );
        assert_eq!(
            parse_time("2026-11-29T17:22:21.5+01:00"),
            parse_time("2026-11-29T16:22:21.500000000Z")
        );
        assert_eq!(parse_time("yesterday"), None);
        let now = 10_000_000_000_000;
        assert_eq!(parse_since("10s", now), Some(now - 10_000_000_000));
        assert_eq!(parse_since("1m30s", now), Some(now - 90_000_000_000));
        assert_eq!(parse_since("5", now), Some(5_000_000_000));
        assert_eq!(parse_since("x1", now), None);
        assert_eq!(parse_since("10", now), Some(10_000_000_000));
    }
}
