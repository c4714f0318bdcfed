//! Shared pieces of the container verb tests (tests/tests/containers*.rs):
//! a private store with a busybox image ([`Ctx`]) that removes whatever
//! containers, monitors and mounts are left when dropped, and process
//! helpers with timeouts.

use crate::engine;
use crate::{procs_with, target_dir, CG, HIERARCHIES};
use serde_json::Value;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The image every test runs (imported from the busybox rootfs tarball).
pub const IMG: &str = "bb:1";

/// A container that exits 0 promptly on SIGTERM (sh as pid 1 with a trap).
pub const TRAP_TERM: &str = "trap 'exit 0' TERM; while true; do sleep 0.1; done";

/// A busybox rootfs tarball, made once under the target dir (in a temp file
/// renamed into place, so concurrent test binaries never see half of it).
pub fn rootfs_tar() -> &'static Path {
    static T: OnceLock<PathBuf> = OnceLock::new();
    T.get_or_init(|| {
        let dir = target_dir().join("berth-test-containers");
        let tar = dir.join("busybox-rootfs.tar");
        if tar.is_file() {
            return tar;
        }
        std::fs::create_dir_all(&dir).unwrap();
        let rootfs = tempfile::Builder::new()
            .prefix("rootfs-")
            .tempdir_in(&dir)
            .unwrap();
        crate::make_busybox_rootfs(rootfs.path());
        let tmp = dir.join(format!("tmp-{}.tar", std::process::id()));
        let st = Command::new("tar")
            .arg("-C")
            .arg(rootfs.path())
            .arg("-cf")
            .arg(&tmp)
            .arg(".")
            .status()
            .unwrap();
        assert!(st.success(), "tar of the busybox rootfs failed");
        std::fs::rename(&tmp, &tar).unwrap();
        tar
    })
    .as_path()
}

/// What one `berth` command did.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub out: String,
    pub err: String,
}

impl Out {
    pub fn text(&self) -> String {
        format!(
            "exit {}\nstdout: {}\nstderr: {}",
            self.code, self.out, self.err
        )
    }
}

/// A `berth` process started in the background; stdout and stderr go to
/// anonymous files (a detached container must never hold a pipe of ours).
pub struct Proc {
    pub child: Child,
    pub out: std::fs::File,
    pub err: std::fs::File,
    pub what: String,
}

impl Proc {
    pub fn start(c: Command, what: String) -> Proc {
        Proc::with_stdin(c, what, Stdio::null())
    }

    pub fn with_stdin(mut c: Command, what: String, stdin: Stdio) -> Proc {
        let out = tempfile::tempfile().unwrap();
        let err = tempfile::tempfile().unwrap();
        let child = c
            .stdin(stdin)
            .stdout(out.try_clone().unwrap())
            .stderr(err.try_clone().unwrap())
            .spawn()
            .unwrap();
        Proc {
            child,
            out,
            err,
            what,
        }
    }

    /// Its exit, or `None` after `secs` (it is then killed).
    pub fn finish_within(mut self, secs: f64) -> Option<Out> {
        let t0 = Instant::now();
        let status: Option<ExitStatus> = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break Some(s);
            }
            if t0.elapsed() > Duration::from_secs_f64(secs) {
                break None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let status = match status {
            Some(s) => s,
            None => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return None;
            }
        };
        let read = |f: &mut std::fs::File| {
            let mut s = String::new();
            f.rewind().unwrap();
            f.read_to_string(&mut s).unwrap();
            s
        };
        Some(Out {
            code: status.code().unwrap_or(-1),
            out: read(&mut self.out),
            err: read(&mut self.err),
        })
    }

    pub fn finish(self, secs: f64) -> Out {
        let what = self.what.clone();
        self.finish_within(secs)
            .unwrap_or_else(|| panic!("berth {what} did not finish in {secs} s"))
    }
}

/// A store with the busybox image imported; on drop, every container in it
/// is removed and nothing of them is left running or mounted.
pub struct Ctx {
    pub s: engine::Store,
    /// Every container id this test saw (for the cgroup checks).
    pub seen: std::cell::RefCell<Vec<String>>,
}

impl Default for Ctx {
    fn default() -> Ctx {
        Ctx::new()
    }
}

impl Ctx {
    pub fn new() -> Ctx {
        Ctx::with_opts(engine::Opts {
            prefix: "berth-ctr-",
            ..engine::Opts::default()
        })
    }

