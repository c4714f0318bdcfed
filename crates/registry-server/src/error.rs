//! Errors as the distribution spec shows them to clients: a status code and
//! `{"errors":[{"code":…,"message":…}]}`.

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::storage::StorageError;

/// One error answer of the registry API.
#[derive(Debug, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    /// The spec's error code, e.g. `BLOB_UNKNOWN`.
    pub code: &'static str,
    pub message: String,
    /// Extra headers (e.g. `Range` on a 416).
    pub headers: Vec<(HeaderName, String)>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: HeaderName, value: String) -> ApiError {
        self.headers.push((name, value));
        self
    }

    pub fn name_invalid(name: &str) -> ApiError {
        Self::new(
            StatusCode::BAD_REQUEST,
            "NAME_INVALID",
            format!("invalid repository name {name:?}"),
        )
    }

    pub fn digest_invalid(msg: impl Into<String>) -> ApiError {
        Self::new(StatusCode::BAD_REQUEST, "DIGEST_INVALID", msg)
    }

    pub fn blob_unknown(digest: &str) -> ApiError {
        Self::new(
            StatusCode::NOT_FOUND,
            "BLOB_UNKNOWN",
            format!("blob unknown to registry: {digest}"),
        )
    }

    pub fn upload_unknown(id: &str) -> ApiError {
        Self::new(
            StatusCode::NOT_FOUND,
            "BLOB_UPLOAD_UNKNOWN",
            format!("blob upload unknown to registry: {id}"),
        )
    }

    pub fn manifest_unknown(reference: &str) -> ApiError {
        Self::new(
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
            format!("manifest unknown: {reference}"),
        )
    }

    pub fn manifest_invalid(msg: impl Into<String>) -> ApiError {
        Self::new(StatusCode::BAD_REQUEST, "MANIFEST_INVALID", msg)
    }

    pub fn name_unknown(name: &str) -> ApiError {
        Self::new(
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
            format!("repository name not known to registry: {name}"),
        )
    }

    pub fn unsupported(msg: impl Into<String>) -> ApiError {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED", msg)
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN", e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "errors": [{"code": self.code, "message": self.message, "detail": null}]
        });
        let mut resp = (
            self.status,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response();
        for (k, v) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&v) {
                resp.headers_mut().insert(k, v);
            }
        }
        resp
    }
}
