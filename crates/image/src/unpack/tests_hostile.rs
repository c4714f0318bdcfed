//! Hostile layers: each is refused (or lands inside the layer directory),
//! and nothing outside `dest` changes (`Env::unpack_guarded` compares the
//! sentinel tree, the temp dir, `/etc` and `/etc/passwd` before and after).

use super::sys::{get_xattr, list_xattrs};
use super::test_support::{is_whiteout, listing, meta, pax_records, raw_header, Env, MTIME, T};
use super::*;
use std::os::unix::fs::MetadataExt;

fn names(env: &Env) -> Vec<String> {
    listing(&env.dest)
}

#[test]
fn dotdot_name_is_refused() {
    let env = Env::new();
    let tar = T::new()
        .raw(b"../evil", tar::EntryType::Regular, b"", b"pwned")
        .bytes();
    let e = env.unpack_guarded(&tar).unwrap_err();
    assert!(matches!(e, Error::Escape { .. }), "{e}");
    assert!(names(&env).is_empty());
}

#[test]
fn dotdot_through_the_sentinel_is_refused() {
    let env = Env::new();
    let tar = T::new()
        .raw(
            b"a/../../sentinel/file",
            tar::EntryType::Regular,
            b"",
            b"pwned",
        )
        .bytes();
    let e = env.unpack_guarded(&tar).unwrap_err();
    assert!(matches!(e, Error::Escape { .. }), "{e}");
    assert!(names(&env).is_empty());
}

#[test]
fn dotdot_that_stays_inside_is_cleaned() {
    let env = Env::new();
    let tar = T::new()
        .raw(b"a/b/../../c/./d", tar::EntryType::Regular, b"", b"ok")
        .bytes();
    env.unpack_guarded(&tar).unwrap();
    assert_eq!(names(&env), ["c/", "c/d"]);
}

#[test]
fn absolute_names_land_inside_dest() {
    let env = Env::new();
    // the sentinel's own absolute path, as an entry name (pax: it is long)
    let name = format!("{}/file", env.sentinel.display());
    let tar = T::new()
        .pax(&[("path", name.as_bytes())])
        .raw(b"x", tar::EntryType::Regular, b"", b"pwned")
        .bytes();
    env.unpack_guarded(&tar).unwrap();
    let inside = env.dest.join(format!("{}/file", env.sentinel_rel()));
    assert_eq!(std::fs::read(inside).unwrap(), b"pwned");
}

#[test]
fn write_through_absolute_symlink_to_a_missing_dir_fails() {
    let env = Env::new();
    let target = env.sentinel.display().to_string();
    let tar = T::new()
        .symlink("evil", &target)
        .raw(b"evil/file", tar::EntryType::Regular, b"", b"pwned")
        .bytes();
    let e = env.unpack_guarded(&tar).unwrap_err();
    assert!(matches!(e, Error::Fs { .. }), "{e}");
    assert_eq!(names(&env), ["evil"]);
    assert_eq!(std::fs::read_link(env.d("evil")).unwrap(), env.sentinel);
}

#[test]
fn write_through_absolute_symlink_stays_in_the_layer() {
    let env = Env::new();
    let rel = env.sentinel_rel();
    let tar = T::new()
        .dir(&rel, 0o755)
        .symlink("evil", &format!("/{rel}"))
        .raw(b"evil/file", tar::EntryType::Regular, b"", b"pwned")
        .raw(
            b"evil/sub/inner",
            tar::EntryType::Regular,
            b"",
            b"pwned too",
        )
        .bytes();
    env.unpack_guarded(&tar).unwrap();
    assert_eq!(
        std::fs::read(env.d(&format!("{rel}/file"))).unwrap(),
        b"pwned"
    );
    assert_eq!(
        std::fs::read(env.d(&format!("{rel}/sub/inner"))).unwrap(),
        b"pwned too"
    );
}

#[test]
fn write_through_relative_escaping_symlink_stays_in_the_layer() {
    let env = Env::new();
    let up = "../".repeat(30);
    let tar = T::new()
        .dir("etc", 0o755)
        .dir("a", 0o755)
        .raw(
            b"a/evil",
            tar::EntryType::Symlink,
            format!("{up}etc").as_bytes(),
            b"",
        )
        .raw(b"a/escape", tar::EntryType::Symlink, b"../../sentinel", b"")
        .raw(
            b"a/evil/passwd",
            tar::EntryType::Regular,
            b"",
            b"root::0:0::/:/bin/sh\n",
        )
        .raw(b"a/escape/file", tar::EntryType::Regular, b"", b"pwned")
        .bytes();
    let e = env.unpack_guarded(&tar).unwrap_err();
    // `a/escape` resolves to the layer's own /sentinel, which does not exist
    assert!(matches!(e, Error::Fs { .. }), "{e}");
    assert_eq!(
        std::fs::read(env.d("etc/passwd")).unwrap(),
        b"root::0:0::/:/bin/sh\n"
    );
}

