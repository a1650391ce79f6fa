//! The TCP side of a mapping: accept, connect to the container, relay with splice.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use socket2::{SockRef, Type};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::TryAcquireError;
use tracing::{debug, warn};

use crate::proxy::Shared;
use crate::splice::relay;
use crate::stats::Counters;
use crate::transparent;
use crate::upstream;

/// Accepts connections on `listener` forever, each relayed to `container` in its own task.
///
/// The number of open connections is capped proxy-wide by a semaphore: at the cap, accepting waits
/// (the kernel's backlog queues new clients) instead of running out of file descriptors.
pub(crate) async fn serve(
    listener: TcpListener,
    container: SocketAddr,
    transparent: bool,
    shared: Arc<Shared>,
    counters: Arc<Counters>,
) {
    let mut backoff = Duration::from_millis(5);
    loop {
        let (client, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // EMFILE, ENOBUFS and the like: back off instead of spinning.
                Counters::add(&counters.errors, 1);
                warn!(error = %e, %container, "accept failed; backing off {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        backoff = Duration::from_millis(5);
        // Take the permit after accepting, so an idle listener holds none; at the cap this waits
        // with one accepted connection in hand while the kernel backlog holds the rest.
        let permit = match shared.connections.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(TryAcquireError::NoPermits) => {
                match shared.connections.clone().acquire_owned().await {
                    Ok(p) => p,
                    Err(_) => return,
                }
            }
            Err(TryAcquireError::Closed) => return,
        };
        Counters::add(&counters.connections_total, 1);
        Counters::add(&counters.connections_active, 1);
        Counters::add(&shared.open, 1);
        let counters = counters.clone();
        let shared = shared.clone();
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = handle(
                client,
                peer,
                container,
                transparent,
                shared.config.connect_timeout,
                &counters,
            )
            .await
            {
                Counters::add(&counters.errors, 1);
                debug!(%peer, %container, error = %e, "connection ended with an error");
            }
            Counters::sub(&counters.connections_active, 1);
            Counters::sub(&shared.open, 1);
        });
    }
}

async fn connect(
    peer: SocketAddr,
    container: SocketAddr,
    transparent: bool,
    timeout: Duration,
) -> io::Result<TcpStream> {
    let client = (transparent && transparent::can_preserve(peer, container)).then_some(peer);
    let sock = upstream::upstream_socket(Type::STREAM, container, client)?;
    let sock = TcpSocket::from_std_stream(sock.into());
    match tokio::time::timeout(timeout, sock.connect(container)).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("connecting to {container} timed out after {timeout:?}"),
        )),
    }
}

async fn handle(
    client: TcpStream,
    peer: SocketAddr,
    container: SocketAddr,
    transparent: bool,
    connect_timeout: Duration,
    counters: &Counters,
) -> io::Result<()> {
    let upstream = match connect(peer, container, transparent, connect_timeout).await {
        Ok(u) => u,
        Err(e) => {
            // Nothing listens in the container (or it is gone): reset the client at once so it
            // does not wait for data that will never come.
            let _ = SockRef::from(&client).set_linger(Some(Duration::ZERO));
            return Err(e);
        }
    };
    // The client socket inherited TCP_NODELAY from the listener.
    let _ = upstream.set_nodelay(true);
    relay(client, upstream, counters).await
}
