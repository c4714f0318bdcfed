//! The server over real sockets on 127.0.0.1: local answers, forwarding to
//! fake upstreams (UDP and TCP), timeouts, garbage, and a real client (dig).
//! Every client read has a timeout, so no test can hang.

use super::wire::{self, Header, RData, TYPE_A, TYPE_AAAA, TYPE_ANY, TYPE_PTR};
use super::wire_tests::{parse_response, query, Response, Rng, Table};
use super::{Config, Error, Records, Server};
use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

fn localhost0() -> SocketAddr {
    (Ipv4Addr::LOCALHOST, 0).into()
}

/// A server on 127.0.0.1:0 in a thread; stopped and joined on drop.
struct Running {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<(), Error>>>,
}

impl Running {
    fn start(upstreams: Vec<SocketAddr>, upstream_timeout: Duration) -> Running {
        let mut cfg = Config::new(vec![localhost0()], upstreams);
        cfg.upstream_timeout = upstream_timeout;
        Running::with(cfg)
    }

    fn with(cfg: Config) -> Running {
        let server = Server::bind(cfg, Arc::new(Table::sample())).expect("bind");
        let addr = server.local_addrs()[0];
        assert_ne!(addr.port(), 0);
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = Some(thread::spawn(move || server.run(stop2)));
        Running { addr, stop, thread }
    }

