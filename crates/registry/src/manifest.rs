//! Manifests: GET (bounded, digest-checked) and HEAD.

use std::io::Read;

use reqwest::header::{HeaderMap, ACCEPT, CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::Method;

use crate::client::{
    check_host, check_reference, check_repo, normalize_repo, sha256_digest, Client,
    FetchedManifest, Request,
};
use crate::error::{Error, Result};
use crate::hosts::Endpoint;
use crate::retry::{Failure, Retry};

pub const OCI_IMAGE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_IMAGE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST_V2: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker schema 1 (unsigned): fetched only so that it can be named in an error.
pub const DOCKER_MANIFEST_V1: &str = "application/vnd.docker.distribution.manifest.v1+json";
/// Docker schema 1 (signed).
pub const DOCKER_MANIFEST_V1_SIGNED: &str =
    "application/vnd.docker.distribution.manifest.v1+prettyjws";
/// The largest manifest accepted, as in containerd and the distribution spec.
pub const MAX_MANIFEST_SIZE: u64 = 4 << 20;

const DOCKER_CONTENT_DIGEST: &str = "docker-content-digest";

fn accept() -> String {
    [
        OCI_IMAGE_INDEX,
        OCI_IMAGE_MANIFEST,
        DOCKER_MANIFEST_LIST_V2,
        DOCKER_MANIFEST_V2,
        &format!("{DOCKER_MANIFEST_V1_SIGNED};q=0.1"),
        &format!("{DOCKER_MANIFEST_V1};q=0.1"),
    ]
    .join(", ")
}

/// `HOST/REPO:TAG` or `HOST/REPO@DIGEST`.
fn display_ref(host: &str, repo: &str, reference: &str) -> String {
    let sep = if reference.contains(':') { '@' } else { ':' };
    format!("{host}/{repo}{sep}{reference}")
}

fn is_schema1(media_type: &str) -> bool {
    media_type == DOCKER_MANIFEST_V1 || media_type == DOCKER_MANIFEST_V1_SIGNED
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// A Content-Type that names a manifest type (not a generic JSON type).
fn specific_content_type(content_type: Option<&str>) -> Option<String> {
    let ct = content_type?.split(';').next()?.trim().to_ascii_lowercase();
    match ct.as_str() {
        "" | "application/json" | "text/plain" | "application/octet-stream" => None,
        _ => Some(ct),
    }
}

/// The media type of a manifest: its Content-Type, else what its JSON says.
pub(crate) fn media_type(content_type: Option<&str>, bytes: &[u8]) -> String {
    if let Some(ct) = specific_content_type(content_type) {
        return ct;
    }
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        #[serde(rename = "schemaVersion")]
        schema_version: Option<u64>,
        manifests: Option<serde::de::IgnoredAny>,
        signatures: Option<serde::de::IgnoredAny>,
    }
    match serde_json::from_slice::<Probe>(bytes) {
        Ok(p) => match (p.media_type, p.schema_version) {
            (Some(mt), _) if !mt.is_empty() => mt,
            (_, Some(1)) if p.signatures.is_some() => DOCKER_MANIFEST_V1_SIGNED.to_string(),
            (_, Some(1)) => DOCKER_MANIFEST_V1.to_string(),
            _ if p.manifests.is_some() => OCI_IMAGE_INDEX.to_string(),
            _ => OCI_IMAGE_MANIFEST.to_string(),
        },
        Err(_) => content_type
            .and_then(|c| c.split(';').next())
            .map(|c| c.trim().to_ascii_lowercase())
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| "application/octet-stream".to_string()),
    }
}

