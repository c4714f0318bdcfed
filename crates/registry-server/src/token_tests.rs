//! Verification of RS256, ES256 and EdDSA tokens against keys made by
//! `openssl` at test time; hostile tokens.

use super::*;
use crate::config::KeyFileTable;
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING, RSA_PKCS1_SHA256,
};
use serde_json::json;
use std::process::Command;

fn openssl(args: &[&str]) -> Vec<u8> {
    let o = Command::new("openssl")
        .args(args)
        .output()
        .expect("run openssl");
    assert!(o.status.success(), "openssl {args:?}: {o:?}");
    o.stdout
}

/// A key pair made by openssl: the PKCS#8 DER of the private key and the
/// paths of its PEM files.
struct TestKey {
    pkcs8: Vec<u8>,
    alg: &'static str,
    /// `-----BEGIN PUBLIC KEY-----`
    spki: PathBuf,
    private: PathBuf,
}

fn genkey(dir: &Path, name: &str, alg: &'static str) -> TestKey {
    let private = dir.join(format!("{name}.pem"));
    let p = private.to_str().unwrap();
    let opts: &[&str] = match alg {
        "RS256" => &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
        "ES256" => &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        _ => &["-algorithm", "ed25519"],
    };
    openssl(&[&["genpkey"][..], opts, &["-out", p]].concat());
    let pkcs8 = openssl(&["pkcs8", "-topk8", "-nocrypt", "-in", p, "-outform", "DER"]);
    let spki = dir.join(format!("{name}.pub"));
    openssl(&["pkey", "-in", p, "-pubout", "-out", spki.to_str().unwrap()]);
    TestKey {
        pkcs8,
        alg,
        spki,
        private,
    }
}

fn sign_with(k: &TestKey, msg: &[u8]) -> Vec<u8> {
    let rng = SystemRandom::new();
    match k.alg {
        "RS256" => {
            let kp = RsaKeyPair::from_pkcs8(&k.pkcs8).unwrap();
            let mut sig = vec![0; kp.public().modulus_len()];
            kp.sign(&RSA_PKCS1_SHA256, &rng, msg, &mut sig).unwrap();
            sig
        }
        "ES256" => EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &k.pkcs8, &rng)
            .unwrap()
            .sign(&rng, msg)
            .unwrap()
            .as_ref()
            .to_vec(),
        _ => Ed25519KeyPair::from_pkcs8_maybe_unchecked(&k.pkcs8)
            .unwrap()
            .sign(msg)
            .as_ref()
            .to_vec(),
    }
}

fn claims(aud: &str, exp: u64) -> serde_json::Value {
    json!({"iss": "iss", "sub": "carol", "aud": aud, "exp": exp, "nbf": now() - 5,
        "iat": now(), "jti": "j",
        "access": [{"type": "repository", "name": "a/b", "actions": ["pull"]}]})
}

/// A JWT of `header` and `claims` signed by `signer(input)`.
fn jwt(
    header: &serde_json::Value,
    claims: &serde_json::Value,
    signer: impl Fn(&[u8]) -> Vec<u8>,
) -> String {
    let input = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    let sig = signer(input.as_bytes());
    format!("{input}.{}", B64.encode(sig))
}

fn good(k: &TestKey) -> String {
    jwt(
        &json!({"alg": k.alg, "typ": "JWT"}),
        &claims("svc", now() + 300),
        |m| sign_with(k, m),
    )
}

fn issuer_trusting(dir: &Path, files: Vec<TrustedKeyFile>) -> Result<Issuer, TokenError> {
    Issuer::new(
        &dir.join("own.pk8"),
        &files,
        "iss".into(),
        "svc".into(),
        300,
    )
}

fn path(p: &Path) -> TrustedKeyFile {
    TrustedKeyFile::Path(p.to_path_buf())
}

