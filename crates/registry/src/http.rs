//! The HTTP clients a [`crate::Client`] sends with: one that verifies
//! certificates against the system's roots, one for insecure registries,
//! and one per host with extra CA certificates. Each is built on its first
//! use: building a reqwest client loads the system's root certificates (a
//! few hundred files under /etc/ssl/certs) and starts a runtime thread, which
//! a pull from a plain-http loopback registry never needs (it was 9.7 ms of
//! an 18 ms warm pull).

use std::collections::HashMap;
use std::sync::OnceLock;

use reqwest::Url;

use crate::error::{Error, Result};
use crate::hosts::is_insecure;

type Build = Box<dyn Fn() -> reqwest::Result<reqwest::blocking::Client> + Send + Sync>;

/// A client made on first use (a failed build is tried again next time).
struct Lazy {
    build: Build,
    client: OnceLock<reqwest::blocking::Client>,
}

impl Lazy {
    fn new(build: Build) -> Lazy {
        Lazy {
            build,
            client: OnceLock::new(),
        }
    }

    fn get(&self) -> Result<&reqwest::blocking::Client> {
        if let Some(c) = self.client.get() {
            return Ok(c);
        }
        let c = (self.build)().map_err(Error::HttpClient)?;
        // Two threads may race to build; either client will do.
        let _ = self.client.set(c);
        Ok(self.client.get().expect("set above"))
    }
}

pub(crate) struct Http {
    secure: Lazy,
    insecure: Lazy,
    insecure_hosts: Vec<String>,
    /// By `host:port` or `host`: verifying with the host's extra CAs too.
    with_ca: HashMap<String, Lazy>,
}

impl Http {
    /// `builder(accept_invalid_certs)` makes a configured builder; the
    /// hosts in `with_ca` get their certificates added as extra roots.
    pub(crate) fn new<F>(
        builder: F,
        insecure_hosts: Vec<String>,
        with_ca: HashMap<String, Vec<reqwest::Certificate>>,
    ) -> Http
    where
        F: Fn(bool) -> reqwest::blocking::ClientBuilder + Clone + Send + Sync + 'static,
    {
        let plain = |accept_invalid: bool| -> Lazy {
            let b = builder.clone();
            Lazy::new(Box::new(move || b(accept_invalid).build()))
        };
        let with_ca = with_ca
            .into_iter()
            .map(|(host, certs)| {
                let b = builder.clone();
                let lazy = Lazy::new(Box::new(move || {
                    let mut cb = b(false);
                    for c in &certs {
                        cb = cb.add_root_certificate(c.clone());
                    }
                    cb.build()
                }));
                (host, lazy)
            })
            .collect();
        Http {
            secure: plain(false),
            insecure: plain(true),
            insecure_hosts,
            with_ca,
        }
    }

    pub(crate) fn is_insecure_url(&self, url: &Url) -> bool {
        is_insecure(&url_host_port(url), &self.insecure_hosts)
    }

    /// The client for a request to `url` (built now if this is its first).
    pub(crate) fn for_url(&self, url: &Url) -> Result<&reqwest::blocking::Client> {
        if self.is_insecure_url(url) {
            return self.insecure.get();
        }
        let host = url_host_port(url);
        let name = url.host_str().unwrap_or_default();
        self.with_ca
            .get(&host)
            .or_else(|| self.with_ca.get(name))
            .unwrap_or(&self.secure)
            .get()
    }

    /// Whether the client for `url` has been built (for tests).
    #[cfg(test)]
    pub(crate) fn built(&self, url: &Url) -> bool {
        if self.is_insecure_url(url) {
            return self.insecure.client.get().is_some();
        }
        self.secure.client.get().is_some()
    }
}

pub(crate) fn url_host_port(url: &Url) -> String {
    let host = url.host_str().unwrap_or("");
    match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn clients_are_built_on_first_use_only() {
        let builds = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&builds);
        let http = Http::new(
            move |accept_invalid| {
                counted.fetch_add(1, Ordering::SeqCst);
                reqwest::blocking::Client::builder().danger_accept_invalid_certs(accept_invalid)
            },
            vec!["reg.lan:5000".to_string()],
            HashMap::new(),
        );
        let loopback = Url::parse("http://127.0.0.1:5000/v2/").unwrap();
        let lan = Url::parse("http://reg.lan:5000/v2/").unwrap();
        let hub = Url::parse("https://registry-1.docker.io/v2/").unwrap();
        assert_eq!(builds.load(Ordering::SeqCst), 0, "nothing built up front");
        http.for_url(&loopback).unwrap();
        http.for_url(&lan).unwrap();
        assert!(http.built(&loopback));
        assert!(!http.built(&hub), "the verifying client is not needed yet");
        assert_eq!(
            builds.load(Ordering::SeqCst),
            1,
            "one insecure client, built once"
        );
        http.for_url(&hub).unwrap();
        http.for_url(&hub).unwrap();
        assert!(http.built(&hub));
        assert_eq!(builds.load(Ordering::SeqCst), 2);
    }
}
