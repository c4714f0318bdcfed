//! `berth login` / `berth logout` against a real registry behind htpasswd
//! Basic auth and behind Docker Hub-style bearer tokens. DOCKER_CONFIG is
//! always a temp dir.

use berth_integration::engine::{busybox, text, Opts, Store};
use berth_integration::images;
use berth_integration::registry::{b64, Registry};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Output, Stdio};

/// A store with a private `DOCKER_CONFIG`, no `BERTH_CONFIG` and no `HOME`.
struct Env(Store);

impl Env {
    fn new() -> Env {
        Env(Store::with(Opts {
            berth_config: false,
            ..Opts::default()
        }))
    }

    fn config_path(&self) -> PathBuf {
        self.0.docker_config.path().join("config.json")
    }

    fn berth_in(&self, args: &[&str], stdin: &[u8]) -> Output {
        let mut c = self
            .0
            .cmd(args)
            .env_remove("HOME")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(stdin).unwrap();
        c.wait_with_output().unwrap()
    }

    fn berth(&self, args: &[&str]) -> Output {
        self.berth_in(args, b"")
    }
}

/// The whole cycle against `reg` (user `alice`, password `s3cret`).
fn login_cycle(reg: &Registry) {
    images::push(busybox(), "latest", reg, "private/bb:1");
    let e = Env::new();
    let r = reg.image_ref("private/bb:1");
    // Wrong password: refused, nothing written.
    let o = e.berth(&["login", "-u", "alice", "-p", "wrong", &reg.addr]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("login failed"), "{err}");
    assert!(!e.config_path().exists(), "config.json written on failure");
    // An unknown user too.
    let o = e.berth_in(
        &["login", "-u", "mallory", "--password-stdin", &reg.addr],
        b"s3cret\n",
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(!e.config_path().exists());
    // Not logged in yet: pull is refused.
    let o = e.berth(&["pull", "-q", &r]);
    assert!(!o.status.success());
    // Right password on stdin: stored like Docker, mode 0600.
    let o = e.berth_in(
        &["login", "-u", "alice", "--password-stdin", &reg.addr],
        b"s3cret\n",
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("Login Succeeded"),
        "{}",
        text(&o)
    );
    let meta = std::fs::metadata(e.config_path()).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(e.config_path()).unwrap()).unwrap();
    assert_eq!(cfg["auths"][&reg.addr]["auth"], b64(b"alice:s3cret"));
    // A pull of the private image now works.
    let o = e.berth(&["pull", "-q", &r]);
    assert!(o.status.success(), "{}", text(&o));
    // Logout removes the credentials; pull is refused again.
    let o = e.berth(&["logout", &reg.addr]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout)
            .contains(&format!("Removing login credentials for {}", reg.addr)),
        "{}",
        text(&o)
    );
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(e.config_path()).unwrap()).unwrap();
    assert!(cfg["auths"].get(&reg.addr).is_none(), "{cfg}");
    let o = e.berth(&["pull", "-q", &r]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!(
            "authentication required: run berth login {}",
            reg.addr
        )),
        "{err}"
    );
    // A second logout has nothing to remove and still succeeds.
    let o = e.berth(&["logout", &reg.addr]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("Not logged in"));
}

#[test]
fn login_with_htpasswd_basic_auth() {
    let reg = Registry::start_htpasswd("alice", "s3cret");
    login_cycle(&reg);
}

#[test]
fn login_with_bearer_tokens() {
    let reg = Registry::start_token("alice", "s3cret");
    login_cycle(&reg);
    let reqs = reg.token_requests();
    assert!(
        reqs.iter()
            .any(|t| t.user.as_deref() == Some("alice") && t.status == 401),
        "the wrong password reached the token server: {reqs:?}"
    );
    assert!(
        reqs.iter()
            .any(|t| t.user.as_deref() == Some("alice") && t.status == 200),
        "{reqs:?}"
    );
}

#[test]
fn login_keeps_other_entries_and_needs_credentials() {
    let reg = Registry::start_htpasswd("alice", "s3cret");
    let e = Env::new();
    std::fs::write(
        e.config_path(),
        r#"{"auths":{"other.example":{"auth":"eDp5"}},"credHelpers":{},"psFormat":"x"}"#,
    )
    .unwrap();
    let o = e.berth(&["login", "-p", "s3cret", &reg.addr]);
    assert!(!o.status.success(), "login without a user name");
    let o = e.berth_in(
        &[
            "login",
            "--username",
            "alice",
            "--password-stdin",
            &reg.addr,
        ],
        b"s3cret",
    );
    assert!(o.status.success(), "{}", text(&o));
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(e.config_path()).unwrap()).unwrap();
    assert_eq!(cfg["auths"]["other.example"]["auth"], "eDp5");
    assert_eq!(cfg["psFormat"], "x");
    assert!(cfg["auths"].get(&reg.addr).is_some());
}
