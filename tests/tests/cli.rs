//! The rest of the runc-compatible command line: list, ps, pause/resume,
//! spec, features, --version, and the global and create flags engines rely
//! on (--preserve-fds, --no-pivot, --log/--log-format, --systemd-cgroup).

use berth_integration::{
    call, call_cmd, create, path_str as p, pid_alive, read_trim, share, started, unique_id,
    wait_file, wait_until, Bundle, Runtime,
};
use serde_json::{json, Value};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::Duration;

// ---- list / ps ----

#[test]
fn list_table_and_json() {
    let b1 = Bundle::new(&["sleep", "1000"]);
    let b2 = Bundle::new(&["sleep", "1000"]);
    let rt = Runtime::new();
    let id1 = unique_id("lista");
    let id2 = unique_id("listb");
    let pid1 = started(&rt, &b1, &id1);
    create(&rt, &b2, &id2).ok("create");
    let pid2 = rt.state(&id2)["pid"].as_i64().unwrap();

    let r = call(&rt, &["list"]);
    r.ok("list");
    let mut lines = r.out.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows.len(), 2, "{}", r.out);
    let row = |id: &str| {
        rows.iter()
            .find(|r| r[0] == id)
            .unwrap_or_else(|| panic!("{id} not listed"))
            .clone()
    };
    assert_eq!(row(&id1)[1], pid1.to_string());
    assert_eq!(row(&id1)[2], "running");
    assert_eq!(row(&id2)[1], pid2.to_string());
    assert_eq!(row(&id2)[2], "created");
    assert_eq!(
        Path::new(row(&id1)[3]),
        std::fs::canonicalize(b1.dir()).unwrap()
    );

    let r = call(&rt, &["list", "--format", "json"]);
    r.ok("list json");
    let v: Value = serde_json::from_str(&r.out).unwrap();
    let arr = v.as_array().unwrap();
    assert_eq!(arr.len(), 2);
    let get = |id: &str| arr.iter().find(|c| c["id"] == id).unwrap().clone();
    assert_eq!(get(&id1)["status"], "running");
    assert_eq!(get(&id1)["pid"], pid1);
    assert_eq!(get(&id2)["status"], "created");

    let r = call(&rt, &["list", "-q"]);
    let mut ids: Vec<&str> = r.out.lines().collect();
    ids.sort();
    let mut want = vec![id1.as_str(), id2.as_str()];
    want.sort();
    assert_eq!(ids, want);
    assert_ne!(call(&rt, &["list", "--format", "yaml"]).code, 0);
}

#[test]
fn ps_table_and_json() {
    let mut b = Bundle::new(&["sh", "-c", "sleep 1000 & touch /shared/ready; wait"]);
    let sh = share(&mut b);
    let rt = Runtime::new();
    let id = unique_id("ps");
    let init = started(&rt, &b, &id);
    assert!(wait_file(&sh.path().join("ready"), 5));
    let mut pids: Vec<i32> = Vec::new();
    assert!(wait_until(5, || {
        pids = serde_json::from_str(&call(&rt, &["ps", "--format", "json", &id]).out)
            .unwrap_or_default();
        pids.len() == 2
    }));
    assert!(pids.contains(&init), "{pids:?}");
    let child = *pids.iter().find(|p| **p != init).unwrap();
    assert!(
        std::fs::read_to_string(format!("/proc/{child}/cmdline"))
            .unwrap()
            .starts_with("sleep"),
        "second pid is not the sleep"
    );

    let r = call(&rt, &["ps", &id]);
    r.ok("ps");
    let mut lines = r.out.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    let col = header.iter().position(|h| *h == "PID").expect("PID column");
    let listed: Vec<i32> = lines
        .map(|l| l.split_whitespace().nth(col).unwrap().parse().unwrap())
        .collect();
    let mut want = pids.clone();
    want.sort();
    let mut got = listed.clone();
    got.sort();
    assert_eq!(got, want, "{}", r.out);
}

// ---- pause / resume ----

