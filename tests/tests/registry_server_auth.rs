//! `berth registry serve --config FILE`: htpasswd (Basic) auth, token auth
//! (its own `/token` endpoint and a trusted external issuer, whose tokens
//! are signed here by `openssl`, not by berth) and per-repository
//! permissions, with berth login/push/pull, skopeo and raw HTTP requests;
//! the health endpoint.

use berth_integration::berth_registry::BerthRegistry;
use berth_integration::engine::{busybox, Store};
use berth_integration::images::{self, sha256_hex};
use berth_integration::registry::HttpResponse;
use serde_json::json;
use std::process::Command;

fn digest_of(data: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(data))
}

/// `user:$2y$…` as `htpasswd -B` writes it.
fn htpasswd_line(user: &str, pass: &str) -> String {
    let o = Command::new("htpasswd")
        .args(["-nbB", user, pass])
        .output()
        .expect("run htpasswd (apache2-utils)");
    assert!(o.status.success(), "htpasswd -nbB {user}");
    format!("{}\n", String::from_utf8(o.stdout).unwrap().trim())
}

const CONFIG: &str = r#"
auth = "htpasswd"
htpasswd = "htpasswd"
realm = "berth test"

[[access]]
repository = "*"
user = "alice"
actions = ["pull", "push", "delete"]

[[access]]
repository = "team/*"
user = "bob"
actions = ["pull"]

[[access]]
repository = "bob/*"
user = "bob"
actions = ["pull", "push"]

[[access]]
repository = "public/*"
user = "anonymous"
actions = ["pull"]
"#;

fn htpasswd_registry() -> BerthRegistry {
    let pw = htpasswd_line("alice", "alice-pw") + &htpasswd_line("bob", "bob-pw");
    BerthRegistry::start_with_config(Some(CONFIG), &[("htpasswd", pw.as_bytes())])
}

