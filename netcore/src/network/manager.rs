//! [`NetworkManager`]: the engine-facing API over IPAM, link drivers, firewall and state file.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::watch;

use ipnet::IpNet;
use portproxy::spec::{Mapping, PortSpec, Protocol};

use super::NetworkError;
use super::config::{driver_config, validate_name};
use super::model::{
    AttachRequest, CreateRequest, DEFAULT_BRIDGE, DriverConfig, Endpoint, Network, State,
};
use super::sysctl::Sysctl;
use crate::firewall::nft::Nft;
use crate::firewall::{BridgeRules, Firewall, FirewallState};
use crate::ipam::{Ipam, NetworkIpam};
use crate::link::{
    Bridge, BridgeNet, EndpointLink, HostMode, Ipvlan, IpvlanNet, LinkDriver, LinkOp, MacAddr,
    Macvlan, MacvlanNet, Netlink, NoneMode, NsRef, apply_all, apply_best_effort,
};
use berth_common::id::random_id;
use berth_common::persist;

/// The state file in the manager's directory; the standalone resolver (berth-dns) watches it.
pub const STATE_FILE: &str = "networks.json";
const PREDEFINED: [&str; 3] = ["bridge", "host", "none"];

/// What an attach changes (see [`NetworkManager::attach_plan`]).
#[derive(Debug)]
struct AttachPlan {
    next: State,
    ep: Endpoint,
    connect: Vec<LinkOp>,
    disconnect: Vec<LinkOp>,
}

