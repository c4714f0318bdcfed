//! `berth registry serve`: an OCI distribution spec v1.1 registry on axum,
//! over a [`storage::Storage`]: files under `--root` ([`storage::FsStorage`])
//! or an S3-compatible bucket ([`storage::S3Storage`], `[storage.s3]` in the
//! config).
//!
//! Repository names may contain `/`, so requests are not matched by a route
//! table: [`route`] takes the path apart from its end (`…/manifests/<ref>`,
//! `…/blobs/uploads/<id>`, `…/blobs/<digest>`, `…/tags/list`).
//!
//! Auth ([`auth`], configured by [`config`]) is checked in [`handle`] before
//! any handler runs: each endpoint maps to a pull, push or delete of one
//! repository. `GET /health` answers without auth; in token mode `GET
//! /token` issues tokens ([`token`]).
//!
//! Blob `DELETE` only unlinks a blob from its repository; `gc` removes
//! the bytes nothing references any more. The referrers API is in
//! `referrers`.
//!
//! [`serve`] speaks https with a certificate ([`tls`]) and writes an
//! access log line per request (`access_log`).
//!
//! With `--proxy-remote URL` (or `[proxy]` in the config) the registry is
//! a pull-through cache of another registry ([`proxy`], [`upstream`]):
//! reads are served from storage and what is missing is fetched, checked
//! and stored; writes are refused with 405 `UNSUPPORTED`.

mod access_log;
pub mod auth;
mod blobs;
pub mod config;
pub mod error;
pub mod gc;
pub mod keys;
mod listing;
mod manifests;
pub mod names;
mod proxy;
mod referrers;
pub mod storage;
pub mod tls;
pub mod token;
mod uploads;
pub mod upstream;

use auth::{Auth, Identity};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use config::Action;
use error::ApiError;
use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use storage::Storage;

/// `Docker-Distribution-API-Version`, on every response.
pub const API_VERSION: &str = "registry/2.0";

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Storage(#[from] storage::StorageError),
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error(transparent)]
    Proxy(#[from] upstream::ProxyConfigError),

    #[error("registry: listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("registry: serving on {addr}: {source}")]
    Serve {
        addr: String,
        source: std::io::Error,
    },
}

/// Shared by all requests.
pub struct AppState {
    pub storage: Arc<dyn Storage>,
    pub auth: Auth,
    /// Pull-through cache mode: the upstream registry.
    pub proxy: Option<Arc<upstream::Upstream>>,
    /// One lock per upload id: chunks of one upload are appended one at a time.
    upload_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// The running hash of uploads received by this process: (state, bytes
    /// hashed). After a restart (or a chunk taken by another replica) an
    /// upload has none, and is hashed when it finishes.
    running: Mutex<HashMap<String, (names::Hasher, u64)>>,
}

impl AppState {
    pub fn new(storage: Arc<dyn Storage>, auth: Auth) -> AppState {
        AppState {
            storage,
            auth,
            proxy: None,
            upload_locks: Mutex::new(HashMap::new()),
            running: Mutex::new(HashMap::new()),
        }
    }

    /// Takes upload `id`'s running hash, if this process has one.
    fn take_running(&self, id: &str) -> Option<(names::Hasher, u64)> {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id)
    }

    /// Keeps upload `id`'s running hash after `bytes` bytes.
    fn keep_running(&self, id: &str, h: names::Hasher, bytes: u64) {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string(), (h, bytes));
    }

    fn upload_lock(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut m = self
            .upload_locks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        m.entry(id.to_string()).or_default().clone()
    }

    fn forget_upload_lock(&self, id: &str) {
        let mut m = self
            .upload_locks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        m.remove(id);
    }
}

type Shared = Arc<AppState>;

/// `--config FILE` (the defaults without one).
pub fn load_config(config: Option<&Path>) -> Result<config::Config, ServeError> {
    match config {
        None => Ok(config::Config::default()),
        Some(p) => Ok(config::Config::load(p)?),
    }
}

/// How [`serve`] serves, besides its routes.
pub struct ServeOptions {
    /// Uploads idle for longer are purged.
    pub upload_max_age: Duration,
    /// https with this certificate; plain http without.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// One JSON line per request on stderr.
    pub access_log: bool,
    /// Pull-through cache of this upstream.
    pub proxy: Option<Arc<upstream::Upstream>>,
}

