//! Small pieces of the applier: entry names, path sets, PAX times, and the
//! sparse-aware copy.

use super::tap::Pax;
use super::Error;
use nix::sys::time::TimeSpec;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;

/// What an entry path becomes: its components, `.` and empty ones dropped,
/// `..` applied lexically. Leading `/` is dropped (absolute names are
/// relative to the layer root, as Docker does).
pub(super) fn normalize(raw: &[u8]) -> std::result::Result<Vec<&[u8]>, &'static str> {
    if raw.contains(&0) {
        return Err("the name contains a NUL byte");
    }
    let mut out: Vec<&[u8]> = Vec::new();
    for c in raw.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                if out.pop().is_none() {
                    return Err("the name leaves the layer directory ('..' above its root)");
                }
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

pub(super) fn join(comps: &[&[u8]]) -> Vec<u8> {
    comps.join(&b'/')
}

/// The last PAX record with key `k` (later records win).
pub(super) fn pax_get<'p>(pax: Option<&'p Pax>, k: &[u8]) -> Option<&'p [u8]> {
    pax.and_then(|p| {
        p.iter()
            .rev()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_slice())
    })
}

pub(super) fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub(super) fn fs_err(path: &str, what: &str, e: impl Into<io::Error>) -> Error {
    Error::Fs {
        path: path.to_string(),
        what: what.to_string(),
        source: e.into(),
    }
}

/// Remove `key` and everything below it from a path set.
pub(super) fn purge<V>(map: &mut BTreeMap<Vec<u8>, V>, key: &[u8]) {
    map.remove(key);
    let mut lo = key.to_vec();
    lo.push(b'/');
    let mut hi = key.to_vec();
    hi.push(b'/' + 1);
    let below: Vec<Vec<u8>> = map.range(lo..hi).map(|(k, _)| k.clone()).collect();
    for k in below {
        map.remove(&k);
    }
}

pub(super) fn purge_set(set: &mut BTreeSet<Vec<u8>>, key: &[u8]) {
    set.remove(key);
    let mut lo = key.to_vec();
    lo.push(b'/');
    let mut hi = key.to_vec();
    hi.push(b'/' + 1);
    let below: Vec<Vec<u8>> = set.range(lo..hi).cloned().collect();
    for k in below {
        set.remove(&k);
    }
}

/// PAX time: `[-]seconds[.fraction]`.
pub(super) fn parse_pax_time(v: &[u8]) -> Option<TimeSpec> {
    let s = std::str::from_utf8(v).ok()?;
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    if secs.is_empty()
        || !secs.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let secs: i64 = secs.parse().ok()?;
    let mut nanos: i64 = 0;
    for (i, d) in frac.bytes().take(9).enumerate() {
        nanos += i64::from(d - b'0') * 10i64.pow(8 - i as u32);
    }
    Some(if !neg {
        TimeSpec::new(secs, nanos)
    } else if nanos == 0 {
        TimeSpec::new(-secs, 0)
    } else {
        TimeSpec::new(-secs - 1, 1_000_000_000 - nanos)
    })
}

/// A chunk of zeros to compare against: `[u8] == [u8]` is a `memcmp`.
static ZEROS: [u8; 4096] = [0; 4096];

pub(super) fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Copy `r` into the new, empty file `f`, leaving runs of zero 4 KiB blocks
/// as holes: a sparse entry (or a stream of zeros) takes no disk space.
pub(super) fn copy_sparse(r: &mut impl Read, f: &File, buf: &mut [u8]) -> io::Result<u64> {
    let mut off = 0u64;
    let mut end = 0u64;
    loop {
        let n = read_full(r, buf)?;
        if n == 0 {
            break;
        }
        let chunk = &buf[..n];
        let mut run: Option<usize> = None;
        for (i, blk) in chunk.chunks(ZEROS.len()).enumerate() {
            let at = i * ZEROS.len();
            if blk == &ZEROS[..blk.len()] {
                if let Some(s) = run.take() {
                    f.write_all_at(&chunk[s..at], off + s as u64)?;
                    end = off + at as u64;
                }
            } else if run.is_none() {
                run = Some(at);
            }
        }
        if let Some(s) = run {
            f.write_all_at(&chunk[s..], off + s as u64)?;
            end = off + n as u64;
        }
        off += n as u64;
    }
    if end < off {
        f.set_len(off)?;
    }
    Ok(off)
}
