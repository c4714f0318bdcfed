//! The registry client as the image store's `Source`.

use berth_image::digest::Digest;
use berth_image::pull::{Source, SourceError};
use berth_image::reference::Reference;
use berth_registry::{Client, ClientConfig};

pub struct RegistrySource {
    client: Client,
}

/// A registry client with credentials from Docker's config
/// (`~/.docker/config.json`, helpers too), insecure registries and mirrors
/// from berth's config file, CA certificates from `certs.d` beside it, plus `insecure` (hosts reachable over plain
/// http; loopback already is). Shared by pull and push.
pub fn client(insecure: Vec<String>) -> anyhow::Result<Client> {
    let settings = crate::config::load()?;
    let mut hosts = settings.insecure_registries;
    hosts.extend(insecure);
    let mut cfg = ClientConfig {
        insecure_hosts: hosts,
        mirrors: settings.registry_mirrors,
        ca_certs: crate::config::ca_certs()?,
        ..ClientConfig::default()
    };
    if let Some(p) = berth_registry::dockerconfig::default_path() {
        if p.exists() {
            cfg.credentials = berth_registry::dockerconfig::load(&p)?;
        }
    }
    Ok(Client::new(cfg)?)
}

impl RegistrySource {
    /// A source over [`client`].
    pub fn new(insecure: Vec<String>) -> anyhow::Result<RegistrySource> {
        Ok(RegistrySource {
            client: client(insecure)?,
        })
    }
}

impl Source for RegistrySource {
    fn manifest(
        &self,
        r: &Reference,
        reference: &str,
    ) -> Result<(Vec<u8>, String, Digest), SourceError> {
        let m = self.client.fetch_manifest(&r.domain, &r.path, reference)?;
        let d: Digest = m.digest.parse()?;
        Ok((m.bytes, m.media_type, d))
    }

    fn blob(
        &self,
        r: &Reference,
        digest: &Digest,
        size: Option<u64>,
        out: &mut std::fs::File,
        progress: &mut dyn FnMut(u64, Option<u64>),
    ) -> Result<(), SourceError> {
        self.client
            .fetch_blob(&r.domain, &r.path, digest.as_str(), size, out, progress)?;
        Ok(())
    }
}
