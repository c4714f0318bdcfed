//! A container's files and the flags that shape what it sees: `cp` both
//! ways (running and stopped containers, tar streams, and symlinks the
//! container made that must not lead out of it), `diff`, `commit`,
//! `export`, volumes, bind and tmpfs mounts, security and resource flags
//! of `run`, and `stats`/`top`. Every check looks at the real effect (a
//! file inside the container, on the host, in an image), never only at an
//! exit code.

use berth_integration::containers::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

/// `berth ARGS` with stdin from the file `input`.
fn with_input(c: &Ctx, args: &[&str], input: &Path) -> Out {
    let f = std::fs::File::open(input).unwrap();
    Proc::with_stdin(c.s.cmd(args), format!("{args:?}"), Stdio::from(f)).finish(60.0)
}

/// `berth ARGS` with stdout into the file `to` (tars are binary and big).
fn to_file(c: &Ctx, args: &[&str], to: &Path) -> Output {
    let f = std::fs::File::create(to).unwrap();
    let o = c.s.cmd(args).stdout(f).stderr(Stdio::piped()).output();
    o.unwrap()
}

/// Member names of a tar file (`./` and trailing `/` removed).
fn tar_names(tar: &Path) -> Vec<String> {
    let o = Command::new("tar").arg("-tf").arg(tar).output().unwrap();
    assert!(o.status.success(), "tar -t {}: {o:?}", tar.display());
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| l.trim_start_matches("./").trim_end_matches('/').to_string())
        .collect()
}

/// The member `name` of a tar file (as `tar -t` spells it).
fn tar_member(tar: &Path, name: &str) -> String {
    let o = Command::new("tar")
        .arg("-xOf")
        .arg(tar)
        .arg(name)
        .output()
        .unwrap();
    assert!(o.status.success(), "tar -xO {name}: {o:?}");
    String::from_utf8(o.stdout).unwrap()
}

