//! The proxy: a registry of publications, each a set of host sockets served by tasks of one tokio
//! runtime. This is the library API that the control socket (and berthd) drive.
//!
//! The registry lock is taken only to add, remove or list publications, never on the data path.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::runtime::Handle;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tracing::info;

use crate::error::ProxyError;
use crate::listen::{Bound, bind_all};
use crate::spec::{Mapping, PortSpec};
use crate::stats::{Counters, StatsSnapshot};
use crate::{tcp, udp};

/// Tunables of a proxy. The defaults suit a container host.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Open TCP connections across all publications; accepting waits at the cap.
    pub max_connections: usize,
    /// How long to wait for the container to accept a connection.
    pub connect_timeout: Duration,
    /// A UDP flow with no datagram either way for this long is closed.
    pub udp_idle_timeout: Duration,
    /// UDP flows per listening socket; the least recently used is evicted beyond it.
    pub udp_max_flows: usize,
    /// UDP flows across the whole proxy (each holds a socket); new flows are refused beyond it.
    pub udp_max_flows_total: usize,
}

impl ProxyConfig {
    /// Most connections one proxy will track (also bounds the semaphore and `drain`).
    pub const MAX_CONNECTIONS: usize = 1 << 20;
    /// Longest UDP idle timeout accepted.
    pub const MAX_UDP_IDLE: Duration = Duration::from_secs(86_400);

    /// The configuration with every value brought into its valid range.
    fn clamped(mut self) -> Self {
        self.max_connections = self.max_connections.clamp(1, Self::MAX_CONNECTIONS);
        self.udp_idle_timeout = self
            .udp_idle_timeout
            .clamp(Duration::from_millis(10), Self::MAX_UDP_IDLE);
        self.udp_max_flows = self.udp_max_flows.clamp(1, Self::MAX_CONNECTIONS);
        self.udp_max_flows_total = self.udp_max_flows_total.clamp(1, Self::MAX_CONNECTIONS);
        self
    }
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            max_connections: 16_384,
            connect_timeout: Duration::from_secs(5),
            udp_idle_timeout: Duration::from_secs(90),
            udp_max_flows: 4_096,
            udp_max_flows_total: 65_536,
        }
    }
}

/// What a client asks to publish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishRequest {
    /// The `-p` specification.
    pub spec: PortSpec,
    /// The container address the ports forward to.
    pub container_ip: IpAddr,
    /// Keep the client's address visible to the container (see [`crate::transparent`]).
    #[serde(default)]
    pub transparent: bool,
}

/// A publication as reported to clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedInfo {
    /// Handle for unpublishing and for reading counters.
    pub id: u64,
    /// The specification it came from (docker's text form).
    pub spec: String,
    /// Every socket it listens on, with the real host ports.
    pub mappings: Vec<Mapping>,
    /// Whether client addresses are preserved.
    pub transparent: bool,
    /// Counters at the time of the report.
    pub stats: StatsSnapshot,
}

/// State shared by every task of a proxy.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: ProxyConfig,
    pub(crate) connections: Arc<Semaphore>,
    /// TCP connections being relayed now.
    pub(crate) open: AtomicU64,
    /// UDP flows open now, across every publication.
    pub(crate) udp_flows: AtomicU64,
}

