//! berth's networking core: IPAM, the network option parsers, the link drivers (bridge, veth,
//! macvlan, ipvlan, host/none/container), the nftables firewall, the embedded DNS resolver and
//! atomic state files (see netcore/README.md).

pub mod dns;
pub mod firewall;
pub mod ipam;
pub mod link;
pub mod netns;
pub mod network;
pub mod options;
pub mod usernet;
