//! The desired state the firewall is computed from: which bridges exist and how they behave,
//! which endpoints sit on them, and which ports are published. Plain data, built by the network
//! manager from its own records; the ruleset follows from it by pure functions.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use portproxy::spec::Mapping;
use serde::{Deserialize, Serialize};

/// What the firewall must enforce, as a whole.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirewallState {
    /// Bridge networks by bridge interface name (`berth0`, `br-1a2b3c4d5e6f`).
    pub bridges: BTreeMap<String, BridgeRules>,
    /// Host-side veth names of endpoints, with the bridge each one is a port of.
    pub ports: BTreeMap<String, String>,
    /// Published ports, one entry per host port (ranges already expanded).
    pub published: BTreeSet<Mapping>,
    /// The families whose forwarded traffic that is neither to nor from a berth network is
    /// dropped: those whose forwarding berth turned on.
    #[serde(default)]
    pub drop_forwarded: ForwardDrop,
}

/// Per family: whether berth turned forwarding on (it was off), and so drops forwarded traffic
/// that is not its own, as Docker sets the FORWARD policy to DROP only when it enabled
/// forwarding itself. A host that already routed (libvirt, a VPN gateway, another engine) keeps
/// routing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardDrop {
    /// IPv4.
    #[serde(default)]
    pub ipv4: bool,
    /// IPv6.
    #[serde(default)]
    pub ipv6: bool,
}

/// How one bridge network behaves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BridgeRules {
    /// The network's subnets, IPv4 and IPv6.
    pub subnets: Vec<IpNet>,
    /// `--internal`: no traffic leaves the network and none comes in from outside.
    pub internal: bool,
    /// Masquerade traffic that leaves the subnet (Docker's
    /// `com.docker.network.bridge.enable_ip_masquerade`, default true).
    pub masquerade: bool,
    /// Inter-container communication on this bridge (`com.docker.network.bridge.enable_icc`,
    /// default true); false drops IP traffic between its containers.
    pub icc: bool,
}

impl Default for BridgeRules {
    fn default() -> Self {
        BridgeRules {
            subnets: Vec::new(),
            internal: false,
            masquerade: true,
            icc: true,
        }
    }
}

/// Whether a published mapping is served by DNAT, and into which of the four port maps.
///
/// Host addresses on loopback are left to portproxy (see docs/architecture.md: no
/// route_localnet), as are mappings whose host and container families differ (DNAT cannot
/// translate between IPv4 and IPv6) and mappings whose host port is still unknown (port 0).
pub(crate) fn dnat_target(m: &Mapping) -> Option<DnatKey> {
    let host_ip = m.host.ip();
    if m.host.port() == 0 || host_ip.is_loopback() || m.container.ip().is_unspecified() {
        return None;
    }
    let v6 = match (host_ip, m.container.ip()) {
        (IpAddr::V4(_), IpAddr::V4(_)) => false,
        (IpAddr::V6(_), IpAddr::V6(_)) => true,
        _ => return None,
    };
    Some(DnatKey {
        v6,
        any: host_ip.is_unspecified(),
    })
}

/// Which port map a DNAT mapping lands in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DnatKey {
    pub v6: bool,
    pub any: bool,
}