#[derive(Debug)]
struct Publication {
    spec: String,
    mappings: Vec<Mapping>,
    transparent: bool,
    counters: Arc<Counters>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Publication {
    /// Closing the listeners stops new traffic; TCP connections already accepted run on until
    /// their peers close them. Use [`Publication::close`] to know when the ports are free again.
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Publication {
    /// Stops the listener tasks and waits until they are gone, so the host ports are free for
    /// reuse when this returns (an aborted task is only dropped when the runtime next polls it).
    async fn close(mut self) {
        let tasks = std::mem::take(&mut self.tasks);
        for t in &tasks {
            t.abort();
        }
        for t in tasks {
            let _ = t.await;
        }
    }

    fn info(&self, id: u64) -> PublishedInfo {
        PublishedInfo {
            id,
            spec: self.spec.clone(),
            mappings: self.mappings.clone(),
            transparent: self.transparent,
            stats: self.counters.snapshot(),
        }
    }
}

#[derive(Debug)]
struct Inner {
    shared: Arc<Shared>,
    handle: Handle,
    next_id: AtomicU64,
    draining: AtomicBool,
    publications: Mutex<BTreeMap<u64, Publication>>,
}

/// A running proxy. Cloning gives another handle to the same proxy.
#[derive(Debug, Clone)]
pub struct Proxy {
    inner: Arc<Inner>,
}

/// Where a proxy's publication IDs start: random (below 2^52, so JSON clients keep them exact),
/// so an ID a client kept from an earlier proxy process never names a publication of this one.
fn first_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    (h.finish() & ((1 << 52) - 1)).max(1)
}

impl Proxy {
    /// A proxy whose tasks run on the current tokio runtime.
    ///
    /// # Panics
    /// When called outside a tokio runtime.
    pub fn new(config: ProxyConfig) -> Proxy {
        let config = config.clamped();
        let connections = Arc::new(Semaphore::new(config.max_connections));
        Proxy {
            inner: Arc::new(Inner {
                shared: Arc::new(Shared {
                    config,
                    connections,
                    open: AtomicU64::new(0),
                    udp_flows: AtomicU64::new(0),
                }),
                handle: Handle::current(),
                next_id: AtomicU64::new(first_id()),
                draining: AtomicBool::new(false),
                publications: Mutex::new(BTreeMap::new()),
            }),
        }
    }

    fn table(&self) -> MutexGuard<'_, BTreeMap<u64, Publication>> {
        // A panic while holding the lock cannot leave the map half-updated (single inserts and
        // removes), so a poisoned lock is still safe to use.
        self.inner
            .publications
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Opens every socket `req` needs and starts serving them, all or nothing: on error nothing is
    /// left listening.
    pub fn publish(&self, req: &PublishRequest) -> Result<PublishedInfo, ProxyError> {
        if self.inner.draining.load(Ordering::Acquire) {
            return Err(ProxyError::Draining);
        }
        // Without a host IP, IPv6 is best effort: a host without IPv6 still publishes on IPv4.
        let bound = bind_all(
            &req.spec.mappings(req.container_ip),
            req.spec.host_ip.is_none(),
        )?;
        self.publish_bound(req.spec.to_string(), bound, req.transparent)
    }

    /// Serves sockets that are already open (docker-proxy's `-use-listen-fd`, or ones a caller
    /// opened with [`bind_all`]).
    pub fn publish_bound(
        &self,
        spec: String,
        bound: Vec<(Mapping, Bound)>,
        transparent: bool,
    ) -> Result<PublishedInfo, ProxyError> {
        let counters = Arc::new(Counters::default());
        let mut mappings = Vec::with_capacity(bound.len());
        let mut ready = Vec::with_capacity(bound.len());
        // Registering with the runtime can fail; do all of it before spawning anything.
        let _guard = self.inner.handle.enter();
        for (m, b) in bound {
            let err = |source| ProxyError::Listen {
                addr: m.host,
                proto: m.proto,
                source,
            };
            ready.push(match b {
                Bound::Tcp(l) => Ready::Tcp(tokio::net::TcpListener::from_std(l).map_err(err)?),
                Bound::Udp { socket, wildcard } => Ready::Udp(
                    tokio::net::UdpSocket::from_std(socket).map_err(err)?,
                    wildcard,
                ),
            });
            mappings.push(m);
        }
        let shared = &self.inner.shared;
        let tasks = ready
            .into_iter()
            .zip(&mappings)
            .map(|(r, m)| match r {
                Ready::Tcp(l) => self.inner.handle.spawn(tcp::serve(
                    l,
                    m.container,
                    transparent,
                    shared.clone(),
                    counters.clone(),
                )),
                Ready::Udp(s, wildcard) => self.inner.handle.spawn(udp::serve(
                    s,
                    wildcard,
                    m.container,
                    transparent,
                    shared.clone(),
                    counters.clone(),
                )),
            })
            .collect();
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let publication = Publication {
            spec,
            mappings,
            transparent,
            counters,
            tasks,
        };
        let info = publication.info(id);
        let mut table = self.table();
        // Checked again under the lock: a drain that started after the check in `publish` has
        // already emptied the table and must not miss this publication.
        if self.inner.draining.load(Ordering::Acquire) {
            drop(table);
            drop(publication); // aborts its tasks
            return Err(ProxyError::Draining);
        }
        table.insert(id, publication);
        drop(table);
        info!(id, spec = %info.spec, sockets = info.mappings.len(), "published");
        Ok(info)
    }