#[test]
fn rs256_es256_and_eddsa_tokens_of_trusted_keys_verify() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let rsa = genkey(d, "rsa", "RS256");
    let ec = genkey(d, "ec", "ES256");
    let ed = genkey(d, "ed", "EdDSA");
    let i = issuer_trusting(d, vec![path(&rsa.spki), path(&ec.spki), path(&ed.spki)]).unwrap();
    for k in [&rsa, &ec, &ed] {
        let c = i
            .verify(&good(k))
            .unwrap_or_else(|e| panic!("{}: {e}", k.alg));
        assert_eq!(c.sub, "carol");
        assert!(c.grants("a/b", Action::Pull) && !c.grants("a/b", Action::Push));
    }
    // Our own tokens still verify, and name our key.
    let (own, _) = i.sign("alice", vec![]);
    assert!(i.verify(&own).is_ok());
    let h: serde_json::Value =
        serde_json::from_slice(&B64.decode(own.split('.').next().unwrap()).unwrap()).unwrap();
    assert_eq!(h["kid"], i.kid.as_str());

    // A key nobody trusts: refused, whatever its algorithm.
    for (n, alg) in [("rsa2", "RS256"), ("ec2", "ES256"), ("ed2", "EdDSA")] {
        let other = genkey(d, n, alg);
        assert_eq!(
            i.verify(&good(&other)).unwrap_err(),
            Invalid::Signature,
            "{alg}"
        );
    }
    // An issuer trusting only the EC key refuses the RSA one's tokens.
    let only_ec = issuer_trusting(d, vec![path(&ec.spki)]).unwrap();
    assert!(only_ec.verify(&good(&ec)).is_ok());
    assert_eq!(only_ec.verify(&good(&rsa)).unwrap_err(), Invalid::Signature);
}

#[test]
fn pkcs1_certificates_and_bundles_are_key_files_too() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let rsa = genkey(d, "rsa", "RS256");
    let ec = genkey(d, "ec", "ES256");
    let pkcs1 = d.join("rsa.pkcs1.pem");
    openssl(&[
        "rsa",
        "-in",
        rsa.private.to_str().unwrap(),
        "-RSAPublicKey_out",
        "-out",
        pkcs1.to_str().unwrap(),
    ]);
    assert!(std::fs::read_to_string(&pkcs1)
        .unwrap()
        .starts_with("-----BEGIN RSA PUBLIC KEY-----"));
    let cert = |k: &TestKey, name: &str| {
        let c = d.join(name);
        openssl(&[
            "req",
            "-x509",
            "-new",
            "-key",
            k.private.to_str().unwrap(),
            "-subj",
            "/CN=issuer",
            "-days",
            "2",
            "-out",
            c.to_str().unwrap(),
        ]);
        std::fs::read(c).unwrap()
    };
    let bundle = d.join("bundle.pem");
    std::fs::write(
        &bundle,
        [cert(&rsa, "rsa.crt"), cert(&ec, "ec.crt")].concat(),
    )
    .unwrap();
    let i = issuer_trusting(d, vec![path(&bundle)]).unwrap();
    assert_eq!(i.trusted.len(), 3, "ours and the two of the bundle");
    assert!(i.verify(&good(&rsa)).is_ok());
    assert!(i.verify(&good(&ec)).is_ok());
    let i = issuer_trusting(d, vec![path(&pkcs1)]).unwrap();
    assert!(i.verify(&good(&rsa)).is_ok());
    assert_eq!(i.verify(&good(&ec)).unwrap_err(), Invalid::Signature);

    // Each form re-encodes to the SPKI openssl writes (so the libtrust id
    // is the hash of the same bytes distribution hashes).
    for k in [&rsa, &ec] {
        let der = openssl(&[
            "pkey",
            "-in",
            k.private.to_str().unwrap(),
            "-pubout",
            "-outform",
            "DER",
        ]);
        let kind = crate::keys::parse_spki(&der).unwrap();
        assert_eq!(kind.spki(), der);
        // DER files (not PEM) are read as an SPKI.
        assert_eq!(
            crate::keys::parse_key_file(&der).unwrap(),
            vec![kind.clone()]
        );
        let from_pem = crate::keys::parse_key_file(&std::fs::read(&k.spki).unwrap()).unwrap();
        assert_eq!(from_pem, vec![kind]);
    }
    let p1 = crate::keys::parse_key_file(&std::fs::read(&pkcs1).unwrap()).unwrap();
    let sp = crate::keys::parse_key_file(&std::fs::read(&rsa.spki).unwrap()).unwrap();
    assert_eq!(p1, sp);
}

