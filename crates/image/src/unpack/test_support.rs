//! Helpers of the applier's tests: layer tars built in memory, and a temp
//! dir with a sentinel tree beside the layer dir.

use super::sys::{get_xattr, list_xattrs};
use super::*;
use sha2::{Digest, Sha256};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

pub(super) const MTIME: u64 = 1_600_000_000;

/// A layer tar under construction.
pub(super) struct T {
    b: tar::Builder<Vec<u8>>,
}

pub(super) fn pax_records(records: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in records {
        let body = k.len() + v.len() + 3; // ' ', '=', '\n'
        let mut len = body + 1;
        while len != body + len.to_string().len() {
            len = body + len.to_string().len();
        }
        out.extend_from_slice(format!("{len} {k}=").as_bytes());
        out.extend_from_slice(v);
        out.push(b'\n');
    }
    out
}

/// A ustar header with the name and link name bytes exactly as given (the
/// Builder refuses `..`, absolute names, NUL...).
pub(super) fn raw_header(
    name: &[u8],
    et: tar::EntryType,
    size: u64,
    link: &[u8],
    mode: u32,
) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(et);
    h.set_size(size);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(MTIME);
    let b = h.as_mut_bytes();
    b[..100].fill(0);
    b[..name.len()].copy_from_slice(name);
    b[157..257].fill(0);
    b[157..157 + link.len()].copy_from_slice(link);
    h.set_cksum();
    h
}

impl T {
    pub(super) fn new() -> T {
        T {
            b: tar::Builder::new(Vec::new()),
        }
    }

    fn header(et: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(et);
        h.set_mode(mode);
        h.set_size(size);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(MTIME);
        h
    }

    pub(super) fn file(&mut self, path: &str, data: &[u8], mode: u32) -> &mut Self {
        self.file_owned(path, data, mode, 0, 0, MTIME)
    }

    pub(super) fn file_owned(
        &mut self,
        path: &str,
        data: &[u8],
        mode: u32,
        uid: u64,
        gid: u64,
        mtime: u64,
    ) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Regular, mode, data.len() as u64);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_mtime(mtime);
        self.b.append_data(&mut h, path, data).unwrap();
        self
    }

    pub(super) fn dir(&mut self, path: &str, mode: u32) -> &mut Self {
        self.dir_at(path, mode, MTIME)
    }

    pub(super) fn dir_at(&mut self, path: &str, mode: u32, mtime: u64) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Directory, mode, 0);
        h.set_mtime(mtime);
        self.b.append_data(&mut h, path, &[][..]).unwrap();
        self
    }

    pub(super) fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Symlink, 0o777, 0);
        self.b.append_link(&mut h, path, target).unwrap();
        self
    }

    pub(super) fn symlink_owned(
        &mut self,
        path: &str,
        target: &str,
        uid: u64,
        mtime: u64,
    ) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Symlink, 0o777, 0);
        h.set_uid(uid);
        h.set_gid(uid);
        h.set_mtime(mtime);
        self.b.append_link(&mut h, path, target).unwrap();
        self
    }

    pub(super) fn hardlink(&mut self, path: &str, target: &str) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Link, 0o644, 0);
        self.b.append_link(&mut h, path, target).unwrap();
        self
    }

    pub(super) fn node(
        &mut self,
        path: &str,
        et: tar::EntryType,
        major: u32,
        minor: u32,
        mode: u32,
    ) -> &mut Self {
        let mut h = Self::header(et, mode, 0);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.b.append_data(&mut h, path, &[][..]).unwrap();
        self
    }

    /// A local PAX header for the next entry.
    pub(super) fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        let data = pax_records(records);
        let h = raw_header(
            b"PaxHeaders/x",
            tar::EntryType::XHeader,
            data.len() as u64,
            b"",
            0o644,
        );
        self.b.append(&h, data.as_slice()).unwrap();
        self
    }

    /// An entry with the name and link bytes exactly as given.
    pub(super) fn raw(
        &mut self,
        name: &[u8],
        et: tar::EntryType,
        link: &[u8],
        data: &[u8],
    ) -> &mut Self {
        let h = raw_header(name, et, data.len() as u64, link, 0o644);
        self.b.append(&h, data).unwrap();
        self
    }

    /// A prepared header and its data, as they are.
    pub(super) fn push(&mut self, h: &tar::Header, data: &[u8]) -> &mut Self {
        self.b.append(h, data).unwrap();
        self
    }

    pub(super) fn bytes(&mut self) -> Vec<u8> {
        let b = std::mem::replace(&mut self.b, tar::Builder::new(Vec::new()));
        b.into_inner().unwrap()
    }
}

