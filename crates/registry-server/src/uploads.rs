//! Blob uploads: `POST` (start, monolithic with `?digest=`, cross-repository
//! mount with `?mount=&from=`), `PATCH` (chunks with `Content-Range`), `PUT`
//! (finish with `?digest=`), `GET` (status) and `DELETE` (cancel).
//!
//! An upload's bytes and repository live in storage (`uploads/<id>/`), so
//! an upload survives a server restart (and, on S3, can move between
//! replicas); its digest is checked when it finishes.

use crate::blobs::parse_digest;
use crate::error::ApiError;
use crate::names::{Digest, Hasher};
use crate::storage::{BlobWriter, ChunkWriter, Commit};
use crate::{query, AppState};
use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderName, StatusCode};
use axum::response::Response;
use futures_util::StreamExt;
use std::sync::Arc;

/// Where request bodies go: a new blob or an upload's next chunk.
enum Sink<'a> {
    Blob(&'a mut dyn BlobWriter),
    Chunk(&'a mut dyn ChunkWriter),
}

/// Writes the request body to `sink` (hashing it when asked); returns the
/// number of bytes written.
async fn copy_body(
    body: Body,
    mut sink: Sink<'_>,
    mut hasher: Option<&mut Hasher>,
) -> Result<u64, ApiError> {
    let mut stream = body.into_data_stream();
    let mut n = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "BLOB_UPLOAD_INVALID",
                format!("reading the request body: {e}"),
            )
        })?;
        if let Some(h) = hasher.as_deref_mut() {
            h.update(&chunk);
        }
        n += chunk.len() as u64;
        match &mut sink {
            Sink::Blob(w) => w.write(chunk).await?,
            Sink::Chunk(w) => w.write(chunk).await?,
        }
    }
    Ok(n)
}

fn upload_location(name: &str, id: &str) -> String {
    format!("/v2/{name}/blobs/uploads/{id}")
}

/// The `Range` header value of an upload holding `size` bytes.
fn range_value(size: u64) -> String {
    format!("0-{}", size.saturating_sub(1))
}

fn upload_response(status: StatusCode, name: &str, id: &str, size: u64) -> Response {
    Response::builder()
        .status(status)
        .header(header::LOCATION, upload_location(name, id))
        .header(header::RANGE, range_value(size))
        .header("docker-upload-uuid", id)
        .header(header::CONTENT_LENGTH, 0)
        .body(Body::empty())
        .expect("valid upload response")
}

fn blob_created(name: &str, d: &Digest) -> Response {
    Response::builder()
        .status(StatusCode::CREATED)
        .header(header::LOCATION, format!("/v2/{name}/blobs/{d}"))
        .header("docker-content-digest", d.to_string())
        .header(header::CONTENT_LENGTH, 0)
        .body(Body::empty())
        .expect("valid blob response")
}

pub async fn start(st: &AppState, name: &str, req: Request) -> Result<Response, ApiError> {
    let q = query(&req);
    if let Some(m) = q.get("mount") {
        let d = parse_digest(m)?;
        let present = match q.get("from") {
            Some(from) if crate::names::valid_name(from) => {
                st.storage.repo_blob_size(from, &d).await?.is_some()
            }
            Some(_) => false,
            // No `from`: automatic content discovery (spec v1.1).
            None => st.storage.blob_size(&d).await?.is_some(),
        };
        if present {
            st.storage.link_blob(name, &d).await?;
            return Ok(blob_created(name, &d));
        }
    } else if let Some(digest) = q.get("digest") {
        let d = parse_digest(digest)?;
        let mut w = st.storage.blob_writer().await?;
        let mut h = Hasher::new(d.algorithm);
        let written = copy_body(req.into_body(), Sink::Blob(&mut *w), Some(&mut h)).await;
        let got = h.finish();
        if let Err(e) = written {
            let _ = w.abort().await;
            return Err(e);
        }
        if got != d {
            w.abort().await?;
            return Err(ApiError::digest_invalid(format!(
                "the uploaded data has digest {got}, not {d}; nothing was stored"
            )));
        }
        w.commit(&d, name).await?;
        return Ok(blob_created(name, &d));
    }
    let id = st.storage.new_upload(name).await?;
    Ok(upload_response(StatusCode::ACCEPTED, name, &id, 0))
}

/// Checks that upload `id` exists and belongs to `name`.
async fn check_upload(st: &AppState, name: &str, id: &str) -> Result<(), ApiError> {
    match st.storage.upload_repo(id).await? {
        Some(r) if r == name => Ok(()),
        _ => Err(ApiError::upload_unknown(id)),
    }
}

/// `Content-Range: <start>-<end>` (also `bytes <start>-<end>/<total>`).
fn content_range(req: &Request) -> Result<Option<(u64, u64)>, ApiError> {
    let Some(v) = req.headers().get(header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let bad = || {
        ApiError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "BLOB_UPLOAD_INVALID",
            format!("malformed Content-Range {v:?}: expected <start>-<end>"),
        )
    };
    let s = v.to_str().map_err(|_| bad())?.trim();
    let s = s.strip_prefix("bytes ").unwrap_or(s);
    let s = s.split('/').next().unwrap_or(s);
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    let (a, b): (u64, u64) = (
        a.trim().parse().map_err(|_| bad())?,
        b.trim().parse().map_err(|_| bad())?,
    );
    if b < a {
        return Err(bad());
    }
    Ok(Some((a, b)))
}