#[test]
fn bad_key_files_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bad = |args: &[&str], name: &str| {
        let p = d.join(name);
        openssl(&[args, &["-out", p.to_str().unwrap()]].concat());
        p
    };
    let small = bad(
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:1024",
        ],
        "small.pem",
    );
    let small_pub = d.join("small.pub");
    openssl(&[
        "pkey",
        "-in",
        small.to_str().unwrap(),
        "-pubout",
        "-out",
        small_pub.to_str().unwrap(),
    ]);
    let p384 = bad(
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-384",
        ],
        "p384.pem",
    );
    let p384_pub = d.join("p384.pub");
    openssl(&[
        "pkey",
        "-in",
        p384.to_str().unwrap(),
        "-pubout",
        "-out",
        p384_pub.to_str().unwrap(),
    ]);
    let x448 = bad(&["genpkey", "-algorithm", "ed448"], "ed448.pem");
    let x448_pub = d.join("ed448.pub");
    openssl(&[
        "pkey",
        "-in",
        x448.to_str().unwrap(),
        "-pubout",
        "-out",
        x448_pub.to_str().unwrap(),
    ]);
    let garbage = d.join("garbage.pem");
    std::fs::write(
        &garbage,
        "-----BEGIN PUBLIC KEY-----\nMIIB!!!\n-----END PUBLIC KEY-----\n",
    )
    .unwrap();
    let unclosed = d.join("unclosed.pem");
    let text = std::fs::read_to_string(&small_pub).unwrap();
    std::fs::write(
        &unclosed,
        text.lines().take(3).collect::<Vec<_>>().join("\n"),
    )
    .unwrap();
    let truncated = d.join("truncated.pem");
    let pub_der = openssl(&[
        "pkey",
        "-in",
        small.to_str().unwrap(),
        "-pubout",
        "-outform",
        "DER",
    ]);
    std::fs::write(&truncated, &pub_der[..pub_der.len() - 10]).unwrap();
    for (f, want) in [
        (&small_pub, "1024 bits"),
        (&p384_pub, "P-256"),
        (&x448_pub, "1.3.101.113"),
        (&small, "PRIVATE KEY"),
        (&garbage, "base64"),
        (&unclosed, "no END line"),
        (&truncated, "truncated"),
    ] {
        let e = issuer_trusting(d, vec![path(f)]).unwrap_err().to_string();
        assert!(
            e.contains(want) && e.contains(f.to_str().unwrap()),
            "{}: {e}",
            f.display()
        );
    }
    let e = issuer_trusting(d, vec![path(&d.join("missing.pem"))])
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing.pem"), "{e}");
}