impl Client {
    /// GET `/v2/<repo>/manifests/<reference>`, accepting OCI manifests and
    /// indexes, Docker schema 2 manifests and lists (and schema 1, so that
    /// the caller can name it).
    ///
    /// The body is capped at 4 MiB ("manifest for HOST/REPO:REF is larger
    /// than 4 MiB"). If `reference` is a digest the bytes must hash to it; a
    /// Docker-Content-Digest header that disagrees with the bytes is an error
    /// too (except for schema 1, whose header digest covers the payload
    /// without its signatures). Nothing is returned unverified.
    pub fn fetch_manifest(
        &self,
        host: &str,
        repo: &str,
        reference: &str,
    ) -> Result<FetchedManifest> {
        check_host(host)?;
        let repo = normalize_repo(host, repo);
        check_repo(host, &repo)?;
        check_reference(host, &repo, reference)?;
        self.on_endpoints(host, |ep| self.fetch_manifest_from(ep, &repo, reference))
    }

    /// HEAD `/v2/<repo>/manifests/<reference>`: the manifest's digest and
    /// media type, or `None` if the registry does not have it. Falls back to
    /// a GET when the registry does not send Docker-Content-Digest.
    pub fn head_manifest(
        &self,
        host: &str,
        repo: &str,
        reference: &str,
    ) -> Result<Option<(String, String)>> {
        check_host(host)?;
        let repo = normalize_repo(host, repo);
        check_repo(host, &repo)?;
        check_reference(host, &repo, reference)?;
        let found = self.on_endpoints(host, |ep| {
            self.head_manifest_from(ep, &repo, reference)?
                .ok_or_else(|| Error::NotFound {
                    host: ep.host.clone(),
                    what: format!("manifest {}", display_ref(&ep.host, &repo, reference)),
                })
        });
        match found {
            Ok(v) => Ok(Some(v)),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn manifest_request<'a>(
        &self,
        ep: &'a Endpoint,
        repo: &'a str,
        reference: &str,
        what: &'a str,
        method: Method,
    ) -> Request<'a> {
        Request {
            ep,
            repo,
            what,
            method,
            path: format!("/v2/{repo}/manifests/{reference}"),
            headers: vec![(ACCEPT, accept())],
        }
    }

    fn fetch_manifest_from(
        &self,
        ep: &Endpoint,
        repo: &str,
        reference: &str,
    ) -> Result<FetchedManifest> {
        let display = display_ref(&ep.host, repo, reference);
        let what = format!("manifest {display}");
        let req = self.manifest_request(ep, repo, reference, &what, Method::GET);
        let mut retry = Retry::new(&ep.host, &what, self.cfg.max_retries);
        let (bytes, content_type, header_digest) = loop {
            match self.try_fetch_manifest(&req, &display) {
                Ok(v) => break v,
                Err(f) => retry.handle(f)?,
            }
        };
        let digest = sha256_digest(&bytes);
        let media_type = media_type(content_type.as_deref(), &bytes);
        if reference.contains(':') && digest != reference {
            return Err(Error::ManifestDigestMismatch {
                reference: display,
                actual: digest,
            });
        }
        if let Some(h) = header_digest {
            if h.starts_with("sha256:") && h != digest && !is_schema1(&media_type) {
                return Err(Error::ContentDigestMismatch {
                    host: ep.host.clone(),
                    reference: display,
                    header: h,
                    actual: digest,
                });
            }
        }
        Ok(FetchedManifest {
            bytes,
            media_type,
            digest,
        })
    }

