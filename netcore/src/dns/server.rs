//! The resolver service: one process, one tokio runtime, a UDP socket and a TCP listener at
//! 127.0.0.11:53 inside every container namespace that needs one. The sockets are opened by a
//! short-lived thread that enters the namespace ([`crate::netns::run_in`]) and are then driven
//! from the runtime like any other; the socket a query arrived on says which container asked.
//!
//! Every change of the networks builds a new [`Records`] snapshot and swaps it in whole; then
//! listeners are opened for containers that gained one and closed for those that lost it. Nothing
//! else restarts, so a name is answerable as soon as [`Resolver::update`] returns.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hickory_proto::op::ResponseCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use nix::sys::socket::SockaddrStorage;

use super::answer::{self, Outcome, Transport};
use super::batch::{BATCH, Batch};
use super::forward::forward;
use super::records::Records;
use crate::network::State;

/// How the resolver behaves; the defaults are what containers get.
#[derive(Debug, Clone)]
pub struct ResolverConfig {
    /// Upstream resolvers for containers without `--dns` (the host's resolv.conf).
    pub upstreams: Vec<SocketAddr>,
    /// Where the resolver listens inside each container namespace.
    pub listen: SocketAddr,
    /// TTL of answers from the records (Docker's 600 s).
    pub ttl: u32,
    /// How long one upstream may take before the next is tried.
    pub upstream_timeout: Duration,
    /// Forwarded queries in flight at once, over all containers; beyond it, SERVFAIL at once.
    pub max_forwarded: usize,
    /// Forwarded queries in flight at once from one container, so that one container cannot
    /// take every slot from the others; beyond it, SERVFAIL at once.
    pub max_forwarded_per_container: usize,
    /// TCP connections open at once, over all containers; beyond it, new ones are closed.
    pub max_tcp: usize,
    /// TCP connections open at once from one container; beyond it, new ones are closed.
    pub max_tcp_per_container: usize,
    /// How long a TCP connection may sit idle.
    pub tcp_idle: Duration,
}

impl Default for ResolverConfig {
    fn default() -> Self {
        ResolverConfig {
            upstreams: Vec::new(),
            listen: SocketAddr::from((Ipv4Addr::new(127, 0, 0, 11), 53)),
            ttl: 600,
            upstream_timeout: Duration::from_secs(2),
            max_forwarded: 4096,
            max_forwarded_per_container: 256,
            max_tcp: 512,
            max_tcp_per_container: 32,
            tcp_idle: Duration::from_secs(10),
        }
    }
}

/// Why a container's listener could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("DNS listener {listen} for container {container} in {}: {source}", ns.display())]
pub struct ListenError {
    /// The container.
    pub container: String,
    /// Its namespace file.
    pub ns: PathBuf,
    /// The address.
    pub listen: SocketAddr,
    /// What failed.
    pub source: io::Error,
}

struct Shared {
    records: ArcSwap<Records>,
    config: ResolverConfig,
    forward_slots: Arc<Semaphore>,
    tcp_slots: Arc<Semaphore>,
}

/// One container's share of the slots: a forwarded query or a TCP connection takes one of the
/// container's and one of everyone's, and is refused when either is out.
struct Quota {
    forward: Arc<Semaphore>,
    tcp: Arc<Semaphore>,
}

/// Both permits of one forwarded query or TCP connection, released together.
struct Slot {
    _mine: OwnedSemaphorePermit,
    _all: OwnedSemaphorePermit,
}

fn take(mine: &Arc<Semaphore>, all: &Arc<Semaphore>) -> Option<Slot> {
    let mine = mine.clone().try_acquire_owned().ok()?;
    let all = all.clone().try_acquire_owned().ok()?;
    Some(Slot {
        _mine: mine,
        _all: all,
    })
}

/// One container's listener tasks; dropping it closes both sockets.
struct Listener {
    ns: PathBuf,
    tasks: [JoinHandle<()>; 2],
}

impl Drop for Listener {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The embedded resolver of every container.
pub struct Resolver {
    shared: Arc<Shared>,
    listeners: HashMap<String, Listener>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("config", &self.shared.config)
            .field("listeners", &self.listeners.len())
            .finish()
    }
}

