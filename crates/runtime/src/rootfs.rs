//! Building the container's filesystem view inside its new mount namespace:
//! propagation, the rootfs bind, config mounts, devices, pivot_root, masked
//! and read-only paths.

use crate::mounts::{self, fd_path, open_in_root, sys, Kind, Mounter};
use nix::mount::{MntFlags, MsFlags};
use nix::sys::stat::{Mode, SFlag};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, Mount, Spec};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

pub use crate::mounts::{Error, Result};

/// Where each cgroup hierarchy is on the host and where the container's
/// cgroup is inside it: computed by the parent before fork.
#[derive(Debug, Clone, Default)]
pub struct CgroupMounts {
    /// (name to show under /sys/fs/cgroup, mount options, container's dir on the host)
    pub v1: Vec<(String, String, PathBuf)>,
    /// Hybrid hosts: the unified hierarchy's container dir.
    pub unified: Option<PathBuf>,
    /// Pure cgroup v2: the container's dir.
    pub v2: Option<PathBuf>,
}

impl CgroupMounts {
    /// From /proc/self/mountinfo and the container's concrete cgroup dirs.
    pub fn discover(dirs: &[PathBuf]) -> CgroupMounts {
        let mut out = CgroupMounts::default();
        let Ok(mi) = std::fs::read_to_string("/proc/self/mountinfo") else {
            return out;
        };
        for line in mi.lines() {
            let Some((pre, post)) = line.split_once(" - ") else {
                continue;
            };
            let f: Vec<&str> = pre.split(' ').collect();
            let p: Vec<&str> = post.split(' ').collect();
            if f.len() < 5 || p.len() < 3 {
                continue;
            }
            let mp = PathBuf::from(f[4]);
            let Some(dir) = dirs.iter().find(|d| d.starts_with(&mp)).cloned() else {
                continue;
            };
            match p[0] {
                "cgroup" => {
                    let opts: Vec<&str> = p[2]
                        .split(',')
                        .filter(|o| !matches!(*o, "rw" | "ro") && !o.starts_with("release_agent"))
                        .collect();
                    let name = mp
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    out.v1.push((name, opts.join(","), dir));
                }
                "cgroup2" => {
                    if mp == Path::new("/sys/fs/cgroup") {
                        out.v2 = Some(dir);
                    } else {
                        out.unified = Some(dir);
                    }
                }
                _ => {}
            }
        }
        out
    }
}

pub struct Ctx<'a> {
    pub m: &'a dyn Mounter,
    pub rootfs: &'a Path,
    pub bundle: &'a Path,
    pub spec: &'a Spec,
    pub userns: bool,
    pub cgroupns: bool,
    pub cgroups: &'a CgroupMounts,
}

/// Everything up to (not including) pivot_root. The caller runs the
/// createContainer hooks between this and `pivot`.
pub fn prepare(ctx: &Ctx) -> Result<()> {
    let linux = ctx.spec.linux().as_ref();
    let prop = linux
        .and_then(|l| l.rootfs_propagation().as_deref())
        .map(|p| {
            mounts::propagation(p)
                .ok_or_else(|| Error::Unsupported(format!("rootfsPropagation {p}")))
        })
        .transpose()?
        .unwrap_or(MsFlags::MS_SLAVE | MsFlags::MS_REC);
    ctx.m
        .mount(None, "/", None, prop, None)
        .map_err(sys("make / propagation", "/"))?;
    // pivot_root needs the new root's parent mount not to be shared, and the
    // rootfs bind below must not propagate to the host: whatever the
    // propagation asked for (a non-recursive one leaves it as it was), make
    // a shared parent private, as runc does.
    if let Some((parent, true)) = mountpoint_of(ctx.rootfs) {
        ctx.m
            .mount(None, &parent, None, MsFlags::MS_PRIVATE, None)
            .map_err(sys("make private", &parent))?;
    }
    let rootfs = ctx.rootfs.to_string_lossy();
    ctx.m
        .mount(
            Some(&rootfs),
            &rootfs,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
        )
        .map_err(sys("bind rootfs", &rootfs))?;
    let root = mounts::open_root(ctx.rootfs)?;
    let mut dev_mounted = false;
    for m in ctx.spec.mounts().iter().flatten() {
        if m.destination() == Path::new("/dev") {
            dev_mounted = true;
        }
        mount_one(ctx, &root, m)?;
    }
    let _ = dev_mounted;
    create_devices(ctx, &root)?;
    Ok(())
}

