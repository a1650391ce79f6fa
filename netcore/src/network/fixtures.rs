//! Networks and endpoints as plain data for tests, fuzz targets and benches (feature `testing`):
//! the records a manager would have written, without a kernel.

use std::collections::BTreeMap;

use super::{DriverConfig, Endpoint, Network};

/// A bridge network named `name` (bridge `br-NAME`), `--internal` or not.
pub fn bridge_network(name: &str, internal: bool) -> Network {
    Network {
        id: format!("{name:0>64}"),
        name: name.into(),
        driver: DriverConfig::Bridge {
            bridge: format!("br-{name}"),
            mtu: None,
            icc: true,
            masquerade: true,
        },
        internal,
        ipv6: false,
        options: BTreeMap::new(),
        labels: BTreeMap::new(),
        created: 0,
    }
}

/// Container `container` (ID and name alike, namespace /run/netns/CONTAINER) on `network` at
/// `v4`/24 and optionally `v6`/64, with `aliases`.
pub fn endpoint(
    container: &str,
    network: &str,
    v4: &str,
    v6: Option<&str>,
    aliases: &[&str],
) -> Endpoint {
    Endpoint {
        id: format!("{container}-{network}"),
        network: network.into(),
        container: container.into(),
        container_name: container.into(),
        ns: Some(format!("/run/netns/{container}").into()),
        ifname: Some("eth0".into()),
        host_ifname: None,
        mac: None,
        ipv4: Some(format!("{v4}/24").parse().expect("an IPv4 address")),
        ipv6: v6.map(|a| format!("{a}/64").parse().expect("an IPv6 address")),
        link_local: Vec::new(),
        gateway: true,
        aliases: aliases.iter().map(|a| a.to_string()).collect(),
        links: Vec::new(),
        dns_servers: Vec::new(),
        published: Vec::new(),
    }
}
