//! One query in, one decision out: answer it from the records (the reply is written into a buffer
//! the caller reuses), forward it unchanged, or drop it. Pure: no I/O, no clock, no lock, and no
//! allocation for names up to 32 bytes (hickory-proto keeps those inline).
//!
//! The reply copies the question exactly as asked (case included, which clients that randomise
//! case check) and points every answer's owner name at it, so nothing is re-encoded.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use hickory_proto::op::{Header, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncodable, BinEncoder};

use super::records::{Entry, Records, Scope};

/// Length of a DNS header.
pub const HEADER_LEN: usize = 12;
/// The largest reply over UDP to a client that did not say (RFC 1035).
pub const UDP_DEFAULT_MAX: usize = 512;
/// The UDP payload size berth advertises in its OPT record.
pub const EDNS_PAYLOAD: u16 = 1232;
/// A compression pointer to the question's name, at offset 12.
const QNAME_POINTER: u16 = 0xC000 | HEADER_LEN as u16;
/// Owner pointer, type, class, TTL and RDATA length of an answer.
const RR_FIXED: usize = 12;
/// A bare OPT record: root name, type, payload size, extended rcode and flags, no options.
const OPT_LEN: usize = 11;

/// How the query arrived, which bounds the reply's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A datagram: 512 bytes, or the client's EDNS payload size.
    Udp,
    /// A TCP stream: up to 65,535 bytes.
    Tcp,
}

/// What to do with a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The reply is in the output buffer.
    Reply,
    /// Not a name on the asker's networks: send the query, unchanged, to these upstreams.
    Forward(Arc<[SocketAddr]>),
    /// Not something to answer (shorter than a header, or a response): ignore it.
    Drop,
}

/// The parts of a query a reply needs.
struct Asked {
    frame: Frame,
    query: Query,
}

/// Where a reply's parts come from.
#[derive(Clone, Copy)]
struct Frame {
    header: Header,
    /// End of the question section in the query.
    question_end: usize,
    /// The client's EDNS UDP payload size, when it sent an OPT record.
    edns: Option<u16>,
}

enum Parse {
    Ok(Asked),
    Fail(Header, ResponseCode),
    Drop,
}

fn parse(msg: &[u8]) -> Parse {
    if msg.len() < HEADER_LEN {
        return Parse::Drop;
    }
    let mut dec = BinDecoder::new(msg);
    let Ok(mut header) = Header::read(&mut dec) else {
        return Parse::Drop;
    };
    // A query's RCODE bits mean nothing; a reply starts from NOERROR.
    header.metadata.response_code = ResponseCode::NoError;
    if header.message_type != MessageType::Query {
        return Parse::Drop;
    }
    if header.op_code != OpCode::Query {
        return Parse::Fail(header, ResponseCode::NotImp);
    }
    if header.counts.queries != 1 {
        return Parse::Fail(header, ResponseCode::FormErr);
    }
    // The reply copies the question verbatim behind a different header, so a compression
    // pointer in it (back into the header, the only thing before it) would change meaning.
    // Clients never compress the question; such a query is malformed for us.
    if !uncompressed_name(&msg[HEADER_LEN..]) {
        return Parse::Fail(header, ResponseCode::FormErr);
    }
    let Ok(query) = Query::read(&mut dec) else {
        return Parse::Fail(header, ResponseCode::FormErr);
    };
    let question_end = dec.index();
    let c = header.counts;
    let records = u32::from(c.answers) + u32::from(c.authorities) + u32::from(c.additionals);
    let mut edns = None;
    for _ in 0..records {
        match skip_record(&mut dec) {
            Some(opt) => edns = edns.or(opt),
            None => return Parse::Fail(header, ResponseCode::FormErr),
        }
    }
    if !dec.is_empty() {
        return Parse::Fail(header, ResponseCode::FormErr);
    }
    Parse::Ok(Asked {
        frame: Frame {
            header,
            question_end,
            edns,
        },
        query,
    })
}

/// Whether `wire` starts with a complete domain name made of plain labels only (no compression
/// pointer, no reserved label type).
fn uncompressed_name(wire: &[u8]) -> bool {
    let mut i = 0;
    while let Some(&len) = wire.get(i) {
        if len == 0 {
            return true;
        }
        if len & 0xC0 != 0 {
            return false;
        }
        i += 1 + usize::from(len);
    }
    false
}

/// Steps over one resource record, checking only its framing; `None` when it is cut short or
/// its name is malformed, else the UDP payload size when it is an OPT record.
fn skip_record(dec: &mut BinDecoder<'_>) -> Option<Option<u16>> {
    let root = dec.peek()?.unverified() == 0;
    Name::read(dec).ok()?;
    let rtype = dec.read_u16().ok()?.unverified();
    let class = dec.read_u16().ok()?.unverified();
    let _ttl = dec.read_u32().ok()?;
    let len = dec.read_u16().ok()?.unverified();
    dec.read_slice(usize::from(len)).ok()?;
    Some((root && rtype == u16::from(RecordType::OPT)).then_some(class))
}