    /// A store whose containers go on the default bridge network (the
    /// caller removes the store's bridges and table: `system reset -f`).
    pub fn with_network() -> Ctx {
        Ctx::with_opts(engine::Opts {
            prefix: "berth-net-",
            network: true,
            ..engine::Opts::default()
        })
    }

    pub fn with_opts(opts: engine::Opts) -> Ctx {
        let s = engine::Store::with(opts);
        let c = Ctx {
            s,
            seen: Default::default(),
        };
        let tar = rootfs_tar().to_str().unwrap().to_string();
        c.ok(&["import", &tar, IMG]);
        c
    }

    pub fn root(&self) -> &Path {
        self.s.root.path()
    }

    pub fn root_str(&self) -> String {
        self.root().to_str().unwrap().to_string()
    }

    pub fn spawn(&self, args: &[&str]) -> Proc {
        Proc::start(self.s.cmd(args), format!("{args:?}"))
    }

    /// Runs `berth ARGS` (at most 60 s).
    pub fn b(&self, args: &[&str]) -> Out {
        self.spawn(args).finish(60.0)
    }

    /// Asserts exit 0; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.b(args);
        assert_eq!(o.code, 0, "berth {args:?}: {}", o.text());
        for l in o.out.lines() {
            self.track(l.trim());
        }
        o.out
    }

    /// Remembers a container id (anything else is ignored).
    pub fn track(&self, id: &str) {
        let mut seen = self.seen.borrow_mut();
        if is_id(id) && !seen.iter().any(|s| s == id) {
            seen.push(id.to_string());
        }
    }

    /// `run -d ARGS...`: the new container's id (checked to be 64 hex).
    pub fn run_d(&self, args: &[&str]) -> String {
        let mut all = vec!["run", "-d"];
        all.extend_from_slice(args);
        let id = self.ok(&all).trim().to_string();
        assert!(is_id(&id), "run -d printed {id:?}, not a 64-hex id");
        id
    }

    /// `ps -a --format json`.
    pub fn ps_all(&self) -> Vec<Value> {
        self.ps(&["-a"])
    }

    /// `ps FLAGS --format json`.
    pub fn ps(&self, flags: &[&str]) -> Vec<Value> {
        let mut all = vec!["ps"];
        all.extend_from_slice(flags);
        all.extend_from_slice(&["--format", "json", "--no-trunc"]);
        self.ok(&all)
            .lines()
            .map(|l| {
                let v: Value =
                    serde_json::from_str(l).unwrap_or_else(|e| panic!("ps json {l:?}: {e}"));
                self.track(v["ID"].as_str().unwrap_or_default());
                v
            })
            .collect()
    }

    /// The `ps -a` row of `id` (a full id), if listed.
    pub fn row(&self, id: &str) -> Option<Value> {
        self.ps_all().into_iter().find(|r| r["ID"] == id)
    }

    /// `ps -a -q --no-trunc`.
    pub fn ids(&self) -> Vec<String> {
        self.ok(&["ps", "-a", "-q", "--no-trunc"])
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// `inspect C`'s one object.
    pub fn inspect(&self, c: &str) -> Value {
        let v: Value = serde_json::from_str(&self.ok(&["inspect", c])).unwrap();
        assert_eq!(v.as_array().map(Vec::len), Some(1), "{v}");
        v[0].clone()
    }

    pub fn state(&self, c: &str) -> Value {
        self.inspect(c)["State"].clone()
    }

    /// Container dirs under `<root>/containers`.
    pub fn dirs(&self) -> Vec<String> {
        self.s.names("containers")
    }

    /// Mount points under the store (overlays of containers).
    pub fn mounts(&self) -> Vec<String> {
        let root = self.root_str();
        std::fs::read_to_string("/proc/mounts")
            .unwrap()
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter(|m| m.starts_with(&root))
            .map(str::to_string)
            .collect()
    }

    /// Live `berth __monitor` processes of this store (of `id` if given).
    pub fn monitors(&self, id: Option<&str>) -> Vec<i32> {
        let scan = || -> Vec<i32> {
            procs_with(&self.root_str())
                .into_iter()
                .filter(|p| {
                    let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
                    let cmd = String::from_utf8_lossy(&cmd);
                    // `berth __monitor ID` (or a separate monitor binary).
                    cmd.contains("monitor") && id.is_none_or(|id| cmd.contains(id))
                })
                .collect()
        };
        // A monitor in the middle of its execve (it becomes berth-monitor)
        // has an empty cmdline for a moment: look again before saying none.
        let mut found = scan();
        for _ in 0..20 {
            if !found.is_empty() || id.is_none() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
            found = scan();
        }
        found
    }

    /// Nothing of any container is left: no rows, dirs, mounts, monitors.
    pub fn assert_empty(&self) {
        assert_eq!(self.ids(), Vec::<String>::new(), "containers left in ps -a");
        assert_eq!(self.dirs(), Vec::<String>::new(), "container dirs left");
        assert_eq!(self.mounts(), Vec::<String>::new(), "mounts left");
        assert!(
            wait_for(5.0, || self.monitors(None).is_empty()),
            "monitors left: {:?}",
            self.monitors(None)
        );
        // `.cache` is the runtime's seccomp cache, not a container's state.
        let state: Vec<String> = self
            .s
            .names("runtime")
            .into_iter()
            .filter(|n| !n.starts_with('.'))
            .collect();
        assert_eq!(state, Vec::<String>::new(), "runtime state left");
        for id in self.seen.borrow().iter() {
            for h in HIERARCHIES {
                let d = Path::new(CG).join(h).join("berth").join(id);
                assert!(!d.exists(), "cgroup left: {}", d.display());
            }
        }
    }

    /// Polls `logs C` until its stdout contains `needle`; returns it.
    pub fn logs_until(&self, c: &str, needle: &str) -> String {
        let mut last = String::new();
        let found = wait_for(10.0, || {
            last = self.ok(&["logs", c]);
            last.contains(needle)
        });
        assert!(found, "logs of {c} never showed {needle:?}: {last:?}");
        last
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        // Never panic here: this runs while a failed test unwinds.
        let q = |args: &[&str]| {
            self.s
                .cmd(args)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .output()
                .ok()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default()
        };
        let ids: Vec<String> = q(&["ps", "-a", "-q", "--no-trunc"])
            .lines()
            .map(str::to_string)
            .collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(ids.iter().map(String::as_str));
            q(&args);
        }
        for p in self.monitors(None) {
            // SAFETY: kill(2) on a pid we just found; no memory involved.
            unsafe { libc::kill(p, libc::SIGKILL) };
        }
        let mut mounts = self.mounts();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = Command::new("umount")
                .args(["-l", &m])
                .stderr(Stdio::null())
                .status();
        }
        // Networks a test made (bridges, the store's firewall table).
        q(&["system", "reset", "-f"]);
    }
}

