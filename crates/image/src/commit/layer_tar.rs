//! The layer tar of a container's changes, in OCI layer format, as Docker
//! writes it from an overlay upper dir: names relative (`etc/`,
//! `etc/passwd`), in byte order with a directory before its children;
//! regular files, directories, symlinks, hardlinks (a second name of an
//! inode already written), device nodes and FIFOs with mode, owner and
//! mtime (whole seconds) and their xattrs as PAX `SCHILY.xattr.*` records.
//! An overlay whiteout (0:0 char device `name`) becomes an empty regular
//! file `.wh.name`; an opaque directory becomes its entry followed by an
//! empty `dir/.wh..wh..opq`. Names or link targets longer than the ustar
//! fields and ids over its octal range go into PAX records. Sockets are
//! skipped, as Docker does.
//!
//! Not copied: overlayfs' own xattrs (`trusted.overlay.*`,
//! `user.overlay.*`: its metadata is carried by the whiteouts) and
//! `security.selinux` (a label of this host, not of the image).

use super::walk::{self, upper_err, Node};
use super::Result;
use nix::sys::stat::SFlag;
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::path::Path;

const WHITEOUT_PREFIX: &[u8] = b".wh.";
const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";
/// Largest id the ustar octal field holds.
const MAX_OCTAL_ID: u64 = 0o7777777;

fn skipped_xattr(name: &[u8]) -> bool {
    name.starts_with(b"trusted.overlay.")
        || name.starts_with(b"user.overlay.")
        || name == b"security.selinux"
}

/// Writes the layer tar of `upper` to `out` (end-of-archive blocks included)
/// and returns `out`.
pub(crate) fn write<W: Write>(upper: &Path, out: W) -> Result<W> {
    let mut w = Writer {
        b: tar::Builder::new(out),
        upper,
        links: HashMap::new(),
        big_ids: Vec::new(),
    };
    walk::walk(upper, &mut |node| w.entry(node))?;
    w.b.into_inner()
        .map_err(upper_err("write the layer tar of", upper, b""))
}

struct Writer<'a, W: Write> {
    b: tar::Builder<W>,
    upper: &'a Path,
    /// (dev, ino) of files with several links -> the name written first.
    links: HashMap<(u64, u64), Vec<u8>>,
    /// PAX `uid`/`gid` records for the next entry (ids over the octal range).
    big_ids: Vec<(Vec<u8>, Vec<u8>)>,
}

