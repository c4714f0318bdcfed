//! Unit tests of the layer applier (run as root: mknod, chown, trusted.*
//! xattrs and an overlayfs mount need it).

use super::sys::get_xattr;
use super::test_support::*;
use super::*;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

#[test]
fn tree_modes_ownership_and_times() {
    let env = Env::new();
    let mut root = raw_header(b"./", tar::EntryType::Directory, 0, b"", 0o751);
    root.set_mtime(1_000);
    root.set_cksum();
    let tar = T::new()
        .push(&root, b"")
        .dir_at("bin", 0o755, 2_000)
        .file_owned("bin/tool", b"#!/bin/sh\n", 0o755, 1000, 1001, 1_500_000_000)
        .file("bin/su", b"suid", 0o4755)
        .file("bin/wall", b"sgid", 0o2755)
        .dir("tmp", 0o1777)
        .dir("etc", 0o755)
        .file("etc/conf", b"a=b\n", 0o600)
        .symlink_owned("etc/rel", "conf", 2000, 1_400_000_000)
        .symlink("etc/abs", "/etc/conf")
        .symlink("etc/dangling", "/nowhere/at/all")
        .file("etc/later/implicit-parent", b"x", 0o644)
        .bytes();
    let out = env.unpack_guarded(&tar).unwrap();
    assert_eq!(out.entries, 12);
    assert_eq!(out.size, 10 + 4 + 4 + 4 + 1);
    assert_eq!(out.diff_id, sha256(&tar));

    assert_eq!(meta(&env.dest).mode() & 0o7777, 0o751);
    assert_eq!(meta(&env.dest).mtime(), 1_000);
    let tool = meta(&env.d("bin/tool"));
    assert_eq!(
        (tool.mode() & 0o7777, tool.uid(), tool.gid(), tool.mtime()),
        (0o755, 1000, 1001, 1_500_000_000)
    );
    assert_eq!(std::fs::read(env.d("bin/tool")).unwrap(), b"#!/bin/sh\n");
    assert_eq!(meta(&env.d("bin/su")).mode() & 0o7777, 0o4755);
    assert_eq!(meta(&env.d("bin/wall")).mode() & 0o7777, 0o2755);
    assert_eq!(meta(&env.d("tmp")).mode() & 0o7777, 0o1777);
    assert_eq!(meta(&env.d("etc/conf")).mode() & 0o7777, 0o600);
    // directory times are set after their contents were written
    assert_eq!(meta(&env.d("bin")).mtime(), 2_000);
    assert_eq!(meta(&env.d("etc")).mtime(), MTIME as i64);
    let rel = meta(&env.d("etc/rel"));
    assert!(rel.file_type().is_symlink());
    assert_eq!(
        (rel.uid(), rel.gid(), rel.mtime()),
        (2000, 2000, 1_400_000_000)
    );
    assert_eq!(
        std::fs::read_link(env.d("etc/rel")).unwrap(),
        Path::new("conf")
    );
    assert_eq!(
        std::fs::read_link(env.d("etc/abs")).unwrap(),
        Path::new("/etc/conf")
    );
    assert_eq!(
        std::fs::read_link(env.d("etc/dangling")).unwrap(),
        Path::new("/nowhere/at/all")
    );
    assert_eq!(meta(&env.d("etc/later")).mode() & 0o7777, 0o755);
    assert_eq!(
        listing(&env.dest),
        [
            "bin/",
            "bin/su",
            "bin/tool",
            "bin/wall",
            "etc/",
            "etc/abs",
            "etc/conf",
            "etc/dangling",
            "etc/later/",
            "etc/later/implicit-parent",
            "etc/rel",
            "tmp/"
        ]
    );
}

#[test]
fn without_keep_ownership_ids_are_not_applied() {
    let env = Env::new();
    let tar = T::new()
        .file_owned("f", b"x", 0o640, 1234, 4321, MTIME)
        .bytes();
    unpack_layer(
        tar.as_slice(),
        &env.dest,
        &UnpackOptions {
            keep_ownership: false,
            max_entries: None,
        },
    )
    .unwrap();
    let m = meta(&env.d("f"));
    assert_eq!(
        (m.uid(), m.gid(), m.mode() & 0o7777),
        (
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
            0o640
        )
    );
}