#[test]
fn kid_picks_the_key_and_alg_must_match_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let rsa = genkey(d, "rsa", "RS256");
    let ec = genkey(d, "ec", "ES256");
    let i = issuer_trusting(
        d,
        vec![
            TrustedKeyFile::Table(KeyFileTable {
                path: rsa.spki.clone(),
                kid: Some("rsa-1".into()),
            }),
            path(&ec.spki),
        ],
    )
    .unwrap();
    let ec_kind = crate::keys::parse_key_file(&std::fs::read(&ec.spki).unwrap())
        .unwrap()
        .remove(0);
    let tok = |k: &TestKey, alg: &str, kid: Option<&str>| {
        let mut h = json!({"alg": alg, "typ": "JWT"});
        if let Some(kid) = kid {
            h["kid"] = kid.into();
        }
        jwt(&h, &claims("svc", now() + 300), |m| sign_with(k, m))
    };
    assert!(i.verify(&tok(&rsa, "RS256", Some("rsa-1"))).is_ok());
    let lt = ec_kind.libtrust_kid();
    assert_eq!(lt.len(), 59, "{lt}");
    assert_eq!(lt.split(':').count(), 12);
    assert!(i.verify(&tok(&ec, "ES256", Some(&lt))).is_ok());
    assert!(i
        .verify(&tok(&ec, "ES256", Some(&ec_kind.jwk_thumbprint())))
        .is_ok());
    assert_eq!(
        i.verify(&tok(&rsa, "RS256", Some("rsa-2"))).unwrap_err(),
        Invalid::UnknownKey("rsa-2".into())
    );
    // The right kid, the wrong key behind the signature.
    assert_eq!(
        i.verify(&tok(&ec, "RS256", Some("rsa-1"))).unwrap_err(),
        Invalid::Signature
    );
    // alg naming another key type than the kid's key.
    assert_eq!(
        i.verify(&tok(&ec, "ES256", Some("rsa-1"))).unwrap_err(),
        Invalid::KeyMismatch {
            alg: "ES256".into(),
            key: "RS256"
        }
    );
    // Without kid, alg still picks only keys of its type: an RSA signature
    // under `ES256` (or the reverse) is no good.
    assert_eq!(
        i.verify(&tok(&rsa, "ES256", None)).unwrap_err(),
        Invalid::Signature
    );
    assert_eq!(
        i.verify(&tok(&ec, "RS256", None)).unwrap_err(),
        Invalid::Signature
    );
    // A kid that is not a string.
    let h = json!({"alg": "RS256", "kid": 7});
    assert_eq!(
        i.verify(&jwt(&h, &claims("svc", now() + 9), |m| sign_with(&rsa, m)))
            .unwrap_err(),
        Invalid::Malformed
    );
    // A bundle's keys cannot share one configured kid.
    let two = d.join("two.pem");
    std::fs::write(
        &two,
        [
            std::fs::read(&rsa.spki).unwrap(),
            std::fs::read(&ec.spki).unwrap(),
        ]
        .concat(),
    )
    .unwrap();
    let e = issuer_trusting(
        d,
        vec![TrustedKeyFile::Table(KeyFileTable {
            path: two,
            kid: Some("k".into()),
        })],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("2 keys"), "{e}");
}

#[test]
fn none_hmac_and_unknown_algorithms_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let rsa = genkey(d, "rsa", "RS256");
    let i = issuer_trusting(d, vec![path(&rsa.spki)]).unwrap();
    let c = claims("svc", now() + 300);
    let none = format!(
        "{}.{}.",
        B64.encode(json!({"alg": "none"}).to_string()),
        B64.encode(c.to_string())
    );
    assert_eq!(
        i.verify(&none).unwrap_err(),
        Invalid::Algorithm("none".into())
    );
    // HS256 keyed with the public key file: the classic confusion attack.
    let secret = std::fs::read(&rsa.spki).unwrap();
    let hs = jwt(&json!({"alg": "HS256"}), &c, |m| {
        ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret), m)
            .as_ref()
            .to_vec()
    });
    assert_eq!(
        i.verify(&hs).unwrap_err(),
        Invalid::Algorithm("HS256".into())
    );
    for alg in ["RS512", "PS256", "ES384", "rs256", ""] {
        let t = jwt(&json!({"alg": alg}), &c, |m| sign_with(&rsa, m));
        assert_eq!(i.verify(&t).unwrap_err(), Invalid::Algorithm(alg.into()));
    }
    for h in [
        json!({}),
        json!({"alg": null}),
        json!({"alg": ["RS256"]}),
        json!([1]),
    ] {
        let t = jwt(&h, &c, |m| sign_with(&rsa, m));
        assert_eq!(i.verify(&t).unwrap_err(), Invalid::Malformed, "{h}");
    }
    let crit = jwt(&json!({"alg": "RS256", "crit": ["exp"]}), &c, |m| {
        sign_with(&rsa, m)
    });
    assert_eq!(i.verify(&crit).unwrap_err(), Invalid::Malformed);
}

