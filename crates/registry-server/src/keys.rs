//! Public keys of token issuers, read from PEM (or DER) files and checked
//! against JWS signatures with `ring`:
//!
//! - `-----BEGIN PUBLIC KEY-----` (SubjectPublicKeyInfo) of an RSA
//!   (rsaEncryption, 2048–8192 bits), ECDSA P-256 (id-ecPublicKey with
//!   prime256v1, uncompressed point) or Ed25519 key;
//! - `-----BEGIN RSA PUBLIC KEY-----` (PKCS#1 RSAPublicKey);
//! - `-----BEGIN CERTIFICATE-----` (X.509: its SubjectPublicKeyInfo is used,
//!   nothing else of the certificate is checked), so distribution's
//!   `rootcertbundle` works as is.
//!
//! A file may hold several PEM blocks (a bundle); a file that is not PEM is
//! taken as one DER SubjectPublicKeyInfo. The DER reader is small and
//! strict: definite minimal lengths, one-byte tags, no trailing bytes.
//!
//! Each key answers to several key ids (a token header's `kid`): the id
//! given in the config, distribution's libtrust id (`ABCD:EFGH:…`, the
//! first 240 bits of the SHA-256 of the SPKI, base32) and the RFC 7638 JWK
//! thumbprint.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use ring::signature::{
    RsaPublicKeyComponents, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED, ED25519,
    RSA_PKCS1_2048_8192_SHA256,
};
use sha2::{Digest, Sha256};

const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const NULL: u8 = 0x05;
const OID: u8 = 0x06;

/// The largest key file read (a certificate bundle of a few dozen certs).
pub const MAX_KEY_FILE: u64 = 1 << 20;

/// A public key and the JWS algorithm it verifies.
#[derive(Clone, PartialEq, Eq)]
pub enum KeyKind {
    /// The 32-byte key.
    Ed25519(Vec<u8>),
    /// Modulus and exponent, big-endian without leading zeros.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// The 65-byte uncompressed point `04 || x || y`.
    P256(Vec<u8>),
}

impl KeyKind {
    /// The JWS `alg` this key verifies.
    pub fn alg(&self) -> &'static str {
        match self {
            KeyKind::Ed25519(_) => "EdDSA",
            KeyKind::Rsa { .. } => "RS256",
            KeyKind::P256(_) => "ES256",
        }
    }

    /// Whether `sig` is this key's signature of `msg` (ES256: the JWS
    /// fixed-size `r || s`, not DER).
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        match self {
            KeyKind::Ed25519(k) => UnparsedPublicKey::new(&ED25519, k).verify(msg, sig).is_ok(),
            KeyKind::P256(k) => UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, k)
                .verify(msg, sig)
                .is_ok(),
            KeyKind::Rsa { n, e } => RsaPublicKeyComponents { n, e }
                .verify(&RSA_PKCS1_2048_8192_SHA256, msg, sig)
                .is_ok(),
        }
    }

    /// The SubjectPublicKeyInfo DER of this key.
    pub fn spki(&self) -> Vec<u8> {
        let (alg, key) = match self {
            KeyKind::Ed25519(k) => (der(SEQUENCE, &der(OID, OID_ED25519)), k.clone()),
            KeyKind::P256(k) => (
                der(SEQUENCE, &[der(OID, OID_EC), der(OID, OID_P256)].concat()),
                k.clone(),
            ),
            KeyKind::Rsa { n, e } => (
                der(SEQUENCE, &[der(OID, OID_RSA), der(NULL, &[])].concat()),
                der(
                    SEQUENCE,
                    &[
                        der(INTEGER, &unsigned_int(n)),
                        der(INTEGER, &unsigned_int(e)),
                    ]
                    .concat(),
                ),
            ),
        };
        let bits = [&[0u8][..], &key].concat();
        der(SEQUENCE, &[alg, der(BIT_STRING, &bits)].concat())
    }

    /// distribution's (libtrust's) key id: the SHA-256 of the SPKI,
    /// truncated to 240 bits, base32, in groups of four joined by `:`.
    pub fn libtrust_kid(&self) -> String {
        let h = Sha256::digest(self.spki());
        let b32 = base32(&h[..30]);
        b32.as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).unwrap_or_default())
            .collect::<Vec<_>>()
            .join(":")
    }

    /// The RFC 7638 JWK thumbprint (SHA-256, base64url).
    pub fn jwk_thumbprint(&self) -> String {
        let json = match self {
            KeyKind::Ed25519(k) => {
                format!(
                    r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
                    B64URL.encode(k)
                )
            }
            KeyKind::P256(k) => format!(
                r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                B64URL.encode(k.get(1..33).unwrap_or_default()),
                B64URL.encode(k.get(33..65).unwrap_or_default())
            ),
            KeyKind::Rsa { n, e } => format!(
                r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
                B64URL.encode(e),
                B64URL.encode(n)
            ),
        };
        B64URL.encode(Sha256::digest(json.as_bytes()))
    }
}