#[test]
fn pax_times_uid_and_long_names() {
    let env = Env::new();
    let long = format!("{}/{}", "d".repeat(150), "f".repeat(200));
    let tar = T::new()
        .pax(&[
            ("mtime", b"1234567890.5"),
            ("atime", b"1234567000.25"),
            ("uid", b"3000000"),
            ("gid", b"7"),
        ])
        .file("timed", b"t", 0o644)
        .pax(&[("mtime", b"-1.5")])
        .file("before-epoch", b"t", 0o644)
        .file(&long, b"long", 0o644)
        .pax(&[("path", b"pax/named/file")])
        .raw(b"pax/named/file", tar::EntryType::Regular, b"", b"p")
        .bytes();
    env.unpack_guarded(&tar).unwrap();
    let m = meta(&env.d("timed"));
    assert_eq!(
        (m.mtime(), m.mtime_nsec(), m.atime(), m.atime_nsec()),
        (1234567890, 500_000_000, 1234567000, 250_000_000)
    );
    assert_eq!((m.uid(), m.gid()), (3_000_000, 7));
    let m = meta(&env.d("before-epoch"));
    assert_eq!((m.mtime(), m.mtime_nsec()), (-2, 500_000_000));
    assert_eq!(std::fs::read(env.d(&long)).unwrap(), b"long");
    assert_eq!(std::fs::read(env.d("pax/named/file")).unwrap(), b"p");
}

#[test]
fn non_utf8_names_are_bytes() {
    let env = Env::new();
    let tar = T::new()
        .raw(b"caf\xe9", tar::EntryType::Regular, b"", b"latin1")
        .raw(b"ln", tar::EntryType::Symlink, b"\xff\xfe", b"")
        .bytes();
    env.unpack_guarded(&tar).unwrap();
    assert_eq!(
        std::fs::read(env.dest.join(OsStr::from_bytes(b"caf\xe9"))).unwrap(),
        b"latin1"
    );
    assert_eq!(
        std::fs::read_link(env.d("ln"))
            .unwrap()
            .as_os_str()
            .as_bytes(),
        b"\xff\xfe"
    );
}

#[test]
fn hardlinks_share_an_inode() {
    let env = Env::new();
    let tar = T::new()
        .file("a", b"shared", 0o640)
        .dir("sub", 0o755)
        .hardlink("sub/b", "a")
        .hardlink("c", "./sub/b")
        .symlink("s", "a")
        .hardlink("s2", "s")
        .bytes();
    env.unpack_guarded(&tar).unwrap();
    let a = meta(&env.d("a"));
    assert_eq!(a.nlink(), 3);
    assert_eq!(meta(&env.d("sub/b")).ino(), a.ino());
    assert_eq!(meta(&env.d("c")).ino(), a.ino());
    assert_eq!(std::fs::read(env.d("c")).unwrap(), b"shared");
    // a hardlink to a symlink links the symlink itself
    assert_eq!(meta(&env.d("s2")).ino(), meta(&env.d("s")).ino());
}

#[test]
fn devices_and_fifos() {
    let env = Env::new();
    let tar = T::new()
        .node("dev/null", tar::EntryType::Char, 1, 3, 0o666)
        .node("dev/sda", tar::EntryType::Block, 8, 0, 0o660)
        .node("run/fifo", tar::EntryType::Fifo, 0, 0, 0o620)
        .bytes();
    env.unpack_guarded(&tar).unwrap();
    let n = meta(&env.d("dev/null"));
    assert!(n.file_type().is_char_device());
    assert_eq!(
        (n.rdev(), n.mode() & 0o7777),
        (nix::sys::stat::makedev(1, 3), 0o666)
    );
    let b = meta(&env.d("dev/sda"));
    assert!(b.file_type().is_block_device());
    assert_eq!(
        (b.rdev(), b.mode() & 0o7777),
        (nix::sys::stat::makedev(8, 0), 0o660)
    );
    let f = meta(&env.d("run/fifo"));
    assert!(f.file_type().is_fifo());
    assert_eq!(f.mode() & 0o7777, 0o620);
}

