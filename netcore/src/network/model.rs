//! The network manager's records: networks, endpoints, and the requests that create them.
//! Plain serde data; the whole [`State`] is one JSON file so a restart finds everything again.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use ipnet::IpNet;
use portproxy::spec::{Mapping, PortSpec};
use serde::{Deserialize, Serialize};

use crate::ipam::{Ipam, SubnetRequest};
use crate::link::{IpvlanMode, MacAddr, MacvlanMode};

/// The bridge interface of the default `bridge` network.
pub const DEFAULT_BRIDGE: &str = "berth0";

/// How a network's endpoints are wired, with its driver options already validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "driver", rename_all = "lowercase")]
pub enum DriverConfig {
    /// A Linux bridge with one veth pair per endpoint.
    Bridge {
        /// Bridge interface name.
        bridge: String,
        /// MTU of the bridge and its endpoints.
        mtu: Option<u32>,
        /// Inter-container communication allowed.
        icc: bool,
        /// Outgoing traffic masqueraded.
        masquerade: bool,
    },
    /// Macvlan endpoints on a host link.
    Macvlan {
        /// The host link.
        parent: String,
        /// The macvlan mode.
        mode: MacvlanMode,
        /// Endpoint MTU.
        mtu: Option<u32>,
    },
    /// Ipvlan endpoints on a host link.
    Ipvlan {
        /// The host link.
        parent: String,
        /// The ipvlan mode.
        mode: IpvlanMode,
        /// Endpoint MTU.
        mtu: Option<u32>,
    },
    /// The host's own namespace (the predefined `host` network).
    Host,
    /// Loopback only (the predefined `none` network; Docker calls the driver `null`).
    Null,
}

impl DriverConfig {
    /// The driver name Docker shows.
    pub fn name(&self) -> &'static str {
        match self {
            DriverConfig::Bridge { .. } => "bridge",
            DriverConfig::Macvlan { .. } => "macvlan",
            DriverConfig::Ipvlan { .. } => "ipvlan",
            DriverConfig::Host => "host",
            DriverConfig::Null => "null",
        }
    }

    /// Whether endpoints get addresses from IPAM.
    pub fn has_ipam(&self) -> bool {
        !matches!(self, DriverConfig::Host | DriverConfig::Null)
    }
}

/// A network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    /// 64 hex digits.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Driver and its validated options.
    pub driver: DriverConfig,
    /// `--internal`: no route out, nothing in from outside.
    pub internal: bool,
    /// `--ipv6`.
    pub ipv6: bool,
    /// The driver options as the user gave them (`-o`), shown by inspect.
    pub options: BTreeMap<String, String>,
    /// `--label`s.
    pub labels: BTreeMap<String, String>,
    /// Creation time, seconds since the epoch.
    pub created: u64,
}

/// One container's attachment to one network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// 64 hex digits.
    pub id: String,
    /// The network's name.
    pub network: String,
    /// The container's ID.
    pub container: String,
    /// The container's name.
    pub container_name: String,
    /// The container's network namespace file (none for `host`).
    pub ns: Option<PathBuf>,
    /// Interface inside the container (eth0, eth1, ...), when it has one.
    pub ifname: Option<String>,
    /// Host-side veth (bridge networks).
    pub host_ifname: Option<String>,
    /// The interface's MAC.
    pub mac: Option<MacAddr>,
    /// IPv4 address with the subnet prefix.
    pub ipv4: Option<IpNet>,
    /// IPv6 address with the subnet prefix.
    pub ipv6: Option<IpNet>,
    /// `--link-local-ip` addresses with their prefix.
    #[serde(default)]
    pub link_local: Vec<IpNet>,
    /// Whether the container's default route goes through this endpoint.
    pub gateway: bool,
    /// `--network-alias` names.
    pub aliases: Vec<String>,
    /// `--link` aliases this container resolves.
    #[serde(default)]
    pub links: Vec<ContainerLink>,
    /// `--dns`: where the embedded resolver forwards this container's outside names.
    #[serde(default)]
    pub dns_servers: Vec<SocketAddr>,
    /// Published ports, one per host port, as the firewall serves them.
    pub published: Vec<Mapping>,
}

/// `--link container:alias`: on user-defined networks, the linking container resolves `alias`
/// to `container`'s addresses on the networks they share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerLink {
    /// The linked container's name.
    pub container: String,
    /// The name it is known by to the linking container.
    pub alias: String,
}

impl std::str::FromStr for ContainerLink {
    type Err = String;