/// Owns every network and endpoint of one daemon.
#[derive(Debug)]
pub struct NetworkManager<L: Netlink, N: Nft> {
    state_file: PathBuf,
    /// The records; replaced whole by every change, never changed in place.
    state: Arc<State>,
    /// The records as last committed, for readers that do not hold the manager.
    published: watch::Sender<Arc<State>>,
    nl: L,
    pub(super) fw: Firewall<N>,
    sysctl: Sysctl,
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn predefined_state() -> State {
    let mut state = State {
        ipam: Ipam::with_default_bridge(),
        ..State::default()
    };
    let mut add = |name: &str, driver: DriverConfig| {
        state.networks.insert(
            name.to_string(),
            Network {
                id: random_id(),
                name: name.to_string(),
                driver,
                internal: false,
                ipv6: false,
                options: Default::default(),
                labels: Default::default(),
                created: now(),
            },
        );
    };
    add(
        "bridge",
        DriverConfig::Bridge {
            bridge: DEFAULT_BRIDGE.to_string(),
            mtu: None,
            icc: true,
            masquerade: true,
        },
    );
    add("host", DriverConfig::Host);
    add("none", DriverConfig::Null);
    state
}

/// The link driver of a network, with its gateways from IPAM.
fn driver_of(net: &Network, ipam: Option<&NetworkIpam>) -> Box<dyn LinkDriver> {
    match &net.driver {
        DriverConfig::Bridge { bridge, mtu, .. } => Box::new(Bridge(BridgeNet {
            bridge: bridge.clone(),
            mtu: *mtu,
            gateways: ipam
                .map(|i| {
                    i.subnets
                        .iter()
                        .filter_map(|s| IpNet::new(s.gateway, s.subnet.prefix_len()).ok())
                        .collect()
                })
                .unwrap_or_default(),
        })),
        DriverConfig::Macvlan { parent, mode, .. } => Box::new(Macvlan(MacvlanNet {
            parent: parent.clone(),
            mode: *mode,
        })),
        DriverConfig::Ipvlan { parent, mode, .. } => Box::new(Ipvlan(IpvlanNet {
            parent: parent.clone(),
            mode: *mode,
        })),
        DriverConfig::Host => Box::new(HostMode),
        DriverConfig::Null => Box::new(NoneMode),
    }
}

fn mtu_of(net: &Network) -> Option<u32> {
    match &net.driver {
        DriverConfig::Bridge { mtu, .. }
        | DriverConfig::Macvlan { mtu, .. }
        | DriverConfig::Ipvlan { mtu, .. } => *mtu,
        _ => None,
    }
}

/// The link-layer view of an endpoint.
fn endpoint_link(ep: &Endpoint, net: &Network, ipam: Option<&NetworkIpam>) -> Option<EndpointLink> {
    let ns = ep.ns.clone()?;
    let gateways = if ep.gateway {
        ipam.map(|i| {
            i.subnets
                .iter()
                .filter(|s| {
                    [ep.ipv4, ep.ipv6]
                        .iter()
                        .flatten()
                        .any(|a| a.addr().is_ipv4() == s.gateway.is_ipv4())
                })
                .map(|s| s.gateway)
                .collect()
        })
        .unwrap_or_default()
    } else {
        Vec::new()
    };
    Some(EndpointLink {
        ns,
        ifname: ep.ifname.clone().unwrap_or_default(),
        host_ifname: ep.host_ifname.clone().unwrap_or_default(),
        mac: ep.mac,
        addresses: [ep.ipv4, ep.ipv6]
            .into_iter()
            .flatten()
            .chain(ep.link_local.iter().copied())
            .collect(),
        gateways,
        mtu: mtu_of(net),
    })
}

/// A `--link-local-ip` address with Docker's prefix: /16 for IPv4, /64 for IPv6.
fn link_local_net(ip: IpAddr) -> IpNet {
    let prefix = if ip.is_ipv4() { 16 } else { 64 };
    IpNet::new(ip, prefix).expect("16 and 64 are valid prefixes")
}

/// Docker's rule for `-p` without a host address: IPv4 on 0.0.0.0, IPv6 on `::` (to the
/// container's IPv6 address when it has one; otherwise portproxy bridges the families).
fn resolve_ports(specs: &[PortSpec], v4: Option<IpAddr>, v6: Option<IpAddr>) -> Vec<Mapping> {
    let mut out = Vec::new();
    for spec in specs {
        let Some(primary) = v4.or(v6) else { continue };
        for m in spec.mappings(primary) {
            let container_ip = match (m.host.ip(), v6) {
                (IpAddr::V6(_), Some(v6)) => v6,
                _ => primary,
            };
            out.push(Mapping {
                container: SocketAddr::new(container_ip, m.container.port()),
                ..m
            });
        }
    }
    out
}

/// Whether two published host addresses collide on the same port.
fn ports_collide(a: &Mapping, b: &Mapping) -> bool {
    if a.proto != b.proto || a.host.port() != b.host.port() || a.host.port() == 0 {
        return false;
    }
    let (x, y) = (a.host.ip(), b.host.ip());
    x.is_ipv4() == y.is_ipv4() && (x == y || x.is_unspecified() || y.is_unspecified())
}

impl<L: Netlink, N: Nft> NetworkManager<L, N> {
    /// Opens (or starts) the records under `state_dir` and brings the kernel in line with them:
    /// the predefined networks exist, every bridge exists, forwarding is on, and berth's nft
    /// tables are rebuilt whole from the records (stale rules go, missing ones come back).
    pub async fn open(
        state_dir: &Path,
        nl: L,
        nft: N,
        sysctl: Sysctl,
    ) -> Result<NetworkManager<L, N>, NetworkError> {
        let state_file = state_dir.join(STATE_FILE);
        let state = match persist::load::<State>(&state_file)? {
            Some(s) => s,
            None => predefined_state(),
        };
        let state = Arc::new(state);
        let mut mgr = NetworkManager {
            state_file,
            published: watch::Sender::new(state.clone()),
            state,
            nl,
            fw: Firewall::new(nft),
            sysctl,
        };
        let bridges: Vec<Network> = mgr
            .state
            .networks
            .values()
            .filter(|n| matches!(n.driver, DriverConfig::Bridge { .. }))
            .cloned()
            .collect();
        let mut turned_on = mgr.state.forwarding;
        for net in &bridges {
            mgr.setup_network(net, &mut turned_on).await?;
        }
        if turned_on != mgr.state.forwarding {
            let mut next = (*mgr.state).clone();
            next.forwarding = turned_on;
            mgr.state = Arc::new(next);
        }
        mgr.fw.apply(mgr.firewall_state())?;
        persist::save(&mgr.state_file, &*mgr.state)?;
        Ok(mgr)
    }

