//! Image references, with Docker's grammar and normalisation
//! (github.com/distribution/reference):
//!
//! ```text
//! reference        := name [ ":" tag ] [ "@" digest ]
//! name             := [domain "/"] path-component ["/" path-component]*
//! domain           := host [":" port]
//! host             := domain-component ["." domain-component]* | "[" ipv6 "]"
//! domain-component := [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
//! path-component   := [a-z0-9]+ (separator [a-z0-9]+)*
//! separator        := "." | "_" | "__" | "-"+
//! tag              := [\w][\w.-]{0,127}
//! ```
//!
//! `busybox` is `docker.io/library/busybox:latest`; a first component is a
//! domain when it contains `.` or `:`, is `localhost`, or has uppercase.

use crate::digest::Digest;
use std::fmt;
use std::str::FromStr;

pub const DEFAULT_DOMAIN: &str = "docker.io";
pub const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
/// Where `docker.io` repositories are actually served.
pub const DEFAULT_API_HOST: &str = "registry-1.docker.io";
pub const OFFICIAL_REPO_PREFIX: &str = "library/";
pub const DEFAULT_TAG: &str = "latest";
/// Longest `domain/path` Docker accepts.
pub const NAME_TOTAL_LENGTH_MAX: usize = 255;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("invalid reference format: repository name must have at least one component")]
    Empty,
    #[error("invalid reference format: repository name ({0}) must be lowercase")]
    Uppercase(String),
    #[error(
        "invalid reference format: repository name ({0}) must not be more than 255 characters"
    )]
    TooLong(String),
    #[error("invalid repository name ({0}), cannot specify 64-byte hexadecimal strings")]
    HexName(String),
    #[error("invalid reference format: {input:?}: {reason}")]
    Invalid { input: String, reason: &'static str },
    #[error("invalid reference format: {input:?}: invalid tag {tag:?}: a tag is up to 128 letters, digits, '_', '.' and '-', not starting with '.' or '-'")]
    Tag { input: String, tag: String },
    #[error("invalid reference format: {input:?}: {source}")]
    Digest {
        input: String,
        source: crate::digest::Error,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

/// A fully qualified image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Registry host with optional port, e.g. `docker.io`, `localhost:5000`.
    pub domain: String,
    /// Repository path within the registry, e.g. `library/busybox`.
    pub path: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl Reference {
    /// Parses and normalises like `docker pull`: `latest` is added when
    /// neither a tag nor a digest is given.
    pub fn parse(s: &str) -> Result<Reference> {
        let mut r = Reference::parse_named(s)?;
        if r.tag.is_none() && r.digest.is_none() {
            r.tag = Some(DEFAULT_TAG.to_string());
        }
        Ok(r)
    }

    /// Parses and normalises without adding a default tag (for `push` of
    /// all tags of a repository, or filtering by repository).
    pub fn parse_named(s: &str) -> Result<Reference> {
        if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(Error::HexName(s.to_string()));
        }
        let (domain, remainder) = split_docker_domain(s);
        let remote = remainder.split(':').next().unwrap_or("");
        if remote.to_lowercase() != remote {
            return Err(Error::Uppercase(remote.to_string()));
        }
        parse_qualified(s, domain, &remainder)
    }

    /// `domain/path`, e.g. `docker.io/library/busybox`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The repository path as the registry API wants it (`library/busybox`).
    pub fn repository(&self) -> &str {
        &self.path
    }

    /// The host to talk to: `docker.io` is served by `registry-1.docker.io`.
    pub fn api_host(&self) -> &str {
        if self.domain == DEFAULT_DOMAIN {
            DEFAULT_API_HOST
        } else {
            &self.domain
        }
    }

    /// What to ask the registry's manifests endpoint for: the digest when
    /// there is one, else the tag (`latest` when neither).
    pub fn manifest_ref(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => DEFAULT_TAG.to_string(),
        }
    }

    /// The name as Docker shows it: `busybox`, `user/app`, `localhost:5000/x`.
    pub fn familiar_name(&self) -> String {
        if self.domain != DEFAULT_DOMAIN {
            return self.name();
        }
        match self.path.strip_prefix(OFFICIAL_REPO_PREFIX) {
            Some(rest) if !rest.contains('/') => rest.to_string(),
            _ => self.path.clone(),
        }
    }

    /// The reference as Docker shows it: `busybox:latest`, `localhost:5000/x:1`.
    pub fn familiar(&self) -> String {
        let mut s = self.familiar_name();
        self.push_suffix(&mut s);
        s
    }

    /// `domain/path:tag` (no digest), the key of the tags table.
    pub fn tagged_name(&self) -> Option<String> {
        self.tag
            .as_ref()
            .map(|t| format!("{}/{}:{t}", self.domain, self.path))
    }

    /// `domain/path@digest` (no tag), the key of the repo digests table.
    pub fn digested_name(&self) -> Option<String> {
        self.digest
            .as_ref()
            .map(|d| format!("{}/{}@{d}", self.domain, self.path))
    }

    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// The same repository with `tag` (validated) and no digest.
    pub fn with_tag(&self, tag: &str) -> Result<Reference> {
        if !valid_tag(tag) {
            return Err(Error::Tag {
                input: format!("{}:{tag}", self.name()),
                tag: tag.to_string(),
            });
        }
        Ok(Reference {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        })
    }

    fn push_suffix(&self, s: &mut String) {
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d.as_str());
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = self.name();
        self.push_suffix(&mut s);
        f.write_str(&s)
    }
}