    fn stop(mut self) -> Result<(), Error> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().unwrap().join().expect("server thread")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One UDP exchange; None if nothing came back in `wait`.
fn udp_ask_within(server: SocketAddr, msg: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let sock = UdpSocket::bind(localhost0()).unwrap();
    sock.set_read_timeout(Some(wait)).unwrap();
    sock.send_to(msg, server).unwrap();
    let mut buf = vec![0u8; 65535];
    let (n, from) = sock.recv_from(&mut buf).ok()?;
    assert_eq!(from, server);
    Some(buf[..n].to_vec())
}

fn udp_ask(server: SocketAddr, msg: &[u8]) -> Response {
    parse_response(&udp_ask_within(server, msg, CLIENT_TIMEOUT).expect("a UDP reply in time"))
}

/// Sends all `msgs` on one TCP connection at once, reads as many replies.
fn tcp_ask(server: SocketAddr, msgs: &[Vec<u8>]) -> Vec<Response> {
    let mut s = TcpStream::connect_timeout(&server, CLIENT_TIMEOUT).unwrap();
    s.set_read_timeout(Some(CLIENT_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(CLIENT_TIMEOUT)).unwrap();
    let mut out = Vec::new();
    for m in msgs {
        out.extend_from_slice(&(m.len() as u16).to_be_bytes());
        out.extend_from_slice(m);
    }
    s.write_all(&out).unwrap();
    msgs.iter()
        .map(|_| {
            let mut len = [0u8; 2];
            s.read_exact(&mut len).expect("a TCP reply in time");
            let mut r = vec![0u8; usize::from(u16::from_be_bytes(len))];
            s.read_exact(&mut r).unwrap();
            parse_response(&r)
        })
        .collect()
}

fn addrs(r: &Response) -> Vec<IpAddr> {
    r.answers.iter().map(|a| a.addr()).collect()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Answers A 192.0.2.7 (UDP) / 192.0.2.8 (TCP).
    Answer,
    /// Sends a reply with the wrong ID and one to another question first.
    NoiseFirst,
    /// Answers with TC set.
    Truncated,
}

/// A fake upstream resolver on 127.0.0.1:0, UDP and TCP on one port; records
/// the IDs and source addresses of the queries it got.
struct Upstream {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<(u16, SocketAddr)>>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

fn upstream_reply(msg: &[u8], mode: Mode, tcp: bool) -> Option<Vec<u8>> {
    let q = wire::parse_query(msg).ok()?;
    let a = if tcp { [192, 0, 2, 8] } else { [192, 0, 2, 7] };
    let mut r = wire::build_response(&q, 0, false, 30, &[RData::A(a.into())], 65535);
    if mode == Mode::Truncated {
        r[2] |= 0x02;
    }
    Some(r)
}

impl Upstream {
    fn start(mode: Mode) -> Upstream {
        let (udp, tcp) = udp_and_tcp_on_one_port();
        let addr = udp.local_addr().unwrap();
        tcp.set_nonblocking(true).unwrap();
        udp.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen2, stop2) = (seen.clone(), stop.clone());
        let t1 = thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !stop2.load(Ordering::SeqCst) {
                let Ok((n, peer)) = udp.recv_from(&mut buf) else {
                    continue;
                };
                let Some(r) = upstream_reply(&buf[..n], mode, false) else {
                    continue;
                };
                seen2
                    .lock()
                    .unwrap()
                    .push((u16::from_be_bytes([buf[0], buf[1]]), peer));
                if mode == Mode::NoiseFirst {
                    let mut wrong_id = r.clone();
                    wrong_id[1] ^= 1;
                    udp.send_to(&wrong_id, peer).unwrap();
                    let mut other = query(0, "other.example", TYPE_A, None);
                    other[..2].copy_from_slice(&buf[..2]);
                    other[2] |= 0x80;
                    udp.send_to(&other, peer).unwrap();
                }
                udp.send_to(&r, peer).unwrap();
            }
        });
        let stop3 = stop.clone();
        let t2 = thread::spawn(move || {
            while !stop3.load(Ordering::SeqCst) {
                let Ok((mut s, _)) = tcp.accept() else {
                    thread::sleep(Duration::from_millis(10));
                    continue;
                };
                s.set_nonblocking(false).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                let mut len = [0u8; 2];
                while s.read_exact(&mut len).is_ok() {
                    let mut m = vec![0u8; usize::from(u16::from_be_bytes(len))];
                    if s.read_exact(&mut m).is_err() {
                        break;
                    }
                    let Some(r) = upstream_reply(&m, mode, true) else {
                        break;
                    };
                    let mut out = (r.len() as u16).to_be_bytes().to_vec();
                    out.extend_from_slice(&r);
                    if s.write_all(&out).is_err() {
                        break;
                    }
                }
            }
        });
        Upstream {
            addr,
            seen,
            stop,
            threads: vec![t1, t2],
        }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A UDP socket and a TCP listener on the same loopback port. The kernel
/// picks a free UDP port; its TCP twin may be taken by another socket on
/// this machine, so another port is tried then (CI failed once on that).
fn udp_and_tcp_on_one_port() -> (UdpSocket, TcpListener) {
    for _ in 0..50 {
        let udp = UdpSocket::bind(localhost0()).unwrap();
        if let Ok(tcp) = TcpListener::bind(udp.local_addr().unwrap()) {
            return (udp, tcp);
        }
    }
    panic!("no loopback port free for both UDP and TCP in 50 tries");
}

/// An address where nothing answers: a UDP socket nobody reads and a TCP
/// listener nobody accepts on (the handshake completes in the backlog, then
/// silence). Kept alive by the returned sockets.
fn blackhole() -> (SocketAddr, UdpSocket, TcpListener) {
    let (udp, tcp) = udp_and_tcp_on_one_port();
    (udp.local_addr().unwrap(), udp, tcp)
}

/// An address where nobody listens: connection refused, port unreachable.
fn refused() -> SocketAddr {
    let l = TcpListener::bind(localhost0()).unwrap();
    l.local_addr().unwrap()
}

#[test]
fn answers_our_names_over_udp() {
    let srv = Running::start(vec![], Duration::from_millis(200));
    let r = udp_ask(srv.addr, &query(0xbeef, "web", TYPE_A, None));
    assert_eq!(r.header.id, 0xbeef);
    assert!(r.header.aa() && r.header.ra() && r.header.rd());
    assert_eq!(addrs(&r), vec![ip("10.88.0.2")]);
    assert_eq!(r.answers[0].ttl, 60);
    let r = udp_ask(srv.addr, &query(2, "WEB", TYPE_AAAA, Some(1232)));
    assert_eq!(addrs(&r), vec![ip("fd00::2")]);
    let r = udp_ask(srv.addr, &query(3, "Web", TYPE_ANY, None));
    assert_eq!(addrs(&r), vec![ip("10.88.0.2"), ip("fd00::2")]);
    let r = udp_ask(srv.addr, &query(4, "db", TYPE_AAAA, None));
    assert_eq!((r.header.rcode(), r.answers.len()), (0, 0));
    let r = udp_ask(
        srv.addr,
        &query(5, "2.0.88.10.in-addr.arpa", TYPE_PTR, None),
    );
    let (name, _) = wire::read_name(&r.answers[0].rdata, 0).unwrap();
    assert_eq!(name.lookup_key().unwrap(), "web");
    srv.stop().unwrap();
}

#[test]
fn answers_our_names_over_tcp_pipelined() {
    let srv = Running::start(vec![], Duration::from_millis(200));
    let rs = tcp_ask(
        srv.addr,
        &[
            query(1, "web", TYPE_A, None),
            query(2, "DB", TYPE_A, None),
            query(3, "many", TYPE_A, None),
        ],
    );
    assert_eq!(rs[0].header.id, 1);
    assert_eq!(addrs(&rs[0]), vec![ip("10.88.0.2")]);
    assert_eq!(addrs(&rs[1]), vec![ip("10.88.0.3")]);
    assert!(!rs[2].header.tc());
    assert_eq!(rs[2].answers.len(), 200);
    // The same over UDP does not fit: truncated.
    let r = udp_ask(srv.addr, &query(4, "many", TYPE_A, None));
    assert!(r.header.tc());
}

#[test]
fn forwards_other_names_over_udp_with_fresh_ids_and_ports() {
    let up = Upstream::start(Mode::Answer);
    let srv = Running::start(vec![up.addr], Duration::from_secs(2));
    for _ in 0..8 {
        let r = udp_ask(srv.addr, &query(0x1234, "example.com", TYPE_A, None));
        assert_eq!(r.header.id, 0x1234);
        assert!(!r.header.aa());
        assert_eq!(addrs(&r), vec![ip("192.0.2.7")]);
    }
    let seen = up.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 8);
    let ids: HashSet<u16> = seen.iter().map(|s| s.0).collect();
    let ports: HashSet<u16> = seen.iter().map(|s| s.1.port()).collect();
    assert!(ids.len() > 1, "the upstream saw only the IDs {ids:?}");
    assert!(ports.len() > 1, "the upstream saw only the ports {ports:?}");
    // A PTR of an address that is not ours goes upstream too.
    let r = udp_ask(
        srv.addr,
        &query(9, "1.2.0.192.in-addr.arpa", TYPE_PTR, None),
    );
    assert_eq!(r.header.rcode(), 0);
}

#[test]
fn forwarding_skips_replies_that_do_not_match() {
    let up = Upstream::start(Mode::NoiseFirst);
    let srv = Running::start(vec![up.addr], Duration::from_secs(2));
    let r = udp_ask(srv.addr, &query(77, "example.com", TYPE_A, None));
    assert_eq!(r.header.id, 77);
    assert_eq!(
        r.qname.as_ref().unwrap().lookup_key().unwrap(),
        "example.com"
    );
    assert_eq!(addrs(&r), vec![ip("192.0.2.7")]);
}

#[test]
fn a_truncated_upstream_reply_is_passed_on_and_tcp_is_forwarded_over_tcp() {
    let up = Upstream::start(Mode::Truncated);
    let srv = Running::start(vec![up.addr], Duration::from_secs(2));
    let r = udp_ask(srv.addr, &query(5, "big.example", TYPE_A, None));
    assert!(r.header.tc());
    assert_eq!(r.header.id, 5);
    let up2 = Upstream::start(Mode::Answer);
    let srv2 = Running::start(vec![up2.addr], Duration::from_secs(2));
    let rs = tcp_ask(
        srv2.addr,
        &[
            query(6, "big.example", TYPE_A, None),
            query(7, "web", TYPE_A, None),
        ],
    );
    assert_eq!(rs[0].header.id, 6);
    assert_eq!(addrs(&rs[0]), vec![ip("192.0.2.8")]);
    assert_eq!(addrs(&rs[1]), vec![ip("10.88.0.2")]);
    assert_eq!(up2.seen.lock().unwrap().len(), 0, "no UDP for a TCP query");
}

#[test]
fn unreachable_upstreams_give_servfail_within_the_timeout() {
    let (hole, _u, _t) = blackhole();
    let timeout = Duration::from_millis(300);
    for upstreams in [vec![hole], vec![refused()], vec![hole, refused()], vec![]] {
        let srv = Running::start(upstreams.clone(), timeout);
        let t0 = Instant::now();
        let r = udp_ask(srv.addr, &query(3, "example.com", TYPE_A, Some(1232)));
        assert_eq!(r.header.rcode(), wire::RCODE_SERVFAIL, "{upstreams:?}");
        assert_eq!(r.header.id, 3);
        assert!(r.opt.is_some());
        let rs = tcp_ask(srv.addr, &[query(4, "example.com", TYPE_A, None)]);
        assert_eq!(rs[0].header.rcode(), wire::RCODE_SERVFAIL, "{upstreams:?}");
        let took = t0.elapsed();
        assert!(
            took < timeout * (2 * upstreams.len() as u32) + Duration::from_secs(1),
            "{upstreams:?}: {took:?}"
        );
    }
}

#[test]
fn the_next_upstream_is_tried_after_a_timeout() {
    let (hole, _u, _t) = blackhole();
    let up = Upstream::start(Mode::Answer);
    let timeout = Duration::from_millis(300);
    let srv = Running::start(vec![hole, up.addr], timeout);
    let t0 = Instant::now();
    let r = udp_ask(srv.addr, &query(3, "example.com", TYPE_A, None));
    assert_eq!(addrs(&r), vec![ip("192.0.2.7")]);
    assert!(t0.elapsed() >= timeout);
    let rs = tcp_ask(srv.addr, &[query(4, "example.com", TYPE_A, None)]);
    assert_eq!(addrs(&rs[0]), vec![ip("192.0.2.8")]);
}

#[test]
fn a_slow_upstream_does_not_hold_up_other_queries() {
    let (hole, _u, _t) = blackhole();
    let mut cfg = Config::new(vec![localhost0()], vec![hole]);
    cfg.upstream_timeout = Duration::from_secs(3);
    cfg.max_forwards = 2;
    let srv = Running::with(cfg);
    let client = UdpSocket::bind(localhost0()).unwrap();
    for id in [1u16, 2] {
        client
            .send_to(&query(id, "slow.example", TYPE_A, None), srv.addr)
            .unwrap();
    }
    thread::sleep(Duration::from_millis(100));
    let t0 = Instant::now();
    // Ours is answered at once; a third forward is over the bound: SERVFAIL at once.
    let r = udp_ask(srv.addr, &query(3, "web", TYPE_A, None));
    assert_eq!(addrs(&r), vec![ip("10.88.0.2")]);
    let r = udp_ask(srv.addr, &query(4, "third.example", TYPE_A, None));
    assert_eq!(r.header.rcode(), wire::RCODE_SERVFAIL);
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    // The two slow ones still get their SERVFAIL once the upstream timed out.
    client.set_read_timeout(Some(CLIENT_TIMEOUT)).unwrap();
    let mut buf = [0u8; 512];
    let mut ids = Vec::new();
    for _ in 0..2 {
        let (n, _) = client
            .recv_from(&mut buf)
            .expect("the slow queries' SERVFAIL");
        let h = Header::parse(&buf[..n]).unwrap();
        assert_eq!(h.rcode(), wire::RCODE_SERVFAIL);
        ids.push(h.id);
    }
    ids.sort();
    assert_eq!(ids, vec![1, 2]);
}

#[test]
fn garbage_does_not_hurt_and_responses_are_ignored() {
    let up = Upstream::start(Mode::Answer);
    let srv = Running::start(vec![up.addr], Duration::from_secs(2));
    let mut rng = Rng::new(0x5eed_0003);
    let sender = UdpSocket::bind(localhost0()).unwrap();
    for _ in 0..2000 {
        let len = rng.below(700);
        let _ = sender.send_to(&rng.bytes(len), srv.addr);
    }
    for _ in 0..20 {
        let mut s = TcpStream::connect_timeout(&srv.addr, CLIENT_TIMEOUT).unwrap();
        let len = rng.below(300);
        let _ = s.write_all(&rng.bytes(len));
    }
    // A response (QR=1) gets nothing back: no ping-pong with another server.
    let mut resp = query(1, "web", TYPE_A, None);
    resp[2] |= 0x80;
    assert_eq!(
        udp_ask_within(srv.addr, &resp, Duration::from_millis(500)),
        None
    );
    // A malformed query gets FORMERR, a NOTIFY NOTIMP.
    let mut bad = query(2, "web", TYPE_A, None);
    bad[5] = 2;
    assert_eq!(udp_ask(srv.addr, &bad).header.rcode(), wire::RCODE_FORMERR);
    let mut notify = query(3, "web", TYPE_A, None);
    notify[2] = 4 << 3;
    assert_eq!(
        udp_ask(srv.addr, &notify).header.rcode(),
        wire::RCODE_NOTIMP
    );
    // And the server still answers, ours and forwarded, UDP and TCP.
    assert_eq!(
        addrs(&udp_ask(srv.addr, &query(4, "web", TYPE_A, None))),
        vec![ip("10.88.0.2")]
    );
    assert_eq!(
        addrs(&udp_ask(srv.addr, &query(5, "x.example", TYPE_A, None))),
        vec![ip("192.0.2.7")]
    );
    let rs = tcp_ask(srv.addr, &[query(6, "web", TYPE_A, None)]);
    assert_eq!(addrs(&rs[0]), vec![ip("10.88.0.2")]);
    srv.stop().unwrap();
}

#[test]
fn bind_errors_and_stop() {
    let srv = Running::start(vec![], Duration::from_millis(200));
    let taken = Config::new(vec![localhost0(), srv.addr], vec![]);
    match Server::bind(taken, Arc::new(Table::sample())) {
        Err(Error::Bind { addr, .. }) => assert_eq!(addr, srv.addr),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("bound {} twice", srv.addr),
    }
    assert!(matches!(
        Server::bind(Config::new(vec![], vec![]), Arc::new(Table::sample())),
        Err(Error::NoListenAddress)
    ));
    let t0 = Instant::now();
    srv.stop().unwrap();
    assert!(t0.elapsed() < Duration::from_secs(2));
}

#[test]
fn several_listen_addresses_and_no_forwarding_to_ourself() {
    let server = Server::bind(
        Config::new(
            vec![localhost0(), (Ipv4Addr::new(127, 0, 0, 2), 0).into()],
            vec![],
        ),
        Arc::new(Table::sample()),
    )
    .unwrap();
    let addrs2 = server.local_addrs().to_vec();
    assert_eq!(addrs2.len(), 2);
    drop(server);
    // A server whose only upstream is itself: SERVFAIL, not a loop.
    let sock = UdpSocket::bind(localhost0()).unwrap();
    let me = sock.local_addr().unwrap();
    drop(sock);
    let mut cfg = Config::new(vec![me], vec![me]);
    cfg.upstream_timeout = Duration::from_millis(300);
    let counting = Arc::new(Counting(Table::sample(), AtomicUsize::new(0)));
    let server = Server::bind(cfg, counting.clone()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let t = thread::spawn(move || server.run(stop2));
    let r = udp_ask(me, &query(1, "loop.example", TYPE_A, None));
    assert_eq!(r.header.rcode(), wire::RCODE_SERVFAIL);
    let rs = tcp_ask(me, &[query(2, "loop.example", TYPE_A, None)]);
    assert_eq!(rs[0].header.rcode(), wire::RCODE_SERVFAIL);
    // Each query was looked at once: it did not come back to us.
    assert_eq!(counting.1.load(Ordering::SeqCst), 2);
    stop.store(true, Ordering::SeqCst);
    t.join().unwrap().unwrap();
}

/// A table that counts its lookups.
struct Counting(Table, AtomicUsize);

impl Records for Counting {
    fn lookup(&self, name: &str) -> Option<Vec<IpAddr>> {
        self.1.fetch_add(1, Ordering::SeqCst);
        self.0.lookup(name)
    }

    fn reverse(&self, addr: IpAddr) -> Option<String> {
        self.0.reverse(addr)
    }
}

#[test]
fn ipv6_listen_address() {
    let cfg = Config::new(vec!["[::1]:0".parse().unwrap()], vec![]);
    let server = match Server::bind(cfg, Arc::new(Table::sample())) {
        Ok(s) => s,
        Err(Error::Bind { source, .. })
            if source.kind() == std::io::ErrorKind::AddrNotAvailable =>
        {
            eprintln!("SKIPPED ipv6_listen_address: no ::1 here ({source})");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let addr = server.local_addrs()[0];
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let t = thread::spawn(move || server.run(stop2));
    let sock = UdpSocket::bind("[::1]:0").unwrap();
    sock.set_read_timeout(Some(CLIENT_TIMEOUT)).unwrap();
    sock.send_to(&query(1, "web", TYPE_AAAA, None), addr)
        .unwrap();
    let mut buf = [0u8; 512];
    let (n, _) = sock.recv_from(&mut buf).expect("a reply over IPv6");
    assert_eq!(addrs(&parse_response(&buf[..n])), vec![ip("fd00::2")]);
    let rs = tcp_ask(addr, &[query(2, "web", TYPE_A, None)]);
    assert_eq!(addrs(&rs[0]), vec![ip("10.88.0.2")]);
    stop.store(true, Ordering::SeqCst);
    t.join().unwrap().unwrap();
}

/// dig, a real client (Debian's bind9-dnsutils; scripts/deps.sh installs it).
fn dig(server: SocketAddr, args: &[&str]) -> String {
    let mut cmd = std::process::Command::new("dig");
    cmd.arg(format!("@{}", server.ip()))
        .arg("-p")
        .arg(server.port().to_string())
        .args(["+time=3", "+tries=1"])
        .args(args);
    let out = cmd.output().expect("running dig");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn dig_agrees() {
    if std::process::Command::new("dig")
        .arg("-v")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED dig_agrees: `dig` is not installed (apt-get install bind9-dnsutils)");
        return;
    }
    let up = Upstream::start(Mode::Answer);
    let srv = Running::start(vec![up.addr], Duration::from_secs(2));
    assert_eq!(dig(srv.addr, &["+short", "web", "A"]).trim(), "10.88.0.2");
    assert_eq!(dig(srv.addr, &["+short", "WeB", "AAAA"]).trim(), "fd00::2");
    assert_eq!(dig(srv.addr, &["+short", "-x", "10.88.0.2"]).trim(), "web.");
    assert_eq!(dig(srv.addr, &["+short", "-x", "fd00::2"]).trim(), "web.");
    let full = dig(srv.addr, &["db", "AAAA"]);
    assert!(full.contains("status: NOERROR"), "{full}");
    assert!(full.contains("ANSWER: 0,"), "{full}");
    assert!(full.contains(" aa "), "{full}");
    assert_eq!(
        dig(srv.addr, &["+short", "example.com"]).trim(),
        "192.0.2.7"
    );
    assert_eq!(
        dig(srv.addr, &["+short", "+tcp", "example.com"]).trim(),
        "192.0.2.8"
    );
    assert_eq!(
        dig(srv.addr, &["+short", "+tcp", "web"]).trim(),
        "10.88.0.2"
    );
    let noedns = dig(srv.addr, &["+noedns", "many", "A"]);
    assert!(noedns.contains("Truncated, retrying in TCP"), "{noedns}");
    assert!(noedns.contains("ANSWER: 200,"), "{noedns}");
}