    /// Parses `name` or `name:alias`, as `docker run --link`; also the form inspect shows
    /// (`/db:/web/alias`, the alias being the last part), as Docker's parser takes it back.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (container, alias) = s.split_once(':').unwrap_or((s, s));
        let alias = if container.starts_with('/') {
            alias.rsplit('/').next().unwrap_or(alias)
        } else {
            alias
        };
        let container = container.trim_start_matches('/');
        if container.is_empty() || alias.is_empty() || alias.contains(':') {
            return Err(format!("invalid --link {s:?}: expected NAME or NAME:ALIAS"));
        }
        Ok(ContainerLink {
            container: container.to_string(),
            alias: alias.to_string(),
        })
    }
}

/// `docker network create`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateRequest {
    /// The name.
    pub name: String,
    /// `--driver`; bridge when absent.
    pub driver: Option<String>,
    /// `--subnet`/`--ip-range`/`--gateway` for IPv4.
    pub ipv4: SubnetRequest,
    /// The same for IPv6 (`--ipv6` with an IPv6 `--subnet`).
    pub ipv6: Option<SubnetRequest>,
    /// `--internal`.
    pub internal: bool,
    /// `-o key=value`.
    pub options: BTreeMap<String, String>,
    /// `--label key=value`.
    pub labels: BTreeMap<String, String>,
}

/// Attaching a container (`docker run --network`, `docker network connect`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachRequest {
    /// The container's ID.
    pub container: String,
    /// The container's name (DNS and inspect show it).
    pub container_name: String,
    /// Its network namespace file (`/proc/PID/ns/net` or a bind mount of it).
    pub ns: Option<PathBuf>,
    /// `--network-alias`.
    pub aliases: Vec<String>,
    /// `--link`.
    pub links: Vec<ContainerLink>,
    /// `--dns` servers (port 53 unless given).
    pub dns_servers: Vec<SocketAddr>,
    /// `--ip`.
    pub ipv4: Option<IpAddr>,
    /// `--ip6`.
    pub ipv6: Option<IpAddr>,
    /// `--mac-address`.
    pub mac: Option<MacAddr>,
    /// `--link-local-ip`: more addresses on the interface (IPv4 /16, IPv6 /64, as Docker).
    #[serde(default)]
    pub link_local: Vec<IpAddr>,
    /// `-p` specifications; those with a host port are DNATed, see
    /// [`super::NetworkManager::set_published`] for kernel-chosen ports.
    pub ports: Vec<PortSpec>,
}

/// Everything the manager persists.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Address management.
    pub ipam: Ipam,
    /// Networks by name.
    pub networks: BTreeMap<String, Network>,
    /// Endpoints by ID.
    pub endpoints: BTreeMap<String, Endpoint>,
    /// The forwarding berth turned on (it was off when berth first needed it), per family:
    /// only those families' forwarded traffic that is not berth's is dropped. Kept, so a
    /// restart (which finds forwarding on) keeps the drop, as the FORWARD policy Docker set
    /// outlives dockerd.
    #[serde(default)]
    pub forwarding: crate::firewall::ForwardDrop,
}

impl State {
    /// Finds a network by name, full ID or unique ID prefix.
    pub fn find(&self, name_or_id: &str) -> Result<&Network, super::NetworkError> {
        if let Some(n) = self.networks.get(name_or_id) {
            return Ok(n);
        }
        let mut hits = self
            .networks
            .values()
            .filter(|n| !name_or_id.is_empty() && n.id.starts_with(name_or_id));
        match (hits.next(), hits.next()) {
            (Some(n), None) => Ok(n),
            (Some(_), Some(_)) => Err(super::NetworkError::Invalid(format!(
                "network ID prefix {name_or_id:?} is ambiguous: give more digits"
            ))),
            _ => Err(super::NetworkError::NoSuchNetwork(name_or_id.to_string())),
        }
    }
}

#[cfg(test)]
mod link_tests {
    use super::ContainerLink;

    #[test]
    fn links_parse_as_given_and_as_inspect_shows_them() {
        let l = |s: &str| s.parse::<ContainerLink>().map(|l| (l.container, l.alias));
        let pair = |c: &str, a: &str| Ok((c.to_string(), a.to_string()));
        assert_eq!(l("db"), pair("db", "db"));
        assert_eq!(l("db:d"), pair("db", "d"));
        assert_eq!(l("/db"), pair("db", "db"));
        assert_eq!(l("/db:/web/d"), pair("db", "d"));
        for bad in ["", ":d", "db:", "db:a:b", "/db:/web/"] {
            assert!(l(bad).is_err(), "{bad}");
        }
    }
}
