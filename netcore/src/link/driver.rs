//! The network drivers: pure planners turning a network and an endpoint into [`LinkOp`]s. They
//! read nothing live, so every plan is unit-tested without root.

use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::op::{IpFamily, LinkOp, RouteVia};
use super::types::{IpvlanMode, MacAddr, MacvlanMode, NsRef};

/// Plans the links of one network kind. Setup and teardown act on the network, connect and
/// disconnect on one container endpoint; all are pure so the manager can validate and plan every
/// network of a request before touching the kernel.
pub trait LinkDriver: Send + Sync + std::fmt::Debug {
    /// The Docker driver name: "bridge", "macvlan", "ipvlan", "host", "none" or "container".
    fn kind(&self) -> &'static str;
    /// Operations that create the network (bridge: the bridge, its gateway addresses, up).
    fn setup(&self) -> Vec<LinkOp>;
    /// Operations that remove the network; safe to run again.
    fn teardown(&self) -> Vec<LinkOp>;
    /// Operations that give the endpoint's namespace its interface, addresses and routes.
    fn connect(&self, ep: &EndpointLink) -> Vec<LinkOp>;
    /// Operations that remove the endpoint's interface; safe to run again.
    fn disconnect(&self, ep: &EndpointLink) -> Vec<LinkOp>;
}

/// A bridge network (Docker's default driver).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BridgeNet {
    /// Bridge name in the host namespace.
    pub bridge: String,
    /// MTU of the bridge and of endpoints that do not set their own.
    pub mtu: Option<u32>,
    /// Gateway addresses with the subnet prefix (172.17.0.1/16, fd00::1/64), given to the bridge.
    pub gateways: Vec<IpNet>,
}

/// A macvlan network on a host link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MacvlanNet {
    /// Host link the endpoints sit on (`-o parent=`).
    pub parent: String,
    /// Macvlan mode.
    pub mode: MacvlanMode,
}

/// An ipvlan network on a host link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpvlanNet {
    /// Host link the endpoints sit on (`-o parent=`).
    pub parent: String,
    /// Ipvlan mode.
    pub mode: IpvlanMode,
}

/// One container's attachment to one network, with every name chosen by the caller (so a plan
/// is reproducible and the state file can record it before anything is created).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointLink {
    /// The container's network namespace file.
    pub ns: PathBuf,
    /// Interface name inside the container: eth0, eth1, ...
    pub ifname: String,
    /// Host-side veth name (bridge only), e.g. veth1a2b3c4.
    pub host_ifname: String,
    /// The endpoint's MAC; when absent, derived from its first IPv4 address (02:42:a.b.c.d) or
    /// left to the kernel for IPv6-only endpoints.
    pub mac: Option<MacAddr>,
    /// Addresses with the subnet prefix (172.17.0.2/16).
    pub addresses: Vec<IpNet>,
    /// Default routes to add, one per gateway; empty for --internal or non-primary networks.
    pub gateways: Vec<IpAddr>,
    /// Interface MTU; the network's when absent.
    pub mtu: Option<u32>,
}

impl EndpointLink {
    /// The MAC the endpoint gets: the chosen one, else Docker's 02:42 + IPv4 rule.
    pub fn effective_mac(&self) -> Option<MacAddr> {
        self.mac.or_else(|| {
            self.addresses.iter().find_map(|a| match a {
                IpNet::V4(v4) => Some(MacAddr::from_ipv4(v4.addr())),
                IpNet::V6(_) => None,
            })
        })
    }

    fn ns_ref(&self) -> NsRef {
        NsRef::Path(self.ns.clone())
    }

    /// Addresses, up, then default routes, inside the container. IPv6 addresses skip DAD.
    fn configure(&self, via: impl Fn(&IpAddr) -> RouteVia) -> Vec<LinkOp> {
        let ns = self.ns_ref();
        let mut ops: Vec<LinkOp> = self
            .addresses
            .iter()
            .map(|addr| LinkOp::AddAddress {
                ns: ns.clone(),
                link: self.ifname.clone(),
                addr: *addr,
                nodad: matches!(addr, IpNet::V6(_)),
            })
            .collect();
        ops.push(LinkOp::SetUp {
            ns: ns.clone(),
            link: self.ifname.clone(),
        });
        let mut routes: Vec<RouteVia> = Vec::new();
        for gw in &self.gateways {
            let v = via(gw);
            if !routes.contains(&v) {
                routes.push(v);
            }
        }
        ops.extend(routes.into_iter().map(|via| LinkOp::AddDefaultRoute {
            ns: ns.clone(),
            link: self.ifname.clone(),
            via,
        }));
        ops
    }

    /// Deleting the interface inside the container (macvlan, ipvlan).
    fn delete_in_container(&self) -> Vec<LinkOp> {
        vec![LinkOp::DeleteLink {
            ns: self.ns_ref(),
            name: self.ifname.clone(),
        }]
    }
}

/// The bridge driver: one veth pair per endpoint, host end on the bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bridge(pub BridgeNet);