fn mount_one(ctx: &Ctx, root: &OwnedFd, m: &Mount) -> Result<()> {
    let opts = mounts::parse_options(m.options().as_deref().unwrap_or(&[]))?;
    let typ = m.typ().as_deref().unwrap_or("");
    let dest = m.destination();
    let bind = opts.bind || typ == "bind";
    if typ == "cgroup" || typ == "cgroup2" {
        return mount_cgroup(ctx, root, dest, &opts);
    }
    let source = m.source().as_ref().map(|s| {
        if bind && s.is_relative() {
            ctx.bundle.join(s)
        } else {
            s.clone()
        }
    });
    let kind = match (&source, bind) {
        (Some(s), true) => match std::fs::metadata(s) {
            Ok(md) if !md.is_dir() => Kind::File,
            Ok(_) => Kind::Dir,
            Err(e) => {
                return Err(Error::Sys {
                    op: "bind source",
                    path: s.display().to_string(),
                    source: nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::ENOENT)),
                })
            }
        },
        _ => Kind::Dir,
    };
    let mut fd = open_in_root(root, dest, kind)?;
    let mut target = fd_path(&fd);
    let shown = dest.display().to_string();
    let src = source
        .as_ref()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| typ.to_string());
    let data = opts.data_string();
    if bind {
        let mut f = MsFlags::MS_BIND;
        if opts.recursive {
            f |= MsFlags::MS_REC;
        }
        ctx.m
            .mount(Some(&src), &target, None, f, None)
            .map_err(sys("bind mount", format!("{src} on {shown}")))?;
        // The fd still names the directory under the new mount: reopen.
        fd = open_in_root(root, dest, kind)?;
        target = fd_path(&fd);
        let extra = opts.flags - (MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
        if !extra.is_empty() {
            // A remount must repeat the flags the kernel locked on the source.
            let keep = mounts::locked_flags(&target) - opts.cleared;
            let mut rf = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | extra | keep;
            if opts.recursive {
                rf |= MsFlags::MS_REC;
            }
            ctx.m
                .mount(None, &target, None, rf, None)
                .map_err(sys("remount", &shown))?;
        }
    } else {
        let mut flags = opts.flags;
        if typ == "sysfs" && ctx.userns && !netns_new(ctx.spec) {
            // sysfs cannot be mounted in a user namespace without its own
            // network namespace: bind the host's, read-only like Docker.
            ctx.m
                .mount(
                    Some("/sys"),
                    &target,
                    None,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None,
                )
                .map_err(sys("bind mount", "/sys"))?;
            fd = open_in_root(root, dest, kind)?;
            target = fd_path(&fd);
            flags = MsFlags::MS_BIND
                | MsFlags::MS_REMOUNT
                | MsFlags::MS_RDONLY
                | mounts::locked_flags(&target);
            ctx.m
                .mount(None, &target, None, flags, None)
                .map_err(sys("remount", &shown))?;
        } else {
            // mqueue/devpts in a user namespace: drop options the kernel
            // refuses there, as runc does.
            let data = if ctx.userns && typ == "devpts" {
                data.map(|d| {
                    d.split(',')
                        .filter(|o| !o.starts_with("gid="))
                        .collect::<Vec<_>>()
                        .join(",")
                })
            } else {
                data
            };
            flags.remove(MsFlags::MS_REMOUNT);
            ctx.m
                .mount(Some(&src), &target, Some(typ), flags, data.as_deref())
                .map_err(sys("mount", format!("{typ} on {shown}")))?;
            fd = open_in_root(root, dest, kind)?;
            target = fd_path(&fd);
        }
    }
    let _ = &fd;
    for p in &opts.propagation {
        ctx.m
            .mount(None, &target, None, *p, None)
            .map_err(sys("set propagation", &shown))?;
    }
    Ok(())
}

