//! Registry hosts: Docker Hub aliases, loopback and insecure hosts, mirrors.

use std::net::IpAddr;

use crate::error::{Error, Result};

/// The names Docker Hub goes by in references and configs.
const DOCKER_HUB_ALIASES: [&str; 3] = ["docker.io", "index.docker.io", "registry-1.docker.io"];
const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// The host that serves the registry API for `host`: `docker.io` (and
/// `index.docker.io`) -> `registry-1.docker.io`; every other host is itself.
pub fn api_host(host: &str) -> &str {
    if is_docker_hub(host) {
        DOCKER_HUB_API
    } else {
        host
    }
}

/// Whether `host` names Docker Hub.
pub(crate) fn is_docker_hub(host: &str) -> bool {
    DOCKER_HUB_ALIASES
        .iter()
        .any(|a| host.eq_ignore_ascii_case(a))
}

/// Splits `host[:port]` (`[v6]:port`, bare `::1`) into the host name (or
/// address, without brackets) and the port.
pub(crate) fn split_host_port(host: &str) -> (&str, Option<&str>) {
    if let Some(rest) = host.strip_prefix('[') {
        if let Some((h, tail)) = rest.split_once(']') {
            return (h, tail.strip_prefix(':'));
        }
        return (rest, None);
    }
    match host.matches(':').count() {
        1 => {
            let (h, p) = host.split_once(':').expect("one colon");
            (h, Some(p))
        }
        _ => (host, None), // a bare name, or a bare IPv6 address
    }
}

