//! The UDP side of a mapping: one upstream socket per client flow, kept in a bounded
//! [`FlowTable`] with an idle timeout.
//!
//! Datagrams are read into one buffer per worker thread and forwarded before the next await, so a
//! flow or a mapping owns no buffer of its own and nothing is allocated per datagram. A socket bound
//! to a wildcard address learns each datagram's destination (IP_PKTINFO) and replies from it, so a
//! client always hears back from the address it sent to.

use std::cell::RefCell;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg, sendmsg,
};
use socket2::{SockRef, Type};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;
use tracing::debug;

use crate::flows::FlowTable;
use crate::proxy::Shared;
use crate::stats::Counters;
use crate::transparent;
use crate::upstream;

const MAX_DATAGRAM: usize = 65536;

thread_local! {
    static BUF: RefCell<Box<[u8]>> = RefCell::new(vec![0u8; MAX_DATAGRAM].into_boxed_slice());
    static CMSG: RefCell<Vec<u8>> = RefCell::new(nix::cmsg_space!(nix::libc::in6_pktinfo));
}

/// One client's flow: its upstream socket and the task relaying replies back.
#[derive(Debug)]
struct Flow {
    upstream: Arc<UdpSocket>,
    last_reply: Arc<AtomicU64>,
    replies: JoinHandle<()>,
    counters: Arc<Counters>,
    shared: Arc<Shared>,
}

impl Drop for Flow {
    fn drop(&mut self) {
        self.replies.abort();
        Counters::sub(&self.counters.flows_active, 1);
        Counters::sub(&self.shared.udp_flows, 1);
    }
}

/// The context a mapping's datagrams are handled in. The serving task holds the only strong
/// reference, so the host socket closes as soon as that task ends; reply tasks hold a `Weak`.
struct Ctx {
    listener: UdpSocket,
    wildcard: bool,
    container: SocketAddr,
    transparent: bool,
    counters: Arc<Counters>,
    shared: Arc<Shared>,
    epoch: Instant,
}

impl Ctx {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }
}

fn sockaddr_to_std(a: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::from((v4.ip(), v4.port())));
    }
    a.as_sockaddr_in6()
        .map(|v6| SocketAddr::from((v6.ip(), v6.port())))
}

/// Receives one datagram: (length, sender, the local address it was sent to when known).
fn recv_one(
    sock: &UdpSocket,
    wildcard: bool,
    buf: &mut [u8],
) -> io::Result<(usize, SocketAddr, Option<IpAddr>)> {
    if !wildcard {
        let (n, from) = sock.try_recv_from(buf)?;
        return Ok((n, from, None));
    }
    // Through try_io so tokio clears the readiness when the queue is empty.
    sock.try_io(Interest::READABLE, || {
        CMSG.with_borrow_mut(|cmsg| recv_with_pktinfo(sock, buf, cmsg))
    })
}

fn recv_with_pktinfo(
    sock: &UdpSocket,
    buf: &mut [u8],
    cmsg: &mut [u8],
) -> io::Result<(usize, SocketAddr, Option<IpAddr>)> {
    {
        let mut iov = [IoSliceMut::new(buf)];
        let msg =
            recvmsg::<SockaddrStorage>(sock.as_raw_fd(), &mut iov, Some(cmsg), MsgFlags::empty())?;
        let from = msg
            .address
            .as_ref()
            .and_then(sockaddr_to_std)
            .ok_or_else(|| io::Error::other("datagram without a sender address"))?;
        let mut local = None;
        for c in msg.cmsgs()? {
            match c {
                // ipi_spec_dst is the local address to answer from: the destination for unicast,
                // the interface's address for a broadcast (which cannot be a source).
                ControlMessageOwned::Ipv4PacketInfo(pi) => {
                    local = Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                        pi.ipi_spec_dst.s_addr,
                    ))));
                }
                ControlMessageOwned::Ipv6PacketInfo(pi) => {
                    local = Some(IpAddr::V6(Ipv6Addr::from(pi.ipi6_addr.s6_addr)));
                }
                _ => {}
            }
        }
        Ok((msg.bytes, from, local))
    }
}

/// Sends `data` to `client` through the listening socket, from `local` when it is known.
///
/// Sends are plain non-blocking syscalls, not tokio's readiness-checked `try_send*`: a datagram
/// that does not fit the socket buffer is dropped (as UDP allows) rather than awaited, and a
/// freshly opened socket has no readiness recorded yet.
fn send_reply(
    listener: &UdpSocket,
    data: &[u8],
    client: SocketAddr,
    local: Option<IpAddr>,
) -> io::Result<usize> {
    let Some(local) = local else {
        return SockRef::from(listener).send_to(data, &client.into());
    };
    {
        let iov = [IoSlice::new(data)];
        let dest = SockaddrStorage::from(client);
        let fd = listener.as_raw_fd();
        let sent = match local {
            IpAddr::V4(ip) => {
                let pi = nix::libc::in_pktinfo {
                    ipi_ifindex: 0,
                    ipi_spec_dst: nix::libc::in_addr {
                        s_addr: u32::from(ip).to_be(),
                    },
                    ipi_addr: nix::libc::in_addr { s_addr: 0 },
                };
                let cm = [ControlMessage::Ipv4PacketInfo(&pi)];
                sendmsg(fd, &iov, &cm, MsgFlags::empty(), Some(&dest))
            }
            IpAddr::V6(ip) => {
                let pi = nix::libc::in6_pktinfo {
                    ipi6_addr: nix::libc::in6_addr {
                        s6_addr: ip.octets(),
                    },
                    ipi6_ifindex: 0,
                };
                let cm = [ControlMessage::Ipv6PacketInfo(&pi)];
                sendmsg(fd, &iov, &cm, MsgFlags::empty(), Some(&dest))
            }
        };
        Ok(sent?)
    }
}

