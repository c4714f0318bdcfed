//! `root`, `mounts`, `linux.devices`, `maskedPaths` and `readonlyPaths`,
//! each checked from inside the container (mountinfo and behaviour).

use berth_integration::{unique_id, Bundle, Runtime};
use serde_json::{json, Value};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// One line of /proc/self/mountinfo.
#[derive(Debug, Clone)]
struct Mi {
    root: String,
    mountpoint: String,
    opts: Vec<String>,
    optional: Vec<String>,
    fstype: String,
    source: String,
    super_opts: Vec<String>,
}

impl Mi {
    fn has_opt(&self, o: &str) -> bool {
        self.opts.iter().any(|x| x == o)
    }
    fn has_super(&self, o: &str) -> bool {
        self.super_opts.iter().any(|x| x == o)
    }
    fn has_optional(&self, prefix: &str) -> bool {
        self.optional.iter().any(|x| x.starts_with(prefix))
    }
}

fn parse_mountinfo(text: &str) -> Vec<Mi> {
    text.lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let f: Vec<&str> = pre.split(' ').collect();
            let p: Vec<&str> = post.split(' ').collect();
            if f.len() < 6 || p.len() < 3 {
                return None;
            }
            Some(Mi {
                root: f[3].to_string(),
                mountpoint: f[4].to_string(),
                opts: f[5].split(',').map(str::to_string).collect(),
                optional: f[6..].iter().map(|s| s.to_string()).collect(),
                fstype: p[0].to_string(),
                source: p[1].to_string(),
                super_opts: p[2].split(',').map(str::to_string).collect(),
            })
        })
        .collect()
}

/// The last (topmost) mount at `mp`.
fn mount_at<'a>(mi: &'a [Mi], mp: &str) -> &'a Mi {
    mi.iter()
        .rev()
        .find(|m| m.mountpoint == mp)
        .unwrap_or_else(|| panic!("nothing mounted at {mp}: {mi:#?}"))
}

/// Splits a script's output at a line "=====" into (before, mountinfo).
fn split_mi(out: &str) -> (String, Vec<Mi>) {
    let (a, b) = out
        .split_once("=====\n")
        .unwrap_or_else(|| panic!("no separator in {out}"));
    (a.to_string(), parse_mountinfo(b))
}

const MI: &str = "echo =====; cat /proc/self/mountinfo";

fn mounts(c: &mut Value) -> &mut Vec<Value> {
    c["mounts"].as_array_mut().unwrap()
}

/// A host mount made by a test, detached (with everything below it) on drop.
struct MountGuard(PathBuf);

impl MountGuard {
    fn bind_shared(dir: &Path) -> MountGuard {
        sh_host(&format!(
            "mount --bind {0} {0} && mount --make-shared {0}",
            dir.display()
        ));
        MountGuard(dir.to_path_buf())
    }
    fn tmpfs(dir: &Path) -> MountGuard {
        sh_host(&format!(
            "mount -t tmpfs -o size=1m tmpfs {}",
            dir.display()
        ));
        MountGuard(dir.to_path_buf())
    }
}

impl Drop for MountGuard {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

fn sh_host(script: &str) {
    let st = Command::new("sh").args(["-c", script]).status().unwrap();
    assert!(st.success(), "host: {script}");
}

/// The peer group id of the host mount at `mp` (its "shared:N").
fn host_peer_group(mp: &Path) -> String {
    let mi = parse_mountinfo(&std::fs::read_to_string("/proc/self/mountinfo").unwrap());
    let m = mount_at(&mi, &mp.to_string_lossy());
    m.optional
        .iter()
        .find_map(|o| o.strip_prefix("shared:"))
        .unwrap_or_else(|| panic!("{mp:?} is not shared: {m:?}"))
        .to_string()
}

/// `berth-runtime run` in the background, its stdout read line by line.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Running {
    fn start(rt: &Runtime, b: &Bundle, id: &str) -> Running {
        let mut child = rt
            .cmd()
            .args(["run", "--bundle"])
            .arg(b.dir())
            .arg(id)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for l in std::io::BufReader::new(out).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Running { child, lines: rx }
    }

    /// Lines up to (not including) `end`, or panic after 20 s.
    fn until(&self, end: &str) -> Vec<String> {
        let mut v = Vec::new();
        loop {
            match self.lines.recv_timeout(Duration::from_secs(20)) {
                Ok(l) if l == end => return v,
                Ok(l) => v.push(l),
                Err(e) => panic!("waiting for {end:?} ({e}); got {v:?}"),
            }
        }
    }

