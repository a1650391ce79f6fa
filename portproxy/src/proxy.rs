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
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            max_connections: 16_384,
            connect_timeout: Duration::from_secs(5),
            udp_idle_timeout: Duration::from_secs(90),
            udp_max_flows: 4_096,
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
    /// TCP connections being relayed now (the semaphore also counts each idle acceptor's permit).
    pub(crate) open: AtomicU64,
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
    /// their peers close them.
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Publication {
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

impl Proxy {
    /// A proxy whose tasks run on the current tokio runtime.
    ///
    /// # Panics
    /// When called outside a tokio runtime.
    pub fn new(config: ProxyConfig) -> Proxy {
        let connections = Arc::new(Semaphore::new(config.max_connections));
        Proxy {
            inner: Arc::new(Inner {
                shared: Arc::new(Shared {
                    config,
                    connections,
                    open: AtomicU64::new(0),
                }),
                handle: Handle::current(),
                next_id: AtomicU64::new(1),
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
        let bound = bind_all(&req.spec.mappings(req.container_ip))?;
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
        info!(id, spec = %info.spec, sockets = info.mappings.len(), "published");
        self.table().insert(id, publication);
        Ok(info)
    }

    /// Stops listening for publication `id`; its open TCP connections finish on their own.
    pub fn unpublish(&self, id: u64) -> Result<PublishedInfo, ProxyError> {
        let p = self.table().remove(&id).ok_or(ProxyError::UnknownId(id))?;
        info!(id, spec = %p.spec, "unpublished");
        Ok(p.info(id))
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
        drop(all);
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
        proxy.unpublish(info.id).unwrap();
        tokio::task::yield_now().await;
        assert!(tokio::net::TcpStream::connect(front).await.is_err());
        c.write_all(b"again").await.unwrap();
        c.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"again");
        assert!(matches!(
            proxy.unpublish(info.id),
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
