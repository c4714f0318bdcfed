//! Pull-through cache mode (`--proxy-remote URL`, `[proxy]` in the
//! config), after distribution's proxy mode:
//!
//! - a manifest by tag is asked of the upstream first (HEAD with the
//!   client's Accept types); a manifest not stored yet is fetched by
//!   digest, checked (size ≤ 4 MiB, digest, media type, JSON), stored and
//!   the tag pointed at it. When the upstream cannot answer (unreachable,
//!   5xx, refused credentials, 404 too) the cached tag is served; with no
//!   cached tag the answer is 404 `MANIFEST_UNKNOWN`, as distribution's;
//! - a manifest by digest and a blob are served from storage when stored;
//!   else fetched. A blob streams to the client while it is written to a
//!   temp file and hashed; only a complete body of the right digest (and
//!   of the upstream's Content-Length) is committed to storage. On a
//!   mismatch the last chunk is held back and the response aborted, so the
//!   client never gets a whole body that is wrong. An upstream 404 is a
//!   404 (`MANIFEST_UNKNOWN`, `BLOB_UNKNOWN`); an unreachable upstream is
//!   503 `UNAVAILABLE` (distribution answers 500 `UNKNOWN` there);
//! - the tag list is the upstream's (every page), else the cached tags;
//!   the catalog and referrers are what is cached;
//! - pushes, manifest puts and deletes are refused: 405 `UNSUPPORTED`.

use crate::blobs::{self, parse_digest};
use crate::error::ApiError;
use crate::manifests::{self, Ref, MAX_MANIFEST};
use crate::names::{valid_tag, Digest, Hasher};
use crate::storage::BlobWriter;
use crate::upstream::{chain, read_capped, Upstream, UpstreamError};
use crate::{referrers, AppState};
use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use std::sync::Arc;

/// The most tag list pages followed upstream.
const MAX_TAG_PAGES: usize = 100;

fn scope(name: &str) -> String {
    format!("repository:{name}:pull")
}

fn unavailable(e: UpstreamError) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "UNAVAILABLE",
        e.to_string(),
    )
}

/// The Accept header sent upstream: the client's, else every manifest
/// type this registry stores.
fn accept(client: Option<&HeaderValue>) -> HeaderMap {
    let mut h = HeaderMap::new();
    let all = [
        manifests::OCI_MANIFEST,
        manifests::OCI_INDEX,
        manifests::DOCKER_MANIFEST,
        manifests::DOCKER_LIST,
    ]
    .join(", ");
    let v = client
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_str(&all).expect("static header"));
    h.insert(header::ACCEPT, v);
    h
}

/// Every manifest type, after the client's own preference (fetching by
/// digest: the bytes are what they are).
fn accept_all(client: Option<&HeaderValue>) -> HeaderMap {
    let mut h = accept(None);
    if let Some(c) = client.and_then(|c| c.to_str().ok()) {
        let all = h[header::ACCEPT].to_str().unwrap_or_default().to_string();
        if let Ok(v) = HeaderValue::from_str(&format!("{c}, {all}")) {
            h.insert(header::ACCEPT, v);
        }
    }
    h
}

/// [`Upstream::send`] in `name`'s repository scope; any answer but 200 is
/// an error.
async fn send_ok(
    up: &Upstream,
    method: Method,
    path: &str,
    headers: &HeaderMap,
    name: &str,
    what: &str,
    small: bool,
) -> Result<reqwest::Response, UpstreamError> {
    let resp = up
        .send(method, path, headers, &scope(name), what, small)
        .await?;
    if resp.status() != StatusCode::OK {
        return Err(status_error(resp.status(), what));
    }
    Ok(resp)
}

/// An upstream answer's status as an error (`what`: for messages).
fn status_error(status: StatusCode, what: &str) -> UpstreamError {
    if status == StatusCode::NOT_FOUND {
        UpstreamError::NotFound {
            what: what.to_string(),
        }
    } else {
        UpstreamError::unavailable(what, format!("answered {status}"))
    }
}

