//! The typed netlink operations drivers plan and [`Netlink`](super::Netlink) implementations
//! apply. Plain data: a plan can be printed, compared in tests and stored.

use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::types::{IpvlanMode, MacAddr, MacvlanMode, NsRef, in_netns};

/// An IP address family, for routes that name no gateway to take it from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IpFamily {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl IpFamily {
    /// The family of `ip`.
    pub fn of(ip: &IpAddr) -> IpFamily {
        if ip.is_ipv4() {
            IpFamily::V4
        } else {
            IpFamily::V6
        }
    }
}

/// Where a default route sends traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteVia {
    /// Through a gateway on the link's subnet (bridge, macvlan, ipvlan l2).
    Gateway(IpAddr),
    /// Straight out of the device with no next hop (ipvlan l3, where the parent routes).
    Device(IpFamily),
}

/// One netlink operation. Names are interface names inside the operation's namespace; indexes
/// are looked up when the operation is applied, inside the right namespace, so a plan never
/// depends on live state.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum LinkOp {
    /// Create a Linux bridge in the host namespace, left down.
    CreateBridge {
        /// Bridge name (`berth0`, `br-1a2b3c4d5e6f`).
        name: String,
        /// MTU to set at creation; the kernel default (1500) otherwise.
        mtu: Option<u32>,
    },
    /// Create a veth pair whose host end is a port of `master` and whose peer is created
    /// directly inside `peer_ns` under its final name, with its MAC and MTU: no temporary name
    /// ever exists in the host namespace, so two containers starting at once cannot collide.
    CreateVeth {
        /// Host-side name (`veth1a2b3c4`).
        host_name: String,
        /// Bridge the host side is attached to.
        master: String,
        /// MTU of both ends.
        mtu: Option<u32>,
        /// Container namespace file the peer is created in.
        peer_ns: PathBuf,
        /// Peer name inside the container (`eth0`).
        peer_name: String,
        /// Peer MAC; kernel-random when absent.
        peer_mac: Option<MacAddr>,
    },
    /// Create a macvlan on host link `parent`, directly inside `ns` under its final name.
    CreateMacvlan {
        /// Host link the macvlan sits on.
        parent: String,
        /// Container namespace file.
        ns: PathBuf,
        /// Name inside the container.
        name: String,
        /// Macvlan mode.
        mode: MacvlanMode,
        /// MAC; kernel-random when absent.
        mac: Option<MacAddr>,
        /// MTU (at most the parent's).
        mtu: Option<u32>,
    },
    /// Create an ipvlan on host link `parent`, directly inside `ns` under its final name.
    /// Ipvlan endpoints share the parent's MAC, so there is none to set.
    CreateIpvlan {
        /// Host link the ipvlan sits on.
        parent: String,
        /// Container namespace file.
        ns: PathBuf,
        /// Name inside the container.
        name: String,
        /// Ipvlan mode.
        mode: IpvlanMode,
        /// MTU (at most the parent's).
        mtu: Option<u32>,
    },
    /// Add an address (with its prefix) to a link.
    AddAddress {
        /// Namespace of the link.
        ns: NsRef,
        /// Link name.
        link: String,
        /// Address and prefix length, e.g. 172.17.0.2/16.
        addr: IpNet,
        /// Skip IPv6 duplicate address detection: addresses come from IPAM and are unique, and
        /// DAD would leave the address unusable ("tentative") for a second or more.
        nodad: bool,
    },
    /// Bring a link up.
    SetUp {
        /// Namespace of the link.
        ns: NsRef,
        /// Link name.
        link: String,
    },
    /// Turn hairpin mode on a bridge port (host namespace) on or off, so a container can reach
    /// itself through a published port (the packet leaves and re-enters the same port).
    SetHairpin {
        /// Bridge port (host-side veth) name.
        link: String,
        /// Hairpin on or off.
        on: bool,
    },
    /// Add a default route in the main table.
    AddDefaultRoute {
        /// Namespace of the link.
        ns: NsRef,
        /// Output link.
        link: String,
        /// Gateway or device route.
        via: RouteVia,
    },
    /// Delete a link. Already gone (or its namespace already gone) is success, so teardown is
    /// idempotent. Deleting either end of a veth pair deletes both.
    DeleteLink {
        /// Namespace of the link.
        ns: NsRef,
        /// Link name.
        name: String,
    },
}

impl LinkOp {
    /// The namespace the link this operation names lives in (for veth: the host end).
    pub fn ns(&self) -> NsRef {
        match self {
            LinkOp::CreateBridge { .. } | LinkOp::CreateVeth { .. } | LinkOp::SetHairpin { .. } => {
                NsRef::Host
            }
            LinkOp::CreateMacvlan { ns, .. } | LinkOp::CreateIpvlan { ns, .. } => {
                NsRef::Path(ns.clone())
            }
            LinkOp::AddAddress { ns, .. }
            | LinkOp::SetUp { ns, .. }
            | LinkOp::AddDefaultRoute { ns, .. }
            | LinkOp::DeleteLink { ns, .. } => ns.clone(),
        }
    }

