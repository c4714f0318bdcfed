//! Docker config.json: reading auths, credential helpers, storing.

use std::os::unix::fs::PermissionsExt;

use berth_registry::dockerconfig::{self, ConfigError};
use berth_registry::Credential;

fn basic(u: &str, p: &str) -> Credential {
    Credential::Basic {
        username: u.into(),
        password: p.into(),
    }
}

#[test]
fn reads_auths() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(
        &path,
        r#"{
            "auths": {
                "https://index.docker.io/v1/": {"auth": "aHViOmh1YnB3"},
                "reg.example:5000": {"auth": "YWxpY2U6cDpzcw=="},
                "https://tok.example/v2/": {"auth": "dTo=", "identitytoken": "idt"},
                "empty.example": {}
            },
            "psFormat": "table"
        }"#,
    )
    .unwrap();
    let creds = dockerconfig::load(&path).unwrap();
    assert_eq!(creds.len(), 3);
    assert_eq!(creds["docker.io"], basic("hub", "hubpw"));
    assert_eq!(creds["reg.example:5000"], basic("alice", "p:ss"));
    assert_eq!(
        creds["tok.example"],
        Credential::IdentityToken("idt".into())
    );
}

#[test]
fn missing_config_has_no_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let creds = dockerconfig::load(&dir.path().join("nope.json")).unwrap();
    assert!(creds.is_empty());
}

#[test]
fn invalid_config_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(&path, "{not json").unwrap();
    let err = dockerconfig::load(&path).unwrap_err();
    assert!(matches!(err, ConfigError::Parse { .. }));
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );

    std::fs::write(&path, r#"{"auths":{"h":{"auth":"!!!"}}}"#).unwrap();
    let err = dockerconfig::load(&path).unwrap_err();
    assert!(matches!(err, ConfigError::InvalidAuth { .. }));
    assert!(err.to_string().contains("for h in"), "{err}");
}

#[test]
fn store_is_atomic_private_and_keeps_other_fields() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub").join("config.json");
    dockerconfig::store(&path, "reg.example:5000", &basic("alice", "pw")).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // Other fields survive; docker.io goes under Docker's own key.
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    v["psFormat"] = "table".into();
    std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
    dockerconfig::store(&path, "docker.io", &Credential::IdentityToken("tok".into())).unwrap();
    dockerconfig::store(&path, "reg.example:5000", &basic("alice", "new")).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(v["psFormat"], "table");
    assert_eq!(
        v["auths"]["https://index.docker.io/v1/"]["identitytoken"],
        "tok"
    );
    assert_eq!(v["auths"].as_object().unwrap().len(), 2);
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let creds = dockerconfig::load(&path).unwrap();
    assert_eq!(creds["reg.example:5000"], basic("alice", "new"));
    assert_eq!(creds["docker.io"], Credential::IdentityToken("tok".into()));

    assert!(dockerconfig::remove(&path, "https://reg.example:5000").unwrap());
    assert!(!dockerconfig::remove(&path, "reg.example:5000").unwrap());
    assert!(!dockerconfig::load(&path)
        .unwrap()
        .contains_key("reg.example:5000"));

    // No temporary file is left behind.
    let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["config.json"]);
}

fn write_script(dir: &std::path::Path, name: &str, body: &str) {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// All helper scripts are written before any is run (no ETXTBSY races).
#[test]
fn credential_helpers() {
    let bin = tempfile::tempdir().unwrap();
    write_script(
        bin.path(),
        "docker-credential-fake",
        r#"read server
[ "$1" = get ] || exit 2
case "$server" in
reg.example:5000) printf '{"ServerURL":"%s","Username":"alice","Secret":"s3cret"}' "$server" ;;
tok.example) printf '{"ServerURL":"%s","Username":"<token>","Secret":"idtok"}' "$server" ;;
broken.example) echo "the keychain is locked"; exit 1 ;;
*) echo "credentials not found in native keychain"; exit 1 ;;
esac
"#,
    );
    write_script(
        bin.path(),
        "docker-credential-store",
        r#"case "$1" in
list) printf '{"https://index.docker.io/v1/":"hubuser","other.example":"o"}' ;;
get) read server
  case "$server" in
  https://index.docker.io/v1/) printf '{"Username":"hubuser","Secret":"hubpw"}' ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
  esac ;;
esac
"#,
    );
    let cfgdir = tempfile::tempdir().unwrap();
    let path = cfgdir.path().join("config.json");
    let helper_path = Some(bin.path().as_os_str());

    std::fs::write(
        &path,
        r#"{
            "auths": {"plain.example": {"auth": "cDpx"}, "https://index.docker.io/v1/": {}},
            "credsStore": "store",
            "credHelpers": {
                "reg.example:5000": "fake",
                "tok.example": "fake",
                "unknown.example": "fake",
                "gone.example": "not-installed"
            }
        }"#,
    )
    .unwrap();
    let creds = dockerconfig::load_with_helper_path(&path, helper_path).unwrap();
    assert_eq!(creds["reg.example:5000"], basic("alice", "s3cret"));
    assert_eq!(
        creds["tok.example"],
        Credential::IdentityToken("idtok".into())
    );
    assert_eq!(creds["docker.io"], basic("hubuser", "hubpw"));
    assert_eq!(creds["plain.example"], basic("p", "q"));
    assert!(!creds.contains_key("unknown.example"));
    assert!(!creds.contains_key("gone.example"));
    assert!(!creds.contains_key("other.example"));

    std::fs::write(&path, r#"{"credHelpers": {"broken.example": "fake"}}"#).unwrap();
    let err = dockerconfig::load_with_helper_path(&path, helper_path).unwrap_err();
    assert!(matches!(err, ConfigError::Helper { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("docker-credential-fake")
            && msg.contains("broken.example")
            && msg.contains("keychain is locked"),
        "{msg}"
    );
}