/// A ustar archive of (name, typeflag, link target, data) entries, written
/// by hand so hostile names (`..`, absolute) reach berth unchanged.
fn ustar(entries: &[(&str, u8, &str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, kind, link, data) in entries {
        let mut h = [0u8; 512];
        let mut put = |off: usize, v: &[u8]| h[off..off + v.len()].copy_from_slice(v);
        put(0, name.as_bytes());
        put(
            100,
            if *kind == b'5' {
                b"0000755\0"
            } else {
                b"0000644\0"
            },
        );
        put(108, b"0000000\0");
        put(116, b"0000000\0");
        put(124, format!("{:011o}\0", data.len()).as_bytes());
        put(136, format!("{:011o}\0", 1_700_000_000u64).as_bytes());
        put(148, b"        ");
        put(156, &[*kind]);
        put(157, link.as_bytes());
        put(257, b"ustar\0");
        put(263, b"00");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

/// The names in a host dir, sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn rd(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// `exec CTR sh -c SCRIPT`'s stdout (asserting exit 0).
fn sh(c: &Ctx, ctr: &str, script: &str) -> String {
    c.ok(&["exec", ctr, "sh", "-c", script])
}

/// `run FLAGS IMG sh -c SCRIPT` (FLAGS split at spaces) exits 0; its stdout.
fn ran(c: &Ctx, flags: &str, script: &str) -> String {
    let mut a = vec!["run"];
    a.extend(flags.split_whitespace());
    a.extend([IMG, "sh", "-c", script]);
    c.ok(&a)
}

/// `run -d FLAGS IMG sh -c SCRIPT` (FLAGS split at spaces): the id.
fn ran_d(c: &Ctx, flags: &str, script: &str) -> String {
    let mut a: Vec<&str> = flags.split_whitespace().collect();
    a.extend([IMG, "sh", "-c", script]);
    c.run_d(&a)
}

/// `run --rm FLAGS... IMG sh -c SCRIPT`.
fn run_sh(c: &Ctx, flags: &[&str], script: &str) -> Out {
    let mut a = vec!["run", "--rm"];
    a.extend_from_slice(flags);
    a.extend_from_slice(&[IMG, "sh", "-c", script]);
    c.b(&a)
}

fn run_ok(c: &Ctx, flags: &[&str], script: &str) -> String {
    let o = run_sh(c, flags, script);
    assert_eq!(o.code, 0, "run {flags:?} {script:?}: {}", o.text());
    o.out
}

/// A `Key:\tvalue` line of /proc/self/status in a container run with FLAGS.
fn status_of(c: &Ctx, flags: &[&str], key: &str) -> String {
    let st = run_ok(c, flags, "cat /proc/self/status");
    st.lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("no {key} in /proc/self/status: {st}"))
}

fn cap_eff(c: &Ctx, flags: &[&str]) -> u64 {
    u64::from_str_radix(&status_of(c, flags, "CapEff:"), 16).unwrap()
}

// ---------------------------------------------------------------------------
// 1. cp both ways, running and stopped

/// Every kind of copy in and out of `ctr`; with `stopped`, asserts after
/// each one that no overlay of the store is left mounted.
fn cp_both_ways(c: &Ctx, ctr: &str, stopped: bool) {
    let h = tempfile::tempdir().unwrap();
    let hp = |p: &str| h.path().join(p);
    std::fs::write(hp("f.txt"), "file-1\n").unwrap();
    std::fs::create_dir_all(hp("tree/sub")).unwrap();
    std::fs::write(hp("tree/top"), "top\n").unwrap();
    std::fs::write(hp("tree/sub/deep"), "deep\n").unwrap();
    let cp = |a: &str, b: &str| {
        c.ok(&["cp", a, b]);
        if stopped {
            assert_eq!(c.mounts(), Vec::<String>::new(), "cp {a} {b} left a mount");
        }
    };
    let at = |p: &str| format!("{ctr}:{p}");
    // Host -> container: into a dir, to a new name, a tree (into an
    // existing dir and to a new name), a tar on stdin.
    cp(&s(&hp("f.txt")), &at("/root"));
    cp(&s(&hp("f.txt")), &at("/root/renamed"));
    cp(&s(&hp("tree")), &at("/root/"));
    cp(&s(&hp("tree")), &at("/newtree"));
    let tar = hp("in.tar");
    std::fs::write(
        &tar,
        ustar(&[
            ("fromtar/", b'5', "", b""),
            ("fromtar/a", b'0', "", b"tar-a\n"),
            ("b", b'0', "", b"tar-b\n"),
        ]),
    )
    .unwrap();
    let o = with_input(c, &["cp", "-", &at("/root")], &tar);
    assert_eq!(o.code, 0, "cp - {ctr}:/root: {}", o.text());
    if stopped {
        assert_eq!(c.mounts(), Vec::<String>::new(), "cp - left a mount");
    }

    // Container -> host.
    let out = hp("out");
    std::fs::create_dir(&out).unwrap();
    cp(&at("/root/f.txt"), &s(&out));
    assert_eq!(rd(&out.join("f.txt")), "file-1\n");
    cp(&at("/root/renamed"), &s(&out.join("single")));
    assert_eq!(rd(&out.join("single")), "file-1\n");
    cp(&at("/root/tree"), &s(&out));
    assert_eq!(rd(&out.join("tree/sub/deep")), "deep\n");
    cp(&at("/newtree"), &s(&out.join("fresh")));
    assert_eq!(rd(&out.join("fresh/sub/deep")), "deep\n");
    assert_eq!(rd(&out.join("fresh/top")), "top\n");
    let streamed = hp("out.tar");
    let o = to_file(c, &["cp", &at("/root"), "-"], &streamed);
    assert!(o.status.success(), "cp {ctr}:/root -: {o:?}");
    let names = tar_names(&streamed);
    for want in "f.txt renamed tree/top tree/sub/deep fromtar/a b".split(' ') {
        let want = format!("root/{want}");
        assert!(names.contains(&want), "{want} not in {names:?}");
    }
    assert_eq!(tar_member(&streamed, "root/fromtar/a"), "tar-a\n");
    if stopped {
        assert_eq!(c.mounts(), Vec::<String>::new());
        c.ok(&["start", ctr]);
    }
    // What the container itself sees.
    let files =
        "/root/f.txt /root/renamed /root/tree/sub/deep /newtree/top /root/fromtar/a /root/b";
    let want = "file-1\nfile-1\ndeep\ntop\ntar-a\ntar-b\n";
    assert_eq!(sh(c, ctr, &format!("cat {files}")), want);
}

#[test]
fn cp_in_and_out_of_a_running_container() {
    let c = Ctx::new();
    c.run_d(&["--name", "live", IMG, "sh", "-c", TRAP_TERM]);
    cp_both_ways(&c, "live", false);
    // The running container's rootfs is still its own (cp did not unmount it).
    assert!(
        c.mounts().iter().any(|m| m.ends_with("merged")),
        "{:?}",
        c.mounts()
    );
    assert_eq!(c.state("live")["Running"], true);
}

#[test]
fn cp_in_and_out_of_a_stopped_container_mounts_only_for_the_copy() {
    let c = Ctx::new();
    c.run_d(&["--name", "idle", IMG, "sh", "-c", TRAP_TERM]);
    c.ok(&["stop", "idle"]);
    assert_eq!(c.mounts(), Vec::<String>::new());
    cp_both_ways(&c, "idle", true);
    // Unknown containers and missing paths are errors.
    let o = c.b(&["cp", "nosuch:/etc/passwd", "/tmp/x"]);
    assert_eq!(o.code, 1, "{}", o.text());
    let o = c.b(&["cp", "idle:/no/such/file", "/tmp/berth-cp-never"]);
    assert_ne!(o.code, 0, "{}", o.text());
    assert!(!Path::new("/tmp/berth-cp-never").exists());
}

// ---------------------------------------------------------------------------
// 2. cp never follows the container's symlinks out of it

#[test]
fn cp_stays_inside_the_container_through_its_symlinks() {
    let c = Ctx::new();
    // A dir that exists on the host's /tmp and, under the same name, in
    // the container's /tmp: an escape would find its target.
    let probe = tempfile::Builder::new()
        .prefix("berth-probe-")
        .tempdir_in("/tmp")
        .unwrap();
    let pname = probe
        .path()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    std::fs::write(probe.path().join("marker"), "host\n").unwrap();
    // /up climbs further than the store's depth on the host (to /tmp there).
    let up = format!("{}tmp", "../".repeat(12));
    let script = format!(
        "ln -s / /escape; ln -s /etc /etcl; ln -s {up} /up; \
         mkdir -p /tmp/{pname} /tmp/in; echo ctr > /tmp/{pname}/marker; \
         echo ctr-root > /root/marker; {TRAP_TERM}"
    );
    c.run_d(&["--name", "sly", IMG, "sh", "-c", &script]);
    assert!(
        wait_for(10.0, || c
            .b(&["exec", "sly", "test", "-f", "/root/marker"])
            .code
            == 0),
        "the container never made its symlinks"
    );
    let h = tempfile::tempdir().unwrap();
    let uniq = format!("berth-esc-{}", std::process::id());
    let hf = h.path().join(&uniq);
    std::fs::write(&hf, "from-host\n").unwrap();

    // Host -> container through /escape (-> /), /up (-> ../../[...]/tmp),
    // /etcl (-> /etc) and into the probe dir.
    c.ok(&["cp", &s(&hf), &format!("sly:/escape/{uniq}.x")]);
    c.ok(&["cp", &s(&hf), &format!("sly:/up/{uniq}.y")]);
    c.ok(&["cp", &s(&hf), "sly:/etcl/"]);
    c.ok(&["cp", &s(&hf), &format!("sly:/escape/tmp/{pname}/")]);
    assert!(
        !Path::new(&format!("/{uniq}.x")).exists(),
        "cp wrote in the host's /"
    );
    let y = format!("/tmp/{uniq}.y");
    assert!(!Path::new(&y).exists(), "cp wrote the host's {y}");
    assert!(
        !Path::new("/etc").join(&uniq).exists(),
        "cp wrote the host's /etc"
    );
    let host_probe = entries(probe.path());
    assert_eq!(host_probe, vec!["marker"], "cp wrote into the host's /tmp");
    assert_eq!(
        sh(
            &c,
            "sly",
            &format!("cat /{uniq}.x {y} /etc/{uniq} /tmp/{pname}/{uniq}")
        ),
        "from-host\n".repeat(4),
        "the copies must land inside the container"
    );

    // Container -> host through the same links reads the container's files.
    let out = |n: &str| h.path().join(n);
    c.ok(&["cp", "sly:/escape/root/marker", &s(&out("o1"))]);
    c.ok(&["cp", &format!("sly:/up/{pname}/marker"), &s(&out("o2"))]);
    c.ok(&[
        "cp",
        &format!("sly:/escape/tmp/{pname}/marker"),
        &s(&out("o3")),
    ]);
    assert_eq!(std::fs::read_to_string(out("o1")).unwrap(), "ctr-root\n");
    assert_eq!(std::fs::read_to_string(out("o2")).unwrap(), "ctr\n");
    assert_eq!(std::fs::read_to_string(out("o3")).unwrap(), "ctr\n");

    // A hostile tar on stdin: `..`, an absolute name, a symlink out and a
    // file through it. Whatever berth says, nothing lands outside.
    let dotdot = format!("{}tmp/{pname}/dotdot", "../".repeat(12));
    let abs = format!("/tmp/{pname}/abs");
    let link_to = format!("/tmp/{pname}");
    let tar = out("evil.tar");
    std::fs::write(
        &tar,
        ustar(&[
            ("good", b'0', "", b"good\n"),
            (&dotdot, b'0', "", b"evil\n"),
            (&abs, b'0', "", b"evil\n"),
            ("lnk", b'2', &link_to, b""),
            ("lnk/through", b'0', "", b"evil\n"),
        ]),
    )
    .unwrap();
    let o = with_input(&c, &["cp", "-", "sly:/tmp/in"], &tar);
    let host_probe = entries(probe.path());
    assert_eq!(
        host_probe,
        vec!["marker"],
        "a tar entry escaped: {}",
        o.text()
    );
    assert_eq!(sh(&c, "sly", "cat /tmp/in/good"), "good\n", "{}", o.text());
    // Not outside /tmp/in inside the container either.
    let inside = sh(&c, "sly", &format!("ls /tmp/{pname}"));
    assert_eq!(inside, format!("{uniq}\nmarker\n"), "{}", o.text());
}

#[test]
fn cp_sees_the_containers_volumes_and_bind_mounts() {
    // As `docker cp`: the container's view, mounts included.
    let c = Ctx::new();
    let hd = tempfile::tempdir().unwrap();
    std::fs::write(hd.path().join("onhost"), "bind-file\n").unwrap();
    let bind = format!("{}:/hb", s(hd.path()));
    let script = format!("echo in-vol > /data/v; {TRAP_TERM}");
    ran_d(
        &c,
        &format!("--name vm -h cpname -v vdata:/data -v {bind}"),
        &script,
    );
    assert!(wait_for(10.0, || c
        .b(&["exec", "vm", "test", "-f", "/data/v"])
        .code
        == 0));
    let h = tempfile::tempdir().unwrap();
    let got = |src: &str| {
        let to = h.path().join("got");
        let _ = std::fs::remove_file(&to);
        let o = c.b(&["cp", src, &s(&to)]);
        (o.code, std::fs::read_to_string(&to).unwrap_or(o.err))
    };
    assert_eq!(
        got("vm:/data/v"),
        (0, "in-vol\n".into()),
        "cp out of a volume"
    );
    assert_eq!(
        got("vm:/hb/onhost"),
        (0, "bind-file\n".into()),
        "out of a bind"
    );
    assert_eq!(
        got("vm:/etc/hostname"),
        (0, "cpname\n".into()),
        "/etc/hostname"
    );
    let hf = h.path().join("hf");
    std::fs::write(&hf, "copied\n").unwrap();
    c.ok(&["cp", &s(&hf), "vm:/data/"]);
    assert_eq!(sh(&c, "vm", "cat /data/hf"), "copied\n", "cp into a volume");
}

// ---------------------------------------------------------------------------
// 3. diff

#[test]
fn diff_lists_adds_changes_deletes_but_not_the_etc_files() {
    let c = Ctx::new();
    ran(
        &c,
        "--name chg",
        "echo a > /added; echo x >> /etc/passwd; rm /etc/group; mkdir /newdir; \
         echo 10.0.0.1 extra >> /etc/hosts; echo other > /etc/hostname",
    );
    let mut lines: Vec<String> = c.ok(&["diff", "chg"]).lines().map(str::to_string).collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "A /added",
            "A /newdir",
            "C /etc",
            "C /etc/passwd",
            "D /etc/group"
        ],
        "/etc/hosts, /etc/hostname and /etc/resolv.conf are berth's, not changes"
    );
    // A fresh container has no changes.
    c.ok(&["create", "--name", "fresh", IMG, "true"]);
    assert_eq!(c.ok(&["diff", "fresh"]), "");
    let o = c.b(&["diff", "nosuch"]);
    assert_eq!(o.code, 1, "{}", o.text());
}

