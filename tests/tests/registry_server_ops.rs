//! `berth registry serve` in operation: the JSON access log on stderr (and
//! that no credential or token reaches it), and SIGTERM during an upload.

use berth_integration::berth_registry::BerthRegistry;
use berth_integration::engine::busybox;
use berth_integration::images::{self, sha256_hex};
use serde_json::Value;
use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

/// `user:$2y$…` as `htpasswd -B` writes it.
fn htpasswd_line(user: &str, pass: &str) -> String {
    let o = Command::new("htpasswd")
        .args(["-nbB", user, pass])
        .output()
        .expect("run htpasswd (apache2-utils)");
    assert!(o.status.success(), "htpasswd -nbB {user}");
    format!("{}\n", String::from_utf8(o.stdout).unwrap().trim())
}

/// Standard base64 with padding (as HTTP Basic uses).
fn b64(data: &[u8]) -> String {
    let t = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= c.len() {
                out.push(t[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The access log lines of the server's stderr.
fn access_lines(reg: &BerthRegistry) -> Vec<Value> {
    reg.log()
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn find<'a>(lines: &'a [Value], method: &str, path_end: &str) -> Vec<&'a Value> {
    lines
        .iter()
        .filter(|l| l["method"] == method && l["path"].as_str().unwrap().ends_with(path_end))
        .collect()
}

const SECRETS_CONFIG: &str = r#"
auth = "htpasswd"
htpasswd = "htpasswd"

[[access]]
repository = "ops/*"
user = "alice"
actions = ["pull", "push"]
"#;

#[test]
fn a_push_is_logged_line_by_line_with_status_user_and_repository_and_no_secrets() {
    let pw = htpasswd_line("alice", "alice-secret-pw");
    let reg =
        BerthRegistry::start_with_config(Some(SECRETS_CONFIG), &[("htpasswd", pw.as_bytes())]);
    let dest = format!("docker://{}/ops/busybox:1", reg.addr);
    let o = images::skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        "alice:alice-secret-pw",
        &busybox().reference("latest"),
        &dest,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let lines = access_lines(&reg);
    // skopeo asks /v2/ without credentials first: 401, no user.
    let base = find(&lines, "GET", "/v2/");
    assert!(
        base.iter()
            .any(|l| l["status"] == 401 && l.get("user").is_none()),
        "{base:?}"
    );
    let manifest = find(&lines, "PUT", "/ops/busybox/manifests/1");
    assert_eq!(manifest.len(), 1, "{lines:?}");
    let m = manifest[0];
    assert_eq!(m["status"], 201, "{m}");
    assert_eq!(m["user"], "alice", "{m}");
    assert_eq!(m["repository"], "ops/busybox", "{m}");
    assert!(
        m["remote"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{m}"
    );
    assert!(m["duration_ms"].is_u64() && m["bytes"].is_u64(), "{m}");
    let starts = find(&lines, "POST", "/ops/busybox/blobs/uploads/");
    assert!(
        !starts.is_empty() && starts.iter().all(|l| l["status"] == 202),
        "{starts:?}"
    );
    let layers = busybox().manifest("latest")["layers"]
        .as_array()
        .unwrap()
        .len();
    let finished: Vec<_> = lines
        .iter()
        .filter(|l| l["method"] == "PUT" && l["path"].as_str().unwrap().contains("/blobs/uploads/"))
        .collect();
    // Every layer and the config were uploaded, each answered 201.
    assert_eq!(finished.len(), layers + 1, "{finished:?}");
    assert!(finished.iter().all(|l| l["status"] == 201), "{finished:?}");
    // A blob GET of what was pushed: its size.
    let cfg = busybox().manifest("latest")["config"].clone();
    let d = cfg["digest"].as_str().unwrap();
    let r = reg.req(
        "GET",
        &format!("/v2/ops/busybox/blobs/{d}"),
        &[(
            "Authorization",
            &format!("Basic {}", b64(b"alice:alice-secret-pw")),
        )],
        b"",
    );
    assert_eq!(r.status, 200);
    let lines = access_lines(&reg);
    let get = find(&lines, "GET", d);
    assert_eq!(get[0]["bytes"], cfg["size"], "{get:?}");

    let log = reg.log();
    for secret in [
        "alice-secret-pw",
        &b64(b"alice:alice-secret-pw"),
        "Basic ",
        "uthorization",
    ] {
        assert!(
            !log.contains(secret),
            "{secret:?} in the access log:\n{log}"
        );
    }
}

const TOKEN_CONFIG: &str = r#"
auth = "token"
htpasswd = "htpasswd"

[[access]]
repository = "ops/*"
user = "alice"
actions = ["pull", "push"]
"#;

#[test]
fn tokens_never_reach_the_access_log() {
    let pw = htpasswd_line("alice", "alice-secret-pw");
    let reg = BerthRegistry::start_with_config(Some(TOKEN_CONFIG), &[("htpasswd", pw.as_bytes())]);
    let basic = format!("Basic {}", b64(b"alice:alice-secret-pw"));
    let r = reg.req(
        "GET",
        "/token?service=berth-registry&scope=repository:ops/app:pull,push",
        &[("Authorization", &basic)],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let token = r.json()["token"].as_str().unwrap().to_string();
    let bearer = format!("Bearer {token}");
    let r = reg.req(
        "GET",
        "/v2/ops/app/tags/list",
        &[("Authorization", &bearer)],
        b"",
    );
    assert_eq!(r.status, 404, "{}", r.text());
    let lines = access_lines(&reg);
    let tags = find(&lines, "GET", "/v2/ops/app/tags/list");
    assert_eq!(tags[0]["status"], 404);
    assert_eq!(tags[0]["user"], "alice", "{tags:?}");
    let issued = find(&lines, "GET", "/token");
    assert_eq!(issued[0]["status"], 200, "{issued:?}");
    let log = reg.log();
    // Neither the token, nor a piece of it, nor the password or the query.
    let sig = token.rsplit('.').next().unwrap();
    for secret in [token.as_str(), sig, "alice-secret-pw", "Bearer", "scope="] {
        assert!(
            !log.contains(secret),
            "{secret:?} in the access log:\n{log}"
        );
    }
}

#[test]
fn access_log_false_turns_the_log_off() {
    let reg = BerthRegistry::start_with_config(Some("access_log = false\n"), &[]);
    let r = reg.req("GET", "/v2/_catalog", &[], b"");
    assert_eq!(r.status, 200);
    assert!(access_lines(&reg).is_empty(), "{}", reg.log());
    assert!(!reg.log().contains("_catalog"), "{}", reg.log());
}

/// A PATCH whose body is half sent when the server gets SIGTERM: the
/// request still completes (202), the server then exits 0, and after a
/// restart the upload resumes where the PATCH left it and finishes.
#[test]
fn sigterm_lets_an_in_flight_chunk_finish_and_the_upload_resume() {
    let mut reg = BerthRegistry::start();
    let data: Vec<u8> = (0..65536u32).map(|i| (i % 251) as u8).collect();
    let d = format!("sha256:{}", sha256_hex(&data));
    let r = reg.req("POST", "/v2/ops/term/blobs/uploads/", &[], b"");
    assert_eq!(r.status, 202);
    let loc = r.header("location").unwrap().to_string();

    let mut s = std::net::TcpStream::connect(&reg.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let head = format!(
        "PATCH {loc} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/octet-stream\r\n\
         Content-Range: 0-32767\r\nContent-Length: 32768\r\nConnection: close\r\n\r\n",
        reg.addr
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&data[..16384]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let pid = reg.pid().unwrap() as i32;
    // SAFETY: kill(2) on the server we started.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    std::thread::sleep(Duration::from_millis(500));
    // Still up: a request is in flight.
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    s.write_all(&data[16384..32768]).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 202"), "{resp}\n{}", reg.log());
    assert!(resp.to_lowercase().contains("range: 0-32767"), "{resp}");

    // It exits by itself (0), then comes back on the same root.
    reg.restart();
    let r = reg.req("GET", &loc, &[], b"");
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(r.header("range"), Some("0-32767"));
    let r = reg.req(
        "PATCH",
        &loc,
        &[("Content-Range", "32768-65535")],
        &data[32768..],
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let r = reg.req("PUT", &format!("{loc}?digest={d}"), &[], b"");
    assert_eq!(r.status, 201, "{}", r.text());
    let r = reg.req("GET", &format!("/v2/ops/term/blobs/{d}"), &[], b"");
    assert_eq!(r.body, data);
}
