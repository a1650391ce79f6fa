//! The rtnetlink messages behind each [`LinkOp`](super::LinkOp), built as data from names,
//! indexes and descriptors already resolved: sending is [`RtNetlink`](super::RtNetlink)'s job, so
//! what goes on the wire is unit-tested here without root.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::RawFd;

use ipnet::IpNet;
use rtnetlink::packet_route::address::{AddressHeaderFlags, AddressMessage};
use rtnetlink::packet_route::link::{
    self as nl, InfoData, InfoKind, InfoVeth, LinkAttribute, LinkMessage,
};
use rtnetlink::packet_route::route::{RouteMessage, RouteScope};
use rtnetlink::{
    AddressMessageBuilder, LinkBridge, LinkBridgePort, LinkIpVlan, LinkMacVlan, LinkMessageBuilder,
    LinkUnspec, LinkVeth, RouteMessageBuilder,
};

use super::op::{IpFamily, RouteVia};
use super::types::{IpvlanMode, MacAddr, MacvlanMode};

/// RTM_NEWLINK for a bridge, left down.
pub fn bridge(name: &str, mtu: Option<u32>) -> LinkMessage {
    with_mtu(LinkMessageBuilder::<LinkBridge>::new(name), mtu).build()
}

/// RTM_NEWLINK for a veth pair: the host end is enslaved to `master_index`; the peer carries
/// IFLA_NET_NS_FD so the kernel creates it inside the container namespace under its final name.
pub fn veth(
    host_name: &str,
    master_index: u32,
    mtu: Option<u32>,
    peer_name: &str,
    peer_mac: Option<MacAddr>,
    peer_ns_fd: RawFd,
) -> LinkMessage {
    let mut peer = LinkMessageBuilder::<LinkUnspec>::new()
        .name(peer_name)
        .append_extra_attribute(LinkAttribute::NetNsFd(peer_ns_fd));
    if let Some(mac) = peer_mac {
        peer = peer.address(mac.0.to_vec());
    }
    let peer = with_mtu(peer, mtu).build();
    let host = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
        .name(host_name)
        .controller(master_index)
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)));
    with_mtu(host, mtu).build()
}

/// RTM_NEWLINK for a macvlan of `parent_index` (a host-namespace index: the request is sent in
/// the host namespace) created inside the namespace of `ns_fd`.
pub fn macvlan(
    name: &str,
    parent_index: u32,
    mode: MacvlanMode,
    mac: Option<MacAddr>,
    mtu: Option<u32>,
    ns_fd: RawFd,
) -> LinkMessage {
    let mode = match mode {
        MacvlanMode::Bridge => nl::MacVlanMode::Bridge,
        MacvlanMode::Private => nl::MacVlanMode::Private,
        MacvlanMode::Vepa => nl::MacVlanMode::Vepa,
        MacvlanMode::Passthru => nl::MacVlanMode::Passthrough,
    };
    let mut b = LinkMacVlan::new(name, parent_index, mode)
        .append_extra_attribute(LinkAttribute::NetNsFd(ns_fd));
    if let Some(mac) = mac {
        b = b.address(mac.0.to_vec());
    }
    with_mtu(b, mtu).build()
}

/// RTM_NEWLINK for an ipvlan of `parent_index` created inside the namespace of `ns_fd`.
pub fn ipvlan(
    name: &str,
    parent_index: u32,
    mode: IpvlanMode,
    mtu: Option<u32>,
    ns_fd: RawFd,
) -> LinkMessage {
    let mode = match mode {
        IpvlanMode::L2 => nl::IpVlanMode::L2,
        IpvlanMode::L3 => nl::IpVlanMode::L3,
    };
    let b = LinkIpVlan::new(name, parent_index, mode)
        .append_extra_attribute(LinkAttribute::NetNsFd(ns_fd));
    with_mtu(b, mtu).build()
}

/// RTM_SETLINK raising the link named `name` (index 0: the kernel finds it by name).
pub fn set_up(name: &str) -> LinkMessage {
    LinkUnspec::new_with_name(name).up().build()
}

/// RTM_NEWLINK (modify) setting IFLA_BRPORT_MODE (hairpin) on the bridge port `index`.
pub fn hairpin(index: u32, on: bool) -> LinkMessage {
    LinkBridgePort::new(index).hairpin(on).build()
}

/// RTM_DELLINK for the link named `name`.
pub fn delete(name: &str) -> LinkMessage {
    LinkUnspec::new_with_name(name).build()
}

/// RTM_NEWADDR for `addr` on link `index`; IFA_F_NODAD when `nodad`.
pub fn address(index: u32, addr: IpNet, nodad: bool) -> AddressMessage {
    let mut msg = match addr {
        IpNet::V4(a) => AddressMessageBuilder::<Ipv4Addr>::new()
            .index(index)
            .address(a.addr(), a.prefix_len())
            .build(),
        IpNet::V6(a) => AddressMessageBuilder::<Ipv6Addr>::new()
            .index(index)
            .address(a.addr(), a.prefix_len())
            .build(),
    };
    if nodad {
        msg.header.flags |= AddressHeaderFlags::Nodad;
    }
    msg
}

/// RTM_NEWROUTE for a default route out of link `index`: via a gateway, or straight out of the
/// device (scope link) when there is none.
pub fn default_route(index: u32, via: RouteVia) -> RouteMessage {
    match via {
        RouteVia::Gateway(IpAddr::V4(gw)) => RouteMessageBuilder::<Ipv4Addr>::new()
            .output_interface(index)
            .gateway(gw)
            .build(),
        RouteVia::Gateway(IpAddr::V6(gw)) => RouteMessageBuilder::<Ipv6Addr>::new()
            .output_interface(index)
            .gateway(gw)
            .build(),
        RouteVia::Device(IpFamily::V4) => RouteMessageBuilder::<Ipv4Addr>::new()
            .output_interface(index)
            .scope(RouteScope::Link)
            .build(),
        RouteVia::Device(IpFamily::V6) => RouteMessageBuilder::<Ipv6Addr>::new()
            .output_interface(index)
            .scope(RouteScope::Link)
            .build(),
    }
}

fn with_mtu<T>(b: LinkMessageBuilder<T>, mtu: Option<u32>) -> LinkMessageBuilder<T> {
    match mtu {
        Some(m) => b.mtu(m),
        None => b,
    }
}

#[cfg(test)]
#[path = "message_tests.rs"]
mod tests;
