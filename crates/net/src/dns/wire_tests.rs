//! The wire format and the answer logic, without sockets; plus the helpers
//! the socket tests share (a records table, a query builder, a response reader).

use super::answer::{handle, Action};
use super::wire::*;
use super::Records;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A fixed records table. Its lookup only knows lowercase keys, so a server
/// that forgot to lowercase would not find `WEB`.
pub(super) struct Table {
    names: HashMap<String, Vec<IpAddr>>,
    rev: HashMap<IpAddr, String>,
}

impl Table {
    pub(super) fn sample() -> Table {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let mut names = HashMap::new();
        names.insert("web".to_string(), vec![ip("10.88.0.2"), ip("fd00::2")]);
        names.insert("db".to_string(), vec![ip("10.88.0.3")]);
        names.insert("db.alias".to_string(), vec![ip("10.88.0.3")]);
        names.insert("empty".to_string(), vec![]);
        let many = (0..200u8)
            .map(|i| IpAddr::V4(Ipv4Addr::new(10, 89, 0, i)))
            .collect();
        names.insert("many".to_string(), many);
        let mut rev = HashMap::new();
        rev.insert(ip("10.88.0.2"), "web.".to_string());
        rev.insert(ip("fd00::2"), "web".to_string());
        rev.insert(ip("10.88.0.9"), "bad..name".to_string());
        Table { names, rev }
    }
}

impl Records for Table {
    fn lookup(&self, name: &str) -> Option<Vec<IpAddr>> {
        self.names.get(name).cloned()
    }

    fn reverse(&self, addr: IpAddr) -> Option<String> {
        self.rev.get(&addr).cloned()
    }
}

/// A query with RD set, class IN, optionally with an OPT record.
pub(super) fn query(id: u16, name: &str, qtype: u16, edns: Option<u16>) -> Vec<u8> {
    let mut m = Vec::new();
    for v in [id, 0x0100, 1, 0, 0, u16::from(edns.is_some())] {
        m.extend_from_slice(&v.to_be_bytes());
    }
    m.extend_from_slice(Name::from_dotted(name).unwrap().wire());
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&CLASS_IN.to_be_bytes());
    if let Some(size) = edns {
        m.extend_from_slice(&[0, 0, 41]);
        m.extend_from_slice(&size.to_be_bytes());
        m.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    }
    m
}

#[derive(Debug)]
pub(super) struct Rr {
    pub rtype: u16,
    pub ttl: u32,
    pub rdata: Vec<u8>,
}

impl Rr {
    pub(super) fn addr(&self) -> IpAddr {
        match self.rdata.len() {
            4 => IpAddr::from(<[u8; 4]>::try_from(&self.rdata[..]).unwrap()),
            16 => IpAddr::from(<[u8; 16]>::try_from(&self.rdata[..]).unwrap()),
            n => panic!("rdata of {n} bytes is no address"),
        }
    }
}

#[derive(Debug)]
pub(super) struct Response {
    pub header: Header,
    pub qname: Option<Name>,
    pub answers: Vec<Rr>,
    /// The OPT record's TTL field (extended rcode, version, flags), if any.
    pub opt: Option<u32>,
}

/// Reads a whole response, strictly: every byte accounted for.
pub(super) fn parse_response(msg: &[u8]) -> Response {
    let header = Header::parse(msg).expect("a header");
    let mut pos = HEADER_LEN;
    let mut qname = None;
    for _ in 0..header.qdcount {
        let (n, p) = read_name(msg, pos).expect("question name");
        qname = Some(n);
        pos = p + 4;
    }
    let mut rrs = Vec::new();
    let total = header.ancount + header.nscount + header.arcount;
    let mut opt = None;
    for _ in 0..total {
        let (_, p) = read_name(msg, pos).expect("record owner");
        let f = |i: usize| u16::from_be_bytes([msg[p + i], msg[p + i + 1]]);
        let rtype = f(0);
        let ttl = (u32::from(f(4)) << 16) | u32::from(f(6));
        let len = usize::from(f(8));
        let rdata = msg[p + 10..p + 10 + len].to_vec();
        pos = p + 10 + len;
        if rtype == TYPE_OPT {
            opt = Some(ttl);
        } else {
            rrs.push(Rr { rtype, ttl, rdata });
        }
    }
    assert_eq!(pos, msg.len(), "trailing bytes in {msg:?}");
    Response {
        header,
        qname,
        answers: rrs,
        opt,
    }
}