impl ServeOptions {
    /// The options `c` sets (its TLS files are read here).
    pub fn from_config(c: &config::Config) -> Result<ServeOptions, ServeError> {
        let tls = match (&c.tls_cert, &c.tls_key) {
            (Some(cert), Some(key)) => Some(tls::acceptor(cert, key)?),
            _ => None,
        };
        Ok(ServeOptions {
            upload_max_age: c
                .upload_max_age
                .map_or(gc::DEFAULT_UPLOAD_MAX_AGE, Duration::from_secs),
            tls,
            access_log: c.access_log.unwrap_or(true),
            proxy: match &c.proxy {
                Some(p) => Some(Arc::new(upstream::Upstream::new(
                    &p.remote_url,
                    p.credentials(),
                )?)),
                None => None,
            },
        })
    }
}

/// Purges uploads idle for longer than `max_age` now and then every tenth
/// of it (at most hourly, at least every second), until the runtime stops.
fn spawn_upload_purge(storage: Arc<dyn Storage>, max_age: Duration) {
    let period = (max_age / 10).clamp(Duration::from_secs(1), Duration::from_secs(3600));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        loop {
            tick.tick().await;
            match gc::purge_uploads(&*storage, max_age, false).await {
                Ok(ids) if !ids.is_empty() => {
                    eprintln!("berth registry: purged {} abandoned upload(s)", ids.len())
                }
                Ok(_) => {}
                Err(e) => eprintln!("berth registry: purging abandoned uploads: {e}"),
            }
        }
    });
}

/// The registry's HTTP application over `storage` (a pull-through cache
/// of `proxy` when given).
pub fn app(
    storage: Arc<dyn Storage>,
    auth: Auth,
    proxy: Option<Arc<upstream::Upstream>>,
) -> Result<axum::Router, ServeError> {
    let mut state = AppState::new(storage, auth);
    state.proxy = proxy;
    let state = Arc::new(state);
    Ok(axum::Router::new()
        .fallback(dispatch)
        .with_state(state)
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(axum::middleware::map_response(add_api_version)))
}

async fn add_api_version(mut r: Response) -> Response {
    r.headers_mut().insert(
        "docker-distribution-api-version",
        HeaderValue::from_static(API_VERSION),
    );
    r
}

/// Serves on `addr` until `shutdown` completes; in-flight requests finish.
/// Uploads idle for longer than `opts.upload_max_age` are purged meanwhile.
pub async fn serve(
    addr: &str,
    storage: Arc<dyn Storage>,
    auth: Auth,
    opts: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let mut app = app(storage.clone(), auth, opts.proxy)?;
    if opts.access_log {
        app = app.layer(axum::middleware::from_fn(access_log::log));
    }
    let app = app.into_make_service_with_connect_info::<access_log::Remote>();
    spawn_upload_purge(storage, opts.upload_max_age);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind {
            addr: addr.to_string(),
            source,
        })?;
    let serve_err = |source| ServeError::Serve {
        addr: addr.to_string(),
        source,
    };
    match opts.tls {
        None => axum::serve(NoDelayListener(listener), app)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(serve_err),
        Some(acceptor) => {
            let listener = tls::TlsListener::new(listener, acceptor).map_err(serve_err)?;
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
                .map_err(serve_err)
        }
    }
}

/// The plain-http listener: [`set_nodelay`] on each connection.
pub(crate) struct NoDelayListener(tokio::net::TcpListener);

impl axum::serve::Listener for NoDelayListener {
    type Io = tokio::net::TcpStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (mut s, a) = axum::serve::Listener::accept(&mut self.0).await;
        set_nodelay(&mut s);
        (s, a)
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

/// Sends small responses (manifests, errors, the headers of a blob)
/// without waiting for the ACK of earlier segments (Nagle); bodies are
/// written in large chunks anyway.
pub(crate) fn set_nodelay(tcp: &mut tokio::net::TcpStream) {
    if let Err(e) = tcp.set_nodelay(true) {
        eprintln!("berth registry: setting TCP_NODELAY: {e}");
    }
}

/// The repository a `/v2/…` path names, if any.
pub(crate) fn repository_of(path: &str) -> Option<&str> {
    match route(path)? {
        Target::Base | Target::Catalog => None,
        Target::Tags(n)
        | Target::Manifest(n, _)
        | Target::Blob(n, _)
        | Target::UploadStart(n)
        | Target::Upload(n, _)
        | Target::Referrers(n, _) => Some(n),
    }
}

/// What a `/v2/…` path addresses.
#[derive(Debug, PartialEq)]
enum Target<'a> {
    Base,
    Catalog,
    Tags(&'a str),
    Manifest(&'a str, &'a str),
    Blob(&'a str, &'a str),
    UploadStart(&'a str),
    Upload(&'a str, &'a str),
    Referrers(&'a str, &'a str),
}

fn route(path: &str) -> Option<Target<'_>> {
    let rest = path.strip_prefix("/v2")?;
    if rest.is_empty() || rest == "/" {
        return Some(Target::Base);
    }
    let rest = rest.strip_prefix('/')?;
    if rest == "_catalog" {
        return Some(Target::Catalog);
    }
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return Some(Target::Tags(name));
    }
    let trimmed = rest.strip_suffix('/').unwrap_or(rest);
    if let Some(name) = trimmed.strip_suffix("/blobs/uploads") {
        return Some(Target::UploadStart(name));
    }
    let (head, last) = rest.rsplit_once('/')?;
    let (name, kind) = head.rsplit_once('/')?;
    match kind {
        "manifests" => Some(Target::Manifest(name, last)),
        "uploads" => name.strip_suffix("/blobs").map(|n| Target::Upload(n, last)),
        "blobs" => Some(Target::Blob(name, last)),
        "referrers" => Some(Target::Referrers(name, last)),
        _ => None,
    }
}