/// vfs_cap_data v2, effective, permitted = dac_override|fowner|net_bind_service:
/// its bytes contain a '\n', which the tar crate's PAX parser cannot take.
const CAP: [u8; 20] = [
    1, 0, 0, 2, 0x0a, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

#[test]
fn xattrs_from_pax() {
    let env = Env::new();
    let tar = T::new()
        .pax(&[
            ("SCHILY.xattr.user.note", b"hello"),
            ("SCHILY.xattr.security.capability", &CAP),
            ("SCHILY.xattr.trusted.overlay.redirect", b"/elsewhere"),
        ])
        .file_owned("ping", b"elf", 0o4755, 0, 0, MTIME)
        .pax(&[
            ("SCHILY.xattr.trusted.dirnote", b"d"),
            ("SCHILY.xattr.trusted.overlay.opaque", b"y"),
        ])
        .dir("d", 0o755)
        .pax(&[
            ("SCHILY.xattr.trusted.linknote", b"l"),
            ("SCHILY.xattr.user.refused-on-symlinks", b"u"),
        ])
        .symlink("d/link", "../ping")
        .bytes();
    env.unpack_guarded(&tar).unwrap();
    let ping = env.d("ping");
    assert_eq!(get_xattr(&ping, "user.note").unwrap().unwrap(), b"hello");
    assert_eq!(
        get_xattr(&ping, "security.capability").unwrap().unwrap(),
        CAP
    );
    assert_eq!(meta(&ping).mode() & 0o7777, 0o4755);
    assert_eq!(get_xattr(&ping, "trusted.overlay.redirect").unwrap(), None);
    assert_eq!(
        get_xattr(&env.d("d"), "trusted.dirnote").unwrap().unwrap(),
        b"d"
    );
    assert!(
        !opaque(&env.d("d")),
        "overlay xattrs are never taken from the tar"
    );
    assert_eq!(
        get_xattr(&env.d("d/link"), "trusted.linknote")
            .unwrap()
            .unwrap(),
        b"l"
    );
    assert_eq!(get_xattr(&env.d("ping"), "trusted.linknote").unwrap(), None);
}

#[test]
fn whiteouts_become_overlay_whiteouts() {
    let env = Env::new();
    let tar = T::new()
        .dir("a", 0o755)
        .file("a/.wh.gone", b"", 0o644)
        .file(".wh.top", b"", 0o644)
        .dir("b", 0o700)
        .file("b/keep", b"k", 0o644)
        .file("b/.wh..wh..opq", b"", 0o644)
        .file("c/.wh..wh..opq", b"", 0o644)
        .file("p/q/.wh.x", b"", 0o644)
        .file("a/.wh..wh.plnk", b"", 0o644)
        .bytes();
    let out = env.unpack_guarded(&tar).unwrap();
    assert_eq!(out.entries, 9);
    assert!(is_whiteout(&env.d("a/gone")));
    assert!(is_whiteout(&env.d("top")));
    assert!(is_whiteout(&env.d("p/q/x")));
    assert!(opaque(&env.d("b")));
    assert!(opaque(&env.d("c")));
    assert!(!opaque(&env.d("a")));
    assert_eq!(meta(&env.d("b")).mode() & 0o7777, 0o700);
    assert_eq!(
        listing(&env.dest),
        ["a/", "a/gone", "b/", "b/keep", "c/", "p/", "p/q/", "p/q/x", "top"],
        "no .wh. entry may appear"
    );
}

#[test]
fn whiteouts_of_the_same_layer() {
    let env = Env::new();
    let tar = T::new()
        // layer.md: a whiteout applies only to lower layers; an entry of
        // this layer stays (a directory becomes opaque)
        .file("f", b"f", 0o644)
        .file(".wh.f", b"", 0o644)
        .dir("d", 0o755)
        .file("d/x", b"x", 0o644)
        .file(".wh.d", b"", 0o644)
        // deleted, then recreated: the new directory hides the lower one
        .file(".wh.e", b"", 0o644)
        .dir("e", 0o755)
        .file("e/y", b"y", 0o644)
        .file(".wh.h", b"", 0o644)
        .file("h/z", b"z", 0o644)
        // deleted, then recreated as a file
        .file(".wh.g", b"", 0o644)
        .file("g", b"g", 0o644)
        .bytes();
    env.unpack_guarded(&tar).unwrap();
    assert_eq!(std::fs::read(env.d("f")).unwrap(), b"f");
    assert!(meta(&env.d("d")).is_dir() && opaque(&env.d("d")));
    assert_eq!(std::fs::read(env.d("d/x")).unwrap(), b"x");
    assert!(meta(&env.d("e")).is_dir() && opaque(&env.d("e")));
    assert!(meta(&env.d("h")).is_dir() && opaque(&env.d("h")));
    assert!(meta(&env.d("g")).is_file());
    assert_eq!(
        listing(&env.dest),
        ["d/", "d/x", "e/", "e/y", "f", "g", "h/", "h/z"]
    );
}

#[test]
fn later_entries_replace_earlier_ones() {
    let env = Env::new();
    let tar = T::new()
        .file("fd", b"file", 0o644)
        .dir("fd", 0o711)
        .dir("df", 0o755)
        .file("df/child", b"c", 0o644)
        .file("df", b"now a file", 0o600)
        .symlink("sd", "/")
        .dir("sd", 0o755)
        .file("ff", b"old", 0o644)
        .file("ff", b"new", 0o644)
        .file("fs", b"x", 0o644)
        .symlink("fs", "ff")
        .bytes();
    env.unpack_guarded(&tar).unwrap();
    assert!(meta(&env.d("fd")).is_dir());
    assert_eq!(meta(&env.d("fd")).mode() & 0o7777, 0o711);
    assert_eq!(std::fs::read(env.d("df")).unwrap(), b"now a file");
    assert!(meta(&env.d("sd")).is_dir());
    assert_eq!(std::fs::read(env.d("ff")).unwrap(), b"new");
    assert!(meta(&env.d("fs")).file_type().is_symlink());
    assert_eq!(listing(&env.dest), ["df", "fd/", "ff", "fs", "sd/"]);
}

#[test]
fn diff_id_covers_padding_and_trailing_blocks() {
    let env = Env::new();
    let mut tar = T::new().file("a", b"12345", 0o644).bytes();
    tar.extend_from_slice(&[0u8; 9216]); // a 10 KiB record, as GNU tar writes
    let out = env.unpack_guarded(&tar).unwrap();
    assert_eq!(out.diff_id, sha256(&tar));
    assert_eq!((out.entries, out.size), (1, 5));
}

#[test]
fn sniff_magic() {
    assert_eq!(sniff(&[0x1f, 0x8b, 8, 0]), Compression::Gzip);
    assert_eq!(sniff(&[0x28, 0xb5, 0x2f, 0xfd]), Compression::Zstd);
    assert_eq!(sniff(b"ustar"), Compression::None);
    assert_eq!(sniff(&[0x1f]), Compression::None);
    assert_eq!(sniff(&[]), Compression::None);
}

fn round_trip(c: Compression, blob: Vec<u8>, tar: &[u8]) {
    assert_eq!(sniff(&blob), c);
    let env = Env::new();
    let r = decompress(blob.as_slice(), c).unwrap();
    let out = unpack_layer(r, &env.dest, &root_opts()).unwrap();
    assert_eq!(out.diff_id, sha256(tar));
    assert_eq!(
        std::fs::read(env.d("dir/file")).unwrap(),
        vec![7u8; 100_000]
    );
}

fn sample() -> Vec<u8> {
    T::new()
        .dir("dir", 0o755)
        .file("dir/file", &[7u8; 100_000], 0o644)
        .bytes()
}

#[test]
fn gzip_round_trip() {
    use std::io::Write;
    let tar = sample();
    // two gzip members, as pigz and concatenation make
    let mut blob = Vec::new();
    for part in [&tar[..1000], &tar[1000..]] {
        let mut g = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        g.write_all(part).unwrap();
        blob.extend(g.finish().unwrap());
    }
    round_trip(Compression::Gzip, blob, &tar);
}

#[test]
fn zstd_round_trip() {
    let tar = sample();
    let blob = zstd::encode_all(tar.as_slice(), 3).unwrap();
    round_trip(Compression::Zstd, blob, &tar);
}

#[test]
fn sparse_entries_are_written_sparsely() {
    let env = Env::new();
    let src = env.tmp.path().join("sparse-src");
    {
        let f = std::fs::File::create(&src).unwrap();
        f.set_len(1 << 30).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&f, b"hello", 512 << 20).unwrap();
    }
    let mut b = tar::Builder::new(Vec::new());
    b.append_path_with_name(&src, "big").unwrap();
    let tar = b.into_inner().unwrap();
    std::fs::remove_file(&src).unwrap();
    assert_eq!(
        tar::Header::from_byte_slice(&tar[..512]).entry_type(),
        tar::EntryType::GNUSparse
    );
    assert!(tar.len() < 1 << 20);
    let out = env.unpack_guarded(&tar).unwrap();
    assert_eq!(out.size, 1 << 30);
    let m = meta(&env.d("big"));
    assert_eq!(m.len(), 1 << 30);
    assert!(
        m.blocks() * 512 <= 64 << 10,
        "{} blocks allocated",
        m.blocks()
    );
    let mut buf = [0u8; 5];
    std::os::unix::fs::FileExt::read_exact_at(
        &std::fs::File::open(env.d("big")).unwrap(),
        &mut buf,
        512 << 20,
    )
    .unwrap();
    assert_eq!(&buf, b"hello");
}

