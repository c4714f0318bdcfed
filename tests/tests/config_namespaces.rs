//! `linux.namespaces`, user-namespace id mappings and `linux.sysctl`, each
//! checked from inside the container.

use berth_integration::{unique_id, wait_until, Bundle, Runtime};
use serde_json::{json, Value};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A host process spawned by a test, killed and reaped on drop.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A named network namespace (`ip netns add`), deleted on drop.
struct NetnsGuard(String);

impl NetnsGuard {
    fn new(name: &str) -> NetnsGuard {
        let st = Command::new("ip")
            .args(["netns", "add", name])
            .status()
            .expect("ip netns add");
        assert!(st.success(), "ip netns add {name}");
        NetnsGuard(name.to_string())
    }
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.0])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Container ids left as state dirs under the runtime's root.
fn leftovers(rt: &Runtime) -> Vec<String> {
    std::fs::read_dir(rt.root.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect()
}

fn ns_inode(path: impl AsRef<Path>) -> u64 {
    std::fs::metadata(path.as_ref())
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.as_ref().display()))
        .ino()
}

fn set_namespaces(c: &mut Value, ns: Value) {
    c["linux"]["namespaces"] = ns;
}

#[test]
fn pid_namespace_makes_the_process_pid_1() {
    let rt = Runtime::new();
    let out = rt.sh(
        "echo $$; cat /proc/self/stat | cut -d' ' -f4; ls /proc | grep -c '^[0-9]'",
        |_| {},
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1", "the shell is not pid 1: {out}");
    // cat's parent is the shell, pid 1.
    assert_eq!(lines[1], "1", "{out}");
    // Only the shell, cat/ls and grep exist in the new pid namespace.
    let n: u32 = lines[2].parse().unwrap();
    assert!(
        n <= 4,
        "too many processes visible in the pid namespace: {out}"
    );

    // Without a pid namespace the shell is not pid 1.
    let out = rt.sh("echo $$", |c| {
        set_namespaces(
            c,
            json!([{"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}]),
        );
    });
    assert_ne!(out.trim(), "1", "no pid namespace was requested");
}

#[test]
fn uts_namespace_sets_hostname_and_domainname() {
    let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let host_domain = std::fs::read_to_string("/proc/sys/kernel/domainname").unwrap();
    let rt = Runtime::new();
    let out = rt.sh(
        "hostname; cat /proc/sys/kernel/hostname /proc/sys/kernel/domainname",
        |c| {
            c["hostname"] = json!("uts-inside");
            c["domainname"] = json!("berth.example");
        },
    );
    assert_eq!(out, "uts-inside\nuts-inside\nberth.example\n");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap(),
        host_name
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/domainname").unwrap(),
        host_domain
    );
}

#[test]
fn ipc_namespace_is_new_and_absent_without_it() {
    let host = ns_inode("/proc/self/ns/ipc");
    let rt = Runtime::new();
    let inside = rt.sh("stat -L -c %i /proc/self/ns/ipc", |_| {});
    assert_ne!(inside.trim().parse::<u64>().unwrap(), host);

    let inside = rt.sh("stat -L -c %i /proc/self/ns/ipc", |c| {
        set_namespaces(
            c,
            json!([{"type": "pid"}, {"type": "network"}, {"type": "uts"}, {"type": "mount"}]),
        );
        // mqueue belongs to the ipc namespace; the host's may not be mounted over.
        let m = c["mounts"].as_array_mut().unwrap();
        m.retain(|m| m["type"] != "mqueue");
    });
    assert_eq!(
        inside.trim().parse::<u64>().unwrap(),
        host,
        "no ipc namespace was requested"
    );
}

#[test]
fn network_namespace_has_only_loopback() {
    let host = ns_inode("/proc/self/ns/net");
    let rt = Runtime::new();
    let out = rt.sh(
        "stat -L -c %i /proc/self/ns/net; tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '; ls /sys/class/net",
        |_| {},
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_ne!(lines[0].parse::<u64>().unwrap(), host);
    assert_eq!(&lines[1..], ["lo", "lo"], "{out}");
}

#[test]
fn mount_namespace_keeps_container_mounts_off_the_host() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "30"]);
    let id = unique_id("mntns");
    let (ok, err) = rt.try_create(&b, &id);
    assert!(ok, "create: {err}");
    let pid = rt.state(&id)["pid"].as_i64().unwrap();
    // Host and container mount namespaces differ.
    assert_ne!(
        ns_inode("/proc/self/ns/mnt"),
        ns_inode(format!("/proc/{pid}/ns/mnt"))
    );
    // The container's mounts (rootfs bind, /proc, /dev, ...) exist only in its namespace.
    let rootfs = std::fs::canonicalize(b.rootfs()).unwrap();
    let rootfs = rootfs.to_string_lossy();
    let host_mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !host_mi.contains(rootfs.as_ref()),
        "container mounts leaked to the host:\n{host_mi}"
    );
    let theirs = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    let procs: Vec<&str> = theirs
        .lines()
        .filter(|l| l.split(' ').nth(4) == Some("/proc"))
        .collect();
    assert_eq!(procs.len(), 1, "{theirs}");
    assert!(procs[0].contains(" - proc "), "{theirs}");
    let o = rt.out(&["delete", "--force", &id]);
    assert!(o.status.success());
}