    fn wait(mut self) -> i32 {
        let st = self.child.wait().unwrap();
        st.code().unwrap_or(-1)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------- root

#[test]
fn readonly_root() {
    let rt = Runtime::new();
    let out = rt.sh(
        &format!("touch /newfile 2>&1; echo rc=$?; touch /tmp/x 2>&1; echo rc=$?; touch /dev/shm/ok && echo shm-ok; {MI}"),
        |c| c["root"]["readonly"] = json!(true),
    );
    let (text, mi) = split_mi(&out);
    assert_eq!(
        text,
        "touch: /newfile: Read-only file system\nrc=1\ntouch: /tmp/x: Read-only file system\nrc=1\nshm-ok\n"
    );
    assert!(mount_at(&mi, "/").has_opt("ro"), "{:?}", mount_at(&mi, "/"));

    // And writable when not asked for.
    let out = rt.sh(&format!("touch /newfile && echo ok; {MI}"), |c| {
        c["root"]["readonly"] = json!(false)
    });
    let (text, mi) = split_mi(&out);
    assert_eq!(text, "ok\n");
    assert!(mount_at(&mi, "/").has_opt("rw"));
}

#[test]
fn rootfs_propagation() {
    let rt = Runtime::new();
    // The bundle sits on a shared mount of its own, so propagation between
    // host and container can be seen.
    let mut b_slave = Bundle::new(&["true"]);
    let _shared = MountGuard::bind_shared(b_slave.dir());
    let group = host_peer_group(b_slave.dir());
    std::fs::create_dir_all(b_slave.rootfs().join("mnt/prop")).unwrap();

    // rslave (the default, and explicit): the root is a slave of the host's
    // group, host mounts propagate in, container mounts do not leak out.
    for prop in [None, Some("rslave")] {
        let mut b = Bundle::new(&["true"]);
        let _sh = MountGuard::bind_shared(b.dir());
        let group = host_peer_group(b.dir());
        std::fs::create_dir_all(b.rootfs().join("mnt/prop")).unwrap();
        b.edit(|c| {
            if let Some(p) = prop {
                c["linux"]["rootfsPropagation"] = json!(p);
            }
            c["process"]["args"] = json!(["sh", "-c", "head -1 /proc/self/mountinfo; echo ready; \
                i=0; while [ ! -e /mnt/prop/marker ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; \
                cat /mnt/prop/marker 2>&1; echo done"]);
        });
        let r = Running::start(&rt, &b, &unique_id("rprop"));
        let first = r.until("ready");
        let root = &parse_mountinfo(&first[0])[0];
        assert_eq!(root.mountpoint, "/");
        assert_eq!(
            root.optional,
            [format!("master:{group}")],
            "{prop:?}: {root:?}"
        );
        // No container mount (proc, dev, ...) came back to the host.
        let rootfs = std::fs::canonicalize(b.rootfs()).unwrap();
        let host_mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(
            !host_mi.contains(&format!("{}/", rootfs.display())),
            "container mounts leaked to the host:\n{host_mi}"
        );
        let target = b.rootfs().join("mnt/prop");
        let _t = MountGuard::tmpfs(&target);
        std::fs::write(target.join("marker"), "from-host\n").unwrap();
        assert_eq!(
            r.until("done"),
            ["from-host"],
            "{prop:?}: host mount did not propagate in"
        );
        assert_eq!(r.wait(), 0);
    }

    // private: no propagation either way. (`b` is declared before the guard
    // of its shared mount, so the mount is gone before the dir is removed.)
    let b = &mut b_slave;
    b.edit(|c| {
        c["linux"]["rootfsPropagation"] = json!("private");
        c["process"]["args"] = json!([
            "sh",
            "-c",
            "head -1 /proc/self/mountinfo; echo ready; \
            sleep 1; cat /mnt/prop/marker 2>&1; echo done"
        ]);
    });
    let r = Running::start(&rt, b, &unique_id("rprop"));
    let first = r.until("ready");
    let root = &parse_mountinfo(&first[0])[0];
    assert!(
        root.optional.is_empty(),
        "private root has propagation: {root:?} (host group {group})"
    );
    let target = b.rootfs().join("mnt/prop");
    let _t = MountGuard::tmpfs(&target);
    std::fs::write(target.join("marker"), "from-host\n").unwrap();
    assert_eq!(
        r.until("done"),
        ["cat: can't open '/mnt/prop/marker': No such file or directory"]
    );
    assert_eq!(r.wait(), 0);

    // shared: the container's root is a shared mount.
    let out = rt.sh("head -1 /proc/self/mountinfo", |c| {
        c["linux"]["rootfsPropagation"] = json!("shared")
    });
    let root = &parse_mountinfo(&out)[0];
    assert!(root.has_optional("shared:"), "{root:?}");
}

// ------------------------------------------------------------ mount types

#[test]
fn proc_sysfs_devpts_mqueue_shm() {
    let rt = Runtime::new();
    let out = rt.sh(
        &format!("cat /proc/1/cmdline | tr '\\0' ' '; echo; touch /sys/x 2>&1; {MI}"),
        |_| {},
    );
    let (text, mi) = split_mi(&out);
    // /proc is the container's own procfs: pid 1 is our shell.
    let mut lines = text.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("sh -c cat /proc/1/cmdline"),
        "{text}"
    );
    assert_eq!(
        lines.next().unwrap(),
        "touch: /sys/x: Read-only file system"
    );

    let proc_ = mount_at(&mi, "/proc");
    assert_eq!((proc_.fstype.as_str(), proc_.root.as_str()), ("proc", "/"));

    let sys = mount_at(&mi, "/sys");
    assert_eq!(sys.fstype, "sysfs");
    for o in ["ro", "nosuid", "nodev", "noexec"] {
        assert!(sys.has_opt(o), "/sys lacks {o}: {sys:?}");
    }

    let pts = mount_at(&mi, "/dev/pts");
    assert_eq!(pts.fstype, "devpts");
    for o in ["nosuid", "noexec"] {
        assert!(pts.has_opt(o), "/dev/pts lacks {o}: {pts:?}");
    }
    for o in ["gid=5", "mode=620", "ptmxmode=666"] {
        assert!(pts.has_super(o), "/dev/pts lacks {o}: {pts:?}");
    }

    let mq = mount_at(&mi, "/dev/mqueue");
    assert_eq!(mq.fstype, "mqueue");
    for o in ["nosuid", "nodev", "noexec"] {
        assert!(mq.has_opt(o), "/dev/mqueue lacks {o}: {mq:?}");
    }

    let shm = mount_at(&mi, "/dev/shm");
    assert_eq!((shm.fstype.as_str(), shm.source.as_str()), ("tmpfs", "shm"));
    assert!(shm.has_super("size=65536k"), "{shm:?}");

    let dev = mount_at(&mi, "/dev");
    assert_eq!(dev.fstype, "tmpfs");
    assert!(
        dev.has_super("mode=755") && dev.has_super("size=65536k"),
        "{dev:?}"
    );
}

#[test]
fn tmpfs_size_mode_and_owner() {
    let rt = Runtime::new();
    let out = rt.sh(
        &format!(
            "stat -c '%a %u:%g' /scratch /small; df -k /small | tail -1 | awk '{{print $2}}'; \
             dd if=/dev/zero of=/small/big bs=1k count=2048 2>&1 | grep -o 'No space left on device'; {MI}"
        ),
        |c| {
            mounts(c).push(json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
                "options": ["nosuid", "nodev", "noexec", "mode=1770", "uid=1", "gid=1", "size=2m"]}));
            mounts(c).push(json!({"destination": "/small", "type": "tmpfs", "source": "tmpfs",
                "options": ["size=1m", "mode=700"]}));
        },
    );
    let (text, mi) = split_mi(&out);
    assert_eq!(text, "1770 1:1\n700 0:0\n1024\nNo space left on device\n");
    let s = mount_at(&mi, "/scratch");
    assert_eq!(s.fstype, "tmpfs");
    for o in ["nosuid", "nodev", "noexec", "rw"] {
        assert!(s.has_opt(o), "/scratch lacks {o}: {s:?}");
    }
    for o in ["size=2048k", "mode=1770", "uid=1", "gid=1"] {
        assert!(s.has_super(o), "/scratch lacks {o}: {s:?}");
    }
}