#[test]
fn zeros_take_no_disk() {
    let env = Env::new();
    let mut data = vec![0u8; 64 << 20];
    data[10 << 20] = 1;
    let tar = T::new().file("zeros", &data, 0o644).bytes();
    env.unpack_guarded(&tar).unwrap();
    let m = meta(&env.d("zeros"));
    assert_eq!(m.len(), 64 << 20);
    assert!(
        m.blocks() * 512 <= 64 << 10,
        "{} blocks allocated",
        m.blocks()
    );
    assert_eq!(std::fs::read(env.d("zeros")).unwrap(), data);
}

#[test]
fn max_entries() {
    let env = Env::new();
    let tar = T::new()
        .file("a", b"", 0o644)
        .file("b", b"", 0o644)
        .file("c", b"", 0o644)
        .bytes();
    let opts = UnpackOptions {
        keep_ownership: true,
        max_entries: Some(2),
    };
    let e = unpack_layer(tar.as_slice(), &env.dest, &opts).unwrap_err();
    assert!(matches!(e, Error::TooManyEntries { limit: 2 }), "{e}");
    let env = Env::new();
    let opts = UnpackOptions {
        keep_ownership: true,
        max_entries: Some(3),
    };
    assert_eq!(
        unpack_layer(tar.as_slice(), &env.dest, &opts)
            .unwrap()
            .entries,
        3
    );
}

