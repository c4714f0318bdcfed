//! Blobs: resumable, retried, verified downloads into a caller's file.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;

use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, RANGE};
use reqwest::Method;
use sha2::{Digest, Sha256};

use crate::client::{check_digest, check_host, check_repo, normalize_repo, Client, Request};
use crate::error::{Error, Result};
use crate::hosts::Endpoint;
use crate::retry::{Failure, Retry};

const READ_BUF: usize = 256 * 1024;

/// The file being downloaded into, and the running hash of its content.
struct Download<'f> {
    file: &'f mut File,
    hasher: Sha256,
    len: u64,
    what: &'f str,
}

impl<'f> Download<'f> {
    /// Takes over `file`, hashing the bytes an earlier attempt left in it.
    fn resume(file: &'f mut File, what: &'f str) -> Result<Self> {
        let io = |e| Error::io(format!("reading the partial download of {what}"), e);
        let len = file.metadata().map_err(io)?.len();
        let mut hasher = Sha256::new();
        let mut done = 0u64;
        if len > 0 {
            // The file may be open for appending only: read it through
            // /proc/self/fd then.
            let mut probe = [0u8; 1];
            let reopened;
            let src: &File = match file.read_at(&mut probe, 0) {
                Ok(_) => file,
                Err(e) => {
                    use std::os::fd::AsRawFd;
                    let path = format!("/proc/self/fd/{}", file.as_raw_fd());
                    reopened = File::open(path).map_err(|_| io(e))?;
                    &reopened
                }
            };
            let mut buf = vec![0u8; READ_BUF];
            while done < len {
                let want = buf.len().min((len - done) as usize);
                let n = src.read_at(&mut buf[..want], done).map_err(io)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                done += n as u64;
            }
            if done < len {
                file.set_len(done).map_err(io)?;
            }
        }
        file.seek(SeekFrom::End(0)).map_err(io)?;
        Ok(Download {
            file,
            hasher,
            len: done,
            what,
        })
    }

    /// Throws away what was downloaded.
    fn restart(&mut self) -> Result<()> {
        let io = |e| Error::io(format!("truncating the download of {}", self.what), e);
        self.file.set_len(0).map_err(io)?;
        self.file.seek(SeekFrom::Start(0)).map_err(io)?;
        self.hasher = Sha256::new();
        self.len = 0;
        Ok(())
    }

    fn write(&mut self, data: &[u8]) -> Result<()> {
        self.file
            .write_all(data)
            .map_err(|e| Error::io(format!("writing {}", self.what), e))?;
        self.hasher.update(data);
        self.len += data.len() as u64;
        Ok(())
    }

    fn digest(&self) -> String {
        format!("sha256:{}", hex::encode(self.hasher.clone().finalize()))
    }
}

/// Parses `Content-Range: bytes START-END/TOTAL` (TOTAL may be `*`).
fn parse_content_range(value: &str) -> Option<(u64, u64, Option<u64>)> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (start, end) = range.split_once('-')?;
    let start = start.trim().parse().ok()?;
    let end = end.trim().parse().ok()?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    (start <= end).then_some((start, end, total))
}

fn header_str<'r>(resp: &'r reqwest::blocking::Response, name: &str) -> Option<&'r str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}

impl Client {
    /// Downloads blob `digest` of `host/repo` into `out`.
    ///
    /// `out` is a file open for appending (ideally for reading too) that may
    /// already hold the start of the blob from an interrupted download: the
    /// download resumes with `Range: bytes=<len>-` (a 200 instead of a 206
    /// restarts from 0). Redirects are followed, without the Authorization
    /// header once they leave the registry. Connection errors, a dropped
    /// body, 429 (Retry-After in seconds honoured) and 5xx are retried with
    /// exponential backoff, at most `max_retries` times (reset when the
    /// download gets further than ever before). The final length must equal
    /// `expected_size` and the sha256 of the whole file must be `digest`;
    /// otherwise the file is truncated and an error returned. A download that
    /// fails otherwise keeps its bytes, to be resumed by the next call.
    /// `progress(bytes_so_far, total)` is called as data arrives. The file is
    /// not synced: the caller does that before publishing it.
    pub fn fetch_blob(
        &self,
        host: &str,
        repo: &str,
        digest: &str,
        expected_size: Option<u64>,
        out: &mut File,
        progress: &mut dyn FnMut(u64, Option<u64>),
    ) -> Result<()> {
        check_host(host)?;
        let repo = normalize_repo(host, repo);
        check_repo(host, &repo)?;
        check_digest(digest)?;
        self.on_endpoints(host, |ep| {
            self.fetch_blob_from(ep, &repo, digest, expected_size, out, progress)
        })
    }

    fn fetch_blob_from(
        &self,
        ep: &Endpoint,
        repo: &str,
        digest: &str,
        expected: Option<u64>,
        out: &mut File,
        progress: &mut dyn FnMut(u64, Option<u64>),
    ) -> Result<()> {
        let what = format!("blob {digest} in {}/{repo}", ep.host);
        let mut dl = Download::resume(out, &what)?;
        if let Some(exp) = expected {
            if dl.len > exp {
                dl.restart()?;
            } else if dl.len == exp && exp > 0 {
                if dl.digest() == digest {
                    progress(dl.len, Some(exp));
                    return Ok(());
                }
                dl.restart()?;
            }
        }
        let mut retry = Retry::new(&ep.host, &what, self.cfg.max_retries);
        let mut furthest = dl.len;
        loop {
            match self.try_fetch_blob(ep, repo, digest, &what, &mut dl, expected, progress) {
                Ok(()) => break,
                Err(f) => {
                    if dl.len > furthest {
                        furthest = dl.len;
                        retry.reset();
                    }
                    retry.handle(f)?;
                }
            }
        }
        let size_mismatch = |actual| Error::BlobSizeMismatch {
            host: ep.host.clone(),
            repo: repo.to_string(),
            digest: digest.to_string(),
            expected: expected.unwrap_or(0),
            actual,
        };
        if let Some(exp) = expected {
            if dl.len != exp {
                let actual = dl.len;
                dl.restart()?;
                return Err(size_mismatch(actual));
            }
        }
        let actual = dl.digest();
        if actual != digest {
            dl.restart()?;
            return Err(Error::BlobDigestMismatch {
                host: ep.host.clone(),
                repo: repo.to_string(),
                digest: digest.to_string(),
                actual,
            });
        }
        Ok(())
    }