    /// Stops listening for publication `id` and returns once its host ports are free again; its
    /// open TCP connections finish on their own.
    pub async fn unpublish(&self, id: u64) -> Result<PublishedInfo, ProxyError> {
        let p = self.table().remove(&id).ok_or(ProxyError::UnknownId(id))?;
        info!(id, spec = %p.spec, "unpublished");
        let info = p.info(id);
        p.close().await;
        Ok(info)
    }

    /// One publication with its counters.
    pub fn get(&self, id: u64) -> Result<PublishedInfo, ProxyError> {
        self.table()
            .get(&id)
            .map(|p| p.info(id))
            .ok_or(ProxyError::UnknownId(id))
    }

    /// Every publication with its counters, by id.
    pub fn list(&self) -> Vec<PublishedInfo> {
        self.table().iter().map(|(id, p)| p.info(*id)).collect()
    }

    /// Open TCP connections across all publications.
    pub fn open_connections(&self) -> usize {
        self.inner.shared.open.load(Ordering::Relaxed) as usize
    }

    /// Stops every listener, then waits up to `timeout` for open TCP connections to finish.
    /// Returns whether they all did.
    pub async fn drain(&self, timeout: Duration) -> bool {
        self.inner.draining.store(true, Ordering::Release);
        let all = std::mem::take(&mut *self.table());
        for p in all.into_values() {
            p.close().await;
        }
        let s = &self.inner.shared;
        let n = u32::try_from(s.config.max_connections).unwrap_or(u32::MAX);
        tokio::time::timeout(timeout, s.connections.acquire_many(n))
            .await
            .is_ok()
    }
}

enum Ready {
    Tcp(tokio::net::TcpListener),
    Udp(tokio::net::UdpSocket, bool),
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn req(spec: &str) -> PublishRequest {
        PublishRequest {
            spec: spec.parse().unwrap(),
            container_ip: "127.0.0.1".parse().unwrap(),
            transparent: false,
        }
    }

    async fn echo_tcp() -> u16 {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        port
    }

    #[tokio::test]
    async fn publish_unpublish_and_counters() {
        let backend = echo_tcp().await;
        let proxy = Proxy::new(ProxyConfig::default());
        let info = proxy
            .publish(&req(&format!("127.0.0.1::{backend}")))
            .unwrap();
        let front = info.mappings[0].host;
        let mut c = tokio::net::TcpStream::connect(front).await.unwrap();
        c.write_all(b"hello").await.unwrap();
        let mut buf = [0u8; 5];
        c.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hello");
        let s = proxy.get(info.id).unwrap().stats;
        assert_eq!(s.connections_total, 1);
        assert_eq!(s.bytes_to_container, 5);

        // Removing the publication closes its listener but not the open connection.
        proxy.unpublish(info.id).await.unwrap();
        // The port is free the moment unpublish returns.
        std::net::TcpListener::bind(front).expect("port still held after unpublish");
        c.write_all(b"again").await.unwrap();
        c.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"again");
        assert!(matches!(
            proxy.unpublish(info.id).await,
            Err(ProxyError::UnknownId(_))
        ));
    }