/// Unmounts on drop, so a failing assertion leaves no mount behind.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[test]
fn overlay_merged_view_honours_whiteouts_and_opaque_dirs() {
    let tmp = tempfile::tempdir().unwrap();
    let (l1, l2, merged) = (
        tmp.path().join("l1"),
        tmp.path().join("l2"),
        tmp.path().join("merged"),
    );
    for d in [&l1, &l2, &merged] {
        std::fs::create_dir(d).unwrap();
    }
    let lower = T::new()
        .dir("d", 0o755)
        .file("d/old1", b"1", 0o644)
        .file("d/old2", b"2", 0o644)
        .file("gone", b"g", 0o644)
        .file("keep", b"k", 0o644)
        .dir("sub", 0o755)
        .file("sub/x", b"x", 0o644)
        .file("sub/y", b"y", 0o644)
        .bytes();
    let upper = T::new()
        .file(".wh.gone", b"", 0o644)
        .dir("d", 0o755)
        .file("d/.wh..wh..opq", b"", 0o644)
        .file("d/new", b"n", 0o644)
        .file("sub/.wh.x", b"", 0o644)
        .bytes();
    unpack_layer(lower.as_slice(), &l1, &root_opts()).unwrap();
    unpack_layer(upper.as_slice(), &l2, &root_opts()).unwrap();
    let opts = format!("lowerdir={}:{}", l2.display(), l1.display());
    nix::mount::mount(
        Some("overlay"),
        &merged,
        Some("overlay"),
        nix::mount::MsFlags::MS_RDONLY,
        Some(opts.as_str()),
    )
    .expect("mount -t overlay");
    let _guard = Mounted(merged.clone());
    assert_eq!(listing(&merged), ["d/", "d/new", "keep", "sub/", "sub/y"]);
    assert_eq!(std::fs::read(merged.join("keep")).unwrap(), b"k");
}