impl LinkDriver for Bridge {
    fn kind(&self) -> &'static str {
        "bridge"
    }

    fn setup(&self) -> Vec<LinkOp> {
        let net = &self.0;
        let mut ops = vec![LinkOp::CreateBridge {
            name: net.bridge.clone(),
            mtu: net.mtu,
        }];
        ops.extend(net.gateways.iter().map(|gw| LinkOp::AddAddress {
            ns: NsRef::Host,
            link: net.bridge.clone(),
            addr: *gw,
            nodad: matches!(gw, IpNet::V6(_)),
        }));
        ops.push(LinkOp::SetUp {
            ns: NsRef::Host,
            link: net.bridge.clone(),
        });
        ops
    }

    fn teardown(&self) -> Vec<LinkOp> {
        vec![LinkOp::DeleteLink {
            ns: NsRef::Host,
            name: self.0.bridge.clone(),
        }]
    }

    fn connect(&self, ep: &EndpointLink) -> Vec<LinkOp> {
        let mut ops = vec![
            LinkOp::CreateVeth {
                host_name: ep.host_ifname.clone(),
                master: self.0.bridge.clone(),
                mtu: ep.mtu.or(self.0.mtu),
                peer_ns: ep.ns.clone(),
                peer_name: ep.ifname.clone(),
                peer_mac: ep.effective_mac(),
            },
            LinkOp::SetHairpin {
                link: ep.host_ifname.clone(),
                on: true,
            },
            LinkOp::SetUp {
                ns: NsRef::Host,
                link: ep.host_ifname.clone(),
            },
        ];
        ops.extend(ep.configure(|gw| RouteVia::Gateway(*gw)));
        ops
    }

    fn disconnect(&self, ep: &EndpointLink) -> Vec<LinkOp> {
        // Deleting the host end removes the peer too, wherever it is.
        vec![LinkOp::DeleteLink {
            ns: NsRef::Host,
            name: ep.host_ifname.clone(),
        }]
    }
}

/// The macvlan driver: the endpoint is a macvlan of the parent, created inside the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Macvlan(pub MacvlanNet);

impl LinkDriver for Macvlan {
    fn kind(&self) -> &'static str {
        "macvlan"
    }

    fn setup(&self) -> Vec<LinkOp> {
        Vec::new()
    }

    fn teardown(&self) -> Vec<LinkOp> {
        Vec::new()
    }

    fn connect(&self, ep: &EndpointLink) -> Vec<LinkOp> {
        let mut ops = vec![LinkOp::CreateMacvlan {
            parent: self.0.parent.clone(),
            ns: ep.ns.clone(),
            name: ep.ifname.clone(),
            mode: self.0.mode,
            mac: ep.effective_mac(),
            mtu: ep.mtu,
        }];
        ops.extend(ep.configure(|gw| RouteVia::Gateway(*gw)));
        ops
    }

    fn disconnect(&self, ep: &EndpointLink) -> Vec<LinkOp> {
        ep.delete_in_container()
    }
}

/// The ipvlan driver: the endpoint is an ipvlan of the parent, created inside the container. In
/// l3 mode the parent routes, so each requested default route goes out of the device instead of
/// via the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipvlan(pub IpvlanNet);

impl LinkDriver for Ipvlan {
    fn kind(&self) -> &'static str {
        "ipvlan"
    }

    fn setup(&self) -> Vec<LinkOp> {
        Vec::new()
    }

    fn teardown(&self) -> Vec<LinkOp> {
        Vec::new()
    }

    fn connect(&self, ep: &EndpointLink) -> Vec<LinkOp> {
        let mut ops = vec![LinkOp::CreateIpvlan {
            parent: self.0.parent.clone(),
            ns: ep.ns.clone(),
            name: ep.ifname.clone(),
            mode: self.0.mode,
            mtu: ep.mtu,
        }];
        let l3 = self.0.mode == IpvlanMode::L3;
        ops.extend(ep.configure(|gw| {
            if l3 {
                RouteVia::Device(IpFamily::of(gw))
            } else {
                RouteVia::Gateway(*gw)
            }
        }));
        ops
    }

    fn disconnect(&self, ep: &EndpointLink) -> Vec<LinkOp> {
        ep.delete_in_container()
    }
}

/// `--network host`: the container shares the host namespace; nothing to create.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostMode;

impl LinkDriver for HostMode {
    fn kind(&self) -> &'static str {
        "host"
    }
    fn setup(&self) -> Vec<LinkOp> {
        Vec::new()
    }
    fn teardown(&self) -> Vec<LinkOp> {
        Vec::new()
    }
    fn connect(&self, _ep: &EndpointLink) -> Vec<LinkOp> {
        Vec::new()
    }
    fn disconnect(&self, _ep: &EndpointLink) -> Vec<LinkOp> {
        Vec::new()
    }
}

/// `--network none`: a namespace with only loopback, which must be up for localhost to work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoneMode;

impl LinkDriver for NoneMode {
    fn kind(&self) -> &'static str {
        "none"
    }
    fn setup(&self) -> Vec<LinkOp> {
        Vec::new()
    }
    fn teardown(&self) -> Vec<LinkOp> {
        Vec::new()
    }
    fn connect(&self, ep: &EndpointLink) -> Vec<LinkOp> {
        vec![LinkOp::SetUp {
            ns: ep.ns_ref(),
            link: "lo".to_string(),
        }]
    }
    fn disconnect(&self, _ep: &EndpointLink) -> Vec<LinkOp> {
        Vec::new()
    }
}

/// `--network container:ID`: the container joins another's namespace, which that one owns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ContainerMode;

impl LinkDriver for ContainerMode {
    fn kind(&self) -> &'static str {
        "container"
    }
    fn setup(&self) -> Vec<LinkOp> {
        Vec::new()
    }
    fn teardown(&self) -> Vec<LinkOp> {
        Vec::new()
    }
    fn connect(&self, _ep: &EndpointLink) -> Vec<LinkOp> {
        Vec::new()
    }
    fn disconnect(&self, _ep: &EndpointLink) -> Vec<LinkOp> {
        Vec::new()
    }
}

#[cfg(test)]
#[path = "driver_tests.rs"]
mod tests;
