//! Parallel gzip: the input is cut into 1 MiB chunks and each chunk is
//! compressed on a worker thread with libdeflate into a complete gzip
//! member of its own (RFC 1952 §2.2: "a gzip file consists of a series of
//! members"); the members are written in order. libdeflate compresses about
//! twice as fast as zlib at the same level and ratio (measured here on
//! base64 text: 98 vs 49 MB/s per core at level 6, both 0.755), but it
//! only makes whole streams, so the chunks cannot share one deflate stream
//! the way pigz's do. Multi-member gzip layers are what eStargz pushes to
//! every registry; Go's `compress/gzip` (Docker, containerd, podman,
//! skopeo), `gzip -d` and berth's own reader (flate2's MultiGzDecoder)
//! read them whole. docs/architecture.md records the choice.
//!
//! Each chunk is two members: its first [`PROBE`] bytes, then the rest. How
//! much LZ matching saved in the first decides the second: where it saved
//! under 2% over a plain byte-frequency code (base64 or already-compressed
//! data, media), the rest is Huffman-coded only (zlib-rs's HuffmanOnly
//! strategy: the same size on such data in half libdeflate's time, 533 vs
//! 980 ms per 100 MiB of base64 here); otherwise libdeflate compresses it
//! too. The estimate charges every byte at least one bit (a run of zeros
//! is not free to a Huffman code), and the rest must look like the head
//! (its byte-frequency cost per byte no more than a quarter bit lower).
//! The head is a member of its own so the probe's output is used, not
//! thrown away; deflate's window is 32 KiB, so the cut costs little. The
//! estimate uses integer arithmetic only, so the choice is the same on
//! every host.
//!
//! The output depends only on the input: chunks are cut at fixed
//! boundaries whatever the write sizes or thread count.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use libdeflater::{CompressionLvl, Compressor};

/// Bytes of input per chunk.
pub(crate) const CHUNK: usize = 1 << 20;
/// The head of each chunk that is compressed first, as its own member.
pub(crate) const PROBE: usize = 64 << 10;
/// The rest is Huffman-coded only when LZ matching made the head less than
/// 2% smaller than a byte-frequency code would (this, in percent).
const LZ_PAYS_PERCENT: u64 = 98;
/// The compression level: libdeflate's 5 (lazy matching) is the fastest
/// that still compresses better than gzip -6, the default of gzip, Go and
/// so Docker and podman (on Debian binaries: 22% faster than its level 6,
/// 0.5% larger; level 4 is greedy and larger than gzip -6). See
/// docs/architecture.md.
pub(crate) const LEVEL: i32 = 5;

struct Job {
    seq: u64,
    data: Vec<u8>,
}

struct Done {
    seq: u64,
    out: io::Result<Vec<u8>>,
}

/// A gzip encoder that compresses on `threads` worker threads.
pub(crate) struct ParGzWriter<W: Write> {
    inner: Option<W>,
    buf: Vec<u8>,
    jobs: Option<mpsc::Sender<Job>>,
    results: mpsc::Receiver<Done>,
    workers: Vec<JoinHandle<()>>,
    dispatched: u64,
    written: u64,
    ready: BTreeMap<u64, Done>,
    max_in_flight: u64,
}

/// Worker threads to use: one per core.
pub(crate) fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl<W: Write> ParGzWriter<W> {
    pub fn new(inner: W, threads: usize) -> ParGzWriter<W> {
        let threads = threads.max(1);
        let (job_tx, job_rx) = mpsc::channel::<Job>();
        let (done_tx, done_rx) = mpsc::channel::<Done>();
        let job_rx = Arc::new(Mutex::new(job_rx));
        let workers = (0..threads)
            .map(|_| {
                let job_rx = Arc::clone(&job_rx);
                let done_tx = done_tx.clone();
                std::thread::spawn(move || worker(&job_rx, &done_tx))
            })
            .collect();
        ParGzWriter {
            inner: Some(inner),
            buf: Vec::with_capacity(CHUNK),
            jobs: Some(job_tx),
            results: done_rx,
            workers,
            dispatched: 0,
            written: 0,
            ready: BTreeMap::new(),
            max_in_flight: 2 * threads as u64,
        }
    }

    /// Compresses what is buffered as the last member and returns the inner
    /// writer (not flushed). An empty input is one empty member.
    pub fn finish(mut self) -> io::Result<W> {
        if !self.buf.is_empty() || self.dispatched == 0 {
            self.dispatch()?;
        }
        while self.written < self.dispatched {
            self.collect_one()?;
        }
        self.stop_workers();
        self.inner.take().ok_or_else(gone)
    }

    fn dispatch(&mut self) -> io::Result<()> {
        while self.dispatched - self.written >= self.max_in_flight {
            self.collect_one()?;
        }
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        let job = Job {
            seq: self.dispatched,
            data,
        };
        self.jobs
            .as_ref()
            .ok_or_else(gone)?
            .send(job)
            .map_err(|_| io::Error::other("the gzip worker threads stopped"))?;
        self.dispatched += 1;
        Ok(())
    }

    /// Waits for the next chunk in order and writes it.
    fn collect_one(&mut self) -> io::Result<()> {
        while !self.ready.contains_key(&self.written) {
            let done = self
                .results
                .recv()
                .map_err(|_| io::Error::other("a gzip worker thread died"))?;
            self.ready.insert(done.seq, done);
        }
        let done = self.ready.remove(&self.written).ok_or_else(gone)?;
        let out = done.out?;
        self.inner.as_mut().ok_or_else(gone)?.write_all(&out)?;
        self.written += 1;
        Ok(())
    }

    fn stop_workers(&mut self) {
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl<W: Write> Write for ParGzWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.dispatch()?;
        }
        Ok(n)
    }

    /// Chunks are only cut at [`CHUNK`] boundaries (the output must not
    /// depend on how the input was written), so this flushes nothing.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<W: Write> Drop for ParGzWriter<W> {
    fn drop(&mut self) {
        self.stop_workers();
    }
}

