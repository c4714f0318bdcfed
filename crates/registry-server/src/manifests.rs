//! Manifest `GET`/`HEAD`/`PUT`/`DELETE` by tag or digest, for OCI image
//! manifests and indexes and Docker schema 2 manifests and manifest lists.

use crate::blobs::parse_digest;
use crate::error::ApiError;
use crate::names::{valid_tag, Digest};
use crate::{referrers, AppState};
use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::response::Response;
use serde_json::Value;

/// The largest manifest accepted (what distribution and the spec suggest).
pub const MAX_MANIFEST: usize = 4 << 20;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

fn is_index(mt: &str) -> bool {
    mt == OCI_INDEX || mt == DOCKER_LIST
}

fn supported(mt: &str) -> bool {
    [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST].contains(&mt)
}

/// A reference: a digest, or a tag looked up in `name`.
pub(crate) enum Ref {
    Digest(Digest),
    Tag(String),
}

pub(crate) fn parse_ref(reference: &str) -> Result<Ref, ApiError> {
    if reference.contains(':') {
        return parse_digest(reference).map(Ref::Digest);
    }
    if valid_tag(reference) {
        Ok(Ref::Tag(reference.to_string()))
    } else {
        Err(ApiError::manifest_invalid(format!(
            "invalid tag {reference:?}: [a-zA-Z0-9_][a-zA-Z0-9._-]{{0,127}}"
        )))
    }
}

async fn resolve(st: &AppState, name: &str, reference: &str) -> Result<Digest, ApiError> {
    let unknown = || ApiError::manifest_unknown(&format!("{name}:{reference}"));
    match parse_ref(reference).map_err(|_| unknown())? {
        Ref::Digest(d) => Ok(d),
        Ref::Tag(t) => st.storage.resolve_tag(name, &t).await?.ok_or_else(unknown),
    }
}

pub async fn get(
    st: &AppState,
    name: &str,
    reference: &str,
    with_body: bool,
) -> Result<Response, ApiError> {
    let d = resolve(st, name, reference).await?;
    let Some((body, mt)) = st.storage.manifest(name, &d).await? else {
        return Err(ApiError::manifest_unknown(&format!("{name}@{d}")));
    };
    let b = Response::builder()
        .header(header::CONTENT_TYPE, mt)
        .header(header::CONTENT_LENGTH, body.len())
        .header("docker-content-digest", d.to_string())
        .header(header::ETAG, format!("\"{d}\""));
    let body = if with_body {
        Body::from(body)
    } else {
        Body::empty()
    };
    Ok(b.body(body).expect("valid manifest response"))
}

/// The digests a manifest needs: blobs (config, layers) or, for an index,
/// child manifests.
fn references(v: &Value, index: bool) -> Result<Vec<Digest>, ApiError> {
    let mut out = Vec::new();
    let mut add = |desc: &Value, what: &str| -> Result<(), ApiError> {
        // Foreign (non-distributable) layers live elsewhere.
        if desc["urls"].as_array().is_some_and(|u| !u.is_empty()) {
            return Ok(());
        }
        let d = desc["digest"]
            .as_str()
            .ok_or_else(|| ApiError::manifest_invalid(format!("{what} without a digest")))?;
        out.push(
            Digest::parse(d)
                .ok_or_else(|| ApiError::manifest_invalid(format!("{what}: bad digest {d:?}")))?,
        );
        Ok(())
    };
    if index {
        for m in v["manifests"].as_array().into_iter().flatten() {
            add(m, "index entry")?;
        }
    } else {
        if !v["config"].is_object() {
            return Err(ApiError::manifest_invalid("manifest without a config"));
        }
        add(&v["config"], "config")?;
        for l in v["layers"].as_array().into_iter().flatten() {
            add(l, "layer")?;
        }
    }
    Ok(out)
}