    /// Turns on IPv4 forwarding (and IPv6 forwarding for an `--ipv6` network): bridges route.
    /// A family berth turns on (it was off) is marked in `turned_on`.
    fn enable_forwarding(
        &mut self,
        ipv6: bool,
        turned_on: &mut crate::firewall::ForwardDrop,
    ) -> Result<(), NetworkError> {
        if self
            .sysctl
            .ensure("net/ipv4/ip_forward", "1")
            .map_err(NetworkError::Sysctl)?
        {
            turned_on.ipv4 = true;
        }
        if ipv6
            && self
                .sysctl
                .ensure("net/ipv6/conf/all/forwarding", "1")
                .map_err(NetworkError::Sysctl)?
        {
            turned_on.ipv6 = true;
        }
        Ok(())
    }

    async fn setup_network(
        &mut self,
        net: &Network,
        turned_on: &mut crate::firewall::ForwardDrop,
    ) -> Result<(), NetworkError> {
        let DriverConfig::Bridge { bridge, .. } = &net.driver else {
            return Ok(());
        };
        self.enable_forwarding(net.ipv6, turned_on)?;
        if self.nl.link_exists(&NsRef::Host, bridge).await? {
            return Ok(());
        }
        let driver = driver_of(net, self.state.ipam.network(&net.name));
        apply_all(&mut self.nl, &driver.setup()).await?;
        Ok(())
    }

    /// What the firewall must enforce for the current records (pure).
    pub fn firewall_state(&self) -> FirewallState {
        firewall_state(&self.state)
    }

    /// The records.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The netlink implementation (tests read the fake's record through this).
    pub fn netlink(&self) -> &L {
        &self.nl
    }

    /// Finds a network by name, full ID or unique ID prefix.
    pub fn find(&self, name_or_id: &str) -> Result<&Network, NetworkError> {
        self.state.find(name_or_id)
    }

    /// The records as they are after every change from now on: readers that must not wait on
    /// the manager (it is held across netlink and nft calls) look here.
    pub fn watch(&self) -> watch::Receiver<Arc<State>> {
        self.published.subscribe()
    }

    /// Endpoints of a network.
    pub fn endpoints_of<'a>(&'a self, network: &'a str) -> impl Iterator<Item = &'a Endpoint> {
        self.state
            .endpoints
            .values()
            .filter(move |e| e.network == network)
    }

    /// Makes `next` the records: applies the firewall for it and saves it. On any failure the
    /// records stay as they were and the firewall is put back.
    fn commit(&mut self, next: State) -> Result<(), NetworkError> {
        self.fw.apply(firewall_state(&next))?;
        if let Err(e) = persist::save(&self.state_file, &next) {
            if let Err(undo) = self.fw.apply(firewall_state(&self.state)) {
                tracing::warn!(error = %undo, "could not put the firewall back after a failed save");
            }
            return Err(e.into());
        }
        self.state = Arc::new(next);
        self.published.send_replace(self.state.clone());
        Ok(())
    }

