//! The reader between the (decompressed) layer stream and the `tar` crate.
//!
//! It hashes every byte for the diff_id and follows the tar framing in
//! step with the `tar` crate, so that it can
//! - refuse PAX/GNU long-name headers larger than [`META_LIMIT`] *before*
//!   the `tar` crate reads them into memory (a few KiB of gzip can declare
//!   gigabytes of PAX header),
//! - parse each entry's PAX records itself, correctly (the `tar` crate splits
//!   records at newlines, which values such as `security.capability` may
//!   contain), and refuse an archive whose framing would differ between the
//!   two parsers (the PAX `size` desync class of bugs),
//! - notice a stream that ends inside an entry (the `tar` crate would treat
//!   that as a clean end of archive).

use super::Error;
use sha2::{Digest, Sha256};
use std::cell::RefCell;
use std::io::{self, Read};

/// Largest PAX extended header or GNU long name/link accepted, like Go's
/// `archive/tar` (`maxSpecialFileSize`).
pub(super) const META_LIMIT: u64 = 1 << 20;

const BLOCK: usize = 512;

/// One parsed PAX record set: `(key, value)` in archive order.
pub(super) type Pax = Vec<(Vec<u8>, Vec<u8>)>;

/// What the tap saw of the entry the `tar` crate yielded last. The header is
/// the one in the stream: the `tar` crate patches uid/gid/size into its copy
/// from its own reading of the PAX records.
pub(super) struct EntryInfo {
    pub(super) header: [u8; BLOCK],
    pub(super) pax: Option<Pax>,
    /// A GNU long name / long link preceded the entry (they win over PAX
    /// `path`/`linkpath`, in the `tar` crate as in Go's `archive/tar`).
    pub(super) long_name: bool,
    pub(super) long_link: bool,
}

enum Phase {
    /// Collecting a 512-byte header.
    Header,
    /// Collecting GNU sparse extension headers; then `data` bytes of data.
    SparseExt { data: u64 },
    /// Inside entry data (including padding to the next block).
    Data { left: u64 },
    /// After the end-of-archive block: everything else is just hashed.
    Done,
}

pub(super) struct TapState {
    hasher: Sha256,
    phase: Phase,
    block: [u8; BLOCK],
    filled: usize,
    /// Bytes of a local PAX header being collected, and how many are left.
    capture: Option<(Vec<u8>, u64, String)>,
    /// The last local PAX header, for the next real entry.
    pending: Option<Pax>,
    /// What the `tar` crate will take as that header's `size`.
    pending_tar_size: Option<u64>,
    pending_long_name: bool,
    pending_long_link: bool,
    /// Name in the last header seen, for errors.
    last_path: String,
    /// The entry the `tar` crate yielded last.
    pub(super) current: Option<EntryInfo>,
    /// Why the stream was refused, when it was.
    pub(super) violation: Option<Error>,
}

impl TapState {
    pub(super) fn new() -> Self {
        TapState {
            hasher: Sha256::new(),
            phase: Phase::Header,
            block: [0; BLOCK],
            filled: 0,
            capture: None,
            pending: None,
            pending_tar_size: None,
            pending_long_name: false,
            pending_long_link: false,
            last_path: String::from("(archive start)"),
            current: None,
            violation: None,
        }
    }

    pub(super) fn diff_id(self) -> String {
        format!("sha256:{}", hex::encode(self.hasher.finalize()))
    }

    fn refuse(&mut self, e: Error) -> io::Error {
        let msg = e.to_string();
        self.violation = Some(e);
        io::Error::new(io::ErrorKind::InvalidData, msg)
    }

    fn observe(&mut self, mut b: &[u8]) -> io::Result<()> {
        while !b.is_empty() {
            match self.phase {
                Phase::Done => return Ok(()),
                Phase::Header | Phase::SparseExt { .. } => {
                    let n = (BLOCK - self.filled).min(b.len());
                    self.block[self.filled..self.filled + n].copy_from_slice(&b[..n]);
                    self.filled += n;
                    b = &b[n..];
                    if self.filled == BLOCK {
                        self.filled = 0;
                        self.on_block()?;
                    }
                }
                Phase::Data { left } => {
                    let n = (left.min(b.len() as u64)) as usize;
                    if let Some((buf, want, _)) = &mut self.capture {
                        let c = (*want).min(n as u64) as usize;
                        buf.extend_from_slice(&b[..c]);
                        *want -= c as u64;
                    }
                    b = &b[n..];
                    let left = left - n as u64;
                    self.phase = Phase::Data { left };
                    if left == 0 {
                        self.end_data()?;
                    }
                }
            }
        }
        Ok(())
    }