#[test]
fn claims_are_checked_for_external_tokens_too() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ec = genkey(d, "ec", "ES256");
    let i = issuer_trusting(d, vec![path(&ec.spki)]).unwrap();
    let h = json!({"alg": "ES256"});
    let sig = |m: &[u8]| sign_with(&ec, m);
    assert_eq!(
        i.verify(&jwt(&h, &claims("svc", now() - 1), sig))
            .unwrap_err(),
        Invalid::Expired
    );
    assert!(matches!(
        i.verify(&jwt(&h, &claims("other", now() + 60), sig)),
        Err(Invalid::Audience(_))
    ));
    assert!(i.verify(&jwt(&h, &claims("svc", now() + 60), sig)).is_ok());
    let mut c = claims("svc", now() + 60);
    c["aud"] = json!(["x", "svc"]);
    assert!(i.verify(&jwt(&h, &c, sig)).is_ok());
    c["iss"] = "someone-else".into();
    assert!(matches!(
        i.verify(&jwt(&h, &c, sig)),
        Err(Invalid::Issuer(_))
    ));
    let mut c = claims("svc", now() + 600);
    c["nbf"] = (now() + LEEWAY / 2).into();
    assert!(i.verify(&jwt(&h, &c, sig)).is_ok(), "within the leeway");
    c["nbf"] = (now() + LEEWAY + 60).into();
    assert_eq!(i.verify(&jwt(&h, &c, sig)).unwrap_err(), Invalid::NotYet);
    // NumericDates may be fractions; not strings or negative numbers.
    let mut c = claims("svc", 0);
    c["exp"] = json!(now() as f64 + 60.5);
    c["iat"] = json!(now() as f64 - 0.25);
    assert!(i.verify(&jwt(&h, &c, sig)).is_ok());
    c["exp"] = json!(now() as f64 - 0.5);
    assert_eq!(i.verify(&jwt(&h, &c, sig)).unwrap_err(), Invalid::Expired);
    for bad in [
        json!((now() + 60).to_string()),
        json!(-1),
        json!(1e300),
        json!(null),
    ] {
        c["exp"] = bad.clone();
        assert_eq!(
            i.verify(&jwt(&h, &c, sig)).unwrap_err(),
            Invalid::Malformed,
            "{bad}"
        );
    }
    // No exp: refused.
    let mut c = claims("svc", 0);
    c.as_object_mut().unwrap().remove("exp");
    assert_eq!(i.verify(&jwt(&h, &c, sig)).unwrap_err(), Invalid::Malformed);
}