/// `GET`/`HEAD /v2/<name>/manifests/<reference>` in proxy mode.
pub async fn manifest(
    st: &AppState,
    up: &Upstream,
    name: &str,
    reference: &str,
    client_accept: Option<&HeaderValue>,
    with_body: bool,
) -> Result<Response, ApiError> {
    let r = manifests::parse_ref(reference)
        .map_err(|_| ApiError::manifest_unknown(&format!("{name}:{reference}")))?;
    match r {
        Ref::Digest(d) => {
            if !st.storage.has_manifest(name, &d).await? {
                fetch_manifest(st, up, name, &d.to_string(), Some(&d), None, client_accept)
                    .await
                    .map_err(|e| match e {
                        FetchError::Upstream(UpstreamError::NotFound { .. }) => {
                            ApiError::manifest_unknown(&format!("{name}@{d}"))
                        }
                        FetchError::Upstream(e) => unavailable(e),
                        FetchError::Api(e) => e,
                    })?;
            }
            manifests::get(st, name, &d.to_string(), with_body).await
        }
        Ref::Tag(tag) => match refresh_tag(st, up, name, &tag, client_accept).await {
            Ok(d) => manifests::get(st, name, &d.to_string(), with_body).await,
            Err(e) => {
                if st.storage.resolve_tag(name, &tag).await?.is_some() {
                    eprintln!("berth registry: proxy: serving cached {name}:{tag}: {e}");
                    return manifests::get(st, name, &tag, with_body).await;
                }
                Err(match e {
                    FetchError::Api(e) => e,
                    FetchError::Upstream(e) => ApiError::new(
                        StatusCode::NOT_FOUND,
                        "MANIFEST_UNKNOWN",
                        format!("manifest unknown: {name}:{tag} (not cached; {e})"),
                    ),
                })
            }
        },
    }
}

enum FetchError {
    Upstream(UpstreamError),
    /// The upstream's answer was refused (bad digest, too big...), or
    /// storing it failed.
    Api(ApiError),
}

impl From<UpstreamError> for FetchError {
    fn from(e: UpstreamError) -> Self {
        FetchError::Upstream(e)
    }
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::Upstream(e) => e.fmt(f),
            FetchError::Api(e) => e.fmt(f),
        }
    }
}

/// Asks the upstream what `tag` points at, makes sure that manifest is
/// stored, and points the local tag at it: the digest.
async fn refresh_tag(
    st: &AppState,
    up: &Upstream,
    name: &str,
    tag: &str,
    client_accept: Option<&HeaderValue>,
) -> Result<Digest, FetchError> {
    let what = format!("manifest {name}:{tag}");
    let resp = send_ok(
        up,
        Method::HEAD,
        &format!("/v2/{name}/manifests/{tag}"),
        &accept(client_accept),
        name,
        &what,
        true,
    )
    .await?;
    let head_digest = resp
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .and_then(Digest::parse);
    let stored = match &head_digest {
        Some(d) => st
            .storage
            .has_manifest(name, d)
            .await
            .map_err(|e| FetchError::Api(e.into()))?,
        None => false,
    };
    match head_digest {
        Some(d) if stored => {
            let current = st
                .storage
                .resolve_tag(name, tag)
                .await
                .map_err(|e| FetchError::Api(e.into()))?;
            if current.as_ref() == Some(&d) {
                return Ok(d);
            }
            let (body, mt) = st
                .storage
                .manifest(name, &d)
                .await
                .map_err(|e| FetchError::Api(e.into()))?
                .ok_or_else(|| FetchError::Api(ApiError::manifest_unknown(&d.to_string())))?;
            st.storage
                .put_manifest(name, &body, &d, &mt, Some(tag))
                .await
                .map_err(|e| FetchError::Api(e.into()))?;
            Ok(d)
        }
        Some(d) => {
            fetch_manifest(
                st,
                up,
                name,
                &d.to_string(),
                Some(&d),
                Some(tag),
                client_accept,
            )
            .await?;
            Ok(d)
        }
        // No digest in the HEAD answer: the manifest by tag, digest ours.
        None => fetch_manifest(st, up, name, tag, None, Some(tag), client_accept).await,
    }
}

