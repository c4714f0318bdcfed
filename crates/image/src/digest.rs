//! Content digests: `sha256:<64 lowercase hex>` (and `sha512:<128 hex>`).
//!
//! A [`Digest`] is only ever built from a string that passed [`FromStr`] or
//! from a hash we computed ourselves, so its hex part is safe to use as a
//! file name (no `/`, no `..`, fixed length).

use sha2::{Digest as _, Sha256, Sha512};
use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("invalid digest {input:?}: {reason}")]
    Invalid { input: String, reason: &'static str },
    #[error(
        "unsupported digest algorithm {algorithm:?} in {input:?}: berth supports sha256 and sha512"
    )]
    Unsupported { input: String, algorithm: String },
}

pub type Result<T> = std::result::Result<T, Error>;

/// A hash algorithm berth can verify content with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// Length of the hex encoding of a digest of this algorithm.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `algorithm:hex`, validated. Ordered and hashed by its string form.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    /// The whole `algorithm:hex` string.
    full: String,
    algorithm: Algorithm,
}

/// Shortens untrusted input quoted in an error message.
fn clip(s: &str) -> String {
    const MAX: usize = 160;
    if s.len() <= MAX {
        return s.to_string();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

impl Digest {
    /// The sha256 digest of `bytes`.
    pub fn sha256_of(bytes: &[u8]) -> Digest {
        Digest::of(Algorithm::Sha256, bytes)
    }

    /// The digest of `bytes` with `algorithm`.
    pub fn of(algorithm: Algorithm, bytes: &[u8]) -> Digest {
        let mut h = Hasher::new(algorithm);
        h.update(bytes);
        h.finish()
    }

    /// Builds a digest from an algorithm and a hex string, validating both.
    pub fn from_hex(algorithm: Algorithm, hex: &str) -> Result<Digest> {
        format!("{algorithm}:{hex}").parse()
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The lowercase hex part (safe as a file name).
    pub fn hex(&self) -> &str {
        &self.full[self.algorithm.as_str().len() + 1..]
    }

    /// The first 12 hex characters, as `docker images` shows an id.
    pub fn short(&self) -> &str {
        &self.hex()[..12]
    }

    pub fn as_str(&self) -> &str {
        &self.full
    }

    /// True when `bytes` hash to this digest.
    pub fn matches(&self, bytes: &[u8]) -> bool {
        Digest::of(self.algorithm, bytes) == *self
    }

    /// The same digest as the OCI types carry it.
    pub fn to_oci(&self) -> oci_spec_image::image::Digest {
        // A validated sha256/sha512 digest is always a valid OCI digest.
        oci_spec_image::image::Digest::from_str(&self.full)
            .unwrap_or_else(|_| unreachable!("validated digest {} rejected by oci-spec", self.full))
    }
}

impl FromStr for Digest {
    type Err = Error;

    fn from_str(s: &str) -> Result<Digest> {
        let invalid = |reason| Error::Invalid {
            input: clip(s),
            reason,
        };
        let (alg, hex) = s
            .split_once(':')
            .ok_or_else(|| invalid("expected algorithm:hex, e.g. sha256:<64 hex digits>"))?;
        let algorithm = match alg {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            "" => return Err(invalid("missing algorithm")),
            other => {
                let well_formed = other
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(&b));
                if !well_formed {
                    return Err(invalid(
                        "the algorithm must be lowercase letters and digits",
                    ));
                }
                return Err(Error::Unsupported {
                    input: clip(s),
                    algorithm: clip(other),
                });
            }
        };
        if hex.len() != algorithm.hex_len() {
            return Err(invalid(match algorithm {
                Algorithm::Sha256 => "a sha256 digest has exactly 64 hex digits",
                Algorithm::Sha512 => "a sha512 digest has exactly 128 hex digits",
            }));
        }
        if !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(invalid("the hex part must be lowercase hex digits"));
        }
        Ok(Digest {
            full: s.to_string(),
            algorithm,
        })
    }
}

impl TryFrom<&oci_spec_image::image::Digest> for Digest {
    type Error = Error;

    fn try_from(d: &oci_spec_image::image::Digest) -> Result<Digest> {
        d.to_string().parse()
    }
}

impl From<&Digest> for oci_spec_image::image::Digest {
    fn from(d: &Digest) -> Self {
        d.to_oci()
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.full)
    }
}