#[test]
fn bad_signatures_and_hostile_tokens_are_refused_without_panics() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let rsa = genkey(d, "rsa", "RS256");
    let ec = genkey(d, "ec", "ES256");
    let i = issuer_trusting(d, vec![path(&rsa.spki), path(&ec.spki)]).unwrap();
    for k in [&rsa, &ec] {
        let t = good(k);
        assert!(i.verify(&t).is_ok());
        let (input, sig) = t.rsplit_once('.').unwrap();
        let mut raw = B64.decode(sig).unwrap();
        let mid = raw.len() / 2;
        raw[mid] ^= 1;
        let flipped = format!("{input}.{}", B64.encode(&raw));
        assert_eq!(i.verify(&flipped).unwrap_err(), Invalid::Signature);
        // Every truncation: never valid, never a panic.
        for n in 0..t.len() {
            assert!(i.verify(&t[..n]).is_err(), "{} prefix {n}", k.alg);
        }
        // Padding, whitespace and standard-alphabet characters are not
        // base64url.
        for bad in [
            format!("{t}="),
            format!(
                "{input}.{}",
                base64::engine::general_purpose::STANDARD.encode(&raw)
            ),
            t.replacen('.', " .", 1),
            format!("{t}.x"),
            format!(".{t}"),
        ] {
            assert!(i.verify(&bad).is_err(), "{bad}");
        }
        let huge = format!("{input}.{}", "A".repeat(MAX_TOKEN));
        assert_eq!(i.verify(&huge).unwrap_err(), Invalid::Malformed);
    }
    // An ES256 signature in DER (as `openssl dgst -sign` writes it) is not
    // the JWS form.
    let t = good(&ec);
    let input = t.rsplit_once('.').unwrap().0;
    let f = d.join("input");
    std::fs::write(&f, input).unwrap();
    let der_sig = openssl(&[
        "dgst",
        "-sha256",
        "-sign",
        ec.private.to_str().unwrap(),
        f.to_str().unwrap(),
    ]);
    assert_eq!(der_sig[0], 0x30);
    assert_eq!(
        i.verify(&format!("{input}.{}", B64.encode(&der_sig)))
            .unwrap_err(),
        Invalid::Signature
    );
    // An RS256 signature by openssl verifies (a second implementation).
    let t = good(&rsa);
    let input = t.rsplit_once('.').unwrap().0;
    std::fs::write(&f, input).unwrap();
    let sig = openssl(&[
        "dgst",
        "-sha256",
        "-sign",
        rsa.private.to_str().unwrap(),
        f.to_str().unwrap(),
    ]);
    assert!(i.verify(&format!("{input}.{}", B64.encode(&sig))).is_ok());
    // Garbage of every shape.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let alphabet = b"ABCxyz019-_.=+/ {}\"";
    for _ in 0..2000 {
        let len = (next() % 200) as usize;
        let s: String = (0..len)
            .map(|_| alphabet[(next() % alphabet.len() as u64) as usize] as char)
            .collect();
        assert!(i.verify(&s).is_err(), "{s}");
    }
    for s in ["", ".", "..", "...", "a.b.c", "e30.e30.", "e30.e30.e30"] {
        assert!(i.verify(s).is_err(), "{s}");
    }
}

#[test]
fn rfc7638_thumbprint_vector() {
    // RFC 7638 section 3.1.
    let n = B64.decode("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw").unwrap();
    let k = KeyKind::Rsa {
        n,
        e: vec![1, 0, 1],
    };
    assert_eq!(
        k.jwk_thumbprint(),
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    );
    // Its SPKI parses back to the same key.
    assert_eq!(crate::keys::parse_spki(&k.spki()).unwrap(), k);
}

#[test]
fn key_parsers_survive_truncation_and_bit_flips() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (name, alg) in [("rsa", "RS256"), ("ec", "ES256"), ("ed", "EdDSA")] {
        let k = genkey(d, name, alg);
        let p = k.private.to_str().unwrap();
        let spki = openssl(&["pkey", "-in", p, "-pubout", "-outform", "DER"]);
        let cert = openssl(&[
            "req", "-x509", "-new", "-key", p, "-subj", "/CN=x", "-days", "1", "-outform", "DER",
        ]);
        let want = crate::keys::parse_spki(&spki).unwrap();
        assert_eq!(crate::keys::parse_certificate(&cert).unwrap(), want);
        for der in [&spki, &cert] {
            let parse = |b: &[u8]| {
                (
                    crate::keys::parse_spki(b),
                    crate::keys::parse_certificate(b),
                    crate::keys::parse_pkcs1(b),
                    crate::keys::parse_key_file(b),
                )
            };
            for n in 0..der.len() {
                let (a, b, _, c) = parse(&der[..n]);
                assert!(a.is_err() && b.is_err() && c.is_err(), "{alg} prefix {n}");
            }
            let mut m = der.clone();
            for i in 0..m.len() {
                for bit in [0x01, 0x80] {
                    m[i] ^= bit;
                    // Any result but a panic; a changed key is another key.
                    if let Ok(k) = parse(&m).0 {
                        assert!(k != want || m == *der);
                    }
                    m[i] ^= bit;
                }
            }
        }
    }
}
