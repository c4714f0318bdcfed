//! Manifests, indexes and image configs: media types, parsing (OCI and
//! Docker schema 2 into the same OCI types), platform selection, layer
//! compression.

use crate::digest::Digest;
use oci_spec_image::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest};
use std::fmt;

/// Largest manifest or index berth reads (as containerd).
pub const MAX_MANIFEST: u64 = 4 << 20;
/// Largest image config berth reads.
pub const MAX_CONFIG: u64 = 8 << 20;

pub mod media_type {
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
    pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
    pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    pub const OCI_LAYER_NONDIST: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar";
    pub const OCI_LAYER_NONDIST_GZIP: &str =
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
    pub const OCI_LAYER_NONDIST_ZSTD: &str =
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_MANIFEST_LIST: &str =
        "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    pub const DOCKER_LAYER_ZSTD: &str = "application/vnd.docker.image.rootfs.diff.tar.zstd";
    pub const DOCKER_FOREIGN_LAYER: &str =
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
    pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
    pub const DOCKER_SCHEMA1_SIGNED: &str =
        "application/vnd.docker.distribution.manifest.v1+prettyjws";

    /// The `Accept` header list for a manifest GET, best first.
    pub const MANIFEST_ACCEPT: &[&str] = &[
        OCI_INDEX,
        DOCKER_MANIFEST_LIST,
        OCI_MANIFEST,
        DOCKER_MANIFEST,
    ];
}
use media_type as mt;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unsupported manifest schema 1 for {0}: re-push the image with a newer client")]
    Schema1(String),
    #[error("unsupported manifest media type {media_type:?} for {source_name}")]
    UnsupportedMediaType {
        source_name: String,
        media_type: String,
    },
    #[error("{what} for {source_name} is {size} bytes, more than the {limit}-byte limit")]
    TooLarge {
        what: &'static str,
        source_name: String,
        size: u64,
        limit: u64,
    },
    #[error("invalid {what} for {source_name}: {reason}")]
    Invalid {
        what: &'static str,
        source_name: String,
        reason: String,
    },
    #[error(
        "no matching manifest for {wanted} in the manifest list entries (available: {available})"
    )]
    NoMatchingPlatform { wanted: String, available: String },
    #[error("invalid platform {input:?}: {reason}")]
    InvalidPlatform { input: String, reason: &'static str },
}

pub type Result<T> = std::result::Result<T, Error>;

/// A parsed manifest: one image, or an index of images (OCI index or Docker
/// manifest list).
// One per pull: its size does not matter, and unboxed variants keep
// `Manifest::Image(m)` patterns simple.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Manifest {
    Image(ImageManifest),
    Index(ImageIndex),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Image,
    Index,
    Schema1,
}

fn kind_of(media_type: &str) -> Option<Kind> {
    match media_type {
        mt::OCI_MANIFEST | mt::DOCKER_MANIFEST => Some(Kind::Image),
        mt::OCI_INDEX | mt::DOCKER_MANIFEST_LIST => Some(Kind::Index),
        mt::DOCKER_SCHEMA1 | mt::DOCKER_SCHEMA1_SIGNED => Some(Kind::Schema1),
        _ => None,
    }
}

/// `type/subtype; params` -> `type/subtype`, lowercased.
fn bare_media_type(ct: &str) -> String {
    ct.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Just the fields that tell what a document is.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    schema_version: Option<serde_json::Value>,
    media_type: Option<String>,
    manifests: Option<serde_json::Value>,
    config: Option<serde_json::Value>,
    layers: Option<serde_json::Value>,
    fs_layers: Option<serde_json::Value>,
}

