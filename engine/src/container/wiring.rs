//! A container's network, wired through netcore before its process starts: its namespace
//! file, the endpoint on its network (address, veth, routes, firewall DNAT), the host-local
//! path of its published ports through portproxy, the embedded resolver's listener, and the
//! /etc files it sees. [`Engine::teardown_network`] undoes all of it and is idempotent.

use std::collections::HashMap;
use std::fs;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use netcore::dns::{ContainerDns, Resolver, container_resolv_conf};
use netcore::firewall::nft::NftCommand;
use netcore::link::RtNetlink;
use netcore::network::{AttachRequest, ContainerLink, NetworkManager};
use portproxy::PortSpec;
use portproxy::control::Request;

use super::engine::Engine;
use super::model::NetworkMode;
use super::proxy::{ProxyLink, Reached, Wanted, reconcile};
use super::{ContainerError, etc, io_err, netns};

/// How the spec joins a network namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum SpecNet {
    /// The host's.
    Host,
    /// The namespace at this path.
    Path(String),
}

/// `--dns`, `--dns-search`, `--dns-option` of `c`.
pub(super) fn container_dns(c: &super::model::Container) -> ContainerDns {
    ContainerDns {
        servers: c
            .options
            .dns
            .iter()
            .filter_map(|d| d.parse().ok())
            .collect(),
        search: c.options.dns_search.clone(),
        options: c.options.dns_option.clone(),
    }
}

/// Everything a container's network setup needs, taken from the records under the engine's
/// lock so the setup itself ([`Wiring::setup`]) runs without it.
#[derive(Debug)]
pub(super) struct NetPlan {
    id: String,
    name: String,
    hostname: String,
    /// Where its /etc files (hostname, hosts, resolv.conf) are written.
    etc_dir: PathBuf,
    kind: PlanKind,
}

#[derive(Debug)]
enum PlanKind {
    /// `--network host`: the host's files.
    Host { resolv_conf: PathBuf },
    /// `--network container:X`: X's namespace and files.
    Joined { ns: String, etc_dir: PathBuf },
    /// A namespace of its own, on a network or none.
    Own(Box<OwnNet>),
}

#[derive(Debug)]
struct OwnNet {
    ns_path: PathBuf,
    network: String,
    ports: Vec<PortSpec>,
    /// What `ports` publish on both families (see [`wildcard_ports`]).
    wildcard: Vec<(portproxy::Protocol, u16)>,
    /// Its endpoint on `network` (none after `docker network disconnect`).
    primary: Option<AttachRequest>,
    /// Networks joined with `docker network connect`.
    connections: Vec<(String, AttachRequest)>,
    embedded: bool,
    add_hosts: Vec<String>,
    /// `--link`s: the other container's ID and the names it gets in /etc/hosts.
    links: Vec<(String, Vec<String>)>,
    dns: ContainerDns,
    host_dns: netcore::dns::ResolvConf,
}

/// Every container's networking: netcore's network manager, the embedded resolver, the port
/// proxy and what it publishes for whom. It has a lock of its own, held across netlink, nft and
/// proxy calls; the engine's lock is never taken inside it (so a setup or teardown can run
/// with the engine let go). Readers of the network records use the manager's published
/// snapshot ([`NetworkManager::watch`]) instead.
#[derive(Debug)]
pub struct Wiring {
    pub(super) net: NetworkManager<RtNetlink, NftCommand>,
    pub(super) resolver: Resolver,
    pub(super) proxy: ProxyLink,
    /// Container ID to its publications in the proxy.
    pub(super) published: HashMap<String, Vec<u64>>,
    /// Containers whose ports the proxy serves, with what they publish on both families.
    pub(super) serving: HashMap<String, Vec<(portproxy::Protocol, u16)>>,
}

impl Wiring {
    /// The network manager (`docker network create`, `ls`, `inspect`, `rm`).
    pub fn networks(&mut self) -> &mut NetworkManager<RtNetlink, NftCommand> {
        &mut self.net
    }