#[test]
fn cgroup_mount_without_cgroup_namespace() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "ls /sys/fs/cgroup | tr '\\n' ' '; echo; cat /sys/fs/cgroup/memory/cgroup.procs; \
         mkdir /sys/fs/cgroup/memory/sub 2>&1; echo =====; cat /proc/self/mountinfo",
    ]);
    b.edit(|c| {
        mounts(c).push(
            json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
            "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}),
        );
    });
    let id = unique_id("cgmnt");
    let (code, out, err) = rt.run(&b, &id);
    assert_eq!(code, 0, "{err}");
    let (text, mi) = split_mi(&out);
    let lines: Vec<&str> = text.lines().collect();
    // Every v1 hierarchy of this hybrid host plus the unified one.
    for h in [
        "blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "memory", "pids", "unified",
    ] {
        assert!(
            lines[0].split(' ').any(|x| x == h),
            "no {h} in /sys/fs/cgroup: {text}"
        );
    }
    // The memory dir is the container's own cgroup: it holds the shell (pid 1).
    assert!(lines[1..].contains(&"1"), "{text}");
    assert!(
        text.contains(
            "mkdir: can't create directory '/sys/fs/cgroup/memory/sub': Read-only file system"
        ),
        "{text}"
    );
    let base = mount_at(&mi, "/sys/fs/cgroup");
    assert_eq!(base.fstype, "tmpfs");
    assert!(base.has_opt("ro"), "{base:?}");
    let mem = mount_at(&mi, "/sys/fs/cgroup/memory");
    assert_eq!(mem.fstype, "cgroup");
    assert!(mem.has_super("memory"), "{mem:?}");
    assert_eq!(
        mem.root,
        format!("/berth/{id}"),
        "without a cgroup ns the host path shows"
    );
    for o in ["ro", "nosuid", "nodev", "noexec"] {
        assert!(mem.has_opt(o), "memory lacks {o}: {mem:?}");
    }
    let uni = mount_at(&mi, "/sys/fs/cgroup/unified");
    assert_eq!(uni.fstype, "cgroup2");
}