impl Manifest {
    /// Parses a manifest or index. `content_type` is the registry's
    /// `Content-Type` (when missing or generic, the document's own
    /// `mediaType`, then its shape, decide); `source` names what is parsed
    /// (a reference or digest) in errors. A missing `mediaType` field is
    /// filled in, so keep the original bytes for digests and re-pushes.
    pub fn parse(bytes: &[u8], content_type: Option<&str>, source: &str) -> Result<Manifest> {
        if bytes.len() as u64 > MAX_MANIFEST {
            return Err(Error::TooLarge {
                what: "manifest",
                source_name: source.to_string(),
                size: bytes.len() as u64,
                limit: MAX_MANIFEST,
            });
        }
        let invalid = |reason: String| Error::Invalid {
            what: "manifest",
            source_name: source.to_string(),
            reason,
        };
        let probe: Probe = serde_json::from_slice(bytes)
            .map_err(|e| invalid(format!("not a JSON object: {e}")))?;
        let declared = content_type.map(bare_media_type).filter(|c| {
            // Generic types some registries send say nothing.
            !c.is_empty()
                && c != "application/json"
                && c != "text/plain"
                && c != "application/octet-stream"
        });
        let in_doc = probe.media_type.as_deref().map(bare_media_type);
        if probe.fs_layers.is_some()
            || probe.schema_version.as_ref().and_then(|v| v.as_u64()) == Some(1)
        {
            return Err(Error::Schema1(source.to_string()));
        }
        let kind = match (&declared, &in_doc) {
            (Some(d), _) => kind_of(d).ok_or_else(|| Error::UnsupportedMediaType {
                source_name: source.to_string(),
                media_type: d.clone(),
            })?,
            (None, Some(m)) => kind_of(m).ok_or_else(|| Error::UnsupportedMediaType {
                source_name: source.to_string(),
                media_type: m.clone(),
            })?,
            (None, None) => match (&probe.manifests, &probe.config, &probe.layers) {
                (Some(_), None, None) => Kind::Index,
                (None, Some(_), Some(_)) => Kind::Image,
                _ => {
                    return Err(invalid(
                        "no media type, and neither an image manifest nor an index".into(),
                    ))
                }
            },
        };
        if kind == Kind::Schema1 {
            return Err(Error::Schema1(source.to_string()));
        }
        // The document must not contradict the content type (image-spec:
        // guards against a manifest being served as an index or vice versa).
        if let (Some(d), Some(m)) = (&declared, &in_doc) {
            if kind_of(m) != Some(kind) {
                return Err(invalid(format!(
                    "content type {d} does not match mediaType {m} in the document"
                )));
            }
        }
        if probe.schema_version.as_ref().and_then(|v| v.as_u64()) != Some(2) {
            return Err(invalid("schemaVersion must be 2".into()));
        }
        let effective = declared.or(in_doc);
        match kind {
            Kind::Image => {
                if probe.manifests.is_some() {
                    return Err(invalid(
                        "an image manifest must not have \"manifests\"".into(),
                    ));
                }
                let mut m: ImageManifest =
                    serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
                if m.media_type().is_none() {
                    let t = effective.unwrap_or_else(|| mt::OCI_MANIFEST.to_string());
                    m.set_media_type(Some(t.as_str().into()));
                }
                check_descriptors(std::iter::once(m.config()).chain(m.layers()), source)?;
                Ok(Manifest::Image(m))
            }
            Kind::Index => {
                if probe.config.is_some() || probe.layers.is_some() {
                    return Err(invalid(
                        "an index must not have \"config\" or \"layers\"".into(),
                    ));
                }
                let mut i: ImageIndex =
                    serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
                if i.media_type().is_none() {
                    let t = effective.unwrap_or_else(|| mt::OCI_INDEX.to_string());
                    i.set_media_type(Some(t.as_str().into()));
                }
                check_descriptors(i.manifests().iter(), source)?;
                Ok(Manifest::Index(i))
            }
            Kind::Schema1 => unreachable!("handled above"),
        }
    }

    /// The media type of the document (from the content type or the
    /// document; OCI's when neither said).
    pub fn media_type(&self) -> String {
        match self {
            Manifest::Image(m) => m.media_type().as_ref().map(|t| t.to_string()),
            Manifest::Index(i) => i.media_type().as_ref().map(|t| t.to_string()),
        }
        .unwrap_or_else(|| match self {
            Manifest::Image(_) => mt::OCI_MANIFEST.to_string(),
            Manifest::Index(_) => mt::OCI_INDEX.to_string(),
        })
    }
}