impl AsRef<str> for Digest {
    fn as_ref(&self) -> &str {
        &self.full
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.full)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An incremental hash of either supported algorithm.
#[derive(Clone)]
pub enum Hasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl Hasher {
    pub fn new(algorithm: Algorithm) -> Hasher {
        match algorithm {
            Algorithm::Sha256 => Hasher::Sha256(Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(Sha512::new()),
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        match self {
            Hasher::Sha256(_) => Algorithm::Sha256,
            Hasher::Sha512(_) => Algorithm::Sha512,
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
        }
    }

    pub fn finish(self) -> Digest {
        let algorithm = self.algorithm();
        let hex = match self {
            Hasher::Sha256(h) => hex::encode(h.finalize()),
            Hasher::Sha512(h) => hex::encode(h.finalize()),
        };
        Digest {
            full: format!("{algorithm}:{hex}"),
            algorithm,
        }
    }

    /// The digest of everything so far, without consuming the hasher.
    pub fn current(&self) -> Digest {
        self.clone().finish()
    }
}

impl Write for Hasher {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Hashes everything written through it (sha256 by default), then passes it
/// on to `inner` (use [`io::sink()`] to only hash).
pub struct Sha256Writer<W = io::Sink> {
    inner: W,
    hasher: Hasher,
    bytes: u64,
}

impl Sha256Writer<io::Sink> {
    /// A writer that only hashes.
    pub fn sink() -> Self {
        Sha256Writer::new(io::sink())
    }
}

impl<W: Write> Sha256Writer<W> {
    pub fn new(inner: W) -> Self {
        Sha256Writer::with_algorithm(inner, Algorithm::Sha256)
    }

    pub fn with_algorithm(inner: W, algorithm: Algorithm) -> Self {
        Sha256Writer {
            inner,
            hasher: Hasher::new(algorithm),
            bytes: 0,
        }
    }

    /// Bytes written so far.
    pub fn bytes_written(&self) -> u64 {
        self.bytes
    }

    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// The digest of everything written and the inner writer.
    pub fn finish(self) -> (Digest, W) {
        (self.hasher.finish(), self.inner)
    }
}

impl<W: Write> Write for Sha256Writer<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Hashes everything read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
    bytes: u64,
}

impl<R: Read> HashingReader<R> {
    /// A sha256-hashing reader.
    pub fn new(inner: R) -> Self {
        HashingReader::with_algorithm(inner, Algorithm::Sha256)
    }

    pub fn with_algorithm(inner: R, algorithm: Algorithm) -> Self {
        HashingReader {
            inner,
            hasher: Hasher::new(algorithm),
            bytes: 0,
        }
    }

    /// Bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes
    }

    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// The digest of everything read so far.
    pub fn digest(&self) -> Digest {
        self.hasher.current()
    }

    pub fn finish(self) -> Digest {
        self.hasher.finish()
    }

    /// The digest, the byte count and the inner reader.
    pub fn into_parts(self) -> (Digest, u64, R) {
        (self.hasher.finish(), self.bytes, self.inner)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// Hashes a whole reader with `algorithm`; returns the digest and byte count.
pub fn hash_reader<R: Read>(r: R, algorithm: Algorithm) -> io::Result<(Digest, u64)> {
    let mut w = Sha256Writer::with_algorithm(io::sink(), algorithm);
    let mut r = r;
    io::copy(&mut r, &mut w)?;
    let n = w.bytes_written();
    Ok((w.finish().0, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn sha256_of_known_vectors() {
        assert_eq!(Digest::sha256_of(b"").to_string(), EMPTY);
        assert_eq!(
            Digest::sha256_of(b"abc").hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let d = Digest::of(Algorithm::Sha512, b"abc");
        assert_eq!(d.algorithm(), Algorithm::Sha512);
        assert!(d.hex().starts_with("ddaf35a193617aba"));
        assert_eq!(d.hex().len(), 128);
        assert!(d.matches(b"abc"));
        assert!(!d.matches(b"abd"));
    }

    #[test]
    fn parse_accepts_valid() {
        let d: Digest = EMPTY.parse().unwrap();
        assert_eq!(d.algorithm(), Algorithm::Sha256);
        assert_eq!(d.hex(), &EMPTY[7..]);
        assert_eq!(d.short(), "e3b0c44298fc");
        assert_eq!(d.to_string(), EMPTY);
        let s512 = format!("sha512:{}", "a".repeat(128));
        assert_eq!(s512.parse::<Digest>().unwrap().to_string(), s512);
        assert_eq!(
            Digest::from_hex(Algorithm::Sha256, &EMPTY[7..])
                .unwrap()
                .as_str(),
            EMPTY
        );
    }

    #[test]
    fn parse_rejects_invalid() {
        let hex = &EMPTY[7..];
        for bad in [
            "".to_string(),
            hex.to_string(),
            format!("sha256:{}", &hex[1..]),
            format!("sha256:{hex}0"),
            format!("sha256:{}", hex.to_uppercase()),
            format!("SHA256:{hex}"),
            format!("sha256:{}/..", &hex[..61]),
            format!("sha256:../{}", &hex[3..]),
            format!("sha256 :{hex}"),
            format!(":{hex}"),
            format!("sha512:{hex}"),
            "sha256:".to_string(),
            format!("sha256:{hex}\n"),
            format!("sha256:{}g", &hex[1..]),
        ] {
            let e = bad.parse::<Digest>().unwrap_err();
            assert!(e.to_string().starts_with("invalid digest"), "{bad:?}: {e}");
        }
        let e = format!("md5:{hex}").parse::<Digest>().unwrap_err();
        assert!(matches!(e, Error::Unsupported { .. }), "{e}");
        assert!(
            e.to_string()
                .contains("unsupported digest algorithm \"md5\""),
            "{e}"
        );
        let e = format!("sha384:{hex}").parse::<Digest>().unwrap_err();
        assert!(matches!(e, Error::Unsupported { .. }));
        // Long hostile input is clipped in the message.
        let e = "x".repeat(10_000).parse::<Digest>().unwrap_err();
        assert!(e.to_string().len() < 400);
    }

    #[test]
    fn serde_as_string() {
        let d = Digest::sha256_of(b"");
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json, format!("\"{EMPTY}\""));
        let back: Digest = serde_json::from_str(&json).unwrap();
        assert_eq!(back, d);
        assert!(serde_json::from_str::<Digest>("\"sha256:abc\"").is_err());
    }

    #[test]
    fn oci_round_trip() {
        let d = Digest::sha256_of(b"x");
        let o = d.to_oci();
        assert_eq!(o.to_string(), d.to_string());
        assert_eq!(Digest::try_from(&o).unwrap(), d);
    }

    #[test]
    fn hashing_reader_and_writer() {
        let data = vec![7u8; 100_000];
        let mut r = HashingReader::new(&data[..]);
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(r.bytes_read(), 100_000);
        assert_eq!(r.digest(), Digest::sha256_of(&data));
        assert_eq!(r.finish(), Digest::sha256_of(&data));

        let mut w = Sha256Writer::new(Vec::new());
        w.write_all(&data[..10]).unwrap();
        w.write_all(&data[10..]).unwrap();
        assert_eq!(w.bytes_written(), 100_000);
        let (d, inner) = w.finish();
        assert_eq!(d, Digest::sha256_of(&data));
        assert_eq!(inner, data);

        let (d, n) = hash_reader(&data[..], Algorithm::Sha512).unwrap();
        assert_eq!(n, 100_000);
        assert_eq!(d, Digest::of(Algorithm::Sha512, &data));
        let mut s = Sha256Writer::sink();
        s.write_all(b"abc").unwrap();
        assert_eq!(s.finish().0, Digest::sha256_of(b"abc"));
    }
}
