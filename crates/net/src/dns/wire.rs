//! The DNS wire format, just as much as the container DNS server needs
//! (RFC 1035 messages and names, RFC 3596 AAAA, RFC 6891 EDNS(0) OPT).
//!
//! Everything here reads hostile input: every read is bounds-checked, names
//! are capped at 255 bytes, compression pointers must point strictly
//! backwards (so a pointer loop cannot exist), and nothing allocates more than
//! the input's size or a fixed cap.

use std::net::{Ipv4Addr, Ipv6Addr};

pub const HEADER_LEN: usize = 12;
/// Longest name in wire form, the terminating root label included (RFC 1035 2.3.4).
pub const MAX_NAME_LEN: usize = 255;
pub const MAX_LABEL_LEN: usize = 63;
/// A reply over UDP to a client without EDNS.
pub const UDP_PLAIN_MAX: usize = 512;
/// The UDP payload size this server advertises and answers within (the DNS
/// flag day 2020 value: no IP fragmentation on any sane path).
pub const UDP_EDNS_MAX: u16 = 1232;
/// A DNS message over TCP is prefixed by a u16 length.
pub const TCP_MAX: usize = 65535;

pub const TYPE_A: u16 = 1;
pub const TYPE_PTR: u16 = 12;
pub const TYPE_AAAA: u16 = 28;
pub const TYPE_OPT: u16 = 41;
pub const TYPE_ANY: u16 = 255;
pub const CLASS_IN: u16 = 1;
pub const CLASS_ANY: u16 = 255;

pub const RCODE_NOERROR: u16 = 0;
pub const RCODE_FORMERR: u16 = 1;
pub const RCODE_SERVFAIL: u16 = 2;
pub const RCODE_NOTIMP: u16 = 4;
/// An extended RCODE (needs OPT): the query's EDNS version is not supported.
pub const RCODE_BADVERS: u16 = 16;

pub const OPCODE_QUERY: u8 = 0;

const FLAG_QR: u16 = 0x8000;
const FLAG_AA: u16 = 0x0400;
const FLAG_TC: u16 = 0x0200;
const FLAG_RD: u16 = 0x0100;
const FLAG_RA: u16 = 0x0080;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub id: u16,
    pub flags: u16,
    pub qdcount: u16,
    pub ancount: u16,
    pub nscount: u16,
    pub arcount: u16,
}

impl Header {
    pub fn parse(msg: &[u8]) -> Option<Header> {
        let h = msg.get(..HEADER_LEN)?;
        let w = |i: usize| u16::from_be_bytes([h[i], h[i + 1]]);
        Some(Header {
            id: w(0),
            flags: w(2),
            qdcount: w(4),
            ancount: w(6),
            nscount: w(8),
            arcount: w(10),
        })
    }

    pub fn qr(&self) -> bool {
        self.flags & FLAG_QR != 0
    }

    pub fn opcode(&self) -> u8 {
        ((self.flags >> 11) & 0xf) as u8
    }

    pub fn rd(&self) -> bool {
        self.flags & FLAG_RD != 0
    }

    pub fn tc(&self) -> bool {
        self.flags & FLAG_TC != 0
    }

    pub fn aa(&self) -> bool {
        self.flags & FLAG_AA != 0
    }

    pub fn ra(&self) -> bool {
        self.flags & FLAG_RA != 0
    }

    pub fn rcode(&self) -> u16 {
        self.flags & 0xf
    }

    fn write(&self, out: &mut Vec<u8>) {
        for v in [
            self.id,
            self.flags,
            self.qdcount,
            self.ancount,
            self.nscount,
            self.arcount,
        ] {
            out.extend_from_slice(&v.to_be_bytes());
        }
    }
}

/// Why a message could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireError {
    /// The message ends in the middle of something.
    Truncated,
    /// A label length byte with the reserved 0x40/0x80 prefix (this is also
    /// what a "label longer than 63" looks like on the wire).
    BadLabel,
    /// A compression pointer that does not point strictly backwards.
    BadPointer,
    /// More than 255 bytes of name.
    NameTooLong,
    /// An OPT record where it may not be (not root-owned, or a second one).
    BadOpt,
}

/// A domain name in uncompressed wire form (length-prefixed labels, the
/// terminating zero included), with the case it arrived in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Name {
    wire: Vec<u8>,
}

