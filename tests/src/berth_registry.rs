//! `berth registry serve` as a test fixture: on a free loopback port with a
//! private root, killed on drop (and by `PR_SET_PDEATHSIG` if the test binary
//! dies), restartable on the same root and port.

use crate::engine::berth_bin;
use crate::registry::{free_port, http_request, spawn_tied, HttpResponse};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct BerthRegistry {
    /// `127.0.0.1:PORT`
    pub addr: String,
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// `--config FILE` when started with one.
    config: Option<PathBuf>,
    /// More arguments of `berth registry serve`.
    args: Vec<String>,
    /// Serving https (readiness is then checked with `curl -k`).
    https: bool,
}

impl BerthRegistry {
    pub fn start() -> BerthRegistry {
        Self::start_with_config(None, &[])
    }

    /// Started with `--config DIR/config.toml` holding `config` (when
    /// given), after writing each `(name, content)` of `files` into DIR
    /// (relative paths in the config resolve against DIR).
    pub fn start_with_config(config: Option<&str>, files: &[(&str, &[u8])]) -> BerthRegistry {
        Self::start_with_args(config, files, &[])
    }

    /// As [`Self::start_with_config`], with more `berth registry serve`
    /// arguments; https when they or the config name a TLS certificate.
    pub fn start_with_args(
        config: Option<&str>,
        files: &[(&str, &[u8])],
        args: &[&str],
    ) -> BerthRegistry {
        Self::start_on("127.0.0.1", config, files, args)
    }

    /// As [`Self::start_with_args`], listening on `host` (an address of
    /// this machine) instead of 127.0.0.1.
    pub fn start_on(
        host: &str,
        config: Option<&str>,
        files: &[(&str, &[u8])],
        args: &[&str],
    ) -> BerthRegistry {
        let https = args.contains(&"--tls-cert") || config.is_some_and(|c| c.contains("tls_cert"));
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let mut dir = tempfile::Builder::new()
            .prefix("berth-own-registry-")
            .tempdir()
            .unwrap();
        for (name, content) in files {
            std::fs::write(dir.path().join(name), content).unwrap();
        }
        let config = config.map(|c| {
            let p = dir.path().join("config.toml");
            std::fs::write(&p, c).unwrap();
            p
        });
        let mut last = String::new();
        for _ in 0..5 {
            let mut r = BerthRegistry {
                addr: format!("{host}:{}", free_port()),
                child: None,
                dir,
                config: config.clone(),
                args: args.clone(),
                https,
            };
            match r.launch() {
                Ok(()) => return r,
                Err(e) => last = e,
            }
            dir = r.take_dir();
        }
        panic!("berth registry serve did not come up: {last}");
    }

    fn take_dir(mut self) -> tempfile::TempDir {
        self.stop();
        let placeholder = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.dir, placeholder)
    }

    /// `--config FILE`, when started with one.
    pub fn config_path(&self) -> Option<&Path> {
        self.config.as_deref()
    }

    /// The registry's storage root.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("serve.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn launch(&mut self) -> Result<(), String> {
        let log = std::fs::File::create(self.log_path()).unwrap();
        let mut cmd = Command::new(berth_bin());
        cmd.arg("--root")
            .arg(self.root())
            .args(["registry", "serve", "--addr", &self.addr]);
        if let Some(c) = &self.config {
            cmd.arg("--config").arg(c);
        }
        cmd.args(&self.args);
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let mut child = spawn_tied(cmd).map_err(|e| format!("spawn berth: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if self.https {
                if self.https_ready() {
                    self.child = Some(child);
                    return Ok(());
                }
            } else if let Ok(r) = http_request(&self.addr, "GET", "/v2/", &[], b"") {
                // 401: up, with auth.
                if (r.status == 200 || r.status == 401)
                    && r.header("docker-distribution-api-version").is_some()
                {
                    self.child = Some(child);
                    return Ok(());
                }
            }
            if let Ok(Some(st)) = child.try_wait() {
                return Err(format!("exited with {st}: {}", self.log()));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("not answering on {}: {}", self.addr, self.log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `GET /v2/` over https (certificate unchecked) answers 200 or 401.
    fn https_ready(&self) -> bool {
        let o = Command::new("curl")
            .args(["-sk", "-o", "/dev/null", "-w", "%{http_code}"])
            .arg(format!("https://{}/v2/", self.addr))
            .output();
        o.is_ok_and(|o| matches!(&o.stdout[..], b"200" | b"401"))
    }

    /// The server's pid (while running).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGTERM, then wait (10 s at most) for the process to exit: its exit
    /// status, or `None` when it had to be killed (or was not running).
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(st)) = c.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
        None
    }

    /// Stops the server with SIGTERM (asserting it exits 0 by itself) and
    /// starts it again on the same root and port.
    pub fn restart(&mut self) {
        let st = self.stop();
        assert!(
            st.is_some_and(|s| s.success()),
            "berth registry serve did not exit cleanly on SIGTERM: {st:?}\n{}",
            self.log()
        );
        self.launch().expect("restart berth registry serve");
    }

    /// `kill -9` of the server, then a start on the same root and port.
    pub fn kill9_and_restart(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.launch()
            .expect("start berth registry serve after kill -9");
    }

    /// `ADDR/repo:tag`.
    pub fn image_ref(&self, repo_tag: &str) -> String {
        format!("{}/{repo_tag}", self.addr)
    }

    pub fn req(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> HttpResponse {
        http_request(&self.addr, method, path, headers, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// Files under `blobs/` of the storage root (relative paths).
    pub fn blob_files(&self) -> Vec<String> {
        let mut out = Vec::new();
        walk(&self.root().join("blobs"), Path::new(""), &mut out);
        out.sort();
        out
    }
}

fn walk(dir: &Path, rel: &Path, out: &mut Vec<String>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let r = rel.join(e.file_name());
        if e.path().is_dir() {
            walk(&e.path(), &r, out);
        } else {
            out.push(r.display().to_string());
        }
    }
}

impl Drop for BerthRegistry {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