/// Appends one chunk to upload `id`, checking its `Content-Range` follows
/// the bytes already received.
async fn append_chunk(st: &AppState, name: &str, id: &str, req: Request) -> Result<u64, ApiError> {
    let size = st.storage.upload_size(id).await?;
    let range = content_range(&req)?;
    if let Some((start, _)) = range {
        if start != size {
            return Err(ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "BLOB_UPLOAD_INVALID",
                format!("chunk starts at byte {start}, but upload {id} holds {size} bytes"),
            )
            .with_header(header::RANGE, range_value(size))
            .with_header(header::LOCATION, upload_location(name, id))
            .with_header(
                HeaderName::from_static("docker-upload-uuid"),
                id.to_string(),
            ));
        }
    }
    // A chunk is taken whole or not at all: on a broken body or a length
    // that does not match its Content-Range, the upload stays at `size`.
    let mut w = st.storage.chunk_writer(id, size).await?;
    // Hash as the bytes arrive (sha256, the usual digest; a sha512 upload
    // is hashed at the end), so finishing does not read it all again.
    let mut running = match st.take_running(id) {
        Some((h, n)) if n == size => Some(h),
        Some(_) => None,
        None if size == 0 => Some(Hasher::new("sha256")),
        None => None,
    };
    let n = match copy_body(req.into_body(), Sink::Chunk(&mut *w), running.as_mut()).await {
        Ok(n) => n,
        Err(e) => {
            w.abort().await?;
            return Err(e);
        }
    };
    if let Some((start, end)) = range {
        if n != end - start + 1 {
            w.abort().await?;
            return Err(ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "BLOB_UPLOAD_INVALID",
                format!(
                    "Content-Range {start}-{end} announced {} bytes, the body had {n}",
                    end - start + 1
                ),
            )
            .with_header(header::RANGE, range_value(size)));
        }
    }
    w.finish().await?;
    if let Some(h) = running {
        st.keep_running(id, h, size + n);
    }
    Ok(size + n)
}

/// Runs an upload step to its end even when the request goes away: a
/// client that disconnects mid-chunk drops the handler, but the chunk must
/// still be cut back (after the write in flight lands) before the upload's
/// lock is let go, or a resumed upload would race the cleanup.
async fn uncancelled(
    f: impl std::future::Future<Output = Result<Response, ApiError>> + Send + 'static,
) -> Result<Response, ApiError> {
    match tokio::spawn(f).await {
        Ok(r) => r,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "UNAVAILABLE",
            format!("upload step cancelled: {e}"),
        )),
    }
}

pub async fn patch(
    st: &Arc<AppState>,
    name: &str,
    id: &str,
    req: Request,
) -> Result<Response, ApiError> {
    let (st, name, id) = (st.clone(), name.to_string(), id.to_string());
    uncancelled(async move {
        let _held = st.upload_lock(&id).lock_owned().await;
        check_upload(&st, &name, &id).await?;
        let size = append_chunk(&st, &name, &id, req).await?;
        Ok(upload_response(StatusCode::ACCEPTED, &name, &id, size))
    })
    .await
}

pub async fn finish(
    st: &Arc<AppState>,
    name: &str,
    id: &str,
    req: Request,
) -> Result<Response, ApiError> {
    let (st, name, id) = (st.clone(), name.to_string(), id.to_string());
    uncancelled(async move { finish_held(&st, &name, &id, req).await }).await
}

async fn finish_held(
    st: &Arc<AppState>,
    name: &str,
    id: &str,
    req: Request,
) -> Result<Response, ApiError> {
    let _held = st.upload_lock(id).lock_owned().await;
    check_upload(st, name, id).await?;
    let q = query(&req);
    let d = match q.get("digest") {
        Some(d) => parse_digest(d)?,
        None => {
            return Err(ApiError::digest_invalid(
                "finishing an upload needs ?digest=<digest>",
            ))
        }
    };
    append_chunk(st, name, id, req).await?;
    let running = st.take_running(id);
    let outcome = st.storage.commit_upload(id, &d, name, running).await?;
    st.forget_upload_lock(id);
    match outcome {
        Commit::Stored => Ok(blob_created(name, &d)),
        Commit::Mismatch(got) => Err(ApiError::digest_invalid(format!(
            "upload {id} has digest {got}, not {d}; nothing was stored"
        ))),
    }
}

pub async fn status(st: &AppState, name: &str, id: &str) -> Result<Response, ApiError> {
    check_upload(st, name, id).await?;
    let size = st.storage.upload_size(id).await?;
    Ok(upload_response(StatusCode::NO_CONTENT, name, id, size))
}

pub async fn cancel(st: &AppState, name: &str, id: &str) -> Result<Response, ApiError> {
    check_upload(st, name, id).await?;
    st.storage.delete_upload(id).await?;
    st.take_running(id);
    st.forget_upload_lock(id);
    Ok(Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(Body::empty())
        .expect("valid response"))
}