#[test]
fn cgroup_namespace_shows_root_cgroup() {
    let rt = Runtime::new();
    let out = rt.sh("cat /proc/self/cgroup", |c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "cgroup"}));
    });
    assert!(!out.is_empty());
    for l in out.lines() {
        assert!(l.ends_with(":/"), "cgroup namespace root is not /: {out}");
    }

    // Without a cgroup namespace the container's real cgroup shows.
    let mut b = Bundle::new(&["cat", "/proc/self/cgroup"]);
    b.edit(|_| {});
    let id = unique_id("nocgns");
    let (code, out, err) = rt.run(&b, &id);
    assert_eq!(code, 0, "{err}");
    let mem = out
        .lines()
        .find(|l| l.split(':').nth(1) == Some("memory"))
        .unwrap_or_else(|| panic!("no memory line: {out}"));
    assert!(mem.ends_with(&format!("/berth/{id}")), "{out}");
}

/// Recursively chown a tree (lchown, so symlinks are not followed).
fn chown_tree(p: &Path, uid: u32, gid: u32) {
    let st = Command::new("chown")
        .args(["-R", "-h", &format!("{uid}:{gid}")])
        .arg(p)
        .status()
        .unwrap();
    assert!(st.success());
}

fn chmod(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn user_namespace_maps_ids() {
    let rt = Runtime::new();
    let data = tempfile::Builder::new()
        .prefix("berth-userns-data-")
        .tempdir()
        .unwrap();
    chown_tree(data.path(), 100000, 100000);
    chmod(data.path(), 0o755);
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map; touch /data/made-inside; stat -c '%u:%g' /data/made-inside",
    ]);
    chown_tree(&b.rootfs(), 100000, 100000);
    chmod(b.dir(), 0o755);
    let src = data.path().to_string_lossy().into_owned();
    b.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "user"}));
        c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/data", "type": "bind", "source": src, "options": ["rbind", "rw"]
        }));
    });
    let (code, out, err) = rt.run(&b, &unique_id("userns"));
    assert_eq!(code, 0, "stdout={out} stderr={err}");
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines[0], ["0"], "{out}");
    assert_eq!(lines[1], ["0"], "{out}");
    assert_eq!(lines[2], ["0", "100000", "65536"], "{out}");
    assert_eq!(lines[3], ["0", "100000", "65536"], "{out}");
    assert_eq!(lines[4], ["0:0"], "{out}");
    let md = std::fs::metadata(data.path().join("made-inside")).unwrap();
    assert_eq!(
        (md.uid(), md.gid()),
        (100000, 100000),
        "file made by container root is not host 100000"
    );
}

#[test]
fn joins_existing_network_namespace_by_path() {
    // A named netns (ip netns), removed by the guard whatever happens.
    let name = unique_id("berth-nsjoin");
    let _ns = NetnsGuard::new(&name);
    let path = format!("/run/netns/{name}");
    let target = ns_inode(&path);
    assert_ne!(target, ns_inode("/proc/self/ns/net"));
    let rt = Runtime::new();
    let out = rt.sh("stat -L -c %i /proc/self/ns/net", |c| {
        set_namespaces(
            c,
            json!([{"type": "pid"}, {"type": "network", "path": path}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}]),
        );
    });
    assert_eq!(out.trim().parse::<u64>().unwrap(), target);
}