#[test]
fn entries_over_a_symlink_replace_it_and_do_not_follow_it() {
    let env = Env::new();
    let file = env.sentinel.join("file").display().to_string();
    let dir = env.sentinel.display().to_string();
    let tar = T::new()
        // a file entry over a symlink to a host file: the symlink is replaced
        .symlink("f", &file)
        .file_owned("f", b"pwned", 0o777, 4321, 4321, 1)
        // a directory entry over a symlink to a host dir
        .symlink("d", &dir)
        .dir("d", 0o777)
        // a hardlink over a symlink to a host file
        .file("a", b"a", 0o644)
        .symlink("h", &file)
        .hardlink("h", "a")
        // a device node over a symlink to a host file
        .symlink("n", &file)
        .node("n", tar::EntryType::Fifo, 0, 0, 0o666)
        // metadata of a symlink applies to the symlink (lchown, no chmod)
        .pax(&[("SCHILY.xattr.trusted.evil", b"1")])
        .symlink_owned("s", &file, 4321, 1)
        .bytes();
    env.unpack_guarded(&tar).unwrap();
    assert_eq!(std::fs::read(env.d("f")).unwrap(), b"pwned");
    assert!(meta(&env.d("d")).is_dir());
    assert_eq!(meta(&env.d("h")).ino(), meta(&env.d("a")).ino());
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(
        &meta(&env.d("n")).file_type()
    ));
    assert_eq!(meta(&env.d("s")).uid(), 4321);
    assert_eq!(
        get_xattr(&env.d("s"), "trusted.evil").unwrap().unwrap(),
        b"1"
    );
    assert!(list_xattrs(&env.sentinel.join("file")).unwrap().is_empty());
}

#[test]
fn hardlink_to_a_host_file_is_refused() {
    for target in [
        "/etc/passwd".to_string(),
        format!("{}/file", Env::new().sentinel.display()),
    ] {
        let env = Env::new();
        let tar = T::new()
            .raw(b"x", tar::EntryType::Link, target.as_bytes(), b"")
            .bytes();
        let e = env.unpack_guarded(&tar).unwrap_err();
        assert!(matches!(e, Error::Hardlink { .. }), "{e}");
        assert!(names(&env).is_empty());
    }
    // also when a file of that name exists in the layer... but later
    let env = Env::new();
    let tar = T::new()
        .raw(b"x", tar::EntryType::Link, b"/etc/passwd", b"")
        .dir("etc", 0o755)
        .file("etc/passwd", b"mine", 0o644)
        .bytes();
    let e = env.unpack_guarded(&tar).unwrap_err();
    assert!(matches!(e, Error::Hardlink { .. }), "{e}");
}

#[test]
fn hardlink_with_dotdot_is_refused() {
    let env = Env::new();
    let tar = T::new()
        .raw(b"x", tar::EntryType::Link, b"../sentinel/file", b"")
        .bytes();
    let e = env.unpack_guarded(&tar).unwrap_err();
    assert!(matches!(e, Error::Hardlink { .. }), "{e}");
    assert!(names(&env).is_empty());
}

#[test]
fn hardlink_through_a_symlinked_dir_is_refused() {
    let env = Env::new();
    let dir = env.sentinel.display().to_string();
    let rel = env.sentinel_rel();
    let tar = T::new()
        .dir(&rel, 0o755)
        .symlink("d", &dir)
        // lands in the layer's own copy of the sentinel path...
        .raw(b"d/file", tar::EntryType::Regular, b"", b"mine")
        // ...but a hardlink may not reach its target through a symlink
        .raw(b"x", tar::EntryType::Link, b"d/file", b"")
        .bytes();
    let e = env.unpack_guarded(&tar).unwrap_err();
    assert!(
        matches!(e, Error::Hardlink { reason, .. } if reason.contains("symlink")),
        "{e}"
    );
    assert!(!env.d("x").exists());
}