/// GETs manifest `reference` upstream, checks it (`want`: the digest it
/// must have) and stores it in `name` (tagged `tag`): its digest.
async fn fetch_manifest(
    st: &AppState,
    up: &Upstream,
    name: &str,
    reference: &str,
    want: Option<&Digest>,
    tag: Option<&str>,
    client_accept: Option<&HeaderValue>,
) -> Result<Digest, FetchError> {
    let what = format!("manifest {name}@{reference}");
    let bad = |m: String| {
        FetchError::Api(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "MANIFEST_INVALID",
            format!("upstream {what}: {m}"),
        ))
    };
    let mut resp = send_ok(
        up,
        Method::GET,
        &format!("/v2/{name}/manifests/{reference}"),
        &accept_all(client_accept),
        name,
        &what,
        true,
    )
    .await?;
    let content_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or(v).trim().to_string());
    let header_digest = resp
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = read_capped(&mut resp, MAX_MANIFEST)
        .await
        .map_err(|e| UpstreamError::unavailable(&what, chain(&e)))?
        .ok_or_else(|| bad(format!("larger than {MAX_MANIFEST} bytes")))?;
    let d = match want {
        Some(w) => {
            let got = Digest::of(w.algorithm, &body);
            if &got != w {
                return Err(bad(format!("the body has digest {got}, not {w}")));
            }
            got
        }
        None => {
            let got = Digest::of("sha256", &body);
            if let Some(h) = header_digest.as_deref().and_then(Digest::parse) {
                if Digest::of(h.algorithm, &body) != h {
                    return Err(bad(format!(
                        "Docker-Content-Digest {h} does not match the body"
                    )));
                }
            }
            got
        }
    };
    let (v, mt) = manifests::check(&body, content_type.as_deref())
        .map_err(|e| bad(format!("invalid manifest: {}", e.message)))?;
    st.storage
        .put_manifest(name, &body, &d, &mt, tag)
        .await
        .map_err(|e| FetchError::Api(e.into()))?;
    if let Ok(Some(s)) = referrers::subject_of(&v) {
        let desc = referrers::descriptor(&v, &d, body.len(), &mt);
        let desc = serde_json::to_vec(&desc).expect("descriptor serializes");
        st.storage
            .add_referrer(name, &s, &d, &desc)
            .await
            .map_err(|e| FetchError::Api(e.into()))?;
    }
    Ok(d)
}

/// `GET`/`HEAD /v2/<name>/blobs/<digest>` in proxy mode.
pub async fn blob(
    st: Arc<AppState>,
    up: Arc<Upstream>,
    name: &str,
    digest: &str,
    range: Option<&str>,
    with_body: bool,
) -> Result<Response, ApiError> {
    let d = parse_digest(digest)?;
    if st.storage.repo_blob_size(name, &d).await?.is_some() {
        return blobs::get(&st, name, digest, range, with_body).await;
    }
    let what = format!("blob {d} in {name}");
    let path = format!("/v2/{name}/blobs/{d}");
    let upstream_err = |e: UpstreamError| match e {
        UpstreamError::NotFound { .. } => ApiError::blob_unknown(digest),
        e => unavailable(e),
    };
    if !with_body || st.storage.blob_size(&d).await?.is_some() {
        // Stored for another repository (or only a HEAD): does the
        // upstream have it in this one?
        let resp = send_ok(
            &up,
            Method::HEAD,
            &path,
            &HeaderMap::new(),
            name,
            &what,
            true,
        )
        .await
        .map_err(upstream_err)?;
        if st.storage.blob_size(&d).await?.is_some() {
            st.storage.link_blob(name, &d).await?;
            return blobs::get(&st, name, digest, range, with_body).await;
        }
        // (reqwest's content_length() is the body's: 0 for a HEAD.)
        let len = resp
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| {
                unavailable(UpstreamError::unavailable(&what, "HEAD without a length"))
            })?;
        return Ok(Response::builder()
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(header::CONTENT_LENGTH, len)
            .header("docker-content-digest", d.to_string())
            .header(header::ETAG, format!("\"{d}\""))
            .body(Body::empty())
            .expect("valid blob response"));
    }
    // A Range on a blob not cached yet: the whole blob (200), cached.
    let resp = send_ok(
        &up,
        Method::GET,
        &path,
        &HeaderMap::new(),
        name,
        &what,
        false,
    )
    .await
    .map_err(upstream_err)?;
    let declared = resp.content_length();
    let file = st.storage.blob_writer().await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    let fill = Fill {
        name: name.to_string(),
        digest: d.clone(),
        declared,
        what,
    };
    tokio::spawn(fill.run(resp, file, tx));
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let mut b = Response::builder()
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header("docker-content-digest", d.to_string())
        .header(header::ETAG, format!("\"{d}\""));
    if let Some(len) = declared {
        b = b.header(header::CONTENT_LENGTH, len);
    }
    Ok(b.body(Body::from_stream(stream))
        .expect("valid blob response"))
}