    /// `docker network create`.
    pub async fn create(&mut self, req: CreateRequest) -> Result<Network, NetworkError> {
        validate_name(&req.name)?;
        if self.state.networks.contains_key(&req.name) {
            return Err(NetworkError::Exists(req.name));
        }
        let id = random_id();
        let driver = driver_config(req.driver.as_deref().unwrap_or("bridge"), &id, &req.options)?;
        if let DriverConfig::Bridge { bridge, .. } = &driver {
            if let Some(other) = self.state.networks.values().find(
                |n| matches!(&n.driver, DriverConfig::Bridge { bridge: b, .. } if b == bridge),
            ) {
                return Err(NetworkError::Conflict(format!(
                    "bridge {bridge} is already used by network {}",
                    other.name
                )));
            }
        }
        if let DriverConfig::Macvlan { parent, .. } | DriverConfig::Ipvlan { parent, .. } = &driver
        {
            if !self.nl.link_exists(&NsRef::Host, parent).await? {
                return Err(NetworkError::Invalid(format!(
                    "parent interface {parent} of network {} does not exist",
                    req.name
                )));
            }
        }
        let net = Network {
            id,
            name: req.name.clone(),
            driver,
            internal: req.internal,
            ipv6: req.ipv6.is_some(),
            options: req.options.clone(),
            labels: req.labels.clone(),
            created: now(),
        };
        let mut next = (*self.state).clone();
        // Only a subnet berth chooses is kept off the host's routes (read only then).
        let avoid = if req.ipv4.subnet.is_none() {
            self.nl.host_routes()
        } else {
            Vec::new()
        };
        next.ipam
            .create_avoiding(&req.name, &req.ipv4, req.ipv6.as_ref(), &avoid)?;
        next.networks.insert(net.name.clone(), net.clone());
        let driver = driver_of(&net, next.ipam.network(&net.name));
        self.enable_forwarding(net.ipv6, &mut next.forwarding)?;
        apply_all(&mut self.nl, &driver.setup()).await?;
        if let Err(e) = self.commit(next) {
            let _ = apply_best_effort(&mut self.nl, &driver.teardown()).await;
            return Err(e);
        }
        Ok(net)
    }

    /// `docker network rm`: refused while containers are attached; removes the bridge.
    pub async fn remove(&mut self, name_or_id: &str) -> Result<(), NetworkError> {
        let net = self.find(name_or_id)?.clone();
        if PREDEFINED.contains(&net.name.as_str()) {
            return Err(NetworkError::Conflict(format!(
                "{} is a pre-defined network and cannot be removed",
                net.name
            )));
        }
        let attached: Vec<&str> = self
            .endpoints_of(&net.name)
            .map(|e| e.container_name.as_str())
            .collect();
        if !attached.is_empty() {
            return Err(NetworkError::Conflict(format!(
                "network {} has active endpoints ({})",
                net.name,
                attached.join(", ")
            )));
        }
        let mut next = (*self.state).clone();
        next.ipam.remove(&net.name)?;
        next.networks.remove(&net.name);
        self.commit(next)?;
        let driver = driver_of(&net, None);
        if let Err(errors) = apply_best_effort(&mut self.nl, &driver.teardown()).await {
            tracing::warn!(network = %net.name, %errors, "network removed; some links were already gone or could not be deleted");
        }
        Ok(())
    }

    /// `docker network prune`: every user-defined network no container is attached to; the
    /// networks removed. One that cannot be removed (attached meanwhile) is kept.
    pub async fn prune(&mut self) -> Vec<Network> {
        let unused: Vec<Network> = self
            .state
            .networks
            .values()
            .filter(|n| !PREDEFINED.contains(&n.name.as_str()))
            .filter(|n| self.endpoints_of(&n.name).next().is_none())
            .cloned()
            .collect();
        let mut removed = Vec::new();
        for n in unused {
            if self.remove(&n.name).await.is_ok() {
                removed.push(n);
            }
        }
        removed
    }

    /// Attaches a container to a network (`docker run --network`, `docker network connect`):
    /// an address, an interface in its namespace, a default route when it has none yet, and
    /// its published ports in the firewall.
    pub async fn attach(
        &mut self,
        network: &str,
        req: AttachRequest,
    ) -> Result<Endpoint, NetworkError> {
        let plan = self.attach_plan(network, req)?;
        // Holding the manager, the interface is made first: a failure leaves the records and
        // the firewall untouched.
        apply_all(&mut self.nl, &plan.connect).await?;
        if let Err(e) = self.commit(plan.next) {
            let _ = apply_best_effort(&mut self.nl, &plan.disconnect).await;
            return Err(e);
        }
        Ok(plan.ep)
    }