#[test]
fn joins_namespaces_of_a_running_process() {
    // A host process in its own net and uts namespaces with its own hostname.
    let child = Command::new("unshare")
        .args([
            "--net",
            "--uts",
            "sh",
            "-c",
            "hostname joined-uts && exec sleep 1000",
        ])
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn unshare");
    let guard = ChildGuard(child);
    let pid = guard.0.id();
    let host_uts = ns_inode("/proc/self/ns/uts");
    assert!(
        wait_until(10, || {
            std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|p| p.ends_with("sleep"))
                && ns_inode(format!("/proc/{pid}/ns/uts")) != host_uts
        }),
        "unshare did not get going"
    );
    let net = ns_inode(format!("/proc/{pid}/ns/net"));
    let uts = ns_inode(format!("/proc/{pid}/ns/uts"));
    let rt = Runtime::new();
    let out = rt.sh(
        "stat -L -c %i /proc/self/ns/net /proc/self/ns/uts; hostname",
        |c| {
            c.as_object_mut().unwrap().remove("hostname");
            set_namespaces(
                c,
                json!([
                    {"type": "pid"},
                    {"type": "network", "path": format!("/proc/{pid}/ns/net")},
                    {"type": "uts", "path": format!("/proc/{pid}/ns/uts")},
                    {"type": "ipc"},
                    {"type": "mount"}
                ]),
            );
        },
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0].parse::<u64>().unwrap(), net, "{out}");
    assert_eq!(lines[1].parse::<u64>().unwrap(), uts, "{out}");
    assert_eq!(lines[2], "joined-uts", "{out}");
    drop(guard);
}

#[test]
fn unknown_namespace_type_is_rejected() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "bogus"}));
    });
    let id = unique_id("badns");
    let (ok, err) = rt.try_create(&b, &id);
    assert!(!ok, "create accepted an unknown namespace");
    assert!(
        err.contains("bogus"),
        "error does not name the bad namespace: {err}"
    );
    assert!(
        leftovers(&rt).is_empty(),
        "state left behind: {:?}",
        leftovers(&rt)
    );
    assert!(!Path::new(&format!("/sys/fs/cgroup/memory/berth/{id}")).exists());
}

#[test]
fn sysctl_is_applied_inside_namespaces() {
    let host_fwd = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let host_shmmax = std::fs::read_to_string("/proc/sys/kernel/shmmax").unwrap();
    let want_fwd = if host_fwd.trim() == "1" { "0" } else { "1" };
    let rt = Runtime::new();
    let out = rt.sh(
        "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmax",
        |c| {
            c["linux"]["sysctl"] =
                json!({"net.ipv4.ip_forward": want_fwd, "kernel.shmmax": "123456789"});
        },
    );
    assert_eq!(out, format!("{want_fwd}\n123456789\n"));
    // The host's values are untouched.
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        host_fwd
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/shmmax").unwrap(),
        host_shmmax
    );
}

#[test]
fn sysctl_of_a_shared_namespace_is_rejected() {
    // Each would change the host's value: a net.* sysctl without a network
    // namespace, an ipc one without an ipc namespace, and one that no
    // namespace covers. The host's current values are used so a runtime that
    // wrongly accepts them changes nothing.
    let host = |k: &str| -> String {
        std::fs::read_to_string(format!("/proc/sys/{}", k.replace('.', "/")))
            .unwrap()
            .trim()
            .to_string()
    };
    let all = json!([{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}]);
    let no_net = json!([{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}]);
    let no_ipc = json!([{"type": "pid"}, {"type": "network"}, {"type": "uts"}, {"type": "mount"}]);
    for (key, ns) in [
        ("net.ipv4.ip_forward", no_net),
        ("kernel.shmmax", no_ipc),
        ("vm.swappiness", all),
    ] {
        let rt = Runtime::new();
        let mut b = Bundle::new(&["true"]);
        b.edit(|c| {
            set_namespaces(c, ns);
            if key == "kernel.shmmax" {
                c["mounts"]
                    .as_array_mut()
                    .unwrap()
                    .retain(|m| m["type"] != "mqueue");
            }
            c["linux"]["sysctl"] = json!({key: host(key)});
        });
        let (ok, err) = rt.try_create(&b, &unique_id("sysctlhost"));
        assert!(
            !ok,
            "sysctl {key} was accepted without a namespace of its own"
        );
        assert!(err.contains(key), "{err}");
        assert!(
            leftovers(&rt).is_empty(),
            "state left behind: {:?}",
            leftovers(&rt)
        );
    }
}
