//! The json-file log writer berth-monitor and the attached `berth run`
//! share: Docker's format (`{"log":…,"stream":…,"time":…}` lines), lines
//! over 16 KiB in pieces, size rotation into `.1`, `.2`, … Only std, so
//! berth-monitor stays small (and builds without crates: see
//! crates/engine/build.rs).

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::Write;

/// A line longer than this is written in pieces, as Docker does.
const MAX_LINE: usize = 16 * 1024;

pub struct Log {
    path: OsString,
    file: Option<File>,
    size: u64,
    max_size: u64,
    max_file: u32,
    partial: [Vec<u8>; 2],
}

fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as i64;
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60,
        now.subsec_nanos()
    )
}

/// A JSON string literal of `bytes` (invalid UTF-8 becomes U+FFFD).
fn json_string(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl Log {
    pub fn open(path: OsString, max_size: u64, max_file: u32) -> Log {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .ok();
        let size = file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map(|m| m.len())
            .unwrap_or(0);
        Log {
            path,
            file,
            size,
            max_size,
            max_file: max_file.max(1),
            partial: [Vec::new(), Vec::new()],
        }
    }

    pub fn write(&mut self, stream: usize, data: &[u8]) {
        let mut buf = std::mem::take(&mut self.partial[stream]);
        buf.extend_from_slice(data);
        let mut start = 0;
        while let Some(nl) = buf[start..].iter().position(|&b| b == b'\n') {
            self.entry(stream, &buf[start..start + nl + 1]);
            start += nl + 1;
        }
        while buf.len() - start >= MAX_LINE {
            self.entry(stream, &buf[start..start + MAX_LINE]);
            start += MAX_LINE;
        }
        buf.drain(..start);
        self.partial[stream] = buf;
    }

    pub fn close(&mut self) {
        for s in 0..2 {
            let rest = std::mem::take(&mut self.partial[s]);
            if !rest.is_empty() {
                self.entry(s, &rest);
            }
        }
    }

    fn entry(&mut self, stream: usize, line: &[u8]) {
        let name = if stream == 0 { "stdout" } else { "stderr" };
        let text = format!(
            "{{\"log\":{},\"stream\":\"{name}\",\"time\":\"{}\"}}\n",
            json_string(line),
            now_rfc3339()
        );
        if self.max_size > 0 && self.size > 0 && self.size + text.len() as u64 > self.max_size {
            self.rotate();
        }
        // A full disk loses log lines, never the container.
        if let Some(f) = &mut self.file {
            if f.write_all(text.as_bytes()).is_ok() {
                self.size += text.len() as u64;
            }
        }
    }

    fn rotate(&mut self) {
        let name = |n: u32| {
            let mut p = self.path.clone();
            p.push(format!(".{n}"));
            p
        };
        if self.max_file > 1 {
            for n in (1..self.max_file - 1).rev() {
                let _ = std::fs::rename(name(n), name(n + 1));
            }
            let _ = std::fs::rename(&self.path, name(1));
            self.file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .ok();
        } else if let Some(f) = &self.file {
            let _ = f.set_len(0);
        }
        self.size = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_escapes() {
        assert_eq!(json_string(b"a\"b\\c\n\x01"), "\"a\\\"b\\\\c\\n\\u0001\"");
        assert_eq!(json_string(b"\xff"), "\"\u{fffd}\"");
    }

    #[test]
    fn lines_partials_and_rotation() {
        let dir = std::env::temp_dir().join(format!("berth-monitor-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("c-json.log");
        let mut w = Log::open(p.clone().into(), 300, 3);
        w.write(0, b"hello\nwor");
        w.write(1, b"oops\n");
        w.write(0, b"ld\n");
        w.close();
        let text = std::fs::read_to_string(&p).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with(r#"{"log":"hello\n","stream":"stdout","time":""#));
        assert!(lines[1].contains(r#""log":"oops\n","stream":"stderr""#));
        assert!(lines[2].starts_with(r#"{"log":"world\n""#));
        for i in 0..20 {
            w.write(0, format!("line {i}\n").as_bytes());
        }
        let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
        files.sort_by_key(|e| e.file_name());
        assert_eq!(files.len(), 3, "{files:?}");
        for f in &files {
            assert!(f.metadata().unwrap().len() <= 300);
        }
        assert!(std::fs::read_to_string(&p).unwrap().contains("line 19"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn time_shape() {
        let t = now_rfc3339();
        assert_eq!(t.len(), 30, "{t}");
        assert!(t.ends_with('Z') && t.as_bytes()[10] == b'T');
    }
}