    /// The records' half of [`Self::attach`]: the endpoint enters the records (its address
    /// taken, its ports and isolation in the firewall) and the operations that make its
    /// interface are returned, for a caller to apply with [`apply_all`] without holding the
    /// manager (creating a veth and moving it into a namespace waits on the kernel for tens of
    /// milliseconds, and containers starting together then overlap instead of queueing). When
    /// they fail, the caller gives the endpoint back with [`Self::detach_record`].
    pub fn attach_record(
        &mut self,
        network: &str,
        req: AttachRequest,
    ) -> Result<(Endpoint, Vec<LinkOp>), NetworkError> {
        let plan = self.attach_plan(network, req)?;
        self.commit(plan.next)?;
        Ok((plan.ep, plan.connect))
    }

    /// What attaching `req` to `network` changes: the records after it, the endpoint, and the
    /// operations that make (and unmake) its interface. Pure.
    fn attach_plan(&self, network: &str, req: AttachRequest) -> Result<AttachPlan, NetworkError> {
        let net = self.find(network)?.clone();
        let mine: Vec<&Endpoint> = self
            .state
            .endpoints
            .values()
            .filter(|e| e.container == req.container)
            .collect();
        if mine.iter().any(|e| e.network == net.name) {
            return Err(NetworkError::Conflict(format!(
                "endpoint with name {} already exists in network {}",
                req.container_name, net.name
            )));
        }
        let exclusive = |n: &str| matches!(n, "host" | "none");
        if exclusive(&net.name) && !mine.is_empty() || mine.iter().any(|e| exclusive(&e.network)) {
            return Err(NetworkError::Conflict(format!(
                "container {} cannot be connected to network {}: a container on the host or none network has no other network",
                req.container_name, net.name
            )));
        }
        if req.ns.is_none() && !matches!(net.driver, DriverConfig::Host) {
            return Err(NetworkError::Invalid(format!(
                "attaching container {} to network {} needs its network namespace",
                req.container_name, net.name
            )));
        }
        let used: BTreeSet<&str> = mine.iter().filter_map(|e| e.ifname.as_deref()).collect();
        let ifname = (0..)
            .map(|i| format!("eth{i}"))
            .find(|n| !used.contains(n.as_str()))
            .expect("an unused ethN exists");
        let has_gateway = mine.iter().any(|e| e.gateway);

        let mut next = (*self.state).clone();
        let (ipv4, ipv6) = if net.driver.has_ipam() {
            let a = next.ipam.allocate(&net.name, req.ipv4, req.ipv6)?;
            let ipam = next.ipam.network(&net.name);
            let with_prefix = |ip: Option<IpAddr>| {
                let ip = ip?;
                let s = ipam?.subnets.iter().find(|s| s.subnet.contains(&ip))?;
                IpNet::new(ip, s.subnet.prefix_len()).ok()
            };
            (with_prefix(a.v4), with_prefix(a.v6))
        } else {
            (None, None)
        };
        let published = match net.driver {
            DriverConfig::Bridge { .. } => {
                resolve_ports(&req.ports, ipv4.map(|a| a.addr()), ipv6.map(|a| a.addr()))
            }
            _ => Vec::new(),
        };
        check_ports(&next, &req.container, &published)?;
        let id = random_id();
        let ep = Endpoint {
            host_ifname: matches!(net.driver, DriverConfig::Bridge { .. })
                .then(|| format!("veth{}", &id[..7])),
            id,
            network: net.name.clone(),
            container: req.container.clone(),
            container_name: req.container_name.clone(),
            ns: req.ns.clone(),
            ifname: matches!(
                net.driver,
                DriverConfig::Bridge { .. }
                    | DriverConfig::Macvlan { .. }
                    | DriverConfig::Ipvlan { .. }
            )
            .then_some(ifname),
            mac: req.mac.or_else(|| match ipv4.map(|a| a.addr()) {
                Some(IpAddr::V4(v4)) if net.driver.name() != "ipvlan" => {
                    Some(MacAddr::from_ipv4(v4))
                }
                _ => None,
            }),
            ipv4,
            ipv6,
            link_local: req
                .link_local
                .iter()
                .map(|ip| link_local_net(*ip))
                .collect(),
            gateway: !has_gateway
                && !net.internal
                && matches!(
                    net.driver,
                    DriverConfig::Bridge { .. }
                        | DriverConfig::Macvlan { .. }
                        | DriverConfig::Ipvlan { .. }
                ),
            aliases: req.aliases.clone(),
            links: req.links.clone(),
            dns_servers: req.dns_servers.clone(),
            published,
        };
        next.endpoints.insert(ep.id.clone(), ep.clone());

        let driver = driver_of(&net, next.ipam.network(&net.name));
        let link = endpoint_link(&ep, &net, next.ipam.network(&net.name));
        let (mut connect, mut disconnect) = (Vec::new(), Vec::new());
        if let Some(link) = &link {
            if mine.is_empty() {
                // Loopback, as Docker brings it up in every sandbox it configures; a runtime
                // given an existing namespace leaves it down.
                connect.push(LinkOp::SetUp {
                    ns: NsRef::Path(link.ns.clone()),
                    link: "lo".into(),
                });
            }
            connect.extend(driver.connect(link));
            disconnect = driver.disconnect(link);
        }
        Ok(AttachPlan {
            next,
            ep,
            connect,
            disconnect,
        })
    }

