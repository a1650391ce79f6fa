//! Opening the host-side sockets of a mapping. All sockets of a publication are opened before any
//! is served, so a failure (port in use, address not on this host) closes what was opened and
//! leaves nothing listening.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::OwnedFd;

use nix::sys::socket::{setsockopt, sockopt};
use socket2::{Domain, Socket, Type};

use crate::error::ProxyError;
use crate::spec::{Mapping, Protocol};

/// An open host-side socket, not yet served.
#[derive(Debug)]
pub enum Bound {
    /// A listening TCP socket.
    Tcp(std::net::TcpListener),
    /// A bound UDP socket; `wildcard` when it listens on every address and so must learn each
    /// datagram's destination (IP_PKTINFO) to reply from it.
    Udp {
        /// The socket.
        socket: std::net::UdpSocket,
        /// Bound to 0.0.0.0 or ::.
        wildcard: bool,
    },
}

impl Bound {
    /// The local address the kernel gave the socket (resolves port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Bound::Tcp(l) => l.local_addr(),
            Bound::Udp { socket, .. } => socket.local_addr(),
        }
    }

    /// Wraps a socket inherited from a parent (docker's `-use-listen-fd`), already bound and, for
    /// TCP, listening.
    pub fn from_fd(proto: Protocol, fd: OwnedFd) -> io::Result<Bound> {
        let sock = Socket::from(fd);
        sock.set_nonblocking(true)?;
        match proto {
            Protocol::Tcp => Ok(Bound::Tcp(sock.into())),
            Protocol::Udp => {
                let wildcard = sock
                    .local_addr()?
                    .as_socket()
                    .is_some_and(|a| a.ip().is_unspecified());
                if wildcard {
                    enable_pktinfo(&sock)?;
                }
                Ok(Bound::Udp {
                    socket: sock.into(),
                    wildcard,
                })
            }
        }
    }
}

fn enable_pktinfo(sock: &Socket) -> io::Result<()> {
    if sock.domain()? == Domain::IPV6 {
        setsockopt(sock, sockopt::Ipv6RecvPacketInfo, &true)?;
        // A dual-stack socket (one passed in by a daemon) also receives IPv4 datagrams; their
        // destination comes as IP_PKTINFO. Our own `::` sockets are IPv6-only and refuse nothing.
        if !sock.only_v6()? {
            setsockopt(sock, sockopt::Ipv4PacketInfo, &true)?;
        }
    } else {
        setsockopt(sock, sockopt::Ipv4PacketInfo, &true)?;
    }
    Ok(())
}

fn open(addr: SocketAddr, proto: Protocol) -> io::Result<Bound> {
    let ty = match proto {
        Protocol::Tcp => Type::STREAM,
        Protocol::Udp => Type::DGRAM,
    };
    let sock = Socket::new(Domain::for_address(addr), ty.nonblocking(), None)?;
    if addr.is_ipv6() {
        // `::` serves IPv6 only; IPv4 gets its own `0.0.0.0` socket, as Docker publishes both.
        sock.set_only_v6(true)?;
    }
    match proto {
        Protocol::Tcp => {
            sock.set_reuse_address(true)?;
            // Accepted sockets inherit TCP_NODELAY and keep-alive from the listener on Linux:
            // set once per listener instead of once per connection.
            sock.set_tcp_nodelay(true)?;
            sock.set_tcp_keepalive(&crate::upstream::keepalive())?;
            sock.bind(&addr.into())?;
            sock.listen(4096)?;
            Ok(Bound::Tcp(sock.into()))
        }
        Protocol::Udp => {
            sock.bind(&addr.into())?;
            let wildcard = addr.ip().is_unspecified();
            if wildcard {
                enable_pktinfo(&sock)?;
            }
            Ok(Bound::Udp {
                socket: sock.into(),
                wildcard,
            })
        }
    }
}

