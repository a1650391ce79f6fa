//! berth's networking core: IPAM, the network option parsers, the link drivers (bridge, veth,
//! macvlan, ipvlan, host/none/container), the nftables firewall and atomic state files; DNS
//! follows (see netcore/README.md).

pub mod firewall;
pub mod ipam;
pub mod link;
pub mod network;
pub mod options;
pub mod persist;
