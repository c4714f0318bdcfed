//! `berth registry serve` over https: a certificate and key from
//! `--tls-cert/--tls-key` or the config's `tls_cert`/`tls_key`; curl,
//! skopeo and berth as clients; plain http to the https port is refused.

use berth_integration::berth_registry::BerthRegistry;
use berth_integration::engine::{busybox, Store};
use berth_integration::images;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A self-signed certificate for 127.0.0.1 (`cert.pem`, also as the CA
/// `ca.crt` of a `--cert-dir`) and its key (`key.pem`) in a new directory.
fn self_signed() -> tempfile::TempDir {
    let ip = "127.0.0.1";
    let dir = tempfile::Builder::new()
        .prefix("berth-tls-")
        .tempdir()
        .unwrap();
    let o = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args([
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            &format!("/CN={ip}"),
        ])
        .args(["-addext", &format!("subjectAltName=IP:{ip}"), "-days", "2"])
        .arg("-keyout")
        .arg(dir.path().join("key.pem"))
        .arg("-out")
        .arg(dir.path().join("cert.pem"))
        .output()
        .expect("run openssl");
    assert!(o.status.success(), "openssl req: {}", text(&o));
    let certs = dir.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    std::fs::copy(dir.path().join("cert.pem"), certs.join("ca.crt")).unwrap();
    dir
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn path(p: PathBuf) -> String {
    p.display().to_string()
}

fn curl(args: &[&str]) -> Output {
    Command::new("curl").args(args).output().expect("run curl")
}

fn start_tls(tls: &Path) -> BerthRegistry {
    let (cert, key) = (path(tls.join("cert.pem")), path(tls.join("key.pem")));
    BerthRegistry::start_with_args(None, &[], &["--tls-cert", &cert, "--tls-key", &key])
}

#[test]
fn curl_speaks_https_with_the_ca_and_plain_http_gets_a_clear_400() {
    let tls = self_signed();
    let reg = start_tls(tls.path());
    let ca = path(tls.path().join("cert.pem"));
    let url = format!("https://{}/v2/", reg.addr);
    let o = curl(&["-sS", "-i", "--cacert", &ca, &url]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(
        out.to_lowercase()
            .contains("docker-distribution-api-version: registry/2.0"),
        "{out}"
    );
    // Without the CA, curl refuses the server's certificate.
    let o = curl(&["-sS", &url]);
    assert!(!o.status.success(), "{}", text(&o));
    // Plain http to the https port: a 400 that says why, and the server
    // goes on serving https.
    let o = curl(&["-sS", "-i", &format!("http://{}/v2/", reg.addr)]);
    let out = text(&o);
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    assert!(out.contains("http request to an https server"), "{out}");
    let o = curl(&["-sS", "--cacert", &ca, &url]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "{}", "{}", text(&o));
    assert!(reg.log().contains("on https://"), "{}", reg.log());
}

#[test]
fn skopeo_pushes_and_berth_pulls_over_https() {
    let tls = self_signed();
    let reg = start_tls(tls.path());
    let certs = path(tls.path().join("certs"));
    let dest = format!("docker://{}/tls/busybox:1", reg.addr);
    let o = images::skopeo(&[
        "copy",
        "--dest-cert-dir",
        &certs,
        &busybox().reference("latest"),
        &dest,
    ]);
    assert!(o.status.success(), "skopeo copy over https: {}", text(&o));
    let o = images::skopeo(&["inspect", "--raw", "--cert-dir", &certs, &dest]);
    assert!(
        o.status.success(),
        "skopeo inspect over https: {}",
        text(&o)
    );
    let raw: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(raw["layers"].is_array(), "{raw}");
    // Without the CA skopeo refuses the certificate.
    let o = images::skopeo(&["inspect", "--raw", &dest]);
    assert!(!o.status.success(), "{}", text(&o));

    // berth trusts only the public roots, but like Docker it takes a
    // loopback registry as insecure (any certificate, or plain http): it
    // pulls over https with and without `--tls-verify=false`.
    let r = reg.image_ref("tls/busybox:1");
    let s = Store::new();
    s.ok(&["pull", &r]);
    assert_eq!(s.ok(&["run", "--rm", &r, "echo", "ok"]), "ok\n");
    let s2 = Store::new();
    s2.ok(&["pull", "--tls-verify=false", &r]);
    // berth's requests are in the access log (the port speaks only https).
    assert!(
        reg.log()
            .contains("\"path\":\"/v2/tls/busybox/manifests/1\""),
        "{}",
        reg.log()
    );
    // skopeo without the CA broke off its handshake: the server says so.
    assert!(
        reg.log().contains("tls handshake with 127.0.0.1:"),
        "{}",
        reg.log()
    );
}

#[test]
fn config_tls_keys_serve_https_and_make_the_token_realm_https() {
    let tls = self_signed();
    let config = format!(
        "auth = \"token\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
        tls.path().join("cert.pem").display(),
        tls.path().join("key.pem").display()
    );
    let reg = BerthRegistry::start_with_config(Some(&config), &[]);
    let ca = path(tls.path().join("cert.pem"));
    let o = curl(&[
        "-sS",
        "-i",
        "--cacert",
        &ca,
        &format!("https://{}/v2/", reg.addr),
    ]);
    let out = text(&o);
    assert!(out.starts_with("HTTP/1.1 401"), "{out}");
    let realm = format!("realm=\"https://{}/token\"", reg.addr);
    assert!(out.contains(&realm), "want {realm} in {out}");
}

#[test]
fn a_bad_certificate_file_stops_the_server_with_its_name() {
    let tls = self_signed();
    let bad = tls.path().join("bad.pem");
    std::fs::write(&bad, "no pem here\n").unwrap();
    let root = tempfile::tempdir().unwrap();
    let o = Command::new(berth_integration::engine::berth_bin())
        .arg("--root")
        .arg(root.path())
        .args(["registry", "serve", "--addr", "127.0.0.1:1", "--tls-cert"])
        .arg(&bad)
        .arg("--tls-key")
        .arg(tls.path().join("key.pem"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = text(&o);
    assert!(
        err.contains("bad.pem") && err.contains("no CERTIFICATE"),
        "{err}"
    );
    // --tls-cert without --tls-key is a usage error.
    let o = Command::new(berth_integration::engine::berth_bin())
        .args(["registry", "serve", "--tls-cert"])
        .arg(tls.path().join("cert.pem"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(text(&o).contains("--tls-key"), "{}", text(&o));
}

fn openssl(args: &[&str], dir: &Path) {
    let o = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(o.status.success(), "openssl {args:?}: {}", text(&o));
}

/// A private CA (`ca.pem`) and a server certificate it signed for `ip`
/// (`cert.pem`, `key.pem`), in a new directory.
fn ca_signed_for(ip: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("berth-ca-")
        .tempdir()
        .unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend(["-subj", "/CN=berth test CA", "-days", "2"]);
    ca.extend(["-keyout", "ca.key", "-out", "ca.pem"]);
    openssl(&ca, dir.path());
    let subj = format!("/CN={ip}");
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend(["-subj", &subj, "-keyout", "key.pem", "-out", "cert.csr"]);
    openssl(&csr, dir.path());
    std::fs::write(dir.path().join("ext"), format!("subjectAltName=IP:{ip}\n")).unwrap();
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "cert.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext",
            "-out",
            "cert.pem",
        ],
        dir.path(),
    );
    dir
}

/// A non-loopback address of a network this test makes itself: a veth pair
/// (no dummy module on this kernel) with one address from the benchmark
/// range (198.18.0.0/15) on one end, removed on drop. No traffic leaves the
/// machine.
struct DummyAddr {
    link: String,
    ip: String,
}

impl DummyAddr {
    fn new() -> DummyAddr {
        let n = std::process::id() % 250 + 1;
        let d = DummyAddr {
            link: format!("berthtls{n}"),
            ip: format!("198.18.{}.1", n),
        };
        let ip = |args: &[&str]| {
            let st = Command::new("ip").args(args).status().expect("run ip");
            assert!(st.success(), "ip {args:?} failed");
        };
        let _ = Command::new("ip").args(["link", "del", &d.link]).status();
        let peer = format!("{}p", d.link);
        ip(&[
            "link", "add", &d.link, "type", "veth", "peer", "name", &peer,
        ]);
        ip(&["addr", "add", &format!("{}/32", d.ip), "dev", &d.link]);
        ip(&["link", "set", &peer, "up"]);
        ip(&["link", "set", &d.link, "up"]);
        d
    }
}

impl Drop for DummyAddr {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.link])
            .status();
    }
}

/// berth verifies a non-loopback registry's certificate: a private CA is
/// refused until it sits in `certs.d/<host:port>/ca.crt` beside berth's
/// config file (Docker's convention), and only for that host.
#[test]
fn berth_trusts_a_private_ca_from_certs_d_for_that_host_only() {
    let dummy = DummyAddr::new();
    let ip = dummy.ip.clone();
    let tls = ca_signed_for(&ip);
    let (cert, key) = (
        path(tls.path().join("cert.pem")),
        path(tls.path().join("key.pem")),
    );
    let reg = BerthRegistry::start_on(&ip, None, &[], &["--tls-cert", &cert, "--tls-key", &key]);
    let ca = tls.path().join("ca.pem");
    let certs_dir = tls.path().join("certs");
    std::fs::create_dir(&certs_dir).unwrap();
    std::fs::copy(&ca, certs_dir.join("ca.crt")).unwrap();
    let certs = path(certs_dir);
    let dest = format!("docker://{}/ca/busybox:1", reg.addr);
    let o = images::skopeo(&[
        "copy",
        "--dest-cert-dir",
        &certs,
        &busybox().reference("latest"),
        &dest,
    ]);
    assert!(o.status.success(), "skopeo copy over https: {}", text(&o));
    let r = reg.image_ref("ca/busybox:1");
    let s = Store::new();
    let o = s.berth(&["pull", &r]);
    assert!(
        !o.status.success(),
        "pulled without trusting the CA: {}",
        text(&o)
    );
    assert!(
        text(&o).to_lowercase().contains("certificate"),
        "{}",
        text(&o)
    );
    // The CA under another host's name does not help.
    let other = s
        .docker_config
        .path()
        .join("certs.d")
        .join("other.example:5000");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::copy(&ca, other.join("ca.crt")).unwrap();
    assert!(!s.berth(&["pull", &r]).status.success());
    let mine = s.docker_config.path().join("certs.d").join(&reg.addr);
    std::fs::create_dir_all(&mine).unwrap();
    std::fs::copy(&ca, mine.join("ca.crt")).unwrap();
    s.ok(&["pull", &r]);
    assert_eq!(s.ok(&["run", "--rm", &r, "echo", "ok"]), "ok\n");
    // A file that is no certificate is refused with its host named.
    std::fs::write(mine.join("ca.crt"), "junk\n").unwrap();
    let o = s.berth(&["pull", &r]);
    assert!(!o.status.success());
    let err = text(&o);
    assert!(
        err.contains(&format!("CA certificate for registry {}", reg.addr)),
        "{err}"
    );
}
