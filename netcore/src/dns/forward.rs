//! Sending a query the records cannot answer to the upstream resolvers: over UDP with a TCP retry
//! when the answer is truncated, each attempt under a timeout, the next upstream when one fails,
//! and the answer relayed byte for byte but for its ID. Sockets are opened by the resolver's own
//! threads, so in the resolver's namespace (the host's): a loopback upstream such as
//! systemd-resolved works.
//!
//! Against forged answers (RFC 5452): every attempt goes out under a fresh random ID (the
//! container's own ID is put back in the answer, so a container cannot choose the ID upstream
//! sees), from a fresh socket on a port the kernel picks at random, and only an answer with that
//! ID and the same question (name compared without case) is taken.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;

use super::answer::{HEADER_LEN, Transport, udp_limit};

/// Why one upstream gave no usable answer (logged at debug level, then the next one is tried).
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The socket failed: refused, unreachable, reset.
    #[error("upstream {0}: {1}")]
    Io(SocketAddr, io::Error),
    /// No answer within the timeout.
    #[error("upstream {0}: no answer within {1:?}")]
    Timeout(SocketAddr, Duration),
    /// The answer was too short or too long to be one.
    #[error("upstream {0}: malformed answer of {1} bytes")]
    Malformed(SocketAddr, usize),
}

/// Sends `query` to each upstream in turn and returns the first answer that is not SERVFAIL or
/// REFUSED (or the last of those when nothing better came), `None` when none answered at all.
/// A UDP answer with the TC bit is retried over TCP and the full answer returned when it fits
/// the client's UDP limit; otherwise the truncated one goes back and the client retries over TCP.
pub async fn forward(
    upstreams: &[SocketAddr],
    query: &[u8],
    transport: Transport,
    wait: Duration,
) -> Option<Vec<u8>> {
    if query.len() < HEADER_LEN {
        return None;
    }
    let mut fallback = None;
    let mut ours = query.to_vec();
    for &up in upstreams {
        // A fresh ID for every upstream: a late answer to the last one is not taken.
        ours[..2].copy_from_slice(&random_id());
        let q = ours.as_slice();
        let res = match transport {
            Transport::Tcp => tcp_exchange(up, q, wait).await,
            Transport::Udp => match udp_exchange(up, q, wait).await {
                Ok(resp) if truncated(&resp) => match tcp_exchange(up, q, wait).await {
                    Ok(full) if full.len() <= udp_limit(query) => Ok(full),
                    _ => Ok(resp),
                },
                other => other,
            },
        };
        match res {
            Ok(mut resp) => {
                // The container's ID back, so its resolver matches the answer.
                resp[..2].copy_from_slice(&query[..2]);
                if matches!(rcode(&resp), ResponseCode::ServFail | ResponseCode::Refused) {
                    fallback = Some(resp);
                } else {
                    return Some(resp);
                }
            }
            Err(e) => tracing::debug!("{e}"),
        }
    }
    fallback
}

/// A query ID from the kernel's random source; should that ever fail, one from the clock and a
/// counter (still unknown to the container, which never sees it).
fn random_id() -> [u8; 2] {
    let mut id = [0u8; 2];
    if getrandom::fill(&mut id).is_err() {
        use std::sync::atomic::{AtomicU16, Ordering};
        static NEXT: AtomicU16 = AtomicU16::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        id = ((nanos as u16) ^ NEXT.fetch_add(40503, Ordering::Relaxed)).to_be_bytes();
    }
    id
}

fn truncated(msg: &[u8]) -> bool {
    msg[2] & 0x02 != 0
}

fn rcode(msg: &[u8]) -> ResponseCode {
    ResponseCode::from_low(msg[3] & 0x0f)
}

/// Whether `resp` answers `query`: a response with its ID and its question (the name compared
/// without case, since a resolver may answer in its own case; type and class exactly). An error
/// answer without a question section (FORMERR, SERVFAIL, NOTIMP, REFUSED, as some servers send)
/// is taken too: it carries no records to forge, and waiting out the timeout instead helps no
/// one.
pub fn answers(query: &[u8], resp: &[u8]) -> bool {
    if resp.len() < HEADER_LEN || resp[..2] != query[..2] || resp[2] & 0x80 == 0 {
        return false;
    }
    match (question(query), question(resp)) {
        (Some(q), Some(r)) => {
            q.len() == r.len()
                && q[..q.len() - 4].eq_ignore_ascii_case(&r[..r.len() - 4])
                && q[q.len() - 4..] == r[r.len() - 4..]
        }
        (Some(_), None) => {
            resp.len() == HEADER_LEN
                && resp[4..12] == [0; 8]
                && matches!(resp[3] & 0x0f, 1 | 2 | 4 | 5)
        }
        _ => false,
    }
}

/// The question of a message with exactly one, as wire bytes (name in plain labels, type,
/// class); `None` for anything else, compressed names included (a question's name comes first,
/// so a pointer could only point into the header).
fn question(msg: &[u8]) -> Option<&[u8]> {
    if msg.len() < HEADER_LEN || msg[4..6] != [0, 1] {
        return None;
    }
    let wire = &msg[HEADER_LEN..];
    let mut i = 0;
    loop {
        let len = *wire.get(i)?;
        if len == 0 {
            break;
        }
        if len & 0xC0 != 0 {
            return None;
        }
        i += 1 + usize::from(len);
    }
    wire.get(..i + 5)
}

async fn udp_exchange(
    up: SocketAddr,
    query: &[u8],
    wait: Duration,
) -> Result<Vec<u8>, UpstreamError> {
    let io = |e| UpstreamError::Io(up, e);
    let local: SocketAddr = if up.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = UdpSocket::bind(local).await.map_err(io)?;
    sock.connect(up).await.map_err(io)?;
    sock.send(query).await.map_err(io)?;
    let mut buf = vec![0u8; udp_limit(query).max(4096) + 1];
    let exchange = async {
        loop {
            let n = sock.recv(&mut buf).await?;
            if answers(query, &buf[..n]) {
                buf.truncate(n);
                return Ok::<_, io::Error>(());
            }
        }
    };
    match timeout(wait, exchange).await {
        Ok(Ok(())) => Ok(buf),
        Ok(Err(e)) => Err(io(e)),
        Err(_) => Err(UpstreamError::Timeout(up, wait)),
    }
}

async fn tcp_exchange(
    up: SocketAddr,
    query: &[u8],
    wait: Duration,
) -> Result<Vec<u8>, UpstreamError> {
    let io = |e| UpstreamError::Io(up, e);
    let len = u16::try_from(query.len()).map_err(|_| UpstreamError::Malformed(up, query.len()))?;
    let exchange = async {
        let mut s = TcpStream::connect(up).await?;
        let mut framed = Vec::with_capacity(query.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(query);
        s.write_all(&framed).await?;
        let n = usize::from(s.read_u16().await?);
        let mut resp = vec![0u8; n];
        s.read_exact(&mut resp).await?;
        Ok::<_, io::Error>(resp)
    };
    match timeout(wait, exchange).await {
        Ok(Ok(resp)) if answers(query, &resp) => Ok(resp),
        Ok(Ok(resp)) => Err(UpstreamError::Malformed(up, resp.len())),
        Ok(Err(e)) => Err(io(e)),
        Err(_) => Err(UpstreamError::Timeout(up, wait)),
    }
}
