//! Request bodies into files: [`BatchFile`] gathers body chunks (hyper hands
//! them over in tens of KiB) into batches of [`BATCH`] bytes and writes each
//! batch with `writev` on the blocking pool while the next one arrives, and
//! starts the kernel's writeback every [`WINDOW`] bytes, so the fsync that
//! makes a blob durable at the end of an upload waits only for the tail.
//!
//! Before this a 200 MiB upload went through `tokio::fs::File` (one
//! blocking-pool hand-off and one copy per body chunk) and its final fsync
//! took 119 ms of the closing PUT; docker-registry does not fsync at all.

use bytes::Bytes;
use std::fs::File;
use std::io::{self, IoSlice, Write};
use std::os::fd::AsRawFd;
use tokio::task::JoinHandle;

/// Bytes gathered before a write is handed to the blocking pool.
pub(super) const BATCH: usize = 1 << 20;

/// Bytes written between two starts of writeback.
pub(super) const WINDOW: u64 = 4 << 20;

/// A batch being written: the file comes back with the count of bytes
/// written since writeback was last started, and the outcome.
pub(super) type Flight = JoinHandle<(File, u64, io::Result<()>)>;

/// A file written in batches, one batch in flight at a time (so the file's
/// bytes stay in order; see the module doc).
pub(super) struct BatchFile {
    /// `None` while a batch is in flight (the task holds it).
    file: Option<File>,
    batch: Vec<Bytes>,
    batched: usize,
    flight: Option<Flight>,
    /// Bytes written since writeback was last started.
    unsynced: u64,
}

impl BatchFile {
    pub(super) fn new(file: File) -> BatchFile {
        BatchFile {
            file: Some(file),
            batch: Vec::new(),
            batched: 0,
            flight: None,
            unsynced: 0,
        }
    }

    /// Appends `data`; writes once a batch is full.
    pub(super) async fn write(&mut self, data: Bytes) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        self.batched += data.len();
        self.batch.push(data);
        if self.batched >= BATCH {
            self.send().await?;
        }
        Ok(())
    }

    /// Writes what is still gathered and waits for every write: the file,
    /// with all bytes in it (not synced).
    pub(super) async fn finish(mut self) -> io::Result<File> {
        self.send().await?;
        self.land().await?;
        self.file.take().ok_or_else(lost)
    }

    /// The write still in flight, for a caller that undoes what was written
    /// and must wait for it first; the gathered rest is dropped.
    pub(super) fn into_flight(mut self) -> Option<Flight> {
        self.flight.take()
    }

    /// Waits for the batch in flight, if any.
    async fn land(&mut self) -> io::Result<()> {
        if let Some(flight) = self.flight.take() {
            let (file, unsynced, r) = flight.await.map_err(io::Error::other)?;
            self.file = Some(file);
            self.unsynced = unsynced;
            r?;
        }
        Ok(())
    }

    /// Hands the gathered batch to the blocking pool once the one before it
    /// has landed.
    async fn send(&mut self) -> io::Result<()> {
        self.land().await?;
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        self.batched = 0;
        let file = self.file.take().ok_or_else(lost)?;
        let mut unsynced = self.unsynced;
        self.flight = Some(tokio::task::spawn_blocking(move || {
            let r = write_all(&file, &batch).map(|n| {
                unsynced += n;
                if unsynced >= WINDOW {
                    start_writeback(&file);
                    unsynced = 0;
                }
            });
            (file, unsynced, r)
        }));
        Ok(())
    }
}

/// The file went with a write task that did not come back (it panicked or
/// the runtime is shutting down).
fn lost() -> io::Error {
    io::Error::other("the file was lost with a failed write task")
}

/// Writes every byte of `bufs` with as few `writev` calls as they take.
fn write_all(mut f: &File, bufs: &[Bytes]) -> io::Result<u64> {
    let mut slices: Vec<IoSlice<'_>> = bufs.iter().map(|b| IoSlice::new(b)).collect();
    let mut rest = &mut slices[..];
    let mut total = 0u64;
    while !rest.is_empty() {
        match f.write_vectored(rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                total += n as u64;
                IoSlice::advance_slices(&mut rest, n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(total)
}

/// Starts writeback of `f`'s dirty pages (`sync_file_range(WRITE)` on the
/// whole file: pages already clean or under writeback are skipped). Only
/// starts the I/O; durability still comes from the fsync at commit. Best
/// effort: a filesystem without it is left to that fsync.
fn start_writeback(f: &File) {
    // SAFETY: sync_file_range only reads its integer arguments; the fd is
    // borrowed from a live File.
    unsafe {
        libc::sync_file_range(f.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Patterned chunks of uneven sizes, `total` bytes in all.
    fn chunks(total: usize) -> Vec<Bytes> {
        let data: Vec<u8> = (0..total).map(|i| (i % 253) as u8).collect();
        let mut out = Vec::new();
        let mut at = 0;
        let mut n = 1;
        while at < total {
            let end = (at + n).min(total);
            out.push(Bytes::copy_from_slice(&data[at..end]));
            at = end;
            n = n * 7 % 100_003 + 1;
        }
        out
    }

    #[tokio::test]
    async fn writes_every_byte_in_order_across_batches() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"head").unwrap();
        let f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        let mut w = BatchFile::new(f);
        let parts = chunks(3 * BATCH + 777);
        for c in &parts {
            w.write(c.clone()).await.unwrap();
            w.write(Bytes::new()).await.unwrap();
        }
        drop(w.finish().await.unwrap());
        let mut got = Vec::new();
        std::fs::File::open(&p)
            .unwrap()
            .read_to_end(&mut got)
            .unwrap();
        let mut want = b"head".to_vec();
        want.extend(parts.iter().flat_map(|c| c.iter().copied()));
        assert_eq!(got.len(), want.len());
        assert!(got == want, "contents differ");
    }

    #[tokio::test]
    async fn a_failing_write_is_reported() {
        // A read-only descriptor: the first batch's write fails, and the
        // error comes out of the next write or of finish.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"").unwrap();
        let mut w = BatchFile::new(std::fs::File::open(&p).unwrap());
        let mut failed = false;
        for c in chunks(BATCH + 10) {
            if w.write(c).await.is_err() {
                failed = true;
                break;
            }
        }
        if !failed {
            failed = w.finish().await.is_err();
        }
        assert!(failed);
    }

    #[tokio::test]
    async fn writeback_is_started_after_each_window() {
        // The count of bytes since the last start wraps at WINDOW.
        let dir = tempfile::tempdir().unwrap();
        let mut w = BatchFile::new(std::fs::File::create(dir.path().join("f")).unwrap());
        let chunk = Bytes::from(vec![7u8; BATCH]);
        for i in 1..=(WINDOW as usize / BATCH + 1) {
            w.write(chunk.clone()).await.unwrap();
            w.land().await.unwrap();
            let expect = (i * BATCH) as u64 % WINDOW;
            assert_eq!(w.unsynced, expect, "after {i} batches");
        }
    }
}