fn netns_new(spec: &Spec) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| {
            ns.iter().any(|n| {
                n.typ() == oci_spec::runtime::LinuxNamespaceType::Network && n.path().is_none()
            })
        })
}

fn mount_cgroup(ctx: &Ctx, root: &OwnedFd, dest: &Path, opts: &mounts::Options) -> Result<()> {
    let shown = dest.display().to_string();
    let flags = opts.flags | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let fd = open_in_root(root, dest, Kind::Dir)?;
    let target = fd_path(&fd);
    if let Some(dir) = &ctx.cgroups.v2 {
        if ctx.cgroupns {
            ctx.m
                .mount(Some("cgroup2"), &target, Some("cgroup2"), flags, None)
                .map_err(sys("mount cgroup2 on", &shown))?;
        } else {
            bind_ro(ctx, root, dest, dir, flags, &shown)?;
        }
        return Ok(());
    }
    // v1 or hybrid: a tmpfs with one directory per hierarchy.
    ctx.m
        .mount(
            Some("tmpfs"),
            &target,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            Some("mode=755"),
        )
        .map_err(sys("mount tmpfs on", &shown))?;
    let base = open_in_root(root, dest, Kind::Dir)?;
    let base_path = fd_path(&base);
    let mut entries: Vec<(String, Option<String>, PathBuf)> = ctx
        .cgroups
        .v1
        .iter()
        .map(|(n, o, d)| (n.clone(), Some(o.clone()), d.clone()))
        .collect();
    if let Some(u) = &ctx.cgroups.unified {
        entries.push(("unified".into(), None, u.clone()));
    }
    for (name, options, dir) in entries {
        let sub = format!("{base_path}/{name}");
        std::fs::create_dir_all(&sub).map_err(|e| Error::Sys {
            op: "mkdir",
            path: format!("{shown}/{name}"),
            source: nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
        })?;
        let subshown = format!("{shown}/{name}");
        if ctx.cgroupns {
            let (fstype, data) = match &options {
                Some(o) => ("cgroup", Some(o.as_str())),
                None => ("cgroup2", None),
            };
            ctx.m
                .mount(Some("cgroup"), &sub, Some(fstype), flags, data)
                .map_err(sys("mount cgroup on", &subshown))?;
        } else {
            bind_ro(ctx, root, &dest.join(&name), &dir, flags, &subshown)?;
        }
    }
    // cpu,cpuacct style symlinks are not needed: each mount is its own dir.
    if flags.contains(MsFlags::MS_RDONLY) {
        ctx.m
            .mount(
                None,
                &base_path,
                None,
                MsFlags::MS_REMOUNT
                    | MsFlags::MS_RDONLY
                    | MsFlags::MS_NOSUID
                    | MsFlags::MS_NODEV
                    | MsFlags::MS_NOEXEC,
                Some("mode=755"),
            )
            .map_err(sys("remount ro", &shown))?;
    }
    Ok(())
}

fn bind_ro(
    ctx: &Ctx,
    root: &OwnedFd,
    dest: &Path,
    src: &Path,
    flags: MsFlags,
    shown: &str,
) -> Result<()> {
    let s = src.to_string_lossy();
    let fd = open_in_root(root, dest, Kind::Dir)?;
    ctx.m
        .mount(
            Some(&s),
            &fd_path(&fd),
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
        )
        .map_err(sys("bind cgroup", shown))?;
    let fd = open_in_root(root, dest, Kind::Dir)?;
    let target = fd_path(&fd);
    let target = target.as_str();
    let rf = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | (flags - MsFlags::MS_BIND - MsFlags::MS_REC);
    ctx.m
        .mount(None, target, None, rf | mounts::locked_flags(target), None)
        .map_err(sys("remount cgroup", shown))
}

/// The devices every container gets (config-spec "Default Devices").
pub fn default_devices() -> Vec<(&'static str, u64, u64)> {
    vec![
        ("/dev/null", 1, 3),
        ("/dev/zero", 1, 5),
        ("/dev/full", 1, 7),
        ("/dev/random", 1, 8),
        ("/dev/urandom", 1, 9),
        ("/dev/tty", 5, 0),
    ]
}