impl Name {
    /// `web.net` or `web.net.`; None if a label is empty or longer than 63
    /// bytes or the whole name longer than 255.
    pub fn from_dotted(s: &str) -> Option<Name> {
        let s = s.strip_suffix('.').unwrap_or(s);
        let mut wire = Vec::with_capacity(s.len() + 2);
        if !s.is_empty() {
            for label in s.split('.') {
                if label.is_empty() || label.len() > MAX_LABEL_LEN {
                    return None;
                }
                wire.push(label.len() as u8);
                wire.extend_from_slice(label.as_bytes());
            }
        }
        wire.push(0);
        (wire.len() <= MAX_NAME_LEN).then_some(Name { wire })
    }

    pub fn wire(&self) -> &[u8] {
        &self.wire
    }

    pub fn labels(&self) -> Labels<'_> {
        Labels { rest: &self.wire }
    }

    /// The lowercased dotted form without the trailing dot, for looking the
    /// name up. None for the root and for a name with a byte that has no
    /// plain presentation (outside `!`..=`~`, or a `.` or `\` inside a
    /// label): such a name is nobody's container.
    pub fn lookup_key(&self) -> Option<String> {
        let mut key = String::with_capacity(self.wire.len());
        for label in self.labels() {
            if !key.is_empty() {
                key.push('.');
            }
            for &b in label {
                if !(b'!'..=b'~').contains(&b) || b == b'.' || b == b'\\' {
                    return None;
                }
                key.push(b.to_ascii_lowercase() as char);
            }
        }
        (!key.is_empty()).then_some(key)
    }

    pub fn eq_ignore_case(&self, other: &Name) -> bool {
        self.wire.eq_ignore_ascii_case(&other.wire)
    }
}

pub struct Labels<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Labels<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let len = *self.rest.first()? as usize;
        if len == 0 {
            return None;
        }
        let label = self.rest.get(1..1 + len)?;
        self.rest = &self.rest[1 + len..];
        Some(label)
    }
}

/// Reads the (possibly compressed) name at `pos` of `msg`; returns it and the
/// position right after it in the message (after the first pointer, if any).
pub fn read_name(msg: &[u8], pos: usize) -> Result<(Name, usize), WireError> {
    let mut wire = Vec::with_capacity(32);
    let mut p = pos;
    let mut after = None;
    // Every pointer must point before the previous one (the first one before
    // itself): the targets strictly decrease, so the walk ends.
    let mut limit = usize::MAX;
    loop {
        let len = *msg.get(p).ok_or(WireError::Truncated)?;
        match len & 0xc0 {
            0x00 if len == 0 => {
                wire.push(0);
                if wire.len() > MAX_NAME_LEN {
                    return Err(WireError::NameTooLong);
                }
                return Ok((Name { wire }, after.unwrap_or(p + 1)));
            }
            0x00 => {
                let len = len as usize;
                let label = msg.get(p + 1..p + 1 + len).ok_or(WireError::Truncated)?;
                // +1 for the root label still to come.
                if wire.len() + 1 + len + 1 > MAX_NAME_LEN {
                    return Err(WireError::NameTooLong);
                }
                wire.push(len as u8);
                wire.extend_from_slice(label);
                p += 1 + len;
            }
            0xc0 => {
                let low = *msg.get(p + 1).ok_or(WireError::Truncated)?;
                let target = (usize::from(len & 0x3f) << 8) | usize::from(low);
                if target >= limit.min(p) {
                    return Err(WireError::BadPointer);
                }
                after.get_or_insert(p + 2);
                limit = target;
                p = target;
            }
            _ => return Err(WireError::BadLabel),
        }
    }
}

fn read_u16(msg: &[u8], pos: usize) -> Result<u16, WireError> {
    msg.get(pos..pos + 2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
        .ok_or(WireError::Truncated)
}

fn read_u32(msg: &[u8], pos: usize) -> Result<u32, WireError> {
    msg.get(pos..pos + 4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or(WireError::Truncated)
}

/// A query's EDNS(0) OPT record, as far as we care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edns {
    pub udp_size: u16,
    pub version: u8,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    pub header: Header,
    pub name: Name,
    pub qtype: u16,
    pub qclass: u16,
    pub edns: Option<Edns>,
}

/// Why a message is not a query we answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryError {
    /// Shorter than a header: nobody to answer to.
    Short,
    /// A response (QR=1): never answered, so that two servers cannot ping-pong.
    Response,
    /// Not a standard QUERY: NOTIMP.
    NotImplemented(Header),
    /// Anything else wrong: FORMERR.
    Malformed(Header, WireError),
}

