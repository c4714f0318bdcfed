//! How containers sit on the host when nothing happens: the store's tree
//! parents carry ext4's Orlov flag, and an idle container's monitor sleeps.
//! Each test's [`Ctx`] removes what is left of its containers when dropped.

use berth_integration::containers::*;
use std::time::Duration;

/// The store's parents of independent trees (layers, container dirs,
/// volumes) carry ext4's Orlov top-dir flag (`chattr +T`), so a store made
/// right after another was deleted does not crawl through the deleted
/// inodes (berth_image::topdir).
#[test]
fn store_tree_parents_are_orlov_top_dirs_on_ext4() {
    let c = Ctx::new();
    let fs = std::process::Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(c.root())
        .output()
        .unwrap();
    if String::from_utf8_lossy(&fs.stdout).trim() != "ext2/ext3" {
        eprintln!("skipped: the test store is not on ext4");
        return;
    }
    c.ok(&["run", "--rm", "-v", "orlov-vol:/data", IMG, "true"]);
    for d in ["layers", "containers", "volumes"] {
        let o = std::process::Command::new("lsattr")
            .arg("-d")
            .arg(c.root().join(d))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&o.stdout);
        let attrs = text.split_whitespace().next().unwrap_or("");
        assert!(
            o.status.success() && attrs.contains('T'),
            "{d}: lsattr says {text:?}"
        );
    }
}

/// An idle detached container's monitor sleeps: no timer wakes it (100 idle
/// containers must not cost 1000 wakeups a second), with and without a
/// terminal.
#[test]
fn an_idle_monitor_does_not_wake_up() {
    let c = Ctx::new();
    let switches = |pid: i32| -> u64 {
        let st = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        st.lines()
            .filter(|l| {
                l.starts_with("voluntary_ctxt_switches")
                    || l.starts_with("nonvoluntary_ctxt_switches")
            })
            .map(|l| l.split_whitespace().last().unwrap().parse::<u64>().unwrap())
            .sum()
    };
    for flags in [&["-d"][..], &["-d", "-t"][..]] {
        let mut args = vec!["run"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&[IMG, "sleep", "1000"]);
        let id = c.ok(&args).trim().to_string();
        let mon = c.monitors(Some(&id));
        assert_eq!(mon.len(), 1, "{flags:?}: one monitor for {id}");
        // Let the start settle (the monitor execs berth-monitor).
        std::thread::sleep(Duration::from_millis(300));
        let before = switches(mon[0]);
        std::thread::sleep(Duration::from_millis(1500));
        let after = switches(mon[0]);
        assert!(
            after - before <= 2,
            "{flags:?}: the idle monitor woke {} times in 1.5 s",
            after - before
        );
        c.ok(&["rm", "-f", &id]);
    }
}

/// Unmounts a mount point when dropped (even when the test fails).
struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// berth runs its monitor from `<root>/init`: a store whose `init` is on a
/// noexec mount gets one clear error at start, not a container killed once
/// its monitor cannot exec; with exec allowed again it runs.
#[test]
fn a_noexec_store_is_refused_with_a_clear_error() {
    let c = Ctx::new();
    let init = c.root().join("init");
    std::fs::create_dir_all(&init).unwrap();
    let st = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "noexec,size=16m", "berth-noexec-test"])
        .arg(&init)
        .status()
        .unwrap();
    assert!(st.success());
    let guard = Unmount(init.clone());
    let o = c.b(&["run", "-d", "--name", "nx", IMG, "sleep", "100"]);
    assert_eq!(o.code, 125, "{}", o.text());
    assert!(o.err.contains("noexec"), "{}", o.text());
    assert_eq!(o.err.trim().lines().count(), 1, "{}", o.text());
    assert_ne!(c.state("nx")["Status"], "running");
    assert!(c.monitors(None).is_empty(), "{:?}", c.monitors(None));
    drop(guard);
    c.ok(&["start", "nx"]);
    assert_eq!(c.state("nx")["Status"], "running");
    c.ok(&["rm", "-f", "nx"]);
}