/// One blob streaming from the upstream to a client and into the cache.
struct Fill {
    name: String,
    digest: Digest,
    /// The upstream's Content-Length.
    declared: Option<u64>,
    what: String,
}

type Tx = tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>;

impl Fill {
    async fn run(self, resp: reqwest::Response, file: Box<dyn BlobWriter>, tx: Tx) {
        match self.copy(resp, file, &tx).await {
            Ok(last) => {
                if let Some(c) = last {
                    let _ = tx.send(Ok(c)).await;
                }
            }
            Err(msg) => {
                eprintln!("berth registry: proxy: {}: {msg}", self.what);
                let _ = tx.send(Err(std::io::Error::other(msg))).await;
            }
        }
    }

    /// Copies the body to the client (all but the last chunk) and a new
    /// blob; commits it when it checks out: the last chunk to send.
    async fn copy(
        &self,
        resp: reqwest::Response,
        mut file: Box<dyn BlobWriter>,
        tx: &Tx,
    ) -> Result<Option<Bytes>, String> {
        match self.fill(resp, &mut *file, tx).await {
            Ok(held) => {
                file.commit(&self.digest, &self.name)
                    .await
                    .map_err(|e| format!("storing: {e}"))?;
                Ok(held)
            }
            Err(msg) => {
                let _ = file.abort().await;
                Err(msg)
            }
        }
    }

    /// Writes the body to `file` and all but its last chunk to the client,
    /// checking its length and digest: the last chunk.
    async fn fill(
        &self,
        mut resp: reqwest::Response,
        file: &mut dyn BlobWriter,
        tx: &Tx,
    ) -> Result<Option<Bytes>, String> {
        let mut h = Hasher::new(self.digest.algorithm);
        let mut n: u64 = 0;
        let mut held: Option<Bytes> = None;
        loop {
            let c = match resp.chunk().await {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(e) => return Err(format!("reading the body after {n} bytes: {}", chain(&e))),
            };
            n += c.len() as u64;
            if let Some(l) = self.declared.filter(|l| n > *l) {
                return Err(format!("more than the {l} bytes of its Content-Length"));
            }
            h.update(&c);
            file.write(c.clone())
                .await
                .map_err(|e| format!("storing: {e}"))?;
            if let Some(prev) = held.replace(c) {
                if tx.send(Ok(prev)).await.is_err() {
                    return Err("the client went away".into());
                }
            }
        }
        if let Some(l) = self.declared.filter(|l| n != *l) {
            return Err(format!("{n} bytes, not the {l} of its Content-Length"));
        }
        let got = h.finish();
        if got != self.digest {
            return Err(format!(
                "the upstream sent {n} bytes with digest {got}, not {}; not stored",
                self.digest
            ));
        }
        Ok(held)
    }
}