/// A temp dir holding `dest/` (the layer dir) and `sentinel/` beside it,
/// which no layer may touch.
pub(super) struct Env {
    pub tmp: tempfile::TempDir,
    pub dest: PathBuf,
    pub sentinel: PathBuf,
}

#[derive(Debug, PartialEq)]
pub(super) struct Node {
    path: PathBuf,
    mode: u32,
    uid: u32,
    gid: u32,
    nlink: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    content: Vec<u8>,
    xattrs: Vec<Vec<u8>>,
}

fn node(p: &Path) -> Node {
    let m = std::fs::symlink_metadata(p).unwrap();
    let content = if m.file_type().is_file() {
        std::fs::read(p).unwrap()
    } else if m.file_type().is_symlink() {
        std::fs::read_link(p).unwrap().into_os_string().into_vec()
    } else {
        Vec::new()
    };
    Node {
        path: p.to_path_buf(),
        mode: m.mode(),
        uid: m.uid(),
        gid: m.gid(),
        nlink: m.nlink(),
        mtime: (m.mtime(), m.mtime_nsec()),
        ctime: (m.ctime(), m.ctime_nsec()),
        content,
        xattrs: list_xattrs(p).unwrap(),
    }
}

use std::os::unix::ffi::OsStringExt;

/// Every node under `p` (not following symlinks), `p` included.
pub(super) fn snapshot(p: &Path) -> Vec<Node> {
    let mut out = vec![node(p)];
    if std::fs::symlink_metadata(p).unwrap().is_dir() {
        let mut names: Vec<_> = std::fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        for n in names {
            out.extend(snapshot(&n));
        }
    }
    out
}

/// Relative paths of everything in `p`, sorted.
pub(super) fn listing(p: &Path) -> Vec<String> {
    fn walk(root: &Path, p: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(p).unwrap() {
            let e = e.unwrap();
            let rel = e
                .path()
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let dir = e.file_type().unwrap().is_dir();
            out.push(if dir { format!("{rel}/") } else { rel });
            if dir {
                walk(root, &e.path(), out);
            }
        }
    }
    let mut out = Vec::new();
    walk(p, p, &mut out);
    out.sort();
    out
}

impl Env {
    pub(super) fn new() -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("dest");
        let sentinel = tmp.path().join("sentinel");
        std::fs::create_dir(&dest).unwrap();
        std::fs::create_dir(&sentinel).unwrap();
        std::fs::write(sentinel.join("file"), b"precious").unwrap();
        std::fs::create_dir(sentinel.join("sub")).unwrap();
        std::fs::write(sentinel.join("sub/inner"), b"also precious").unwrap();
        Env {
            tmp,
            dest,
            sentinel,
        }
    }

    /// Sentinel tree, the temp dir itself and the host files the hostile
    /// tests aim at.
    pub(super) fn outside(&self) -> Vec<Node> {
        let mut v = snapshot(&self.sentinel);
        v.push(node(self.tmp.path()));
        v.push(node(Path::new("/etc/passwd")));
        v.push(node(Path::new("/etc")));
        v
    }

    pub(super) fn outside_names(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    pub(super) fn unpack(&self, tar: &[u8]) -> Result<Unpacked> {
        unpack_layer(tar, &self.dest, &root_opts())
    }

    /// Unpack, asserting that nothing outside `dest` changed either way.
    pub(super) fn unpack_guarded(&self, tar: &[u8]) -> Result<Unpacked> {
        let before = self.outside();
        let r = self.unpack(tar);
        if let Err(e) = &r {
            eprintln!("refused: {e}");
        }
        assert_eq!(self.outside(), before, "something outside dest changed");
        assert_eq!(self.outside_names(), ["dest", "sentinel"]);
        r
    }

    pub(super) fn d(&self, rel: &str) -> PathBuf {
        self.dest.join(rel)
    }

    /// The sentinel's absolute path without the leading '/'.
    pub(super) fn sentinel_rel(&self) -> String {
        self.sentinel
            .to_str()
            .unwrap()
            .trim_start_matches('/')
            .to_string()
    }
}

pub(super) fn root_opts() -> UnpackOptions {
    UnpackOptions {
        keep_ownership: true,
        max_entries: None,
    }
}

pub(super) fn meta(p: &Path) -> std::fs::Metadata {
    std::fs::symlink_metadata(p).unwrap()
}

pub(super) fn is_whiteout(p: &Path) -> bool {
    let m = meta(p);
    m.file_type().is_char_device()
        && m.rdev() == 0
        && m.mode() & 0o7777 == 0
        && m.uid() == 0
        && m.gid() == 0
}

pub(super) fn opaque(p: &Path) -> bool {
    get_xattr(p, "trusted.overlay.opaque").unwrap().as_deref() == Some(b"y".as_slice())
}

pub(super) fn sha256(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}