/// Every descriptor must carry a digest berth can verify.
fn check_descriptors<'a>(descs: impl Iterator<Item = &'a Descriptor>, source: &str) -> Result<()> {
    for d in descs {
        descriptor_digest(d).map_err(|e| Error::Invalid {
            what: "manifest",
            source_name: source.to_string(),
            reason: e.to_string(),
        })?;
    }
    Ok(())
}

/// A descriptor's digest as a [`Digest`] (sha256/sha512 only).
pub fn descriptor_digest(d: &Descriptor) -> std::result::Result<Digest, crate::digest::Error> {
    Digest::try_from(d.digest())
}

/// Is this a manifest (not index) media type berth can read?
pub fn is_image_manifest(media_type: &str) -> bool {
    kind_of(&bare_media_type(media_type)) == Some(Kind::Image)
}

/// Is this an index / manifest list media type?
pub fn is_index(media_type: &str) -> bool {
    kind_of(&bare_media_type(media_type)) == Some(Kind::Index)
}

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// Guesses from the first bytes of a blob (gzip and zstd magic numbers).
    pub fn detect(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// The compression a layer media type says, or `None` when the media type
/// is not a layer type berth knows (callers may then sniff the content).
pub fn layer_compression(media_type: &str) -> Option<Compression> {
    Some(match bare_media_type(media_type).as_str() {
        mt::OCI_LAYER | mt::OCI_LAYER_NONDIST | mt::DOCKER_LAYER => Compression::None,
        mt::OCI_LAYER_GZIP
        | mt::OCI_LAYER_NONDIST_GZIP
        | mt::DOCKER_LAYER_GZIP
        | mt::DOCKER_FOREIGN_LAYER => Compression::Gzip,
        mt::OCI_LAYER_ZSTD | mt::OCI_LAYER_NONDIST_ZSTD | mt::DOCKER_LAYER_ZSTD => {
            Compression::Zstd
        }
        _ => return None,
    })
}

/// Layers that registries need not serve (Windows base layers and the like).
pub fn is_non_distributable(media_type: &str) -> bool {
    matches!(
        bare_media_type(media_type).as_str(),
        mt::OCI_LAYER_NONDIST
            | mt::OCI_LAYER_NONDIST_GZIP
            | mt::OCI_LAYER_NONDIST_ZSTD
            | mt::DOCKER_FOREIGN_LAYER
    )
}

/// Parses an image config (OCI or Docker, same shape), size-capped.
pub fn parse_config(bytes: &[u8]) -> Result<ImageConfiguration> {
    parse_config_for(bytes, "image config")
}

/// [`parse_config`] naming `source` in errors.
pub fn parse_config_for(bytes: &[u8], source: &str) -> Result<ImageConfiguration> {
    if bytes.len() as u64 > MAX_CONFIG {
        return Err(Error::TooLarge {
            what: "image config",
            source_name: source.to_string(),
            size: bytes.len() as u64,
            limit: MAX_CONFIG,
        });
    }
    let config: ImageConfiguration = serde_json::from_slice(bytes).map_err(|e| Error::Invalid {
        what: "image config",
        source_name: source.to_string(),
        reason: e.to_string(),
    })?;
    if config.rootfs().typ() != "layers" {
        return Err(Error::Invalid {
            what: "image config",
            source_name: source.to_string(),
            reason: format!("rootfs type {:?} is not \"layers\"", config.rootfs().typ()),
        });
    }
    Ok(config)
}

/// The config's `rootfs.diff_ids`, validated.
pub fn diff_ids(config: &ImageConfiguration) -> Result<Vec<Digest>> {
    config
        .rootfs()
        .diff_ids()
        .iter()
        .map(|s| {
            s.parse::<Digest>().map_err(|e| Error::Invalid {
                what: "image config",
                source_name: "rootfs.diff_ids".to_string(),
                reason: e.to_string(),
            })
        })
        .collect()
}

/// A parsed image config with its diff ids.
#[derive(Debug, Clone)]
pub struct ImageConfig {
    pub config: ImageConfiguration,
    pub diff_ids: Vec<Digest>,
}

impl ImageConfig {
    pub fn parse(bytes: &[u8], source: &str) -> Result<ImageConfig> {
        let config = parse_config_for(bytes, source)?;
        let diff_ids = diff_ids(&config).map_err(|e| match e {
            Error::Invalid { reason, .. } => Error::Invalid {
                what: "image config",
                source_name: source.to_string(),
                reason: format!("rootfs.diff_ids: {reason}"),
            },
            e => e,
        })?;
        Ok(ImageConfig { config, diff_ids })
    }

    /// Errors unless `manifest` has one layer per diff id.
    pub fn check_layers(&self, manifest: &ImageManifest, source: &str) -> Result<()> {
        if manifest.layers().len() != self.diff_ids.len() {
            return Err(Error::Invalid {
                what: "image",
                source_name: source.to_string(),
                reason: format!(
                    "the manifest has {} layers but the config lists {} diff ids",
                    manifest.layers().len(),
                    self.diff_ids.len()
                ),
            });
        }
        Ok(())
    }
}

/// An OS/architecture/variant triple, in Go's names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
        Platform {
            os: os.to_string(),
            architecture: architecture.to_string(),
            variant: variant.map(str::to_string),
        }
    }

    /// The platform this binary runs on (`linux/amd64`, `linux/arm64/v8`...).
    pub fn host() -> Platform {
        let (arch, variant) = go_arch(std::env::consts::ARCH);
        Platform::new(std::env::consts::OS, arch, variant)
    }

    /// `os/arch[/variant]`, or just `arch` (os linux) as `--platform` takes.
    pub fn parse(s: &str) -> Result<Platform> {
        let invalid = |reason| Error::InvalidPlatform {
            input: s.to_string(),
            reason,
        };
        let parts: Vec<&str> = s.split('/').collect();
        let ok = |p: &str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        };
        if parts.iter().any(|p| !ok(p)) {
            return Err(invalid("expected os/arch[/variant], e.g. linux/arm64/v8"));
        }
        let lower: Vec<String> = parts.iter().map(|p| p.to_ascii_lowercase()).collect();
        let p = match lower.as_slice() {
            [one] if one == "linux" || one == "windows" || one == "darwin" || one == "freebsd" => {
                Platform {
                    os: one.clone(),
                    ..Platform::host()
                }
            }
            [arch] => Platform::new("linux", arch, None),
            [os, arch] => Platform::new(os, arch, None),
            [os, arch, variant] => Platform::new(os, arch, Some(variant)),
            _ => return Err(invalid("expected os/arch[/variant], e.g. linux/arm64/v8")),
        };
        Ok(p)
    }

    pub fn from_oci(p: &oci_spec_image::image::Platform) -> Platform {
        Platform {
            os: p.os().to_string(),
            architecture: p.architecture().to_string(),
            variant: p.variant().clone().filter(|v| !v.is_empty()),
        }
    }

    /// containerd's `platforms.Normalize`: `aarch64` -> `arm64`, `x86_64`
    /// -> `amd64`, `arm64/v8` -> `arm64`, `arm` -> `arm/v7`...
    pub fn normalize(&self) -> Platform {
        let os = self.os.to_ascii_lowercase();
        let os = if os == "macos" { "darwin".into() } else { os };
        let mut arch = self.architecture.to_ascii_lowercase();
        let mut variant = self.variant.as_deref().unwrap_or("").to_ascii_lowercase();
        match arch.as_str() {
            "i386" => {
                arch = "386".into();
                variant.clear();
            }
            "x86_64" | "x86-64" | "amd64" => {
                arch = "amd64".into();
                if variant == "v1" {
                    variant.clear();
                }
            }
            "aarch64" | "arm64" => {
                arch = "arm64".into();
                match variant.as_str() {
                    "8" | "v8" | "v8.0" => variant.clear(),
                    "9" | "9.0" | "v9.0" => variant = "v9".into(),
                    _ => {}
                }
            }
            "armhf" => {
                arch = "arm".into();
                variant = "v7".into();
            }
            "armel" => {
                arch = "arm".into();
                variant = "v6".into();
            }
            "arm" => match variant.as_str() {
                "" | "7" => variant = "v7".into(),
                "5" | "6" | "8" => variant = format!("v{variant}"),
                _ => {}
            },
            _ => {}
        }
        Platform {
            os,
            architecture: arch,
            variant: (!variant.is_empty()).then_some(variant),
        }
    }

    /// The platforms this one can run, best first (containerd's
    /// `platforms.Only`): amd64/v3 runs v2, v1 and 386; arm64 runs
    /// arm/v8..v5; arm/v7 runs v6 and v5.
    pub fn compatible(&self) -> Vec<Platform> {
        let p = self.normalize();
        let mut out = vec![p.clone()];
        let version = |v: &Option<String>| {
            v.as_deref()
                .and_then(|v| v.strip_prefix('v'))
                .and_then(|n| n.parse::<u32>().ok())
        };
        match p.architecture.as_str() {
            "amd64" => {
                if let Some(n) = version(&p.variant) {
                    for k in (1..n).rev() {
                        let v = (k > 1).then(|| format!("v{k}"));
                        out.push(Platform {
                            variant: v,
                            ..p.clone()
                        });
                    }
                }
                out.push(Platform::new(&p.os, "386", None));
            }
            "arm" => {
                if let Some(n) = version(&p.variant) {
                    for k in (5..n).rev() {
                        out.push(Platform::new(&p.os, "arm", Some(&format!("v{k}"))));
                    }
                }
            }
            "arm64" => {
                let v = p.variant.clone().unwrap_or_else(|| "v8".into());
                out.extend(Platform::new(&p.os, "arm", Some(&v)).compatible());
            }
            _ => {}
        }
        let mut seen = Vec::new();
        out.retain(|x| {
            let n = x.normalize();
            if seen.contains(&n) {
                false
            } else {
                seen.push(n);
                true
            }
        });
        out
    }

    /// Same platform after normalisation.
    pub fn matches(&self, other: &Platform) -> bool {
        self.normalize() == other.normalize()
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Rust's `std::env::consts::ARCH` in Go's names (with the default variant).
fn go_arch(rust: &str) -> (&str, Option<&'static str>) {
    match rust {
        "x86_64" => ("amd64", None),
        "x86" => ("386", None),
        "aarch64" => ("arm64", Some("v8")),
        "arm" => ("arm", Some("v7")),
        "powerpc64" if cfg!(target_endian = "little") => ("ppc64le", None),
        "powerpc64" => ("ppc64", None),
        "powerpc" => ("ppc", None),
        "mips64" if cfg!(target_endian = "little") => ("mips64le", None),
        "mips" if cfg!(target_endian = "little") => ("mipsle", None),
        "loongarch64" => ("loong64", None),
        "s390x" => ("s390x", None),
        "riscv64" => ("riscv64", None),
        other => (other, None),
    }
}

/// Picks the manifest for `platform` out of an index: the first entry
/// matching the best compatible platform (see [`Platform::compatible`]);
/// entries with no platform are a last resort. Attestation manifests
/// (`unknown/unknown`) and non-manifest entries never match.
pub fn select_platform(index: &ImageIndex, platform: &Platform) -> Result<Descriptor> {
    let usable = |d: &&Descriptor| is_image_manifest(d.media_type().as_ref());
    for want in platform.compatible() {
        let found = index.manifests().iter().filter(usable).find(|d| {
            d.platform()
                .as_ref()
                .is_some_and(|p| Platform::from_oci(p).normalize() == want)
        });
        if let Some(d) = found {
            return Ok(d.clone());
        }
    }
    if let Some(d) = index
        .manifests()
        .iter()
        .filter(usable)
        .find(|d| d.platform().is_none())
    {
        return Ok(d.clone());
    }
    let mut available: Vec<String> = index
        .manifests()
        .iter()
        .filter_map(|d| d.platform().as_ref())
        .map(|p| Platform::from_oci(p).to_string())
        .filter(|p| p != "unknown/unknown")
        .collect();
    available.dedup();
    Err(Error::NoMatchingPlatform {
        wanted: platform.to_string(),
        available: if available.is_empty() {
            "none".into()
        } else {
            available.join(", ")
        },
    })
}

#[cfg(test)]
#[path = "manifest_tests.rs"]
mod tests;