/// `GET /v2/<name>/tags/list` in proxy mode: the upstream's tags (every
/// page), else the cached ones.
pub async fn tags(
    st: &AppState,
    up: &Upstream,
    name: &str,
    uri: &axum::http::Uri,
) -> Result<Response, ApiError> {
    match upstream_tags(up, name).await {
        Ok(all) => crate::listing::tags_page(all, name, uri),
        Err(e) => {
            eprintln!("berth registry: proxy: tags of {name} from the cache: {e}");
            let Some(all) = st.storage.tags(name).await? else {
                return Err(ApiError::name_unknown(name));
            };
            crate::listing::tags_page(all, name, uri)
        }
    }
}

async fn upstream_tags(up: &Upstream, name: &str) -> Result<Vec<String>, UpstreamError> {
    let what = format!("tags of {name}");
    let mut path = format!("/v2/{name}/tags/list");
    let mut all = Vec::new();
    for _ in 0..MAX_TAG_PAGES {
        let mut resp =
            send_ok(up, Method::GET, &path, &HeaderMap::new(), name, &what, true).await?;
        let next = resp
            .headers()
            .get(header::LINK)
            .and_then(|v| v.to_str().ok())
            .and_then(next_link);
        let body = read_capped(&mut resp, MAX_MANIFEST)
            .await
            .map_err(|e| UpstreamError::unavailable(&what, chain(&e)))?
            .ok_or_else(|| UpstreamError::unavailable(&what, "a page larger than 4 MiB"))?;
        let v: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| UpstreamError::unavailable(&what, format!("not JSON: {e}")))?;
        for t in v["tags"].as_array().into_iter().flatten() {
            match t.as_str() {
                Some(t) if valid_tag(t) => all.push(t.to_string()),
                _ => return Err(UpstreamError::unavailable(&what, format!("bad tag {t}"))),
            }
        }
        match next {
            Some(p) if p.starts_with(&format!("/v2/{name}/tags/list?")) => path = p,
            Some(p) => {
                return Err(UpstreamError::unavailable(
                    &what,
                    format!("a next page elsewhere: {p:?}"),
                ))
            }
            None => {
                all.sort();
                all.dedup();
                return Ok(all);
            }
        }
    }
    Err(UpstreamError::unavailable(
        &what,
        format!("more than {MAX_TAG_PAGES} pages"),
    ))
}

/// The path of `<…>; rel="next"` (a full URL is cut to its path and query).
fn next_link(v: &str) -> Option<String> {
    let (target, params) = v.split_once(';')?;
    if !params.replace(' ', "").contains("rel=\"next\"") {
        return None;
    }
    let t = target.trim().strip_prefix('<')?.strip_suffix('>')?;
    if t.starts_with('/') {
        return Some(t.to_string());
    }
    let u = reqwest::Url::parse(t).ok()?;
    Some(match u.query() {
        Some(q) => format!("{}?{q}", u.path()),
        None => u.path().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_links() {
        assert_eq!(
            next_link(r#"</v2/a/tags/list?n=2&last=b>; rel="next""#).as_deref(),
            Some("/v2/a/tags/list?n=2&last=b")
        );
        assert_eq!(
            next_link(r#"<http://up:5000/v2/a/tags/list?last=b>; rel="next""#).as_deref(),
            Some("/v2/a/tags/list?last=b")
        );
        assert_eq!(next_link(r#"</v2/a/tags/list>; rel="prev""#), None);
    }

    #[test]
    fn accept_headers() {
        let h = accept(None);
        assert!(h[header::ACCEPT]
            .to_str()
            .unwrap()
            .contains(manifests::OCI_INDEX));
        let c = HeaderValue::from_static(manifests::DOCKER_MANIFEST);
        assert_eq!(accept(Some(&c))[header::ACCEPT], manifests::DOCKER_MANIFEST);
        let all = accept_all(Some(&c));
        let all = all[header::ACCEPT].to_str().unwrap();
        assert!(all.starts_with(manifests::DOCKER_MANIFEST) && all.contains(manifests::OCI_INDEX));
    }
}