impl FromStr for Reference {
    type Err = Error;
    fn from_str(s: &str) -> Result<Reference> {
        Reference::parse(s)
    }
}

/// Docker's `splitDockerDomain`.
fn split_docker_domain(name: &str) -> (&str, String) {
    let Some((first, rest)) = name.split_once('/') else {
        return (DEFAULT_DOMAIN, format!("{OFFICIAL_REPO_PREFIX}{name}"));
    };
    let (domain, remote) = if first == "localhost" {
        (first, rest.to_string())
    } else if first == LEGACY_DEFAULT_DOMAIN {
        (DEFAULT_DOMAIN, rest.to_string())
    } else if first.contains(['.', ':']) || first.to_lowercase() != first {
        (first, rest.to_string())
    } else {
        (DEFAULT_DOMAIN, name.to_string())
    };
    if domain == DEFAULT_DOMAIN && !remote.contains('/') {
        return (domain, format!("{OFFICIAL_REPO_PREFIX}{remote}"));
    }
    (domain, remote)
}

/// Parses `remainder` (`path[:tag][@digest]`) under `domain`.
fn parse_qualified(input: &str, domain: &str, remainder: &str) -> Result<Reference> {
    let invalid = |reason| Error::Invalid {
        input: clip(input),
        reason,
    };
    if input.is_empty() {
        return Err(Error::Empty);
    }
    let (name_tag, digest) = match remainder.split_once('@') {
        Some((n, d)) => {
            let digest = d.parse::<Digest>().map_err(|source| Error::Digest {
                input: clip(input),
                source,
            })?;
            (n, Some(digest))
        }
        None => (remainder, None),
    };
    let (path, tag) = match name_tag.split_once(':') {
        Some((p, t)) => {
            if !valid_tag(t) {
                return Err(Error::Tag {
                    input: clip(input),
                    tag: clip(t),
                });
            }
            (p, Some(t.to_string()))
        }
        None => (name_tag, None),
    };
    if !valid_domain(domain) {
        return Err(invalid("invalid registry host (expected host[:port])"));
    }
    if path.is_empty() || path.split('/').any(|c| !valid_path_component(c)) {
        if path.to_lowercase() != path {
            return Err(Error::Uppercase(path.to_string()));
        }
        if path.is_empty() && tag.is_none() && digest.is_none() {
            return Err(Error::Empty);
        }
        return Err(invalid(
            "repository path components are lowercase letters and digits, separated by '.', '_', '__' or '-'",
        ));
    }
    let full = format!("{domain}/{path}");
    if full.len() > NAME_TOTAL_LENGTH_MAX {
        return Err(Error::TooLong(clip(&full)));
    }
    Ok(Reference {
        domain: domain.to_string(),
        path: path.to_string(),
        tag,
        digest,
    })
}