fn create_devices(ctx: &Ctx, root: &OwnedFd) -> Result<()> {
    let old = nix::sys::stat::umask(Mode::empty());
    let r = (|| {
        let listed: Vec<LinuxDevice> = ctx
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.devices().clone())
            .unwrap_or_default();
        for (path, major, minor) in default_devices() {
            if listed.iter().any(|d| d.path() == Path::new(path)) {
                continue;
            }
            make_device(
                ctx,
                root,
                Path::new(path),
                SFlag::S_IFCHR,
                major,
                minor,
                0o666,
                0,
                0,
            )?;
        }
        for d in &listed {
            let kind = match d.typ() {
                LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
                LinuxDeviceType::B => SFlag::S_IFBLK,
                LinuxDeviceType::P => SFlag::S_IFIFO,
                LinuxDeviceType::A => {
                    return Err(Error::Unsupported(format!(
                        "device type 'a' for {}",
                        d.path().display()
                    )))
                }
            };
            if !d.path().starts_with("/dev") {
                return Err(Error::Unsupported(format!(
                    "device {} outside /dev",
                    d.path().display()
                )));
            }
            make_device(
                ctx,
                root,
                d.path(),
                kind,
                d.major() as u64,
                d.minor() as u64,
                d.file_mode().unwrap_or(0o666),
                d.uid().unwrap_or(0),
                d.gid().unwrap_or(0),
            )?;
        }
        // Symlinks runc makes in /dev.
        for (link, target) in [
            ("/dev/fd", "/proc/self/fd"),
            ("/dev/stdin", "/proc/self/fd/0"),
            ("/dev/stdout", "/proc/self/fd/1"),
            ("/dev/stderr", "/proc/self/fd/2"),
            ("/dev/ptmx", "pts/ptmx"),
        ] {
            let fd = open_in_root(root, Path::new("/dev"), Kind::Dir)?;
            let name = &link[5..];
            if link == "/dev/ptmx" {
                let _ = nix::unistd::unlinkat(&fd, name, nix::unistd::UnlinkatFlags::NoRemoveDir);
            }
            match nix::unistd::symlinkat(target, &fd, name) {
                Ok(()) | Err(nix::Error::EEXIST) => {}
                Err(e) => return Err(sys("symlink", link)(e)),
            }
        }
        Ok(())
    })();
    nix::sys::stat::umask(old);
    r
}

