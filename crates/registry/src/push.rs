//! Push: blob existence checks (HEAD), cross-repository mounts, monolithic
//! blob uploads (POST, then PUT of the file's bytes to the Location) and the
//! manifest PUT.
//!
//! Every request goes to the registry itself (never a mirror), with a token
//! scope of `repository:REPO:pull,push` (plus `repository:FROM:pull` for a
//! mount). Connection errors, 429 and 5xx are retried with backoff; a failed
//! upload is started over with a new upload session.

use std::fs::File;
use std::path::Path;

use reqwest::blocking::{Body, Response};
use reqwest::header::{HeaderMap, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::{Method, Url};

use crate::client::{
    check_digest, check_host, check_reference, check_repo, normalize_repo, sha256_digest, Client,
    Request,
};
use crate::error::{Error, Result};
use crate::hosts::Endpoint;
use crate::manifest::MAX_MANIFEST_SIZE;
use crate::retry::{Failure, Retry};

const DOCKER_CONTENT_DIGEST: &str = "docker-content-digest";
/// The host a relative upload Location is resolved against (then dropped).
const PLACEHOLDER_HOST: &str = "registry.invalid";

/// What [`Client::push_blob`] did with a blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlobPush {
    /// The repository already had it: nothing was sent.
    Exists,
    /// The registry linked it from repository `from`: nothing was sent.
    Mounted { from: String },
    /// Its bytes were uploaded.
    Uploaded,
}

/// A blob on local disk to push.
#[derive(Clone, Copy, Debug)]
pub struct LocalBlob<'a> {
    /// `sha256:<hex>` of the file's content.
    pub digest: &'a str,
    /// The file's length in bytes.
    pub size: u64,
    pub path: &'a Path,
}