/// Handles one query for the container `container` and writes any reply into `out` (cleared
/// first). `ttl` is what answers carry.
pub fn handle(
    records: &Records,
    container: &str,
    msg: &[u8],
    transport: Transport,
    ttl: u32,
    out: &mut Vec<u8>,
) -> Outcome {
    out.clear();
    let asked = match parse(msg) {
        Parse::Ok(a) => a,
        Parse::Fail(header, code) => {
            header_only(header, code, out);
            return Outcome::Reply;
        }
        Parse::Drop => return Outcome::Drop,
    };
    let Some(scope) = records.scopes.get(container) else {
        reply(
            msg,
            asked.frame,
            ResponseCode::Refused,
            &[],
            transport,
            ttl,
            out,
        );
        return Outcome::Reply;
    };
    let q = &asked.query;
    if q.query_class() == DNSClass::IN {
        let qtype = q.query_type();
        if qtype == RecordType::PTR {
            if let Some(ip) = arpa_addr(q.name()) {
                if let Some(targets) = records.ptr.get(&ip) {
                    if let Some(t) = targets.iter().find(|t| scope.sees(t.network)) {
                        let answers = [Answer::Ptr(&t.wire)];
                        reply(
                            msg,
                            asked.frame,
                            ResponseCode::NoError,
                            &answers,
                            transport,
                            ttl,
                            out,
                        );
                        return Outcome::Reply;
                    }
                }
            }
        } else if let Some(set) = records.lookup(scope, q.name()) {
            let wanted = |e: &&Entry| {
                scope.sees(e.network)
                    && match qtype {
                        RecordType::A => e.addr.is_ipv4(),
                        RecordType::AAAA => e.addr.is_ipv6(),
                        RecordType::ANY => true,
                        _ => false,
                    }
            };
            let n = set.entries.iter().filter(wanted).count();
            let start = if n > 0 {
                set.rotation() as usize % n
            } else {
                0
            };
            let rotated = set
                .entries
                .iter()
                .filter(wanted)
                .skip(start)
                .chain(set.entries.iter().filter(wanted).take(start))
                .map(|e| Answer::Addr(e.addr));
            reply_iter(msg, asked.frame, rotated, n, transport, ttl, out);
            return Outcome::Reply;
        }
    }
    outside(msg, asked.frame, scope, transport, out)
}

/// A name no network of the asker knows: forwarded, unless the asker has no way out.
fn outside(
    msg: &[u8],
    frame: Frame,
    scope: &Scope,
    transport: Transport,
    out: &mut Vec<u8>,
) -> Outcome {
    let code = if scope.internal_only {
        ResponseCode::NXDomain
    } else if scope.upstreams.is_empty() {
        ResponseCode::ServFail
    } else {
        return Outcome::Forward(scope.upstreams.clone());
    };
    reply(msg, frame, code, &[], transport, 0, out);
    Outcome::Reply
}

/// Writes an error reply (`SERVFAIL` when every upstream failed, say) to `msg` into `out`;
/// false when `msg` is not a query worth answering.
pub fn error_reply(
    msg: &[u8],
    code: ResponseCode,
    transport: Transport,
    out: &mut Vec<u8>,
) -> bool {
    out.clear();
    match parse(msg) {
        Parse::Ok(asked) => reply(msg, asked.frame, code, &[], transport, 0, out),
        Parse::Fail(header, code) => header_only(header, code, out),
        Parse::Drop => return false,
    }
    true
}

#[derive(Debug, Clone, Copy)]
enum Answer<'a> {
    Addr(IpAddr),
    Ptr(&'a [u8]),
}

impl Answer<'_> {
    fn rdata_len(&self) -> usize {
        match self {
            Answer::Addr(IpAddr::V4(_)) => 4,
            Answer::Addr(IpAddr::V6(_)) => 16,
            Answer::Ptr(w) => w.len(),
        }
    }

    fn emit(&self, enc: &mut BinEncoder<'_>, ttl: u32) -> Result<(), hickory_proto::ProtoError> {
        let rtype = match self {
            Answer::Addr(IpAddr::V4(_)) => RecordType::A,
            Answer::Addr(IpAddr::V6(_)) => RecordType::AAAA,
            Answer::Ptr(_) => RecordType::PTR,
        };
        enc.emit_u16(QNAME_POINTER)?;
        enc.emit_u16(rtype.into())?;
        enc.emit_u16(DNSClass::IN.into())?;
        enc.emit_u32(ttl)?;
        enc.emit_u16(self.rdata_len() as u16)?;
        match self {
            Answer::Addr(IpAddr::V4(a)) => enc.emit_vec(&a.octets()),
            Answer::Addr(IpAddr::V6(a)) => enc.emit_vec(&a.octets()),
            Answer::Ptr(w) => enc.emit_vec(w),
        }
    }
}

