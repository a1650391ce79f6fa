//! IP address management: which subnet each network gets and which address each endpoint gets.
//!
//! Plain data and pure functions (no I/O): the state serialises to JSON so the caller persists it
//! (see [`crate::persist`]) and allocations survive a restart. Follows Docker's rules: the default
//! `bridge` network is 172.17.0.0/16; user networks without `--subnet` take the next free default
//! pool (172.18.0.0/16 ... 172.31.0.0/16, then 192.168.0.0/20 blocks); `--ip-range` limits dynamic
//! allocation inside the subnet; the gateway defaults to the subnet's first address; addresses are
//! handed out sequentially after the last one given, wrapping around.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net};
use serde::{Deserialize, Serialize};

/// Why an IPAM request was refused; each names the values involved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpamError {
    /// The subnet overlaps one that another network uses.
    #[error("subnet {subnet} overlaps {other_subnet} of network {other_network:?}")]
    Overlap {
        /// The requested subnet.
        subnet: IpNet,
        /// The network already using an overlapping subnet.
        other_network: String,
        /// Its subnet.
        other_subnet: IpNet,
    },
    /// `--gateway` is not inside `--subnet`.
    #[error("gateway {gateway} is outside subnet {subnet}")]
    GatewayOutside {
        /// The gateway.
        gateway: IpAddr,
        /// The subnet.
        subnet: IpNet,
    },
    /// `--ip-range` is not inside `--subnet`.
    #[error("ip-range {range} is not inside subnet {subnet}")]
    RangeOutside {
        /// The range.
        range: IpNet,
        /// The subnet.
        subnet: IpNet,
    },
    /// An option was given without the subnet it refers to, or for the wrong address family.
    #[error("{0}")]
    Invalid(String),
    /// Every default pool overlaps an existing network.
    #[error(
        "all default address pools (172.17-31.0.0/16, 192.168.0.0/20 blocks) are in use; pass --subnet"
    )]
    NoFreePool,
    /// A network of that name exists already.
    #[error("network {0:?} already exists")]
    NetworkExists(String),
    /// No network of that name.
    #[error("network {0:?} not found")]
    NoSuchNetwork(String),
    /// No address left in the range.
    #[error("no free address left in {range} of network {network:?}")]
    Exhausted {
        /// The network.
        network: String,
        /// The range addresses are given from.
        range: IpNet,
    },
    /// A static address that cannot be given.
    #[error("address {ip} cannot be assigned on network {network:?}: {reason}")]
    Address {
        /// The address asked for.
        ip: IpAddr,
        /// The network.
        network: String,
        /// Why not.
        reason: &'static str,
    },
}

/// What a user asks for one address family of a network (`--subnet`, `--ip-range`, `--gateway`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubnetRequest {
    /// The subnet; `None` takes the next free default pool (IPv4 only).
    pub subnet: Option<IpNet>,
    /// Where dynamic addresses come from; the whole subnet when `None`.
    pub ip_range: Option<IpNet>,
    /// The gateway; the subnet's first address when `None`.
    pub gateway: Option<IpAddr>,
}

/// One subnet of a network with its allocations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subnet {
    /// The subnet.
    pub subnet: IpNet,
    /// Where dynamic addresses come from (inside `subnet`).
    pub ip_range: IpNet,
    /// The gateway (inside `subnet`, never handed out).
    pub gateway: IpAddr,
    /// Whether the user chose the subnet (static addresses need that, as in Docker).
    pub user_configured: bool,
    allocated: BTreeSet<IpAddr>,
    last: Option<IpAddr>,
}

/// The subnets of one network: IPv4 first, then IPv6 when enabled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkIpam {
    /// Its subnets.
    pub subnets: Vec<Subnet>,
}

/// The addresses given to one endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    /// Its IPv4 address.
    pub v4: Option<IpAddr>,
    /// Its IPv6 address, on IPv6-enabled networks.
    pub v6: Option<IpAddr>,
}