    /// Replaces an endpoint's published ports, e.g. once portproxy has chosen the host ports of
    /// `-p 80` or `-P`.
    pub fn set_published(
        &mut self,
        endpoint_id: &str,
        published: Vec<Mapping>,
    ) -> Result<(), NetworkError> {
        let mut next = (*self.state).clone();
        let ep = next
            .endpoints
            .get_mut(endpoint_id)
            .ok_or_else(|| NetworkError::Invalid(format!("no endpoint {endpoint_id}")))?;
        let container = ep.container.clone();
        ep.published.clear();
        check_ports(&next, &container, &published)?;
        if let Some(ep) = next.endpoints.get_mut(endpoint_id) {
            ep.published = published;
        }
        self.commit(next)
    }

    /// Detaches a container from a network (`docker network disconnect`, container removal):
    /// its interface goes, its address returns to the pool, its ports leave the firewall.
    /// Works whether or not the container's namespace still exists.
    pub async fn detach(&mut self, network: &str, container: &str) -> Result<(), NetworkError> {
        let ops = self.detach_record(network, container)?;
        if let Err(errors) = apply_best_effort(&mut self.nl, &ops).await {
            tracing::warn!(%network, %container, %errors, "endpoint detached; some links could not be deleted");
        }
        Ok(())
    }

