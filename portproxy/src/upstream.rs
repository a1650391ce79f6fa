//! Sockets toward the container: non-blocking, with keep-alive for TCP, and bound to the client's
//! own address when its address is to be preserved (see [`crate::transparent`]).

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol as SockProto, Socket, Type};

/// TCP keep-alive for both sides of a relayed connection: a peer that vanishes without a FIN or
/// RST (a host powered off, a container whose namespace was torn down) is detected after about
/// 60 s + 4 x 15 s instead of holding its connection and its permit forever.
pub(crate) fn keepalive() -> socket2::TcpKeepalive {
    socket2::TcpKeepalive::new()
        .with_time(std::time::Duration::from_secs(60))
        .with_interval(std::time::Duration::from_secs(15))
        .with_retries(4)
}

/// An unconnected upstream socket for `container`, bound to `client` when transparent.
pub(crate) fn upstream_socket(
    ty: Type,
    container: SocketAddr,
    client: Option<SocketAddr>,
) -> io::Result<Socket> {
    let proto = if ty == Type::STREAM {
        SockProto::TCP
    } else {
        SockProto::UDP
    };
    // socket2 opens sockets close-on-exec; SOCK_NONBLOCK saves an fcntl per connection.
    let sock = Socket::new(
        Domain::for_address(container),
        ty.nonblocking(),
        Some(proto),
    )?;
    if ty == Type::STREAM {
        sock.set_tcp_keepalive(&keepalive())?;
    }
    if let Some(client) = client {
        sock.set_ip_transparent_v4(true)?;
        sock.set_reuse_address(true)?;
        sock.bind(&client.into())?;
    }
    Ok(sock)
}
