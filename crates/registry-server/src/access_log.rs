//! The access log: one JSON line per request on stderr (`access_log =
//! false` in the config turns it off).
//!
//! ```json
//! {"time":"1764441600.123","remote":"127.0.0.1:40522","method":"PUT",
//!  "path":"/v2/app/manifests/1","repository":"app","status":201,
//!  "bytes":0,"duration_ms":3,"user":"alice"}
//! ```
//!
//! `path` is the path only: no query string, and no header is ever logged,
//! so neither credentials nor tokens reach the log. `bytes` is the response
//! body's length (its `Content-Length`, 0 when streamed without one or for
//! `HEAD`); `duration_ms` runs until
//! the response headers are ready. `user` is whom the request was
//! authenticated as (absent when anonymous or without auth).

use axum::body::HttpBody;
use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, Request};
use axum::middleware::Next;
use axum::response::Response;
use axum::serve::IncomingStream;
use std::net::SocketAddr;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The peer of a connection, plain or TLS.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Remote(pub SocketAddr);

impl Connected<IncomingStream<'_, tokio::net::TcpListener>> for Remote {
    fn connect_info(s: IncomingStream<'_, tokio::net::TcpListener>) -> Remote {
        Remote(*s.remote_addr())
    }
}

impl Connected<IncomingStream<'_, crate::tls::TlsListener>> for Remote {
    fn connect_info(s: IncomingStream<'_, crate::tls::TlsListener>) -> Remote {
        Remote(*s.remote_addr())
    }
}

impl Connected<IncomingStream<'_, crate::NoDelayListener>> for Remote {
    fn connect_info(s: IncomingStream<'_, crate::NoDelayListener>) -> Remote {
        Remote(*s.remote_addr())
    }
}

/// Set on a response by the handler: the authenticated user, if any.
#[derive(Clone, Debug)]
pub(crate) struct AccessUser(pub Option<String>);

/// The middleware writing the line.
pub(crate) async fn log(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let head = req.method() == axum::http::Method::HEAD;
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let remote = req
        .extensions()
        .get::<ConnectInfo<Remote>>()
        .map(|c| c.0 .0.to_string());
    let resp = next.run(req).await;
    let user = resp
        .extensions()
        .get::<AccessUser>()
        .and_then(|u| u.0.clone());
    let line = Line {
        method: &method,
        path: &path,
        remote: remote.as_deref(),
        status: resp.status().as_u16(),
        bytes: if head {
            0
        } else {
            resp.headers()
                .get(axum::http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse().ok())
                .or_else(|| resp.body().size_hint().exact())
                .unwrap_or(0)
        },
        duration_ms: start.elapsed().as_millis(),
        user: user.as_deref(),
    };
    eprintln!("{}", line.json());
    resp
}

struct Line<'a> {
    method: &'a str,
    path: &'a str,
    remote: Option<&'a str>,
    status: u16,
    bytes: u64,
    duration_ms: u128,
    user: Option<&'a str>,
}

impl Line<'_> {
    fn json(&self) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let mut v = serde_json::json!({
            "time": format!("{}.{:03}", now.as_secs(), now.subsec_millis()),
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "bytes": self.bytes,
            "duration_ms": self.duration_ms as u64,
        });
        let m = v.as_object_mut().expect("object literal");
        if let Some(r) = self.remote {
            m.insert("remote".into(), r.into());
        }
        if let Some(n) = crate::repository_of(self.path) {
            m.insert("repository".into(), n.into());
        }
        if let Some(u) = self.user {
            m.insert("user".into(), u.into());
        }
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_json_with_the_repository_and_without_anonymous_user() {
        let l = Line {
            method: "PUT",
            path: "/v2/team/app/manifests/1",
            remote: Some("127.0.0.1:9"),
            status: 201,
            bytes: 0,
            duration_ms: 4,
            user: None,
        };
        let v: serde_json::Value = serde_json::from_str(&l.json()).unwrap();
        assert_eq!(v["repository"], "team/app");
        assert_eq!(v["status"], 201);
        assert_eq!(v["remote"], "127.0.0.1:9");
        assert!(v.get("user").is_none(), "{v}");
    }
}