/// Reads a query: header, exactly one question, and the additional section
/// for an OPT record (the answer and authority sections are skipped).
pub fn parse_query(msg: &[u8]) -> Result<Query, QueryError> {
    let header = Header::parse(msg).ok_or(QueryError::Short)?;
    if header.qr() {
        return Err(QueryError::Response);
    }
    if header.opcode() != OPCODE_QUERY {
        return Err(QueryError::NotImplemented(header));
    }
    let bad = |e| QueryError::Malformed(header, e);
    if header.qdcount != 1 {
        return Err(bad(WireError::Truncated));
    }
    let (name, mut pos) = read_name(msg, HEADER_LEN).map_err(bad)?;
    let qtype = read_u16(msg, pos).map_err(bad)?;
    let qclass = read_u16(msg, pos + 2).map_err(bad)?;
    pos += 4;
    // Each record takes at least 11 bytes, so this loop is bounded by the
    // message's length whatever the counts say.
    for _ in 0..u32::from(header.ancount) + u32::from(header.nscount) {
        pos = skip_record(msg, pos).map_err(bad)?.0;
    }
    let mut edns = None;
    for _ in 0..header.arcount {
        let (next, rtype) = skip_record(msg, pos).map_err(bad)?;
        if rtype == TYPE_OPT {
            if edns.is_some() || msg.get(pos) != Some(&0) {
                return Err(bad(WireError::BadOpt));
            }
            let udp_size = read_u16(msg, pos + 3).map_err(bad)?;
            let ttl = read_u32(msg, pos + 5).map_err(bad)?;
            edns = Some(Edns {
                udp_size,
                version: (ttl >> 16) as u8,
            });
        }
        pos = next;
    }
    Ok(Query {
        header,
        name,
        qtype,
        qclass,
        edns,
    })
}

/// Skips the resource record at `pos`; returns the position after it and its type.
fn skip_record(msg: &[u8], pos: usize) -> Result<(usize, u16), WireError> {
    let (_, pos) = read_name(msg, pos)?;
    let rtype = read_u16(msg, pos)?;
    let rdlen = usize::from(read_u16(msg, pos + 8)?);
    let end = pos + 10 + rdlen;
    if end > msg.len() {
        return Err(WireError::Truncated);
    }
    Ok((end, rtype))
}

/// Whether `reply` is the upstream's answer to `query` sent with ID `id`:
/// a response with that ID and the same question (names compared without
/// regard to case). An error response without a question is accepted too
/// (some servers answer FORMERR/NOTIMP that way).
pub fn reply_matches(reply: &[u8], id: u16, query: &Query) -> bool {
    let Some(h) = Header::parse(reply) else {
        return false;
    };
    if h.id != id || !h.qr() || h.opcode() != OPCODE_QUERY {
        return false;
    }
    match h.qdcount {
        0 => h.rcode() != RCODE_NOERROR,
        1 => {
            let Ok((name, pos)) = read_name(reply, HEADER_LEN) else {
                return false;
            };
            name.eq_ignore_case(&query.name)
                && read_u16(reply, pos) == Ok(query.qtype)
                && read_u16(reply, pos + 2) == Ok(query.qclass)
        }
        _ => false,
    }
}

/// Record data of an answer; every answer is owned by the question's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RData {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Ptr(Name),
}

impl RData {
    fn rtype(&self) -> u16 {
        match self {
            RData::A(_) => TYPE_A,
            RData::Aaaa(_) => TYPE_AAAA,
            RData::Ptr(_) => TYPE_PTR,
        }
    }
}

/// The most a reply to `query` may take: over UDP the client's EDNS size
/// (at least 512, at most what we advertise), 512 without EDNS; over TCP 64 KiB.
pub fn max_reply_len(query: &Query, tcp: bool) -> usize {
    if tcp {
        return TCP_MAX;
    }
    match query.edns {
        Some(e) => usize::from(e.udp_size.clamp(UDP_PLAIN_MAX as u16, UDP_EDNS_MAX)),
        None => UDP_PLAIN_MAX,
    }
}