#[test]
fn whiteouts_through_a_symlink_stay_in_the_layer() {
    let env = Env::new();
    let dir = env.sentinel.display().to_string();
    for marker in ["evil/.wh.file", "evil/.wh..wh..opq"] {
        let env = Env::new();
        let tar = T::new()
            .symlink("evil", &dir)
            .raw(marker.as_bytes(), tar::EntryType::Regular, b"", b"")
            .bytes();
        let e = env.unpack_guarded(&tar).unwrap_err();
        assert!(matches!(e, Error::Fs { .. }), "{marker}: {e}");
    }
    // a symlink to "/" is the layer root
    let tar = T::new()
        .symlink("root", "/")
        .raw(b"root/.wh.x", tar::EntryType::Regular, b"", b"")
        .bytes();
    env.unpack_guarded(&tar).unwrap();
    assert!(is_whiteout(&env.d("x")));
}

#[test]
fn huge_sparse_declaration_is_refused() {
    let env = Env::new();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::GNUSparse);
    h.set_path("huge").unwrap();
    h.set_mode(0o644);
    h.set_size(512);
    h.set_mtime(MTIME);
    h.set_uid(0);
    h.set_gid(0);
    {
        let g = h.as_gnu_mut().unwrap();
        g.sparse[0].set_offset((2 << 40) - 512);
        g.sparse[0].set_length(512);
        g.set_real_size(2 << 40);
    }
    h.set_cksum();
    let tar = T::new().push(&h, &[b'x'; 512]).bytes();
    let e = env.unpack_guarded(&tar).unwrap_err();
    assert!(matches!(e, Error::TooLarge { .. }), "{e}");
    assert!(names(&env).is_empty());
}

#[test]
fn huge_pax_header_is_refused_before_it_is_read() {
    let env = Env::new();
    let h = raw_header(
        b"PaxHeaders/x",
        tar::EntryType::XHeader,
        2 << 20,
        b"",
        0o644,
    );
    let mut tar = h.as_bytes().to_vec();
    tar.extend_from_slice(&[b'9'; 4096]); // the declared 2 MiB never come
    let e = env.unpack_guarded(&tar).unwrap_err();
    assert!(
        matches!(e, Error::TooLarge { size, .. } if size == 2 << 20),
        "{e}"
    );

    let env = Env::new();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::GNULongName);
    h.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
    h.set_size(1 << 40);
    h.set_cksum();
    let e = env.unpack_guarded(h.as_bytes()).unwrap_err();
    assert!(
        matches!(e, Error::TooLarge { size, .. } if size == 1 << 40),
        "{e}"
    );
}

#[test]
fn pax_record_with_absurd_length_is_refused() {
    for data in [
        &b"99999999999999999999 path=x\n"[..],
        b"18446744073709551617 path=x\n",
        b"5 path=x\n",
        b"garbage",
    ] {
        let env = Env::new();
        let tar = T::new()
            .push(
                &raw_header(
                    b"PaxHeaders/x",
                    tar::EntryType::XHeader,
                    data.len() as u64,
                    b"",
                    0o644,
                ),
                data,
            )
            .file("f", b"f", 0o644)
            .bytes();
        let e = env.unpack_guarded(&tar).unwrap_err();
        assert!(matches!(e, Error::Malformed { .. }), "{e}");
        assert!(names(&env).is_empty());
    }
}

#[test]
fn pax_size_desync_is_refused() {
    let env = Env::new();
    // The tar crate splits records at '\n' and gives up at the broken first
    // one, so it would ignore `size=0` and take the header's 512 bytes as
    // the file's content; a correct parser takes the 512 bytes as a header.
    let mut data = pax_records(&[("SCHILY.xattr.user.a", b"1\n2")]);
    data.extend(pax_records(&[("size", b"0")]));
    let smuggled = raw_header(b"../smuggled", tar::EntryType::Regular, 0, b"", 0o644);
    let tar = T::new()
        .push(
            &raw_header(
                b"PaxHeaders/x",
                tar::EntryType::XHeader,
                data.len() as u64,
                b"",
                0o644,
            ),
            &data,
        )
        .push(
            &raw_header(b"innocent", tar::EntryType::Regular, 512, b"", 0o644),
            smuggled.as_bytes(),
        )
        .bytes();
    let e = env.unpack_guarded(&tar).unwrap_err();
    assert!(matches!(e, Error::Malformed { .. }), "{e}");
    assert!(names(&env).is_empty());
}

