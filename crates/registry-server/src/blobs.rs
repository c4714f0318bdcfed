//! Blob `GET`/`HEAD`, with `Range` (206 Partial Content), and `DELETE`.

use crate::error::ApiError;
use crate::names::Digest;
use crate::AppState;
use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::Response;

pub fn parse_digest(s: &str) -> Result<Digest, ApiError> {
    Digest::parse(s).ok_or_else(|| {
        ApiError::digest_invalid(format!(
            "invalid or unsupported digest {s:?} (sha256:<64 hex> or sha512:<128 hex>)"
        ))
    })
}

/// `bytes=A-B`, `bytes=A-` or `bytes=-N` against a blob of `len` bytes:
/// the inclusive range, or `None` when it cannot be satisfied.
fn parse_range(v: &str, len: u64) -> Option<(u64, u64)> {
    let spec = v.trim().strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    let (start, end) = if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        if n == 0 {
            return None;
        }
        (len.saturating_sub(n), len.checked_sub(1)?)
    } else {
        let start: u64 = a.parse().ok()?;
        let end = if b.is_empty() {
            len.checked_sub(1)?
        } else {
            b.parse::<u64>().ok()?.min(len.checked_sub(1)?)
        };
        (start, end)
    };
    (start <= end && start < len).then_some((start, end))
}

pub async fn get(
    st: &AppState,
    name: &str,
    digest: &str,
    range_header: Option<&str>,
    with_body: bool,
) -> Result<Response, ApiError> {
    let d = parse_digest(digest)?;
    let Some(len) = st.storage.repo_blob_size(name, &d).await? else {
        return Err(ApiError::blob_unknown(digest));
    };
    let range = match range_header {
        None => None,
        Some(v) => {
            let r = parse_range(v, len);
            if r.is_none() {
                return Err(ApiError::new(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "BLOB_UNKNOWN",
                    format!("range {v:?} not satisfiable for blob {d} of {len} bytes"),
                )
                .with_header(header::CONTENT_RANGE, format!("bytes */{len}")));
            }
            r
        }
    };
    let (start, end) = range.unwrap_or((0, len.saturating_sub(1)));
    let count = if len == 0 { 0 } else { end - start + 1 };
    let mut b = Response::builder()
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, count)
        .header(header::ACCEPT_RANGES, "bytes")
        .header("docker-content-digest", d.to_string())
        .header(header::ETAG, format!("\"{d}\""));
    if range.is_some() {
        b = b
            .status(StatusCode::PARTIAL_CONTENT)
            .header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{len}"));
    }
    let body = if with_body && count > 0 {
        Body::from_stream(st.storage.blob_stream(&d, start, count).await?)
    } else {
        Body::empty()
    };
    Ok(b.body(body).expect("valid blob response"))
}

/// `DELETE /v2/<name>/blobs/<digest>`: unlinks the blob from `name`
/// (202); `BLOB_UNKNOWN` when it is not linked there. The bytes go when gc
/// finds nothing that references them.
pub async fn delete(st: &AppState, name: &str, digest: &str) -> Result<Response, ApiError> {
    let d = parse_digest(digest)?;
    if !st.storage.unlink_blob(name, &d).await? {
        return Err(ApiError::blob_unknown(digest));
    }
    Ok(Response::builder()
        .status(StatusCode::ACCEPTED)
        .header(header::CONTENT_LENGTH, 0)
        .header("docker-content-digest", d.to_string())
        .body(Body::empty())
        .expect("valid blob delete response"))
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some((0, 9)));
        assert_eq!(parse_range("bytes=90-", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=-10", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=50-500", 100), Some((50, 99)));
        assert_eq!(parse_range("bytes=100-", 100), None);
        assert_eq!(parse_range("bytes=9-3", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
    }
}
