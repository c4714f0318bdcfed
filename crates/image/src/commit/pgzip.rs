//! Parallel gzip, the way pigz does it: the input is cut into 1 MiB chunks,
//! each chunk is raw-deflated on a worker thread (primed with the last
//! 32 KiB of the chunk before it as the dictionary, so the ratio stays
//! close to a serial gzip) and ends in a sync flush, which leaves the
//! deflate stream byte-aligned; the last chunk ends the stream. The
//! chunks are written in order behind one gzip header, followed by the
//! CRC-32 of the whole input (combined from the chunks' CRCs) and its
//! length. The result is one ordinary gzip member: `gzip -t`, Go's
//! `compress/gzip` and a single-member decoder all read it.

use flate2::{Compress, Compression, FlushCompress, Status};
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Bytes of input per chunk.
pub(crate) const CHUNK: usize = 1 << 20;
/// The deflate window: how much of the previous chunk primes the next.
const DICT: usize = 32 * 1024;
/// gzip header: magic, deflate, no flags, mtime 0, no extra flags, OS unknown
/// (what Go writes, so the output does not depend on the host).
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

struct Job {
    seq: u64,
    data: Vec<u8>,
    dict: Vec<u8>,
    last: bool,
}

struct Done {
    seq: u64,
    out: io::Result<Vec<u8>>,
    crc: crc32fast::Hasher,
}

/// A gzip encoder that compresses on `threads` worker threads.
pub(crate) struct ParGzWriter<W: Write> {
    inner: Option<W>,
    buf: Vec<u8>,
    dict: Vec<u8>,
    crc: crc32fast::Hasher,
    total: u64,
    jobs: Option<mpsc::Sender<Job>>,
    results: mpsc::Receiver<Done>,
    workers: Vec<JoinHandle<()>>,
    dispatched: u64,
    written: u64,
    ready: BTreeMap<u64, Done>,
    max_in_flight: u64,
    header_written: bool,
}