impl std::fmt::Debug for KeyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyKind::Rsa { n, .. } => write!(f, "RSA-{}", bit_len(n)),
            k => f.write_str(k.alg()),
        }
    }
}

/// One trusted key with the ids a token's `kid` may name it by.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    pub kind: KeyKind,
    pub kids: Vec<String>,
}

impl TrustedKey {
    /// `kind` named by its libtrust id, its JWK thumbprint and `kid`.
    pub fn new(kind: KeyKind, kid: Option<&str>) -> TrustedKey {
        let mut kids: Vec<String> = kid.map(str::to_string).into_iter().collect();
        kids.push(kind.libtrust_kid());
        kids.push(kind.jwk_thumbprint());
        TrustedKey { kind, kids }
    }

    pub fn answers_to(&self, kid: &str) -> bool {
        self.kids.iter().any(|k| k == kid)
    }
}

/// The keys of a key file's bytes: PEM blocks (several in a bundle), or one
/// DER SubjectPublicKeyInfo.
pub fn parse_key_file(bytes: &[u8]) -> Result<Vec<KeyKind>, String> {
    let Some(text) = std::str::from_utf8(bytes)
        .ok()
        .filter(|t| t.contains("-----BEGIN "))
    else {
        return Ok(vec![parse_spki(bytes)?]);
    };
    let mut keys = Vec::new();
    let mut lines = text.lines().map(str::trim);
    while let Some(l) = lines.next() {
        let Some(label) = l
            .strip_prefix("-----BEGIN ")
            .and_then(|r| r.strip_suffix("-----"))
        else {
            continue;
        };
        let end = format!("-----END {label}-----");
        let mut b64 = String::new();
        let mut closed = false;
        for l in lines.by_ref() {
            if l == end {
                closed = true;
                break;
            }
            if l.starts_with("-----") {
                return Err(format!("PEM block {label:?}: unexpected {l:?}"));
            }
            // RFC 7468's legacy headers (`Proc-Type: …`) are not base64.
            if l.contains(':') {
                return Err(format!(
                    "PEM block {label:?} has headers (an encrypted key?)"
                ));
            }
            b64.push_str(l);
        }
        if !closed {
            return Err(format!("PEM block {label:?} has no END line"));
        }
        let der = base64::engine::general_purpose::STANDARD
            .decode(&b64)
            .map_err(|e| format!("PEM block {label:?}: bad base64: {e}"))?;
        let what = |e: String| format!("PEM block {label:?}: {e}");
        match label {
            "PUBLIC KEY" => keys.push(parse_spki(&der).map_err(what)?),
            "RSA PUBLIC KEY" => keys.push(parse_pkcs1(&der).map_err(what)?),
            "CERTIFICATE" => keys.push(parse_certificate(&der).map_err(what)?),
            l if l.contains("PRIVATE KEY") => {
                return Err(format!(
                    "a {l}: give the issuer's public key or certificate (`openssl pkey -pubout`)"
                ))
            }
            l => return Err(format!("unsupported PEM block {l:?}")),
        }
    }
    if keys.is_empty() {
        return Err("no PEM block".into());
    }
    Ok(keys)
}

/// A DER element: its tag, contents, and the bytes after it.
struct Tlv<'a> {
    tag: u8,
    value: &'a [u8],
    /// Tag, length and contents.
    whole: &'a [u8],
    rest: &'a [u8],
}

fn tlv(input: &[u8]) -> Result<Tlv<'_>, String> {
    let truncated = || "truncated DER".to_string();
    let (&tag, after) = input.split_first().ok_or_else(truncated)?;
    if tag & 0x1f == 0x1f {
        return Err("multi-byte DER tag".into());
    }
    let (&l0, mut after) = after.split_first().ok_or_else(truncated)?;
    let len = if l0 < 0x80 {
        usize::from(l0)
    } else {
        let n = usize::from(l0 & 0x7f);
        if n == 0 || n > 4 {
            return Err("bad DER length".into());
        }
        let bytes = after.get(..n).ok_or_else(truncated)?;
        if bytes[0] == 0 {
            return Err("non-minimal DER length".into());
        }
        let len = bytes.iter().fold(0usize, |a, &b| a << 8 | usize::from(b));
        if len < 0x80 {
            return Err("non-minimal DER length".into());
        }
        after = &after[n..];
        len
    };
    if after.len() < len {
        return Err(truncated());
    }
    let head = input.len() - after.len();
    Ok(Tlv {
        tag,
        value: &after[..len],
        whole: &input[..head + len],
        rest: &after[len..],
    })
}