impl Resolver {
    /// A resolver with no records and no listeners yet; call [`Resolver::update`].
    pub fn new(config: ResolverConfig) -> Resolver {
        Resolver {
            shared: Arc::new(Shared {
                records: ArcSwap::from_pointee(Records::default()),
                forward_slots: Arc::new(Semaphore::new(config.max_forwarded)),
                tcp_slots: Arc::new(Semaphore::new(config.max_tcp)),
                config,
            }),
            listeners: HashMap::new(),
        }
    }

    /// Makes the resolver serve `state`: swaps in its records, then opens listeners for
    /// containers that need one and closes those of containers that left. Returns the listeners
    /// that could not be opened (those containers' names still resolve for others).
    pub async fn update(&mut self, state: &State) -> Vec<ListenError> {
        let records = Arc::new(Records::build(state, &self.shared.config.upstreams));
        self.shared.records.store(records.clone());
        self.listeners
            .retain(|c, l| records.listeners.get(c).is_some_and(|ns| *ns == l.ns));
        let mut errors = Vec::new();
        for (container, ns) in &records.listeners {
            if self.listeners.contains_key(container) {
                continue;
            }
            match self.open(container, ns).await {
                Ok(l) => {
                    self.listeners.insert(container.clone(), l);
                }
                Err(source) => errors.push(ListenError {
                    container: container.clone(),
                    ns: ns.clone(),
                    listen: self.shared.config.listen,
                    source,
                }),
            }
        }
        errors
    }

    /// The records being served.
    pub fn records(&self) -> Arc<Records> {
        self.shared.records.load_full()
    }

    /// Containers with an open listener.
    pub fn listening(&self) -> impl Iterator<Item = &str> {
        self.listeners.keys().map(String::as_str)
    }

    async fn open(&self, container: &str, ns: &std::path::Path) -> io::Result<Listener> {
        let listen = self.shared.config.listen;
        let (udp, tcp) = crate::netns::run_in(ns, move || bind(listen)).await?;
        let udp = Arc::new(UdpSocket::from_std(udp)?);
        let tcp = TcpListener::from_std(tcp)?;
        let who: Arc<str> = container.into();
        let config = &self.shared.config;
        let quota = Arc::new(Quota {
            forward: Arc::new(Semaphore::new(config.max_forwarded_per_container)),
            tcp: Arc::new(Semaphore::new(config.max_tcp_per_container)),
        });
        Ok(Listener {
            ns: ns.to_path_buf(),
            tasks: [
                tokio::spawn(serve_udp(
                    self.shared.clone(),
                    quota.clone(),
                    who.clone(),
                    udp,
                )),
                tokio::spawn(serve_tcp(self.shared.clone(), quota, who, tcp)),
            ],
        })
    }
}

/// Binds the resolver's sockets (in whatever namespace the calling thread is in). SO_REUSEADDR
/// lets a container's own DNS server bind the wildcard address on port 53 beside them.
fn bind(listen: SocketAddr) -> io::Result<(std::net::UdpSocket, std::net::TcpListener)> {
    use socket2::{Domain, Protocol, Socket, Type};
    let domain = Domain::for_address(listen);
    let udp = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    udp.set_reuse_address(true)?;
    udp.set_nonblocking(true)?;
    // Room for a burst: a flood overflows into drops, never into memory.
    let _ = udp.set_recv_buffer_size(1 << 20);
    udp.bind(&listen.into())?;
    let tcp = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    tcp.set_reuse_address(true)?;
    tcp.set_nonblocking(true)?;
    tcp.bind(&listen.into())?;
    tcp.listen(128)?;
    Ok((udp.into(), tcp.into()))
}

