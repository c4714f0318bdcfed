//! The sockets and threads: one thread per listening socket, which answers
//! our names itself and hands a query to forward to a thread of its own (UDP)
//! or forwards it on the connection's thread (TCP). All blocking calls have
//! timeouts, so a stop request is seen within [`POLL`].

use super::answer::{self, Action};
use super::{forward, Config, Error, Records};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// How often a blocked thread looks at the stop flag.
const POLL: Duration = Duration::from_millis(200);
/// Stack of the per-query and per-connection threads (buffers are on the heap).
const WORKER_STACK: usize = 256 * 1024;

/// A bound server, not serving yet.
pub struct Server {
    udp: Vec<Arc<UdpSocket>>,
    tcp: Vec<TcpListener>,
    local: Vec<SocketAddr>,
    shared: Arc<Shared>,
}

struct Shared {
    records: Arc<dyn Records>,
    ttl: u32,
    upstreams: Vec<SocketAddr>,
    upstream_timeout: Duration,
    max_forwards: usize,
    forwards: Arc<AtomicUsize>,
    max_tcp: usize,
    tcp_conns: Arc<AtomicUsize>,
    tcp_idle: Duration,
}

/// The caller's stop flag, or ours when starting the threads failed halfway.
struct Stop {
    external: Arc<AtomicBool>,
    internal: AtomicBool,
}

impl Stop {
    fn is_set(&self) -> bool {
        self.external.load(Ordering::Relaxed) || self.internal.load(Ordering::Relaxed)
    }
}

/// One unit of a bounded count, given back on drop.
struct Slot(Arc<AtomicUsize>);