/// The element at the start of `input`, which must have `tag`.
fn expect<'a>(input: &'a [u8], tag: u8, what: &str) -> Result<Tlv<'a>, String> {
    let t = tlv(input).map_err(|e| format!("{what}: {e}"))?;
    if t.tag != tag {
        return Err(format!(
            "{what}: DER tag {:#04x}, expected {tag:#04x}",
            t.tag
        ));
    }
    Ok(t)
}

/// `input` is exactly one element with `tag`: its contents.
fn only<'a>(input: &'a [u8], tag: u8, what: &str) -> Result<Tlv<'a>, String> {
    let t = expect(input, tag, what)?;
    if !t.rest.is_empty() {
        return Err(format!("{what}: trailing bytes"));
    }
    Ok(t)
}

/// A SubjectPublicKeyInfo.
pub fn parse_spki(der: &[u8]) -> Result<KeyKind, String> {
    let spki = only(der, SEQUENCE, "SubjectPublicKeyInfo")?;
    let alg = expect(spki.value, SEQUENCE, "AlgorithmIdentifier")?;
    let bits = only(alg.rest, BIT_STRING, "subjectPublicKey")?;
    let oid = expect(alg.value, OID, "algorithm")?;
    let params = oid.rest;
    let key = match bits.value.split_first() {
        Some((0, k)) => k,
        _ => return Err("subjectPublicKey: not a whole number of bytes".into()),
    };
    match oid.value {
        OID_RSA => {
            if !(params.is_empty() || params == [NULL, 0]) {
                return Err("rsaEncryption: unexpected parameters".into());
            }
            parse_pkcs1(key)
        }
        OID_EC => {
            let curve = only(params, OID, "EC parameters")?;
            if curve.value != OID_P256 {
                return Err("EC key on a curve other than P-256 (prime256v1)".into());
            }
            if key.len() != 65 || key[0] != 0x04 {
                return Err("EC P-256 key: not an uncompressed point".into());
            }
            Ok(KeyKind::P256(key.to_vec()))
        }
        OID_ED25519 => {
            if !params.is_empty() {
                return Err("Ed25519: unexpected parameters".into());
            }
            if key.len() != 32 {
                return Err("Ed25519 key: not 32 bytes".into());
            }
            Ok(KeyKind::Ed25519(key.to_vec()))
        }
        o => Err(format!(
            "unsupported key algorithm (OID {}): RSA, EC P-256 and Ed25519 are",
            oid_string(o)
        )),
    }
}

/// A PKCS#1 RSAPublicKey (`SEQUENCE { n INTEGER, e INTEGER }`).
pub fn parse_pkcs1(der: &[u8]) -> Result<KeyKind, String> {
    let seq = only(der, SEQUENCE, "RSAPublicKey")?;
    let n = expect(seq.value, INTEGER, "RSA modulus")?;
    let e = only(n.rest, INTEGER, "RSA exponent")?;
    let n = positive(n.value, "RSA modulus")?;
    let e = positive(e.value, "RSA exponent")?;
    let bits = bit_len(&n);
    if !(2048..=8192).contains(&bits) {
        return Err(format!("RSA key of {bits} bits: 2048 to 8192 are accepted"));
    }
    if e.len() > 4 || e.last().is_some_and(|b| b & 1 == 0) || bit_len(&e) < 2 {
        return Err("RSA exponent: not an odd number from 3 to 2^32".into());
    }
    Ok(KeyKind::Rsa { n, e })
}

/// An X.509 certificate's public key (nothing else of it is checked).
pub fn parse_certificate(der: &[u8]) -> Result<KeyKind, String> {
    let cert = only(der, SEQUENCE, "Certificate")?;
    let tbs = expect(cert.value, SEQUENCE, "TBSCertificate")?;
    let mut rest = tbs.value;
    // [0] EXPLICIT version, when present.
    if rest.first() == Some(&0xa0) {
        rest = tlv(rest)?.rest;
    }
    for what in ["serialNumber", "signature", "issuer", "validity", "subject"] {
        let t = tlv(rest).map_err(|e| format!("{what}: {e}"))?;
        rest = t.rest;
    }
    let spki = expect(rest, SEQUENCE, "subjectPublicKeyInfo")?;
    parse_spki(spki.whole)
}

