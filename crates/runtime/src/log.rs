//! Minimal logging in runc's shape: `--log FILE` and `--log-format json|text`.
//! Engines (Podman's conmon, containerd's shim) read the last error from the
//! log file, so errors are always written there as well as to stderr.

use std::io::Write;
use std::sync::Mutex;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Format {
    Text,
    Json,
}

struct Sink {
    file: Option<std::fs::File>,
    format: Format,
    debug: bool,
}

static SINK: Mutex<Sink> = Mutex::new(Sink {
    file: None,
    format: Format::Text,
    debug: false,
});

pub fn init(path: Option<&std::path::Path>, format: Format, debug: bool) -> std::io::Result<()> {
    let file = match path {
        Some(p) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)?,
        ),
        None => None,
    };
    let mut s = SINK.lock().unwrap_or_else(|e| e.into_inner());
    s.file = file;
    s.format = format;
    s.debug = debug;
    Ok(())
}

fn emit(level: &str, msg: &str, to_stderr: bool) {
    let mut s = SINK.lock().unwrap_or_else(|e| e.into_inner());
    let time = crate::state::now_rfc3339();
    let line = match s.format {
        Format::Json => {
            serde_json::json!({"level": level, "msg": msg, "time": time}).to_string() + "\n"
        }
        Format::Text => format!("time=\"{time}\" level={level} msg={msg:?}\n"),
    };
    if let Some(f) = s.file.as_mut() {
        let _ = f.write_all(line.as_bytes());
    } else if to_stderr {
        let _ = std::io::stderr().write_all(line.as_bytes());
    }
}

pub fn error(msg: &str) {
    emit("error", msg, false);
}

pub fn warn(msg: &str) {
    emit("warning", msg, true);
}

pub fn debug(msg: &str) {
    let on = SINK.lock().map(|s| s.debug).unwrap_or(false);
    if on {
        emit("debug", msg, true);
    }
}
