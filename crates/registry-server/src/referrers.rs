//! The referrers API of distribution spec v1.1: a manifest PUT with a
//! `subject` is recorded (and answered with `OCI-Subject`), and `GET
//! /v2/<name>/referrers/<digest>` lists such manifests as an OCI image
//! index, optionally filtered by `?artifactType=`.

use crate::blobs::parse_digest;
use crate::error::ApiError;
use crate::manifests::OCI_INDEX;
use crate::names::Digest;
use crate::{query_of, AppState};
use axum::body::Body;
use axum::http::header;
use axum::response::Response;
use serde_json::{json, Value};

/// The subject digest of a manifest, if it names one.
pub fn subject_of(v: &Value) -> Result<Option<Digest>, ApiError> {
    let Some(s) = v.get("subject").filter(|s| !s.is_null()) else {
        return Ok(None);
    };
    let d = s["digest"]
        .as_str()
        .ok_or_else(|| ApiError::manifest_invalid("subject without a digest"))?;
    Digest::parse(d)
        .map(Some)
        .ok_or_else(|| ApiError::manifest_invalid(format!("subject: bad digest {d:?}")))
}

/// The descriptor the referrers index lists for manifest `v` (`d`, `size`
/// bytes, media type `mt`): its `artifactType`, or else its config's media
/// type; and its annotations.
pub fn descriptor(v: &Value, d: &Digest, size: usize, mt: &str) -> Value {
    let mut desc = json!({ "mediaType": mt, "digest": d.to_string(), "size": size });
    let artifact = v["artifactType"]
        .as_str()
        .or_else(|| v["config"]["mediaType"].as_str());
    if let Some(a) = artifact {
        desc["artifactType"] = json!(a);
    }
    if let Some(a) = v.get("annotations").filter(|a| a.is_object()) {
        desc["annotations"] = a.clone();
    }
    desc
}

pub async fn get(
    st: &AppState,
    name: &str,
    digest: &str,
    uri: &axum::http::Uri,
) -> Result<Response, ApiError> {
    let subject = parse_digest(digest)?;
    let filter = query_of(uri).get("artifactType").cloned();
    let mut manifests = Vec::new();
    for raw in st.storage.referrers(name, &subject).await? {
        let Ok(desc) = serde_json::from_slice::<Value>(&raw) else {
            continue;
        };
        if let Some(f) = &filter {
            if desc["artifactType"].as_str() != Some(f.as_str()) {
                continue;
            }
        }
        manifests.push(desc);
    }
    let index = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": manifests,
    });
    let body = serde_json::to_vec(&index).expect("index serializes");
    let mut b = Response::builder()
        .header(header::CONTENT_TYPE, OCI_INDEX)
        .header(header::CONTENT_LENGTH, body.len());
    if filter.is_some() {
        b = b.header("oci-filters-applied", "artifactType");
    }
    Ok(b.body(Body::from(body)).expect("valid referrers response"))
}
