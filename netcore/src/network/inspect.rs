//! `docker network inspect` / `ls` in Docker's JSON shape, filled from the records (pure).

use std::collections::BTreeMap;

use serde::Serialize;

use super::NetworkError;
use super::NetworkManager;
use super::model::{DriverConfig, Network, State};
use crate::firewall::nft::Nft;
use crate::link::Netlink;

/// One entry of `IPAM.Config`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct IpamConfig {
    /// The subnet.
    pub subnet: String,
    /// The dynamic range, when the user gave one.
    #[serde(rename = "IPRange", skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<String>,
    /// The gateway.
    pub gateway: String,
}

/// `IPAM`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct IpamInspect {
    /// Always `default`.
    pub driver: String,
    /// Always empty.
    pub options: BTreeMap<String, String>,
    /// One entry per subnet.
    pub config: Vec<IpamConfig>,
}

/// One entry of `Containers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointInspect {
    /// Container name.
    pub name: String,
    /// Endpoint ID.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// MAC address, empty when none.
    pub mac_address: String,
    /// Address with prefix, empty when none.
    #[serde(rename = "IPv4Address")]
    pub ipv4_address: String,
    /// Address with prefix, empty when none.
    #[serde(rename = "IPv6Address")]
    pub ipv6_address: String,
}

/// `ConfigFrom` of an inspect.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConfigFrom {
    /// The config-only network this one takes its configuration from (none).
    pub network: String,
}

/// `docker network inspect` output for one network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkInspect {
    /// Name.
    pub name: String,
    /// ID.
    pub id: String,
    /// RFC 3339 creation time.
    pub created: String,
    /// Always `local`.
    pub scope: String,
    /// Driver name.
    pub driver: String,
    /// `--ipv6`.
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: bool,
    /// Subnets.
    #[serde(rename = "IPAM")]
    pub ipam: IpamInspect,
    /// `--internal`.
    pub internal: bool,
    /// Always false (no swarm).
    pub attachable: bool,
    /// Always false (no swarm).
    pub ingress: bool,
    /// Always `{"Network": ""}` (no config-only networks).
    pub config_from: ConfigFrom,
    /// Always false (no config-only networks).
    pub config_only: bool,
    /// Attached containers by ID.
    pub containers: BTreeMap<String, EndpointInspect>,
    /// Driver options.
    pub options: BTreeMap<String, String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
}

pub(crate) fn inspect(state: &State, net: &Network) -> NetworkInspect {
    let config = state
        .ipam
        .network(&net.name)
        .map(|i| {
            i.subnets
                .iter()
                .map(|s| IpamConfig {
                    subnet: s.subnet.to_string(),
                    ip_range: (s.ip_range != s.subnet).then(|| s.ip_range.to_string()),
                    gateway: s.gateway.to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    // The options the user gave, nothing more: a client comparing them with its own (compose
    // decides from them whether to recreate a network) must find what it sent. Only the default
    // bridge names its interface, as Docker's names docker0.
    let mut options = net.options.clone();
    if let DriverConfig::Bridge { bridge, .. } = &net.driver
        && net.name == "bridge"
    {
        options
            .entry("com.docker.network.bridge.name".into())
            .or_insert_with(|| bridge.clone());
    }
    NetworkInspect {
        name: net.name.clone(),
        id: net.id.clone(),
        created: berth_common::time::rfc3339(i64::try_from(net.created).unwrap_or(i64::MAX)),
        scope: "local".into(),
        driver: net.driver.name().into(),
        enable_ipv6: net.ipv6,
        ipam: IpamInspect {
            driver: "default".into(),
            options: BTreeMap::new(),
            config,
        },
        internal: net.internal,
        attachable: false,
        ingress: false,
        config_from: ConfigFrom::default(),
        config_only: false,
        containers: state
            .endpoints
            .values()
            .filter(|e| e.network == net.name)
            .map(|e| {
                (
                    e.container.clone(),
                    EndpointInspect {
                        name: e.container_name.clone(),
                        endpoint_id: e.id.clone(),
                        mac_address: e.mac.map(|m| m.to_string()).unwrap_or_else(|| {
                            e.ipv4
                                .and_then(|a| match a.addr() {
                                    std::net::IpAddr::V4(v4) => {
                                        Some(crate::link::MacAddr::from_ipv4(v4).to_string())
                                    }
                                    _ => None,
                                })
                                .unwrap_or_default()
                        }),
                        ipv4_address: e.ipv4.map(|a| a.to_string()).unwrap_or_default(),
                        ipv6_address: e.ipv6.map(|a| a.to_string()).unwrap_or_default(),
                    },
                )
            })
            .collect(),
        options,
        labels: net.labels.clone(),
    }
}

impl State {
    /// `docker network inspect NAME|ID` over these records (a reader of the manager's
    /// [`NetworkManager::watch`] needs no lock).
    pub fn inspect(&self, name_or_id: &str) -> Result<NetworkInspect, NetworkError> {
        let net = self.find(name_or_id)?;
        Ok(inspect(self, net))
    }

    /// `docker network ls` over these records, by name.
    pub fn list(&self) -> Vec<NetworkInspect> {
        self.networks.values().map(|n| inspect(self, n)).collect()
    }
}

impl<L: Netlink, N: Nft> NetworkManager<L, N> {
    /// `docker network inspect NAME|ID`.
    pub fn inspect(&self, name_or_id: &str) -> Result<NetworkInspect, NetworkError> {
        self.state().inspect(name_or_id)
    }

    /// `docker network ls`, by name.
    pub fn list(&self) -> Vec<NetworkInspect> {
        self.state().list()
    }
}

#[cfg(test)]
mod tests {}
