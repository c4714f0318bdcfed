//! Resumable partial downloads: `ingest/<key>/{lock,data}`.
//!
//! An [`Ingest`] holds an exclusive `flock` on `ingest/<key>/lock` for its
//! whole life, so two processes never write the same download: the second
//! waits, then finds either the partial data to resume or, when the first
//! committed, the blob already stored. Commit re-hashes the data, checks the
//! digest and size, syncs, and only then renames it into `blobs/`.

use crate::digest::{self, Digest};
use crate::store::{io_err, mkdir_private, Error, Result, Store};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

/// An exclusively held partial download. Dropped without commit or abort,
/// its data stays for a later resume.
#[derive(Debug)]
pub struct Ingest {
    store: Store,
    key: String,
    dir: PathBuf,
    data_path: PathBuf,
    data: File,
    _lock: Flock<File>,
}

fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 200
        && key != "."
        && key != ".."
        && !key.starts_with('.')
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'))
}

impl Ingest {
    /// Opens `ingest/<key>`, waiting for its lock when `wait`, else
    /// returning `None` when another holds it.
    pub(crate) fn open(store: &Store, key: &str, wait: bool) -> Result<Option<Ingest>> {
        if !valid_key(key) {
            return Err(Error::InvalidKey(key.to_string()));
        }
        let dir = store.ingest_root().join(key);
        let lock_path = dir.join("lock");
        mkdir_private(&store.ingest_root())?;
        let lock = loop {
            // Not `create_dir_all`: the dir may vanish and reappear under us.
            match DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_err("create directory", &dir)(e)),
            }
            let f = match OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&lock_path)
            {
                Ok(f) => f,
                // The holder committed and removed the dir meanwhile.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err("open", &lock_path)(e)),
            };
            let arg = if wait {
                FlockArg::LockExclusive
            } else {
                FlockArg::LockExclusiveNonblock
            };
            let lock = match Flock::lock(f, arg) {
                Ok(l) => l,
                Err((_, Errno::EINTR)) => continue,
                Err((_, Errno::EWOULDBLOCK)) if !wait => return Ok(None),
                Err((_, source)) => {
                    return Err(Error::Lock {
                        path: lock_path,
                        source,
                    })
                }
            };
            // The lock is only ours if the file is still the one at the
            // path: a previous holder may have removed it after committing.
            let held = lock.metadata().map_err(io_err("stat", &lock_path))?;
            match fs::metadata(&lock_path) {
                Ok(m) if m.ino() == held.ino() && m.dev() == held.dev() => break lock,
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err("stat", &lock_path)(e)),
            }
        };
        let data_path = dir.join("data");
        let data = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&data_path)
            .map_err(io_err("open", &data_path))?;
        Ok(Some(Ingest {
            store: store.clone(),
            key: key.to_string(),
            dir,
            data_path,
            data,
            _lock: lock,
        }))
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// The partial data file.
    pub fn path(&self) -> &Path {
        &self.data_path
    }

    /// Bytes already downloaded: where a resumed download starts (an HTTP
    /// `Range: bytes=<offset>-`).
    pub fn offset(&self) -> u64 {
        self.data.metadata().map(|m| m.len()).unwrap_or(0)
    }

    /// The data file, opened for appending.
    pub fn file_mut(&mut self) -> &mut File {
        &mut self.data
    }

    /// Drops the partial data (e.g. the server cannot resume).
    pub fn reset(&mut self) -> Result<()> {
        self.data
            .set_len(0)
            .map_err(io_err("truncate", &self.data_path))
    }

    /// Verifies the data against `expected` (and `size`, when known), syncs
    /// it and moves it into `blobs/`. If the blob is already stored the
    /// ingest is just dropped. Data that is too short is kept for a resume;
    /// data that is too long or hashes wrong is removed.
    pub fn commit(mut self, expected: &Digest, size: Option<u64>) -> Result<PathBuf> {
        let target = self.store.blob_path(expected);
        if target.is_file() {
            self.remove_dir()?;
            return Ok(target);
        }
        self.data
            .flush()
            .map_err(io_err("write", &self.data_path))?;
        let len = self
            .data
            .metadata()
            .map_err(io_err("stat", &self.data_path))?
            .len();
        let what = format!("blob {expected}");
        if let Some(size) = size {
            if len < size {
                return Err(Error::Incomplete {
                    what,
                    expected: size,
                    actual: len,
                });
            }
            if len > size {
                self.remove_dir()?;
                return Err(Error::SizeMismatch {
                    what,
                    expected: size,
                    actual: len,
                });
            }
        }
        let reader = File::open(&self.data_path).map_err(io_err("open", &self.data_path))?;
        let (actual, _) = digest::hash_reader(
            io::BufReader::with_capacity(1 << 20, reader),
            expected.algorithm(),
        )
        .map_err(io_err("read", &self.data_path))?;
        if actual != *expected {
            self.remove_dir()?;
            return Err(Error::DigestMismatch {
                what,
                expected: expected.clone(),
                actual,
            });
        }
        self.data
            .sync_all()
            .map_err(io_err("sync", &self.data_path))?;
        self.store.install_blob(&self.data_path, &target)?;
        self.remove_dir()?;
        Ok(target)
    }

    /// Discards the partial download.
    pub fn abort(self) -> Result<()> {
        self.remove_dir()
    }

    /// Removes `ingest/<key>` while still holding its lock; waiters then
    /// see their lock file is gone and start afresh.
    fn remove_dir(&self) -> Result<()> {
        remove_ingest_dir(&self.dir)
    }
}

/// Removes an ingest dir whose lock the caller holds: the data, then the
/// lock file (so later openers make a fresh one), then the dir itself
/// unless a newcomer already started a fresh ingest in it.
pub(crate) fn remove_ingest_dir(dir: &Path) -> Result<()> {
    for name in ["data", "lock"] {
        let p = dir.join(name);
        match fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("remove", &p)(e)),
        }
    }
    match fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e)
            if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTEMPTY) =>
        {
            Ok(())
        }
        Err(e) => Err(io_err("remove", dir)(e)),
    }
}

impl Write for Ingest {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.data.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.data.flush()
    }
}
