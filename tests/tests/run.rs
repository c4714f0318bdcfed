//! `berth run` end to end: an image pushed to a real loopback registry is
//! pulled on the way and run for real (overlay rootfs, in-process runtime).

use berth_integration::engine::{self, busybox};
use berth_integration::images;
use berth_integration::registry::Registry;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

/// One registry with busybox pushed, shared by the tests.
fn registry() -> &'static (Registry, String) {
    static R: OnceLock<(Registry, String)> = OnceLock::new();
    R.get_or_init(|| {
        let reg = Registry::start();
        reg.remove_dir_at_exit();
        images::push(busybox(), "latest", &reg, "busybox:1");
        let r = reg.image_ref("busybox:1");
        (reg, r)
    })
}

/// The shared store (prefix `berth-run-`); every command is followed by
/// [`Store::assert_clean`].
struct Store(engine::Store);

impl Store {
    fn new() -> Store {
        Store(engine::Store::with(engine::Opts {
            prefix: "berth-run-",
            ..engine::Opts::default()
        }))
    }

    fn berth(&self, args: &[&str]) -> Output {
        let o = self.0.berth(args);
        self.assert_clean();
        o
    }

    /// `berth run --rm IMAGE args...`: (exit code, stdout, stderr).
    fn run(&self, flags: &[&str], args: &[&str]) -> (i32, String, String) {
        let image = &registry().1;
        let mut all = vec!["run", "--rm"];
        all.extend_from_slice(flags);
        all.push(image);
        all.extend_from_slice(args);
        let o = self.berth(&all);
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    fn out(&self, flags: &[&str], args: &[&str]) -> String {
        let (code, out, err) = self.run(flags, args);
        assert_eq!(code, 0, "run {flags:?} {args:?}: {out}{err}");
        out.trim().to_string()
    }

    /// No overlay mount left under the store, no container dir left.
    fn assert_clean(&self) {
        let root = self.0.root.path().to_str().unwrap();
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
        assert!(
            !mounts.lines().any(|l| l.contains(root)),
            "mount left under {root}: {mounts}"
        );
        let c = self.0.root.path().join("containers");
        if c.exists() {
            assert_eq!(std::fs::read_dir(&c).unwrap().count(), 0, "{c:?} not empty");
        }
    }

    fn layer_dirs(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.0.root.path().join("layers"))
            .unwrap()
            .map(|e| e.unwrap().path().join("diff"))
            .filter(|p| p.is_dir())
            .collect()
    }
}

#[test]
fn run_pulls_then_echoes() {
    let s = Store::new();
    let (code, out, err) = s.run(&[], &["echo", "hi"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out, "hi\n", "stderr: {err}");
    assert!(err.contains("Unable to find image"), "{err}");
    // The second run finds it in the store.
    let (code, out, err) = s.run(&[], &["echo", "again"]);
    assert_eq!((code, out.as_str()), (0, "again\n"), "{err}");
    assert!(!err.contains("Unable to find image"), "{err}");
}

#[test]
fn exit_codes() {
    let s = Store::new();
    assert_eq!(s.run(&[], &["sh", "-c", "exit 3"]).0, 3);
    let (code, out, err) = s.run(&[], &["/no/such/command"]);
    assert_eq!(code, 127, "{out}{err}");
    let (code, out, err) = s.run(&[], &["no-such-command"]);
    assert_eq!(code, 127, "{out}{err}");
    assert!(err.contains("executable file not found"), "{err}");
    let (code, out, err) = s.run(&[], &["/etc/passwd"]);
    assert_eq!(code, 126, "{out}{err}");
    let (code, _, err) = s.run(&["-u", "nosuchuser"], &["true"]);
    assert_eq!(code, 125, "{err}");
}

#[test]
fn env_workdir_user() {
    let s = Store::new();
    assert_eq!(s.out(&["-e", "FOO=bar"], &["sh", "-c", "echo $FOO"]), "bar");
    assert_eq!(s.out(&["-w", "/tmp"], &["pwd"]), "/tmp");
    assert_eq!(s.out(&["-u", "65534"], &["id", "-u"]), "65534");
    assert_eq!(s.out(&["-u", "65534:7"], &["id", "-g"]), "7");
    assert_eq!(s.out(&["--entrypoint", "echo"], &["a", "b"]), "a b");
    let host = s.out(&[], &["hostname"]);
    assert_eq!(host.len(), 12, "{host}");
}

#[test]
fn memory_and_pids_limits() {
    let s = Store::new();
    assert_eq!(
        s.out(
            &["-m", "64m"],
            &["cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes"]
        ),
        (64u64 << 20).to_string()
    );
    assert_eq!(
        s.out(
            &["--pids-limit", "20"],
            &["cat", "/sys/fs/cgroup/pids/pids.max"]
        ),
        "20"
    );
}

#[test]
fn network_none_has_only_loopback() {
    let s = Store::new();
    let ifs = s.out(&["--network", "none"], &["ls", "/sys/class/net"]);
    assert_eq!(ifs, "lo");
}

#[test]
fn writes_do_not_touch_the_image() {
    let s = Store::new();
    s.out(
        &[],
        &[
            "sh",
            "-c",
            "echo x > /bin/new-file && rm /bin/cat && echo y > /etc/passwd",
        ],
    );
    let dirs = s.layer_dirs();
    assert_eq!(dirs.len(), 1);
    let d: &Path = &dirs[0];
    assert!(!d.join("bin/new-file").exists());
    assert!(d.join("bin/cat").exists());
    assert_ne!(
        std::fs::read_to_string(d.join("etc/passwd")).unwrap_or_default(),
        "y\n"
    );
    // The next container starts from the image again.
    assert_eq!(
        s.out(&[], &["sh", "-c", "ls /bin/new-file 2>&1; which cat"])
            .lines()
            .last(),
        Some("/bin/cat")
    );
}