    /// One GET: the body (at most 4 MiB), Content-Type, Docker-Content-Digest.
    #[allow(clippy::type_complexity)]
    fn try_fetch_manifest(
        &self,
        req: &Request<'_>,
        display: &str,
    ) -> std::result::Result<(Vec<u8>, Option<String>, Option<String>), Failure> {
        let too_large = || {
            Failure::Fatal(Error::ManifestTooLarge {
                reference: display.to_string(),
            })
        };
        let resp = self.send(req)?;
        if resp.status().as_u16() == 404 {
            return Err(Failure::Fatal(Error::NotFound {
                host: req.ep.host.clone(),
                what: req.what.to_string(),
            }));
        }
        if !resp.status().is_success() {
            return Err(Failure::Fatal(self.status_error(req.ep, req.what, resp)));
        }
        let length =
            header(resp.headers(), CONTENT_LENGTH.as_str()).and_then(|v| v.parse::<u64>().ok());
        if length.is_some_and(|l| l > MAX_MANIFEST_SIZE) {
            return Err(too_large());
        }
        let content_type = header(resp.headers(), CONTENT_TYPE.as_str()).map(String::from);
        let header_digest = header(resp.headers(), DOCKER_CONTENT_DIGEST).map(String::from);
        let mut bytes = Vec::with_capacity(length.unwrap_or(0) as usize);
        resp.take(MAX_MANIFEST_SIZE + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| Failure::retry(format!("reading {}: {e}", req.what)))?;
        if bytes.len() as u64 > MAX_MANIFEST_SIZE {
            return Err(too_large());
        }
        Ok((bytes, content_type, header_digest))
    }

    fn head_manifest_from(
        &self,
        ep: &Endpoint,
        repo: &str,
        reference: &str,
    ) -> Result<Option<(String, String)>> {
        let display = display_ref(&ep.host, repo, reference);
        let what = format!("manifest {display}");
        let req = self.manifest_request(ep, repo, reference, &what, Method::HEAD);
        let mut retry = Retry::new(&ep.host, &what, self.cfg.max_retries);
        let resp = loop {
            match self.send(&req) {
                Ok(r) => break r,
                Err(f) => retry.handle(f)?,
            }
        };
        if resp.status().as_u16() == 404 {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(self.status_error(ep, &what, resp));
        }
        let digest = header(resp.headers(), DOCKER_CONTENT_DIGEST)
            .filter(|d| crate::client::check_digest(d).is_ok());
        let content_type = specific_content_type(header(resp.headers(), CONTENT_TYPE.as_str()));
        match (digest, content_type) {
            (Some(d), Some(ct)) => {
                if reference.contains(':') && d != reference {
                    return Err(Error::ManifestDigestMismatch {
                        reference: display,
                        actual: d.to_string(),
                    });
                }
                Ok(Some((d.to_string(), ct)))
            }
            _ => match self.fetch_manifest_from(ep, repo, reference) {
                Ok(m) => Ok(Some((m.digest, m.media_type))),
                Err(Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_type_from_header_or_body() {
        assert_eq!(
            media_type(
                Some("application/vnd.oci.image.index.v1+json; charset=utf-8"),
                b"{}"
            ),
            OCI_IMAGE_INDEX
        );
        assert_eq!(
            media_type(
                Some("application/json"),
                br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json"}"#
            ),
            DOCKER_MANIFEST_V2
        );
        assert_eq!(
            media_type(None, br#"{"schemaVersion":2,"manifests":[]}"#),
            OCI_IMAGE_INDEX
        );
        assert_eq!(
            media_type(None, br#"{"schemaVersion":2,"config":{},"layers":[]}"#),
            OCI_IMAGE_MANIFEST
        );
        assert_eq!(
            media_type(
                None,
                br#"{"schemaVersion":1,"fsLayers":[],"signatures":[]}"#
            ),
            DOCKER_MANIFEST_V1_SIGNED
        );
        assert_eq!(media_type(Some("text/plain"), b"junk"), "text/plain");
        assert_eq!(media_type(None, b"junk"), "application/octet-stream");
    }

    #[test]
    fn display_refs() {
        assert_eq!(display_ref("h:5", "a/b", "v1"), "h:5/a/b:v1");
        assert_eq!(display_ref("h", "a", "sha256:00"), "h/a@sha256:00");
    }

    #[test]
    fn accept_lists_all_types() {
        let a = accept();
        for t in [
            OCI_IMAGE_INDEX,
            OCI_IMAGE_MANIFEST,
            DOCKER_MANIFEST_LIST_V2,
            DOCKER_MANIFEST_V2,
            DOCKER_MANIFEST_V1_SIGNED,
        ] {
            assert!(a.contains(t), "{t}");
        }
    }
}