    /// One attempt: a (range) request and as much of the body as arrives.
    #[allow(clippy::too_many_arguments)]
    fn try_fetch_blob(
        &self,
        ep: &Endpoint,
        repo: &str,
        digest: &str,
        what: &str,
        dl: &mut Download<'_>,
        expected: Option<u64>,
        progress: &mut dyn FnMut(u64, Option<u64>),
    ) -> std::result::Result<(), Failure> {
        let offset = dl.len;
        let mut headers = Vec::new();
        if offset > 0 {
            headers.push((RANGE, format!("bytes={offset}-")));
        }
        let req = Request {
            ep,
            repo,
            what,
            method: Method::GET,
            path: format!("/v2/{repo}/blobs/{digest}"),
            headers,
        };
        let mut resp = self.send(&req)?;
        let length =
            header_str(&resp, CONTENT_LENGTH.as_str()).and_then(|v| v.trim().parse::<u64>().ok());
        let total = match resp.status().as_u16() {
            200 => {
                if offset > 0 {
                    dl.restart()?; // the registry ignored the range
                }
                length
            }
            206 if offset > 0 => {
                let range = header_str(&resp, CONTENT_RANGE.as_str()).and_then(parse_content_range);
                match range {
                    Some((start, end, total)) if start == offset => {
                        total.or(expected).or(Some(end + 1))
                    }
                    _ => {
                        dl.restart()?;
                        return Err(Failure::retry(format!(
                            "{} answered the range request for {what} with another range",
                            ep.host
                        )));
                    }
                }
            }
            416 if offset > 0 => {
                dl.restart()?;
                return Err(Failure::retry(format!(
                    "{} refused to resume {what} at byte {offset}",
                    ep.host
                )));
            }
            404 => {
                return Err(Failure::Fatal(Error::NotFound {
                    host: ep.host.clone(),
                    what: what.to_string(),
                }))
            }
            _ => return Err(Failure::Fatal(self.status_error(ep, what, resp))),
        };
        if let (Some(t), Some(e)) = (total, expected) {
            if t != e {
                dl.restart()?;
                return Err(Failure::Fatal(Error::BlobSizeMismatch {
                    host: ep.host.clone(),
                    repo: repo.to_string(),
                    digest: digest.to_string(),
                    expected: e,
                    actual: t,
                }));
            }
        }
        let total = total.or(expected);
        progress(dl.len, total);
        let mut buf = vec![0u8; READ_BUF];
        loop {
            let n = match resp.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let of = total.map(|t| format!(" of {t}")).unwrap_or_default();
                    return Err(Failure::retry(format!(
                        "the connection dropped after {}{of} bytes: {}",
                        dl.len,
                        crate::error::chain(&e)
                    )));
                }
            };
            if let Some(e) = expected {
                if dl.len + n as u64 > e {
                    let actual = dl.len + n as u64;
                    dl.restart()?;
                    return Err(Failure::Fatal(Error::BlobSizeMismatch {
                        host: ep.host.clone(),
                        repo: repo.to_string(),
                        digest: digest.to_string(),
                        expected: e,
                        actual,
                    }));
                }
            }
            dl.write(&buf[..n])?;
            progress(dl.len, total);
        }
        if let Some(t) = total {
            if dl.len < t {
                return Err(Failure::retry(format!(
                    "the download ended after {} of {t} bytes",
                    dl.len
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges() {
        assert_eq!(
            parse_content_range("bytes 100-999/1000"),
            Some((100, 999, Some(1000)))
        );
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, 9, None)));
        assert_eq!(parse_content_range("bytes 9-5/10"), None);
        assert_eq!(parse_content_range("items 0-1/2"), None);
        assert_eq!(parse_content_range("bytes */1000"), None);
    }

    #[test]
    fn resume_hashes_an_append_only_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("partial");
        std::fs::write(&path, b"hello ").unwrap();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        let mut dl = Download::resume(&mut f, "blob x").unwrap();
        assert_eq!(dl.len, 6);
        dl.write(b"world").unwrap();
        assert_eq!(dl.digest(), crate::client::sha256_digest(b"hello world"));
        dl.restart().unwrap();
        dl.write(b"again").unwrap();
        drop(f);
        assert_eq!(std::fs::read(&path).unwrap(), b"again");
    }

    #[test]
    fn resume_of_a_read_write_file_writes_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("partial");
        std::fs::write(&path, b"abc").unwrap();
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let mut dl = Download::resume(&mut f, "blob x").unwrap();
        dl.write(b"def").unwrap();
        dl.restart().unwrap();
        dl.write(b"xy").unwrap();
        drop(f);
        assert_eq!(std::fs::read(&path).unwrap(), b"xy");
    }
}