    fn on_block(&mut self) -> io::Result<()> {
        if let Phase::SparseExt { data } = self.phase {
            // `GnuExtSparseHeader::is_extended`: byte 504 == 1.
            if self.block[504] != 1 {
                self.start_data(data)?;
            }
            return Ok(());
        }
        if self.block.iter().all(|b| *b == 0) {
            // The `tar` crate stops at the first zero block.
            self.phase = Phase::Done;
            return Ok(());
        }
        let h = tar::Header::from_byte_slice(&self.block);
        let et = h.entry_type();
        let Ok(mut size) = h.entry_size() else {
            // The `tar` crate fails on this header too.
            self.phase = Phase::Done;
            return Ok(());
        };
        let path = String::from_utf8_lossy(&h.path_bytes()).into_owned();
        self.last_path.clone_from(&path);
        let is_ext = et.is_gnu_longname()
            || et.is_gnu_longlink()
            || et.is_pax_local_extensions()
            || et.is_pax_global_extensions();
        let recognized = h.as_ustar().is_some() || h.as_gnu().is_some();
        if is_ext && size > META_LIMIT {
            let what = if et.is_gnu_longname() || et.is_gnu_longlink() {
                "gnu long name header"
            } else {
                "pax extended header"
            };
            return Err(self.refuse(Error::TooLarge {
                path,
                what,
                size,
                limit: META_LIMIT,
            }));
        }
        if !is_ext {
            if let Some(s) = self.pending_tar_size {
                size = s;
            }
        }
        if recognized && et.is_pax_local_extensions() {
            self.capture = Some((Vec::with_capacity(size as usize), size, path));
        } else if recognized && et.is_gnu_longname() {
            self.pending_long_name = true;
        } else if recognized && et.is_gnu_longlink() {
            self.pending_long_link = true;
        } else {
            // An entry the `tar` crate hands out: the pending PAX records and
            // long names are its own.
            self.current = Some(EntryInfo {
                header: self.block,
                pax: self.pending.take(),
                long_name: std::mem::take(&mut self.pending_long_name),
                long_link: std::mem::take(&mut self.pending_long_link),
            });
            self.pending_tar_size = None;
        }
        let extended = et.is_gnu_sparse() && h.as_gnu().is_some_and(|g| g.is_extended());
        let Some(padded) = size
            .checked_add(BLOCK as u64 - 1)
            .map(|s| s & !(BLOCK as u64 - 1))
        else {
            self.phase = Phase::Done;
            return Ok(());
        };
        if extended {
            self.phase = Phase::SparseExt { data: padded };
            Ok(())
        } else {
            self.start_data(padded)
        }
    }

    fn start_data(&mut self, padded: u64) -> io::Result<()> {
        self.phase = Phase::Data { left: padded };
        if padded == 0 {
            self.end_data()?;
        }
        Ok(())
    }

    fn end_data(&mut self) -> io::Result<()> {
        self.phase = Phase::Header;
        let Some((data, _, path)) = self.capture.take() else {
            return Ok(());
        };
        let records = match parse_pax(&data) {
            Ok(r) => r,
            Err(reason) => return Err(self.refuse(Error::Malformed { path, reason })),
        };
        let tar_size = tar_crate_pax_size(&data);
        let own_size = match records.iter().rev().find(|(k, _)| k == b"size") {
            None => None,
            Some((_, v)) => match std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
            {
                Some(s) => Some(s),
                None => {
                    let reason = format!("invalid pax size {:?}", String::from_utf8_lossy(v));
                    return Err(self.refuse(Error::Malformed { path, reason }));
                }
            },
        };
        if own_size != tar_size {
            let reason = "pax header whose size record tar parsers read differently (a record value holds a newline): \
                          refused, as the entries after it would differ"
                .to_string();
            return Err(self.refuse(Error::Malformed { path, reason }));
        }
        self.pending_tar_size = tar_size;
        self.pending = Some(records);
        Ok(())
    }

    fn mid_entry(&self) -> bool {
        match self.phase {
            Phase::Header => self.filled != 0,
            Phase::SparseExt { .. } | Phase::Data { .. } => true,
            Phase::Done => false,
        }
    }
}

/// The `size` the `tar` crate (0.4.46, `pax_extensions_value`) takes from a
/// PAX header: its line-split parser, stopping at the first bad record.
fn tar_crate_pax_size(data: &[u8]) -> Option<u64> {
    for ext in tar::PaxExtensions::new(data) {
        let ext = ext.ok()?;
        if ext.key() != Ok("size") {
            continue;
        }
        return ext.value().ok()?.parse::<u64>().ok();
    }
    None
}

/// PAX records: `"<len> <key>=<value>\n"`, `len` counting the whole record.
pub(super) fn parse_pax(mut data: &[u8]) -> Result<Pax, String> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let at = data.len();
        let sp = data
            .iter()
            .take(21)
            .position(|b| *b == b' ')
            .ok_or_else(|| {
                format!("malformed pax record ({at} bytes before the end): no length")
            })?;
        let len: usize = std::str::from_utf8(&data[..sp])
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                format!("malformed pax record ({at} bytes before the end): bad length")
            })?;
        if len <= sp + 1 || len > data.len() {
            return Err(format!(
                "pax record length {len} is out of range ({} bytes remain in the header)",
                data.len()
            ));
        }
        let rec = &data[sp + 1..len];
        let Some((b'\n', kv)) = rec.split_last() else {
            return Err(format!(
                "malformed pax record of {len} bytes: no trailing newline"
            ));
        };
        let eq = kv
            .iter()
            .position(|b| *b == b'=')
            .filter(|i| *i > 0)
            .ok_or_else(|| format!("malformed pax record of {len} bytes: no key"))?;
        out.push((kv[..eq].to_vec(), kv[eq + 1..].to_vec()));
        data = &data[len..];
    }
    Ok(out)
}

/// The reader handed to `tar::Archive`.
pub(super) struct Tap<'s, R> {
    inner: R,
    state: &'s RefCell<TapState>,
}

impl<'s, R: Read> Tap<'s, R> {
    pub(super) fn new(inner: R, state: &'s RefCell<TapState>) -> Self {
        Tap { inner, state }
    }
}

impl<R: Read> Read for Tap<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut st = self.state.borrow_mut();
        if n == 0 && !buf.is_empty() && st.mid_entry() {
            let e = Error::Malformed {
                path: st.last_path.clone(),
                reason: "the layer tar ends inside this entry (truncated?)".into(),
            };
            return Err(st.refuse(e));
        }
        st.hasher.update(&buf[..n]);
        st.observe(&buf[..n])?;
        Ok(n)
    }
}
