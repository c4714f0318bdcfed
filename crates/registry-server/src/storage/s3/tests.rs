//! Unit tests of the S3 backend (no server: settings and keys).

use super::*;

fn cfg() -> S3Config {
    S3Config {
        endpoint: "http://127.0.0.1:3900".into(),
        bucket: "berth".into(),
        region: "garage".into(),
        access_key_id: Some("GK1".into()),
        secret_access_key: Some("hunter2".into()),
        prefix: "a/b".into(),
    }
}

#[test]
fn config_problems_are_named() {
    assert_eq!(cfg().problem(), None);
    assert!(!format!("{:?}", cfg()).contains("hunter2"));
    let bad = |f: fn(&mut S3Config), what: &str| {
        let mut c = cfg();
        f(&mut c);
        let p = c.problem().unwrap_or_default();
        assert!(p.contains(what), "{p:?} lacks {what:?}");
    };
    bad(|c| c.endpoint = "ftp://x".into(), "endpoint");
    bad(|c| c.endpoint = "http://".into(), "endpoint");
    bad(|c| c.endpoint = "http://x/path".into(), "without a path");
    bad(|c| c.endpoint = "http://x//".into(), "endpoint");
    bad(|c| c.endpoint = "http://u@x".into(), "endpoint");
    bad(|c| c.bucket = "B".into(), "bucket");
    bad(|c| c.bucket = "".into(), "bucket");
    bad(|c| c.prefix = "a/../b".into(), "prefix");
    bad(|c| c.prefix = "a//b".into(), "prefix");
    bad(|c| c.prefix = "a b".into(), "prefix");
    bad(|c| c.secret_access_key = None, "go together");
    bad(|c| c.region = "".into(), "region");
    let mut c = cfg();
    c.endpoint = "https://s3.example:443/".into();
    assert_eq!(c.problem(), None);
}

#[test]
fn keys_live_under_the_prefix() {
    let s = S3Storage::new(&cfg()).unwrap();
    let d = Digest::of("sha256", b"x");
    assert_eq!(
        s.blob_key(&d).unwrap().as_ref(),
        format!("a/b/blobs/sha256/{}", d.hex)
    );
    assert_eq!(
        s.tag_key("x/y", "v1").unwrap().as_ref(),
        "a/b/repositories/x/y/_tags/v1"
    );
    assert!(s.upload_key("../x", "repo").is_err());
    assert!(s.upload_key("", "repo").is_err());
}