    /// The name of the link this operation acts on (for veth: the host end).
    pub fn link(&self) -> &str {
        match self {
            LinkOp::CreateBridge { name, .. }
            | LinkOp::CreateMacvlan { name, .. }
            | LinkOp::CreateIpvlan { name, .. }
            | LinkOp::DeleteLink { name, .. } => name,
            LinkOp::CreateVeth { host_name, .. } => host_name,
            LinkOp::AddAddress { link, .. }
            | LinkOp::SetUp { link, .. }
            | LinkOp::SetHairpin { link, .. }
            | LinkOp::AddDefaultRoute { link, .. } => link,
        }
    }

    /// What the operation does, naming its link and namespace, as it reads after "failed to".
    pub fn describe(&self) -> String {
        let ns = self.ns();
        let at = ns.suffix();
        match self {
            LinkOp::CreateBridge { name, .. } => format!("create bridge {name}"),
            LinkOp::CreateVeth {
                host_name,
                master,
                peer_ns,
                peer_name,
                ..
            } => format!(
                "create veth {host_name} on bridge {master} with peer {peer_name}{}",
                in_netns(peer_ns)
            ),
            LinkOp::CreateMacvlan { parent, name, .. } => {
                format!("create macvlan link {name} on {parent}{at}")
            }
            LinkOp::CreateIpvlan { parent, name, .. } => {
                format!("create ipvlan link {name} on {parent}{at}")
            }
            LinkOp::AddAddress { link, addr, .. } => format!("add address {addr} to {link}{at}"),
            LinkOp::SetUp { link, .. } => format!("set {link} up{at}"),
            LinkOp::SetHairpin { link, on } => {
                let state = if *on { "on" } else { "off" };
                format!("turn hairpin {state} on bridge port {link}")
            }
            LinkOp::AddDefaultRoute { link, via, .. } => match via {
                RouteVia::Gateway(gw) => format!("add default route via {gw} on {link}{at}"),
                RouteVia::Device(IpFamily::V4) => format!("add IPv4 default route on {link}{at}"),
                RouteVia::Device(IpFamily::V6) => format!("add IPv6 default route on {link}{at}"),
            },
            LinkOp::DeleteLink { name, .. } => format!("delete link {name}{at}"),
        }
    }

    /// The operation that removes what this one created, for rolling back a half-applied plan:
    /// only link creations have one (addresses and routes go with their link; state set on a
    /// link that existed before is left alone).
    pub fn undo(&self) -> Option<LinkOp> {
        match self {
            LinkOp::CreateBridge { .. }
            | LinkOp::CreateVeth { .. }
            | LinkOp::CreateMacvlan { .. }
            | LinkOp::CreateIpvlan { .. } => Some(LinkOp::DeleteLink {
                ns: self.ns(),
                name: self.link().to_string(),
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_name_link_and_namespace() {
        let op = LinkOp::AddAddress {
            ns: NsRef::path("/run/netns/c1"),
            link: "eth0".into(),
            addr: "10.0.0.2/24".parse().unwrap(),
            nodad: false,
        };
        assert_eq!(
            op.describe(),
            "add address 10.0.0.2/24 to eth0 in netns /run/netns/c1"
        );
        let op = LinkOp::CreateBridge {
            name: "berth1".into(),
            mtu: None,
        };
        assert_eq!(op.describe(), "create bridge berth1");
        assert_eq!(
            op.undo(),
            Some(LinkOp::DeleteLink {
                ns: NsRef::Host,
                name: "berth1".into()
            })
        );
    }

    #[test]
    fn undo_of_a_macvlan_deletes_it_in_the_container() {
        let op = LinkOp::CreateMacvlan {
            parent: "eno1".into(),
            ns: "/proc/42/ns/net".into(),
            name: "eth0".into(),
            mode: MacvlanMode::Bridge,
            mac: None,
            mtu: None,
        };
        assert_eq!(
            op.undo(),
            Some(LinkOp::DeleteLink {
                ns: NsRef::path("/proc/42/ns/net"),
                name: "eth0".into()
            })
        );
        assert_eq!(
            LinkOp::SetUp {
                ns: NsRef::Host,
                link: "x".into()
            }
            .undo(),
            None
        );
    }

    #[test]
    fn ops_serialise_as_tagged_data() {
        let op = LinkOp::SetHairpin {
            link: "veth1".into(),
            on: true,
        };
        let json = serde_json::to_string(&op).unwrap();
        assert_eq!(json, r#"{"op":"set_hairpin","link":"veth1","on":true}"#);
        assert_eq!(serde_json::from_str::<LinkOp>(&json).unwrap(), op);
    }
}
