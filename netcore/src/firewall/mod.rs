//! The nftables firewall (being written).