fn clip(s: &str) -> String {
    const MAX: usize = 300;
    if s.len() <= MAX {
        return s.to_string();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// `[\w][\w.-]{0,127}`
pub fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && is_word(b[0])
        && b[1..].iter().all(|&c| is_word(c) || c == b'.' || c == b'-')
}

/// `[a-z0-9]+ (("." | "_" | "__" | "-"+) [a-z0-9]+)*`
fn valid_path_component(c: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let b = c.as_bytes();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run between two alphanumerics.
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|s| s == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// `host[:port]` where host is a dotted name or a bracketed IPv6 address.
fn valid_domain(d: &str) -> bool {
    let (host_ok, port) = if let Some(rest) = d.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return false;
        };
        let v6_ok = !v6.is_empty() && v6.bytes().all(|b| b.is_ascii_hexdigit() || b == b':');
        match after {
            "" => (v6_ok, None),
            a => match a.strip_prefix(':') {
                Some(p) => (v6_ok, Some(p)),
                None => return false,
            },
        }
    } else {
        let (host, port) = match d.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (d, None),
        };
        (
            !host.is_empty() && host.split('.').all(valid_domain_component),
            port,
        )
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    host_ok && port_ok
}

fn valid_domain_component(c: &str) -> bool {
    let b = c.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|&x| x.is_ascii_alphanumeric() || x == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa";

    fn full(s: &str) -> String {
        Reference::parse(s)
            .unwrap_or_else(|e| panic!("{s:?}: {e}"))
            .to_string()
    }

    #[test]
    fn normalises_like_docker() {
        for (input, want) in [
            ("busybox", "docker.io/library/busybox:latest"),
            ("busybox:1.36", "docker.io/library/busybox:1.36"),
            ("user/app", "docker.io/user/app:latest"),
            ("docker.io/busybox", "docker.io/library/busybox:latest"),
            (
                "index.docker.io/busybox",
                "docker.io/library/busybox:latest",
            ),
            ("index.docker.io/user/app:v1", "docker.io/user/app:v1"),
            ("localhost/x", "localhost/x:latest"),
            ("localhost:5000/x", "localhost:5000/x:latest"),
            ("localhost:5000/x:1", "localhost:5000/x:1"),
            ("quay.io/a/b/c:t", "quay.io/a/b/c:t"),
            ("test_com/foo", "docker.io/test_com/foo:latest"),
            ("192.168.0.1", "docker.io/library/192.168.0.1:latest"),
            ("192.168.0.1:80", "docker.io/library/192.168.0.1:80"),
            ("127.0.0.1:5000/debian", "127.0.0.1:5000/debian:latest"),
            ("[::1]:5000/repo:tag", "[::1]:5000/repo:tag"),
            ("[2001:db8::1]/repo", "[2001:db8::1]/repo:latest"),
            ("Foo/bar", "Foo/bar:latest"),
            (
                "lowercase:Uppercase",
                "docker.io/library/lowercase:Uppercase",
            ),
            ("a__b/c-d---e.f_g", "docker.io/a__b/c-d---e.f_g:latest"),
            // A first component with a dot is a host, and `_` is no host character.
            // ("a__b.c/x" is refused below.)
            (
                &format!("busybox@{D}"),
                &format!("docker.io/library/busybox@{D}"),
            ),
            (
                &format!("busybox:latest@{D}"),
                &format!("docker.io/library/busybox:latest@{D}"),
            ),
            (
                &format!("localhost:5000/x@{D}"),
                &format!("localhost:5000/x@{D}"),
            ),
        ] {
            assert_eq!(full(input), want, "{input}");
        }
    }

    /// distribution/reference normalize_test.go, TestParseRepositoryInfo:
    /// each of the familiar, full and ambiguous spellings gives the same
    /// full name and familiar name.
    #[test]
    fn docker_repository_info_cases() {
        let cases: &[(&str, &str, &str, &str, &str)] = &[
            // (remote, familiar, full, ambiguous, domain)
            (
                "fooo/bar",
                "fooo/bar",
                "docker.io/fooo/bar",
                "index.docker.io/fooo/bar",
                "docker.io",
            ),
            (
                "library/ubuntu",
                "ubuntu",
                "docker.io/library/ubuntu",
                "library/ubuntu",
                "docker.io",
            ),
            (
                "nonlibrary/ubuntu",
                "nonlibrary/ubuntu",
                "docker.io/nonlibrary/ubuntu",
                "",
                "docker.io",
            ),
            (
                "other/library",
                "other/library",
                "docker.io/other/library",
                "",
                "docker.io",
            ),
            (
                "private/moonbase",
                "127.0.0.1:8000/private/moonbase",
                "127.0.0.1:8000/private/moonbase",
                "",
                "127.0.0.1:8000",
            ),
            (
                "privatebase",
                "127.0.0.1:8000/privatebase",
                "127.0.0.1:8000/privatebase",
                "",
                "127.0.0.1:8000",
            ),
            (
                "private/moonbase",
                "example.com/private/moonbase",
                "example.com/private/moonbase",
                "",
                "example.com",
            ),
            (
                "privatebase",
                "example.com/privatebase",
                "example.com/privatebase",
                "",
                "example.com",
            ),
            (
                "private/moonbase",
                "example.com:8000/private/moonbase",
                "example.com:8000/private/moonbase",
                "",
                "example.com:8000",
            ),
            (
                "privatebasee",
                "example.com:8000/privatebasee",
                "example.com:8000/privatebasee",
                "",
                "example.com:8000",
            ),
            (
                "library/ubuntu-12.04-base",
                "ubuntu-12.04-base",
                "docker.io/library/ubuntu-12.04-base",
                "index.docker.io/library/ubuntu-12.04-base",
                "docker.io",
            ),
            (
                "library/foo",
                "foo",
                "docker.io/library/foo",
                "docker.io/foo",
                "docker.io",
            ),
            (
                "library/foo/bar",
                "library/foo/bar",
                "docker.io/library/foo/bar",
                "",
                "docker.io",
            ),
            (
                "store/foo/bar",
                "store/foo/bar",
                "docker.io/store/foo/bar",
                "",
                "docker.io",
            ),
            ("bar", "Foo/bar", "Foo/bar", "", "Foo"),
            ("bar", "FOO/bar", "FOO/bar", "", "FOO"),
        ];
        for &(remote, familiar, fullname, ambiguous, domain) in cases {
            for input in [familiar, fullname, ambiguous] {
                if input.is_empty() {
                    continue;
                }
                let r = Reference::parse_named(input).unwrap_or_else(|e| panic!("{input}: {e}"));
                assert_eq!(r.to_string(), fullname, "{input}");
                assert_eq!(r.familiar_name(), familiar, "{input}");
                assert_eq!(r.familiar(), familiar, "{input}");
                assert_eq!(r.path, remote, "{input}");
                assert_eq!(r.domain, domain, "{input}");
                assert_eq!(r.tag, None);
            }
        }
    }

    /// TestNormalizedSplitHostname.
    #[test]
    fn docker_split_hostname_cases() {
        for (input, domain, path) in [
            ("test.com/foo", "test.com", "foo"),
            ("test_com/foo", "docker.io", "test_com/foo"),
            ("docker/migrator", "docker.io", "docker/migrator"),
            ("test.com:8080/foo", "test.com:8080", "foo"),
            ("test-com:8080/foo", "test-com:8080", "foo"),
            ("foo", "docker.io", "library/foo"),
            ("xn--n3h.com/foo", "xn--n3h.com", "foo"),
            ("xn--n3h.com:18080/foo", "xn--n3h.com:18080", "foo"),
            ("docker.io/foo", "docker.io", "library/foo"),
            ("docker.io/library/foo", "docker.io", "library/foo"),
            ("docker.io/library/foo/bar", "docker.io", "library/foo/bar"),
        ] {
            let r = Reference::parse_named(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(
                (r.domain.as_str(), r.path.as_str()),
                (domain, path),
                "{input}"
            );
        }
    }

    /// TestValidateReferenceName and TestReferenceParse.
    #[test]
    fn docker_valid_and_invalid_names() {
        // docker.io/ + 122 * "a/" + "a" is exactly 255 characters.
        let long_ok = format!("{}a:tag-puts-this-over-max", "a/".repeat(122));
        let ok = [
            "docker/docker",
            "library/debian",
            "debian",
            "docker.io/docker/docker",
            "docker.io/library/debian",
            "docker.io/debian",
            "index.docker.io/docker/docker",
            "index.docker.io/library/debian",
            "index.docker.io/debian",
            "127.0.0.1:5000/docker/docker",
            "127.0.0.1:5000/library/debian",
            "127.0.0.1:5000/debian",
            "192.168.0.1",
            "192.168.0.1:80",
            "192.168.0.1:8/debian",
            "192.168.0.2:25000/debian",
            "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
            "[fc00::1]:5000/docker",
            "[fc00::1]:5000/docker/docker",
            "[fc00:1:2:3:4:5:6:7]:5000/library/debian",
            "docker.io/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
            "Docker/docker",
            "test_com",
            "test.com:tag",
            "test.com:5000",
            "test.com/repo:tag",
            "test:5000/repo",
            "test:5000/repo:tag",
            "sub-dom1.foo.com/bar/baz/quux",
            "sub-dom1.foo.com/bar/baz/quux:some-long-tag",
            "b.gcr.io/test.example.com/my-app:test.example.com",
            "xn--n3h.com/myimage:xn--n3h.com",
            "foo_bar.com:8080",
            "foo/foo_bar.com:8080",
            "[2001:db8::1]/repo",
            "[2001:db8:1:2:3:4:5:6]/repo:tag",
            "[2001:db8::1]:5000/repo",
            "[2001:db8::]:5000/repo",
            "[::1]:5000/repo",
            &long_ok,
        ];
        for s in ok {
            assert!(
                Reference::parse(s).is_ok(),
                "{s}: {:?}",
                Reference::parse(s)
            );
        }
        let too_long = format!("{}a:tag", "a/".repeat(128));
        let bad = [
            "",
            ":justtag",
            "https://github.com/docker/docker",
            "docker/Docker",
            "-docker",
            "-docker/docker",
            "-docker.io/docker/docker",
            "docker///docker",
            "docker.io/docker/Docker",
            "docker.io/docker///docker",
            "[fc00::1]",
            "[fc00::1]:5000",
            "fc00::1:5000/debian",
            "[fc00::1]:5000/Docker",
            "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
            "Uppercase:tag",
            "test:5000/Uppercase/lowercase:tag",
            "aa/asdf$$^/aa",
            "[2001:db8::1]",
            "[2001:db8::1]:5000",
            "[2001:db8::1]:tag",
            "[fe80::1%eth0]:5000/repo",
            "[fe80::1%@invalidzone]:5000/repo",
            "repo@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            "validname@invaliddigest:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            "busybox:-tag",
            "busybox:.tag",
            "busybox: latest",
            "busy box",
            "busybox/",
            "/busybox",
            "a..b",
            "a._b",
            "a___b",
            "a-",
            "a__b.c/x",
            "busybox:a:b",
            "busybox@sha256:abc",
            &too_long,
        ];
        for s in bad {
            assert!(
                Reference::parse(s).is_err(),
                "{s:?} parsed: {:?}",
                Reference::parse(s)
            );
        }
        let tag129 = format!("busybox:{}", "a".repeat(129));
        assert!(Reference::parse(&tag129).is_err());
        let tag128 = format!("busybox:{}", "a".repeat(128));
        assert!(Reference::parse(&tag128).is_ok());
    }

    #[test]
    fn clear_errors() {
        let e = Reference::parse("Busybox").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid reference format: repository name (library/Busybox) must be lowercase"
        );
        let e = Reference::parse("docker.io/docker/Docker").unwrap_err();
        assert!(matches!(e, Error::Uppercase(_)), "{e}");
        assert_eq!(Reference::parse("").unwrap_err(), Error::Empty);
        let hex = "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a";
        assert!(matches!(
            Reference::parse(hex).unwrap_err(),
            Error::HexName(_)
        ));
        let e = Reference::parse("busybox:-x").unwrap_err();
        assert!(e.to_string().contains("invalid tag \"-x\""), "{e}");
        let e = Reference::parse("busybox@sha256:abc").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("invalid reference format: \"busybox@sha256:abc\": invalid digest"),
            "{e}"
        );
        let e = Reference::parse(&format!("{}a", "a/".repeat(128))).unwrap_err();
        assert!(matches!(e, Error::TooLong(_)), "{e}");
        let e = Reference::parse("aa/asdf$$^/aa").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("invalid reference format: \"aa/asdf$$^/aa\""),
            "{e}"
        );
    }

    #[test]
    fn accessors() {
        let r = Reference::parse("busybox").unwrap();
        assert_eq!(r.familiar(), "busybox:latest");
        assert_eq!(r.familiar_name(), "busybox");
        assert_eq!(r.api_host(), "registry-1.docker.io");
        assert_eq!(r.repository(), "library/busybox");
        assert_eq!(r.name(), "docker.io/library/busybox");
        assert_eq!(r.manifest_ref(), "latest");
        assert_eq!(r.tagged_name().unwrap(), "docker.io/library/busybox:latest");
        assert_eq!(r.digested_name(), None);

        let d: Digest = D.parse().unwrap();
        let rd = r.with_digest(d.clone());
        assert_eq!(rd.manifest_ref(), D);
        assert_eq!(rd.familiar(), format!("busybox:latest@{D}"));
        assert_eq!(
            rd.digested_name().unwrap(),
            format!("docker.io/library/busybox@{D}")
        );
        let rt = rd.with_tag("1.36").unwrap();
        assert_eq!(rt.to_string(), "docker.io/library/busybox:1.36");
        assert!(r.with_tag("bad tag").is_err());

        let l = Reference::parse("localhost:5000/x:1").unwrap();
        assert_eq!(l.familiar(), "localhost:5000/x:1");
        assert_eq!(l.api_host(), "localhost:5000");
        assert_eq!(l.repository(), "x");
        let u = Reference::parse("user/app").unwrap();
        assert_eq!(u.familiar(), "user/app:latest");
        let deep = Reference::parse("docker.io/library/foo/bar:1").unwrap();
        assert_eq!(deep.familiar(), "library/foo/bar:1");

        let digest_only = Reference::parse(&format!("busybox@{D}")).unwrap();
        assert_eq!(digest_only.tag, None);
        assert_eq!(digest_only.familiar(), format!("busybox@{D}"));
        assert_eq!("busybox".parse::<Reference>().unwrap(), r);
        // Round trip: the full form parses to itself.
        let with_digest = format!("localhost:5000/a/b@{D}");
        for s in ["busybox", "user/app:v1", &with_digest] {
            let r = Reference::parse(s).unwrap();
            assert_eq!(Reference::parse(&r.to_string()).unwrap(), r);
            assert_eq!(Reference::parse(&r.familiar()).unwrap(), r);
        }
    }
}