#[test]
fn pax_values_with_newlines_are_read_correctly() {
    let env = Env::new();
    // The tar crate's line-split parser would see a `path=smuggled` record
    // here; the record is one xattr whose value holds a newline.
    let tar = T::new()
        .pax(&[
            ("SCHILY.xattr.user.a", b"x\n17 path=smuggled"),
            ("uid", b"55"),
        ])
        .raw(b"innocent", tar::EntryType::Regular, b"", b"i")
        .bytes();
    env.unpack_guarded(&tar).unwrap();
    assert_eq!(names(&env), ["innocent"]);
    assert_eq!(
        get_xattr(&env.d("innocent"), "user.a").unwrap().unwrap(),
        b"x\n17 path=smuggled"
    );
    assert_eq!(meta(&env.d("innocent")).uid(), 55);
}

#[test]
fn nul_in_a_name_is_refused() {
    let env = Env::new();
    let tar = T::new()
        .pax(&[("path", b"a\0b")])
        .raw(b"a", tar::EntryType::Regular, b"", b"x")
        .bytes();
    let e = env.unpack_guarded(&tar).unwrap_err();
    assert!(matches!(e, Error::Malformed { .. }), "{e}");
    let tar = T::new()
        .pax(&[("linkpath", b"/etc\0x")])
        .raw(b"l", tar::EntryType::Symlink, b"", b"")
        .bytes();
    let e = env.unpack_guarded(&tar).unwrap_err();
    assert!(matches!(e, Error::Malformed { .. }), "{e}");
    assert!(names(&env).is_empty());
}

#[test]
fn truncated_stream_is_refused() {
    let tar = T::new()
        .file("a", &[1u8; 10_000], 0o644)
        .file("b", b"b", 0o644)
        .bytes();
    for cut in [100, 512 + 3000, 512 + 10_240 + 100] {
        let env = Env::new();
        let e = env.unpack_guarded(&tar[..cut]).unwrap_err();
        assert!(matches!(e, Error::Malformed { .. }), "cut at {cut}: {e}");
    }
}

#[test]
fn device_nodes_are_created_inside_dest_only() {
    let env = Env::new();
    let rel = env.sentinel_rel();
    let tar = T::new()
        .symlink("evil", &env.sentinel.display().to_string())
        .dir(&rel, 0o755)
        .node("evil/disk", tar::EntryType::Block, 8, 0, 0o666)
        .bytes();
    env.unpack_guarded(&tar).unwrap();
    assert_eq!(
        meta(&env.d(&format!("{rel}/disk"))).rdev(),
        nix::sys::stat::makedev(8, 0)
    );
}

#[test]
fn unsupported_entry_types_are_refused() {
    let env = Env::new();
    let tar = T::new()
        .raw(b"vol", tar::EntryType::new(b'V'), b"", b"")
        .bytes();
    let e = env.unpack_guarded(&tar).unwrap_err();
    assert!(matches!(e, Error::Malformed { .. }), "{e}");
    let tar = T::new()
        .raw(b"./", tar::EntryType::Symlink, b"x", b"")
        .bytes();
    let e = Env::new().unpack_guarded(&tar).unwrap_err();
    assert!(matches!(e, Error::Malformed { .. }), "{e}");
}

#[test]
fn bad_pax_sparse_maps_are_refused() {
    use super::tests::pax_sparse_1_0;
    for (real, map, data) in [
        (100, "1\n90\n20\n", &[1u8; 20][..]), // chunk past the real size
        (100, "2\n0\n10\n5\n10\n", &[1u8; 20][..]), // overlapping chunks
        (100, "1\n0\n50\n", &[1u8; 20][..]),  // more data listed than held
        (100, "1\n0\n5\n", &[1u8; 20][..]),   // data left over
        (100, "99999999999\n", &[][..]),      // absurd chunk count
        (100, "1\n0\nx\n", &[][..]),          // not a number
    ] {
        let env = Env::new();
        let e = env
            .unpack_guarded(&pax_sparse_1_0(real, map, data))
            .unwrap_err();
        assert!(matches!(e, Error::Malformed { .. }), "{map:?}: {e}");
    }
    // a map whose count promises more values than the data holds
    let env = Env::new();
    let e = env
        .unpack_guarded(&pax_sparse_1_0(100, "3\n0\n1\n", &[]))
        .unwrap_err();
    assert!(matches!(e, Error::Malformed { .. }), "{e}");
}