/// Opens the host sockets for `mappings`, all or none. A host port of 0 gets a kernel-chosen port;
/// the IPv6 twin of an IPv4 mapping with port 0 reuses the port IPv4 got, as Docker does.
///
/// With `optional_v6` (a specification without a host IP), an IPv6 socket that cannot be opened
/// because the host has no IPv6 is skipped, as Docker does, instead of failing the publication.
///
/// Returns the mappings with their real host addresses, paired with their sockets.
pub fn bind_all(
    mappings: &[Mapping],
    optional_v6: bool,
) -> Result<Vec<(Mapping, Bound)>, ProxyError> {
    let mut out: Vec<(Mapping, Bound)> = Vec::with_capacity(mappings.len());
    let per_family = mappings.len() / 2;
    for (i, m) in mappings.iter().enumerate() {
        let mut m = *m;
        if m.host.port() == 0 && matches!(m.host.ip(), IpAddr::V6(_)) && i >= per_family {
            // Twin of an earlier IPv4 mapping of the same container port, if there is one.
            if let Some((_, b)) = out
                .get(i - per_family)
                .filter(|(prev, _)| prev.container.port() == m.container.port())
            {
                if let Ok(a) = b.local_addr() {
                    m.host.set_port(a.port());
                }
            }
        }
        let bound = match open(m.host, m.proto) {
            Err(e) if optional_v6 && m.host.is_ipv6() && no_ipv6(&e) => {
                tracing::warn!(addr = %m.host, error = %e, "no IPv6 on this host; publishing IPv4 only");
                continue;
            }
            r => r,
        };
        let bound = bound.map_err(|source| {
            if source.kind() == io::ErrorKind::AddrInUse {
                ProxyError::AddrInUse {
                    addr: m.host,
                    proto: m.proto,
                }
            } else {
                ProxyError::Listen {
                    addr: m.host,
                    proto: m.proto,
                    source,
                }
            }
        })?; // `out` is dropped on error: every socket opened so far is closed.
        m.host = bound.local_addr().map_err(|source| ProxyError::Listen {
            addr: m.host,
            proto: m.proto,
            source,
        })?;
        out.push((m, bound));
    }
    Ok(out)
}

/// Errors that mean "this host has no IPv6" rather than "this port is taken".
fn no_ipv6(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(nix::libc::EAFNOSUPPORT | nix::libc::EADDRNOTAVAIL | nix::libc::EPROTONOSUPPORT)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(host: &str) -> Mapping {
        Mapping {
            proto: Protocol::Tcp,
            host: host.parse().unwrap(),
            container: "127.0.0.1:9".parse().unwrap(),
        }
    }

    #[test]
    fn port_in_use_is_named_and_nothing_stays_open() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let busy = taken.local_addr().unwrap();
        let free = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let err = bind_all(&[tcp(&free.to_string()), tcp(&busy.to_string())], false).unwrap_err();
        assert!(matches!(err, ProxyError::AddrInUse { addr, .. } if addr == busy));
        assert!(err.to_string().contains(&busy.to_string()));
        // The first socket was opened and must have been closed again.
        std::net::TcpListener::bind(free).expect("the failed publication left a socket behind");
    }

    #[test]
    fn accepted_sockets_inherit_nodelay() {
        let b = bind_all(&[tcp("127.0.0.1:0")], false).unwrap();
        let Bound::Tcp(l) = &b[0].1 else {
            unreachable!()
        };
        let _c = std::net::TcpStream::connect(b[0].0.host).unwrap();
        l.set_nonblocking(false).unwrap();
        let (s, _) = l.accept().unwrap();
        assert!(
            s.nodelay().unwrap(),
            "tcp.rs relies on the inherited TCP_NODELAY"
        );
        let s = socket2::SockRef::from(&s);
        assert!(s.keepalive().unwrap(), "keep-alive is not inherited");
        assert_eq!(
            s.tcp_keepalive_time().unwrap(),
            std::time::Duration::from_secs(60)
        );
    }

    #[test]
    fn port_zero_gets_a_real_port() {
        let b = bind_all(&[tcp("127.0.0.1:0")], false).unwrap();
        assert_ne!(b[0].0.host.port(), 0);
    }
}
