//! The TCP listener: mutual TLS only (a client without a certificate signed by `--tlscacert` is
//! refused in the handshake), then the same API as the Unix socket, upgrades included.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;

use crate::config::TcpListen;

/// At most this many TCP connections at once; more wait in the kernel's backlog.
pub const MAX_CONNECTIONS: u32 = 1024;

/// A client that has not finished its handshake by then is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes in progress at once from one client address (an IPv6 client: from one /64);
/// another connection from there is closed at once. Without it, one address could hold every
/// connection slot with handshakes it never finishes, each for [`HANDSHAKE_TIMEOUT`].
pub const HANDSHAKES_PER_ADDRESS: usize = 32;

/// Handshakes in progress at once from everyone: a quarter of the connections, so clients
/// that finished theirs always find room, however many addresses stall handshakes.
pub const HANDSHAKES_MAX: usize = MAX_CONNECTIONS as usize / 4;

/// Handshakes in progress, by client address and in all. An address is in the table only while
/// it has one in progress, so the table holds at most `max` entries.
#[derive(Debug)]
pub struct Handshakes {
    per_address: usize,
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
    total: std::sync::atomic::AtomicUsize,
}

/// One handshake in progress; dropping it ends it.
#[derive(Debug)]
pub struct Handshake {
    table: Arc<Handshakes>,
    key: IpAddr,
}

impl Handshakes {
    /// A table allowing `per_address` handshakes at once from one address and `max` in all.
    pub fn new(per_address: usize, max: usize) -> Arc<Handshakes> {
        Arc::new(Handshakes {
            per_address: per_address.max(1),
            max: max.max(1),
            open: Mutex::new(HashMap::new()),
            total: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// Starts a handshake from `peer`, or `None` when that address has its share in progress,
    /// or everyone has.
    pub fn begin(self: &Arc<Self>, peer: IpAddr) -> Option<Handshake> {
        use std::sync::atomic::Ordering;
        let key = client_key(peer);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if self.total.load(Ordering::Relaxed) >= self.max
            || open.get(&key).is_some_and(|n| *n >= self.per_address)
        {
            return None;
        }
        let n = open.entry(key).or_insert(0);
        *n += 1;
        self.total.fetch_add(1, Ordering::Relaxed);
        Some(Handshake {
            table: self.clone(),
            key,
        })
    }

    /// Handshakes in progress from `peer`'s address.
    pub fn in_progress(&self, peer: IpAddr) -> usize {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.get(&client_key(peer)).copied().unwrap_or(0)
    }
}

impl Drop for Handshake {
    fn drop(&mut self) {
        let mut open = self.table.open.lock().unwrap_or_else(|p| p.into_inner());
        self.table
            .total
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        if let Some(n) = open.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// What counts as one client: its IPv4 address (a mapped one too), or its IPv6 /64.
fn client_key(peer: IpAddr) -> IpAddr {
    match peer.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// The certificates of a PEM file (at least one).
pub fn certs(file: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(file)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("reading the certificates of {}", file.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "{} holds no PEM certificate",
        file.display()
    );
    Ok(certs)
}

/// The private key of a PEM file.
pub fn key(file: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(file)
        .with_context(|| format!("reading the private key of {}", file.display()))
}

/// The server's TLS settings: its certificate and key, and client certificates required,
/// verified against the CA.
pub fn server_config(t: &TcpListen) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for c in certs(&t.ca)? {
        roots
            .add(c)
            .with_context(|| format!("the CA certificate {}", t.ca.display()))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .with_context(|| format!("the client verifier over {}", t.ca.display()))?;
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs(&t.cert)?, key(&t.key)?)
        .with_context(|| {
            format!(
                "the certificate {} with the key {}",
                t.cert.display(),
                t.key.display()
            )
        })?;
    Ok(Arc::new(cfg))
}

/// Serves `app` on `listener` until `stop` turns true, then waits for the open connections
/// (each is asked to finish its request and close).
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    mut stop: watch::Receiver<bool>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS as usize));
    let handshakes = Handshakes::new(HANDSHAKES_PER_ADDRESS, HANDSHAKES_MAX);
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            _ = stop.changed() => break,
        };
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of descriptors and the like: wait rather than spin.
                    tracing::warn!(error = %e, "accepting a TCP connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        let Some(handshake) = handshakes.begin(peer.ip()) else {
            tracing::debug!(%peer, "refused: {HANDSHAKES_PER_ADDRESS} handshakes in progress from there");
            continue;
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let handshake_io = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp));
            let tls = tokio::select! {
                r = handshake_io => match r {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake refused");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                },
                // Stopping: a half-open handshake is not worth waiting for.
                _ = stop.wait_for(|s| *s) => return,
            };
            drop(handshake);
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), TowerToHyperService::new(app))
                .with_upgrades();
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(%peer, error = %e, "TCP connection");
                    }
                    return;
                }
                _ = stop.wait_for(|s| *s) => {}
            }
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        });
    }
    // Every slot back: every connection ended.
    let _ = slots.acquire_many(MAX_CONNECTIONS).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshakes_are_bounded_per_address_and_released() {
        let t = Handshakes::new(2, 100);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let h1 = t.begin(a).unwrap();
        let h2 = t.begin(a).unwrap();
        assert!(t.begin(a).is_none());
        // A mapped IPv4 address is the same client.
        assert!(t.begin("::ffff:192.0.2.1".parse().unwrap()).is_none());
        // Another address has its own share.
        let b = t.begin("192.0.2.2".parse().unwrap()).unwrap();
        drop(h1);
        let h3 = t.begin(a).unwrap();
        assert_eq!(t.in_progress(a), 2);
        drop((h2, h3, b));
        assert_eq!(t.in_progress(a), 0);
        assert!(
            t.open.lock().unwrap().is_empty(),
            "finished clients stay in the table"
        );
    }

    #[test]
    fn handshakes_are_bounded_in_all() {
        let t = Handshakes::new(2, 3);
        let ip = |i: u8| IpAddr::from([192, 0, 2, i]);
        let held: Vec<_> = (1..=3).map(|i| t.begin(ip(i)).unwrap()).collect();
        assert!(
            t.begin(ip(9)).is_none(),
            "a fourth address while three handshakes run"
        );
        drop(held);
        assert!(t.begin(ip(9)).is_some());
    }

    #[test]
    fn an_ipv6_client_is_its_slash_64() {
        let t = Handshakes::new(1, 100);
        let _h = t.begin("2001:db8:1:2::1".parse().unwrap()).unwrap();
        assert!(t.begin("2001:db8:1:2:ffff::9".parse().unwrap()).is_none());
        assert!(t.begin("2001:db8:1:3::1".parse().unwrap()).is_some());
    }
}
