//! A driver for the `berth` binary: a private store (`--root`) in a temp dir,
//! and a private `DOCKER_CONFIG` (and `BERTH_CONFIG`) next to it.

use crate::images::{self, OciLayout};
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;

/// Path to the built `berth` binary.
pub fn berth_bin() -> PathBuf {
    let p = crate::target_dir().join("berth");
    assert!(
        p.exists(),
        "{} missing: cargo build --workspace --bins",
        p.display()
    );
    p
}

/// stdout then stderr, for failure messages.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The busybox OCI layout, built once per test binary.
pub fn busybox() -> &'static OciLayout {
    static L: OnceLock<OciLayout> = OnceLock::new();
    L.get_or_init(|| {
        let l = images::busybox_oci_layout();
        l.remove_at_exit();
        l
    })
}

/// Which environment a [`Store`] gives `berth`.
#[derive(Clone, Copy, Debug)]
pub struct Opts {
    /// Prefix of the store's temp dir.
    pub prefix: &'static str,
    /// Set `DOCKER_CONFIG` to the private config dir.
    pub docker_config: bool,
    /// Set `BERTH_CONFIG` to `berth.json` in the private config dir.
    pub berth_config: bool,
    /// Leave containers on the default bridge network; otherwise
    /// `BERTH_DEFAULT_NETWORK=none` (tests about other things make no
    /// bridges and firewall tables).
    pub network: bool,
}

impl Default for Opts {
    fn default() -> Opts {
        Opts {
            prefix: "berth-store-",
            docker_config: true,
            berth_config: true,
            network: false,
        }
    }
}

pub struct Store {
    pub root: tempfile::TempDir,
    pub docker_config: tempfile::TempDir,
    opts: Opts,
}

impl Default for Store {
    fn default() -> Store {
        Store::new()
    }
}

impl Store {
    /// A store with both `DOCKER_CONFIG` and `BERTH_CONFIG` private.
    pub fn new() -> Store {
        Store::with(Opts::default())
    }

    pub fn with(opts: Opts) -> Store {
        Store {
            root: tempfile::Builder::new()
                .prefix(opts.prefix)
                .tempdir()
                .unwrap(),
            docker_config: tempfile::tempdir().unwrap(),
            opts,
        }
    }

    /// `berth --root ROOT args...`, stdin null.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(berth_bin());
        c.arg("--root").arg(self.root.path()).args(args);
        if self.opts.docker_config {
            c.env("DOCKER_CONFIG", self.docker_config.path());
        }
        if self.opts.berth_config {
            c.env("BERTH_CONFIG", self.docker_config.path().join("berth.json"));
        }
        if !self.opts.network {
            c.env("BERTH_DEFAULT_NETWORK", "none");
        }
        c.stdin(Stdio::null());
        c
    }

    pub fn berth(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Started in the background: stdout to null, stderr piped.
    pub fn spawn(&self, args: &[&str]) -> Child {
        self.cmd(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.berth(args);
        assert!(o.status.success(), "berth {args:?} failed: {}", text(&o));
        String::from_utf8(o.stdout).unwrap()
    }

    pub fn images(&self) -> Vec<Value> {
        self.ok(&["images", "--format", "json"])
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    pub fn inspect(&self, r: &str) -> Value {
        let v: Value = serde_json::from_str(&self.ok(&["image", "inspect", r])).unwrap();
        v[0].clone()
    }

    pub fn diff_ids(&self, r: &str) -> Vec<String> {
        self.inspect(r)["RootFS"]["Layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    }

    /// The unpacked dir of each layer of an image, bottom first.
    pub fn layer_dirs(&self, r: &str) -> Vec<PathBuf> {
        let mut chain: Option<String> = None;
        let mut out = Vec::new();
        for d in self.diff_ids(r) {
            let c = match &chain {
                None => d.clone(),
                Some(prev) => format!(
                    "sha256:{}",
                    images::sha256_hex(format!("{prev} {d}").as_bytes())
                ),
            };
            out.push(self.root.path().join("layers").join(&c[7..]).join("diff"));
            chain = Some(c);
        }
        out
    }

    /// Names under `ROOT/sub`, in directory order (none if it is missing).
    pub fn entries(&self, sub: &str) -> Vec<String> {
        match std::fs::read_dir(self.root.path().join(sub)) {
            Ok(rd) => rd
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Names under `ROOT/sub`, sorted (none if it is missing).
    pub fn names(&self, sub: &str) -> Vec<String> {
        let mut v = self.entries(sub);
        v.sort();
        v
    }
}