fn counter(path: &Path) -> u64 {
    for _ in 0..100 {
        if let Ok(n) = read_trim(path).parse() {
            return n;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("counter unreadable");
}

#[test]
fn pause_resume_freezes_processes() {
    let mut b = Bundle::new(&["sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /shared/n.tmp; mv /shared/n.tmp /shared/n; usleep 5000; done"]);
    let sh = share(&mut b);
    let n = sh.path().join("n");
    let rt = Runtime::new();
    let id = unique_id("pause");
    let pid = started(&rt, &b, &id);
    assert!(wait_until(5, || read_trim(&n)
        .parse::<u64>()
        .is_ok_and(|v| v > 3)));
    call(&rt, &["pause", &id]).ok("pause");
    assert_eq!(rt.status(&id), "paused");
    let fz = Path::new("/sys/fs/cgroup/freezer/berth")
        .join(&id)
        .join("freezer.state");
    assert_eq!(read_trim(&fz), "FROZEN");
    let st = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    assert!(pid_alive(pid), "{st}");
    std::thread::sleep(Duration::from_millis(50));
    let a = counter(&n);
    std::thread::sleep(Duration::from_millis(400));
    let c = counter(&n);
    assert_eq!(a, c, "counter advanced while paused");
    // A second pause and exec into a paused container are refused.
    assert_ne!(call(&rt, &["pause", &id]).code, 0);
    let r = call(&rt, &["exec", &id, "true"]);
    assert_ne!(r.code, 0, "exec into a paused container");
    assert!(r.err.contains("paused"), "{}", r.err);

    call(&rt, &["resume", &id]).ok("resume");
    assert_eq!(rt.status(&id), "running");
    assert_eq!(read_trim(&fz), "THAWED");
    assert!(
        wait_until(5, || counter(&n) > c + 3),
        "counter did not advance after resume"
    );
    assert_ne!(
        call(&rt, &["resume", &id]).code,
        0,
        "resume of a running container"
    );

    // delete --force of a paused container works.
    call(&rt, &["pause", &id]).ok("pause");
    call(&rt, &["delete", "--force", &id]).ok("delete paused");
    assert!(wait_until(5, || !pid_alive(pid)));
    assert!(!fz.parent().unwrap().exists());
}

// ---- spec / features / version ----

#[test]
fn spec_writes_config_and_refuses_overwrite() {
    let mut b = Bundle::new(&["true"]);
    std::fs::remove_file(b.dir().join("config.json")).unwrap();
    let rt = Runtime::new();
    call(&rt, &["spec", "--bundle", p(b.dir())]).ok("spec");
    let path = b.dir().join("config.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let v: Value = serde_json::from_str(&text).expect("spec writes JSON");
    assert!(v["ociVersion"].as_str().unwrap().starts_with("1."));
    assert_eq!(v["root"]["path"], "rootfs");
    assert_eq!(v["process"]["args"], json!(["sh"]));
    assert_eq!(v["process"]["terminal"], true);

    let r = call(&rt, &["spec", "--bundle", p(b.dir())]);
    assert_ne!(r.code, 0, "spec overwrote config.json");
    assert!(r.err.contains("exists"), "{}", r.err);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        text,
        "config.json changed"
    );

    // The generated config runs as is (but without a terminal).
    b.config = v;
    b.edit(|c| {
        c["process"]["terminal"] = json!(false);
        c["process"]["args"] = json!(["sh", "-c", "echo spec-ok"]);
    });
    let (code, out, err) = rt.run(&b, &unique_id("spec"));
    assert_eq!((code, out.as_str()), (0, "spec-ok\n"), "{err}");

    // --rootless adds a user namespace with mappings.
    let d = tempfile::tempdir().unwrap();
    call(&rt, &["spec", "--rootless", "--bundle", p(d.path())]).ok("spec --rootless");
    let v: Value =
        serde_json::from_slice(&std::fs::read(d.path().join("config.json")).unwrap()).unwrap();
    assert!(v["linux"]["uidMappings"].is_array(), "{v}");
    assert!(v["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["type"] == "user"));
}

#[test]
fn features_is_json() {
    let rt = Runtime::new();
    let r = call(&rt, &["features"]);
    r.ok("features");
    let v: Value = serde_json::from_str(&r.out).expect("features JSON");
    let max = v["ociVersionMax"].as_str().expect("ociVersionMax");
    assert!(max.starts_with("1."), "{max}");
    assert!(v["ociVersionMin"].is_string());
    let hooks = v["hooks"].as_array().unwrap();
    for h in [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ] {
        assert!(hooks.iter().any(|x| x == h), "hook {h} missing");
    }
    let ns = v["linux"]["namespaces"].as_array().unwrap();
    assert!(ns.iter().any(|n| n == "pid"));
}

#[test]
fn version_flag() {
    let rt = Runtime::new();
    for flag in ["--version", "-v"] {
        let r = call(&rt, &[flag]);
        r.ok(flag);
        assert!(r.out.starts_with("berth-runtime version "), "{}", r.out);
        assert!(r.out.contains("spec: 1."), "{}", r.out);
    }
}

// ---- global and create flags ----

#[test]
fn preserve_fds_passes_exactly_the_extra_fds() {
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "cat <&3 > /shared/fd3; if [ -e /proc/$$/fd/4 ]; then echo leaked > /shared/fd4; else echo closed > /shared/fd4; fi",
    ]);
    let sh = share(&mut b);
    let f3 = sh.path().join("in3");
    let f4 = sh.path().join("in4");
    std::fs::write(&f3, "preserved-data\n").unwrap();
    std::fs::write(&f4, "not-preserved\n").unwrap();
    let a = std::fs::File::open(&f3).unwrap();
    let c = std::fs::File::open(&f4).unwrap();
    let (fa, fc) = (
        std::os::fd::AsRawFd::as_raw_fd(&a),
        std::os::fd::AsRawFd::as_raw_fd(&c),
    );
    let rt = Runtime::new();
    let id = unique_id("pfds");
    let mut cmd = rt.cmd();
    cmd.args(["create", "--preserve-fds", "1", "--bundle", p(b.dir()), &id]);
    // SAFETY: only async-signal-safe fcntl/dup2 between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let x = libc::fcntl(fa, libc::F_DUPFD_CLOEXEC, 100);
            let y = libc::fcntl(fc, libc::F_DUPFD_CLOEXEC, 100);
            if x < 0 || y < 0 || libc::dup2(x, 3) < 0 || libc::dup2(y, 4) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    call_cmd(cmd).ok("create --preserve-fds 1");
    call(&rt, &["start", &id]).ok("start");
    let fd4 = sh.path().join("fd4");
    assert!(wait_until(5, || !read_trim(&fd4).is_empty()));
    assert_eq!(
        read_trim(&sh.path().join("fd3")),
        "preserved-data",
        "fd 3 not readable inside"
    );
    assert_eq!(
        read_trim(&sh.path().join("fd4")),
        "closed",
        "fd 4 beyond --preserve-fds leaked in"
    );
}

#[test]
fn no_pivot_still_confines_to_rootfs() {
    let b = Bundle::new(&[
        "sh",
        "-c",
        "[ -x /bin/busybox ] && [ ! -e /work/main ] && [ ! -e /etc/debian_version ] && echo confined",
    ]);
    let rt = Runtime::new();
    let id = unique_id("nopivot");
    let r = call(&rt, &["run", "--no-pivot", "--bundle", p(b.dir()), &id]);
    assert_eq!(r.code, 0, "{}", r.err);
    assert_eq!(r.out, "confined\n");
}

#[test]
fn log_json_records_the_error() {
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| c["root"]["path"] = json!("no-such-rootfs"));
    let rt = Runtime::new();
    let id = unique_id("logjson");
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("log.json");
    let r = call(
        &rt,
        &[
            "--log",
            p(&log),
            "--log-format",
            "json",
            "create",
            "--bundle",
            p(b.dir()),
            &id,
        ],
    );
    assert_ne!(r.code, 0);
    let text = std::fs::read_to_string(&log).expect("log file written");
    let mut errors = Vec::new();
    for l in text.lines() {
        let v: Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("log line {l:?} is not JSON: {e}"));
        assert!(v["time"].is_string(), "{l}");
        if v["level"] == "error" {
            errors.push(v["msg"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(errors.len(), 1, "{text}");
    assert!(errors[0].contains("no-such-rootfs"), "{}", errors[0]);
    assert!(!rt.root.path().join(&id).exists());
    // Text format too.
    let log2 = d.path().join("log.txt");
    let r = call(
        &rt,
        &["--log", p(&log2), "create", "--bundle", p(b.dir()), &id],
    );
    assert_ne!(r.code, 0);
    let t = std::fs::read_to_string(&log2).unwrap();
    assert!(
        t.contains("level=error") && t.contains("no-such-rootfs"),
        "{t}"
    );
}

#[test]
fn systemd_cgroup_is_not_supported() {
    let b = Bundle::new(&["true"]);
    let rt = Runtime::new();
    let id = unique_id("systemd");
    let r = call(
        &rt,
        &["--systemd-cgroup", "create", "--bundle", p(b.dir()), &id],
    );
    assert_ne!(r.code, 0);
    assert!(
        r.err.contains("systemd-cgroup") && r.err.contains("not supported"),
        "{}",
        r.err
    );
    assert_eq!(r.err.trim().lines().count(), 1, "{}", r.err);
    assert!(!rt.root.path().join(&id).exists());
    // A systemd-style cgroupsPath is refused clearly too.
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| c["linux"]["cgroupsPath"] = json!("system.slice:berth:x"));
    let r = call(&rt, &["create", "--bundle", p(b.dir()), &id]);
    assert_ne!(r.code, 0);
    assert!(r.err.contains("systemd"), "{}", r.err);
    assert!(!rt.root.path().join(&id).exists());
}
