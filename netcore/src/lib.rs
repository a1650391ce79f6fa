//! berth's networking core. Built so far: IPAM, the network option parsers and atomic state
//! files; links, the nftables firewall and DNS follow (see netcore/README.md).

pub mod ipam;
pub mod options;
pub mod persist;