/// `host[:port]` as it goes into a URL: a bare IPv6 address gets brackets.
pub(crate) fn url_authority(host: &str) -> String {
    if !host.starts_with('[') && host.matches(':').count() > 1 {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// Whether `host` (with or without a port) is a loopback host.
pub(crate) fn is_loopback(host: &str) -> bool {
    let (name, _) = split_host_port(host);
    if name.eq_ignore_ascii_case("localhost") || name.to_ascii_lowercase().ends_with(".localhost") {
        return true;
    }
    name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether `host` may be reached over plain http: loopback, or listed in
/// `insecure` as `host:port`, `host`, or a CIDR range holding its address.
pub(crate) fn is_insecure(host: &str, insecure: &[String]) -> bool {
    if is_loopback(host) {
        return true;
    }
    let (name, _) = split_host_port(host);
    let ip = name.parse::<IpAddr>().ok();
    insecure.iter().any(|entry| {
        let entry = entry
            .trim()
            .trim_start_matches("http://")
            .trim_start_matches("https://")
            .trim_end_matches('/');
        if entry.eq_ignore_ascii_case(host) || entry.eq_ignore_ascii_case(name) {
            return true;
        }
        match (ip, entry.split_once('/')) {
            (Some(ip), Some((net, bits))) => cidr_contains(net, bits, ip),
            _ => false,
        }
    })
}

fn cidr_contains(net: &str, bits: &str, ip: IpAddr) -> bool {
    let (Ok(net), Ok(bits)) = (net.parse::<IpAddr>(), bits.parse::<u32>()) else {
        return false;
    };
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) if bits <= 128 => {
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

/// The URL scheme used to reach a registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// One place to send registry requests to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// The host as the user named it (`docker.io`, a mirror's host): used in
    /// messages and to look up credentials.
    pub host: String,
    /// The host (and port) connected to.
    pub api: String,
    /// A scheme the configuration fixed (a mirror given as `http://…`).
    pub scheme: Option<Scheme>,
    /// Whether plain http (and unverified https) is allowed.
    pub insecure: bool,
}

impl Endpoint {
    pub(crate) fn registry(host: &str, insecure_hosts: &[String]) -> Endpoint {
        let api = api_host(host).to_string();
        Endpoint {
            host: host.to_string(),
            insecure: is_insecure(&api, insecure_hosts),
            api,
            scheme: None,
        }
    }

    /// Parses a mirror given as `host[:port]` or `http(s)://host[:port][/]`.
    pub(crate) fn mirror(mirror: &str, insecure_hosts: &[String]) -> Result<Endpoint> {
        let invalid = |why: &str| Error::InvalidMirror {
            mirror: mirror.to_string(),
            reason: why.to_string(),
        };
        let (scheme, rest) = if let Some(r) = mirror.strip_prefix("https://") {
            (Some(Scheme::Https), r)
        } else if let Some(r) = mirror.strip_prefix("http://") {
            (Some(Scheme::Http), r)
        } else if mirror.contains("://") {
            return Err(invalid("only http and https are supported"));
        } else {
            (None, mirror)
        };
        let host = rest.trim_end_matches('/');
        if host.is_empty() {
            return Err(invalid("no host"));
        }
        if host.contains('/') {
            return Err(invalid("a mirror is a host, without a path"));
        }
        if host.contains(['?', '#', '@', ' ']) {
            return Err(invalid("not a host name"));
        }
        let insecure = is_insecure(host, insecure_hosts);
        if scheme == Some(Scheme::Http) && !insecure {
            return Err(invalid(&format!(
                "plain http is only allowed for insecure hosts: add {host} to the insecure hosts"
            )));
        }
        Ok(Endpoint {
            host: host.to_string(),
            api: host.to_string(),
            scheme,
            insecure,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_host_maps_docker_hub() {
        assert_eq!(api_host("docker.io"), "registry-1.docker.io");
        assert_eq!(api_host("index.docker.io"), "registry-1.docker.io");
        assert_eq!(api_host("quay.io"), "quay.io");
        assert_eq!(api_host("localhost:5000"), "localhost:5000");
    }

    #[test]
    fn splits_host_and_port() {
        assert_eq!(split_host_port("a.b:5000"), ("a.b", Some("5000")));
        assert_eq!(split_host_port("a.b"), ("a.b", None));
        assert_eq!(split_host_port("[::1]:5000"), ("::1", Some("5000")));
        assert_eq!(split_host_port("::1"), ("::1", None));
        assert_eq!(url_authority("::1"), "[::1]");
        assert_eq!(url_authority("[::1]:5"), "[::1]:5");
        assert_eq!(url_authority("h:5"), "h:5");
    }

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost",
            "localhost:5000",
            "127.0.0.1",
            "127.1.2.3:80",
            "::1",
            "[::1]:5000",
            "registry.localhost:1",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in [
            "docker.io",
            "10.0.0.1:5000",
            "localhost.example.com",
            "[::2]:5",
        ] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn insecure_hosts() {
        let list = vec![
            "reg.lan:5000".to_string(),
            "plain.lan".to_string(),
            "10.1.0.0/16".to_string(),
            "fd00::/8".to_string(),
        ];
        assert!(is_insecure("reg.lan:5000", &list));
        assert!(!is_insecure("reg.lan:5001", &list));
        assert!(is_insecure("plain.lan:443", &list));
        assert!(is_insecure("10.1.200.3:5000", &list));
        assert!(!is_insecure("10.2.0.1", &list));
        assert!(is_insecure("[fd12::1]:5000", &list));
        assert!(is_insecure("localhost:1", &[]));
        assert!(!is_insecure("docker.io", &list));
        assert!(is_insecure("1.2.3.4", &["0.0.0.0/0".to_string()]));
    }

    #[test]
    fn mirrors() {
        let m = Endpoint::mirror("https://mirror.gcr.io/", &[]).unwrap();
        assert_eq!(m.api, "mirror.gcr.io");
        assert_eq!(m.scheme, Some(Scheme::Https));
        let m = Endpoint::mirror("mirror.lan:5000", &[]).unwrap();
        assert_eq!((m.scheme, m.insecure), (None, false));
        assert!(Endpoint::mirror("http://mirror.lan", &[]).is_err());
        assert!(Endpoint::mirror("http://mirror.lan", &["mirror.lan".into()]).is_ok());
        assert!(Endpoint::mirror("http://127.0.0.1:5000", &[]).is_ok());
        assert!(Endpoint::mirror("https://m.lan/v2/", &[]).is_err());
        assert!(Endpoint::mirror("ftp://m.lan", &[]).is_err());
        assert!(Endpoint::mirror("", &[]).is_err());
    }
}