async fn serve_udp(
    shared: Arc<Shared>,
    quota: Arc<Quota>,
    container: Arc<str>,
    sock: Arc<UdpSocket>,
) {
    let mut batch = Batch::default();
    let mut outs: Vec<Vec<u8>> = (0..BATCH).map(|_| Vec::with_capacity(512)).collect();
    let ttl = shared.config.ttl;
    loop {
        let n = match batch.recv(&sock).await {
            Ok(n) => n,
            Err(e) => {
                tracing::debug!("DNS for {container}: receive failed: {e}");
                continue;
            }
        };
        let mut dest = [None; BATCH];
        {
            let records = shared.records.load();
            for (i, out) in outs.iter_mut().enumerate().take(n) {
                let (query, peer) = batch.get(i);
                let Some(peer) = peer else { continue };
                match answer::handle(&records, &container, query, Transport::Udp, ttl, out) {
                    Outcome::Reply => dest[i] = Some(peer),
                    Outcome::Forward(upstreams) => {
                        if !spawn_forward(&shared, &quota, &sock, upstreams, query, peer)
                            && answer::error_reply(
                                query,
                                ResponseCode::ServFail,
                                Transport::Udp,
                                out,
                            )
                        {
                            dest[i] = Some(peer);
                        }
                    }
                    Outcome::Drop => {}
                }
            }
        }
        batch.send(&sock, &outs, &dest).await;
    }
}

/// Forwards one UDP query in its own task, the reply going back from `sock`; false when the
/// container's or everyone's forwarding slots are all taken (the caller answers SERVFAIL at once).
fn spawn_forward(
    shared: &Arc<Shared>,
    quota: &Quota,
    sock: &Arc<UdpSocket>,
    upstreams: Arc<[SocketAddr]>,
    query: &[u8],
    peer: SockaddrStorage,
) -> bool {
    let Some(peer) = std_addr(&peer) else {
        return true;
    };
    let Some(permit) = take(&quota.forward, &shared.forward_slots) else {
        return false;
    };
    let (sock, query, wait) = (sock.clone(), query.to_vec(), shared.config.upstream_timeout);
    tokio::spawn(async move {
        let _permit = permit;
        let reply = forward(&upstreams, &query, Transport::Udp, wait).await;
        if let Some(r) = reply.or_else(|| servfail(&query, Transport::Udp)) {
            let _ = sock.send_to(&r, peer).await;
        }
    });
    true
}

fn std_addr(a: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::V4((*v4).into()));
    }
    a.as_sockaddr_in6().map(|v6| SocketAddr::V6((*v6).into()))
}

fn servfail(query: &[u8], transport: Transport) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    answer::error_reply(query, ResponseCode::ServFail, transport, &mut out).then_some(out)
}

async fn serve_tcp(
    shared: Arc<Shared>,
    quota: Arc<Quota>,
    container: Arc<str>,
    listener: TcpListener,
) {
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                // Out of descriptors, say: back off instead of spinning.
                tracing::warn!("DNS for {container}: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(permit) = take(&quota.tcp, &shared.tcp_slots) else {
            continue;
        };
        let (shared, quota, container) = (shared.clone(), quota.clone(), container.clone());
        tokio::spawn(async move {
            let _permit = permit;
            serve_conn(&shared, &quota, &container, stream).await;
        });
    }
}

/// Answers length-prefixed queries on one TCP connection until the client closes it, sends
/// something that is not a query, or stays idle too long.
async fn serve_conn(shared: &Shared, quota: &Quota, container: &str, mut stream: TcpStream) {
    let idle = shared.config.tcp_idle;
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut out = Vec::with_capacity(4096);
    loop {
        while let Some((msg, used)) = answer::split_frame(&buf) {
            let outcome = {
                let records = shared.records.load();
                answer::handle(
                    &records,
                    container,
                    msg,
                    Transport::Tcp,
                    shared.config.ttl,
                    &mut out,
                )
            };
            let reply = match outcome {
                Outcome::Reply => out.as_slice(),
                Outcome::Drop => return,
                Outcome::Forward(upstreams) => {
                    let wait = shared.config.upstream_timeout;
                    let fwd = match take(&quota.forward, &shared.forward_slots) {
                        Some(_slot) => forward(&upstreams, msg, Transport::Tcp, wait).await,
                        None => None,
                    };
                    match fwd.or_else(|| servfail(msg, Transport::Tcp)) {
                        Some(r) => {
                            out = r;
                            out.as_slice()
                        }
                        None => return,
                    }
                }
            };
            let len = (reply.len() as u16).to_be_bytes();
            let write = async {
                stream.write_all(&len).await?;
                stream.write_all(reply).await
            };
            if !matches!(tokio::time::timeout(idle, write).await, Ok(Ok(()))) {
                return;
            }
            buf.drain(..used);
        }
        if buf.len() >= 2 + usize::from(u16::MAX) {
            return;
        }
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout(idle, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return,
        }
    }
}
