//! A one-node Garage (S3-compatible object store) on loopback as a test
//! fixture: its own temp dir, free ports, one bucket and one key with read
//! and write on it; killed on drop (and by `PR_SET_PDEATHSIG` if the test
//! binary dies).
//!
//! The binary is `$BERTH_GARAGE`, else `/var/cache/berth-ci/garage/bin/garage`
//! (what `scripts/garage.sh` installs; `.ci/run` runs it first). Without
//! it the fixture panics: S3 tests fail, they do not pass silently.

use crate::registry::{free_port, http_request, spawn_tied};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Where `scripts/garage.sh` installs Garage.
pub const DEFAULT_GARAGE: &str = "/var/cache/berth-ci/garage/bin/garage";

pub fn garage_bin() -> PathBuf {
    let p = std::env::var_os("BERTH_GARAGE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_GARAGE));
    assert!(
        p.is_file(),
        "Garage is not installed at {}: run scripts/garage.sh (CI does, through \
         scripts/deps.sh) or set BERTH_GARAGE to a garage binary",
        p.display()
    );
    p
}

pub struct Garage {
    /// `http://127.0.0.1:PORT`, the S3 API.
    pub endpoint: String,
    pub bucket: String,
    pub key_id: String,
    pub secret: String,
    pub region: String,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl Garage {
    /// A running one-node store with bucket `berth-test`; panics (with its
    /// log) when it does not come up within its deadlines.
    pub fn start() -> Garage {
        let bin = garage_bin();
        let mut last = String::new();
        for _ in 0..3 {
            match Self::try_start(&bin) {
                Ok(g) => return g,
                Err(e) => last = e,
            }
        }
        panic!("garage did not come up: {last}");
    }

    fn try_start(bin: &Path) -> Result<Garage, String> {
        let dir = tempfile::Builder::new()
            .prefix("berth-garage-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let (rpc, s3) = (free_port(), free_port());
        let secret: String = {
            let mut b = [0u8; 32];
            let mut f = std::fs::File::open("/dev/urandom").map_err(|e| e.to_string())?;
            std::io::Read::read_exact(&mut f, &mut b).map_err(|e| e.to_string())?;
            b.iter().map(|x| format!("{x:02x}")).collect()
        };
        let d = dir.path().display();
        let conf = format!(
            "metadata_dir = \"{d}/meta\"\n\
             data_dir = \"{d}/data\"\n\
             db_engine = \"sqlite\"\n\
             replication_factor = 1\n\
             rpc_bind_addr = \"127.0.0.1:{rpc}\"\n\
             rpc_public_addr = \"127.0.0.1:{rpc}\"\n\
             rpc_secret = \"{secret}\"\n\
             [s3_api]\n\
             s3_region = \"garage\"\n\
             api_bind_addr = \"127.0.0.1:{s3}\"\n\
             root_domain = \".s3.garage.localhost\"\n"
        );
        let conf_path = dir.path().join("garage.toml");
        std::fs::write(&conf_path, conf).map_err(|e| e.to_string())?;
        let log =
            std::fs::File::create(dir.path().join("garage.log")).map_err(|e| e.to_string())?;
        let mut cmd = Command::new(bin);
        cmd.arg("-c")
            .arg(&conf_path)
            .arg("server")
            .env("RUST_LOG", "garage=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log);
        let child = spawn_tied(cmd).map_err(|e| format!("spawn garage: {e}"))?;
        let mut g = Garage {
            endpoint: format!("http://127.0.0.1:{s3}"),
            bucket: "berth-test".into(),
            key_id: String::new(),
            secret: String::new(),
            region: "garage".into(),
            child: Some(child),
            dir,
        };
        g.setup().map_err(|e| format!("{e}\n{}", g.log()))?;
        Ok(g)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("garage.log")).unwrap_or_default()
    }

    /// `garage -c CONF args...` with a deadline.
    fn cli(&self, args: &[&str]) -> Result<Output, String> {
        let mut c = Command::new(garage_bin());
        c.arg("-c")
            .arg(self.dir.path().join("garage.toml"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = c.spawn().map_err(|e| format!("garage {args:?}: {e}"))?;
        let pid = child.id() as i32;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(r) => r.map_err(|e| format!("garage {args:?}: {e}")),
            Err(_) => {
                // SAFETY: kill(2) of our own child.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                Err(format!("garage {args:?}: no answer within 30 s"))
            }
        }
    }

    fn cli_ok(&self, args: &[&str]) -> Result<String, String> {
        let o = self.cli(args)?;
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        if !o.status.success() {
            return Err(format!(
                "garage {args:?}: {}\n{out}{}",
                o.status,
                String::from_utf8_lossy(&o.stderr)
            ));
        }
        Ok(out)
    }

    /// Layout, bucket, key.
    fn setup(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        // The node id, once the daemon answers on its RPC port.
        let node = loop {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    return Err(format!("garage server exited with {st}"));
                }
            }
            match self.cli(&["node", "id", "-q"]) {
                Ok(o) if o.status.success() => {
                    let s = String::from_utf8_lossy(&o.stdout).trim().to_string();
                    break s.split('@').next().unwrap_or_default().to_string();
                }
                _ if Instant::now() > deadline => {
                    return Err("garage node id: no answer within 30 s".into())
                }
                _ => std::thread::sleep(Duration::from_millis(200)),
            }
        };
        if node.len() < 16 {
            return Err(format!("garage node id: unexpected {node:?}"));
        }
        self.cli_ok(&["layout", "assign", "-z", "dc1", "-c", "1G", &node])?;
        self.cli_ok(&["layout", "apply", "--version", "1"])?;
        self.cli_ok(&["bucket", "create", &self.bucket.clone()])?;
        let out = self.cli_ok(&["key", "create", "berth-test-key"])?;
        let field = |name: &str| {
            out.lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    (k.trim().eq_ignore_ascii_case(name)).then(|| v.trim().to_string())
                })
                .ok_or_else(|| format!("garage key create: no {name:?} in {out:?}"))
        };
        self.key_id = field("Key ID")?;
        self.secret = field("Secret key")?;
        self.cli_ok(&[
            "bucket",
            "allow",
            "--read",
            "--write",
            "--owner",
            &self.bucket.clone(),
            "--key",
            "berth-test-key",
        ])?;
        // The S3 API answers (an unsigned request is refused, with XML).
        let addr = self.endpoint.trim_start_matches("http://").to_string();
        loop {
            if let Ok(r) = http_request(&addr, "GET", &format!("/{}", self.bucket), &[], b"") {
                if r.status == 403 || r.status == 200 {
                    break;
                }
            }
            if Instant::now() > deadline {
                return Err("garage S3 API: no answer within 30 s".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // And takes a signed write (the layout is live).
        loop {
            let ok = self.s3_put("probe", b"x").is_ok();
            if ok {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "garage S3 API: a signed PUT failed for 30 s: {:?}",
                    self.s3_put("probe", b"x")
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// A `[storage.s3]` table for this bucket, keys under `prefix/`.
    pub fn s3_table(&self, prefix: &str) -> String {
        format!(
            "[storage.s3]\nendpoint = \"{}\"\nbucket = \"{}\"\nregion = \"{}\"\n\
             access_key_id = \"{}\"\nsecret_access_key = \"{}\"\nprefix = \"{prefix}\"\n",
            self.endpoint, self.bucket, self.region, self.key_id, self.secret
        )
    }

    /// `curl` with AWS SigV4 signing, against the bucket.
    fn curl(&self, args: &[&str], url_path: &str) -> Result<Output, String> {
        Command::new("curl")
            .args(["-sS", "--max-time", "20"])
            .args([
                "-H",
                "x-amz-content-sha256: UNSIGNED-PAYLOAD",
                "--aws-sigv4",
            ])
            .arg(format!("aws:amz:{}:s3", self.region))
            .arg("--user")
            .arg(format!("{}:{}", self.key_id, self.secret))
            .args(args)
            .arg(format!("{}/{}{url_path}", self.endpoint, self.bucket))
            .output()
            .map_err(|e| format!("curl: {e}"))
    }

    /// PUTs `data` at `key` of the bucket, behind the registry's back.
    pub fn s3_put(&self, key: &str, data: &[u8]) -> Result<(), String> {
        let tmp = self.dir.path().join("put.tmp");
        std::fs::write(&tmp, data).map_err(|e| e.to_string())?;
        let o = self.curl(
            &[
                "-f",
                "-X",
                "PUT",
                "--data-binary",
                &format!("@{}", tmp.display()),
            ],
            &format!("/{key}"),
        )?;
        if o.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&o.stderr).into_owned())
        }
    }

    /// Keys of the bucket under `prefix` (sorted), read with ListObjectsV2.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..100 {
            // Encoded as SigV4 signs it.
            let enc = |s: &str| {
                let mut o = String::new();
                for b in s.bytes() {
                    if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                        o.push(b as char);
                    } else {
                        o.push_str(&format!("%{b:02X}"));
                    }
                }
                o
            };
            let mut q = format!("?list-type=2&prefix={}", enc(prefix));
            if let Some(t) = &token {
                q.push_str(&format!("&continuation-token={}", enc(t)));
            }
            let o = self.curl(&["-f"], &q).unwrap();
            assert!(
                o.status.success(),
                "list {prefix}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            let xml = String::from_utf8_lossy(&o.stdout).into_owned();
            for part in xml.split("<Key>").skip(1) {
                out.push(part.split("</Key>").next().unwrap_or("").to_string());
            }
            token = xml
                .split("<NextContinuationToken>")
                .nth(1)
                .and_then(|r| r.split("</NextContinuationToken>").next())
                .map(str::to_string);
            if token.is_none() {
                out.sort();
                return out;
            }
        }
        panic!("list {prefix}: more than 100 pages");
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