impl Slot {
    fn take(count: &Arc<AtomicUsize>, max: usize) -> Option<Slot> {
        count
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()?;
        Some(Slot(count.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Binds every listen address, then serves until `stop` is set.
pub fn serve(cfg: Config, records: Arc<dyn Records>, stop: Arc<AtomicBool>) -> Result<(), Error> {
    Server::bind(cfg, records)?.run(stop)
}

impl Server {
    /// Binds UDP and TCP on every listen address; any failure is an error
    /// (and nothing stays bound).
    pub fn bind(cfg: Config, records: Arc<dyn Records>) -> Result<Server, Error> {
        if cfg.listen.is_empty() {
            return Err(Error::NoListenAddress);
        }
        let mut udp = Vec::new();
        let mut tcp = Vec::new();
        let mut local = Vec::new();
        for &addr in &cfg.listen {
            let (u, t) = bind_pair(addr)?;
            let sock_err = |proto| {
                move |source| Error::Socket {
                    proto,
                    addr,
                    source,
                }
            };
            local.push(u.local_addr().map_err(sock_err("udp"))?);
            u.set_read_timeout(Some(POLL)).map_err(sock_err("udp"))?;
            t.set_nonblocking(true).map_err(sock_err("tcp"))?;
            udp.push(Arc::new(u));
            tcp.push(t);
        }
        let upstreams = cfg
            .upstreams
            .iter()
            .copied()
            .filter(|u| !local.contains(u))
            .collect();
        let shared = Shared {
            records,
            ttl: cfg.ttl,
            upstreams,
            upstream_timeout: cfg.upstream_timeout,
            max_forwards: cfg.max_forwards,
            forwards: Arc::new(AtomicUsize::new(0)),
            max_tcp: cfg.max_tcp_connections,
            tcp_conns: Arc::new(AtomicUsize::new(0)),
            tcp_idle: cfg.tcp_idle_timeout,
        };
        Ok(Server {
            udp,
            tcp,
            local,
            shared: Arc::new(shared),
        })
    }

    /// The bound addresses, in the order of [`Config::listen`], with the
    /// actual port where port 0 was asked (UDP and TCP share it).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local
    }

    /// Serves until `stop` is set. Queries being forwarded at that moment
    /// finish on their own threads (within their timeouts).
    pub fn run(self, stop: Arc<AtomicBool>) -> Result<(), Error> {
        let stop = Arc::new(Stop {
            external: stop,
            internal: AtomicBool::new(false),
        });
        let mut threads = Vec::new();
        let mut spawn_error = None;
        for (sock, &addr) in self.udp.into_iter().zip(&self.local) {
            let (shared, stop2) = (self.shared.clone(), stop.clone());
            match thread::Builder::new()
                .name("dns-udp".into())
                .spawn(move || udp_loop(sock, shared, stop2))
            {
                Ok(t) => threads.push((addr, t)),
                Err(e) => spawn_error = spawn_error.or(Some(e)),
            }
        }
        for (listener, &addr) in self.tcp.into_iter().zip(&self.local) {
            let (shared, stop2) = (self.shared.clone(), stop.clone());
            match thread::Builder::new()
                .name("dns-tcp".into())
                .spawn(move || tcp_loop(listener, shared, stop2))
            {
                Ok(t) => threads.push((addr, t)),
                Err(e) => spawn_error = spawn_error.or(Some(e)),
            }
        }
        if spawn_error.is_some() {
            stop.internal.store(true, Ordering::Relaxed);
        }
        let mut result = spawn_error.map_or(Ok(()), |e| Err(Error::Thread(e)));
        for (addr, t) in threads {
            if t.join().is_err() && result.is_ok() {
                result = Err(Error::Panicked(addr));
            }
        }
        result
    }
}

/// UDP and TCP on `addr`; with port 0, on the same free port.
fn bind_pair(addr: SocketAddr) -> Result<(UdpSocket, TcpListener), Error> {
    let udp_err = |source| Error::Bind {
        proto: "udp",
        addr,
        source,
    };
    let tcp_err = |source| Error::Bind {
        proto: "tcp",
        addr,
        source,
    };
    if addr.port() != 0 {
        let u = UdpSocket::bind(addr).map_err(udp_err)?;
        let t = TcpListener::bind(addr).map_err(tcp_err)?;
        return Ok((u, t));
    }
    let mut last = None;
    for _ in 0..64 {
        let u = UdpSocket::bind(addr).map_err(udp_err)?;
        let port = u.local_addr().map_err(udp_err)?.port();
        match TcpListener::bind(SocketAddr::new(addr.ip(), port)) {
            Ok(t) => return Ok((u, t)),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => last = Some(e),
            Err(e) => return Err(tcp_err(e)),
        }
    }
    Err(tcp_err(
        last.unwrap_or_else(|| io::ErrorKind::AddrInUse.into()),
    ))
}

fn timed_out(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

fn udp_loop(sock: Arc<UdpSocket>, shared: Arc<Shared>, stop: Arc<Stop>) {
    let mut buf = vec![0u8; 65535];
    while !stop.is_set() {
        let (n, peer) = match sock.recv_from(&mut buf) {
            Ok(got) => got,
            Err(e) if timed_out(&e) => continue,
            Err(_) => {
                // Some transient error (ENOMEM, a stray ICMP error): do not spin.
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        if peer.port() == 0 {
            continue; // nowhere to answer to
        }
        let msg = &buf[..n];
        match answer::handle_from(msg, &*shared.records, shared.ttl, false, Some(peer.ip())) {
            Action::Drop => {}
            Action::Reply(r) => {
                let _ = sock.send_to(&r, peer);
            }
            Action::Forward(q) => {
                let Some(slot) = Slot::take(&shared.forwards, shared.max_forwards) else {
                    let _ = sock.send_to(&answer::servfail(&q, false), peer);
                    continue;
                };
                let fail = answer::servfail(&q, false);
                let (sock2, shared2, msg) = (sock.clone(), shared.clone(), msg.to_vec());
                let spawned = thread::Builder::new()
                    .name("dns-forward".into())
                    .stack_size(WORKER_STACK)
                    .spawn(move || {
                        let _slot = slot;
                        let reply =
                            forward::udp(&shared2.upstreams, shared2.upstream_timeout, &msg, &q)
                                .unwrap_or_else(|| answer::servfail(&q, false));
                        let _ = sock2.send_to(&reply, peer);
                    });
                if spawned.is_err() {
                    let _ = sock.send_to(&fail, peer);
                }
            }
        }
    }
}

fn tcp_loop(listener: TcpListener, shared: Arc<Shared>, stop: Arc<Stop>) {
    let poll_ms = u16::try_from(POLL.as_millis()).unwrap_or(u16::MAX);
    while !stop.is_set() {
        let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(poll_ms)) {
            Ok(0) | Err(_) => continue,
            Ok(_) => {}
        }
        let stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) if timed_out(&e) => continue,
            Err(_) => {
                // EMFILE and the like: poll says readable again at once.
                thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let Some(slot) = Slot::take(&shared.tcp_conns, shared.max_tcp) else {
            continue; // too many: the connection is closed as it drops
        };
        let (shared2, stop2) = (shared.clone(), stop.clone());
        let _ = thread::Builder::new()
            .name("dns-tcp-conn".into())
            .stack_size(WORKER_STACK)
            .spawn(move || {
                let _slot = slot;
                tcp_conn(stream, &shared2, &stop2);
            });
    }
}

/// Serves the queries of one connection, one after the other, until the
/// client closes, idles, sends something that is not a query, or we stop.
fn tcp_conn(mut stream: TcpStream, shared: &Shared, stop: &Stop) {
    if stream.set_nonblocking(false).is_err()
        || stream.set_write_timeout(Some(shared.tcp_idle)).is_err()
    {
        return;
    }
    let _ = stream.set_nodelay(true);
    loop {
        let deadline = Instant::now() + shared.tcp_idle;
        let mut len = [0u8; 2];
        if !read_full(&mut stream, &mut len, deadline, stop) {
            return;
        }
        let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
        if msg.is_empty() || !read_full(&mut stream, &mut msg, deadline, stop) {
            return;
        }
        let client = stream.peer_addr().ok().map(|a| a.ip());
        let reply = match answer::handle_from(&msg, &*shared.records, shared.ttl, true, client) {
            Action::Drop => return,
            Action::Reply(r) => r,
            Action::Forward(q) => {
                forward::tcp(&shared.upstreams, shared.upstream_timeout, &msg, &q)
                    .unwrap_or_else(|| answer::servfail(&q, true))
            }
        };
        let Ok(n) = u16::try_from(reply.len()) else {
            return;
        };
        let mut out = Vec::with_capacity(reply.len() + 2);
        out.extend_from_slice(&n.to_be_bytes());
        out.extend_from_slice(&reply);
        if stream.write_all(&out).is_err() {
            return;
        }
    }
}

/// Fills `buf` by `deadline`, looking at the stop flag every [`POLL`].
fn read_full(stream: &mut TcpStream, buf: &mut [u8], deadline: Instant, stop: &Stop) -> bool {
    let mut got = 0;
    while got < buf.len() {
        if stop.is_set() {
            return false;
        }
        let Some(left) = deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
        else {
            return false;
        };
        if stream.set_read_timeout(Some(left.min(POLL))).is_err() {
            return false;
        }
        match stream.read(&mut buf[got..]) {
            Ok(0) => return false,
            Ok(n) => got += n,
            Err(e) if timed_out(&e) => continue,
            Err(_) => return false,
        }
    }
    true
}
