//! `--runtime PATH`: any runc-compatible runtime binary (runc, crun,
//! berth-runtime) driven through its command line instead of the
//! in-process library, with its state under `<root>/runtimes/<name>`.
//! The caller becomes a child subreaper first, so the container's init
//! is re-parented to it when `create` exits and can be waited for.

use super::{io, Error, Result};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub struct External {
    pub bin: PathBuf,
    /// The runtime's `--root`.
    pub root: PathBuf,
}

fn failed(what: &str, bin: &Path, log: &Path, status: std::process::ExitStatus) -> Error {
    // runc and crun log errors as JSON lines ({"level":"error","msg":...}).
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let msg = text
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["level"] == "error")
        .and_then(|v| v["msg"].as_str().map(str::to_string))
        .unwrap_or_else(|| text.lines().last().unwrap_or("").to_string());
    Error::Invalid(format!("{} {what}: {status}: {msg}", bin.display()))
}

impl External {
    pub fn new(bin: &str, store_root: &Path) -> External {
        let name = Path::new(bin)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "runtime".into());
        External {
            bin: bin.into(),
            root: store_root.join("runtimes").join(name),
        }
    }

    fn cmd(&self, log: &Path) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--root")
            .arg(&self.root)
            .arg("--log")
            .arg(log)
            .arg("--log-format")
            .arg("json");
        c
    }

    pub(super) fn run(&self, what: &str, args: &[&str], log: &Path) -> Result<()> {
        let st = self
            .cmd(log)
            .args(args)
            .stdin(Stdio::null())
            .status()
            .map_err(io(&self.bin))?;
        if st.success() {
            Ok(())
        } else {
            Err(failed(what, &self.bin, log, st))
        }
    }

    /// `create` (our stdio becomes the container's) then `start`; returns
    /// the init's pid and, with `tty`, the pty master.
    pub fn create_start(
        &self,
        id: &str,
        bundle: &Path,
        tty: bool,
    ) -> Result<(i32, Option<OwnedFd>)> {
        // SAFETY: prctl with integer arguments; makes us the reaper of
        // orphaned descendants (the init, once `create` exits).
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        std::fs::create_dir_all(&self.root).map_err(io(&self.root))?;
        let log = bundle.join("runtime.log");
        let pid_file = bundle.join("init.pid");
        let _ = std::fs::remove_file(&pid_file);
        let mut c = self.cmd(&log);
        c.args(["create", "--bundle"])
            .arg(bundle)
            .arg("--pid-file")
            .arg(&pid_file);
        let mut console = None;
        // The runtime gets a short path: ours may not fit in sun_path.
        let mut _dirfd = None;
        if tty {
            let _ = std::fs::remove_file(bundle.join("console.sock"));
            let (fd, sock) = super::socket_path(bundle, "console.sock")?;
            let l = std::os::unix::net::UnixListener::bind(&sock).map_err(io(&sock))?;
            let short =
                std::env::temp_dir().join(format!("berth-console-{}.sock", std::process::id()));
            let _ = std::fs::remove_file(&short);
            std::os::unix::fs::symlink(bundle.join("console.sock"), &short).map_err(io(&short))?;
            _dirfd = Some((fd, short.clone()));
            c.arg("--console-socket").arg(&short);
            console = Some(std::thread::spawn(move || -> std::io::Result<OwnedFd> {
                let (s, _) = l.accept()?;
                berth_runtime::console::recv_fd(s.as_raw_fd())
                    .map_err(|e| std::io::Error::other(e.to_string()))
            }));
        }
        let st = c.arg(id).status().map_err(io(&self.bin))?;
        if !st.success() {
            if let Some((_, short)) = &_dirfd {
                // Unblock the accept so the thread ends.
                let _ = std::os::unix::net::UnixStream::connect(short);
                let _ = std::fs::remove_file(short);
            }
            return Err(failed("create", &self.bin, &log, st));
        }
        if let Some((_, short)) = &_dirfd {
            let _ = std::fs::remove_file(short);
        }
        let master = match console {
            Some(t) => Some(
                t.join()
                    .map_err(|_| Error::Invalid("console thread panicked".into()))?
                    .map_err(io(Path::new("console socket")))?,
            ),
            None => None,
        };
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| Error::Invalid(format!("{} wrote no pid file", self.bin.display())))?;
        if let Err(e) = self.run("start", &["start", id], &log) {
            self.delete(id, bundle);
            return Err(e);
        }
        Ok((pid, master))
    }

    /// `delete --force`; a container the runtime does not know is fine.
    pub fn delete(&self, id: &str, bundle: &Path) {
        if self.root.join(id).exists() {
            let _ = self.run(
                "delete",
                &["delete", "--force", id],
                &bundle.join("runtime.log"),
            );
        }
    }

    pub fn pause(&self, id: &str, bundle: &Path) -> Result<()> {
        self.run("pause", &["pause", id], &bundle.join("runtime.log"))
    }

    pub fn resume(&self, id: &str, bundle: &Path) -> Result<()> {
        self.run("resume", &["resume", id], &bundle.join("runtime.log"))
    }

    /// `exec --process FILE` with our stdio; returns the exit code.
    pub fn exec(
        &self,
        id: &str,
        bundle: &Path,
        process: &oci_spec::runtime::Process,
        detach: bool,
    ) -> Result<i32> {
        let file = tempfile::Builder::new()
            .prefix("exec-")
            .suffix(".json")
            .tempfile_in(bundle)
            .map_err(io(bundle))?;
        serde_json::to_writer(file.as_file(), process)
            .map_err(|e| Error::Invalid(format!("process.json: {e}")))?;
        let log = bundle.join("runtime.log");
        let mut c = self.cmd(&log);
        c.args(["exec", "--process"]).arg(file.path());
        if detach {
            c.arg("--detach");
        }
        let st = c.arg(id).status().map_err(io(&self.bin))?;
        Ok(st
            .code()
            .unwrap_or(128 + std::os::unix::process::ExitStatusExt::signal(&st).unwrap_or(0)))
    }
}