/// A PAX-format (1.0) GNU sparse entry: the map opens the entry's data.
pub(super) fn pax_sparse_1_0(real: u64, map: &str, data: &[u8]) -> Vec<u8> {
    let mut body = map.as_bytes().to_vec();
    body.resize(body.len().div_ceil(512) * 512, 0);
    body.extend_from_slice(data);
    let real = real.to_string();
    T::new()
        .pax(&[
            ("GNU.sparse.major", b"1"),
            ("GNU.sparse.minor", b"0"),
            ("GNU.sparse.name", b"dir/real"),
            ("GNU.sparse.realsize", real.as_bytes()),
        ])
        .raw(
            b"dir/GNUSparseFile.0/real",
            tar::EntryType::Regular,
            b"",
            &body,
        )
        .bytes()
}

#[test]
fn pax_sparse_files_are_written_sparsely() {
    let env = Env::new();
    let tar = pax_sparse_1_0(1 << 40, "2\n4096\n5\n1099511627000\n3\n", b"helloend");
    let out = env.unpack_guarded(&tar).unwrap();
    assert_eq!(out.size, 1 << 40);
    assert_eq!(listing(&env.dest), ["dir/", "dir/real"]);
    let m = meta(&env.d("dir/real"));
    assert_eq!(m.len(), 1 << 40);
    assert!(
        m.blocks() * 512 <= 64 << 10,
        "{} blocks allocated",
        m.blocks()
    );
    let f = std::fs::File::open(env.d("dir/real")).unwrap();
    let mut buf = [0u8; 5];
    std::os::unix::fs::FileExt::read_exact_at(&f, &mut buf, 4096).unwrap();
    assert_eq!(&buf, b"hello");
    std::os::unix::fs::FileExt::read_exact_at(&f, &mut buf[..3], 1099511627000).unwrap();
    assert_eq!(&buf[..3], b"end");

    // 0.1: the map is a PAX record
    let env = Env::new();
    let tar = T::new()
        .pax(&[
            ("GNU.sparse.major", b"0"),
            ("GNU.sparse.minor", b"1"),
            ("GNU.sparse.name", b"real"),
            ("GNU.sparse.size", b"1000000"),
            ("GNU.sparse.numblocks", b"2"),
            ("GNU.sparse.map", b"0,2,999998,2"),
        ])
        .raw(
            b"GNUSparseFile.0/real",
            tar::EntryType::Regular,
            b"",
            b"abyz",
        )
        .bytes();
    env.unpack_guarded(&tar).unwrap();
    let got = std::fs::read(env.d("real")).unwrap();
    assert_eq!(
        (got.len(), &got[..2], &got[999_998..]),
        (1_000_000, &b"ab"[..], &b"yz"[..])
    );
}