impl<W: Write> Writer<'_, W> {
    /// Writes one entry; returns whether to descend.
    fn entry(&mut self, node: &Node<'_>) -> Result<bool> {
        let werr = upper_err("write the layer entry for", self.upper, node.rel);
        if node.is_whiteout() {
            let (dir, name) = split(node.rel);
            let mut wh = dir.to_vec();
            wh.extend_from_slice(WHITEOUT_PREFIX);
            wh.extend_from_slice(name);
            let h = self.header(node, tar::EntryType::Regular, 0);
            self.append(h, &wh, None, &[], io::empty()).map_err(werr)?;
            return Ok(false);
        }
        let kind = node.kind();
        if kind == SFlag::S_IFSOCK {
            return Ok(false);
        }
        let xattrs: Vec<(Vec<u8>, Vec<u8>)> = node
            .xattrs()
            .map_err(upper_err("read xattrs of", self.upper, node.rel))?
            .into_iter()
            .filter(|(k, _)| !skipped_xattr(k))
            .collect();
        if kind != SFlag::S_IFDIR && node.st.st_nlink > 1 {
            let key = (node.st.st_dev, node.st.st_ino);
            if let Some(first) = self.links.get(&key) {
                let first = first.clone();
                let h = self.header(node, tar::EntryType::Link, 0);
                self.append(h, node.rel, Some(&first), &[], io::empty())
                    .map_err(werr)?;
                return Ok(false);
            }
            self.links.insert(key, node.rel.to_vec());
        }
        match kind {
            SFlag::S_IFDIR => {
                let mut name = node.rel.to_vec();
                name.push(b'/');
                let h = self.header(node, tar::EntryType::Directory, 0);
                self.append(h, &name, None, &xattrs, io::empty())
                    .map_err(werr)?;
                if node.is_opaque(self.upper)? {
                    name.extend_from_slice(OPAQUE_MARKER);
                    let h = self.header(node, tar::EntryType::Regular, 0);
                    let werr = upper_err("write the layer entry for", self.upper, node.rel);
                    self.append(h, &name, None, &[], io::empty())
                        .map_err(werr)?;
                }
                Ok(true)
            }
            SFlag::S_IFREG => {
                let (file, st) = node.open_file(self.upper)?;
                let size = st.st_size as u64;
                let h = self.header(node, tar::EntryType::Regular, size);
                let data = Exact {
                    r: io::BufReader::with_capacity(256 * 1024, file).take(size),
                    left: size,
                };
                self.append(h, node.rel, None, &xattrs, data)
                    .map_err(werr)?;
                Ok(false)
            }
            SFlag::S_IFLNK => {
                let target = nix::fcntl::readlinkat(node.dir, node.name)
                    .map_err(|e| upper_err("read the symlink", self.upper, node.rel)(e.into()))?;
                let h = self.header(node, tar::EntryType::Symlink, 0);
                use std::os::unix::ffi::OsStrExt;
                self.append(h, node.rel, Some(target.as_bytes()), &xattrs, io::empty())
                    .map_err(werr)?;
                Ok(false)
            }
            SFlag::S_IFCHR | SFlag::S_IFBLK | SFlag::S_IFIFO => {
                let t = match kind {
                    SFlag::S_IFCHR => tar::EntryType::Char,
                    SFlag::S_IFBLK => tar::EntryType::Block,
                    _ => tar::EntryType::Fifo,
                };
                let mut h = self.header(node, t, 0);
                if t != tar::EntryType::Fifo {
                    let rdev = node.st.st_rdev;
                    h.set_device_major(nix::sys::stat::major(rdev) as u32)
                        .and_then(|()| h.set_device_minor(nix::sys::stat::minor(rdev) as u32))
                        .map_err(upper_err("write the layer entry for", self.upper, node.rel))?;
                }
                self.append(h, node.rel, None, &xattrs, io::empty())
                    .map_err(werr)?;
                Ok(false)
            }
            _ => Ok(false),
        }
    }

    fn header(&mut self, node: &Node<'_>, t: tar::EntryType, size: u64) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(t);
        h.set_size(size);
        h.set_mode(node.st.st_mode & 0o7777);
        for (key, id) in [(&b"uid"[..], node.st.st_uid), (&b"gid"[..], node.st.st_gid)] {
            if u64::from(id) > MAX_OCTAL_ID {
                self.big_ids
                    .push((key.to_vec(), id.to_string().into_bytes()));
            }
        }
        h.set_uid(u64::from(node.st.st_uid).min(MAX_OCTAL_ID));
        h.set_gid(u64::from(node.st.st_gid).min(MAX_OCTAL_ID));
        h.set_mtime(node.st.st_mtime.max(0) as u64);
        // Zero, not empty, as Go writes them (readers parse them for FIFOs).
        let _ = h.set_device_major(0);
        let _ = h.set_device_minor(0);
        h
    }

    /// Writes a PAX header when a field does not fit (or there are xattrs),
    /// then the entry.
    fn append(
        &mut self,
        mut h: tar::Header,
        name: &[u8],
        link: Option<&[u8]>,
        xattrs: &[(Vec<u8>, Vec<u8>)],
        data: impl Read,
    ) -> io::Result<()> {
        let mut pax: Vec<(Vec<u8>, Vec<u8>)> = std::mem::take(&mut self.big_ids);
        let old = h.as_old_mut();
        if name.len() > old.name.len() {
            pax.push((b"path".to_vec(), name.to_vec()));
        }
        let n = name.len().min(old.name.len());
        old.name[..n].copy_from_slice(&name[..n]);
        if let Some(link) = link {
            if link.len() > old.linkname.len() {
                pax.push((b"linkpath".to_vec(), link.to_vec()));
            }
            let n = link.len().min(old.linkname.len());
            old.linkname[..n].copy_from_slice(&link[..n]);
        }
        for (k, v) in xattrs {
            let mut key = b"SCHILY.xattr.".to_vec();
            key.extend_from_slice(k);
            pax.push((key, v.clone()));
        }
        if !pax.is_empty() {
            let data = pax_records(&pax);
            let mut ph = tar::Header::new_ustar();
            ph.set_entry_type(tar::EntryType::XHeader);
            ph.set_size(data.len() as u64);
            ph.set_mode(0o644);
            let pname = b"PaxHeader";
            ph.as_old_mut().name[..pname.len()].copy_from_slice(pname);
            ph.set_cksum();
            self.b.append(&ph, data.as_slice())?;
        }
        h.set_cksum();
        self.b.append(&h, data)
    }
}

/// `dir/` and `name` of `dir/name` (the dir part keeps its slash).
fn split(rel: &[u8]) -> (&[u8], &[u8]) {
    match rel.iter().rposition(|&b| b == b'/') {
        Some(i) => (&rel[..=i], &rel[i + 1..]),
        None => (&[], rel),
    }
}

/// PAX records: `<len> <key>=<value>\n`, where len counts itself.
fn pax_records(records: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in records {
        let body = k.len() + v.len() + 3; // ' ', '=', '\n'
        let mut len = body + 1;
        while len != body + len.to_string().len() {
            len = body + len.to_string().len();
        }
        out.extend_from_slice(len.to_string().as_bytes());
        out.push(b' ');
        out.extend_from_slice(k);
        out.push(b'=');
        out.extend_from_slice(v);
        out.push(b'\n');
    }
    out
}

/// Exactly `left` bytes: a file that shrank while being read is an error
/// (the header already promised its size), not a short entry.
struct Exact<R> {
    r: R,
    left: u64,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.r.read(buf)?;
        if n == 0 && self.left > 0 && !buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file shrank while it was read; stop or pause the container and try again",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_lengths_count_themselves() {
        let r = pax_records(&[(b"path".to_vec(), vec![b'a'; 93])]);
        // 3 + 1 + 4 + 1 + 93 + 1 = 103 with a 3-digit length.
        assert!(
            r.starts_with(b"103 path="),
            "{}",
            String::from_utf8_lossy(&r)
        );
        assert_eq!(r.len(), 103);
        let r = pax_records(&[(b"k".to_vec(), b"v".to_vec())]);
        assert_eq!(r, b"6 k=v\n");
        for n in 0..300 {
            let r = pax_records(&[(b"x".to_vec(), vec![b'y'; n])]);
            let len: usize = std::str::from_utf8(&r[..r.iter().position(|&b| b == b' ').unwrap()])
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(len, r.len(), "value of {n} bytes");
        }
    }

    #[test]
    fn split_names() {
        assert_eq!(split(b"a/b/c"), (&b"a/b/"[..], &b"c"[..]));
        assert_eq!(split(b"c"), (&b""[..], &b"c"[..]));
    }
}