#[test]
fn cgroup_mount_with_cgroup_namespace() {
    let rt = Runtime::new();
    let out = rt.sh(
        &format!(
            "cat /sys/fs/cgroup/memory/cgroup.procs; cat /sys/fs/cgroup/pids/cgroup.procs; {MI}"
        ),
        |c| {
            c["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .push(json!({"type": "cgroup"}));
            mounts(c).push(
                json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}),
            );
        },
    );
    let (text, mi) = split_mi(&out);
    assert!(text.lines().filter(|l| *l == "1").count() == 2, "{text}");
    for h in ["cpu", "memory", "pids", "devices", "freezer"] {
        let m = mount_at(&mi, &format!("/sys/fs/cgroup/{h}"));
        assert_eq!(m.fstype, "cgroup", "{m:?}");
        assert!(m.has_super(h), "{m:?}");
        assert_eq!(
            m.root, "/",
            "in a cgroup ns the container's cgroup is the root: {m:?}"
        );
        assert!(m.has_opt("ro"), "{m:?}");
    }
}

// ---------------------------------------------------------------- binds

#[test]
fn bind_and_rbind_with_flags() {
    let rt = Runtime::new();
    let host = tempfile::Builder::new()
        .prefix("berth-bind-")
        .tempdir()
        .unwrap();
    let d = host.path().join("dir");
    std::fs::create_dir_all(d.join("sub")).unwrap();
    std::fs::write(d.join("hello"), "hello from host\n").unwrap();
    std::fs::copy(berth_integration::busybox_path(), d.join("busybox")).unwrap();
    sh_host(&format!("mknod {} c 1 3", d.join("nulldev").display()));
    let file = host.path().join("single.conf");
    std::fs::write(&file, "single file\n").unwrap();
    // A submount: only rbind carries it into the container.
    let _sub = MountGuard::tmpfs(&d.join("sub"));
    std::fs::write(d.join("sub/inner"), "inner\n").unwrap();

    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "cat /mnt/rw/hello; echo new > /mnt/rw/made && echo rw-write-ok; /mnt/rw/busybox true && echo rw-exec-ok; \
         echo x > /mnt/rw/nulldev && echo rw-dev-ok; cat /mnt/rw/sub/inner; ls /mnt/plain/sub | wc -l; \
         cat /mnt/ro/hello; touch /mnt/ro/x 2>&1; /mnt/ro/busybox true 2>&1; echo exec-rc=$?; \
         (echo x > /mnt/ro/nulldev) 2>&1; \
         cat /etc/single.conf; (echo y >> /etc/single.conf) 2>&1; cat /mnt/rel/hello; \
         echo =====; cat /proc/self/mountinfo",
    ]);
    // A relative source is relative to the bundle.
    std::fs::create_dir(b.dir().join("reldir")).unwrap();
    std::fs::write(b.dir().join("reldir/hello"), "relative\n").unwrap();
    let src = d.to_string_lossy().into_owned();
    b.edit(|c| {
        let m = mounts(c);
        m.push(json!({"destination": "/mnt/rw", "type": "bind", "source": src, "options": ["rbind"]}));
        m.push(json!({"destination": "/mnt/plain", "type": "bind", "source": src, "options": ["bind"]}));
        m.push(json!({"destination": "/mnt/ro", "type": "bind", "source": src,
            "options": ["rbind", "ro", "nosuid", "nodev", "noexec"]}));
        m.push(json!({"destination": "/etc/single.conf", "type": "bind", "source": file, "options": ["bind", "ro"]}));
        m.push(json!({"destination": "/mnt/rel", "source": "reldir", "options": ["bind"]}));
    });
    let (code, out, err) = rt.run(&b, &unique_id("bind"));
    assert_eq!(code, 0, "{err}");
    let (text, mi) = split_mi(&out);
    assert_eq!(
        text,
        "hello from host\nrw-write-ok\nrw-exec-ok\nrw-dev-ok\ninner\n0\n\
         hello from host\ntouch: /mnt/ro/x: Read-only file system\n\
         sh: /mnt/ro/busybox: Permission denied\nexec-rc=126\n\
         sh: can't create /mnt/ro/nulldev: Permission denied\n\
         single file\nsh: can't create /etc/single.conf: Read-only file system\nrelative\n"
    );
    assert_eq!(std::fs::read_to_string(d.join("made")).unwrap(), "new\n");
    assert!(!d.join("x").exists());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "single file\n");

    let rw = mount_at(&mi, "/mnt/rw");
    assert!(
        rw.has_opt("rw") && !rw.has_opt("noexec") && !rw.has_opt("nodev"),
        "{rw:?}"
    );
    assert!(
        mi.iter()
            .any(|m| m.mountpoint == "/mnt/rw/sub" && m.fstype == "tmpfs"),
        "rbind lost the submount"
    );
    assert!(
        !mi.iter().any(|m| m.mountpoint == "/mnt/plain/sub"),
        "bind must not be recursive"
    );
    let ro = mount_at(&mi, "/mnt/ro");
    for o in ["ro", "nosuid", "nodev", "noexec"] {
        assert!(ro.has_opt(o), "/mnt/ro lacks {o}: {ro:?}");
    }
    let f = mount_at(&mi, "/etc/single.conf");
    assert!(f.has_opt("ro"), "{f:?}");
    assert!(f.root.ends_with("/single.conf"), "{f:?}");
}

