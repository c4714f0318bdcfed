//! Asking the upstream resolvers: the query goes out verbatim but for a new
//! random ID, from a new socket (so a new random source port), to each
//! upstream in turn until one gives a matching reply within the timeout.

use super::wire::{self, Query};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Over UDP; the upstream's reply with the client's ID put back, or None if
/// none answered. A truncated (TC) reply is a reply: the client retries
/// over TCP itself.
pub(crate) fn udp(
    upstreams: &[SocketAddr],
    timeout: Duration,
    msg: &[u8],
    query: &Query,
) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 65535];
    for &up in upstreams {
        if let Some(reply) = udp_one(up, timeout, msg, query, &mut buf) {
            return Some(reply);
        }
    }
    None
}

fn udp_one(
    up: SocketAddr,
    timeout: Duration,
    msg: &[u8],
    query: &Query,
    buf: &mut [u8],
) -> Option<Vec<u8>> {
    let deadline = Instant::now() + timeout;
    let sock = UdpSocket::bind(unspecified(up)).ok()?;
    // Connected: the kernel drops datagrams from anyone but the upstream,
    // and an ICMP port unreachable surfaces as ECONNREFUSED right away.
    sock.connect(up).ok()?;
    let id = random_id();
    let out = with_id(msg, id);
    sock.send(&out).ok()?;
    loop {
        let left = deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())?;
        sock.set_read_timeout(Some(left)).ok()?;
        match sock.recv(buf) {
            Ok(n) if wire::reply_matches(&buf[..n], id, query) => {
                return Some(with_id(&buf[..n], query.header.id));
            }
            Ok(_) => continue, // a stray or spoofed datagram: keep waiting
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return None, // timed out, refused, ...
        }
    }
}

/// Over TCP, a new connection per query.
pub(crate) fn tcp(
    upstreams: &[SocketAddr],
    timeout: Duration,
    msg: &[u8],
    query: &Query,
) -> Option<Vec<u8>> {
    upstreams
        .iter()
        .find_map(|&up| tcp_one(up, timeout, msg, query))
}

fn tcp_one(up: SocketAddr, timeout: Duration, msg: &[u8], query: &Query) -> Option<Vec<u8>> {
    let deadline = Instant::now() + timeout;
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
    };
    let mut stream = TcpStream::connect_timeout(&up, left()?).ok()?;
    let id = random_id();
    let mut out = Vec::with_capacity(msg.len() + 2);
    out.extend_from_slice(&u16::try_from(msg.len()).ok()?.to_be_bytes());
    out.extend_from_slice(&with_id(msg, id));
    stream.set_write_timeout(Some(left()?)).ok()?;
    stream.write_all(&out).ok()?;
    let mut len = [0u8; 2];
    read_full(&mut stream, &mut len, &left)?;
    let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
    read_full(&mut stream, &mut reply, &left)?;
    wire::reply_matches(&reply, id, query).then(|| with_id(&reply, query.header.id))
}

/// Fills `buf`, giving up when `left` says the time is over.
fn read_full(
    stream: &mut TcpStream,
    buf: &mut [u8],
    left: &dyn Fn() -> Option<Duration>,
) -> Option<()> {
    let mut got = 0;
    while got < buf.len() {
        stream.set_read_timeout(Some(left()?)).ok()?;
        match stream.read(&mut buf[got..]) {
            Ok(0) => return None,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return None,
        }
    }
    Some(())
}

fn unspecified(up: SocketAddr) -> SocketAddr {
    match up {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    }
}

/// `msg` with its first two bytes (the ID) replaced.
fn with_id(msg: &[u8], id: u16) -> Vec<u8> {
    let mut out = msg.to_vec();
    if out.len() >= 2 {
        out[..2].copy_from_slice(&id.to_be_bytes());
    }
    out
}

/// A query ID nobody off the path can guess: from the kernel's CSPRNG, or,
/// should /dev/urandom be unreadable, SipHash under std's randomly keyed
/// `RandomState` over a counter and the clock.
pub(crate) fn random_id() -> u16 {
    static URANDOM: OnceLock<Option<std::fs::File>> = OnceLock::new();
    let mut b = [0u8; 2];
    if let Some(mut f) = URANDOM
        .get_or_init(|| std::fs::File::open("/dev/urandom").ok())
        .as_ref()
    {
        if f.read_exact(&mut b).is_ok() {
            return u16::from_ne_bytes(b);
        }
    }
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    h.finish() as u16
}