fn gone() -> io::Error {
    io::Error::other("the gzip writer was already finished")
}

fn worker(jobs: &Mutex<mpsc::Receiver<Job>>, done: &mpsc::Sender<Done>) {
    let mut c = Compressor::new(CompressionLvl::new(LEVEL).unwrap_or_default());
    loop {
        let job = {
            let Ok(rx) = jobs.lock() else { return };
            match rx.recv() {
                Ok(j) => j,
                Err(_) => return,
            }
        };
        let out = compress_chunk(&mut c, &job.data);
        if done.send(Done { seq: job.seq, out }).is_err() {
            return;
        }
    }
}

/// A chunk as gzip members (see the module doc).
fn compress_chunk(c: &mut Compressor, data: &[u8]) -> io::Result<Vec<u8>> {
    if data.len() <= PROBE {
        return gzip_member(c, data);
    }
    let (head, rest) = data.split_at(PROBE);
    let mut out = gzip_member(c, head)?;
    let head_bits = huffman_bits(head);
    // Huffman-only for the rest only where LZ did not pay in the head and
    // the rest looks like the head (its byte-frequency cost per byte no
    // more than a quarter bit lower: a chunk that starts with compressed
    // data and goes on with text keeps LZ).
    let huffman = !lz_pays(out.len(), head_bits)
        && per_byte(huffman_bits(rest), rest.len()) + 64 >= per_byte(head_bits, head.len());
    if huffman {
        out.extend_from_slice(&huffman_member(rest)?);
    } else {
        out.extend_from_slice(&gzip_member(c, rest)?);
    }
    Ok(out)
}

/// log2(x) in 1/256ths of a bit, by integer arithmetic (the same result on
/// every host, so the output depends only on the input).
fn log2_256(x: u64) -> u64 {
    let int = u64::from(63 - x.max(1).leading_zeros());
    // The mantissa in [1, 2) as Q32; each squaring yields one more bit.
    let mut m: u128 = (u128::from(x.max(1)) << 32) >> int;
    let mut frac = 0u64;
    for i in (0..8).rev() {
        m = (m * m) >> 32;
        if m >= 2u128 << 32 {
            m >>= 1;
            frac |= 1 << i;
        }
    }
    int * 256 + frac
}

/// What a Huffman code of `data`'s byte frequencies would take, in 1/256ths
/// of a bit: each byte costs its information content, but at least one bit
/// (a Huffman code has no shorter codes: a run of zeros is n/8 bytes, not
/// nothing).
fn huffman_bits(data: &[u8]) -> u64 {
    let mut counts = [0u64; 256];
    for &b in data {
        counts[b as usize] += 1;
    }
    let ln = log2_256(data.len() as u64);
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| c * (ln - log2_256(c)).max(256))
        .sum()
}

/// 1/256ths of a bit per byte.
fn per_byte(bits: u64, n: usize) -> u64 {
    bits / n.max(1) as u64
}

/// Whether a member of `len` bytes is smaller by at least 2% than the
/// Huffman code of its bytes (`bits`, from [`huffman_bits`]) plus a
/// member's framing: LZ matching found enough to be worth its time.
fn lz_pays(len: usize, bits: u64) -> bool {
    let framing = 18 * 8 * 256;
    (len as u64) * 8 * 256 * 100 < LZ_PAYS_PERCENT * (bits + framing)
}

