//! A private podman image store (vfs driver, its own config, registries
//! and auth file) for interop tests; `system reset` on drop.

use serde_json::Value;
use std::process::{Command, Stdio};

/// A private podman image store (vfs driver, no containers run).
pub struct Podman {
    dir: tempfile::TempDir,
}

impl Podman {
    pub fn new(insecure_registry: &str) -> Podman {
        let dir = tempfile::Builder::new()
            .prefix("berth-podman-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        for sub in ["graph", "run", "tmp", "image-tmp"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        let p = |s: &str| d.join(s).display().to_string();
        std::fs::write(
            d.join("containers.conf"),
            format!(
                "[engine]\nevents_logger = \"file\"\nevents_logfile_path = \"{}\"\ntmp_dir = \"{}\"\nstatic_dir = \"{}\"\nimage_copy_tmp_dir = \"{}\"\n",
                p("events.log"),
                p("tmp"),
                p("graph/libpod"),
                p("image-tmp")
            ),
        )
        .unwrap();
        std::fs::write(
            d.join("storage.conf"),
            format!(
                "[storage]\ndriver = \"vfs\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
                p("graph"),
                p("run")
            ),
        )
        .unwrap();
        std::fs::write(d.join("auth.json"), "{}").unwrap();
        std::fs::write(
            d.join("registries.conf"),
            format!("unqualified-search-registries = []\n\n[[registry]]\nlocation = \"{insecure_registry}\"\ninsecure = true\n"),
        )
        .unwrap();
        Podman { dir }
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let d = self.dir.path();
        let o = Command::new("podman")
            .env("CONTAINERS_CONF", d.join("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", d.join("storage.conf"))
            .env("CONTAINERS_REGISTRIES_CONF", d.join("registries.conf"))
            .env("REGISTRY_AUTH_FILE", d.join("auth.json"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("podman is missing: apt-get install podman");
        assert!(
            o.status.success(),
            "podman {args:?} failed: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    pub fn inspect(&self, r: &str) -> Value {
        let v: Value = serde_json::from_str(&self.ok(&["image", "inspect", r])).unwrap();
        v[0].clone()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = Command::new("podman")
            .env("CONTAINERS_CONF", self.dir.path().join("containers.conf"))
            .env(
                "CONTAINERS_STORAGE_CONF",
                self.dir.path().join("storage.conf"),
            )
            .args(["system", "reset", "-f"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