/// Checks a manifest's bytes (JSON, a supported media type agreeing with
/// `content_type`, well-formed references): its JSON and media type.
pub(crate) fn check(body: &[u8], content_type: Option<&str>) -> Result<(Value, String), ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::manifest_invalid(format!("manifest is not JSON: {e}")))?;
    let body_mt = v["mediaType"].as_str();
    let mt = match (content_type, body_mt) {
        (Some(ct), Some(b)) if supported(ct) && ct != b => {
            return Err(ApiError::manifest_invalid(format!(
                "Content-Type {ct} does not match the manifest's mediaType {b}"
            )))
        }
        (Some(ct), _) if supported(ct) => ct.to_string(),
        (_, Some(b)) if supported(b) => b.to_string(),
        (ct, b) => {
            return Err(ApiError::manifest_invalid(format!(
                "unsupported manifest media type {:?}",
                b.or(ct).unwrap_or("(none)")
            )))
        }
    };
    references(&v, is_index(&mt))?;
    Ok((v, mt))
}

pub async fn put(
    st: &AppState,
    name: &str,
    reference: &str,
    req: Request,
) -> Result<Response, ApiError> {
    let too_big = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "SIZE_INVALID",
            format!("manifest larger than {MAX_MANIFEST} bytes"),
        )
    };
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or(v).trim().to_string());
    let body = axum::body::to_bytes(req.into_body(), MAX_MANIFEST)
        .await
        .map_err(|_| too_big())?;
    let r = parse_ref(reference)?;
    let (v, mt) = check(&body, content_type.as_deref())?;
    let d = match &r {
        Ref::Digest(want) => {
            let got = Digest::of(want.algorithm, &body);
            if &got != want {
                return Err(ApiError::digest_invalid(format!(
                    "manifest body has digest {got}, not {want}"
                )));
            }
            got
        }
        Ref::Tag(_) => Digest::of("sha256", &body),
    };
    let index = is_index(&mt);
    for child in references(&v, index)? {
        let present = if index {
            st.storage.has_manifest(name, &child).await?
        } else {
            st.storage.repo_blob_size(name, &child).await?.is_some()
        };
        if !present {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "MANIFEST_BLOB_UNKNOWN",
                format!("manifest references {child}, which is not in repository {name}"),
            ));
        }
    }
    let tag = match &r {
        Ref::Tag(t) => Some(t.as_str()),
        Ref::Digest(_) => None,
    };
    let subject = referrers::subject_of(&v)?;
    st.storage.put_manifest(name, &body, &d, &mt, tag).await?;
    let mut resp = Response::builder().status(StatusCode::CREATED);
    if let Some(s) = &subject {
        let desc = referrers::descriptor(&v, &d, body.len(), &mt);
        let desc = serde_json::to_vec(&desc).expect("descriptor serializes");
        st.storage.add_referrer(name, s, &d, &desc).await?;
        resp = resp.header("oci-subject", s.to_string());
    }
    Ok(resp
        .header(header::LOCATION, format!("/v2/{name}/manifests/{d}"))
        .header("docker-content-digest", d.to_string())
        .header(header::CONTENT_LENGTH, 0)
        .body(Body::empty())
        .expect("valid manifest response"))
}

pub async fn delete(st: &AppState, name: &str, reference: &str) -> Result<Response, ApiError> {
    let unknown = || ApiError::manifest_unknown(&format!("{name}:{reference}"));
    let found = match parse_ref(reference).map_err(|_| unknown())? {
        Ref::Digest(d) => {
            // Its entry in the subject's referrers goes with it.
            if let Some((body, _)) = st.storage.manifest(name, &d).await? {
                let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                if let Ok(Some(s)) = referrers::subject_of(&v) {
                    st.storage.remove_referrer(name, &s, &d).await?;
                }
            }
            st.storage.delete_manifest(name, &d).await?
        }
        Ref::Tag(t) => st.storage.delete_tag(name, &t).await?,
    };
    if !found {
        return Err(unknown());
    }
    Ok(Response::builder()
        .status(StatusCode::ACCEPTED)
        .header(header::CONTENT_LENGTH, 0)
        .body(Body::empty())
        .expect("valid response"))
}
