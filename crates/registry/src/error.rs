//! Errors of the registry client.

use crate::auth::AuthError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong talking to a registry. Every message names the host and
/// the manifest or blob concerned.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The registry refused us (401/403 after authenticating, or a token
    /// endpoint refused the credentials).
    #[error("authentication required: run berth login {host}")]
    Unauthorized { host: String },

    /// 403 from an API endpoint: the user is known but lacks the
    /// permission; `detail` is the registry's own message, when it sent one.
    #[error("access denied by {host}{detail}")]
    Denied { host: String, detail: String },

    /// 404. `what` is `manifest HOST/REPO:REF` or `blob DIGEST in HOST/REPO`.
    #[error("{what} not found")]
    NotFound { host: String, what: String },

    /// `reference` is `HOST/REPO:TAG` or `HOST/REPO@DIGEST`.
    #[error("manifest for {reference} is larger than 4 MiB")]
    ManifestTooLarge { reference: String },

    #[error("manifest for {reference} hashes to {actual}, not to the requested digest")]
    ManifestDigestMismatch { reference: String, actual: String },

    #[error(
        "registry {host} sent Docker-Content-Digest {header} for {reference}, \
         but the manifest it sent hashes to {actual}"
    )]
    ContentDigestMismatch {
        host: String,
        reference: String,
        header: String,
        actual: String,
    },

    #[error("blob {digest} in {host}/{repo} hashes to {actual}: the download was discarded")]
    BlobDigestMismatch {
        host: String,
        repo: String,
        digest: String,
        actual: String,
    },

    #[error(
        "blob {digest} in {host}/{repo} is {actual} bytes, expected {expected}: \
         the download was discarded"
    )]
    BlobSizeMismatch {
        host: String,
        repo: String,
        digest: String,
        expected: u64,
        actual: u64,
    },

    /// Connection errors, dropped bodies, 429s or 5xxs on every attempt.
    #[error("giving up on {what} after {attempts} attempts: {last}")]
    RetriesExhausted {
        host: String,
        what: String,
        attempts: u32,
        last: String,
    },

    /// A 429 whose Retry-After is too long to wait for.
    #[error("{host} rate-limits requests for {what}: retry in {seconds} seconds")]
    RateLimited {
        host: String,
        what: String,
        seconds: u64,
    },

    /// Any other unexpected status; `detail` holds the registry's own error
    /// message, if it sent one.
    #[error("registry {host} answered {status} for {what}{detail}")]
    Status {
        host: String,
        what: String,
        status: u16,
        detail: String,
    },

    #[error("cannot follow the redirect of {host} for {what}: {reason}")]
    Redirect {
        host: String,
        what: String,
        reason: String,
    },

    /// A blob upload answered without a usable Location header.
    #[error("registry {host} answered the upload of {what} without a usable Location: {reason}")]
    UploadLocation {
        host: String,
        what: String,
        reason: String,
    },

    /// The digest the registry computed for a pushed manifest is not ours.
    #[error("registry {host} stored manifest {reference} as {header}, but berth sent {sent}")]
    PushedDigestMismatch {
        host: String,
        reference: String,
        header: String,
        sent: String,
    },

    #[error(transparent)]
    Auth(#[from] AuthError),

    #[error("invalid registry host {host:?}")]
    InvalidHost { host: String },

    #[error("invalid repository name {repo:?} for {host}")]
    InvalidRepository { host: String, repo: String },

    #[error("invalid tag or digest {reference:?} for {host}/{repo}")]
    InvalidReference {
        host: String,
        repo: String,
        reference: String,
    },

    #[error("invalid digest {digest:?}: berth expects sha256:<64 lowercase hex digits>")]
    InvalidDigest { digest: String },

    #[error("invalid registry mirror {mirror:?}: {reason}")]
    InvalidMirror { mirror: String, reason: String },

    #[error("cannot create the http client: {0}")]
    HttpClient(#[source] reqwest::Error),

    #[error(
        "CA certificate for registry {host}: {reason} (expected PEM, as in certs.d/{host}/ca.crt)"
    )]
    CaCert { host: String, reason: String },

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

/// An error and its sources on one line: reqwest's own message ("error
/// sending request") says little without its causes.
pub(crate) fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = e.source();
    }
    out
}

/// What went wrong with an HTTP request, without reqwest's own preamble
/// ("error sending request for url (…)", "client error (Connect)").
pub(crate) fn http_reason(err: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = std::error::Error::source(err);
    while let Some(e) = cur {
        let s = e.to_string();
        if !s.starts_with("client error (") && !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = e.source();
    }
    if parts.is_empty() {
        let mut s = err.to_string();
        if let Some(url) = err.url() {
            s = s.replace(&format!(" ({url})"), "");
        }
        return s;
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unauthorized_message() {
        let e = Error::Unauthorized {
            host: "docker.io".into(),
        };
        assert_eq!(
            e.to_string(),
            "authentication required: run berth login docker.io"
        );
    }

    #[test]
    fn chain_joins_sources() {
        let inner = std::io::Error::other("connection reset");
        let e = Error::io("reading blob sha256:ab", inner);
        assert_eq!(chain(&e), "reading blob sha256:ab: connection reset");
    }
}