    /// Sets up a container's network as `plan` says and writes its /etc files; returns how
    /// its spec joins the namespace and the directory of its /etc files. On error the caller
    /// runs [`Wiring::teardown`].
    pub(super) async fn setup(
        &mut self,
        plan: NetPlan,
    ) -> Result<(SpecNet, PathBuf), ContainerError> {
        let dir = plan.etc_dir.clone();
        let write = |name: &str, text: &str| {
            let p = dir.join(name);
            fs::write(&p, text).map_err(io_err(format!("writing {}", p.display())))
        };
        let own = match plan.kind {
            PlanKind::Host { resolv_conf } => {
                let host_name = nix::unistd::gethostname()
                    .map(|h| h.to_string_lossy().into_owned())
                    .unwrap_or_else(|_| plan.hostname.clone());
                write("hostname", &format!("{host_name}\n"))?;
                write(
                    "hosts",
                    &fs::read_to_string("/etc/hosts").unwrap_or_default(),
                )?;
                write(
                    "resolv.conf",
                    &fs::read_to_string(&resolv_conf).unwrap_or_default(),
                )?;
                return Ok((SpecNet::Host, dir));
            }
            PlanKind::Joined { ns, etc_dir } => return Ok((SpecNet::Path(ns), etc_dir)),
            PlanKind::Own(own) => own,
        };
        let id = plan.id.as_str();
        netns::remove(&own.ns_path)
            .map_err(io_err(format!("container {}: stale namespace", plan.name)))?;
        netns::create(&own.ns_path).map_err(io_err(format!("container {}", plan.name)))?;
        let mut addrs: Vec<IpAddr> = Vec::new();
        if let Some(req) = own.primary {
            let ep = self.net.attach(&own.network, req).await?;
            addrs.extend([ep.ipv4, ep.ipv6].into_iter().flatten().map(|a| a.addr()));
            self.serving.insert(id.to_string(), own.wildcard.clone());
            if let Some(ip) = addrs.first().copied() {
                self.publish_ports(id, &ep.id, ip, &own.ports).await?;
            }
        }
        let mut user_defined = own.embedded;
        for (n, req) in own.connections {
            user_defined |= n != "bridge";
            let ep = self.net.attach(&n, req).await?;
            addrs.extend([ep.ipv4, ep.ipv6].into_iter().flatten().map(|a| a.addr()));
        }
        if user_defined {
            for e in self.resolver.update(self.net.state()).await {
                tracing::warn!(container = %plan.name, error = %e, "embedded DNS listener");
            }
        }
        let state = self.net.state();
        let gateway = state
            .ipam
            .network(&own.network)
            .and_then(|i| i.subnets.first().map(|s| s.gateway));
        let mut extra = Vec::new();
        for h in &own.add_hosts {
            extra.push(etc::parse_add_host(h, gateway)?);
        }
        let mut link_lines = Vec::new();
        for (oid, names) in own.links {
            if let Some(ip) = state
                .endpoints
                .values()
                .find(|e| e.container == oid && e.network == "bridge")
                .and_then(|e| e.ipv4)
            {
                link_lines.push((ip.addr(), names));
            }
        }
        write("hostname", &format!("{}\n", plan.hostname))?;
        write(
            "hosts",
            &etc::hosts(&plan.hostname, &addrs, &extra, &link_lines),
        )?;
        write(
            "resolv.conf",
            &container_resolv_conf(&own.host_dns, &own.dns, own.embedded),
        )?;
        Ok((SpecNet::Path(own.ns_path.display().to_string()), dir))
    }

    /// Removes everything [`Wiring::setup`] made for container `id` (its namespace file at
    /// `ns_path`); keeps going past errors and treats "already gone" as done.
    pub(super) async fn teardown(&mut self, id: &str, ns_path: &std::path::Path) {
        self.serving.remove(id);
        for pid in self.published.remove(id).unwrap_or_default() {
            let _ = self.proxy_call(&Request::Unpublish { id: pid }).await;
        }
        let networks: Vec<String> = self
            .net
            .state()
            .endpoints
            .values()
            .filter(|e| e.container == id)
            .map(|e| e.network.clone())
            .collect();
        for n in &networks {
            if let Err(e) = self.net.detach(n, id).await {
                tracing::warn!(container = id, network = %n, error = %e, "detaching");
            }
        }
        if !networks.is_empty() {
            let _ = self.resolver.update(self.net.state()).await;
        }
        if let Err(e) = netns::remove(ns_path) {
            tracing::warn!(container = id, error = %e, "removing the network namespace");
        }
    }

    /// A running container joins `network` (`docker network connect`).
    pub(super) async fn attach(
        &mut self,
        network: &str,
        req: AttachRequest,
    ) -> Result<(), ContainerError> {
        self.net.attach(network, req).await?;
        let _ = self.resolver.update(self.net.state()).await;
        Ok(())
    }