    /// The records' half of [`Self::detach`]: the endpoint leaves the records at once (its
    /// address back in the pool, its ports out of the firewall) and the operations that delete
    /// its interface are returned, for a caller to apply with [`apply_best_effort`] without
    /// holding the manager. A container's teardown does so: deleting a veth waits on the
    /// kernel for tens of milliseconds, and containers stopping together then wait together.
    pub fn detach_record(
        &mut self,
        network: &str,
        container: &str,
    ) -> Result<Vec<LinkOp>, NetworkError> {
        let net = self.find(network)?.clone();
        let ep = self
            .endpoints_of(&net.name)
            .find(|e| e.container == container || e.container_name == container)
            .cloned()
            .ok_or_else(|| NetworkError::NotAttached {
                container: container.to_string(),
                network: net.name.clone(),
            })?;
        let mut next = (*self.state).clone();
        for ip in [ep.ipv4, ep.ipv6].into_iter().flatten() {
            next.ipam.release(&net.name, ip.addr());
        }
        next.endpoints.remove(&ep.id);
        let driver = driver_of(&net, self.state.ipam.network(&net.name));
        let link = endpoint_link(&ep, &net, self.state.ipam.network(&net.name));
        self.commit(next)?;
        Ok(link.map(|l| driver.disconnect(&l)).unwrap_or_default())
    }
}

impl<L: Netlink, N: Nft> NetworkManager<L, N> {
    /// Removes everything berth created in the kernel (every endpoint's interface, every
    /// bridge, `berth0` included, and berth's nft tables) and deletes the records. For
    /// uninstalling and for tests: attached containers lose their network.
    pub async fn teardown_all(mut self) -> Result<(), NetworkError> {
        let mut plan = Vec::new();
        for ep in self.state.endpoints.values() {
            let Some(net) = self.state.networks.get(&ep.network) else {
                continue;
            };
            let ipam = self.state.ipam.network(&net.name);
            if let Some(link) = endpoint_link(ep, net, ipam) {
                plan.extend(driver_of(net, ipam).disconnect(&link));
            }
        }
        for net in self.state.networks.values() {
            plan.extend(driver_of(net, None).teardown());
        }
        let links = apply_best_effort(&mut self.nl, &plan).await;
        self.fw.remove()?;
        match std::fs::remove_file(&self.state_file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(persist::PersistError::Io {
                    path: self.state_file.display().to_string(),
                    source: e,
                }
                .into());
            }
            _ => {}
        }
        links.map_err(|errors| {
            NetworkError::Conflict(format!("some links could not be deleted: {errors}"))
        })
    }
}

/// Refuses host ports another container (or this request itself) already publishes, with
/// Docker's message. Indexed by protocol and port, so a 10,000-port request stays linear.
fn check_ports(state: &State, container: &str, new: &[Mapping]) -> Result<(), NetworkError> {
    let mut taken: HashMap<(Protocol, u16), Vec<&Mapping>> = HashMap::new();
    let others = state
        .endpoints
        .values()
        .filter(|e| e.container != container)
        .flat_map(|e| e.published.iter());
    for m in others {
        taken.entry((m.proto, m.host.port())).or_default().push(m);
    }
    for m in new {
        let same_port = taken.entry((m.proto, m.host.port())).or_default();
        if same_port.iter().any(|o| ports_collide(o, m)) {
            return Err(NetworkError::Conflict(format!(
                "Bind for {} failed: port is already allocated",
                SocketAddr::new(m.host.ip(), m.host.port())
            )));
        }
        same_port.push(m);
    }
    Ok(())
}

/// The firewall's view of the records (pure).
pub(crate) fn firewall_state(state: &State) -> FirewallState {
    let mut fw = FirewallState {
        drop_forwarded: state.forwarding,
        ..FirewallState::default()
    };
    for net in state.networks.values() {
        if let DriverConfig::Bridge {
            bridge,
            icc,
            masquerade,
            ..
        } = &net.driver
        {
            fw.bridges.insert(
                bridge.clone(),
                BridgeRules {
                    subnets: state
                        .ipam
                        .network(&net.name)
                        .map(|i| i.subnets.iter().map(|s| s.subnet).collect())
                        .unwrap_or_default(),
                    internal: net.internal,
                    masquerade: *masquerade,
                    icc: *icc,
                },
            );
        }
    }
    for ep in state.endpoints.values() {
        let Some(net) = state.networks.get(&ep.network) else {
            continue;
        };
        if let (DriverConfig::Bridge { bridge, .. }, Some(port)) = (&net.driver, &ep.host_ifname) {
            fw.ports.insert(port.clone(), bridge.clone());
            if !net.internal {
                fw.published.extend(ep.published.iter().copied());
            }
        }
    }
    fw
}
