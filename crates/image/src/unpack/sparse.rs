//! GNU sparse files in PAX format (what `tar --format=posix --sparse` and
//! `tar --xattrs --sparse` write): versions 0.0 (`GNU.sparse.offset` /
//! `GNU.sparse.numbytes` records), 0.1 (`GNU.sparse.map`) and 1.0 (the map
//! at the start of the entry's data). The `tar` crate does not know them: it
//! would hand out the condensed data under the `GNUSparseFile.<pid>/` name.
//! The logic follows Go's `archive/tar` (`readGNUSparsePAXHeaders`).
//!
//! Data chunks are written at their offsets; holes are never written.

use super::tap::Pax;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;

/// Most map entries accepted (16 bytes of memory each).
const MAX_CHUNKS: u64 = 1 << 20;

pub(super) struct PaxSparse {
    /// The real name (`GNU.sparse.name`), when given.
    pub(super) name: Option<Vec<u8>>,
    /// The real (logical) size.
    pub(super) size: u64,
    /// `(offset, length)` chunks; `None`: the map opens the data (1.0).
    map: Option<Vec<(u64, u64)>>,
}

pub(super) enum SparseError {
    Io(io::Error),
    Bad(String),
}

impl From<io::Error> for SparseError {
    fn from(e: io::Error) -> Self {
        SparseError::Io(e)
    }
}

fn num(v: &[u8], what: &str) -> Result<u64, String> {
    std::str::from_utf8(v)
        .ok()
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("invalid {what} {:?}", String::from_utf8_lossy(v)))
}

fn pairs(nums: &[u64]) -> Result<Vec<(u64, u64)>, String> {
    let chunks = nums.chunks_exact(2);
    if !chunks.remainder().is_empty() {
        return Err("gnu sparse map has an odd number of values".into());
    }
    Ok(chunks.map(|c| (c[0], c[1])).collect())
}

/// The PAX sparse description of an entry, if it has one.
pub(super) fn detect(pax: Option<&Pax>) -> Result<Option<PaxSparse>, String> {
    let Some(pax) = pax else { return Ok(None) };
    if !pax.iter().any(|(k, _)| k.starts_with(b"GNU.sparse.")) {
        return Ok(None);
    }
    let get = |k: &[u8]| {
        pax.iter()
            .rev()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_slice())
    };
    let version = (get(b"GNU.sparse.major"), get(b"GNU.sparse.minor"));
    let v1 = match version {
        (Some(b"1"), Some(b"0")) => true,
        (Some(b"0"), Some(b"0" | b"1")) | (None, None) => false,
        (ma, mi) => {
            return Err(format!(
                "unknown gnu sparse format version {}.{}",
                String::from_utf8_lossy(ma.unwrap_or_default()),
                String::from_utf8_lossy(mi.unwrap_or_default())
            ))
        }
    };
    let size = match get(b"GNU.sparse.size").or_else(|| get(b"GNU.sparse.realsize")) {
        Some(v) => num(v, "gnu sparse size")?,
        None => return Err("gnu sparse file without a size".into()),
    };
    let map = if v1 {
        None
    } else if let Some(m) = get(b"GNU.sparse.map") {
        // 0.1: "offset,length,offset,length..."
        if m.is_empty() {
            Some(Vec::new())
        } else {
            let nums = m
                .split(|b| *b == b',')
                .map(|v| num(v, "gnu sparse map value"))
                .collect::<Result<Vec<_>, _>>()?;
            Some(pairs(&nums)?)
        }
    } else {
        // 0.0: repeated offset / numbytes records, in order
        let nums = pax
            .iter()
            .filter(|(k, _)| k == b"GNU.sparse.offset" || k == b"GNU.sparse.numbytes")
            .map(|(_, v)| num(v, "gnu sparse map value"))
            .collect::<Result<Vec<_>, _>>()?;
        Some(pairs(&nums)?)
    };
    Ok(Some(PaxSparse {
        name: get(b"GNU.sparse.name").map(<[u8]>::to_vec),
        size,
        map,
    }))
}

/// The 1.0 map: decimal numbers, each ending in '\n' (the count, then
/// offset/length pairs), padded to whole 512-byte blocks.
fn read_map(r: &mut impl Read, data_len: u64) -> Result<(Vec<(u64, u64)>, u64), SparseError> {
    let mut consumed = 0u64;
    let mut pending: Vec<u8> = Vec::new();
    let mut nums: Vec<u64> = Vec::new();
    let mut want: Option<u64> = None;
    let mut block = [0u8; 512];
    loop {
        if want.is_some_and(|w| nums.len() as u64 == 2 * w + 1) {
            break;
        }
        if consumed + 512 > data_len {
            return Err(SparseError::Bad(
                "gnu sparse map runs past the entry's data".into(),
            ));
        }
        r.read_exact(&mut block)?;
        consumed += 512;
        for &b in block.iter() {
            if want.is_some_and(|w| nums.len() as u64 == 2 * w + 1) {
                break;
            }
            if b == b'\n' {
                let n = num(&pending, "gnu sparse map value").map_err(SparseError::Bad)?;
                pending.clear();
                if want.is_none() {
                    if n > MAX_CHUNKS {
                        return Err(SparseError::Bad(format!(
                            "gnu sparse map of {n} chunks (limit {MAX_CHUNKS})"
                        )));
                    }
                    want = Some(n);
                }
                nums.push(n);
            } else if pending.len() < 20 {
                pending.push(b);
            } else {
                return Err(SparseError::Bad("gnu sparse map value too long".into()));
            }
        }
    }
    Ok((pairs(&nums[1..]).map_err(SparseError::Bad)?, consumed))
}

/// Write the entry's chunks into the new, empty file `f`; returns the real
/// size. `data_len` is the entry's size in the archive.
pub(super) fn write(
    r: &mut impl Read,
    data_len: u64,
    sp: &PaxSparse,
    f: &File,
    buf: &mut [u8],
) -> Result<u64, SparseError> {
    let (map, mut consumed) = match &sp.map {
        Some(m) => (m.clone(), 0),
        None => read_map(r, data_len)?,
    };
    let mut end = 0u64;
    for &(off, len) in &map {
        let stop = off.checked_add(len).filter(|s| *s <= sp.size);
        let Some(stop) = stop.filter(|_| off >= end) else {
            return Err(SparseError::Bad(format!(
                "gnu sparse chunk {off}+{len} overlaps another or lies past the size {}",
                sp.size
            )));
        };
        if consumed.checked_add(len).is_none_or(|c| c > data_len) {
            return Err(SparseError::Bad(
                "gnu sparse map lists more data than the entry holds".into(),
            ));
        }
        let mut done = 0u64;
        while done < len {
            let n = ((len - done).min(buf.len() as u64)) as usize;
            r.read_exact(&mut buf[..n])?;
            f.write_all_at(&buf[..n], off + done)?;
            done += n as u64;
        }
        consumed += len;
        end = stop;
    }
    if consumed != data_len {
        return Err(SparseError::Bad(format!(
            "gnu sparse map covers {consumed} of the entry's {data_len} bytes"
        )));
    }
    f.set_len(sp.size)?;
    Ok(sp.size)
}