fn reply(
    msg: &[u8],
    mut frame: Frame,
    code: ResponseCode,
    answers: &[Answer<'_>],
    transport: Transport,
    ttl: u32,
    out: &mut Vec<u8>,
) {
    frame.header.metadata.response_code = code;
    reply_iter(
        msg,
        frame,
        answers.iter().copied(),
        answers.len(),
        transport,
        ttl,
        out,
    );
}

/// Writes header, the question as asked, as many of the `n` answers as fit, and an OPT record
/// when the client sent one. The response code is the one already in `frame.header`, NOERROR for
/// a fresh query.
fn reply_iter<'a>(
    msg: &[u8],
    frame: Frame,
    answers: impl Iterator<Item = Answer<'a>> + Clone,
    n: usize,
    transport: Transport,
    ttl: u32,
    out: &mut Vec<u8>,
) {
    let limit = match transport {
        Transport::Tcp => usize::from(u16::MAX),
        Transport::Udp => frame
            .edns
            .map_or(UDP_DEFAULT_MAX, |s| usize::from(s).max(UDP_DEFAULT_MAX)),
    };
    let question = &msg[HEADER_LEN..frame.question_end];
    let mut size = HEADER_LEN + question.len() + if frame.edns.is_some() { OPT_LEN } else { 0 };
    let mut fit = 0;
    for a in answers.clone().take(n) {
        size += RR_FIXED + a.rdata_len();
        if size > limit {
            break;
        }
        fit += 1;
    }
    let mut h = frame.header;
    h.metadata.message_type = MessageType::Response;
    h.metadata.authoritative = frame.header.response_code == ResponseCode::NoError;
    h.metadata.truncation = fit < n;
    h.metadata.recursion_available = true;
    h.metadata.authentic_data = false;
    h.counts.queries = 1;
    h.counts.answers = fit as u16;
    h.counts.authorities = 0;
    h.counts.additionals = u16::from(frame.edns.is_some());
    let mut enc = BinEncoder::new(out);
    let res = (|| {
        h.emit(&mut enc)?;
        enc.emit_vec(question)?;
        for a in answers.take(fit) {
            a.emit(&mut enc, ttl)?;
        }
        if frame.edns.is_some() {
            enc.emit_u8(0)?;
            enc.emit_u16(RecordType::OPT.into())?;
            enc.emit_u16(EDNS_PAYLOAD)?;
            enc.emit_u32(0)?;
            enc.emit_u16(0)?;
        }
        Ok::<_, hickory_proto::ProtoError>(())
    })();
    debug_assert!(res.is_ok(), "reply sized under 64 KiB: {res:?}");
}

/// A reply of just a header: for queries whose question cannot be echoed.
fn header_only(header: Header, code: ResponseCode, out: &mut Vec<u8>) {
    let mut h = header;
    h.metadata.message_type = MessageType::Response;
    h.metadata.authoritative = false;
    h.metadata.truncation = false;
    h.metadata.recursion_available = true;
    h.metadata.response_code = code;
    h.counts = Default::default();
    let _ = h.emit(&mut BinEncoder::new(out));
}

/// The largest reply a UDP client of `msg` accepts: 512 bytes, or its EDNS payload size.
pub fn udp_limit(msg: &[u8]) -> usize {
    match parse(msg) {
        Parse::Ok(a) => a
            .frame
            .edns
            .map_or(UDP_DEFAULT_MAX, |s| usize::from(s).max(UDP_DEFAULT_MAX)),
        _ => UDP_DEFAULT_MAX,
    }
}

/// Splits the first length-prefixed message off a TCP stream's buffered bytes: the message and
/// how many bytes it took, or `None` until all of it has arrived.
pub fn split_frame(buf: &[u8]) -> Option<(&[u8], usize)> {
    let [hi, lo, rest @ ..] = buf else {
        return None;
    };
    let len = usize::from(u16::from_be_bytes([*hi, *lo]));
    rest.get(..len).map(|m| (m, 2 + len))
}

/// The address a reverse-lookup name stands for: `4.3.2.1.in-addr.arpa.` or the 32 nibbles of
/// an `ip6.arpa.` name.
pub fn arpa_addr(name: &Name) -> Option<IpAddr> {
    let labels = name.iter();
    let n = labels.len();
    let mut rev = name.iter().rev();
    if !rev.next()?.eq_ignore_ascii_case(b"arpa") {
        return None;
    }
    let zone = rev.next()?;
    if zone.eq_ignore_ascii_case(b"in-addr") && n == 6 {
        let mut o = [0u8; 4];
        for (slot, label) in o.iter_mut().zip(rev) {
            let s = std::str::from_utf8(label).ok()?;
            if s.len() > 1 && s.starts_with('0') {
                return None;
            }
            *slot = s.parse().ok()?;
        }
        Some(IpAddr::V4(Ipv4Addr::from(o)))
    } else if zone.eq_ignore_ascii_case(b"ip6") && n == 34 {
        let mut v: u128 = 0;
        for label in rev {
            let [d] = label else { return None };
            v = v << 4 | u128::from((*d as char).to_digit(16)?);
        }
        Some(IpAddr::V6(Ipv6Addr::from(v)))
    } else {
        None
    }
}