#[allow(clippy::too_many_arguments)]
fn make_device(
    ctx: &Ctx,
    root: &OwnedFd,
    path: &Path,
    kind: SFlag,
    major: u64,
    minor: u64,
    mode: u32,
    uid: u32,
    gid: u32,
) -> Result<()> {
    let shown = path.display().to_string();
    let parent = path.parent().unwrap_or(Path::new("/dev"));
    let name = path
        .file_name()
        .ok_or_else(|| Error::Unsupported(shown.clone()))?;
    let dir = open_in_root(root, parent, Kind::Dir)?;
    // Work through the real directory (O_PATH fds cannot be used with mknodat).
    let dir = nix::fcntl::open(
        fd_path(&dir).as_str(),
        nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(sys("open", parent.display()))?;
    if ctx.userns {
        // mknod is not allowed in a user namespace: bind the host's node.
        let fd = open_in_root(root, path, Kind::File)?;
        let host = path.to_string_lossy();
        ctx.m
            .mount(Some(&host), &fd_path(&fd), None, MsFlags::MS_BIND, None)
            .map_err(sys("bind device", &shown))?;
        return Ok(());
    }
    let _ = nix::unistd::unlinkat(&dir, name, nix::unistd::UnlinkatFlags::NoRemoveDir);
    let dev = nix::sys::stat::makedev(major, minor);
    nix::sys::stat::mknodat(
        &dir,
        name,
        kind,
        Mode::from_bits_truncate(mode & 0o7777),
        dev,
    )
    .map_err(sys("mknod", &shown))?;
    nix::unistd::fchownat(
        &dir,
        name,
        Some(nix::unistd::Uid::from_raw(uid)),
        Some(nix::unistd::Gid::from_raw(gid)),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(sys("chown", &shown))?;
    Ok(())
}

/// Switch the process's root to the rootfs: pivot_root, or with `no_pivot`
/// a move mount plus chroot (for ramfs roots where pivot_root fails).
pub fn pivot(m: &dyn Mounter, rootfs: &Path, no_pivot: bool) -> Result<()> {
    use nix::fcntl::{open, OFlag};
    let shown = rootfs.display().to_string();
    if no_pivot {
        nix::unistd::chdir(rootfs).map_err(sys("chdir", &shown))?;
        m.mount(Some(&shown), "/", None, MsFlags::MS_MOVE, None)
            .map_err(sys("move mount", &shown))?;
        nix::unistd::chroot(".").map_err(sys("chroot", &shown))?;
        nix::unistd::chdir("/").map_err(sys("chdir", "/"))?;
        return Ok(());
    }
    let old = open(
        "/",
        OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(sys("open", "/"))?;
    let new = open(
        rootfs,
        OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(sys("open", &shown))?;
    nix::unistd::fchdir(&new).map_err(sys("fchdir", &shown))?;
    nix::unistd::pivot_root(".", ".").map_err(sys("pivot_root", &shown))?;
    nix::unistd::fchdir(&old).map_err(sys("fchdir", "old root"))?;
    // Keep our unmount of the old root from reaching the host.
    m.mount(None, ".", None, MsFlags::MS_SLAVE | MsFlags::MS_REC, None)
        .map_err(sys("make old root slave", "/"))?;
    m.umount(".", MntFlags::MNT_DETACH)
        .map_err(sys("unmount old root", "/"))?;
    nix::unistd::chdir("/").map_err(sys("chdir", "/"))?;
    Ok(())
}

/// After pivot: sysctls, masked and read-only paths, read-only root.
pub fn finish(m: &dyn Mounter, spec: &Spec) -> Result<()> {
    let linux = spec.linux().as_ref();
    // An explicit rootfsPropagation applies to the new root itself (runc
    // does this after pivot_root): before it, `prepare` could only set it on
    // the old tree, and a shared root would have been made private there.
    if let Some(p) = linux.and_then(|l| l.rootfs_propagation().as_deref()) {
        let flags = mounts::propagation(p)
            .ok_or_else(|| Error::Unsupported(format!("rootfsPropagation {p}")))?;
        m.mount(None, "/", None, flags, None)
            .map_err(sys("set rootfsPropagation", "/"))?;
    }
    if let Some(sysctl) = linux.and_then(|l| l.sysctl().as_ref()) {
        let mut keys: Vec<&String> = sysctl.keys().collect();
        keys.sort();
        for k in keys {
            let path = format!("/proc/sys/{}", k.replace('.', "/"));
            std::fs::write(&path, sysctl[k].as_bytes()).map_err(|e| Error::Sys {
                op: "write sysctl",
                path: k.clone(),
                source: nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
            })?;
        }
    }
    for p in linux
        .and_then(|l| l.readonly_paths().clone())
        .unwrap_or_default()
    {
        match m.mount(Some(&p), &p, None, MsFlags::MS_BIND | MsFlags::MS_REC, None) {
            Ok(()) => {}
            Err(nix::Error::ENOENT) => continue,
            Err(e) => return Err(sys("bind", &p)(e)),
        }
        let f = MsFlags::MS_BIND
            | MsFlags::MS_REMOUNT
            | MsFlags::MS_RDONLY
            | MsFlags::MS_REC
            | mounts::locked_flags(&p);
        m.mount(None, &p, None, f, None)
            .map_err(sys("remount ro", &p))?;
    }
    for p in linux
        .and_then(|l| l.masked_paths().clone())
        .unwrap_or_default()
    {
        let md = match std::fs::metadata(&p) {
            Ok(md) => md,
            Err(_) => continue,
        };
        let r = if md.is_dir() {
            m.mount(Some("tmpfs"), &p, Some("tmpfs"), MsFlags::MS_RDONLY, None)
        } else {
            m.mount(Some("/dev/null"), &p, None, MsFlags::MS_BIND, None)
        };
        match r {
            Ok(()) | Err(nix::Error::ENOENT) => {}
            Err(e) => return Err(sys("mask", &p)(e)),
        }
    }
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        let f =
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | mounts::locked_flags("/");
        m.mount(None, "/", None, f, None)
            .map_err(sys("remount ro", "/"))?;
    }
    Ok(())
}

/// The mount point that contains `path` (longest prefix in mountinfo; the
/// topmost of stacked mounts) and whether that mount is shared.
fn mountpoint_of(path: &Path) -> Option<(String, bool)> {
    let mi = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mut best: Option<(String, bool)> = None;
    for line in mi.lines() {
        let pre = line.split(" - ").next()?;
        let mp = pre.split(' ').nth(4)?;
        if path.starts_with(mp) && best.as_ref().is_none_or(|b| mp.len() >= b.0.len()) {
            let shared = pre.split(' ').skip(6).any(|f| f.starts_with("shared:"));
            best = Some((mp.to_string(), shared));
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    #[derive(Default)]
    struct Rec(RefCell<Vec<String>>);
    impl Mounter for Rec {
        fn mount(
            &self,
            s: Option<&str>,
            t: &str,
            ty: Option<&str>,
            f: MsFlags,
            d: Option<&str>,
        ) -> nix::Result<()> {
            self.0
                .borrow_mut()
                .push(format!("mount {s:?} {t} {ty:?} {:x} {d:?}", f.bits()));
            Ok(())
        }
        fn umount(&self, t: &str, _f: MntFlags) -> nix::Result<()> {
            self.0.borrow_mut().push(format!("umount {t}"));
            Ok(())
        }
    }

    #[test]
    fn prepare_orders_propagation_rootfs_then_mounts() {
        let t = tempfile::tempdir().unwrap();
        let rootfs = t.path().join("rootfs");
        std::fs::create_dir_all(rootfs.join("dev")).unwrap();
        let spec: Spec = serde_json::from_str(
            r#"{"ociVersion":"1.0.0","root":{"path":"rootfs"},
                "mounts":[{"destination":"/proc","type":"proc","source":"proc"},
                          {"destination":"/data","type":"bind","source":"/tmp","options":["rbind","ro"]}],
                "linux":{"rootfsPropagation":"private","devices":[]}}"#,
        )
        .unwrap();
        let rec = Rec::default();
        let cg = CgroupMounts::default();
        // mknod needs root; the recording test runs the mount plan with the
        // user namespace path (bind devices) so it works unprivileged too.
        let ctx = Ctx {
            m: &rec,
            rootfs: &rootfs,
            bundle: t.path(),
            spec: &spec,
            userns: true,
            cgroupns: false,
            cgroups: &cg,
        };
        prepare(&ctx).unwrap();
        // Where the test's tmp dir sits on a shared mount, `prepare` first
        // makes that mount private: not part of the order checked here.
        let private = format!(" None {:x} None", MsFlags::MS_PRIVATE.bits());
        let calls: Vec<String> = rec
            .0
            .borrow()
            .iter()
            .enumerate()
            .filter(|(i, c)| *i == 0 || !(c.starts_with("mount None /") && c.ends_with(&private)))
            .map(|(_, c)| c.clone())
            .collect();
        assert!(calls[0].starts_with("mount None / None"), "{}", calls[0]);
        assert!(calls[0].contains(&format!("{:x}", MsFlags::MS_PRIVATE.bits())));
        assert!(
            calls[1].contains("rootfs")
                && calls[1].contains(&format!(
                    "{:x}",
                    (MsFlags::MS_BIND | MsFlags::MS_REC).bits()
                ))
        );
        assert!(calls[2].contains("Some(\"proc\")"), "{}", calls[2]);
        assert!(calls[3].contains("Some(\"/tmp\")"), "{}", calls[3]);
        // ro bind needs a remount.
        assert!(calls[4].contains("None /proc/self/fd/"), "{}", calls[4]);
        // then the six default devices, bound from the host in a user ns.
        assert_eq!(
            calls.iter().filter(|c| c.contains("Some(\"/dev/")).count(),
            6
        );
        assert!(rootfs.join("data").is_dir());
        assert!(rootfs.join("dev/null").is_file());
        assert_eq!(
            std::fs::read_link(rootfs.join("dev/ptmx")).unwrap(),
            Path::new("pts/ptmx")
        );
    }
}