fn push_scope(repo: &str) -> String {
    format!("repository:{repo}:pull,push")
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The URL (or, for a relative Location, the path and query) to PUT a
/// blob's bytes to: `location` resolved against the upload endpoint of
/// `repo`, its own query parameters kept, `digest=` added.
pub(crate) fn upload_target(
    repo: &str,
    location: &str,
    digest: &str,
) -> std::result::Result<String, String> {
    let base = format!("http://{PLACEHOLDER_HOST}/v2/{repo}/blobs/uploads/");
    let base = Url::parse(&base).map_err(|e| e.to_string())?;
    let mut url = base
        .join(location)
        .map_err(|e| format!("{location:?}: {e}"))?;
    match url.scheme() {
        "http" | "https" => {}
        other => return Err(format!("{location:?}: unsupported scheme {other:?}")),
    }
    url.query_pairs_mut().append_pair("digest", digest);
    let relative =
        url.scheme() == "http" && url.host_str() == Some(PLACEHOLDER_HOST) && url.port().is_none();
    if relative {
        let query = url.query().map(|q| format!("?{q}")).unwrap_or_default();
        Ok(format!("{}{query}", url.path()))
    } else {
        Ok(url.to_string())
    }
}

impl Client {
    /// HEAD `/v2/<repo>/blobs/<digest>` on the registry `host`: whether the
    /// repository holds the blob.
    pub fn blob_exists(&self, host: &str, repo: &str, digest: &str) -> Result<bool> {
        check_host(host)?;
        let repo = normalize_repo(host, repo);
        check_repo(host, &repo)?;
        check_digest(digest)?;
        let ep = Endpoint::registry(host, &self.cfg.insecure_hosts);
        self.blob_exists_at(&ep, &repo, digest)
    }

    fn blob_exists_at(&self, ep: &Endpoint, repo: &str, digest: &str) -> Result<bool> {
        let what = format!("blob {digest} in {}/{repo}", ep.host);
        let req = Request {
            ep,
            repo,
            what: &what,
            method: Method::HEAD,
            path: format!("/v2/{repo}/blobs/{digest}"),
            headers: Vec::new(),
        };
        let scope = push_scope(repo);
        let mut retry = Retry::new(&ep.host, &what, self.cfg.max_retries);
        loop {
            match self.send_with(&req, &scope, None) {
                Ok(resp) => {
                    return match resp.status().as_u16() {
                        200 => Ok(true),
                        404 => Ok(false),
                        _ => Err(self.status_error(ep, &what, resp)),
                    }
                }
                Err(f) => retry.handle(f)?,
            }
        }
    }

    /// Pushes one blob to `host/repo` unless the repository has it already
    /// (HEAD). With `mount_from` (another repository of the same registry
    /// that holds the blob), asks the registry to link it from there first;
    /// a registry that declines (202) gets the upload instead. The upload is
    /// monolithic: POST `/v2/<repo>/blobs/uploads/`, then PUT of the file to
    /// the Location with `digest=`; the registry checks the digest.
    pub fn push_blob(
        &self,
        host: &str,
        repo: &str,
        blob: &LocalBlob<'_>,
        mount_from: Option<&str>,
    ) -> Result<BlobPush> {
        check_host(host)?;
        let repo = normalize_repo(host, repo);
        check_repo(host, &repo)?;
        check_digest(blob.digest)?;
        let from = match mount_from {
            Some(f) => {
                let f = normalize_repo(host, f);
                check_repo(host, &f)?;
                (f != repo).then_some(f)
            }
            None => None,
        };
        let ep = Endpoint::registry(host, &self.cfg.insecure_hosts);
        if self.blob_exists_at(&ep, &repo, blob.digest)? {
            return Ok(BlobPush::Exists);
        }
        let what = format!("blob {} to {}/{repo}", blob.digest, ep.host);
        let mut retry = Retry::new(&ep.host, &what, self.cfg.max_retries);
        loop {
            match self.try_push_blob(&ep, &repo, blob, from.as_deref(), &what) {
                Ok(r) => return Ok(r),
                Err(f) => retry.handle(f)?,
            }
        }
    }

    /// One attempt: a new upload session (or mount), then the PUT.
    fn try_push_blob(
        &self,
        ep: &Endpoint,
        repo: &str,
        blob: &LocalBlob<'_>,
        from: Option<&str>,
        what: &str,
    ) -> std::result::Result<BlobPush, Failure> {
        let (scope, path) = match from {
            Some(f) => (
                format!("{} repository:{f}:pull", push_scope(repo)),
                format!("/v2/{repo}/blobs/uploads/?mount={}&from={f}", blob.digest),
            ),
            None => (push_scope(repo), format!("/v2/{repo}/blobs/uploads/")),
        };
        let post = Request {
            ep,
            repo,
            what,
            method: Method::POST,
            path,
            headers: vec![(CONTENT_LENGTH, "0".to_string())],
        };
        let resp = self.send_with(&post, &scope, None)?;
        match (resp.status().as_u16(), from) {
            (201, Some(f)) => {
                return Ok(BlobPush::Mounted {
                    from: f.to_string(),
                })
            }
            (202, _) => {}
            _ => return Err(Failure::Fatal(self.status_error(ep, what, resp))),
        }
        let target = self.upload_location(ep, repo, what, &resp, blob.digest)?;
        drop(resp);
        let make_body = || -> std::result::Result<Body, Failure> {
            let f = File::open(blob.path).map_err(|e| {
                Failure::Fatal(Error::io(format!("open {}", blob.path.display()), e))
            })?;
            Ok(Body::sized(f, blob.size))
        };
        let put = Request {
            ep,
            repo,
            what,
            method: Method::PUT,
            path: target,
            headers: vec![(CONTENT_TYPE, "application/octet-stream".to_string())],
        };
        let resp = self.send_with(&put, &scope, Some(&make_body))?;
        match resp.status().as_u16() {
            200 | 201 | 204 => Ok(BlobPush::Uploaded),
            _ => Err(Failure::Fatal(self.status_error(ep, what, resp))),
        }
    }

    /// Where to PUT the bytes of an upload the registry accepted (202).
    fn upload_location(
        &self,
        ep: &Endpoint,
        repo: &str,
        what: &str,
        resp: &Response,
        digest: &str,
    ) -> std::result::Result<String, Failure> {
        let bad = |reason: String| {
            Failure::Fatal(Error::UploadLocation {
                host: ep.host.clone(),
                what: what.to_string(),
                reason,
            })
        };
        let location = header(resp.headers(), LOCATION.as_str())
            .ok_or_else(|| bad("no Location header".to_string()))?;
        let target = upload_target(repo, location, digest).map_err(bad)?;
        if let Ok(url) = Url::parse(&target) {
            if url.scheme() == "http" && !ep.insecure && !self.http.is_insecure_url(&url) {
                return Err(bad(format!(
                    "refusing to upload over plain http to {location}"
                )));
            }
        }
        Ok(target)
    }

    /// PUT `/v2/<repo>/manifests/<reference>` with `bytes` as they are
    /// (their digest is the manifest's) and `media_type` as Content-Type.
    /// Returns the digest; a Docker-Content-Digest answer that names
    /// another digest is an error. Every blob the manifest names must be in
    /// the repository already.
    pub fn push_manifest(
        &self,
        host: &str,
        repo: &str,
        reference: &str,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<String> {
        check_host(host)?;
        let repo = normalize_repo(host, repo);
        check_repo(host, &repo)?;
        check_reference(host, &repo, reference)?;
        let sep = if reference.contains(':') { '@' } else { ':' };
        let display = format!("{host}/{repo}{sep}{reference}");
        if bytes.len() as u64 > MAX_MANIFEST_SIZE {
            return Err(Error::ManifestTooLarge { reference: display });
        }
        let digest = sha256_digest(bytes);
        if reference.contains(':') && reference != digest {
            return Err(Error::ManifestDigestMismatch {
                reference: display,
                actual: digest,
            });
        }
        let ep = Endpoint::registry(host, &self.cfg.insecure_hosts);
        let what = format!("manifest {display}");
        let req = Request {
            ep: &ep,
            repo: &repo,
            what: &what,
            method: Method::PUT,
            path: format!("/v2/{repo}/manifests/{reference}"),
            headers: vec![(CONTENT_TYPE, media_type.to_string())],
        };
        let scope = push_scope(&repo);
        let make_body = || -> std::result::Result<Body, Failure> { Ok(Body::from(bytes.to_vec())) };
        let mut retry = Retry::new(&ep.host, &what, self.cfg.max_retries);
        let resp = loop {
            match self.send_with(&req, &scope, Some(&make_body)) {
                Ok(r) => break r,
                Err(f) => retry.handle(f)?,
            }
        };
        if !matches!(resp.status().as_u16(), 200 | 201 | 202 | 204) {
            return Err(self.status_error(&ep, &what, resp));
        }
        if let Some(h) = header(resp.headers(), DOCKER_CONTENT_DIGEST) {
            if h.starts_with("sha256:") && h != digest {
                return Err(Error::PushedDigestMismatch {
                    host: ep.host.clone(),
                    reference: display,
                    header: h.to_string(),
                    sent: digest,
                });
            }
        }
        Ok(digest)
    }
}

#[cfg(test)]
#[path = "push_tests.rs"]
mod tests;