/// Docker's default address pools, in the order they are handed out.
pub fn default_pools() -> Vec<IpNet> {
    let mut pools: Vec<IpNet> = (17..=31u8)
        .map(|b| IpNet::V4(Ipv4Net::new(Ipv4Addr::new(172, b, 0, 0), 16).expect("valid prefix")))
        .collect();
    pools.extend((0..16u8).map(|k| {
        IpNet::V4(Ipv4Net::new(Ipv4Addr::new(192, 168, k * 16, 0), 20).expect("valid prefix"))
    }));
    pools
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn from_u128(v: u128, v4: bool) -> IpAddr {
    if v4 {
        IpAddr::V4(Ipv4Addr::from(v as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(v))
    }
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

impl Subnet {
    fn new(req: &SubnetRequest, subnet: IpNet, user_configured: bool) -> Result<Subnet, IpamError> {
        let gateway = match req.gateway {
            Some(g) if !subnet.contains(&g) => {
                return Err(IpamError::GatewayOutside { gateway: g, subnet });
            }
            Some(g) => g,
            None => from_u128(to_u128(subnet.network()) + 1, subnet.addr().is_ipv4()),
        };
        let ip_range = match req.ip_range {
            Some(r) if !(subnet.contains(&r.network()) && subnet.contains(&r.broadcast())) => {
                return Err(IpamError::RangeOutside { range: r, subnet });
            }
            Some(r) => r,
            None => subnet,
        };
        if subnet.prefix_len() >= subnet.max_prefix_len() - 1 {
            return Err(IpamError::Invalid(format!(
                "subnet {subnet} is too small: it needs room for a gateway and an endpoint"
            )));
        }
        Ok(Subnet {
            subnet,
            ip_range,
            gateway,
            user_configured,
            allocated: BTreeSet::new(),
            last: None,
        })
    }

    /// Addresses never handed out: the network address, the IPv4 broadcast and the gateway.
    fn reserved(&self, ip: IpAddr) -> bool {
        ip == self.subnet.network()
            || (ip.is_ipv4() && ip == self.subnet.broadcast())
            || ip == self.gateway
    }

    fn is_free(&self, ip: IpAddr) -> bool {
        !self.reserved(ip) && !self.allocated.contains(&ip)
    }

    /// The next free address of the range after the last one given, wrapping around.
    fn next(&mut self, network: &str) -> Result<IpAddr, IpamError> {
        let v4 = self.subnet.addr().is_ipv4();
        let (lo, hi) = (
            to_u128(self.ip_range.network()),
            to_u128(self.ip_range.broadcast()),
        );
        let start = self
            .last
            .map(to_u128)
            .filter(|l| (lo..hi).contains(l))
            .map_or(lo, |l| l + 1);
        // At most |allocated| + 3 addresses of the range are taken, so that many steps from any
        // start find a free one if there is one: never a walk over a whole /64. The size
        // saturates for ::/0, whose 2^128 addresses do not fit a u128.
        let size = (hi - lo).saturating_add(1);
        let steps = (self.allocated.len() as u128 + 4).min(size);
        for i in 0..steps {
            let cand = lo + (start - lo).wrapping_add(i) % size;
            let ip = from_u128(cand, v4);
            if self.is_free(ip) {
                self.allocated.insert(ip);
                self.last = Some(ip);
                return Ok(ip);
            }
        }
        Err(IpamError::Exhausted {
            network: network.to_string(),
            range: self.ip_range,
        })
    }

    fn take(&mut self, ip: IpAddr, network: &str) -> Result<IpAddr, IpamError> {
        let bad = |reason| IpamError::Address {
            ip,
            network: network.to_string(),
            reason,
        };
        if !self.user_configured {
            return Err(bad(
                "a static address needs a network created with --subnet",
            ));
        }
        if !self.subnet.contains(&ip) {
            return Err(bad("it is outside the network's subnet"));
        }
        if self.reserved(ip) {
            return Err(bad("it is the network, broadcast or gateway address"));
        }
        if !self.allocated.insert(ip) {
            return Err(bad("it is already in use"));
        }
        Ok(ip)
    }
}

/// Every network's subnets and allocations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ipam {
    networks: BTreeMap<String, NetworkIpam>,
}

impl Ipam {
    /// A state holding only the default `bridge` network (172.17.0.0/16, gateway 172.17.0.1).
    pub fn with_default_bridge() -> Ipam {
        let mut ipam = Ipam::default();
        let bridge = SubnetRequest {
            subnet: Some(default_pools()[0]),
            ..SubnetRequest::default()
        };
        ipam.create("bridge", &bridge, None)
            .expect("an empty state has room for the default bridge");
        // The default bridge takes no static addresses, as in Docker.
        if let Some(n) = ipam.networks.get_mut("bridge") {
            n.subnets[0].user_configured = false;
        }
        ipam
    }

    /// The network's subnets, if it exists.
    pub fn network(&self, name: &str) -> Option<&NetworkIpam> {
        self.networks.get(name)
    }

    fn check_overlap(&self, subnet: &IpNet) -> Result<(), IpamError> {
        for (name, n) in &self.networks {
            if let Some(s) = n.subnets.iter().find(|s| overlaps(&s.subnet, subnet)) {
                return Err(IpamError::Overlap {
                    subnet: *subnet,
                    other_network: name.clone(),
                    other_subnet: s.subnet,
                });
            }
        }
        Ok(())
    }

    /// Creates the address plan of network `name`: IPv4 from `v4` (the next free default pool
    /// without `--subnet`) and IPv6 from `v6` when given (IPv6 needs its `--subnet`).
    pub fn create(
        &mut self,
        name: &str,
        v4: &SubnetRequest,
        v6: Option<&SubnetRequest>,
    ) -> Result<&NetworkIpam, IpamError> {
        self.create_avoiding(name, v4, v6, &[])
    }

    /// [`Ipam::create`], a default pool overlapping one of `avoid` (the host's routes) never
    /// chosen, as Docker chooses them. A subnet the user gives is taken as given.
    pub fn create_avoiding(
        &mut self,
        name: &str,
        v4: &SubnetRequest,
        v6: Option<&SubnetRequest>,
        avoid: &[IpNet],
    ) -> Result<&NetworkIpam, IpamError> {
        if self.networks.contains_key(name) {
            return Err(IpamError::NetworkExists(name.to_string()));
        }
        let (v4_net, user) = match v4.subnet {
            Some(IpNet::V6(n)) => {
                return Err(IpamError::Invalid(format!(
                    "--subnet {n} is IPv6; pass it with --ipv6"
                )));
            }
            Some(n) => (n, true),
            None if v4.ip_range.is_some() || v4.gateway.is_some() => {
                return Err(IpamError::Invalid(
                    "--ip-range and --gateway need --subnet".to_string(),
                ));
            }
            None => (
                default_pools()
                    .into_iter()
                    .find(|p| {
                        self.check_overlap(p).is_ok() && !avoid.iter().any(|a| overlaps(p, a))
                    })
                    .ok_or(IpamError::NoFreePool)?,
                false,
            ),
        };
        self.check_overlap(&v4_net)?;
        let mut subnets = vec![Subnet::new(v4, v4_net, user)?];
        if let Some(v6) = v6 {
            let net = match v6.subnet {
                Some(n @ IpNet::V6(_)) => n,
                Some(n) => {
                    return Err(IpamError::Invalid(format!(
                        "IPv6 subnet {n} is not an IPv6 subnet"
                    )));
                }
                None => {
                    return Err(IpamError::Invalid(
                        "--ipv6 needs --subnet with an IPv6 subnet, e.g. fd00:1::/64".to_string(),
                    ));
                }
            };
            self.check_overlap(&net)?;
            subnets.push(Subnet::new(v6, net, true)?);
        }
        self.networks
            .insert(name.to_string(), NetworkIpam { subnets });
        Ok(&self.networks[name])
    }

    /// Forgets a network and all its allocations.
    pub fn remove(&mut self, name: &str) -> Result<(), IpamError> {
        self.networks
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| IpamError::NoSuchNetwork(name.to_string()))
    }

    /// Gives an endpoint its addresses: the static ones asked for, or the next free ones. All or
    /// nothing: on error nothing stays allocated.
    pub fn allocate(
        &mut self,
        network: &str,
        static_v4: Option<IpAddr>,
        static_v6: Option<IpAddr>,
    ) -> Result<Allocation, IpamError> {
        let n = self
            .networks
            .get_mut(network)
            .ok_or_else(|| IpamError::NoSuchNetwork(network.to_string()))?;
        for (ip, v4, reason) in [
            (static_v4, true, "the network has no IPv4 subnet"),
            (static_v6, false, "the network has no IPv6 subnet"),
        ] {
            let has_family = n.subnets.iter().any(|s| s.subnet.addr().is_ipv4() == v4);
            if let Some(ip) = ip.filter(|_| !has_family) {
                return Err(IpamError::Address {
                    ip,
                    network: network.to_string(),
                    reason,
                });
            }
        }
        let mut out = Allocation { v4: None, v6: None };
        // Undo log instead of cloning the state: an allocation costs O(log n), not O(n).
        let mut done: Vec<(usize, IpAddr, Option<IpAddr>)> = Vec::new();
        for i in 0..n.subnets.len() {
            let s = &mut n.subnets[i];
            let v4 = s.subnet.addr().is_ipv4();
            let last = s.last;
            let got = match if v4 { static_v4 } else { static_v6 } {
                Some(ip) => s.take(ip, network),
                None => s.next(network),
            };
            match got {
                Ok(ip) => {
                    done.push((i, ip, last));
                    if v4 {
                        out.v4 = Some(ip)
                    } else {
                        out.v6 = Some(ip)
                    }
                }
                Err(e) => {
                    for (j, ip, last) in done {
                        n.subnets[j].allocated.remove(&ip);
                        n.subnets[j].last = last;
                    }
                    return Err(e);
                }
            }
        }
        Ok(out)
    }

    /// Returns an endpoint's address to its network. Releasing an address that is not allocated
    /// (or a network that is gone) is not an error: teardown is idempotent.
    pub fn release(&mut self, network: &str, ip: IpAddr) {
        if let Some(n) = self.networks.get_mut(network) {
            for s in &mut n.subnets {
                s.allocated.remove(&ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }
    fn sub(s: &str) -> SubnetRequest {
        SubnetRequest {
            subnet: Some(net(s)),
            ..SubnetRequest::default()
        }
    }

    #[test]
    fn default_bridge_and_next_pools() {
        let mut ipam = Ipam::with_default_bridge();
        let b = &ipam.network("bridge").unwrap().subnets[0];
        assert_eq!(
            (b.subnet, b.gateway),
            (net("172.17.0.0/16"), ip("172.17.0.1"))
        );
        let a = ipam.allocate("bridge", None, None).unwrap();
        assert_eq!(a.v4, Some(ip("172.17.0.2")));
        for (i, want) in ["172.18.0.0/16", "172.19.0.0/16"].iter().enumerate() {
            let n = ipam
                .create(&format!("u{i}"), &SubnetRequest::default(), None)
                .unwrap();
            assert_eq!(n.subnets[0].subnet, net(want));
        }
        for i in 2..14 {
            ipam.create(&format!("u{i}"), &SubnetRequest::default(), None)
                .unwrap();
        }
        let n = ipam
            .create("after", &SubnetRequest::default(), None)
            .unwrap();
        assert_eq!(n.subnets[0].subnet, net("192.168.0.0/20"));
        // A pool the host routes is skipped; a subnet given by the user is not checked.
        let mut other = Ipam::with_default_bridge();
        let avoid = [net("172.18.5.0/24"), net("172.19.0.0/16"), net("0.0.0.0/0")];
        let got = other
            .create_avoiding("a", &SubnetRequest::default(), None, &avoid[..2])
            .unwrap();
        assert_eq!(got.subnets[0].subnet, net("172.20.0.0/16"));
        other
            .create_avoiding("b", &sub("172.19.0.0/24"), None, &avoid)
            .unwrap();
        // A user subnet in the middle of the pools is skipped by the next default allocation.
        ipam.create("mine", &sub("192.168.16.0/24"), None).unwrap();
        let n = ipam
            .create("next", &SubnetRequest::default(), None)
            .unwrap();
        assert_eq!(n.subnets[0].subnet, net("192.168.32.0/20"));
    }

    #[test]
    fn sequential_allocation_wraps_and_reuses() {
        let mut ipam = Ipam::default();
        ipam.create("n", &sub("10.9.0.0/29"), None).unwrap(); // .1 gateway, .2-.6 usable
        let got: Vec<_> = (0..5)
            .map(|_| ipam.allocate("n", None, None).unwrap().v4.unwrap())
            .collect();
        assert_eq!(
            got,
            ["10.9.0.2", "10.9.0.3", "10.9.0.4", "10.9.0.5", "10.9.0.6"].map(ip)
        );
        let e = ipam.allocate("n", None, None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no free address left in 10.9.0.0/29 of network \"n\""
        );
        ipam.release("n", ip("10.9.0.3"));
        ipam.release("n", ip("10.9.0.3")); // idempotent
        assert_eq!(
            ipam.allocate("n", None, None).unwrap().v4,
            Some(ip("10.9.0.3"))
        );
    }

    #[test]
    fn ranges_gateways_and_static_addresses() {
        let mut ipam = Ipam::default();
        let req = SubnetRequest {
            subnet: Some(net("10.20.0.0/16")),
            ip_range: Some(net("10.20.5.0/24")),
            gateway: Some(ip("10.20.0.254")),
        };
        ipam.create("n", &req, None).unwrap();
        assert_eq!(
            ipam.allocate("n", None, None).unwrap().v4,
            Some(ip("10.20.5.0"))
        );
        // A static address may lie outside the range but not outside the subnet.
        assert_eq!(
            ipam.allocate("n", Some(ip("10.20.9.9")), None).unwrap().v4,
            Some(ip("10.20.9.9"))
        );
        for (bad, why) in [
            ("10.21.0.1", "outside"),
            ("10.20.9.9", "already in use"),
            ("10.20.0.254", "gateway"),
            ("10.20.0.0", "network"),
        ] {
            let e = ipam
                .allocate("n", Some(ip(bad)), None)
                .unwrap_err()
                .to_string();
            assert!(e.contains(bad) && e.contains(why), "{e}");
        }
        let e = Ipam::default()
            .create(
                "g",
                &SubnetRequest {
                    gateway: Some(ip("10.1.0.1")),
                    ..sub("10.2.0.0/16")
                },
                None,
            )
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "gateway 10.1.0.1 is outside subnet 10.2.0.0/16"
        );
        let e = Ipam::default()
            .create(
                "r",
                &SubnetRequest {
                    ip_range: Some(net("10.3.0.0/24")),
                    ..sub("10.2.0.0/16")
                },
                None,
            )
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "ip-range 10.3.0.0/24 is not inside subnet 10.2.0.0/16"
        );
        // The default bridge refuses static addresses, as Docker's does.
        let mut d = Ipam::with_default_bridge();
        assert!(d.allocate("bridge", Some(ip("172.17.0.9")), None).is_err());
    }

    #[test]
    fn overlaps_are_refused_by_name() {
        let mut ipam = Ipam::with_default_bridge();
        let e = ipam.create("x", &sub("172.17.5.0/24"), None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "subnet 172.17.5.0/24 overlaps 172.17.0.0/16 of network \"bridge\""
        );
        assert!(matches!(
            ipam.create("bridge", &sub("10.0.0.0/8"), None),
            Err(IpamError::NetworkExists(_))
        ));
    }

    #[test]
    fn ipv6_networks() {
        let mut ipam = Ipam::default();
        let v6 = sub("fd00:1::/64");
        ipam.create("d", &SubnetRequest::default(), Some(&v6))
            .unwrap();
        let a = ipam.allocate("d", None, None).unwrap();
        assert_eq!(a.v4, Some(ip("172.17.0.2")));
        assert_eq!(a.v6, Some(ip("fd00:1::2")));
        let a = ipam.allocate("d", None, Some(ip("fd00:1::abcd"))).unwrap();
        assert_eq!(a.v6, Some(ip("fd00:1::abcd")));
        assert!(
            ipam.create(
                "e",
                &SubnetRequest::default(),
                Some(&SubnetRequest::default())
            )
            .is_err()
        );
        // A static IPv6 address on a network without IPv6 is refused, and nothing stays taken.
        ipam.create("v4only", &sub("10.5.0.0/24"), None).unwrap();
        let before = ipam.clone();
        assert!(
            ipam.allocate("v4only", Some(ip("10.5.0.7")), Some(ip("fd00:9::1")))
                .is_err()
        );
        assert_eq!(ipam, before);
        // A failure on the IPv6 side rolls back the IPv4 address already taken.
        let before = ipam.clone();
        let e = ipam
            .allocate("d", None, Some(ip("fd00:1::abcd")))
            .unwrap_err();
        assert!(e.to_string().contains("already in use"), "{e}");
        assert_eq!(ipam, before);
        // The whole IPv6 space as a subnet neither overflows nor walks it.
        let mut ipam = Ipam::default();
        ipam.create("huge", &sub("10.6.0.0/24"), Some(&sub("::/0")))
            .unwrap();
        assert_eq!(
            ipam.allocate("huge", None, None).unwrap().v6,
            Some(ip("::2"))
        );
    }

    #[test]
    fn survives_a_round_trip_through_json() {
        let mut ipam = Ipam::with_default_bridge();
        ipam.allocate("bridge", None, None).unwrap();
        let json = serde_json::to_string(&ipam).unwrap();
        let mut back: Ipam = serde_json::from_str(&json).unwrap();
        assert_eq!(back, ipam);
        assert_eq!(
            back.allocate("bridge", None, None).unwrap().v4,
            Some(ip("172.17.0.3"))
        );
    }

    proptest! {
        #[test]
        fn allocations_are_unique_inside_the_range_and_never_reserved(
            prefix in 24u8..30, ops in proptest::collection::vec(any::<bool>(), 1..200)
        ) {
            let mut ipam = Ipam::default();
            let subnet: IpNet = format!("10.7.0.0/{prefix}").parse().unwrap();
            ipam.create("n", &sub(&subnet.to_string()), None).unwrap();
            let mut live: Vec<IpAddr> = Vec::new();
            for alloc in ops {
                if alloc || live.is_empty() {
                    match ipam.allocate("n", None, None) {
                        Ok(a) => {
                            let ip = a.v4.unwrap();
                            prop_assert!(subnet.contains(&ip));
                            prop_assert!(ip != subnet.network() && ip != subnet.broadcast());
                            prop_assert!(ip != "10.7.0.1".parse::<IpAddr>().unwrap());
                            prop_assert!(!live.contains(&ip));
                            live.push(ip);
                        }
                        Err(IpamError::Exhausted { .. }) => {
                            prop_assert_eq!(live.len() as u32, (1u32 << (32 - prefix)) - 3);
                        }
                        Err(e) => prop_assert!(false, "{}", e),
                    }
                } else {
                    let ip = live.remove(0);
                    ipam.release("n", ip);
                }
            }
        }
    }
}
