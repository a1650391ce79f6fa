//! The NAT's rules as plain data: where a container's connection or datagram goes on the host,
//! what is refused and why, and the bounds of the flow tables. No I/O.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use serde::Serialize;

use super::options::{Layout, Options};

/// TCP flows (connecting, open or closing) per container. With [`TCP_BUFFER`], a stack whose
/// every flow has full buffers holds 2 x 1 MiB x 2,048 = 4 GiB: the bound, not a budget.
pub const MAX_TCP: usize = 2048;
/// A handshake (SYN sent or received) the other side does not finish is dropped after this.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// TCP flows whose host connection is still being made.
pub const MAX_CONNECTING: usize = 512;
/// UDP flows (outgoing and published) per container.
pub const MAX_UDP: usize = 1024;
/// Ping flows per container.
pub const MAX_PING: usize = 64;
/// How long a host connection may take before the container's SYN is answered with a reset.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// Each TCP flow's receive and send buffer in the stack (allocated lazily by the kernel: an idle
/// flow costs a few pages).
pub const TCP_BUFFER: usize = 1 << 20;

/// Why a flow is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The gateway stands for the host's loopback, which `allow_host_loopback` did not open.
    HostLoopback,
    /// The resolver address serves DNS (port 53) only.
    NotDns,
    /// No upstream resolver is known.
    NoResolver,
    /// Loopback, unspecified, multicast or broadcast, or an empty address of the network.
    NotRoutable,
}

/// Where the container's flows go.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The network's addresses.
    pub layout: Layout,
    /// Gateway -> host loopback allowed.
    pub allow_host_loopback: bool,
    /// The host's resolver, where the resolver address forwards.
    pub upstream_dns: Option<SocketAddr>,
    /// Host addresses outgoing flows are made from.
    pub outbound: (Option<Ipv4Addr>, Option<Ipv6Addr>),
}

impl Policy {
    /// The policy of a network with `options`, forwarding DNS to `upstream_dns`.
    pub fn new(options: &Options, upstream_dns: Option<SocketAddr>) -> Policy {
        Policy {
            layout: options.layout(),
            allow_host_loopback: options.allow_host_loopback,
            upstream_dns,
            outbound: (options.outbound_addr, options.outbound_addr6),
        }
    }

    /// The host address a flow from the container to `dst` is made to.
    pub fn outbound(&self, dst: SocketAddr) -> Result<SocketAddr, Refusal> {
        let ip = dst.ip();
        if let IpAddr::V6(v6) = ip {
            // IPv4-mapped and -compatible addresses would reach IPv4 destinations (the host's
            // 127.0.0.1 among them) past the IPv4 rules; without IPv6 nothing IPv6 goes out.
            let embeds_v4 = v6.segments()[..5] == [0; 5] && matches!(v6.segments()[5], 0 | 0xffff);
            if self.layout.cidr6.is_none() || (embeds_v4 && !v6.is_loopback()) {
                return Err(Refusal::NotRoutable);
            }
        }
        if let IpAddr::V4(v4) = ip {
            if v4.octets()[0] == 0 {
                return Err(Refusal::NotRoutable); // 0.0.0.0/8: "this host"
            }
        }
        if self.layout.is_gateway(ip) {
            if !self.allow_host_loopback {
                return Err(Refusal::HostLoopback);
            }
            let lo = match ip {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            };
            return Ok(SocketAddr::new(lo, dst.port()));
        }
        if self.layout.is_dns(ip) {
            if dst.port() != 53 {
                return Err(Refusal::NotDns);
            }
            return self.upstream_dns.ok_or(Refusal::NoResolver);
        }
        let in_network = match ip {
            IpAddr::V4(v4) => self.layout.cidr.contains(&v4) || v4.is_broadcast(),
            IpAddr::V6(v6) => self.layout.cidr6.is_some_and(|n| n.contains(&v6)),
        };
        if in_network
            || ip.is_loopback()
            || ip.is_unspecified()
            || ip.is_multicast()
            || dst.port() == 0
        {
            return Err(Refusal::NotRoutable);
        }
        Ok(dst)
    }

    /// Whether smoltcp (the gateway's own protocols and TCP) takes `frame`; the rest is the
    /// fast path's (UDP, pings beyond the gateway) or dropped.
    pub fn for_smoltcp(&self, frame: &super::frame::Frame) -> bool {
        use super::frame::Frame;
        match frame {
            Frame::Stack | Frame::Tcp(_) => true,
            Frame::Echo { dst, .. } => self.layout.is_gateway(*dst) || self.layout.is_dns(*dst),
            Frame::Udp { .. } | Frame::Unsupported => false,
        }
    }

    /// The host address an outgoing socket toward `target` is bound to (port 0).
    pub fn bind_for(&self, target: &SocketAddr) -> SocketAddr {
        match target {
            SocketAddr::V4(_) => SocketAddr::new(
                IpAddr::V4(self.outbound.0.unwrap_or(Ipv4Addr::UNSPECIFIED)),
                0,
            ),
            SocketAddr::V6(_) => SocketAddr::new(
                IpAddr::V6(self.outbound.1.unwrap_or(Ipv6Addr::UNSPECIFIED)),
                0,
            ),
        }
    }

