//! What the embedded resolver knows: an immutable snapshot of every name on every user-defined
//! network and, per container, which of those networks it may see. Built by a pure function from
//! the network manager's [`State`]; the server swaps a whole new snapshot in on every change, so
//! lookups never take a lock and never see a half-applied change.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use hickory_proto::rr::Name;

use crate::network::{DriverConfig, State};

/// The name of Docker's default network, whose containers get no embedded DNS.
pub const DEFAULT_NETWORK: &str = "bridge";

/// One address a name stands for on one network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Index of the network in [`Records::networks`].
    pub network: u32,
    /// The address.
    pub addr: IpAddr,
}

/// Every address of one name, with the round-robin counter that rotates their order per query.
#[derive(Debug, Default)]
pub struct NameSet {
    /// In endpoint order.
    pub entries: Vec<Entry>,
    next: AtomicU32,
}

impl NameSet {
    /// Where this query's rotation starts: a different place for each query, without a lock.
    pub fn rotation(&self) -> u32 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }
}

/// The name a container address has in reverse lookups (`web.mynet.`), in wire form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PtrTarget {
    /// Index of the network in [`Records::networks`].
    pub network: u32,
    /// `container.network.` as uncompressed wire-format labels.
    pub wire: Box<[u8]>,
}

/// What one container may resolve, and where its other queries go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// Indexes of the user-defined networks it is attached to, sorted.
    pub networks: Vec<u32>,
    /// `--link target:alias`: the alias (lowercase, fully qualified) and the target's name.
    pub links: Vec<(Name, Name)>,
    /// Every network it is on is `--internal`: outside names get NXDOMAIN, nothing is forwarded.
    pub internal_only: bool,
    /// Where outside names go: its `--dns` servers, else the resolver's defaults.
    pub upstreams: Arc<[SocketAddr]>,
}

impl Scope {
    /// Whether the container is on network `n`.
    pub fn sees(&self, n: u32) -> bool {
        self.networks.binary_search(&n).is_ok()
    }
}

/// One snapshot of all records.
#[derive(Debug, Default)]
pub struct Records {
    /// Names of the networks the indexes refer to.
    pub networks: Vec<String>,
    /// Lowercase, fully qualified names to their addresses.
    pub names: HashMap<Name, NameSet>,
    /// Container addresses to their reverse names.
    pub ptr: HashMap<IpAddr, Vec<PtrTarget>>,
    /// Container ID to what it may see.
    pub scopes: HashMap<String, Scope>,
    /// Containers needing a resolver in their namespace, with that namespace's file.
    pub listeners: HashMap<String, std::path::PathBuf>,
}

/// Whether containers on this network get the embedded resolver: every user-defined network
/// with addresses (bridge, macvlan, ipvlan), as Docker; not the default `bridge`, `host`, `none`.
pub fn has_dns(name: &str, driver: &DriverConfig) -> bool {
    name != DEFAULT_NETWORK && driver.has_ipam()
}

/// Parses a container name or alias as a lowercase fully qualified DNS name; `None` for names DNS
/// cannot carry (they stay reachable by address only).
pub fn dns_name(s: &str) -> Option<Name> {
    if s.is_empty() {
        return None;
    }
    let mut n = Name::from_ascii(s).ok()?.to_lowercase();
    if n.num_labels() == 0 {
        return None;
    }
    n.set_fqdn(true);
    Some(n)
}

impl Records {
    /// Builds the snapshot for `state`; containers without their own `--dns` forward to
    /// `upstreams`.
    pub fn build(state: &State, upstreams: &[SocketAddr]) -> Records {
        let default_upstreams: Arc<[SocketAddr]> = upstreams.into();
        let mut r = Records::default();
        let mut index = HashMap::new();
        for (name, net) in &state.networks {
            if has_dns(name, &net.driver) {
                index.insert(name.as_str(), r.networks.len() as u32);
                r.networks.push(name.clone());
            }
        }
        let mut internal: HashMap<&str, bool> = HashMap::new();
        for ep in state.endpoints.values() {
            let Some(&n) = index.get(ep.network.as_str()) else {
                continue;
            };
            let addrs: Vec<IpAddr> = [ep.ipv4, ep.ipv6]
                .into_iter()
                .flatten()
                .map(|a| a.addr())
                .collect();
            // Docker resolves the 12-digit short ID of a real container ID too.
            let is_id =
                ep.container.len() == 64 && ep.container.bytes().all(|b| b.is_ascii_hexdigit());
            let short_id = if is_id { &ep.container[..12] } else { "" };
            let mut names: BTreeSet<Name> = BTreeSet::new();
            for s in [ep.container_name.as_str(), short_id]
                .into_iter()
                .chain(ep.aliases.iter().map(String::as_str))
            {
                names.extend(dns_name(s));
            }
            names.extend(dns_name(&format!("{}.{}", ep.container_name, ep.network)));
            for name in names {
                let set = r.names.entry(name).or_default();
                set.entries
                    .extend(addrs.iter().map(|&addr| Entry { network: n, addr }));
            }
            if let Some(wire) = dns_name(&format!("{}.{}", ep.container_name, ep.network))
                .and_then(|n| hickory_proto::serialize::binary::BinEncodable::to_bytes(&n).ok())
            {
                for &addr in &addrs {
                    r.ptr.entry(addr).or_default().push(PtrTarget {
                        network: n,
                        wire: wire.clone().into_boxed_slice(),
                    });
                }
            }
            let scope = r
                .scopes
                .entry(ep.container.clone())
                .or_insert_with(|| Scope {
                    upstreams: default_upstreams.clone(),
                    internal_only: true,
                    ..Scope::default()
                });
            if let Err(at) = scope.networks.binary_search(&n) {
                scope.networks.insert(at, n);
            }
            let net_internal = *internal
                .entry(ep.network.as_str())
                .or_insert_with(|| state.networks.get(&ep.network).is_some_and(|n| n.internal));
            scope.internal_only &= net_internal;
            if !ep.dns_servers.is_empty() {
                scope.upstreams = ep.dns_servers.as_slice().into();
            }
            for link in &ep.links {
                if let (Some(alias), Some(target)) =
                    (dns_name(&link.alias), dns_name(&link.container))
                {
                    if !scope.links.iter().any(|(a, _)| *a == alias) {
                        scope.links.push((alias, target));
                    }
                }
            }
            if let Some(ns) = &ep.ns {
                r.listeners.insert(ep.container.clone(), ns.clone());
            }
        }
        r
    }

    /// The addresses of `name` that a container with `scope` may see (after its `--link`
    /// aliases), or `None` when no network of its knows the name.
    pub fn lookup<'a>(&'a self, scope: &Scope, name: &Name) -> Option<&'a NameSet> {
        let target = scope
            .links
            .iter()
            .find(|(alias, _)| alias == name)
            .map_or(name, |(_, target)| target);
        let set = self.names.get(target)?;
        set.entries
            .iter()
            .any(|e| scope.sees(e.network))
            .then_some(set)
    }
}