/// Base64 by hand (the tests crate has no base64 dependency): standard with
/// padding, or URL-safe without (`url`).
fn b64(data: &[u8], url: bool) -> String {
    let t: &[u8] = if url {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    } else {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    };
    let mut out = String::new();
    for c in data.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= c.len() {
                out.push(t[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else if !url {
                out.push('=');
            }
        }
    }
    out
}

fn basic(user: &str, pass: &str) -> String {
    format!("Basic {}", b64(format!("{user}:{pass}").as_bytes(), false))
}

fn code(r: &HttpResponse) -> String {
    r.json()["errors"][0]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// POST + PUT of `data` to `repo` as `auth`: the final response.
fn upload(reg: &BerthRegistry, auth: &str, repo: &str, data: &[u8]) -> HttpResponse {
    let h = [("Authorization", auth)];
    let r = reg.req("POST", &format!("/v2/{repo}/blobs/uploads/"), &h, b"");
    assert_eq!(r.status, 202, "{}", r.text());
    let loc = r.header("location").unwrap().to_string();
    reg.req(
        "PUT",
        &format!("{loc}?digest={}", digest_of(data)),
        &h,
        data,
    )
}

/// A tiny image (config blob + manifest) at `repo:1`, pushed as `auth`.
fn put_image(reg: &BerthRegistry, auth: &str, repo: &str) -> String {
    let config = format!(r#"{{"repo":"{repo}"}}"#);
    assert_eq!(upload(reg, auth, repo, config.as_bytes()).status, 201);
    let m = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": digest_of(config.as_bytes()), "size": config.len()},
        "layers": []
    })
    .to_string();
    let r = reg.req(
        "PUT",
        &format!("/v2/{repo}/manifests/1"),
        &[
            ("Authorization", auth),
            ("Content-Type", "application/vnd.oci.image.manifest.v1+json"),
        ],
        m.as_bytes(),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    digest_of(config.as_bytes())
}

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

#[test]
fn berth_login_push_and_pull_with_htpasswd_and_permissions() {
    let reg = htpasswd_registry();
    let s = Store::new();
    let r = reg.image_ref("team/app:1");
    let tar = berth_integration::containers::rootfs_tar()
        .display()
        .to_string();
    let id = s
        .ok(&["import", "--change", r#"CMD ["sh"]"#, &tar, &r])
        .trim()
        .to_string();
    let err = fails(&s, &["push", &r]);
    assert!(err.contains("authentication required"), "{err}");
    let err = fails(&s, &["login", "-u", "alice", "-p", "wrong", &reg.addr]);
    assert!(!err.is_empty());
    s.ok(&["login", "-u", "alice", "-p", "alice-pw", &reg.addr]);
    let out = s.ok(&["push", &r]);
    assert!(out.contains(": Pushed"), "{out}");
    // public/* is open to anonymous pulls: a store that never logged in.
    let public = reg.image_ref("public/app:1");
    s.ok(&["tag", &r, &public]);
    s.ok(&["push", &public]);
    let anon = Store::new();
    anon.ok(&["pull", &public]);
    assert_eq!(anon.inspect(&public)["Id"], id);

    // bob may pull team/*, not push there.
    let s2 = Store::new();
    let err = fails(&s2, &["pull", &r]);
    assert!(err.contains("authentication required"), "{err}");
    s2.ok(&["login", "-u", "bob", "-p", "bob-pw", &reg.addr]);
    s2.ok(&["pull", &r]);
    assert_eq!(s2.inspect(&r)["Id"], id);
    let r2 = reg.image_ref("team/bobs:1");
    s2.ok(&["tag", &r, &r2]);
    let err = fails(&s2, &["push", &r2]);
    assert!(
        err.contains("access denied by") && err.contains("\"bob\" may not push team/bobs"),
        "{err}"
    );
    // bob/* is his: the push works (the layer is mounted from team/app,
    // which he may pull).
    let r3 = reg.image_ref("bob/app:1");
    s2.ok(&["tag", &r, &r3]);
    s2.ok(&["push", &r3]);
    let got = reg.req(
        "GET",
        "/v2/bob/app/manifests/1",
        &[("Authorization", &basic("bob", "bob-pw"))],
        b"",
    );
    assert_eq!(got.status, 200, "{}", got.text());
}

#[test]
fn skopeo_with_creds_pushes_and_is_refused_without() {
    let reg = htpasswd_registry();
    let dest = format!("docker://{}", reg.image_ref("team/sk:1"));
    let src = busybox().reference("latest");
    let o = images::skopeo(&["copy", "--dest-tls-verify=false", &src, &dest]);
    assert!(!o.status.success());
    let o = images::skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        "alice:alice-pw",
        &src,
        &dest,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = images::skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--creds",
        "bob:bob-pw",
        &dest,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn raw_requests_get_401_with_a_basic_challenge_and_403_denied() {
    let reg = htpasswd_registry();
    let r = reg.req("GET", "/v2/", &[], b"");
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some(r#"Basic realm="berth test""#)
    );
    assert_eq!(code(&r), "UNAUTHORIZED");
    assert!(r.header("docker-distribution-api-version").is_some());
    let alice = basic("alice", "alice-pw");
    assert_eq!(
        reg.req("GET", "/v2/", &[("Authorization", &alice)], b"")
            .status,
        200
    );
    let wrong = basic("alice", "bob-pw");
    let r = reg.req("GET", "/v2/", &[("Authorization", &wrong)], b"");
    assert_eq!((r.status, code(&r)), (401, "UNAUTHORIZED".to_string()));
    let r = reg.req("GET", "/v2/team/x/tags/list", &[], b"");
    assert_eq!(r.status, 401);
    // Anonymous may pull public/*: past auth, to the 404 of an empty repo.
    let r = reg.req("GET", "/v2/public/x/tags/list", &[], b"");
    assert_eq!((r.status, code(&r)), (404, "NAME_UNKNOWN".to_string()));
    // bob: pull-only on team/*.
    let bob = basic("bob", "bob-pw");
    let h = [("Authorization", bob.as_str())];
    let r = reg.req("POST", "/v2/team/x/blobs/uploads/", &h, b"");
    assert_eq!((r.status, code(&r)), (403, "DENIED".to_string()));
    assert!(r.json()["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("bob"));
    let d = put_image(&reg, &alice, "team/x");
    let r = reg.req("DELETE", "/v2/team/x/manifests/1", &h, b"");
    assert_eq!((r.status, code(&r)), (403, "DENIED".to_string()));
    assert_eq!(
        reg.req("GET", &format!("/v2/team/x/blobs/{d}"), &h, b"")
            .status,
        200
    );
    // The health endpoint needs no auth.
    let r = reg.req("GET", "/health", &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "ok");
}

#[test]
fn catalog_lists_only_what_the_user_may_pull_and_mount_needs_pull_on_the_source() {
    let reg = htpasswd_registry();
    let alice = basic("alice", "alice-pw");
    let bob = basic("bob", "bob-pw");
    put_image(&reg, &alice, "team/a");
    put_image(&reg, &alice, "public/b");
    let secret = put_image(&reg, &alice, "private/c");
    let cat = |auth: Option<&str>| {
        let h: Vec<(&str, &str)> = auth.map(|a| ("Authorization", a)).into_iter().collect();
        let r = reg.req("GET", "/v2/_catalog", &h, b"");
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["repositories"].clone()
    };
    assert_eq!(
        cat(Some(&alice)),
        json!(["private/c", "public/b", "team/a"])
    );
    assert_eq!(cat(Some(&bob)), json!(["team/a"]));
    assert_eq!(cat(None), json!(["public/b"]));
    // A mount from a repository bob may not pull is a plain upload (202),
    // from one he may pull it is a mount (201).
    let h = [("Authorization", bob.as_str())];
    let r = reg.req(
        "POST",
        &format!("/v2/bob/x/blobs/uploads/?mount={secret}&from=private/c"),
        &h,
        b"",
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let r = reg.req("GET", &format!("/v2/bob/x/blobs/{secret}"), &h, b"");
    assert_eq!(r.status, 404);
    let team = digest_of(br#"{"repo":"team/a"}"#);
    let r = reg.req(
        "POST",
        &format!("/v2/bob/x/blobs/uploads/?mount={team}&from=team/a"),
        &h,
        b"",
    );
    assert_eq!(r.status, 201, "{}", r.text());
}

#[test]
fn health_answers_without_auth_and_a_bad_config_is_refused() {
    let reg = BerthRegistry::start();
    let r = reg.req("GET", "/health", &[], b"");
    assert_eq!((r.status, r.json()["status"].clone()), (200, json!("ok")));
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "auth = \"htpasswd\"\nhtpasswd = \"missing\"\n").unwrap();
    let s = Store::new();
    let o = s
        .cmd(&["registry", "serve", "--addr", "127.0.0.1:1", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("htpasswd file") && err.contains("missing"),
        "{err}"
    );
}

const TOKEN_CONFIG: &str = r#"
auth = "token"
htpasswd = "htpasswd"

[token]
service = "berth-test"
issuer = "berth-test-issuer"
trusted_keys = ["external.pub"]

[[access]]
repository = "*"
user = "alice"
actions = ["pull", "push", "delete"]

[[access]]
repository = "team/*"
user = "bob"
actions = ["pull"]

[[access]]
repository = "public/*"
user = "anonymous"
actions = ["pull"]
"#;

/// A token-mode registry, and the directory of the external issuer's
/// private key (`external.pem`, made by openssl).
fn token_registry() -> (BerthRegistry, tempfile::TempDir) {
    let keys = tempfile::tempdir().unwrap();
    let pem = keys.path().join("external.pem");
    let pubk = keys.path().join("external.pub");
    let ok = |args: &[&str]| {
        let o = Command::new("openssl").args(args).output().unwrap();
        assert!(o.status.success(), "openssl {args:?}: {o:?}");
    };
    ok(&[
        "genpkey",
        "-algorithm",
        "ed25519",
        "-out",
        pem.to_str().unwrap(),
    ]);
    ok(&[
        "pkey",
        "-in",
        pem.to_str().unwrap(),
        "-pubout",
        "-out",
        pubk.to_str().unwrap(),
    ]);
    let pw = htpasswd_line("alice", "alice-pw") + &htpasswd_line("bob", "bob-pw");
    let reg = BerthRegistry::start_with_config(
        Some(TOKEN_CONFIG),
        &[
            ("htpasswd", pw.as_bytes()),
            ("external.pub", &std::fs::read(&pubk).unwrap()),
        ],
    );
    (reg, keys)
}

/// An EdDSA JWT of `claims` signed by openssl with `keys/external.pem`.
fn external_token(keys: &tempfile::TempDir, claims: &serde_json::Value) -> String {
    let input = format!(
        "{}.{}",
        b64(br#"{"alg":"EdDSA","typ":"JWT"}"#, true),
        b64(claims.to_string().as_bytes(), true)
    );
    let data = keys.path().join("input");
    std::fs::write(&data, &input).unwrap();
    let o = Command::new("openssl")
        .args(["pkeyutl", "-sign", "-rawin", "-inkey"])
        .arg(keys.path().join("external.pem"))
        .arg("-in")
        .arg(&data)
        .output()
        .unwrap();
    assert!(o.status.success(), "openssl pkeyutl: {o:?}");
    format!("{input}.{}", b64(&o.stdout, true))
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `GET /token` as `auth` (Basic) for `scope`: the token.
fn get_token(reg: &BerthRegistry, auth: Option<&str>, scope: &str) -> String {
    let h: Vec<(&str, &str)> = auth.map(|a| ("Authorization", a)).into_iter().collect();
    let r = reg.req(
        "GET",
        &format!("/token?service=berth-test&scope={scope}"),
        &h,
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["token"], v["access_token"]);
    assert!(v["expires_in"].as_u64().unwrap() > 0);
    assert!(v["issued_at"].as_str().unwrap().ends_with('Z'));
    v["token"].as_str().unwrap().to_string()
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

#[test]
fn berth_and_skopeo_push_and_pull_through_the_token_flow() {
    let (reg, _keys) = token_registry();
    let s = Store::new();
    let r = reg.image_ref("team/app:1");
    let tar = berth_integration::containers::rootfs_tar()
        .display()
        .to_string();
    let id = s
        .ok(&["import", "--change", r#"CMD ["sh"]"#, &tar, &r])
        .trim()
        .to_string();
    let err = fails(&s, &["push", &r]);
    assert!(err.contains("authentication required"), "{err}");
    s.ok(&["login", "-u", "alice", "-p", "alice-pw", &reg.addr]);
    let out = s.ok(&["push", &r]);
    assert!(out.contains(": Pushed"), "{out}");
    // An anonymous token is enough for public/*.
    let public = reg.image_ref("public/app:1");
    s.ok(&["tag", &r, &public]);
    s.ok(&["push", &public]);
    let anon = Store::new();
    anon.ok(&["pull", &public]);
    assert_eq!(anon.inspect(&public)["Id"], id);
    let err = fails(&anon, &["pull", &r]);
    assert!(err.contains("authentication required"), "{err}");
    let s2 = Store::new();
    s2.ok(&["login", "-u", "bob", "-p", "bob-pw", &reg.addr]);
    s2.ok(&["pull", &r]);
    assert_eq!(s2.inspect(&r)["Id"], id);
    let r2 = reg.image_ref("team/bobs:1");
    s2.ok(&["tag", &r, &r2]);
    let err = fails(&s2, &["push", &r2]);
    assert!(
        err.contains("access denied by") && err.contains("\"bob\" may not push team/bobs"),
        "{err}"
    );

    let dest = format!("docker://{}", reg.image_ref("team/sk:1"));
    let src = busybox().reference("latest");
    let o = images::skopeo(&["copy", "--dest-tls-verify=false", &src, &dest]);
    assert!(!o.status.success());
    let o = images::skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        "alice:alice-pw",
        &src,
        &dest,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = images::skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--creds",
        "bob:bob-pw",
        &dest,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn tokens_grant_only_what_the_rules_allow_and_bad_ones_are_401() {
    let (mut reg, _keys) = token_registry();
    let r = reg.req("GET", "/v2/", &[], b"");
    assert_eq!((r.status, code(&r)), (401, "UNAUTHORIZED".to_string()));
    let realm = format!(
        r#"Bearer realm="http://{}/token",service="berth-test""#,
        reg.addr
    );
    assert_eq!(r.header("www-authenticate"), Some(realm.as_str()));
    let r = reg.req("GET", "/v2/team/x/manifests/1", &[], b"");
    assert_eq!(
        r.header("www-authenticate"),
        Some(format!(r#"{realm},scope="repository:team/x:pull""#).as_str())
    );
    // Wrong password at the token endpoint.
    let r = reg.req(
        "GET",
        "/token?service=berth-test&scope=repository:team/x:pull",
        &[("Authorization", &basic("bob", "nope"))],
        b"",
    );
    assert_eq!(r.status, 401);

    let alice = get_token(
        &reg,
        Some(&basic("alice", "alice-pw")),
        "repository:team/x:pull,push",
    );
    let a = bearer(&alice);
    assert_eq!(
        reg.req("GET", "/v2/", &[("Authorization", &a)], b"").status,
        200
    );
    let d = put_image(&reg, &a, "team/x");
    // bob asks for pull and push on team/x: he gets pull only.
    let bob = get_token(
        &reg,
        Some(&basic("bob", "bob-pw")),
        "repository%3Ateam%2Fx%3Apull%2Cpush",
    );
    let b = bearer(&bob);
    let h = [("Authorization", b.as_str())];
    assert_eq!(
        reg.req("GET", &format!("/v2/team/x/blobs/{d}"), &h, b"")
            .status,
        200
    );
    // bob may never push there: 403, not a request for another token.
    let r = reg.req("POST", "/v2/team/x/blobs/uploads/", &h, b"");
    assert_eq!((r.status, code(&r)), (403, "DENIED".to_string()));
    // alice may push, but this token of hers is for pull only: 401 asking
    // for the scope she needs.
    let pull_only = get_token(
        &reg,
        Some(&basic("alice", "alice-pw")),
        "repository:team/x:pull",
    );
    let r = reg.req(
        "POST",
        "/v2/team/x/blobs/uploads/",
        &[("Authorization", &bearer(&pull_only))],
        b"",
    );
    assert_eq!(r.status, 401);
    assert!(
        r.header("www-authenticate")
            .unwrap()
            .contains(r#"scope="repository:team/x:pull,push",error="insufficient_scope""#),
        "{:?}",
        r.header("www-authenticate")
    );
    // A token for team/x is no good on team/y.
    let r = reg.req("GET", "/v2/team/y/tags/list", &h, b"");
    assert_eq!(r.status, 401);
    // Anonymous: a token, but only for public/*.
    let anon = get_token(&reg, None, "repository:team/x:pull");
    let r = reg.req(
        "GET",
        &format!("/v2/team/x/blobs/{d}"),
        &[("Authorization", &bearer(&anon))],
        b"",
    );
    assert_eq!(r.status, 401);
    // Tampered: bob's signature on a payload granting push.
    let (head, rest) = bob.split_once('.').unwrap();
    let sig = rest.rsplit_once('.').unwrap().1;
    let forged_claims = json!({"iss": "berth-test-issuer", "sub": "bob", "aud": "berth-test",
        "exp": now() + 300, "nbf": 0, "iat": now(), "jti": "x",
        "access": [{"type": "repository", "name": "team/x", "actions": ["pull", "push"]}]});
    let forged = format!(
        "{head}.{}.{sig}",
        b64(forged_claims.to_string().as_bytes(), true)
    );
    let r = reg.req(
        "POST",
        "/v2/team/x/blobs/uploads/",
        &[("Authorization", &bearer(&forged))],
        b"",
    );
    assert_eq!(r.status, 401);
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .contains(r#"error="invalid_token""#));
    assert!(r.text().contains("signature"), "{}", r.text());
    // The catalog as seen by each user.
    put_image(
        &reg,
        &bearer(&get_token(
            &reg,
            Some(&basic("alice", "alice-pw")),
            "repository:private/c:push",
        )),
        "private/c",
    );
    let cat = |t: &str| {
        reg.req("GET", "/v2/_catalog", &[("Authorization", &bearer(t))], b"")
            .json()["repositories"]
            .clone()
    };
    assert_eq!(cat(&alice), json!(["private/c", "team/x"]));
    assert_eq!(cat(&bob), json!(["team/x"]));
    // No auth on /health.
    assert_eq!(reg.req("GET", "/health", &[], b"").status, 200);
    // The signing key was generated under the root, private; it is kept, so
    // tokens outlive a restart.
    use std::os::unix::fs::PermissionsExt;
    let key = reg.root().join("token-key.pk8");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{}", key.display());
    reg.restart();
    assert_eq!(
        reg.req("GET", "/v2/", &[("Authorization", &a)], b"").status,
        200
    );
}

#[test]
fn an_external_issuers_tokens_are_trusted_unless_expired_or_for_another_service() {
    let (reg, keys) = token_registry();
    let alice = get_token(
        &reg,
        Some(&basic("alice", "alice-pw")),
        "repository:ext/x:push",
    );
    put_image(&reg, &bearer(&alice), "ext/x");
    let claims = |aud: &str, exp: u64, repo: &str| {
        json!({"iss": "berth-test-issuer", "sub": "carol", "aud": aud, "exp": exp,
            "nbf": 0, "iat": now(), "jti": "ext",
            "access": [{"type": "repository", "name": repo, "actions": ["pull"]}]})
    };
    let get = |t: &str| {
        reg.req(
            "GET",
            "/v2/ext/x/manifests/1",
            &[("Authorization", &bearer(t))],
            b"",
        )
    };
    let ok = external_token(&keys, &claims("berth-test", now() + 300, "ext/x"));
    assert_eq!(get(&ok).status, 200, "{}", get(&ok).text());
    let expired = external_token(&keys, &claims("berth-test", now() - 10, "ext/x"));
    let r = get(&expired);
    assert_eq!(r.status, 401);
    assert!(r.text().contains("expired"), "{}", r.text());
    let other = external_token(&keys, &claims("another-registry", now() + 300, "ext/x"));
    assert_eq!(get(&other).status, 401);
    let repo_a = external_token(&keys, &claims("berth-test", now() + 300, "ext/a"));
    assert_eq!(get(&repo_a).status, 401);
}
