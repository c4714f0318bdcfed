//! `GET /v2/<name>/tags/list` and `GET /v2/_catalog`, paginated with `n` and
//! `last` and an RFC 5988 `Link` header to the next page.

use crate::error::ApiError;
use crate::{query_of, AppState};
use axum::body::Body;
use axum::http::{header, StatusCode, Uri};
use axum::response::Response;

/// One page of the sorted `all`: the entries after `last`, at most `n`; and
/// the `Link` to the next page when there is more.
fn page(
    all: Vec<String>,
    uri: &Uri,
    base: &str,
) -> Result<(Vec<String>, Option<String>), ApiError> {
    let q = query_of(uri);
    let n = match q.get("n") {
        None => None,
        Some(s) => Some(s.parse::<usize>().map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "PAGINATION_NUMBER_INVALID",
                format!("invalid page size n={s:?}"),
            )
        })?),
    };
    let after: Vec<String> = match q.get("last") {
        Some(last) => all.into_iter().filter(|t| t > last).collect(),
        None => all,
    };
    let Some(n) = n else {
        return Ok((after, None));
    };
    let more = after.len() > n;
    let items: Vec<String> = after.into_iter().take(n).collect();
    let link = match (more, items.last()) {
        (true, Some(last)) => Some(format!("<{base}?n={n}&last={last}>; rel=\"next\"")),
        _ => None,
    };
    Ok((items, link))
}

fn json_page(v: serde_json::Value, link: Option<String>) -> Response {
    let mut b = Response::builder().header(header::CONTENT_TYPE, "application/json");
    if let Some(l) = link {
        b = b.header(header::LINK, l);
    }
    b.body(Body::from(v.to_string()))
        .expect("valid list response")
}

pub async fn tags(st: &AppState, name: &str, uri: &Uri) -> Result<Response, ApiError> {
    let Some(all) = st.storage.tags(name).await? else {
        return Err(ApiError::name_unknown(name));
    };
    tags_page(all, name, uri)
}

/// One page of the sorted tags `all` of `name`.
pub fn tags_page(all: Vec<String>, name: &str, uri: &Uri) -> Result<Response, ApiError> {
    let (tags, link) = page(all, uri, &format!("/v2/{name}/tags/list"))?;
    Ok(json_page(
        serde_json::json!({"name": name, "tags": tags}),
        link,
    ))
}

/// Only the repositories `user` may pull.
pub async fn catalog(st: &AppState, user: Option<&str>, uri: &Uri) -> Result<Response, ApiError> {
    let all: Vec<String> = st
        .storage
        .repositories()
        .await?
        .into_iter()
        .filter(|r| st.auth.rules_allow(user, r, crate::config::Action::Pull))
        .collect();
    let (repos, link) = page(all, uri, "/v2/_catalog")?;
    Ok(json_page(serde_json::json!({"repositories": repos}), link))
}