#[test]
fn bind_propagation_options() {
    let rt = Runtime::new();
    let host = tempfile::Builder::new()
        .prefix("berth-bprop-")
        .tempdir()
        .unwrap();
    let d = host.path().join("shared");
    std::fs::create_dir_all(d.join("sub")).unwrap();
    let _shared = MountGuard::bind_shared(&d);
    let group = host_peer_group(&d);
    let src = d.to_string_lossy().into_owned();
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "cat /proc/self/mountinfo; echo ready; \
         i=0; while [ ! -e /mnt/slave/sub/marker ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; sleep 0.2; \
         for m in slave shared private; do cat /mnt/$m/sub/marker 2>&1; done; echo done",
    ]);
    b.edit(|c| {
        let m = mounts(c);
        for (name, opt) in [
            ("slave", "rslave"),
            ("shared", "rshared"),
            ("private", "rprivate"),
        ] {
            m.push(
                json!({"destination": format!("/mnt/{name}"), "type": "bind", "source": src,
                "options": ["rbind", opt]}),
            );
        }
    });
    let r = Running::start(&rt, &b, &unique_id("bprop"));
    let mi = parse_mountinfo(&r.until("ready").join("\n"));
    let slave = mount_at(&mi, "/mnt/slave");
    assert_eq!(slave.optional, [format!("master:{group}")], "{slave:?}");
    let shared = mount_at(&mi, "/mnt/shared");
    assert!(shared.has_optional("shared:"), "{shared:?}");
    assert!(
        !shared.optional.contains(&format!("shared:{group}")),
        "must not join the host's group: {shared:?}"
    );
    let private = mount_at(&mi, "/mnt/private");
    assert!(private.optional.is_empty(), "{private:?}");

    // A host mount under the shared dir reaches the slave and shared binds only.
    let _t = MountGuard::tmpfs(&d.join("sub"));
    std::fs::write(d.join("sub/marker"), "m\n").unwrap();
    assert_eq!(
        r.until("done"),
        [
            "m",
            "m",
            "cat: can't open '/mnt/private/sub/marker': No such file or directory"
        ]
    );
    assert_eq!(r.wait(), 0);
}

