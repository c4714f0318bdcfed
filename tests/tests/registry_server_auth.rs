//! `berth registry serve --config FILE`: htpasswd (Basic) auth and
//! per-repository permissions, with berth login/push/pull, skopeo and raw
//! HTTP requests; the health endpoint.

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

fn basic(user: &str, pass: &str) -> String {
    use std::io::Write;
    // base64 by hand: the tests crate has no base64 dependency.
    let mut out = Vec::new();
    let raw = format!("{user}:{pass}");
    let t = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for c in raw.as_bytes().chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= c.len() {
                out.push(t[(n >> (18 - 6 * i) & 63) as usize]);
            } else {
                out.push(b'=');
            }
        }
    }
    let mut s = Vec::new();
    write!(s, "Basic {}", String::from_utf8(out).unwrap()).unwrap();
    String::from_utf8(s).unwrap()
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