/// The query string as a map (later keys win).
fn query(req: &Request) -> HashMap<String, String> {
    query_of(req.uri())
}

fn query_of(uri: &axum::http::Uri) -> HashMap<String, String> {
    axum::extract::Query::<HashMap<String, String>>::try_from_uri(uri)
        .map(|q| q.0)
        .unwrap_or_default()
}

async fn dispatch(State(st): State<Shared>, req: Request) -> Response {
    let mut user = None;
    let mut r = match handle(st, req, &mut user).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    r.extensions_mut().insert(access_log::AccessUser(user));
    r
}

/// `user`: set to whom the request is authenticated as, once known.
async fn handle(
    st: Shared,
    mut req: Request,
    user: &mut Option<String>,
) -> Result<Response, ApiError> {
    let path = req.uri().path().to_string();
    if path == "/health" && matches!(*req.method(), Method::GET | Method::HEAD) {
        return Ok(Response::builder()
            .header("content-type", "application/json")
            .body(Body::from(r#"{"status":"ok"}"#))
            .expect("static response"));
    }
    if path == "/token" && *req.method() == Method::GET {
        let q = req.uri().query().unwrap_or("");
        let body = st.auth.issue_token(req.headers(), q)?;
        return Ok(Response::builder()
            .header("content-type", "application/json")
            .body(Body::from(body))
            .expect("token response"));
    }
    let Some(target) = route(&path) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
            format!("no such endpoint: {path}"),
        ));
    };
    let name = repository_of(&path).unwrap_or("");
    if !name.is_empty() && !names::valid_name(name) {
        return Err(ApiError::name_invalid(name));
    }
    let m = req.method().clone();
    let id = authorize(&st.auth, &target, name, &mut req)?;
    user.clone_from(&id.user);
    if let Some(up) = st.proxy.clone() {
        if let Some(r) = handle_proxied(&st, up, &target, &m, req.headers(), req.uri()).await {
            return r;
        }
    }
    match (target, m) {
        (Target::Base, Method::GET | Method::HEAD) => Ok(Response::builder()
            .header("content-type", "application/json")
            .body(Body::from("{}"))
            .expect("static response")),
        (Target::Catalog, Method::GET) => {
            listing::catalog(&st, id.user.as_deref(), req.uri()).await
        }
        (Target::Tags(n), Method::GET) => listing::tags(&st, n, req.uri()).await,
        (Target::Referrers(n, d), Method::GET) => referrers::get(&st, n, d, req.uri()).await,
        (Target::Manifest(n, r), Method::GET) => manifests::get(&st, n, r, true).await,
        (Target::Manifest(n, r), Method::HEAD) => manifests::get(&st, n, r, false).await,
        (Target::Manifest(n, r), Method::PUT) => {
            let (n, r) = (n.to_string(), r.to_string());
            manifests::put(&st, &n, &r, req).await
        }
        (Target::Manifest(n, r), Method::DELETE) => manifests::delete(&st, n, r).await,
        (Target::Blob(n, d), m @ (Method::GET | Method::HEAD)) => {
            let range = req
                .headers()
                .get(axum::http::header::RANGE)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
            let (n, d) = (n.to_string(), d.to_string());
            drop(req);
            blobs::get(&st, &n, &d, range.as_deref(), m == Method::GET).await
        }
        (Target::Blob(n, d), Method::DELETE) => blobs::delete(&st, n, d).await,
        (Target::UploadStart(n), Method::POST) => {
            let n = n.to_string();
            uploads::start(&st, &n, req).await
        }
        (Target::Upload(n, id), Method::GET) => uploads::status(&st, n, id).await,
        (Target::Upload(n, id), Method::PATCH) => {
            let (n, id) = (n.to_string(), id.to_string());
            uploads::patch(&st, &n, &id, req).await
        }
        (Target::Upload(n, id), Method::PUT) => {
            let (n, id) = (n.to_string(), id.to_string());
            uploads::finish(&st, &n, &id, req).await
        }
        (Target::Upload(n, id), Method::DELETE) => uploads::cancel(&st, n, id).await,
        (_, m) => Err(ApiError::unsupported(format!(
            "{m} {path} is not supported by this registry"
        ))),
    }
}

