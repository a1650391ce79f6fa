//! `POST /networks/create`: Docker's body (`Name`, `Driver`, `Internal`, `EnableIPv6`,
//! `IPAM.Config[]` with `Subnet`/`IPRange`/`Gateway`, `Options`, `Labels`) turned into netcore's
//! create request, with netcore's own validators for addresses. Pure.

use std::collections::BTreeMap;

use netcore::ipam::SubnetRequest;
use netcore::network::CreateRequest;
use netcore::options::{parse_ip, parse_subnet};
use serde::Deserialize;

use super::error::ApiError;

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "PascalCase")]
struct IpamConfig {
    subnet: String,
    #[serde(rename = "IPRange")]
    ip_range: String,
    gateway: String,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "PascalCase")]
struct Ipam {
    driver: String,
    config: Option<Vec<IpamConfig>>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "PascalCase")]
struct NetworkCreate {
    name: String,
    driver: String,
    internal: bool,
    #[serde(rename = "EnableIPv6")]
    enable_ipv6: bool,
    #[serde(rename = "IPAM")]
    ipam: Option<Ipam>,
    options: Option<BTreeMap<String, String>>,
    labels: Option<BTreeMap<String, String>>,
}

fn bad(e: impl std::fmt::Display) -> ApiError {
    ApiError::bad(e.to_string())
}

/// The create request for a body; the error names the bad field and value.
pub fn parse_create(body: &[u8]) -> Result<CreateRequest, ApiError> {
    let req: NetworkCreate = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad(format!("invalid network config: {e}")))?;
    if req.name.is_empty() {
        return Err(ApiError::bad("network create: Name is required"));
    }
    let ipam = req.ipam.unwrap_or_default();
    if !matches!(ipam.driver.as_str(), "" | "default") {
        return Err(ApiError::bad(format!(
            "IPAM driver {:?} is not supported (valid: default)",
            ipam.driver
        )));
    }
    let mut v4 = SubnetRequest::default();
    let mut v6 = None;
    for c in ipam.config.unwrap_or_default() {
        let opt = |s: &str| Some(s.to_string()).filter(|s| !s.is_empty());
        let subnet = opt(&c.subnet)
            .map(|s| parse_subnet("--subnet", &s))
            .transpose()
            .map_err(bad)?;
        let r = SubnetRequest {
            subnet,
            ip_range: opt(&c.ip_range)
                .map(|s| parse_subnet("--ip-range", &s))
                .transpose()
                .map_err(bad)?,
            gateway: opt(&c.gateway)
                .map(|s| parse_ip("--gateway", &s))
                .transpose()
                .map_err(bad)?,
        };
        if matches!(subnet, Some(ipnet::IpNet::V6(_))) {
            v6 = Some(r);
        } else {
            v4 = r;
        }
    }
    if req.enable_ipv6 && v6.is_none() {
        v6 = Some(SubnetRequest::default());
    }
    Ok(CreateRequest {
        name: req.name,
        driver: Some(req.driver).filter(|d| !d.is_empty()),
        ipv4: v4,
        ipv6: v6,
        internal: req.internal,
        options: req.options.unwrap_or_default(),
        labels: req.labels.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_docker_network_create_sends() {
        let r = parse_create(
            br#"{"Name":"app","Driver":"bridge","Internal":true,"EnableIPv6":true,
                 "IPAM":{"Driver":"default","Config":[{"Subnet":"10.9.0.0/24","Gateway":"10.9.0.254"},
                                                       {"Subnet":"fd00:9::/64"}]},
                 "Options":{"com.docker.network.bridge.name":"br-app"},"Labels":{"a":"b"}}"#,
        )
        .unwrap();
        assert_eq!(r.name, "app");
        assert_eq!(r.ipv4.subnet.unwrap().to_string(), "10.9.0.0/24");
        assert_eq!(r.ipv4.gateway.unwrap().to_string(), "10.9.0.254");
        assert_eq!(r.ipv6.unwrap().subnet.unwrap().to_string(), "fd00:9::/64");
        assert!(r.internal && r.labels["a"] == "b");
        let e = parse_create(br#"{"Name":"x","IPAM":{"Config":[{"Subnet":"10.9.0.0/33"}]}}"#)
            .unwrap_err();
        assert!(e.message.contains("10.9.0.0/33"), "{e}");
        assert!(parse_create(br#"{"Driver":"bridge"}"#).is_err());
        assert!(parse_create(br#"{"Name":"x","IPAM":{"Driver":"dhcp"}}"#).is_err());
    }
}