fn reply(msg: &[u8], tcp: bool) -> Vec<u8> {
    match handle(msg, &Table::sample(), 60, tcp) {
        Action::Reply(r) => r,
        other => panic!("expected a reply, got {other:?}"),
    }
}

fn answered(msg: &[u8]) -> Response {
    let r = parse_response(&reply(msg, false));
    assert!(r.header.qr() && r.header.aa() && r.header.ra() && r.header.rd());
    assert_eq!(r.header.rcode(), RCODE_NOERROR);
    assert_eq!(r.header.id, u16::from_be_bytes([msg[0], msg[1]]));
    r
}

fn addrs(r: &Response) -> Vec<IpAddr> {
    r.answers.iter().map(Rr::addr).collect()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn answers_a_aaaa_any_for_our_names() {
    let r = answered(&query(7, "web", TYPE_A, None));
    assert_eq!(addrs(&r), vec![ip("10.88.0.2")]);
    assert_eq!(r.answers[0].ttl, 60);
    assert_eq!(r.answers[0].rtype, TYPE_A);
    let r = answered(&query(8, "web", TYPE_AAAA, None));
    assert_eq!(addrs(&r), vec![ip("fd00::2")]);
    assert_eq!(r.answers[0].rtype, TYPE_AAAA);
    let r = answered(&query(9, "web", TYPE_ANY, None));
    assert_eq!(addrs(&r), vec![ip("10.88.0.2"), ip("fd00::2")]);
    let r = answered(&query(10, "db.alias", TYPE_A, None));
    assert_eq!(addrs(&r), vec![ip("10.88.0.3")]);
}

#[test]
fn our_name_without_that_type_is_noerror_empty() {
    for (name, qtype) in [
        ("db", TYPE_AAAA),
        ("web", 15),
        ("empty", TYPE_A),
        ("web", TYPE_PTR),
    ] {
        let r = answered(&query(1, name, qtype, None));
        assert!(r.answers.is_empty(), "{name} {qtype}");
        assert_eq!(r.header.ancount, 0);
    }
}

#[test]
fn names_are_case_insensitive_and_the_question_keeps_its_case() {
    let r = answered(&query(3, "WeB", TYPE_A, None));
    assert_eq!(addrs(&r), vec![ip("10.88.0.2")]);
    assert_eq!(r.qname.unwrap().wire(), b"\x03WeB\x00");
    let r = answered(&query(3, "DB.Alias.", TYPE_A, None));
    assert_eq!(addrs(&r), vec![ip("10.88.0.3")]);
}

#[test]
fn ptr_for_our_addresses() {
    let name = |r: &Response| {
        let (n, _) = read_name(&r.answers[0].rdata, 0).unwrap();
        n.lookup_key().unwrap()
    };
    let r = answered(&query(4, "2.0.88.10.in-addr.arpa", TYPE_PTR, None));
    assert_eq!(r.answers[0].rtype, TYPE_PTR);
    assert_eq!(name(&r), "web");
    let v6 = "2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.IP6.ARPA";
    let r = answered(&query(5, v6, TYPE_PTR, None));
    assert_eq!(name(&r), "web");
    // Not ours, or not writable as a name: upstream's business.
    for n in [
        "3.0.88.10.in-addr.arpa",
        "9.0.88.10.in-addr.arpa",
        "88.10.in-addr.arpa",
    ] {
        assert!(
            matches!(
                handle(&query(6, n, TYPE_PTR, None), &Table::sample(), 60, false),
                Action::Forward(_)
            ),
            "{n}"
        );
    }
}

#[test]
fn other_names_are_forwarded() {
    for name in ["example.com", "web.example.com", ".", "we\\b"] {
        let msg = if name == "we\\b" {
            let mut m = query(1, "xxxx", TYPE_A, None);
            m[13..17].copy_from_slice(b"we\\b");
            m
        } else {
            query(1, name, TYPE_A, None)
        };
        match handle(&msg, &Table::sample(), 60, false) {
            Action::Forward(q) => assert_eq!(q.header.id, 1),
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn too_many_answers_truncate_within_the_size_limit() {
    let r = reply(&query(1, "many", TYPE_A, None), false);
    assert!(r.len() <= UDP_PLAIN_MAX);
    let p = parse_response(&r);
    assert!(p.header.tc());
    assert!(!p.answers.is_empty() && p.answers.len() < 200);

    let r = reply(&query(1, "many", TYPE_A, Some(4096)), false);
    assert!(r.len() <= usize::from(UDP_EDNS_MAX) && r.len() > UDP_PLAIN_MAX);
    let p = parse_response(&r);
    assert!(p.header.tc() && p.opt.is_some());

    let p = parse_response(&reply(&query(1, "many", TYPE_A, Some(4096)), true));
    assert!(!p.header.tc());
    assert_eq!(p.answers.len(), 200);
}

#[test]
fn edns_is_echoed_and_unknown_versions_get_badvers() {
    let p = parse_response(&reply(&query(1, "web", TYPE_A, Some(1232)), false));
    assert_eq!(p.opt, Some(0));
    let mut m = query(1, "web", TYPE_A, Some(1232));
    let n = m.len();
    m[n - 5] = 1; // the OPT TTL's version byte
    let p = parse_response(&reply(&m, false));
    assert_eq!(p.header.rcode(), RCODE_BADVERS & 0xf);
    assert_eq!(p.opt.map(|t| t >> 24), Some(u32::from(RCODE_BADVERS >> 4)));
    // A second OPT is malformed.
    let mut m = query(1, "web", TYPE_A, Some(1232));
    let opt = m[m.len() - 11..].to_vec();
    m.extend_from_slice(&opt);
    m[11] = 2;
    assert_eq!(
        Header::parse(&reply(&m, false)).unwrap().rcode(),
        RCODE_FORMERR
    );
}

fn rcode_of(msg: &[u8]) -> u16 {
    let r = reply(msg, false);
    assert_eq!(r.len(), HEADER_LEN, "error responses are a bare header");
    let h = Header::parse(&r).unwrap();
    assert!(h.qr());
    assert_eq!(h.id, u16::from_be_bytes([msg[0], msg[1]]));
    assert_eq!(h.qdcount + h.ancount + h.nscount + h.arcount, 0);
    h.rcode()
}

#[test]
fn malformed_queries_get_formerr_or_notimp_or_nothing() {
    let good = query(0x4242, "web", TYPE_A, None);
    // Not even a header; a response.
    assert!(matches!(
        handle(&good[..11], &Table::sample(), 60, false),
        Action::Drop
    ));
    let mut resp = good.clone();
    resp[2] |= 0x80;
    assert!(matches!(
        handle(&resp, &Table::sample(), 60, false),
        Action::Drop
    ));
    // NOTIFY (opcode 4), UPDATE (5)
    for op in [4u8, 5, 15] {
        let mut m = good.clone();
        m[2] = (m[2] & 0x87) | (op << 3);
        assert_eq!(rcode_of(&m), RCODE_NOTIMP);
        assert_eq!(Header::parse(&reply(&m, false)).unwrap().opcode(), op);
    }
    // qdcount 0 and 2
    for qd in [0u8, 2] {
        let mut m = good.clone();
        m[5] = qd;
        assert_eq!(rcode_of(&m), RCODE_FORMERR);
    }
    // the question cut short
    assert_eq!(rcode_of(&good[..good.len() - 1]), RCODE_FORMERR);
    // a pointer to itself, a loop of two, a pointer forward
    let hdr = &good[..12];
    for name in [
        &b"\xc0\x0c"[..],
        b"\x01a\xc0\x0c",
        b"\xc0\x0e\x00",
        b"\x01a\xc0\x0e\x00",
    ] {
        let mut m = hdr.to_vec();
        m.extend_from_slice(name);
        m.extend_from_slice(&[0, 1, 0, 1]);
        assert_eq!(rcode_of(&m), RCODE_FORMERR, "{name:?}");
    }
    // a label "longer than 63" (0x40 and 0x80 prefixes)
    for len in [64u8, 0x80, 0xbf] {
        let mut m = hdr.to_vec();
        m.push(len);
        m.extend(std::iter::repeat_n(b'a', usize::from(len & 0x3f)));
        m.extend_from_slice(&[0, 0, 1, 0, 1]);
        assert_eq!(rcode_of(&m), RCODE_FORMERR);
    }
    // a name of 256 bytes
    let long = [&"a".repeat(63)[..]; 4].join(".");
    let mut m = hdr.to_vec();
    for label in long.split('.') {
        m.push(63);
        m.extend_from_slice(label.as_bytes());
    }
    m.extend_from_slice(&[0, 0, 1, 0, 1]);
    assert_eq!(m.len() - 12 - 4, 257);
    assert_eq!(rcode_of(&m), RCODE_FORMERR);
    // exactly 255 is fine (and not ours)
    let ok = format!("{}.{}", [&"a".repeat(63)[..]; 3].join("."), "b".repeat(61));
    let m = query(1, &ok, TYPE_A, None);
    assert!(matches!(
        handle(&m, &Table::sample(), 60, false),
        Action::Forward(_)
    ));
    // counts that promise records which are not there
    let mut m = good.clone();
    m[7] = 1;
    assert_eq!(rcode_of(&m), RCODE_FORMERR);
    let mut m = good.clone();
    m[10] = 0xff;
    m[11] = 0xff;
    assert_eq!(rcode_of(&m), RCODE_FORMERR);
}

#[test]
fn compressed_names_read_back() {
    let mut m = vec![0u8; 12];
    m.extend_from_slice(b"\x03com\x00"); // 12
    m.extend_from_slice(b"\x07example\xc0\x0c"); // 17
    m.extend_from_slice(b"\x03www\xc0\x11"); // 27
    let (n, after) = read_name(&m, 27).unwrap();
    assert_eq!(n.lookup_key().unwrap(), "www.example.com");
    assert_eq!(after, m.len());
    assert_eq!(
        n.wire(),
        Name::from_dotted("www.example.com").unwrap().wire()
    );
    let (n, after) = read_name(&m, 17).unwrap();
    assert_eq!(n.lookup_key().unwrap(), "example.com");
    assert_eq!(after, 27);
    // a pointer into the middle of a later name is not allowed
    let mut bad = m.clone();
    bad[26] = 29;
    assert_eq!(read_name(&bad, 17), Err(WireError::BadPointer));
}

#[test]
fn names_from_text() {
    assert_eq!(Name::from_dotted(".").unwrap().wire(), b"\x00");
    assert_eq!(Name::from_dotted("").unwrap().wire(), b"\x00");
    assert_eq!(Name::from_dotted("a.b.").unwrap().wire(), b"\x01a\x01b\x00");
    assert!(Name::from_dotted("a..b").is_none());
    assert!(Name::from_dotted(&"a".repeat(64)).is_none());
    assert!(Name::from_dotted(&[&"a".repeat(63)[..]; 4].join(".")).is_none());
    assert_eq!(Name::from_dotted(".").unwrap().lookup_key(), None);
    assert_eq!(
        Name::from_dotted("A-b_C.x").unwrap().lookup_key().unwrap(),
        "a-b_c.x"
    );
    assert_eq!(Name::from_dotted("a b").unwrap().lookup_key(), None);
}

#[test]
fn reverse_names() {
    let r = |s: &str| reverse_addr(&Name::from_dotted(s).unwrap());
    assert_eq!(r("4.3.2.1.in-addr.arpa"), Some(ip("1.2.3.4")));
    assert_eq!(r("4.3.2.1.IN-ADDR.Arpa."), Some(ip("1.2.3.4")));
    for bad in [
        "3.2.1.in-addr.arpa",
        "256.3.2.1.in-addr.arpa",
        "4.3.2.1.in-addr.arpa.x",
        "x.3.2.1.in-addr.arpa",
        "-1.3.2.1.in-addr.arpa",
        "1234.3.2.1.in-addr.arpa",
        "4.3.2.1.ip6.arpa",
    ] {
        assert_eq!(r(bad), None, "{bad}");
    }
    let v6: Ipv6Addr = "2001:db8::abcd".parse().unwrap();
    let nibbles: Vec<String> = format!("{:032x}", u128::from(v6))
        .chars()
        .rev()
        .map(String::from)
        .collect();
    assert_eq!(
        r(&format!("{}.ip6.arpa", nibbles.join("."))),
        Some(IpAddr::V6(v6))
    );
    assert_eq!(
        r(&format!("{}.ip6.arpa", nibbles.join(".").to_uppercase())),
        Some(IpAddr::V6(v6))
    );
    assert_eq!(r(&format!("{}.ip6.arpa", nibbles[1..].join("."))), None);
    assert_eq!(r(&format!("g.{}.ip6.arpa", nibbles[1..].join("."))), None);
    assert_eq!(r(&format!("00.{}.ip6.arpa", nibbles[1..].join("."))), None);
}

#[test]
fn upstream_replies_must_match_id_and_question() {
    let q = parse_query(&query(5, "Example.COM", TYPE_A, None)).unwrap();
    let mk = |id: u16, name: &str, qtype: u16| {
        let mut m = query(id, name, qtype, None);
        m[2] |= 0x80;
        m
    };
    assert!(reply_matches(&mk(9, "example.com", TYPE_A), 9, &q));
    assert!(!reply_matches(&mk(8, "example.com", TYPE_A), 9, &q));
    assert!(!reply_matches(&mk(9, "example.org", TYPE_A), 9, &q));
    assert!(!reply_matches(&mk(9, "example.com", TYPE_AAAA), 9, &q));
    assert!(!reply_matches(
        &query(9, "example.com", TYPE_A, None),
        9,
        &q
    )); // QR=0
    assert!(!reply_matches(&mk(9, "example.com", TYPE_A)[..20], 9, &q));
    let formerr = error_response(
        &Header::parse(&query(9, "x", 1, None)).unwrap(),
        RCODE_FORMERR,
    );
    assert!(reply_matches(&formerr, 9, &q));
    let bare_ok = error_response(
        &Header::parse(&query(9, "x", 1, None)).unwrap(),
        RCODE_NOERROR,
    );
    assert!(!reply_matches(&bare_ok, 9, &q));
}

/// xorshift64*: a fixed seed, so a failure reproduces.
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub(super) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub(super) fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// Whatever comes in: no panic, and a reply is a well-formed response to
/// that ID within the size limit.
fn check_any(msg: &[u8], tcp: bool) {
    let table = Table::sample();
    match handle(msg, &table, 60, tcp) {
        Action::Drop => {}
        Action::Reply(r) => {
            assert!(
                r.len()
                    <= if tcp {
                        TCP_MAX
                    } else {
                        usize::from(UDP_EDNS_MAX)
                    }
            );
            let h = Header::parse(&r).unwrap();
            assert!(h.qr());
            assert_eq!(h.id, u16::from_be_bytes([msg[0], msg[1]]));
            parse_response(&r);
        }
        Action::Forward(q) => assert_eq!(parse_query(msg), Ok(q)),
    }
}

#[test]
fn fuzz_random_bytes() {
    let mut rng = Rng::new(0x5eed_0001);
    for i in 0..30_000 {
        let len = rng.below(600);
        let mut m = rng.bytes(len);
        if i % 2 == 0 && m.len() >= 12 {
            // Mostly well-formed headers, so the parser gets past them.
            m[2] &= 0x07;
            m[4] = 0;
            m[5] = 1;
            m[6] = 0;
            m[8] = 0;
            m[10] = 0;
            m[11] &= 1;
        }
        check_any(&m, i % 3 == 0);
    }
}

#[test]
fn fuzz_truncated_and_mutated_queries() {
    let samples = [
        query(1, "web", TYPE_A, None),
        query(2, "WEB", TYPE_AAAA, Some(4096)),
        query(3, "many", TYPE_ANY, Some(600)),
        query(4, "2.0.88.10.in-addr.arpa", TYPE_PTR, Some(1232)),
        query(5, "www.example.com", TYPE_A, None),
    ];
    for s in &samples {
        for n in 0..=s.len() {
            check_any(&s[..n], false);
        }
    }
    let mut rng = Rng::new(0x5eed_0002);
    for i in 0..50_000 {
        let mut m = samples[rng.below(samples.len())].clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(m.len());
            match rng.below(4) {
                0 => m[at] = rng.next() as u8,
                1 => m[at] ^= 1 << rng.below(8),
                2 => m[at] = [0, 0x3f, 0x40, 0xc0, 0xff][rng.below(5)],
                _ => m.truncate(at.max(1)),
            }
        }
        check_any(&m, i % 2 == 0);
    }
}