#[test]
fn mount_destination_symlinks_stay_inside_rootfs() {
    let rt = Runtime::new();
    // Host paths a naive runtime would mount onto (or create things in).
    let victim = tempfile::Builder::new()
        .prefix("berth-escape-")
        .tempdir()
        .unwrap();
    let vpath = std::fs::canonicalize(victim.path()).unwrap();
    let vrel = vpath.strip_prefix("/").unwrap().to_path_buf();
    for d in ["abs", "rel", "file"] {
        std::fs::create_dir(vpath.join(d)).unwrap();
    }
    std::fs::write(vpath.join("file/victim"), "host\n").unwrap();
    let src = tempfile::Builder::new()
        .prefix("berth-escape-src-")
        .tempdir()
        .unwrap();
    std::fs::write(src.path().join("marker"), "bound\n").unwrap();
    std::fs::write(src.path().join("file"), "container\n").unwrap();

    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "cat /evil-abs/marker; touch /evil-rel/sub/made && echo made; cat /evil-file; echo =====; cat /proc/self/mountinfo",
    ]);
    let r = b.rootfs();
    let v = vrel.display();
    // Absolute with leading "..", relative climbing far above the rootfs.
    std::os::unix::fs::symlink(format!("/../../{v}/abs"), r.join("evil-abs")).unwrap();
    std::os::unix::fs::symlink(format!("../../../../../../../{v}/rel"), r.join("evil-rel"))
        .unwrap();
    std::os::unix::fs::symlink(format!("/../../{v}/file/victim"), r.join("evil-file")).unwrap();
    let s = src.path().to_string_lossy().into_owned();
    b.edit(|c| {
        let m = mounts(c);
        m.push(json!({"destination": "/evil-abs", "type": "bind", "source": s, "options": ["rbind"]}));
        m.push(json!({"destination": "/evil-rel/sub", "type": "tmpfs", "source": "tmpfs"}));
        m.push(json!({"destination": "/evil-file", "type": "bind", "source": format!("{s}/file"), "options": ["bind"]}));
    });
    let (code, out, err) = rt.run(&b, &unique_id("escape"));
    assert_eq!(code, 0, "{err}");
    let (text, mi) = split_mi(&out);
    assert_eq!(text, "bound\nmade\ncontainer\n");
    // Inside, they sit at the symlinks' targets resolved in the rootfs.
    for sub in ["abs", "rel/sub", "file/victim"] {
        let mp = format!("/{v}/{sub}");
        assert!(
            mi.iter().any(|m| m.mountpoint == mp),
            "nothing at {mp}: {mi:#?}"
        );
    }
    // The host directories are untouched; the rootfs got the new paths.
    let list = |p: &Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(p)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert!(list(&vpath.join("abs")).is_empty(), "host dir changed");
    assert!(list(&vpath.join("rel")).is_empty(), "host dir changed");
    assert_eq!(list(&vpath.join("file")), ["victim"]);
    assert_eq!(
        std::fs::read_to_string(vpath.join("file/victim")).unwrap(),
        "host\n"
    );
    assert!(r.join(&vrel).join("abs").is_dir());
    assert!(r.join(&vrel).join("rel/sub").is_dir());
    assert!(r.join(&vrel).join("file/victim").is_file());
}

// ---------------------------------------------------------------- devices

