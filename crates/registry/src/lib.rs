//! berth's OCI distribution client.
//!
//! Speaks the OCI distribution spec v1.1 (and Docker Hub's token flow) over
//! `reqwest`'s blocking client: manifests (GET and HEAD), blobs (resumable,
//! verified, retried), push (blob HEAD, cross-repository mount, upload,
//! manifest PUT), bearer and basic auth, registry mirrors for Docker Hub,
//! and reading/writing Docker's `config.json` ([`dockerconfig`]).
//!
//! This crate is independent of `berth-image`: digests and references are
//! plain strings (`"sha256:<hex>"`).
//!
//! A [`Client`] is `Send + Sync`: share one between the threads that pull the
//! layers of an image, so that they share tokens and connections.

mod auth;
mod blob;
mod client;
pub mod dockerconfig;
mod error;
mod hosts;
mod http;
mod manifest;
mod push;
mod retry;

pub use client::{Client, FetchedManifest};
pub use error::{Error, Result};
pub use hosts::api_host;
pub use manifest::{
    DOCKER_MANIFEST_LIST_V2, DOCKER_MANIFEST_V1, DOCKER_MANIFEST_V1_SIGNED, DOCKER_MANIFEST_V2,
    MAX_MANIFEST_SIZE, OCI_IMAGE_INDEX, OCI_IMAGE_MANIFEST,
};
pub use push::{BlobPush, LocalBlob};

use std::collections::HashMap;
use std::fmt;

/// How a [`Client`] reaches registries.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Hosts (`host`, `host:port`, or a CIDR such as `10.0.0.0/8`) that may be
    /// reached over plain http. Loopback hosts (`localhost`, `127.0.0.0/8`,
    /// `::1`, any port) are insecure by default, as in Docker: https is tried
    /// first (without certificate verification), then http.
    pub insecure_hosts: Vec<String>,
    /// Credentials by registry host (`docker.io` for Docker Hub).
    pub credentials: HashMap<String, Credential>,
    /// How many times one operation is retried after a connection error, a
    /// dropped body, a 429 or a 5xx before giving up.
    pub max_retries: u32,
    /// The `User-Agent` header.
    pub user_agent: String,
    /// Mirrors for `docker.io` (`https://mirror.example`, `mirror.example:5000`),
    /// tried in order before Docker Hub itself.
    pub mirrors: Vec<String>,
    /// Extra CA certificates (PEM) by registry host (`host:port` or
    /// `host`), trusted for that host only besides the public roots:
    /// Docker's `certs.d/<host>/ca.crt`.
    pub ca_certs: HashMap<String, Vec<Vec<u8>>>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            insecure_hosts: Vec::new(),
            credentials: HashMap::new(),
            max_retries: 5,
            user_agent: concat!("berth/", env!("CARGO_PKG_VERSION")).to_string(),
            mirrors: Vec::new(),
            ca_certs: HashMap::new(),
        }
    }
}

/// A credential for one registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// A user name and password (or personal access token).
    Basic { username: String, password: String },
    /// An OAuth2 refresh token, exchanged at the token endpoint with a POST.
    IdentityToken(String),
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            Credential::IdentityToken(_) => f.write_str("IdentityToken(<redacted>)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_does_not_print_secrets() {
        let c = Credential::Basic {
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
        let t = Credential::IdentityToken("secret-token".into());
        assert!(!format!("{t:?}").contains("secret-token"));
    }

    #[test]
    fn client_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Client>();
    }

    #[test]
    fn default_config() {
        let c = ClientConfig::default();
        assert_eq!(c.max_retries, 5);
        assert!(c.user_agent.starts_with("berth/"));
    }
}