// ---------------------------------------------------------------------------
// 4. commit

#[test]
fn commit_makes_a_runnable_image_with_changes_and_whiteouts() {
    let c = Ctx::new();
    ran(&c, "--name src", "echo hello > /x; rm /etc/group");
    let mut a = vec![
        "commit",
        "-m",
        "my message",
        "-a",
        "Jane Doe <jane@example.com>",
    ];
    a.extend([
        "-c",
        r#"CMD ["cat","/x"]"#,
        "-c",
        "ENV A=b",
        "src",
        "made:1",
    ]);
    let id = c.ok(&a);
    assert!(id.trim().starts_with("sha256:"), "{id:?}");
    assert_eq!(c.ok(&["run", "--rm", "made:1"]), "hello\n");
    let v = c.s.inspect("made:1");
    assert_eq!(v["Id"], id.trim());
    assert_eq!(v["Author"], "Jane Doe <jane@example.com>");
    assert_eq!(v["Comment"], "my message");
    assert_eq!(v["Config"]["Cmd"], serde_json::json!(["cat", "/x"]));
    let env = v["Config"]["Env"].as_array().unwrap();
    assert!(env.iter().any(|e| e == "A=b"), "{env:?}");
    assert_eq!(c.s.diff_ids("made:1").len(), 2, "one new layer on the base");
    let hist: Vec<Value> = c
        .ok(&["history", "--format", "json", "made:1"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(hist.len(), 2, "{hist:?}");
    assert_eq!(hist[0]["Comment"], "my message");
    assert!(
        hist[0]["CreatedBy"]
            .as_str()
            .unwrap()
            .contains("echo hello > /x"),
        "{hist:?}"
    );
    // The deletion is a whiteout: gone in the new image (not in the base).
    let script = "echo $A; test -e /etc/group";
    let o = c.b(&["run", "--rm", "made:1", "sh", "-c", script]);
    assert_eq!((o.code, o.out.as_str()), (1, "b\n"), "{}", o.text());
    assert_eq!(run_sh(&c, &[], "test -e /etc/group").code, 0);

    // A running container: --pause=false, and the default (pause + resume).
    let script = format!("echo live > /y; {TRAP_TERM}");
    c.run_d(&["--name", "live", IMG, "sh", "-c", &script]);
    assert!(wait_for(10.0, || c
        .b(&["exec", "live", "test", "-f", "/y"])
        .code
        == 0));
    c.ok(&["commit", "--pause=false", "live", "made:2"]);
    assert_eq!(c.ok(&["run", "--rm", "made:2", "cat", "/y"]), "live\n");
    c.ok(&["commit", "live", "made:3"]);
    let st = c.state("live");
    assert_eq!(
        (st["Running"].clone(), st["Paused"].clone()),
        (true.into(), false.into()),
        "{st}"
    );
    assert_eq!(sh(&c, "live", "echo still"), "still\n");
    assert_eq!(c.ok(&["run", "--rm", "made:3", "cat", "/y"]), "live\n");

    let o = c.b(&["commit", "nosuch", "never:1"]);
    assert_eq!(o.code, 1, "{}", o.text());
    assert!(o.err.contains("no such container: nosuch"), "{}", o.text());
    assert_eq!(c.b(&["image", "inspect", "never:1"]).code, 1);
}

// ---------------------------------------------------------------------------
// 5. export

#[test]
fn export_writes_the_rootfs_as_a_tar() {
    let c = Ctx::new();
    ran(&c, "--name ex", "echo in-ctr > /written; rm /etc/group");
    let d = tempfile::tempdir().unwrap();
    let piped = d.path().join("stdout.tar");
    let o = to_file(&c, &["export", "ex"], &piped);
    assert!(o.status.success(), "{o:?}");
    let file = d.path().join("o.tar");
    c.ok(&["export", "-o", &s(&file), "ex"]);
    assert!(!d.path().join("o.tar.berth-tmp").exists());
    assert_eq!(c.mounts(), Vec::<String>::new(), "export left a mount");
    for tar in [&piped, &file] {
        let names = tar_names(tar);
        for want in ["written", "bin/busybox", "bin/sh", "etc/passwd"] {
            assert!(names.iter().any(|n| n == want), "{want} not in {tar:?}");
        }
        assert!(
            !names.iter().any(|n| n == "etc/group"),
            "deleted file exported"
        );
        let member = Command::new("tar").arg("-tf").arg(tar).output().unwrap();
        let member = String::from_utf8_lossy(&member.stdout)
            .lines()
            .find(|l| l.trim_start_matches("./") == "written")
            .unwrap()
            .to_string();
        assert_eq!(tar_member(tar, &member), "in-ctr\n");
    }
    // The image's 270 busybox applets are hard links of one 2 MB file; an
    // export must keep them links (as `docker export` does), not copies.
    let size = std::fs::metadata(&file).unwrap().len();
    let base = std::fs::metadata(rootfs_tar()).unwrap().len();
    assert!(
        size < 2 * base + (1 << 20),
        "export is {size} bytes for a {base}-byte rootfs: hard links were written as copies"
    );
}

// ---------------------------------------------------------------------------
// 6. volumes, bind mounts, tmpfs

fn volumes(c: &Ctx) -> Vec<String> {
    c.ok(&["volume", "ls", "-q"])
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn named_and_anonymous_volumes_rm_and_prune() {
    let c = Ctx::new();
    run_ok(&c, &["-v", "vol1:/data"], "echo persisted > /data/f");
    assert_eq!(
        run_ok(&c, &["-v", "vol1:/data"], "cat /data/f"),
        "persisted\n"
    );
    assert_eq!(volumes(&c), vec!["vol1"]);
    let v: Value = serde_json::from_str(&c.ok(&["volume", "inspect", "vol1"])).unwrap();
    assert_eq!(v[0]["Name"], "vol1");
    let mp = PathBuf::from(v[0]["Mountpoint"].as_str().unwrap());
    assert_eq!(
        std::fs::read_to_string(mp.join("f")).unwrap(),
        "persisted\n"
    );

    // In use by a container (even an exited one): rm refuses.
    c.ok(&["run", "--name", "user", "-v", "vol1:/data", IMG, "true"]);
    let o = c.b(&["volume", "rm", "vol1"]);
    assert_eq!(o.code, 1, "{}", o.text());
    assert!(
        o.err.contains("in use") && o.err.contains("user"),
        "{}",
        o.text()
    );
    assert!(mp.join("f").exists());
    c.ok(&["rm", "user"]);
    assert_eq!(c.ok(&["volume", "rm", "vol1"]), "vol1\n");
    assert!(!mp.exists() && volumes(&c).is_empty());

    // Anonymous: plain rm keeps it, rm -v removes it.
    ran(&c, "--name an1 -v /anon", "echo a > /anon/f");
    let kept = volumes(&c);
    assert_eq!(kept.len(), 1, "{kept:?}");
    c.ok(&["rm", "an1"]);
    assert_eq!(volumes(&c), kept, "plain rm removed an anonymous volume");
    c.ok(&["run", "--name", "an2", "-v", "/anon", IMG, "true"]);
    let both = volumes(&c);
    assert_eq!(both.len(), 2, "{both:?}");
    c.ok(&["rm", "-v", "an2"]);
    assert_eq!(volumes(&c), kept, "rm -v left the anonymous volume");

    // prune: the unused ones go, a used one stays.
    c.ok(&["volume", "create", "spare"]);
    c.ok(&["run", "--name", "holder", "-v", "held:/h", IMG, "true"]);
    let out = c.ok(&["volume", "prune", "-f"]);
    assert!(out.contains("spare") && out.contains(&kept[0]), "{out}");
    assert_eq!(volumes(&c), vec!["held"]);
}

#[test]
fn bind_mounts_tmpfs_and_read_only_root() {
    let c = Ctx::new();
    let hd = tempfile::tempdir().unwrap();
    std::fs::write(hd.path().join("pre"), "from-host\n").unwrap();
    let ro = format!("{}:/h:ro", s(hd.path()));
    let o = run_sh(&c, &["-v", &ro], "cat /h/pre; echo x > /h/new");
    assert_ne!(o.code, 0, "write to a :ro bind succeeded: {}", o.text());
    assert_eq!(o.out, "from-host\n", "{}", o.text());
    assert!(o.err.contains("Read-only"), "{}", o.text());
    assert!(!hd.path().join("new").exists());
    let rw = format!("{}:/h", s(hd.path()));
    run_ok(&c, &["-v", &rw], "echo written > /h/new");
    assert_eq!(
        std::fs::read_to_string(hd.path().join("new")).unwrap(),
        "written\n"
    );

    let m = run_ok(
        &c,
        &["--tmpfs", "/t"],
        "grep ' /t ' /proc/mounts; touch /t/ok",
    );
    assert!(m.starts_with("tmpfs /t tmpfs "), "{m}");
    let m = run_ok(
        &c,
        &["--mount", "type=tmpfs,target=/m,tmpfs-size=1m"],
        "grep ' /m ' /proc/mounts",
    );
    assert!(
        m.starts_with("tmpfs /m tmpfs ") && m.contains("size=1024k"),
        "{m}"
    );

    // --read-only: / and /tmp are read-only, /dev/shm and a --tmpfs are not.
    let o = run_sh(&c, &["--read-only"], "touch /x");
    assert_ne!(o.code, 0, "{}", o.text());
    assert!(o.err.contains("Read-only"), "{}", o.text());
    assert_ne!(run_sh(&c, &["--read-only"], "touch /tmp/x").code, 0);
    run_ok(&c, &["--read-only"], "touch /dev/shm/x");
    run_ok(&c, &["--read-only", "--tmpfs", "/tmp"], "touch /tmp/x");
}

// ---------------------------------------------------------------------------
// 7. run flags reach the container

#[test]
fn security_and_resource_flags_reach_the_container() {
    let c = Ctx::new();
    let h = run_ok(&c, &["-h", "myhost"], "hostname; cat /etc/hostname");
    assert_eq!(h, "myhost\nmyhost\n");

    let default = cap_eff(&c, &[]);
    assert_ne!(default & 1, 0, "CAP_CHOWN is a default: {default:x}");
    assert_eq!(default & (1 << 21), 0, "CAP_SYS_ADMIN is not: {default:x}");
    assert_eq!(cap_eff(&c, &["--cap-drop", "chown"]), default & !1);
    let mnt = "mkdir -p /mm && mount -t tmpfs none /mm && grep ' /mm ' /proc/mounts";
    assert_ne!(run_sh(&c, &[], mnt).code, 0, "mount allowed by default");
    assert!(run_ok(&c, &["--cap-add", "sys_admin"], mnt).starts_with("none /mm tmpfs"));
    let all = cap_eff(&c, &["--privileged"]);
    assert!(all.count_ones() >= 38, "privileged CapEff {all:x}");

    assert_eq!(status_of(&c, &[], "Seccomp:"), "2");
    assert_eq!(status_of(&c, &["--privileged"], "Seccomp:"), "0");
    let unconfined = ["--security-opt", "seccomp=unconfined"];
    assert_eq!(status_of(&c, &unconfined, "Seccomp:"), "0");
    assert_eq!(cap_eff(&c, &unconfined), default);
    assert_eq!(status_of(&c, &[], "NoNewPrivs:"), "0");
    let nnp = ["--security-opt", "no-new-privileges"];
    assert_eq!(status_of(&c, &nnp, "NoNewPrivs:"), "1");

    let ul = run_ok(&c, &["--ulimit", "nofile=100:200"], "ulimit -n; ulimit -Hn");
    assert_eq!(ul, "100\n200\n");
    let q = run_ok(
        &c,
        &["--cpus", "0.5"],
        "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cat /sys/fs/cgroup/cpu.max",
    );
    assert!(q.starts_with("50000"), "cpu quota for --cpus 0.5: {q:?}");
    let dev = run_ok(
        &c,
        &["--device", "/dev/null:/dev/mynull"],
        "stat -c '%F %t,%T' /dev/mynull; echo x > /dev/mynull",
    );
    assert_eq!(dev, "character special file 1,3\n");

    let d = tempfile::tempdir().unwrap();
    let ef = d.path().join("env");
    std::fs::write(&ef, "# a comment\nA=1\n\nB=two words\n").unwrap();
    let e = run_ok(
        &c,
        &["--env-file", &s(&ef), "-e", "C=3"],
        "echo \"$A|$B|$C\"",
    );
    assert_eq!(e, "1|two words|3\n");
    // A valid volume name is a named volume.
    run_ok(&c, &["-v", "rel:/x"], "touch /x/f");
    assert_eq!(volumes(&c), vec!["rel"]);
}

#[test]
fn bad_run_flags_exit_125_and_create_nothing() {
    let c = Ctx::new();
    let d = tempfile::tempdir().unwrap();
    let missing = d.path().join("never-made");
    let bind = format!("{}:/b", s(&missing));
    let bad: &[&[&str]] = &[
        &["--cpus", "-1"],
        &["--cpus", "abc"],
        &["--ulimit", "bogus=1"],
        &["--ulimit", "nofile=200:100"],
        &["--device", "/etc/passwd"],
        &["--device", "dev/null"],
        &["-v", "./rel:/x"],
        &["-v", "a:/x"],
        &["-v", "vol:rel"],
        &["--mount", "type=nfs,target=/n"],
        &["--mount", "type=bind,source=rel,target=/n"],
        &["--cap-add", "nosuchcap"],
        &["--security-opt", "seccomp=/no/such.json"],
        &["-v", &bind, "--cpus", "-1"],
        &["-v", "vol2:/v", "--mount", "type=nfs,target=/n"],
    ];
    for flags in bad {
        let o = run_sh(&c, flags, "true");
        assert_eq!(o.code, 125, "{flags:?}: {}", o.text());
        assert!(o.err.starts_with("berth: "), "{flags:?}: {}", o.text());
    }
    assert!(!missing.exists(), "a refused run made its bind source");
    assert!(volumes(&c).is_empty(), "a refused run made a volume");
    c.assert_empty();
}

// ---------------------------------------------------------------------------
// 8. stats and top

#[test]
fn stats_and_top_of_running_and_stopped_containers() {
    let c = Ctx::new();
    ran_d(&c, "--name busy -m 32m", "while :; do :; done");
    c.run_d(&["--name", "calm", IMG, "sleep", "1234"]);
    let t = c.ok(&["stats", "--no-stream", "busy"]);
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(lines.len(), 2, "{t}");
    assert!(lines[0].starts_with("CONTAINER ID"), "{t}");
    let w: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(w[1], "busy", "{t}");
    let cpu: f64 = w[2].trim_end_matches('%').parse().unwrap();
    assert!(cpu > 10.0, "a busy loop at {cpu}% CPU: {t}");
    assert_eq!((w[4], w[5]), ("/", "32MiB"), "{t}");

    let rows: Vec<Value> = c
        .ok(&["stats", "--no-stream", "--format", "json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    let row = |n: &str| rows.iter().find(|r| r["Name"] == n).unwrap().clone();
    let busy = row("busy");
    assert!(
        busy["MemUsage"].as_str().unwrap().ends_with(" / 32MiB"),
        "{busy}"
    );
    let cpu: f64 = busy["CPUPerc"]
        .as_str()
        .unwrap()
        .trim_end_matches('%')
        .parse()
        .unwrap();
    assert!(cpu > 10.0, "{busy}");
    assert_eq!(row("calm")["PIDs"], "1");

    let top = c.ok(&["top", "calm"]);
    assert!(top.starts_with("UID"), "{top}");
    assert!(top.lines().any(|l| l.ends_with("sleep 1234")), "{top}");
    assert!(c.ok(&["top", "busy"]).contains("while :; do :; done"));

    c.ok(&["kill", "calm"]);
    c.ok(&["wait", "calm"]);
    let o = c.b(&["top", "calm"]);
    assert_eq!(o.code, 1, "{}", o.text());
    assert!(o.err.contains("not running"), "{}", o.text());
    // As Docker: a stopped container named to stats gets a row without data.
    let t = c.ok(&["stats", "--no-stream", "calm"]);
    let w: Vec<&str> = t.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!((w[1], w[2]), ("calm", "--"), "{t}");
    let o = c.b(&["stats", "--no-stream", "nosuch"]);
    assert_eq!(o.code, 1, "{}", o.text());
    let o = c.b(&["top", "nosuch"]);
    assert_eq!(o.code, 1, "{}", o.text());
}