#[test]
fn default_devices_and_dev_symlinks() {
    let rt = Runtime::new();
    let out = rt.sh(
        "stat -c '%n %F %t:%T %a %u:%g' /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty /dev/pts/ptmx; \
         for l in ptmx fd stdin stdout stderr; do readlink /dev/$l; done; \
         head -c 4 /dev/zero | od -An -tx1; echo x > /dev/full; echo rc=$?",
        |_| {},
    );
    assert_eq!(
        out,
        "/dev/null character special file 1:3 666 0:0\n\
         /dev/zero character special file 1:5 666 0:0\n\
         /dev/full character special file 1:7 666 0:0\n\
         /dev/random character special file 1:8 666 0:0\n\
         /dev/urandom character special file 1:9 666 0:0\n\
         /dev/tty character special file 5:0 666 0:0\n\
         /dev/pts/ptmx character special file 5:2 666 0:0\n\
         pts/ptmx\n/proc/self/fd\n/proc/self/fd/0\n/proc/self/fd/1\n/proc/self/fd/2\n \
         00 00 00 00\nrc=1\n"
    );
}

#[test]
fn linux_devices_are_created_with_their_attributes() {
    let rt = Runtime::new();
    let out = rt.sh(
        "stat -c '%n %F %t:%T %a %u:%g' /dev/mynull /dev/sub/myfifo; \
         (echo x > /dev/mynull) 2>&1; echo rc=$?",
        |c| {
            c["linux"]["devices"] = json!([
                {"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3, "fileMode": 0o620, "uid": 1, "gid": 1},
                {"path": "/dev/sub/myfifo", "type": "p", "major": 0, "minor": 0, "fileMode": 0o640}
            ]);
        },
    );
    // Root without CAP_DAC_OVERRIDE may not write a 0620 node owned by 1:1.
    assert_eq!(
        out,
        "/dev/mynull character special file 1:3 620 1:1\n\
         /dev/sub/myfifo fifo 0:0 640 0:0\n\
         sh: can't create /dev/mynull: Permission denied\nrc=1\n"
    );
}

// ---------------------------------------------------- masked and read-only

#[test]
fn masked_paths() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "cat /etc/secret; wc -c < /etc/secret; ls -A /opt/secretdir | wc -l; touch /opt/secretdir/x 2>&1; \
         wc -c < /proc/keys; echo =====; cat /proc/self/mountinfo",
    ]);
    std::fs::write(b.rootfs().join("etc/secret"), "s3cret\n").unwrap();
    std::fs::create_dir_all(b.rootfs().join("opt/secretdir")).unwrap();
    std::fs::write(b.rootfs().join("opt/secretdir/a"), "a\n").unwrap();
    b.edit(|c| {
        let mp = c["linux"]["maskedPaths"].as_array_mut().unwrap();
        mp.push(json!("/etc/secret"));
        mp.push(json!("/opt/secretdir"));
        mp.push(json!("/does/not/exist"));
    });
    let (code, out, err) = rt.run(&b, &unique_id("mask"));
    assert_eq!(code, 0, "{err}");
    let (text, mi) = split_mi(&out);
    assert_eq!(
        text,
        "0\n0\ntouch: /opt/secretdir/x: Read-only file system\n0\n"
    );
    let d = mount_at(&mi, "/opt/secretdir");
    assert_eq!(d.fstype, "tmpfs");
    assert!(d.has_opt("ro"), "{d:?}");
    mount_at(&mi, "/etc/secret");
    mount_at(&mi, "/proc/keys");
}

#[test]
fn readonly_paths() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "cat /data/f; touch /data/x 2>&1; (echo 1 > /proc/sys/net/ipv4/ip_forward) 2>&1; \
         echo =====; cat /proc/self/mountinfo",
    ]);
    std::fs::create_dir_all(b.rootfs().join("data")).unwrap();
    std::fs::write(b.rootfs().join("data/f"), "data\n").unwrap();
    b.edit(|c| {
        c["linux"]["readonlyPaths"]
            .as_array_mut()
            .unwrap()
            .push(json!("/data"));
    });
    let (code, out, err) = rt.run(&b, &unique_id("ropath"));
    assert_eq!(code, 0, "{err}");
    let (text, mi) = split_mi(&out);
    assert_eq!(
        text,
        "data\ntouch: /data/x: Read-only file system\nsh: can't create /proc/sys/net/ipv4/ip_forward: Read-only file system\n"
    );
    for p in ["/data", "/proc/sys", "/proc/bus", "/proc/fs", "/proc/irq"] {
        assert!(
            mount_at(&mi, p).has_opt("ro"),
            "{p}: {:?}",
            mount_at(&mi, p)
        );
    }
}