    /// The source a published connection from `client` to `container` shows in the container:
    /// the client itself when preserving and the families match (loopback clients excepted:
    /// inside, their address is the container's own loopback), else the gateway at `port`.
    pub fn inbound_source(
        &self,
        client: SocketAddr,
        container: IpAddr,
        preserve: bool,
        port: u16,
    ) -> SocketAddr {
        let ip = client.ip().to_canonical();
        if preserve && !ip.is_loopback() && ip.is_ipv4() == container.is_ipv4() {
            return SocketAddr::new(ip, client.port());
        }
        SocketAddr::new(self.layout.gateway_for(container), port)
    }
}

/// What the stack counts, written out on request (`SIGUSR1`).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Counters {
    /// Frames read from the container.
    pub frames_in: u64,
    /// Frames written to the container.
    pub frames_out: u64,
    /// Frames dropped as malformed.
    pub malformed: u64,
    /// Frames dropped as unsupported (fragments, other EtherTypes).
    pub unsupported: u64,
    /// Flows refused by the policy.
    pub refused: u64,
    /// Flows refused because a table was full.
    pub table_full: u64,
    /// Flows closed for idleness.
    pub expired: u64,
    /// Open TCP flows.
    pub tcp_flows: usize,
    /// Open UDP flows (outgoing and published).
    pub udp_flows: usize,
    /// Open ping flows.
    pub ping_flows: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow: bool) -> Policy {
        let o = Options {
            allow_host_loopback: allow,
            ..Options::default()
        };
        Policy::new(&o, Some("192.0.2.53:53".parse().unwrap()))
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn gateway_is_host_loopback_only_when_allowed() {
        assert_eq!(
            policy(false).outbound(sa("10.0.2.2:80")),
            Err(Refusal::HostLoopback)
        );
        assert_eq!(
            policy(false).outbound(sa("[fd00::2]:80")),
            Err(Refusal::HostLoopback)
        );
        assert_eq!(
            policy(true).outbound(sa("10.0.2.2:80")),
            Ok(sa("127.0.0.1:80"))
        );
        assert_eq!(
            policy(true).outbound(sa("[fd00::2]:80")),
            Ok(sa("[::1]:80"))
        );
    }

    #[test]
    fn resolver_forwards_dns_only_and_the_rest_goes_as_addressed() {
        let p = policy(false);
        assert_eq!(p.outbound(sa("10.0.2.3:53")), Ok(sa("192.0.2.53:53")));
        assert_eq!(p.outbound(sa("10.0.2.3:80")), Err(Refusal::NotDns));
        let none = Policy::new(&Options::default(), None);
        assert_eq!(none.outbound(sa("10.0.2.3:53")), Err(Refusal::NoResolver));
        for bad in [
            "127.0.0.1:80",
            "10.0.2.77:80",
            "0.0.0.0:80",
            "224.0.0.1:5353",
            "255.255.255.255:67",
            "[::1]:80",
            "[fd00::9]:80",
            "1.2.3.4:0",
        ] {
            assert_eq!(p.outbound(sa(bad)), Err(Refusal::NotRoutable), "{bad}");
        }
        for bad in [
            "[::ffff:127.0.0.1]:80",
            "[::ffff:0.0.0.0]:80",
            "[::ffff:224.0.0.251]:5353",
            "[::127.0.0.1]:80",
            "[::ffff:192.0.2.10]:443",
            "0.1.2.3:80",
        ] {
            assert_eq!(p.outbound(sa(bad)), Err(Refusal::NotRoutable), "{bad}");
        }
        let v4_only = Policy::new(
            &Options {
                enable_ipv6: false,
                ..Options::default()
            },
            None,
        );
        assert_eq!(
            v4_only.outbound(sa("[2001:db8::1]:443")),
            Err(Refusal::NotRoutable)
        );
        assert_eq!(p.outbound(sa("192.0.2.10:443")), Ok(sa("192.0.2.10:443")));
        assert_eq!(
            p.outbound(sa("[2001:db8::1]:443")),
            Ok(sa("[2001:db8::1]:443"))
        );
    }

    #[test]
    fn published_sources_are_preserved_on_request_except_loopback() {
        let p = policy(false);
        let c4: IpAddr = "10.0.2.100".parse().unwrap();
        let c6: IpAddr = "fd00::100".parse().unwrap();
        assert_eq!(
            p.inbound_source(sa("192.0.2.7:5555"), c4, true, 40000),
            sa("192.0.2.7:5555")
        );
        assert_eq!(
            p.inbound_source(sa("192.0.2.7:5555"), c4, false, 40000),
            sa("10.0.2.2:40000")
        );
        assert_eq!(
            p.inbound_source(sa("127.0.0.1:5555"), c4, true, 40000),
            sa("10.0.2.2:40000")
        );
        assert_eq!(
            p.inbound_source(sa("[::1]:5555"), c6, true, 40000),
            sa("[fd00::2]:40000")
        );
        assert_eq!(
            p.inbound_source(sa("[::ffff:192.0.2.7]:5555"), c4, true, 1),
            sa("192.0.2.7:5555")
        );
        assert_eq!(
            p.inbound_source(sa("[2001:db8::7]:5555"), c4, true, 1),
            sa("10.0.2.2:1")
        );
    }

    #[test]
    fn outbound_sockets_bind_the_chosen_host_address() {
        let o = Options {
            outbound_addr: Some(Ipv4Addr::new(192, 0, 2, 1)),
            ..Options::default()
        };
        let p = Policy::new(&o, None);
        assert_eq!(p.bind_for(&sa("1.1.1.1:1")), sa("192.0.2.1:0"));
        assert_eq!(p.bind_for(&sa("[2001:db8::1]:1")), sa("[::]:0"));
    }
}
