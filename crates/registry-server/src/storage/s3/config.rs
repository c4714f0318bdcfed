//! The `[storage.s3]` settings and the object store they build.

use super::*;

/// The `[storage.s3]` table.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// `http(s)://host[:port]` of the S3 API.
    pub endpoint: String,
    pub bucket: String,
    /// The region requests are signed for (Garage's default: "garage").
    #[serde(default = "default_region")]
    pub region: String,
    /// Default: `$AWS_ACCESS_KEY_ID`.
    pub access_key_id: Option<String>,
    /// Default: `$AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: Option<String>,
    /// Keys go under `prefix/` (none by default).
    #[serde(default)]
    pub prefix: String,
}

fn default_region() -> String {
    "us-east-1".to_string()
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl S3Config {
    /// What is wrong with it, if anything.
    pub fn problem(&self) -> Option<String> {
        let ep = &self.endpoint;
        let host = ep
            .strip_prefix("http://")
            .or_else(|| ep.strip_prefix("https://"))
            .map(|r| r.strip_suffix('/').unwrap_or(r));
        match host {
            Some(h) if !h.is_empty() && !h.contains(['/', '?', '#', '@', ' ', '\\']) => {}
            _ => {
                return Some(format!(
                    "[storage.s3] endpoint {ep:?}: expected http(s)://host[:port], without a path"
                ))
            }
        }
        let b = &self.bucket;
        let bucket_ok = (3..=63).contains(&b.len())
            && b.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.')
            && !b.starts_with(['-', '.'])
            && !b.ends_with(['-', '.']);
        if !bucket_ok {
            return Some(format!(
                "[storage.s3] bucket {b:?}: 3 to 63 of a-z, 0-9, '-', '.'"
            ));
        }
        if self.region.is_empty()
            || self
                .region
                .contains(|c: char| c.is_whitespace() || c == '/')
        {
            return Some(format!(
                "[storage.s3] region {:?} is not valid",
                self.region
            ));
        }
        let p = &self.prefix;
        let prefix_ok = p.is_empty()
            || (p.len() <= 200
                && p.split('/').all(|part| {
                    !part.is_empty()
                        && part != "."
                        && part != ".."
                        && part
                            .bytes()
                            .all(|c| c.is_ascii_alphanumeric() || b"._-".contains(&c))
                }));
        if !prefix_ok {
            return Some(format!(
                "[storage.s3] prefix {p:?}: '/'-separated non-empty parts of A-Z, a-z, 0-9, '.', '_', '-' (no '.' or '..' parts)"
            ));
        }
        if self.access_key_id.is_some() != self.secret_access_key.is_some() {
            return Some(
                "[storage.s3] access_key_id and secret_access_key go together: give both or neither (then $AWS_ACCESS_KEY_ID and $AWS_SECRET_ACCESS_KEY)"
                    .to_string(),
            );
        }
        None
    }

    /// The credentials: the config's, else the environment's.
    pub(super) fn credentials(&self) -> Result<(String, String)> {
        if let (Some(k), Some(s)) = (&self.access_key_id, &self.secret_access_key) {
            return Ok((k.clone(), s.clone()));
        }
        match (
            std::env::var("AWS_ACCESS_KEY_ID"),
            std::env::var("AWS_SECRET_ACCESS_KEY"),
        ) {
            (Ok(k), Ok(s)) if !k.is_empty() && !s.is_empty() => Ok((k, s)),
            _ => Err(StorageError::Other(
                "[storage.s3] has no access_key_id/secret_access_key, and $AWS_ACCESS_KEY_ID/$AWS_SECRET_ACCESS_KEY are not both set".into(),
            )),
        }
    }
}
