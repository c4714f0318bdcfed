//! What to do with one incoming message: answer it from berth's records,
//! forward it upstream, or drop it. Pure (no sockets), so every case is
//! unit-testable.

use super::wire::{self, Query, QueryError, RData};
use super::Records;
use std::net::IpAddr;

#[derive(Debug)]
pub(crate) enum Action {
    /// Send these bytes back to the client.
    Reply(Vec<u8>),
    /// Not ours: send the message upstream (verbatim, but for its ID).
    Forward(Query),
    /// Send nothing (a response, or not even a header).
    Drop,
}

/// Decides what to do with `msg`, which arrived over TCP if `tcp`.
#[cfg(test)]
pub(crate) fn handle(msg: &[u8], records: &dyn Records, ttl: u32, tcp: bool) -> Action {
    handle_from(msg, records, ttl, tcp, None)
}

/// [`handle`] for a query from `client` (names are looked up as that
/// client sees them, see [`Records::lookup_from`]).
pub(crate) fn handle_from(
    msg: &[u8],
    records: &dyn Records,
    ttl: u32,
    tcp: bool,
    client: Option<std::net::IpAddr>,
) -> Action {
    let query = match wire::parse_query(msg) {
        Ok(q) => q,
        Err(QueryError::Short | QueryError::Response) => return Action::Drop,
        Err(QueryError::NotImplemented(h)) => {
            return Action::Reply(wire::error_response(&h, wire::RCODE_NOTIMP))
        }
        Err(QueryError::Malformed(h, _)) => {
            return Action::Reply(wire::error_response(&h, wire::RCODE_FORMERR))
        }
    };
    let max = wire::max_reply_len(&query, tcp);
    if query.edns.is_some_and(|e| e.version != 0) {
        let r = wire::build_response(&query, wire::RCODE_BADVERS, false, 0, &[], max);
        return Action::Reply(r);
    }
    match local_answers(&query, records, client) {
        Some(answers) => Action::Reply(wire::build_response(
            &query,
            wire::RCODE_NOERROR,
            true,
            ttl,
            &answers,
            max,
        )),
        None => Action::Forward(query),
    }
}

/// The answers if the name is ours (possibly none for this type), None if
/// it is not.
fn local_answers(
    query: &Query,
    records: &dyn Records,
    client: Option<std::net::IpAddr>,
) -> Option<Vec<RData>> {
    let class_ok = query.qclass == wire::CLASS_IN || query.qclass == wire::CLASS_ANY;
    if query.qtype == wire::TYPE_PTR {
        if let Some(addr) = wire::reverse_addr(&query.name) {
            let name = records.reverse(addr)?;
            // A name that cannot be written as a DNS name is not an answer
            // we can give; whoever else may know the address can.
            let name = wire::Name::from_dotted(&name)?;
            return Some(if class_ok {
                vec![RData::Ptr(name)]
            } else {
                Vec::new()
            });
        }
    }
    let key = query.name.lookup_key()?;
    let addrs = match client {
        Some(c) => records.lookup_from(c, &key)?,
        None => records.lookup(&key)?,
    };
    if !class_ok {
        return Some(Vec::new());
    }
    let (want_v4, want_v6) = match query.qtype {
        wire::TYPE_A => (true, false),
        wire::TYPE_AAAA => (false, true),
        wire::TYPE_ANY => (true, true),
        _ => (false, false),
    };
    let mut answers = Vec::new();
    for addr in addrs {
        match addr {
            IpAddr::V4(a) if want_v4 => answers.push(RData::A(a)),
            IpAddr::V6(a) if want_v6 => answers.push(RData::Aaaa(a)),
            _ => {}
        }
    }
    Some(answers)
}

/// A SERVFAIL for `query` (no upstream answered, or too many in flight).
pub(crate) fn servfail(query: &Query, tcp: bool) -> Vec<u8> {
    let max = wire::max_reply_len(query, tcp);
    wire::build_response(query, wire::RCODE_SERVFAIL, false, 0, &[], max)
}
