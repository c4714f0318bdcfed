//! Pull progress: one line per layer event when not on a terminal (Docker's
//! plain output), indicatif bars on a terminal, nothing with -q.

use berth_image::digest::Digest;
use berth_image::pull::{Event, Progress};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;

pub struct PullProgress {
    quiet: bool,
    bars: Option<(MultiProgress, Mutex<HashMap<String, ProgressBar>>)>,
}

impl PullProgress {
    pub fn new(quiet: bool) -> PullProgress {
        let bars = (!quiet && std::io::stdout().is_terminal())
            .then(|| (MultiProgress::new(), Mutex::new(HashMap::new())));
        PullProgress { quiet, bars }
    }

    pub fn finish(&self) {
        if let Some((_, bars)) = &self.bars {
            for b in bars
                .lock()
                .map(|m| m.values().cloned().collect::<Vec<_>>())
                .unwrap_or_default()
            {
                b.finish();
            }
        }
    }
}

fn short(d: &Digest) -> String {
    d.hex().chars().take(12).collect()
}

impl Progress for PullProgress {
    fn event(&self, layer: &Digest, what: Event) {
        if self.quiet {
            return;
        }
        let id = short(layer);
        let Some((multi, bars)) = &self.bars else {
            let line = match what {
                Event::Exists => "Already exists",
                Event::Waiting => "Pulling fs layer",
                Event::Downloading(..) => return,
                Event::Verifying => "Verifying Checksum",
                Event::Extracting => "Extracting",
                Event::Done => "Pull complete",
            };
            println!("{id}: {line}");
            return;
        };
        let mut map = bars.lock().unwrap_or_else(|p| p.into_inner());
        let bar = map.entry(id.clone()).or_insert_with(|| {
            let b = multi.add(ProgressBar::new(0));
            b.set_style(
                ProgressStyle::with_template("{prefix}: {msg:<18} {bar:40} {bytes}/{total_bytes}")
                    .expect("template")
                    .progress_chars("=> "),
            );
            b.set_prefix(id.clone());
            b
        });
        match what {
            Event::Exists => bar.finish_with_message("Already exists"),
            Event::Waiting => bar.set_message("Waiting"),
            Event::Downloading(n, total) => {
                if let Some(t) = total {
                    bar.set_length(t);
                }
                bar.set_position(n);
                bar.set_message("Downloading");
            }
            Event::Verifying => bar.set_message("Verifying Checksum"),
            Event::Extracting => bar.set_message("Extracting"),
            Event::Done => bar.finish_with_message("Pull complete"),
        }
    }
}

/// Docker's table layout: columns padded to the widest cell, 3 spaces apart.
pub fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let mut w = vec![0usize; cols];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(c);
            } else {
                line.push_str(&format!("{c:<width$}   ", width = w[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Docker's sizes: decimal units, 3 significant digits ("4.26MB").
pub fn human_size(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < units.len() {
        v /= 1000.0;
        i += 1;
    }
    let s = if v >= 100.0 || i == 0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    };
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    format!("{s}{}", units[i])
}

/// "3 days ago" from an RFC 3339 time; "N/A" if it cannot be read.
pub fn since(rfc3339: &str) -> String {
    let Some(t) = parse_rfc3339(rfc3339) else {
        return "N/A".into();
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let d = (now - t).max(0);
    let (n, unit) = match d {
        0..=59 => return "Less than a minute ago".into(),
        60..=3599 => (d / 60, "minute"),
        3600..=86399 => (d / 3600, "hour"),
        86400..=1209599 => (d / 86400, "day"),
        1209600..=5183999 => (d / 604800, "week"),
        5184000..=63071999 => (d / 2592000, "month"),
        _ => (d / 31536000, "year"),
    };
    let n = n.max(1);
    if n == 1 {
        let article = if unit == "hour" { "An" } else { "A" };
        format!("{article} {unit} ago")
    } else {
        format!("{n} {unit}s ago")
    }
}

/// Seconds since the epoch of "YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)".
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    berth_engine::container::logs::parse_time(s).map(|n| n.div_euclid(1_000_000_000) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(4_260_000), "4.26MB");
        assert_eq!(human_size(12_345_678), "12.3MB");
        assert_eq!(human_size(123_456_789), "123MB");
        assert_eq!(human_size(2_000_000_000), "2GB");
    }

    #[test]
    fn times() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339("2000-02-29T00:00:00.5+01:00"),
            Some(951778800)
        );
        assert_eq!(parse_rfc3339("nope"), None);
        assert_eq!(since("garbage"), "N/A");
    }

    #[test]
    fn tables() {
        let t = table(&[
            vec!["A".into(), "BB".into()],
            vec!["ccc".into(), "d".into()],
        ]);
        assert_eq!(t, "A     BB\nccc   d\n");
    }
}

/// Docker's `--format` Go templates (see [`crate::template`]), after
/// Docker's `\t` and `\n` escapes, on one JSON value.
pub fn render(tpl: &str, v: &serde_json::Value) -> anyhow::Result<String> {
    let tpl = tpl.replace("\\t", "\t").replace("\\n", "\n");
    crate::template::render(&tpl, v)
}

#[cfg(test)]
mod template_tests {
    use super::render;
    use serde_json::json;

    #[test]
    fn fields_nesting_json_and_errors() {
        let v = json!({"Name": "web", "State": {"Status": "running", "Pid": 42}, "L": {"a": "b"}});
        assert_eq!(render("{{.Name}}", &v).unwrap(), "web");
        assert_eq!(
            render("{{ .State.Status }}\\t{{.State.Pid}}", &v).unwrap(),
            "running\t42"
        );
        assert_eq!(render("{{json .L}}", &v).unwrap(), r#"{"a":"b"}"#);
        assert!(render("{{.Nope}}", &v).is_err());
        assert!(render("{{.Name", &v).is_err());
        assert!(render("{{range .L}}", &v).is_err());
    }

    #[test]
    fn escapes_reach_string_literals_and_maps_print_as_go() {
        let v = json!({"Args": ["a", "b"], "L": {"b": 1, "a": [true, null]}});
        assert_eq!(render(r#"{{join .Args "\n"}}"#, &v).unwrap(), "a\nb");
        assert_eq!(render(r#"{{join .Args "\t"}}"#, &v).unwrap(), "a\tb");
        assert_eq!(
            render("{{.L}}|{{.Args}}", &v).unwrap(),
            "map[a:[true <nil>] b:1]|[a b]"
        );
    }
}