/// Worker threads to use: one per core.
pub(crate) fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl<W: Write> ParGzWriter<W> {
    pub fn new(inner: W, level: Compression, threads: usize) -> ParGzWriter<W> {
        let threads = threads.max(1);
        let (job_tx, job_rx) = mpsc::channel::<Job>();
        let (done_tx, done_rx) = mpsc::channel::<Done>();
        let job_rx = Arc::new(Mutex::new(job_rx));
        let workers = (0..threads)
            .map(|_| {
                let job_rx = Arc::clone(&job_rx);
                let done_tx = done_tx.clone();
                std::thread::spawn(move || worker(&job_rx, &done_tx, level))
            })
            .collect();
        ParGzWriter {
            inner: Some(inner),
            buf: Vec::with_capacity(CHUNK),
            dict: Vec::new(),
            crc: crc32fast::Hasher::new(),
            total: 0,
            jobs: Some(job_tx),
            results: done_rx,
            workers,
            dispatched: 0,
            written: 0,
            ready: BTreeMap::new(),
            max_in_flight: 2 * threads as u64,
            header_written: false,
        }
    }

    /// Compresses what is buffered as the end of the stream, writes the
    /// trailer and returns the inner writer (not flushed).
    pub fn finish(mut self) -> io::Result<W> {
        self.dispatch(true)?;
        while self.written < self.dispatched {
            self.collect_one()?;
        }
        self.stop_workers();
        let mut inner = self.inner.take().ok_or_else(gone)?;
        let crc = std::mem::take(&mut self.crc).finalize();
        inner.write_all(&crc.to_le_bytes())?;
        // ISIZE is the input length modulo 2^32.
        inner.write_all(&(self.total as u32).to_le_bytes())?;
        Ok(inner)
    }

    fn dispatch(&mut self, last: bool) -> io::Result<()> {
        if !self.header_written {
            self.inner.as_mut().ok_or_else(gone)?.write_all(&HEADER)?;
            self.header_written = true;
        }
        while self.dispatched - self.written >= self.max_in_flight {
            self.collect_one()?;
        }
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        let dict = std::mem::replace(
            &mut self.dict,
            data[data.len().saturating_sub(DICT)..].to_vec(),
        );
        self.total += data.len() as u64;
        let job = Job {
            seq: self.dispatched,
            data,
            dict,
            last,
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
        self.crc.combine(&done.crc);
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
            self.dispatch(false)?;
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

fn worker(jobs: &Mutex<mpsc::Receiver<Job>>, done: &mpsc::Sender<Done>, level: Compression) {
    loop {
        let job = {
            let Ok(rx) = jobs.lock() else { return };
            match rx.recv() {
                Ok(j) => j,
                Err(_) => return,
            }
        };
        let mut crc = crc32fast::Hasher::new();
        crc.update(&job.data);
        let out = deflate_chunk(level, &job.dict, &job.data, job.last);
        if done
            .send(Done {
                seq: job.seq,
                out,
                crc,
            })
            .is_err()
        {
            return;
        }
    }
}

/// Raw deflate of one chunk: ends in a sync flush, or ends the stream when
/// `last`.
pub(crate) fn deflate_chunk(
    level: Compression,
    dict: &[u8],
    data: &[u8],
    last: bool,
) -> io::Result<Vec<u8>> {
    let mut c = Compress::new(level, false);
    if !dict.is_empty() {
        c.set_dictionary(dict).map_err(io::Error::other)?;
    }
    let mut out = Vec::with_capacity(data.len() / 2 + 1024);
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    loop {
        let consumed = c.total_in() as usize;
        let status = c
            .compress_vec(&data[consumed..], &mut out, flush)
            .map_err(io::Error::other)?;
        let done = match status {
            Status::StreamEnd => true,
            // zlib's rule: a flush is complete when it returns with output
            // space left over.
            Status::Ok | Status::BufError => {
                !last && c.total_in() as usize == data.len() && out.len() < out.capacity()
            }
        };
        if done {
            return Ok(out);
        }
        out.reserve(out.capacity().max(64 * 1024));
    }
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
        let mut w = ParGzWriter::new(Vec::new(), Compression::default(), threads);
        for p in data.chunks(piece.max(1)) {
            w.write_all(p).unwrap();
        }
        w.finish().unwrap()
    }

    /// Decodes with a single-member decoder; nothing may follow the member.
    fn gunzip(gz: &[u8]) -> Vec<u8> {
        let mut d = flate2::read::GzDecoder::new(gz);
        let mut out = Vec::new();
        d.read_to_end(&mut out).unwrap();
        assert!(d.into_inner().is_empty(), "data after the gzip member");
        out
    }

    #[test]
    fn parallel_gzip_is_one_member_that_round_trips() {
        let data = input(5 * CHUNK + 12_345);
        let gz = compress(&data, 4, 100_000);
        assert_eq!(&gz[..10], &HEADER);
        assert!(gz.len() < data.len(), "it compresses");
        assert!(gunzip(&gz) == data, "round trip");
        // The trailer: CRC-32 and length of the whole input.
        let n = gz.len();
        assert_eq!(gz[n - 8..n - 4], crc32fast::hash(&data).to_le_bytes());
        assert_eq!(gz[n - 4..], (data.len() as u32).to_le_bytes());
        // The output does not depend on the thread count or write sizes.
        assert!(compress(&data, 1, 7) == gz);
        // gzip(1) agrees.
        let t = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(t.path(), &gz).unwrap();
        let st = std::process::Command::new("gzip")
            .arg("-t")
            .arg(t.path())
            .status()
            .unwrap();
        assert!(st.success());
    }

    #[test]
    fn parallel_gzip_edge_sizes() {
        for n in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK] {
            let data = input(n);
            assert!(gunzip(&compress(&data, 3, 65_536)) == data, "{n} bytes");
        }
    }

    #[test]
    fn dropped_unfinished_writer_stops_its_threads() {
        let mut w = ParGzWriter::new(Vec::new(), Compression::default(), 2);
        w.write_all(&input(3 * CHUNK)).unwrap();
        drop(w); // must not hang
    }
}