/// One gzip member of `data`, Huffman-coded only (no LZ matching).
fn huffman_member(data: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = vec![0u8; zlib_rs::compress_bound(data.len()) + 64];
    let cfg = zlib_rs::DeflateConfig {
        level: 6,
        window_bits: 31,
        strategy: zlib_rs::Strategy::HuffmanOnly,
        ..Default::default()
    };
    let (o, rc) = zlib_rs::compress_slice(&mut out, data, cfg);
    if rc != zlib_rs::ReturnCode::Ok {
        return Err(io::Error::other(format!("zlib-rs: {rc:?}")));
    }
    let n = o.len();
    out.truncate(n);
    Ok(out)
}

/// One complete gzip member (header, deflate stream, CRC-32, length) of
/// `data`.
pub(crate) fn gzip_member(c: &mut Compressor, data: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = vec![0u8; c.gzip_compress_bound(data.len())];
    let n = c
        .gzip_compress(data, &mut out)
        .map_err(|e| io::Error::other(format!("libdeflate: {e:?}")))?;
    out.truncate(n);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Random-ish bytes with repeats, so deflate finds matches across
    /// chunk boundaries (where the dictionary matters).
    fn input(n: usize) -> Vec<u8> {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if x % 10 < 2 && out.len() > 4096 {
                let from = out.len() - 4096 + (x % 1000) as usize;
                let run: Vec<u8> = out[from..from + 300].to_vec();
                out.extend_from_slice(&run);
            } else {
                out.extend_from_slice(&x.to_le_bytes()[..(x % 8) as usize]);
            }
        }
        out.truncate(n);
        out
    }

    fn compress(data: &[u8], threads: usize, piece: usize) -> Vec<u8> {
        let mut w = ParGzWriter::new(Vec::new(), threads);
        for p in data.chunks(piece.max(1)) {
            w.write_all(p).unwrap();
        }
        w.finish().unwrap()
    }

    /// Decodes member by member: what each member holds.
    fn members(gz: &[u8]) -> Vec<Vec<u8>> {
        let mut rest = gz;
        let mut out = Vec::new();
        while !rest.is_empty() {
            assert_eq!(&rest[..3], &[0x1f, 0x8b, 8], "a gzip member starts here");
            let mut d = flate2::bufread::GzDecoder::new(rest);
            let mut m = Vec::new();
            d.read_to_end(&mut m).unwrap();
            rest = d.into_inner();
            out.push(m);
        }
        out
    }

    fn gzip_cli(args: &[&str], gz: &[u8]) -> std::process::Output {
        let t = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(t.path(), gz).unwrap();
        let o = std::process::Command::new("gzip")
            .args(args)
            .arg(t.path())
            .output()
            .unwrap();
        assert!(o.status.success(), "gzip {args:?}: {o:?}");
        o
    }

    /// Where the members of `n` bytes of input end: each chunk's probe,
    /// then its rest.
    fn member_ends(n: usize) -> Vec<usize> {
        if n == 0 {
            return vec![0];
        }
        let mut ends = Vec::new();
        for start in (0..n).step_by(CHUNK) {
            let end = (start + CHUNK).min(n);
            if end - start > PROBE {
                ends.push(start + PROBE);
            }
            ends.push(end);
        }
        ends
    }

    #[test]
    fn parallel_gzip_is_two_members_per_chunk_and_round_trips() {
        let data = input(5 * CHUNK + 12_345);
        let gz = compress(&data, 4, 100_000);
        assert!(gz.len() < data.len() * 3 / 4, "it compresses");
        let ms = members(&gz);
        let ends = member_ends(data.len());
        assert_eq!(ms.len(), ends.len());
        let mut at = 0;
        for (i, (m, end)) in ms.iter().zip(&ends).enumerate() {
            assert!(m[..] == data[at..*end], "member {i}");
            at = *end;
        }
        // A multi-member reader sees the whole input.
        let mut whole = Vec::new();
        flate2::read::MultiGzDecoder::new(&gz[..])
            .read_to_end(&mut whole)
            .unwrap();
        assert!(whole == data);
        // The output does not depend on the thread count or write sizes.
        assert!(compress(&data, 1, 7) == gz);
        // gzip(1) agrees.
        gzip_cli(&["-t"], &gz);
        assert!(gzip_cli(&["-dc"], &gz).stdout == data);
    }

    #[test]
    fn parallel_gzip_edge_sizes() {
        for (n, want) in [
            (0, 1),
            (1, 1),
            (PROBE, 1),
            (PROBE + 1, 2),
            (CHUNK - 1, 2),
            (CHUNK, 2),
            (CHUNK + 1, 3),
            (CHUNK + PROBE + 1, 4),
            (2 * CHUNK, 4),
        ] {
            let data = input(n);
            let ms = members(&compress(&data, 3, 65_536));
            assert_eq!(ms.len(), want, "{n} bytes");
            assert_eq!(ms.len(), member_ends(n).len(), "{n} bytes");
            assert!(ms.concat() == data, "{n} bytes");
        }
    }

    /// Base64 of random bytes: no repeats for LZ to find, 6 bits a byte.
    fn base64_random(n: usize) -> Vec<u8> {
        crate::commit::tests::text(n, 0x2545_f491_4f6c_dd1d)
    }

    #[test]
    fn the_probe_picks_huffman_only_where_lz_finds_nothing() {
        let mut c = Compressor::new(CompressionLvl::new(LEVEL).unwrap());
        // Base64 of random bytes: LZ saves nothing, Huffman-only for the rest.
        let b64 = base64_random(PROBE);
        let head = gzip_member(&mut c, &b64).unwrap();
        assert!(
            !lz_pays(head.len(), huffman_bits(&b64)),
            "{} bytes",
            head.len()
        );
        // Text-like and binary-like data with repeats: LZ pays.
        let rep = input(PROBE);
        let head = gzip_member(&mut c, &rep).unwrap();
        assert!(
            lz_pays(head.len(), huffman_bits(&rep)),
            "{} bytes",
            head.len()
        );
        let text: Vec<u8> = (0..PROBE)
            .map(|i| b"the quick brown fox jumps over the lazy dog\n"[i % 44])
            .collect();
        let head = gzip_member(&mut c, &text).unwrap();
        assert!(lz_pays(head.len(), huffman_bits(&text)));
        // Zeros: a byte-frequency code still takes a bit a byte; LZ pays.
        let zeros = vec![0u8; PROBE];
        let head = gzip_member(&mut c, &zeros).unwrap();
        assert!(
            lz_pays(head.len(), huffman_bits(&zeros)),
            "{} bytes",
            head.len()
        );
    }

    #[test]
    fn huffman_coded_chunks_round_trip_at_libdeflates_size() {
        let data = base64_random(3 * CHUNK + 999);
        let gz = compress(&data, 2, 50_000);
        let ms = members(&gz);
        assert_eq!(ms.len(), member_ends(data.len()).len());
        assert!(ms.concat() == data);
        gzip_cli(&["-t"], &gz);
        assert!(gzip_cli(&["-dc"], &gz).stdout == data);
        // The same size as libdeflate alone (within 1%): 6 bits a byte.
        let mut c = Compressor::new(CompressionLvl::new(LEVEL).unwrap());
        let whole = gzip_member(&mut c, &data).unwrap();
        let ratio = gz.len() as f64 / whole.len() as f64;
        assert!((0.99..1.01).contains(&ratio), "{ratio}");
        // Deterministic across thread counts.
        assert!(compress(&data, 1, 4096) == gz);
    }

    #[test]
    fn integer_log2_is_close() {
        for x in [1u64, 2, 3, 7, 100, 65_536, 1_000_003, u32::MAX as u64] {
            let want = (x as f64).log2() * 256.0;
            let got = log2_256(x) as f64;
            assert!((got - want).abs() <= 2.0, "{x}: {got} vs {want}");
        }
    }

    /// Runs of zeros (sparse files, padding) and chunks whose head is
    /// random but whose rest is text stay LZ-compressed.
    #[test]
    fn zeros_and_a_changing_chunk_keep_lz() {
        let zeros = vec![0u8; 2 * CHUNK];
        let gz = compress(&zeros, 2, 1 << 16);
        assert!(gz.len() < 10_000, "{} bytes for 2 MiB of zeros", gz.len());
        let mut mixed = base64_random(PROBE);
        mixed.extend((0..CHUNK - PROBE).map(|i| b"a line of text, over and over\n"[i % 30]));
        let gz = compress(&mixed, 2, 1 << 16);
        assert!(
            gz.len() < PROBE,
            "{} bytes: the text part was not LZ-coded",
            gz.len()
        );
        assert!(members(&gz).concat() == mixed);
    }

    #[test]
    fn compressible_data_keeps_libdeflates_ratio() {
        let data = input(4 * CHUNK);
        let gz = compress(&data, 2, 1 << 16);
        let mut c = Compressor::new(CompressionLvl::new(LEVEL).unwrap());
        let whole: usize = data
            .chunks(CHUNK)
            .map(|ch| gzip_member(&mut c, ch).unwrap().len())
            .sum();
        // The cut after each probe loses the matches that would reach back
        // across it: 1.3% on this synthetic data (whose repeats sit 4 KiB
        // back), 0.3% on 100 MB of Debian binaries.
        let ratio = gz.len() as f64 / whole as f64;
        assert!(ratio < 1.02, "{ratio}");
    }

    #[test]
    fn dropped_unfinished_writer_stops_its_threads() {
        let mut w = ParGzWriter::new(Vec::new(), 2);
        w.write_all(&input(3 * CHUNK)).unwrap();
        drop(w); // must not hang
    }
}
