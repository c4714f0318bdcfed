//! `berth registry serve` in token mode trusting an external issuer that
//! signs RS256 or ES256 tokens (the test token server, which signs with the
//! openssl CLI, as cesanta/docker_auth or GitLab would with their keys):
//! the challenge points at the issuer, `berth login/push/pull` follow it,
//! and tokens of a key the registry does not trust are refused.

use berth_integration::berth_registry::BerthRegistry;
use berth_integration::engine::Store;
use berth_integration::registry::{SigningKey, TokenIssuer, TOKEN_ISSUER, TOKEN_SERVICE};

/// A token-mode registry trusting the keys of `trusted` (TOML of the
/// `trusted_keys`/`rootcertbundle` lines, over `files`), whose challenge
/// sends clients to `realm`.
fn registry(realm: &str, trusted: &str, files: &[(&str, &[u8])]) -> BerthRegistry {
    let config = format!(
        "auth = \"token\"\n\n[token]\nrealm = \"{realm}\"\nservice = \"{TOKEN_SERVICE}\"\nissuer = \"{TOKEN_ISSUER}\"\n{trusted}\n"
    );
    BerthRegistry::start_with_config(Some(&config), files)
}

fn read(p: &std::path::Path) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

/// `berth ARGS` fails (exit 1): its stderr.
fn fails(s: &Store, args: &[&str]) -> String {
    let o = s.berth(args);
    assert_eq!(
        o.status.code(),
        Some(1),
        "berth {args:?} should fail with 1: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// An image imported into `s` as `r`: its id.
fn import(s: &Store, r: &str) -> String {
    let tar = berth_integration::containers::rootfs_tar()
        .display()
        .to_string();
    s.ok(&["import", "--change", r#"CMD ["sh"]"#, &tar, r])
        .trim()
        .to_string()
}

#[test]
fn berth_pushes_and_pulls_with_tokens_of_rs256_and_es256_issuers() {
    for key in [SigningKey::Rs256, SigningKey::Es256] {
        let dir = tempfile::tempdir().unwrap();
        let issuer = TokenIssuer::start(dir.path(), key, None, "carol", "carol-pw", true);
        // RSA: distribution's way, the issuer's certificate as
        // `rootcertbundle`; EC: its public key in `trusted_keys`.
        let (trusted, file) = match key {
            SigningKey::Rs256 => (
                "rootcertbundle = \"issuer.crt\"",
                ("issuer.crt", read(issuer.cert_pem())),
            ),
            SigningKey::Es256 => (
                "trusted_keys = [\"issuer.pem\"]",
                ("issuer.pem", read(&issuer.public_key_pem())),
            ),
        };
        let reg = registry(&issuer.realm(), trusted, &[(file.0, &file.1)]);

        let r = reg.req("GET", "/v2/", &[], b"");
        assert_eq!(r.status, 401, "{key:?}");
        assert_eq!(
            r.header("www-authenticate"),
            Some(
                format!(
                    r#"Bearer realm="{}",service="{TOKEN_SERVICE}""#,
                    issuer.realm()
                )
                .as_str()
            )
        );

        let s = Store::new();
        let image = reg.image_ref("team/app:1");
        let id = import(&s, &image);
        // Anonymous: the issuer grants pull only, so the push is refused.
        let err = fails(&s, &["push", &image]);
        assert!(err.contains("authentication required"), "{key:?}: {err}");
        s.ok(&["login", "-u", "carol", "-p", "carol-pw", &reg.addr]);
        let out = s.ok(&["push", &image]);
        assert!(out.contains(": Pushed"), "{key:?}: {out}");
        // The tokens came from the issuer, for the registry's service.
        let asked = issuer.requests();
        assert!(
            asked.iter().any(|t| t.user.as_deref() == Some("carol")
                && t.status == 200
                && t.service.as_deref() == Some(TOKEN_SERVICE)
                && t.scopes
                    .iter()
                    .any(|sc| sc == "repository:team/app:pull,push")),
            "{key:?}: {asked:?}"
        );
        // An anonymous pull: the issuer grants pull to everyone.
        let anon = Store::new();
        anon.ok(&["pull", &image]);
        assert_eq!(anon.inspect(&image)["Id"], id, "{key:?}");

        // A token of the issuer, used directly.
        let t = issuer.token(
            TOKEN_SERVICE,
            "repository:team/app:pull",
            Some(("carol", "carol-pw")),
        );
        let auth = format!("Bearer {t}");
        let h = [("Authorization", auth.as_str())];
        let r = reg.req("GET", "/v2/team/app/manifests/1", &h, b"");
        assert_eq!(r.status, 200, "{key:?}: {}", r.text());
        // Pull only: a push asks for another token.
        let r = reg.req("POST", "/v2/team/app/blobs/uploads/", &h, b"");
        assert_eq!(r.status, 401, "{key:?}");
        assert!(r
            .header("www-authenticate")
            .unwrap()
            .contains(r#"error="insufficient_scope""#));
        // Its signature flipped: invalid.
        let (input, sig) = t.rsplit_once('.').unwrap();
        let c = if sig.starts_with('A') { 'B' } else { 'A' };
        let bad = format!("Bearer {input}.{c}{}", &sig[1..]);
        let r = reg.req(
            "GET",
            "/v2/team/app/manifests/1",
            &[("Authorization", &bad)],
            b"",
        );
        assert_eq!(r.status, 401, "{key:?}");
        assert!(r.text().contains("signature"), "{key:?}: {}", r.text());
    }
}

#[test]
fn tokens_of_an_untrusted_key_or_an_unknown_kid_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let trusted_dir = dir.path().join("trusted");
    let rogue_dir = dir.path().join("rogue");
    let kid_dir = dir.path().join("kid");
    for d in [&trusted_dir, &rogue_dir, &kid_dir] {
        std::fs::create_dir(d).unwrap();
    }
    let trusted = TokenIssuer::start(
        &trusted_dir,
        SigningKey::Es256,
        Some("trusted-1"),
        "carol",
        "carol-pw",
        false,
    );
    // Same kind of key, same iss/aud, same kid: only the key differs.
    let rogue = TokenIssuer::start(
        &rogue_dir,
        SigningKey::Es256,
        Some("trusted-1"),
        "carol",
        "carol-pw",
        false,
    );
    let other_kid = TokenIssuer::start(
        &kid_dir,
        SigningKey::Rs256,
        Some("rsa-9"),
        "carol",
        "carol-pw",
        false,
    );
    // The registry sends clients to the rogue issuer.
    let reg = registry(
        &rogue.realm(),
        "trusted_keys = [{ path = \"trusted.pem\", kid = \"trusted-1\" }, \"rsa.crt\"]",
        &[
            ("trusted.pem", &read(&trusted.public_key_pem())),
            ("rsa.crt", &read(other_kid.cert_pem())),
        ],
    );
    let s = Store::new();
    let image = reg.image_ref("team/app:1");
    import(&s, &image);
    let err = fails(&s, &["login", "-u", "carol", "-p", "carol-pw", &reg.addr]);
    assert!(!err.is_empty());
    let err = fails(&s, &["push", &image]);
    assert!(err.contains("authentication required"), "{err}");
    assert!(
        rogue
            .requests()
            .iter()
            .any(|t| t.user.as_deref() == Some("carol") && t.status == 200),
        "the client did get the rogue issuer's tokens: {:?}",
        rogue.requests()
    );
    let get = |t: &str| {
        reg.req(
            "GET",
            "/v2/",
            &[("Authorization", &format!("Bearer {t}"))],
            b"",
        )
    };
    let scope = "repository:team/app:pull,push";
    let creds = Some(("carol", "carol-pw"));
    let r = get(&rogue.token(TOKEN_SERVICE, scope, creds));
    assert_eq!(r.status, 401);
    assert!(r.text().contains("signature"), "{}", r.text());
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .contains(r#"error="invalid_token""#));
    // The trusted issuer's token, and the RSA one's (its kid is not the
    // configured one, but it is not asked for: the RSA key is trusted by
    // certificate, so it answers to its libtrust id and thumbprint only).
    let r = get(&trusted.token(TOKEN_SERVICE, scope, creds));
    assert_eq!(r.status, 200, "{}", r.text());
    let r = get(&other_kid.token(TOKEN_SERVICE, scope, creds));
    assert_eq!(r.status, 401);
    assert!(r.text().contains("rsa-9"), "{}", r.text());
    // As distribution (and docker_auth, GitLab) name keys: the libtrust id,
    // computed here by openssl and coreutils.
    other_kid.set_kid(Some(&other_kid.libtrust_kid()));
    let r = get(&other_kid.token(TOKEN_SERVICE, scope, creds));
    assert_eq!(r.status, 200, "{}", r.text());
    // The trusted EC key's libtrust id with the RSA key's signature: the
    // key the kid names is an EC key.
    other_kid.set_kid(Some(&trusted.libtrust_kid()));
    let r = get(&other_kid.token(TOKEN_SERVICE, scope, creds));
    assert_eq!(r.status, 401);
    assert!(r.text().contains("does not match"), "{}", r.text());
    // A token for another service is no good either.
    let r = get(&trusted.token("another-registry", scope, creds));
    assert_eq!(r.status, 401);
    assert!(r.text().contains("audience"), "{}", r.text());
    // With the trusted issuer as the realm, the same client gets in.
    drop(reg);
    let reg = registry(
        &trusted.realm(),
        "trusted_keys = [{ path = \"trusted.pem\", kid = \"trusted-1\" }]",
        &[("trusted.pem", &read(&trusted.public_key_pem()))],
    );
    let image = reg.image_ref("team/app:1");
    import(&s, &image);
    s.ok(&["login", "-u", "carol", "-p", "carol-pw", &reg.addr]);
    let out = s.ok(&["push", &image]);
    assert!(out.contains(": Pushed"), "{out}");
}