/// The magnitude of a non-negative DER INTEGER, without leading zeros.
fn positive(v: &[u8], what: &str) -> Result<Vec<u8>, String> {
    match v.first() {
        None => Err(format!("{what}: empty INTEGER")),
        Some(b) if b & 0x80 != 0 => Err(format!("{what}: negative")),
        Some(_) => {
            let start = v.iter().position(|&b| b != 0).unwrap_or(v.len());
            if start > 1 || (start == 1 && v.get(1).is_some_and(|b| b & 0x80 == 0)) {
                return Err(format!("{what}: non-minimal INTEGER"));
            }
            Ok(v[start..].to_vec())
        }
    }
}

fn bit_len(n: &[u8]) -> usize {
    match n.first() {
        None => 0,
        Some(b) => n.len() * 8 - b.leading_zeros() as usize,
    }
}

/// The DER of `tag` around `content`.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|&b| b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// A DER INTEGER's contents for a non-negative big-endian number.
fn unsigned_int(n: &[u8]) -> Vec<u8> {
    if n.first().is_some_and(|b| b & 0x80 != 0) {
        [&[0u8][..], n].concat()
    } else {
        n.to_vec()
    }
}

/// RFC 4648 base32 without padding.
fn base32(data: &[u8]) -> String {
    const A: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut acc, mut bits) = (0u32, 0);
    for &b in data {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(A[(acc >> bits) as usize & 31] as char);
        }
    }
    if bits > 0 {
        out.push(A[(acc << (5 - bits)) as usize & 31] as char);
    }
    out
}

fn oid_string(o: &[u8]) -> String {
    let mut parts = Vec::new();
    let mut v: u64 = 0;
    for (i, &b) in o.iter().enumerate() {
        v = (v << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            if parts.is_empty() {
                let first = (v / 40).min(2);
                parts.push(first.to_string());
                parts.push((v - first * 40).to_string());
            } else {
                parts.push(v.to_string());
            }
            v = 0;
        }
        if i > 64 || v > u64::MAX >> 8 {
            return hex::encode(o);
        }
    }
    parts.join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_lengths_are_strict() {
        assert!(tlv(&[0x30]).is_err());
        assert!(tlv(&[0x30, 0x02, 0x00]).is_err());
        assert!(tlv(&[0x30, 0x80]).is_err(), "indefinite length");
        assert!(
            tlv(&[0x30, 0x81, 0x05, 0, 0, 0, 0, 0]).is_err(),
            "non-minimal"
        );
        assert!(tlv(&[0x30, 0x82, 0x00, 0x90]).is_err(), "non-minimal");
        assert!(tlv(&[0x30, 0x85, 1, 0, 0, 0, 0]).is_err());
        assert!(tlv(&[0x1f, 0x01, 0x00]).is_err());
        assert!(tlv(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_err());
        let t = tlv(&[0x04, 0x01, 0xaa, 0xbb]).unwrap();
        assert_eq!((t.tag, t.value, t.rest), (0x04, &[0xaa][..], &[0xbb][..]));
        let long = [&[0x04, 0x81, 0x80][..], &[7u8; 0x80]].concat();
        assert_eq!(tlv(&long).unwrap().value.len(), 0x80);
        assert_eq!(der(0x04, &[7u8; 0x80]), long);
    }

    #[test]
    fn oids_and_base32() {
        assert_eq!(oid_string(OID_RSA), "1.2.840.113549.1.1.1");
        assert_eq!(oid_string(OID_P256), "1.2.840.10045.3.1.7");
        assert_eq!(oid_string(OID_ED25519), "1.3.101.112");
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32(b"f"), "MY");
    }

    #[test]
    fn integers_must_be_positive_and_minimal() {
        assert_eq!(positive(&[0x00, 0x80], "x").unwrap(), vec![0x80]);
        assert_eq!(positive(&[0x7f], "x").unwrap(), vec![0x7f]);
        assert!(positive(&[0x80], "x").is_err());
        assert!(positive(&[0x00, 0x01], "x").is_err());
        assert!(positive(&[], "x").is_err());
        assert_eq!(positive(&[0x00], "x").unwrap(), Vec::<u8>::new());
    }
}