/// Opens the upstream socket of a new flow and starts relaying its replies.
fn open_flow(ctx: &Arc<Ctx>, client: SocketAddr, local: Option<IpAddr>) -> io::Result<Flow> {
    let limit = ctx.shared.config.udp_max_flows_total as u64;
    if ctx.shared.udp_flows.load(Relaxed) >= limit {
        return Err(io::Error::other(format!(
            "proxy-wide UDP flow limit {limit} reached; datagram from {client} dropped"
        )));
    }
    let spoof =
        (ctx.transparent && transparent::can_preserve(client, ctx.container)).then_some(client);
    let sock = upstream::upstream_socket(Type::DGRAM, ctx.container, spoof)?;
    sock.connect(&ctx.container.into())?;
    let upstream = Arc::new(UdpSocket::from_std(sock.into())?);
    let last_reply = Arc::new(AtomicU64::new(0));
    let replies = tokio::spawn(relay_replies(
        Arc::downgrade(ctx),
        upstream.clone(),
        client,
        local,
        last_reply.clone(),
    ));
    Counters::add(&ctx.counters.flows_total, 1);
    Counters::add(&ctx.counters.flows_active, 1);
    Counters::add(&ctx.shared.udp_flows, 1);
    Ok(Flow {
        upstream,
        last_reply,
        replies,
        counters: ctx.counters.clone(),
        shared: ctx.shared.clone(),
    })
}

async fn relay_replies(
    ctx: Weak<Ctx>,
    upstream: Arc<UdpSocket>,
    client: SocketAddr,
    local: Option<IpAddr>,
    last_reply: Arc<AtomicU64>,
) {
    loop {
        if upstream.readable().await.is_err() {
            return;
        }
        // The mapping is gone (its host socket closed): nothing to reply through.
        let Some(ctx) = ctx.upgrade() else {
            return;
        };
        let r = BUF.with_borrow_mut(|buf| {
            let n = upstream.try_recv(buf)?;
            send_reply(&ctx.listener, &buf[..n], client, local)
        });
        match r {
            Ok(n) => {
                Counters::add(&ctx.counters.bytes_from_container, n as u64);
                last_reply.store(ctx.now_ms(), Relaxed);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => {
                // ECONNREFUSED (nothing listens in the container yet) or a full client-side send
                // buffer: the datagram is lost, as UDP allows; the flow stays.
                Counters::add(&ctx.counters.errors, 1);
                debug!(%client, error = %e, "reply datagram dropped");
            }
        }
        drop(ctx);
        // Readiness waits do not count against tokio's cooperative budget; a container that
        // streams replies must not hold the runtime thread.
        tokio::task::consume_budget().await;
    }
}

/// Handles one datagram from a client: finds or opens its flow and forwards the bytes.
fn forward(
    ctx: &Arc<Ctx>,
    table: &mut FlowTable<SocketAddr, Flow>,
    data: &[u8],
    client: SocketAddr,
    local: Option<IpAddr>,
) -> io::Result<()> {
    let now = ctx.now_ms();
    // Send through a borrow of the flow's socket: no reference-count traffic per datagram.
    let sent = match table.touch(&client, now) {
        Some(flow) => SockRef::from(&*flow.upstream).send(data),
        None => {
            let flow = open_flow(ctx, client, local)?;
            let sent = SockRef::from(&*flow.upstream).send(data);
            drop(table.insert(client, flow, now)); // an evicted flow closes here
            sent
        }
    };
    sent?;
    Counters::add(&ctx.counters.bytes_to_container, data.len() as u64);
    Ok(())
}

/// Serves one UDP mapping until the task is aborted (which closes every flow).
pub(crate) async fn serve(
    socket: UdpSocket,
    wildcard: bool,
    container: SocketAddr,
    transparent: bool,
    shared: Arc<Shared>,
    counters: Arc<Counters>,
) {
    let idle = shared.config.udp_idle_timeout;
    let ctx = Arc::new(Ctx {
        listener: socket,
        wildcard,
        container,
        transparent,
        counters,
        shared: shared.clone(),
        epoch: Instant::now(),
    });
    let mut table: FlowTable<SocketAddr, Flow> =
        FlowTable::new(shared.config.udp_max_flows, idle.as_millis() as u64);
    let mut sweep = tokio::time::interval((idle / 4).max(Duration::from_millis(50)));
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = sweep.tick() => {
                let now = ctx.now_ms();
                drop(table.expire(now, |f| f.last_reply.load(Relaxed)));
            }
            r = ctx.listener.readable() => {
                if r.is_err() {
                    return;
                }
                // Drain what is queued, a bounded batch at a time so the sweep still runs.
                for _ in 0..64 {
                    let r = BUF.with_borrow_mut(|buf| {
                        let (n, client, local) = recv_one(&ctx.listener, ctx.wildcard, buf)?;
                        Ok::<_, io::Error>(forward(&ctx, &mut table, &buf[..n], client, local))
                    });
                    match r {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => {
                            Counters::add(&ctx.counters.errors, 1);
                            debug!(%container, error = %e, "datagram to the container dropped");
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => {
                            Counters::add(&ctx.counters.errors, 1);
                            debug!(%container, error = %e, "receive failed");
                            break;
                        }
                    }
                }
                // See relay_replies: let other tasks run under a steady inbound flood.
                tokio::task::consume_budget().await;
            }
        }
    }
}
