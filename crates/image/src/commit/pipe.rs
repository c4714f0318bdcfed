//! An in-process pipe between the thread that writes the layer tar and the
//! thread that unpacks and compresses it. Unlike a closed channel, the
//! reader sees end-of-file only after the writer said the stream is
//! complete ([`PipeWriter::finish`]); a writer dropped without that (it
//! failed or panicked) makes the reader fail, so a half-written tar can never pass for a whole one.

use std::io::{self, Read, Write};
use std::sync::mpsc;

const BLOCK: usize = 256 * 1024;
/// Blocks in flight between the two threads.
const DEPTH: usize = 8;

enum Msg {
    Data(Vec<u8>),
    End,
}

pub(crate) fn pipe() -> (PipeWriter, PipeReader) {
    let (tx, rx) = mpsc::sync_channel(DEPTH);
    (
        PipeWriter {
            tx,
            buf: Vec::with_capacity(BLOCK),
        },
        PipeReader {
            rx,
            cur: Vec::new(),
            pos: 0,
            ended: false,
        },
    )
}

pub(crate) struct PipeWriter {
    tx: mpsc::SyncSender<Msg>,
    buf: Vec<u8>,
}

impl PipeWriter {
    /// Sends what is buffered and marks the stream complete.
    pub fn finish(mut self) -> io::Result<()> {
        self.send_buf()?;
        self.tx.send(Msg::End).map_err(|_| closed())
    }

    fn send_buf(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let block = std::mem::replace(&mut self.buf, Vec::with_capacity(BLOCK));
        self.tx.send(Msg::Data(block)).map_err(|_| closed())
    }
}

fn closed() -> io::Error {
    io::Error::new(
        io::ErrorKind::BrokenPipe,
        "the layer reader stopped reading",
    )
}

impl Write for PipeWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(BLOCK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == BLOCK {
            self.send_buf()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

pub(crate) struct PipeReader {
    rx: mpsc::Receiver<Msg>,
    cur: Vec<u8>,
    pos: usize,
    ended: bool,
}

impl Read for PipeReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            if self.ended {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Msg::Data(b)) => {
                    self.cur = b;
                    self.pos = 0;
                }
                Ok(Msg::End) => self.ended = true,
                Err(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the layer tar writer stopped before the end of the tar",
                    ))
                }
            }
        }
        let n = out.len().min(self.cur.len() - self.pos);
        out[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