pub fn is_id(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// Polls `f` every 20 ms for up to `secs`.
pub fn wait_for(secs: f64, mut f: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs_f64(secs) {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

/// `2026-11-29T16:22:21.123456789Z`-like.
pub fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && (s.ends_with('Z') || s[19..].contains('+') || s[19..].contains('-'))
        && !s.starts_with("0001-")
}

// ---------------------------------------------------------------------------
// 1. attached runs

/// Commits a container of `IMG` holding `bytes` random bytes in /root/big
/// as `target` (the container is removed again).
pub fn commit_big(c: &Ctx, target: &str, bytes: u64) {
    c.run_d(&["--name", "bigsrc", IMG, "sleep", "1000"]);
    c.ok(&[
        "exec",
        "bigsrc",
        "sh",
        "-c",
        &format!("head -c {bytes} /dev/urandom > /root/big"),
    ]);
    c.ok(&["commit", "bigsrc", target]);
    c.ok(&["rm", "-f", "bigsrc"]);
}

/// Pushes `target` again (after a failed push), pulls it into a fresh
/// store and checks /root/big has `bytes` bytes there.
pub fn push_again_and_pull(c: &Ctx, target: &str, bytes: u64) {
    let out = c.ok(&["push", target]);
    assert!(out.contains("digest: sha256:"), "{out}");
    let other = Ctx::new();
    other.ok(&["pull", target]);
    let o = other.b(&["run", "--rm", target, "sh", "-c", "wc -c < /root/big"]);
    assert_eq!(o.out.trim(), bytes.to_string(), "{}", o.text());
    c.assert_empty();
    other.assert_empty();
}