    #[tokio::test]
    async fn refused_upstream_closes_client_promptly() {
        let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = dead.local_addr().unwrap().port();
        drop(dead);
        let proxy = Proxy::new(ProxyConfig::default());
        let info = proxy.publish(&req(&format!("127.0.0.1::{port}"))).unwrap();
        let mut c = tokio::net::TcpStream::connect(info.mappings[0].host)
            .await
            .unwrap();
        let mut buf = [0u8; 1];
        let r = tokio::time::timeout(Duration::from_secs(2), c.read(&mut buf))
            .await
            .expect("client was left hanging");
        assert!(matches!(r, Ok(0) | Err(_)));
        // The proxy keeps going.
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(proxy.get(info.id).unwrap().stats.errors, 1);
        assert!(
            tokio::net::TcpStream::connect(info.mappings[0].host)
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn udp_round_trip_and_flow_counting() {
        let backend = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let bport = backend.local_addr().unwrap().port();
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            loop {
                let (n, from) = backend.recv_from(&mut buf).await.unwrap();
                backend.send_to(&buf[..n], from).await.unwrap();
            }
        });
        let proxy = Proxy::new(ProxyConfig::default());
        let info = proxy
            .publish(&req(&format!("127.0.0.1::{bport}/udp")))
            .unwrap();
        let c = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        c.connect(info.mappings[0].host).await.unwrap();
        let mut buf = [0u8; 64];
        for i in 0..3u8 {
            c.send(&[i; 10]).await.unwrap();
            let n = tokio::time::timeout(Duration::from_secs(2), c.recv(&mut buf))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(&buf[..n], &[i; 10]);
        }
        let s = proxy.get(info.id).unwrap().stats;
        assert_eq!((s.flows_total, s.flows_active), (1, 1));
        assert_eq!(s.bytes_to_container, 30);
        // The host port is free as soon as unpublish returns, although a flow's reply task
        // was still running.
        proxy.unpublish(info.id).await.unwrap();
        std::net::UdpSocket::bind(info.mappings[0].host).expect("UDP port still held");
    }

    /// On the single-thread runtime, a UDP flood that never lets the receive queue empty must
    /// not starve TCP relays: the forwarding loops yield to tokio's cooperative budget.
    #[test]
    fn udp_flood_does_not_starve_tcp() {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let tcp_backend = echo_tcp().await;
                let sink = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
                let proxy = Proxy::new(ProxyConfig::default());
                let t = proxy
                    .publish(&req(&format!("127.0.0.1::{tcp_backend}")))
                    .unwrap();
                let u = proxy
                    .publish(&req(&format!(
                        "127.0.0.1::{}/udp",
                        sink.local_addr().unwrap().port()
                    )))
                    .unwrap();
                tx.send((t.mappings[0].host, u.mappings[0].host)).unwrap();
                std::future::pending::<()>().await;
            });
        });
        let (tcp_front, udp_front) = rx.recv().unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let blasters: Vec<_> = (0..2)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
                    while !stop.load(Ordering::Relaxed) {
                        let _ = s.send_to(&[0u8; 16], udp_front);
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(200));
        use std::io::{Read, Write};
        let r = (|| -> std::io::Result<[u8; 4]> {
            let mut c = std::net::TcpStream::connect(tcp_front)?;
            c.set_read_timeout(Some(Duration::from_millis(500)))?;
            c.write_all(b"ping")?;
            let mut b = [0u8; 4];
            c.read_exact(&mut b)?;
            Ok(b)
        })();
        stop.store(true, Ordering::Relaxed);
        for b in blasters {
            b.join().unwrap();
        }
        assert_eq!(&r.expect("TCP starved by the UDP flood"), b"ping");
    }

    #[tokio::test]
    async fn drain_refuses_new_publications() {
        let proxy = Proxy::new(ProxyConfig::default());
        assert!(proxy.drain(Duration::from_millis(100)).await);
        assert!(matches!(
            proxy.publish(&req("127.0.0.1::80")),
            Err(ProxyError::Draining)
        ));
    }
}