/// A response to `query`: its question echoed, the answers owned by the
/// question's name, an OPT record if the query had one. Answers that do not
/// fit in `max_len` are left out and TC is set (the client retries over TCP).
/// `aa`: the answer is ours (authoritative). RA is always set.
pub fn build_response(
    query: &Query,
    rcode: u16,
    aa: bool,
    ttl: u32,
    answers: &[RData],
    max_len: usize,
) -> Vec<u8> {
    const OPT_LEN: usize = 11;
    let q = &query.header;
    let mut flags = FLAG_QR | FLAG_RA | (q.flags & FLAG_RD) | (rcode & 0xf);
    if aa {
        flags |= FLAG_AA;
    }
    let mut out = Vec::with_capacity(128);
    let mut header = Header {
        id: q.id,
        flags,
        qdcount: 1,
        ancount: 0,
        nscount: 0,
        arcount: u16::from(query.edns.is_some()),
    };
    header.write(&mut out);
    out.extend_from_slice(query.name.wire());
    out.extend_from_slice(&query.qtype.to_be_bytes());
    out.extend_from_slice(&query.qclass.to_be_bytes());
    let reserve = if query.edns.is_some() { OPT_LEN } else { 0 };
    for rd in answers {
        let (v4, v6);
        let data: &[u8] = match rd {
            RData::A(a) => {
                v4 = a.octets();
                &v4
            }
            RData::Aaaa(a) => {
                v6 = a.octets();
                &v6
            }
            RData::Ptr(n) => n.wire(),
        };
        // owner (pointer to the question's name), type, class, ttl, rdlength
        let len = 2 + 2 + 2 + 4 + 2 + data.len();
        if out.len() + len + reserve > max_len || header.ancount == u16::MAX {
            header.flags |= FLAG_TC;
            break;
        }
        out.extend_from_slice(&[0xc0, HEADER_LEN as u8]);
        out.extend_from_slice(&rd.rtype().to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&ttl.to_be_bytes());
        out.extend_from_slice(&(data.len() as u16).to_be_bytes());
        out.extend_from_slice(data);
        header.ancount += 1;
    }
    if query.edns.is_some() {
        out.push(0); // root
        out.extend_from_slice(&TYPE_OPT.to_be_bytes());
        out.extend_from_slice(&UDP_EDNS_MAX.to_be_bytes());
        out.push((rcode >> 4) as u8); // extended rcode
        out.extend_from_slice(&[0, 0, 0]); // version 0, no flags
        out.extend_from_slice(&[0, 0]); // no options
    }
    let mut fixed = Vec::with_capacity(HEADER_LEN);
    header.write(&mut fixed);
    out[..HEADER_LEN].copy_from_slice(&fixed);
    out
}

/// A question-less error response (FORMERR, NOTIMP) to a message whose
/// header was readable but not the rest: ID, opcode and RD echoed.
pub fn error_response(q: &Header, rcode: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN);
    Header {
        id: q.id,
        flags: FLAG_QR | FLAG_RA | (q.flags & (0x7800 | FLAG_RD)) | (rcode & 0xf),
        qdcount: 0,
        ancount: 0,
        nscount: 0,
        arcount: 0,
    }
    .write(&mut out);
    out
}

/// The address a reverse name (`4.3.2.1.in-addr.arpa`, the 32 nibbles of
/// `….ip6.arpa`) stands for; None for anything else (including partial
/// names such as `2.1.in-addr.arpa`).
pub fn reverse_addr(name: &Name) -> Option<std::net::IpAddr> {
    let labels: Vec<&[u8]> = name.labels().take(35).collect();
    let is = |l: &[u8], s: &str| l.eq_ignore_ascii_case(s.as_bytes());
    match labels.as_slice() {
        [d, c, b, a, arpa1, arpa2] if is(arpa1, "in-addr") && is(arpa2, "arpa") => {
            let octet = |l: &[u8]| -> Option<u8> {
                if l.is_empty() || l.len() > 3 || !l.iter().all(u8::is_ascii_digit) {
                    return None;
                }
                std::str::from_utf8(l).ok()?.parse().ok()
            };
            Some(Ipv4Addr::new(octet(a)?, octet(b)?, octet(c)?, octet(d)?).into())
        }
        [nibbles @ .., ip6, arpa] if nibbles.len() == 32 && is(ip6, "ip6") && is(arpa, "arpa") => {
            let mut bits: u128 = 0;
            for l in nibbles.iter().rev() {
                let [c] = l else { return None };
                bits = (bits << 4) | u128::from((*c as char).to_digit(16)?);
            }
            Some(Ipv6Addr::from(bits).into())
        }
        _ => None,
    }
}
