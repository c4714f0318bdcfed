//! The main job end to end, as the README's demo runs it: a busybox base
//! image (`berth import`), a container with limits, a file copied in and a
//! setting changed, `berth commit`, `berth push` to a real registry on
//! loopback, the local image removed, `berth pull` back, run: the change is
//! there. skopeo and podman read the pushed image and agree with berth.

use berth_integration::engine::{text, Store};
use berth_integration::images;
use berth_integration::podman::Podman;
use berth_integration::registry::Registry;
use serde_json::Value;

/// Removes the named containers whatever happens to the test.
struct Containers<'a>(&'a Store, Vec<&'static str>);

impl Drop for Containers<'_> {
    fn drop(&mut self) {
        for c in &self.1 {
            let _ = self.0.berth(&["rm", "-f", c]);
        }
    }
}

fn import_busybox(s: &Store, name: &str) {
    let tar = berth_integration::containers::rootfs_tar();
    s.ok(&[
        "import",
        "--change",
        r#"CMD ["sh"]"#,
        tar.to_str().unwrap(),
        name,
    ]);
}

#[test]
fn import_run_cp_commit_push_pull_run() {
    let reg = Registry::start();
    let s = Store::new();
    let _guard = Containers(&s, vec!["job"]);
    import_busybox(&s, "job/base:1");

    let id = s.ok(&[
        "run",
        "-d",
        "--name",
        "job",
        "-m",
        "64m",
        "--pids-limit",
        "20",
        "job/base:1",
        "sleep",
        "3600",
    ]);
    assert_eq!(id.trim().len(), 64, "{id}");
    let limit = s.ok(&[
        "exec",
        "job",
        "sh",
        "-c",
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max",
    ]);
    assert_eq!(limit.trim(), "67108864");

    let work = tempfile::tempdir().unwrap();
    let conf = work.path().join("app.conf");
    std::fs::write(&conf, "greeting=hello\n").unwrap();
    s.ok(&["cp", conf.to_str().unwrap(), "job:/etc/app.conf"]);
    s.ok(&[
        "exec",
        "job",
        "sed",
        "-i",
        "s/hello/hello-from-berth/",
        "/etc/app.conf",
    ]);
    let diff = s.ok(&["diff", "job"]);
    assert!(diff.lines().any(|l| l == "A /etc/app.conf"), "{diff}");
    assert!(
        !diff.contains("/etc/hosts"),
        "mount points leak into diff: {diff}"
    );

    let pushed = reg.image_ref("team/app:1");
    let new_id = s.ok(&[
        "commit",
        "-a",
        "Jane <jane@example.com>",
        "-m",
        "app config",
        "-c",
        r#"CMD ["cat", "/etc/app.conf"]"#,
        "job",
        &pushed,
    ]);
    let new_id = new_id.trim().to_string();
    assert!(new_id.starts_with("sha256:"), "{new_id}");
    s.ok(&["rm", "-f", "job"]);

    let local = s.inspect(&pushed);
    assert_eq!(local["Author"], "Jane <jane@example.com>");
    assert_eq!(local["Comment"], "app config");
    assert_eq!(local["Config"]["Cmd"][0], "cat");
    assert_eq!(local["RootFS"]["Layers"].as_array().unwrap().len(), 2);

    let out = s.ok(&["push", &pushed]);
    let digest = out
        .lines()
        .find_map(|l| l.split("digest: ").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no digest in push output: {out}"))
        .to_string();

    // skopeo reads what berth pushed and agrees with berth's inspect.
    let o = images::skopeo(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{pushed}"),
    ]);
    assert!(o.status.success(), "skopeo inspect: {}", text(&o));
    let sk: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(sk["Digest"], digest.as_str());
    assert_eq!(sk["Layers"].as_array().unwrap().len(), 2);
    let o = images::skopeo(&[
        "inspect",
        "--config",
        "--tls-verify=false",
        &format!("docker://{pushed}"),
    ]);
    let cfg: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(cfg["rootfs"]["diff_ids"], local["RootFS"]["Layers"]);
    assert_eq!(cfg["config"]["Cmd"], local["Config"]["Cmd"]);

    // podman pulls it too, with the same image id.
    let pm = Podman::new(&reg.addr);
    pm.ok(&["pull", "-q", &pushed]);
    let p = pm.inspect(&pushed);
    assert_eq!(
        format!("sha256:{}", p["Id"].as_str().unwrap()),
        new_id,
        "podman's image id"
    );
    assert_eq!(p["Author"], "Jane <jane@example.com>");

    // Gone locally, pulled back, run: the change is there.
    s.ok(&["rmi", &pushed]);
    assert!(s.berth(&["image", "inspect", &pushed]).status.code() == Some(1));
    s.ok(&["pull", &pushed]);
    assert_eq!(s.inspect(&pushed)["Id"], new_id.as_str());
    let got = s.ok(&["run", "--rm", &pushed]);
    assert_eq!(got, "greeting=hello-from-berth\n");
    let left = s.ok(&["ps", "-aq"]);
    assert!(left.trim().is_empty(), "containers left: {left}");
}
