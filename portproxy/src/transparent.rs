//! Client-address preservation ("transparent" mode).
//!
//! docker-proxy connects to the container from the host, so the container sees the bridge gateway
//! as its peer. In transparent mode berth-proxy opens the upstream socket with IP_TRANSPARENT and
//! binds it to the client's own address and port before connecting, so the container sees the real
//! client. The container's replies are addressed to the client, so the host must deliver them to
//! the proxy's socket instead of forwarding them: that is the routing in [`routing_nft`] and
//! [`ROUTING_IP_COMMANDS`], which the network layer (or the admin) installs once per host.
//!
//! Limits: IPv4 only (client and container both IPv4); clients on loopback or on the host's own
//! addresses cannot be impersonated and fall back to an ordinary connection; needs CAP_NET_ADMIN.

use std::net::SocketAddr;

/// Firewall mark put on container replies that belong to a transparent proxy socket.
pub const MARK: u32 = 0x6265; // "be"
/// Routing table that delivers marked packets locally.
pub const TABLE: u32 = 0x6265;

/// The policy routing that delivers marked packets to local sockets, as `ip` commands (IPv4).
pub const ROUTING_IP_COMMANDS: [&str; 2] = [
    "ip -4 rule add fwmark 0x6265 lookup 25189 priority 100",
    "ip -4 route add local 0.0.0.0/0 dev lo table 25189",
];

/// An nftables script (for `nft -f -`) that marks packets belonging to transparent sockets.
///
/// `socket transparent 1` matches a packet whose destination is a local socket with IP_TRANSPARENT
/// set: exactly the replies the container sends to a client address the proxy impersonates.
pub fn routing_nft() -> String {
    format!(
        "table ip berth_tproxy {{\n  chain prerouting {{\n    type filter hook prerouting priority mangle; policy accept;\n    \
         socket transparent 1 meta mark set {MARK:#x} accept\n  }}\n}}\n"
    )
}

/// Whether a connection from `client` to `container` can carry the client's address.
pub fn can_preserve(client: SocketAddr, container: SocketAddr) -> bool {
    match (client, container) {
        (SocketAddr::V4(c), SocketAddr::V4(_)) => {
            let ip = c.ip();
            !ip.is_loopback() && !ip.is_unspecified() && !ip.is_broadcast() && !ip.is_multicast()
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_non_local_ipv4_clients_are_preserved() {
        let ctr: SocketAddr = "172.17.0.2:80".parse().unwrap();
        assert!(can_preserve("10.9.0.2:5555".parse().unwrap(), ctr));
        assert!(!can_preserve("127.0.0.1:5555".parse().unwrap(), ctr));
        assert!(!can_preserve("[fd00::2]:5555".parse().unwrap(), ctr));
        assert!(!can_preserve(
            "10.9.0.2:5555".parse().unwrap(),
            "[fd00::2]:80".parse().unwrap()
        ));
    }

    #[test]
    fn nft_script_marks_transparent_sockets() {
        let s = routing_nft();
        assert!(s.contains("socket transparent 1 meta mark set 0x6265"));
        assert!(ROUTING_IP_COMMANDS[0].contains(&TABLE.to_string()));
    }
}
