//! OCI hooks: a program run with the container state on stdin, optional
//! env and a timeout in seconds.

use oci_spec::runtime::Hook;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{stage} hook {path}: {source}")]
    Spawn {
        stage: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("{stage} hook {path}: exited with {status}{stderr}")]
    Failed {
        stage: &'static str,
        path: String,
        status: String,
        stderr: String,
    },
    #[error("{stage} hook {path}: timed out after {secs}s")]
    Timeout {
        stage: &'static str,
        path: String,
        secs: i64,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

/// Run the hooks of one stage in order; the first failure stops the rest.
pub fn run_all(stage: &'static str, hooks: &[Hook], state: &str) -> Result<()> {
    for h in hooks {
        run(stage, h, state)?;
    }
    Ok(())
}

pub fn run(stage: &'static str, h: &Hook, state: &str) -> Result<()> {
    let path = h.path().display().to_string();
    let mut cmd = Command::new(h.path());
    let args = h.args().clone().unwrap_or_default();
    if let Some((first, rest)) = args.split_first() {
        cmd.arg0(first);
        cmd.args(rest);
    }
    cmd.env_clear();
    for e in h.env().iter().flatten() {
        if let Some((k, v)) = e.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|source| Error::Spawn {
        stage,
        path: path.clone(),
        source,
    })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin must not fail us: ignore EPIPE.
        let _ = stdin.write_all(state.as_bytes());
    }
    let mut stderr = child.stderr.take();
    let deadline = h
        .timeout()
        .filter(|t| *t > 0)
        .map(|t| Instant::now() + Duration::from_secs(t as u64));
    let mut nap = Duration::from_micros(200);
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) => {}
            Err(source) => {
                return Err(Error::Spawn {
                    stage,
                    path,
                    source,
                })
            }
        }
        if let Some(d) = deadline {
            if Instant::now() >= d {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::Timeout {
                    stage,
                    path,
                    secs: h.timeout().unwrap_or(0),
                });
            }
        }
        std::thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(20));
    };
    if !status.success() {
        let mut text = String::new();
        if let Some(e) = stderr.as_mut() {
            use std::io::Read;
            let _ = e.take(4096).read_to_string(&mut text);
        }
        let text = text.trim();
        return Err(Error::Failed {
            stage,
            path,
            status: status.to_string(),
            stderr: if text.is_empty() {
                String::new()
            } else {
                format!(": {text}")
            },
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(json: &str) -> Hook {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn state_on_stdin_args_env() {
        let t = tempfile::tempdir().unwrap();
        let out = t.path().join("out");
        let h = hook(&format!(
            r#"{{"path":"/bin/sh","args":["sh","-c","cat > {} ; echo \"$1 $FOO\" >> {}","x","arg1"],"env":["FOO=bar"]}}"#,
            out.display(),
            out.display()
        ));
        run("prestart", &h, "{\"id\":\"c\"}").unwrap();
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "{\"id\":\"c\"}arg1 bar\n"
        );
    }

    #[test]
    fn failure_and_timeout() {
        let h = hook(r#"{"path":"/bin/sh","args":["sh","-c","echo nope >&2; exit 3"]}"#);
        let e = run("poststart", &h, "{}").unwrap_err().to_string();
        assert!(e.contains("nope") && e.contains("3"), "{e}");
        let h = hook(r#"{"path":"/bin/sh","args":["sh","-c","sleep 5"],"timeout":1}"#);
        let t0 = Instant::now();
        assert!(matches!(
            run("prestart", &h, "{}"),
            Err(Error::Timeout { .. })
        ));
        assert!(t0.elapsed() < Duration::from_secs(4));
    }
}