    /// A running container leaves `network` (`docker network disconnect`); leaving the network
    /// of its `-p` (`primary`) withdraws its published ports.
    pub(super) async fn detach(
        &mut self,
        network: &str,
        id: &str,
        primary: bool,
    ) -> Result<(), ContainerError> {
        if primary {
            self.serving.remove(id);
            for pid in self.published.remove(id).unwrap_or_default() {
                let _ = self.proxy_call(&Request::Unpublish { id: pid }).await;
            }
        }
        match self.net.detach(network, id).await {
            Ok(()) | Err(netcore::network::NetworkError::NotAttached { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let _ = self.resolver.update(self.net.state()).await;
        Ok(())
    }

    /// Serves the names of every endpoint now recorded (after an engine start).
    pub(super) async fn refresh_resolver(&mut self) {
        let _ = self.resolver.update(self.net.state()).await;
    }

    /// Publishes `ports` of endpoint `ep_id` through the proxy (the host's own clients:
    /// 127.0.0.1 and ::1, which the kernel's DNAT does not see), and records the host ports the
    /// kernel chose for `-p 80` and `-P` in the endpoint so the firewall serves them too.
    async fn publish_ports(
        &mut self,
        id: &str,
        ep_id: &str,
        ip: IpAddr,
        ports: &[PortSpec],
    ) -> Result<(), ContainerError> {
        let mut chosen = Vec::new();
        let mut any_ephemeral = false;
        for spec in ports {
            any_ephemeral |= spec.host_ports.is_none();
            let req = Request::Publish {
                spec: spec.to_string(),
                container_ip: ip,
                transparent: false,
            };
            let info = self.proxy_call(&req).await?;
            for info in info {
                self.published
                    .entry(id.to_string())
                    .or_default()
                    .push(info.id);
                chosen.extend(
                    info.mappings
                        .into_iter()
                        .filter(|m| m.host.is_ipv4() == m.container.is_ipv4()),
                );
            }
        }
        if any_ephemeral {
            self.net.set_published(ep_id, chosen)?;
        }
        Ok(())
    }

    /// Sends `req` to the proxy. When none answered and a new one was started, it publishes
    /// nothing: the ports of every container whose publications were complete are published on
    /// it again first (a container whose ports are being published now is left to its caller).
    async fn proxy_call(
        &mut self,
        req: &Request,
    ) -> Result<Vec<portproxy::PublishedInfo>, ContainerError> {
        let (resp, reached) = self.proxy.call(req).await?;
        if reached == Reached::Started {
            let busy = match req {
                Request::Publish { container_ip, .. } => self
                    .net
                    .state()
                    .endpoints
                    .values()
                    .find(|e| {
                        [e.ipv4, e.ipv6]
                            .into_iter()
                            .flatten()
                            .any(|a| a.addr() == *container_ip)
                    })
                    .map(|e| e.container.clone()),
                _ => None,
            };
            self.published.retain(|c, _| Some(c) == busy.as_ref());
            self.restore_publications(Vec::new(), busy.as_deref()).await;
        }
        Ok(resp.published)
    }

    /// What the proxy should serve for every container it serves but `busy`: the mappings
    /// recorded in their endpoints (real host ports, also those the kernel chose).
    fn wanted_publications(&self, busy: Option<&str>) -> Vec<Wanted> {
        let mut out = Vec::new();
        for ep in self.net.state().endpoints.values() {
            let Some(wildcard) = self.serving.get(&ep.container) else {
                continue;
            };
            if Some(ep.container.as_str()) == busy {
                continue;
            }
            for m in &ep.published {
                if !m.host.is_ipv4() || m.host.port() == 0 {
                    continue;
                }
                out.push(Wanted {
                    container: ep.container.clone(),
                    mapping: *m,
                    both_families: m.host.ip().is_unspecified()
                        && wildcard.contains(&(m.proto, m.container.port())),
                });
            }
        }
        out
    }

    /// Brings the proxy's publications in line with the containers it serves (after an engine
    /// start: `live` is what the proxy lists; after the proxy was started anew: nothing):
    /// publications a container still wants are adopted, stale ones withdrawn, missing ones
    /// published again on the addresses they had.
    pub(super) async fn restore_publications(
        &mut self,
        live: Vec<portproxy::PublishedInfo>,
        busy: Option<&str>,
    ) {
        let wanted = self.wanted_publications(busy);
        let plan = reconcile(&wanted, &live);
        if !plan.publish.is_empty() {
            tracing::info!(
                ports = plan.publish.len(),
                "publishing live containers' ports on the proxy again"
            );
        }
        for id in plan.withdraw {
            if let Err(e) = self.proxy.call(&Request::Unpublish { id }).await {
                tracing::warn!(publication = id, error = %e, "withdrawing a stale publication");
            }
        }
        for (c, ids) in plan.adopt {
            self.published.entry(c).or_default().extend(ids);
        }
        for i in plan.publish {
            let w = &wanted[i];
            let req = Request::Publish {
                spec: w.spec(),
                container_ip: w.container_ip(),
                transparent: false,
            };
            match self.proxy.call(&req).await {
                Ok((resp, _)) => self
                    .published
                    .entry(w.container.clone())
                    .or_default()
                    .extend(resp.published.iter().map(|p| p.id)),
                Err(e) => {
                    tracing::warn!(container = %w.container, spec = %w.spec(), error = %e, "publishing a port again")
                }
            }
        }
    }
}

impl Engine {
    /// What setting up `id`'s network takes, from the records (see [`Wiring::setup`]).
    pub(super) fn net_plan(&self, id: &str) -> Result<NetPlan, ContainerError> {
        let c = &self.containers[id];
        let kind = match &c.network_mode {
            NetworkMode::Host => PlanKind::Host {
                resolv_conf: self.cfg.resolv_conf.clone(),
            },
            NetworkMode::Container(other) => {
                let o = self
                    .containers
                    .get(other)
                    .ok_or_else(|| ContainerError::NotFound(other.clone()))?;
                if !o.state.status.is_live() {
                    return Err(ContainerError::Conflict(format!(
                        "cannot join network of a non running container: {}",
                        o.name
                    )));
                }
                let path = self.netns_path(other);
                let ns = if path.exists() {
                    path.display().to_string()
                } else {
                    format!("/proc/{}/ns/net", o.state.pid)
                };
                PlanKind::Joined {
                    ns,
                    etc_dir: self.dir(other),
                }
            }
            NetworkMode::None | NetworkMode::Network(_) => {
                let ns_path = self.netns_path(id);
                let network = match &c.network_mode {
                    NetworkMode::Network(n) => n.clone(),
                    _ => "none".into(),
                };
                let mut ports = Vec::new();
                for p in &c.options.publish {
                    ports.push(p.parse::<PortSpec>().map_err(|e| {
                        ContainerError::Invalid(format!("invalid publish spec {p:?}: {e}"))
                    })?);
                }
                if c.options.publish_all {
                    for e in &c.exposed_ports {
                        let (port, proto) = e.split_once('/').unwrap_or((e, "tcp"));
                        if let Ok(spec) = format!("{port}/{proto}").parse::<PortSpec>() {
                            if !ports.iter().any(|p| {
                                p.container_ports == spec.container_ports && p.proto == spec.proto
                            }) {
                                ports.push(spec);
                            }
                        }
                    }
                }
                let dns = container_dns(c);
                let embedded = network != "bridge" && network != "none";
                let primary = (!c.primary_disconnected).then(|| {
                    self.attach_request(
                        c,
                        &ns_path,
                        &c.options.network_aliases,
                        c.options.ip.as_deref(),
                        ports.clone(),
                        &dns,
                        embedded,
                    )
                });
                let connections = c
                    .connections
                    .iter()
                    .map(|(n, conn)| {
                        let req = self.attach_request(
                            c,
                            &ns_path,
                            &conn.aliases,
                            conn.ip.as_deref(),
                            Vec::new(),
                            &dns,
                            n != "bridge",
                        );
                        (n.clone(), req)
                    })
                    .collect();
                let mut links = Vec::new();
                if network == "bridge" {
                    for l in c
                        .options
                        .links
                        .iter()
                        .filter_map(|l| l.parse::<ContainerLink>().ok())
                    {
                        let Ok(oid) = self.resolve(&l.container) else {
                            continue;
                        };
                        let oname = self.containers[&oid].name.clone();
                        let mut names = vec![l.alias.clone()];
                        if l.alias != oname {
                            names.push(oname);
                        }
                        links.push((oid, names));
                    }
                }
                PlanKind::Own(Box::new(OwnNet {
                    ns_path,
                    network,
                    wildcard: wildcard_ports(
                        &c.options.publish,
                        c.options.publish_all,
                        &c.exposed_ports,
                    ),
                    ports,
                    primary,
                    connections,
                    embedded,
                    add_hosts: c.options.add_hosts.clone(),
                    links,
                    dns,
                    host_dns: self.host_dns.clone(),
                }))
            }
        };
        Ok(NetPlan {
            id: id.to_string(),
            name: c.name.clone(),
            hostname: c.hostname.clone(),
            etc_dir: self.dir(id),
            kind,
        })
    }

    /// Sets up `id`'s network with the engine held (a start the engine makes on its own). On
    /// error the caller runs [`Engine::teardown_network`].
    pub(super) async fn setup_network(
        &mut self,
        id: &str,
    ) -> Result<(SpecNet, PathBuf), ContainerError> {
        let plan = self.net_plan(id)?;
        let out = self.wiring.lock().await.setup(plan).await;
        self.reindex(id);
        out
    }

    /// What netcore is asked when container `c` joins a network from its namespace at `ns`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn attach_request(
        &self,
        c: &super::model::Container,
        ns: &std::path::Path,
        aliases: &[String],
        ip: Option<&str>,
        ports: Vec<PortSpec>,
        dns: &ContainerDns,
        embedded: bool,
    ) -> AttachRequest {
        AttachRequest {
            container: c.id.clone(),
            container_name: c.name.clone(),
            ns: Some(ns.to_path_buf()),
            aliases: aliases.to_vec(),
            links: c
                .options
                .links
                .iter()
                .filter_map(|l| l.parse::<ContainerLink>().ok())
                .map(|mut l| {
                    // Records hold names: a link given by ID names the container.
                    if let Some(o) = self
                        .resolve(&l.container)
                        .ok()
                        .and_then(|i| self.containers.get(&i))
                    {
                        l.container = o.name.clone();
                    }
                    l
                })
                .collect(),
            dns_servers: if embedded {
                dns.servers
                    .iter()
                    .map(|ip| SocketAddr::new(*ip, 53))
                    .collect()
            } else {
                Vec::new()
            },
            ipv4: ip.and_then(|i| i.parse().ok()),
            ipv6: None,
            mac: None,
            ports,
        }
    }

    /// Removes everything [`Engine::setup_network`] made for `id`; keeps going past errors and
    /// treats "already gone" as done.
    pub(super) async fn teardown_network(&mut self, id: &str) {
        let ns = self.netns_path(id);
        self.wiring.lock().await.teardown(id, &ns).await;
        self.reindex(id);
    }
}

/// The (protocol, container port) pairs of `publish` specs without a host address, and of
/// every exposed port with `-P`: those a first publication bound on both address families.
pub(super) fn wildcard_ports(
    publish: &[String],
    publish_all: bool,
    exposed: &std::collections::BTreeSet<String>,
) -> Vec<(portproxy::Protocol, u16)> {
    let mut out = Vec::new();
    for spec in publish.iter().filter_map(|p| p.parse::<PortSpec>().ok()) {
        if spec.host_ip.is_none() {
            out.extend(spec.container_ports.iter().map(|p| (spec.proto, p)));
        }
    }
    if publish_all {
        for e in exposed {
            let (port, proto) = e.split_once('/').unwrap_or((e, "tcp"));
            if let Ok(spec) = format!("{port}/{proto}").parse::<PortSpec>() {
                out.extend(spec.container_ports.iter().map(|p| (spec.proto, p)));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use portproxy::Protocol;

    #[test]
    fn only_specs_without_a_host_address_come_back_on_both_families() {
        let publish: Vec<String> = [
            "8080:80",
            "0.0.0.0:8081:81",
            "127.0.0.1:8082:82",
            "9000-9001:90-91/udp",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let exposed = ["443/tcp".to_string(), "53/udp".to_string()].into();
        assert_eq!(
            wildcard_ports(&publish, false, &exposed),
            [
                (Protocol::Tcp, 80),
                (Protocol::Udp, 90),
                (Protocol::Udp, 91)
            ]
        );
        let all = wildcard_ports(&[], true, &exposed);
        assert!(all.contains(&(Protocol::Tcp, 443)) && all.contains(&(Protocol::Udp, 53)));
    }
}