/// Pull-through cache mode: manifest and blob reads and tag lists go
/// through [`proxy`], writes are refused; `None` for what is served as
/// usual (base, catalog, referrers).
async fn handle_proxied(
    st: &Shared,
    up: Arc<upstream::Upstream>,
    target: &Target<'_>,
    m: &Method,
    h: &axum::http::HeaderMap,
    uri: &axum::http::Uri,
) -> Option<Result<Response, ApiError>> {
    let get = *m == Method::GET;
    Some(match (target, m) {
        (Target::Manifest(n, r), &Method::GET | &Method::HEAD) => {
            // Docker sends one Accept header per type: all of them, joined.
            let all: Vec<&str> = h
                .get_all(axum::http::header::ACCEPT)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            let accept = (!all.is_empty())
                .then(|| HeaderValue::from_str(&all.join(", ")).ok())
                .flatten();
            proxy::manifest(st, &up, n, r, accept.as_ref(), get).await
        }
        (Target::Blob(n, d), &Method::GET | &Method::HEAD) => {
            let range = h
                .get(axum::http::header::RANGE)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
            proxy::blob(st.clone(), up, n, d, range.as_deref(), get).await
        }
        (Target::Tags(n), &Method::GET) => proxy::tags(st, &up, n, uri).await,
        (Target::Base | Target::Catalog | Target::Referrers(..), _) => return None,
        (_, m) => Err(ApiError::unsupported(format!(
            "{m} {}: this registry is a pull-through cache of {}: it does not take pushes or deletes",
            uri.path(),
            up.url()
        ))),
    })
}

/// Checks that the request may do what it does to `name`; who it comes
/// from. A mount from a repository the user may not
/// pull is dropped, so the request becomes a plain upload (as the spec allows).
fn authorize(
    auth: &Auth,
    target: &Target<'_>,
    name: &str,
    req: &mut Request,
) -> Result<Identity, ApiError> {
    if !auth.enabled() {
        return Ok(Identity::default());
    }
    let id = auth.identify(req.headers())?;
    let action = match (target, req.method()) {
        (Target::Base, _) => return auth.require_login(&id).map(|()| id),
        // Filtered by the rules' pull permission in `listing::catalog`.
        (Target::Catalog, _) => return Ok(id),
        (_, &Method::GET | &Method::HEAD) => Action::Pull,
        (Target::Upload(..), &Method::DELETE) => Action::Push,
        (_, &Method::DELETE) => Action::Delete,
        _ => Action::Push,
    };
    auth.require(&id, name, action)?;
    if let Target::UploadStart(_) = target {
        let q = query(req);
        if let Some(from) = q.get("from") {
            if q.contains_key("mount") && !auth.allows(&id, from, Action::Pull) {
                let rest: Vec<String> = q
                    .iter()
                    .filter(|(k, _)| *k != "mount" && *k != "from")
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                let uri = if rest.is_empty() {
                    req.uri().path().to_string()
                } else {
                    format!("{}?{}", req.uri().path(), rest.join("&"))
                };
                if let Ok(u) = uri.parse() {
                    *req.uri_mut() = u;
                }
            }
        }
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_taken_apart_from_the_end() {
        assert_eq!(route("/v2/"), Some(Target::Base));
        assert_eq!(route("/v2/_catalog"), Some(Target::Catalog));
        assert_eq!(route("/v2/a/b/tags/list"), Some(Target::Tags("a/b")));
        assert_eq!(
            route("/v2/a/blobs/manifests/latest"),
            Some(Target::Manifest("a/blobs", "latest"))
        );
        assert_eq!(
            route("/v2/a/b/blobs/sha256:00"),
            Some(Target::Blob("a/b", "sha256:00"))
        );
        assert_eq!(
            route("/v2/x/blobs/uploads/"),
            Some(Target::UploadStart("x"))
        );
        assert_eq!(
            route("/v2/x/y/blobs/uploads/abc"),
            Some(Target::Upload("x/y", "abc"))
        );
        assert_eq!(
            route("/v2/a/b/referrers/sha256:00"),
            Some(Target::Referrers("a/b", "sha256:00"))
        );
        assert_eq!(route("/v3/x"), None);
        assert_eq!(route("/v2/x/other/thing"), None);
    }
}
