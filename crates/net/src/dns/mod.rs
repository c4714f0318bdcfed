//! The container DNS server (what Docker's embedded DNS and aardvark-dns
//! are): one per user-defined network, listening on the network's gateway
//! address, port 53, UDP and TCP, in the host's network namespace.
//! Containers' names (and aliases) on the network are answered from a
//! [`Records`] callback, asked on every query so the answers are never
//! stale; every other name is forwarded to the host's resolvers
//! ([`parse_resolv_conf`]).
//!
//! Plain std threads and blocking sockets with timeouts: one thread per
//! listening socket, one per forwarded UDP query and one per TCP connection,
//! both bounded ([`Config::max_forwards`], [`Config::max_tcp_connections`]).
//! The wire format is hand-rolled ([`wire`]) and reads hostile input.
//!
//! ```no_run
//! use berth_net::dns::{self, Config, Records, Server};
//! use std::net::IpAddr;
//! use std::sync::{atomic::AtomicBool, Arc};
//!
//! struct Db; // reads the state DB on every call
//! impl Records for Db {
//!     fn lookup(&self, name: &str) -> Option<Vec<IpAddr>> {
//!         (name == "web").then(|| vec!["10.88.0.2".parse().unwrap()])
//!     }
//!     fn reverse(&self, _addr: IpAddr) -> Option<String> {
//!         None
//!     }
//! }
//!
//! let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
//! let cfg = Config::new(vec!["10.88.0.1:53".parse().unwrap()], dns::parse_resolv_conf(&resolv));
//! let server = Server::bind(cfg, Arc::new(Db))?; // fails if 10.88.0.1:53 is taken
//! server.run(Arc::new(AtomicBool::new(false)))?; // until the flag is set
//! # Ok::<(), dns::Error>(())
//! ```

mod answer;
mod forward;
mod resolv;
mod server;
pub mod wire;

pub use resolv::parse_resolv_conf;
pub use server::{serve, Server};

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// The names berth knows, asked on every query (so it should be quick:
/// it runs on the listening thread).
pub trait Records: Send + Sync + 'static {
    /// The addresses of `name` (lowercased, no trailing dot). None: not ours,
    /// the query goes upstream. Some: ours, answered with the IPv4 addresses
    /// for A, the IPv6 ones for AAAA, both for ANY; an empty match for the
    /// type asked is NOERROR with no answers, never NXDOMAIN.
    fn lookup(&self, name: &str) -> Option<Vec<IpAddr>>;
    /// [`Records::lookup`] as the client at `client` sees names (a
    /// container on several networks knows the names of all of them).
    fn lookup_from(&self, client: IpAddr, name: &str) -> Option<Vec<IpAddr>> {
        let _ = client;
        self.lookup(name)
    }
    /// PTR: the name (dotted, a trailing dot optional) of one of our
    /// addresses. None: not ours, the query goes upstream.
    fn reverse(&self, addr: IpAddr) -> Option<String>;
}

#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen, UDP and TCP each. Port 0 picks a free port (the same
    /// one for UDP and TCP); [`Server::local_addrs`] says which.
    pub listen: Vec<SocketAddr>,
    /// Where to forward names that are not ours, tried in order. Any that
    /// is also a listen address is dropped (no forwarding loop to ourself).
    pub upstreams: Vec<SocketAddr>,
    /// TTL of our answers, seconds.
    pub ttl: u32,
    /// How long one upstream gets to answer (connect included over TCP)
    /// before the next one is tried; SERVFAIL once all have failed.
    pub upstream_timeout: Duration,
    /// At most this many forwarded UDP queries at once; beyond it a query
    /// gets SERVFAIL at once.
    pub max_forwards: usize,
    /// At most this many TCP connections at once; beyond it new ones are closed.
    pub max_tcp_connections: usize,
    /// A TCP connection with no complete query for this long is closed.
    pub tcp_idle_timeout: Duration,
}

impl Config {
    /// The defaults: TTL 60 s, 2 s per upstream, 128 forwarded queries and
    /// 32 TCP connections at once, TCP connections idle 10 s at most.
    pub fn new(listen: Vec<SocketAddr>, upstreams: Vec<SocketAddr>) -> Config {
        Config {
            listen,
            upstreams,
            ttl: 60,
            upstream_timeout: Duration::from_secs(2),
            max_forwards: 128,
            max_tcp_connections: 32,
            tcp_idle_timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("dns: no listen address given")]
    NoListenAddress,
    #[error(
        "dns: binding {proto} {addr}: {source} (is another DNS server such as dnsmasq or \
         aardvark-dns listening there, or is the address not assigned to an interface yet?)"
    )]
    Bind {
        proto: &'static str,
        addr: SocketAddr,
        source: io::Error,
    },
    #[error("dns: setting up the {proto} socket on {addr}: {source}")]
    Socket {
        proto: &'static str,
        addr: SocketAddr,
        source: io::Error,
    },
    #[error("dns: starting a server thread: {0}")]
    Thread(io::Error),
    #[error("dns: the server thread for {0} panicked")]
    Panicked(SocketAddr),
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod wire_tests;

#[cfg(test)]
#[path = "server_tests.rs"]
mod server_tests;
