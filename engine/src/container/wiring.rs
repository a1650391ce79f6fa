//! A container's network, wired through netcore before its process starts: its namespace
//! file, the endpoint on its network (address, veth, routes, firewall DNAT), the host-local
//! path of its published ports through portproxy, the embedded resolver's listener, and the
//! /etc files it sees. [`Wiring::teardown`] undoes all of it and is idempotent.

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
use portproxy::Mapping;

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
    /// A namespace of its own on the userspace network stack.
    Slirp(Box<SlirpNet>),
}

#[derive(Debug)]
struct SlirpNet {
    stack: super::slirp::SlirpPlan,
    add_hosts: Vec<String>,
    dns: ContainerDns,
    host_dns: netcore::dns::ResolvConf,
}

impl NetPlan {
    /// Whether the container runs on the userspace network stack, which [`setup_slirp`] sets up
    /// without the wiring.
    pub(super) fn is_slirp(&self) -> bool {
        matches!(self.kind, PlanKind::Slirp(_))
    }
}

/// Sets up a `--network slirp` container's namespace and stack and writes its /etc files, as
/// [`Wiring::setup`] does for the others; returns what the stack publishes too. On error the
/// caller runs the teardown, which ends the stack.
pub(super) async fn setup_slirp(
    plan: NetPlan,
) -> Result<(SpecNet, PathBuf, Vec<Mapping>), ContainerError> {
    let PlanKind::Slirp(net) = plan.kind else {
        return Err(ContainerError::Invalid("not a slirp network plan".into()));
    };
    let dir = plan.etc_dir.clone();
    let name = plan.name.clone();
    let ns_path = net.stack.ns_path.clone();
    let stack = net.stack.clone();
    // A stack a crashed start left behind would hold the ports.
    super::slirp::stop(&ns_path).await;
    let published = tokio::task::spawn_blocking(move || {
        netns::remove(&ns_path).map_err(io_err(format!("container {name}: stale namespace")))?;
        netns::create(&ns_path).map_err(io_err(format!("container {name}")))?;
        super::slirp::start(&stack)
    })
    .await
    .map_err(|e| ContainerError::Invalid(format!("starting the network stack: {e}")))??;
    let layout = net.stack.options.layout();
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        fs::write(&p, text).map_err(io_err(format!("writing {}", p.display())))
    };
    let mut extra = Vec::new();
    for h in &net.add_hosts {
        extra.push(etc::parse_add_host(h, Some(IpAddr::V4(layout.gateway)))?);
    }
    let mut addrs = vec![IpAddr::V4(layout.container)];
    if layout.cidr6.is_some() {
        addrs.push(IpAddr::V6(layout.container6));
    }
    write("hostname", &format!("{}\n", plan.hostname))?;
    write("hosts", &etc::hosts(&plan.hostname, &addrs, &extra, &[]))?;
    // The stack's resolver forwards to the host's; search domains and options are the host's.
    let inside = netcore::dns::ResolvConf {
        nameservers: vec![SocketAddr::new(IpAddr::V4(layout.dns), 53)],
        ..net.host_dns.clone()
    };
    write(
        "resolv.conf",
        &container_resolv_conf(&inside, &net.dns, false),
    )?;
    Ok((
        SpecNet::Path(net.stack.ns_path.display().to_string()),
        dir,
        published,
    ))
}

#[derive(Debug)]
struct OwnNet {
    ns_path: PathBuf,
    network: String,
    ports: Vec<PortSpec>,
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
    /// Containers whose ports the proxy serves: the network of their `-p` and the specs.
    pub(super) serving: HashMap<String, Serving>,
    /// Whether `published` is known to match the proxy's publications (an engine that could
    /// not list them at its start does so before its next call).
    pub(super) reconciled: bool,
}

/// What the proxy serves for one container.
#[derive(Debug, Clone)]
pub(super) struct Serving {
    /// The network whose endpoint's address the ports forward to.
    pub network: String,
    /// Its `-p` specs (and `-P`'s).
    pub specs: Vec<PortSpec>,
}

impl Wiring {
    /// The network manager (`docker network create`, `ls`, `inspect`, `rm`).
    pub fn networks(&mut self) -> &mut NetworkManager<RtNetlink, NftCommand> {
        &mut self.net
    }

    /// Sets up a container's network as `plan` says, in three steps so the wiring's lock is
    /// not held while the kernel makes interfaces: the records, firewall, ports and /etc files
    /// under the lock ([`Wiring::setup_records`]), the interfaces without it, then the embedded
    /// DNS, which listens inside the namespace once its loopback is up. Returns how its spec
    /// joins the namespace and the directory of its /etc files. On error the caller runs
    /// [`Wiring::teardown`].
    pub(super) async fn setup(
        wiring: &tokio::sync::Mutex<Wiring>,
        plan: NetPlan,
    ) -> Result<(SpecNet, PathBuf), ContainerError> {
        let name = plan.name.clone();
        let (net, dir, links, dns) = wiring.lock().await.setup_records(plan).await?;
        if !links.is_empty() {
            let mut nl = netcore::link::RtNetlink::default();
            netcore::link::apply_all(&mut nl, &links)
                .await
                .map_err(netcore::network::NetworkError::from)?;
        }
        if dns {
            let mut w = wiring.lock().await;
            let state = w.net.state().clone();
            for e in w.resolver.update(&state).await {
                tracing::warn!(container = %name, error = %e, "embedded DNS listener");
            }
        }
        Ok((net, dir))
    }

    /// The first step of [`Wiring::setup`], under the lock: returns the spec's namespace, the
    /// /etc directory, the interfaces to make and whether the embedded DNS must listen for it.
    async fn setup_records(
        &mut self,
        plan: NetPlan,
    ) -> Result<(SpecNet, PathBuf, Vec<netcore::link::LinkOp>, bool), ContainerError> {
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
                return Ok((SpecNet::Host, dir, Vec::new(), false));
            }
            PlanKind::Joined { ns, etc_dir } => {
                return Ok((SpecNet::Path(ns), etc_dir, Vec::new(), false));
            }
            PlanKind::Own(own) => own,
            PlanKind::Slirp(_) => {
                return Err(ContainerError::Invalid(
                    "a slirp network is set up by setup_slirp".into(),
                ));
            }
        };
        let id = plan.id.as_str();
        netns::remove(&own.ns_path)
            .map_err(io_err(format!("container {}: stale namespace", plan.name)))?;
        netns::create(&own.ns_path).map_err(io_err(format!("container {}", plan.name)))?;
        let mut addrs: Vec<IpAddr> = Vec::new();
        let mut links = Vec::new();
        if let Some(req) = own.primary {
            let (ep, ops) = self.net.attach_record(&own.network, req)?;
            links.extend(ops);
            addrs.extend([ep.ipv4, ep.ipv6].into_iter().flatten().map(|a| a.addr()));
            self.serving.insert(
                id.to_string(),
                Serving {
                    network: own.network.clone(),
                    specs: own.ports.clone(),
                },
            );
            if let Some(ip) = addrs.first().copied() {
                self.publish_ports(id, &ep.id, ip, &own.ports).await?;
            }
        }
        let mut user_defined = own.embedded;
        for (n, req) in own.connections {
            user_defined |= n != "bridge";
            let (ep, ops) = self.net.attach_record(&n, req)?;
            links.extend(ops);
            addrs.extend([ep.ipv4, ep.ipv6].into_iter().flatten().map(|a| a.addr()));
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
            // A container on the default bridge that is also on a user-defined network asks the
            // embedded resolver, as Docker's does.
            &container_resolv_conf(&own.host_dns, &own.dns, user_defined),
        )?;
        Ok((
            SpecNet::Path(own.ns_path.display().to_string()),
            dir,
            links,
            user_defined,
        ))
    }

    /// Removes everything [`Wiring::setup`] made for container `id` (its namespace file at
    /// `ns_path`) from the records, the firewall, the resolver and the proxy; keeps going past
    /// errors and treats "already gone" as done. Returns the operations that delete its
    /// interfaces, for the caller to apply once it has let the wiring go.
    pub(super) async fn teardown(
        &mut self,
        id: &str,
        ns_path: &std::path::Path,
    ) -> Vec<netcore::link::LinkOp> {
        self.withdraw(id).await;
        let networks: Vec<String> = self
            .net
            .state()
            .endpoints
            .values()
            .filter(|e| e.container == id)
            .map(|e| e.network.clone())
            .collect();
        let mut links = Vec::new();
        for n in &networks {
            match self.net.detach_record(n, id) {
                Ok(ops) => links.extend(ops),
                Err(e) => tracing::warn!(container = id, network = %n, error = %e, "detaching"),
            }
        }
        if !networks.is_empty() {
            let _ = self.resolver.update(self.net.state()).await;
        }
        // What lives in the container's namespace (macvlan, ipvlan) is deleted now, while its
        // namespace file is there to find it; a bridge endpoint's host veth (its peer goes
        // with it) is left to the caller.
        let (host, inside): (Vec<_>, Vec<_>) = links.into_iter().partition(|op| {
            matches!(
                op,
                netcore::link::LinkOp::DeleteLink {
                    ns: netcore::link::NsRef::Host,
                    ..
                }
            )
        });
        if !inside.is_empty() {
            let mut nl = netcore::link::RtNetlink::default();
            if let Err(errors) = netcore::link::apply_best_effort(&mut nl, &inside).await {
                tracing::warn!(container = id, %errors, "some links could not be deleted");
            }
        }
        super::slirp::stop(ns_path).await;
        if let Err(e) = netns::remove(ns_path) {
            tracing::warn!(container = id, error = %e, "removing the network namespace");
        }
        host
    }

    /// A running container joins `network` (`docker network connect`). Like
    /// [`Wiring::setup`], the lock is held to record the endpoint and to serve its name, not
    /// while the kernel makes its interface: other containers' starts and connects go on
    /// meanwhile. When the interface cannot be made, the endpoint is given back.
    pub(super) async fn attach(
        wiring: &tokio::sync::Mutex<Wiring>,
        network: &str,
        req: AttachRequest,
    ) -> Result<(), ContainerError> {
        let container = req.container.clone();
        let (_, links) = wiring.lock().await.net.attach_record(network, req)?;
        let mut nl = netcore::link::RtNetlink::default();
        if let Err(e) = netcore::link::apply_all(&mut nl, &links).await {
            // apply_all took back what it made; the records follow.
            let undo = wiring.lock().await.net.detach_record(network, &container);
            if let Ok(undo) = undo {
                let _ = netcore::link::apply_best_effort(&mut nl, &undo).await;
            }
            return Err(netcore::network::NetworkError::from(e).into());
        }
        Wiring::refresh(wiring).await;
        Ok(())
    }

    /// A running container leaves `network` (`docker network disconnect`); leaving the network
    /// of its `-p` (`primary`) withdraws its published ports. The interface is deleted after
    /// the lock is let go.
    pub(super) async fn detach(
        wiring: &tokio::sync::Mutex<Wiring>,
        network: &str,
        id: &str,
        primary: bool,
    ) -> Result<(), ContainerError> {
        let links = {
            let mut w = wiring.lock().await;
            if primary {
                w.withdraw(id).await;
            }
            match w.net.detach_record(network, id) {
                Ok(links) => links,
                Err(netcore::network::NetworkError::NotAttached { .. }) => Vec::new(),
                Err(e) => return Err(e.into()),
            }
        };
        let mut nl = netcore::link::RtNetlink::default();
        if let Err(errors) = netcore::link::apply_best_effort(&mut nl, &links).await {
            tracing::warn!(container = id, %network, %errors, "endpoint detached; some links could not be deleted");
        }
        Wiring::refresh(wiring).await;
        Ok(())
    }

    /// The embedded DNS serves the endpoints now recorded.
    async fn refresh(wiring: &tokio::sync::Mutex<Wiring>) {
        let mut w = wiring.lock().await;
        let state = w.net.state().clone();
        let _ = w.resolver.update(&state).await;
    }

    /// Serves the names of every endpoint now recorded (after an engine start).
    pub(super) async fn refresh_resolver(&mut self) {
        let _ = self.resolver.update(self.net.state()).await;
    }

    /// Stops serving container `id`'s ports. Never starts a proxy: with none running there is
    /// nothing to withdraw.
    async fn withdraw(&mut self, id: &str) {
        self.serving.remove(id);
        for pid in self.published.remove(id).unwrap_or_default() {
            if let Err(e) = self.proxy.call_live(&Request::Unpublish { id: pid }).await {
                tracing::warn!(container = id, publication = pid, error = %e, "withdrawing a publication");
            }
        }
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
        let (mut done, mut restarts) = (0, 0);
        while done < ports.len() {
            let spec = &ports[done];
            let req = Request::Publish {
                spec: spec.to_string(),
                container_ip: ip,
                transparent: false,
            };
            let (reached, info) = self.proxy_call(&req, Some(id)).await?;
            if reached == Reached::Started && done > 0 {
                restarts += 1;
                if restarts > 2 {
                    return Err(ContainerError::PortProxy(
                        "the port proxy keeps exiting; see proxy.log in the exec root".into(),
                    ));
                }
                // The proxy that had this container's first specs is gone: all of them again.
                for pid in info.iter().map(|p| p.id) {
                    let _ = self.proxy.call_live(&Request::Unpublish { id: pid }).await;
                }
                self.published.remove(id);
                chosen.clear();
                done = 0;
                continue;
            }
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
            done += 1;
        }
        if ports.iter().any(|p| p.host_ports.is_none()) {
            self.net.set_published(ep_id, chosen)?;
        }
        Ok(())
    }

    /// Sends `req` to the proxy for container `busy` (whose ports are being published, or
    /// none). A proxy that was just started publishes nothing: the ports of every other
    /// container served are published on it again first, whatever it answered to `req`.
    async fn proxy_call(
        &mut self,
        req: &Request,
        busy: Option<&str>,
    ) -> Result<(Reached, Vec<portproxy::PublishedInfo>), ContainerError> {
        if !self.reconciled {
            match self.proxy.call_live(&Request::List).await {
                Ok(Some(resp)) => {
                    self.reconciled = true;
                    self.restore_publications(resp.published, busy).await;
                }
                Ok(None) => self.reconciled = true,
                Err(e) => tracing::warn!(error = %e, "listing the proxy's publications"),
            }
        }
        let (reached, resp) = self.proxy.call(req).await?;
        if reached == Reached::Started {
            // Every ID kept belongs to the proxy that is gone.
            self.published.clear();
            self.reconciled = true;
            self.restore_publications(Vec::new(), busy).await;
        }
        Ok((reached, resp?.published))
    }

    /// What the proxy should serve for every container it serves but `busy`: each `-p` spec,
    /// with the host ports the endpoint recorded where the kernel chose them.
    fn wanted_publications(&self, busy: Option<&str>) -> Vec<Wanted> {
        let state = self.net.state();
        let mut out = Vec::new();
        for (id, serving) in &self.serving {
            if Some(id.as_str()) == busy {
                continue;
            }
            let Some(ep) = state
                .endpoints
                .values()
                .find(|e| e.container == *id && e.network == serving.network)
            else {
                continue;
            };
            let Some(ip) = [ep.ipv4, ep.ipv6].into_iter().flatten().next() else {
                continue;
            };
            for spec in &serving.specs {
                out.extend(wanted_of(id, spec, ip.addr(), &ep.published));
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
            if let Err(e) = self.proxy.call_live(&Request::Unpublish { id }).await {
                tracing::warn!(publication = id, error = %e, "withdrawing a stale publication");
            }
        }
        for (c, ids) in plan.adopt {
            self.published.entry(c).or_default().extend(ids);
        }
        for i in plan.publish {
            let w = &wanted[i];
            let req = Request::Publish {
                spec: w.spec.clone(),
                container_ip: w.container_ip,
                transparent: false,
            };
            match self.proxy.call(&req).await.and_then(|(_, r)| r) {
                Ok(resp) => self
                    .published
                    .entry(w.container.clone())
                    .or_default()
                    .extend(resp.published.iter().map(|p| p.id)),
                Err(e) => {
                    tracing::warn!(container = %w.container, spec = %w.spec, error = %e, "publishing a port again")
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
            NetworkMode::Slirp(mode) => {
                let options = netcore::usernet::Options::from_mode(mode)
                    .unwrap_or_else(|| Ok(Default::default()))
                    .map_err(|e| ContainerError::Invalid(e.to_string()))?;
                PlanKind::Slirp(Box::new(SlirpNet {
                    stack: super::slirp::SlirpPlan {
                        name: c.name.clone(),
                        ns_path: self.netns_path(id),
                        options,
                        ports: published_specs(c),
                        bin: self.cfg.slirp.clone(),
                        resolv_conf: self.cfg.resolv_conf.clone(),
                    },
                    add_hosts: c.options.add_hosts.clone(),
                    dns: container_dns(c),
                    host_dns: self.host_dns.clone(),
                }))
            }
            NetworkMode::None | NetworkMode::Network(_) => {
                let ns_path = self.netns_path(id);
                let network = match &c.network_mode {
                    NetworkMode::Network(n) => n.clone(),
                    _ => "none".into(),
                };
                let ports = published_specs(c);
                let dns = container_dns(c);
                let embedded = network != "bridge" && network != "none";
                let primary = (!c.primary_disconnected).then(|| {
                    self.attach_request(
                        c,
                        &ns_path,
                        &c.options.primary_endpoint(),
                        ports.clone(),
                        &dns,
                        embedded,
                    )
                });
                let connections = c
                    .connections
                    .iter()
                    .map(|(n, conn)| {
                        let req =
                            self.attach_request(c, &ns_path, conn, Vec::new(), &dns, n != "bridge");
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
                        // Docker's line: the alias, the linked container's hostname, its name.
                        let o = &self.containers[&oid];
                        let mut names = vec![l.alias.clone(), o.hostname.clone()];
                        if l.alias != o.name {
                            names.push(o.name.clone());
                        }
                        links.push((oid, names));
                    }
                }
                PlanKind::Own(Box::new(OwnNet {
                    ns_path,
                    network,
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

    /// What netcore is asked when container `c` joins a network from its namespace at `ns`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn attach_request(
        &self,
        c: &super::model::Container,
        ns: &std::path::Path,
        conn: &super::model::Connection,
        ports: Vec<PortSpec>,
        dns: &ContainerDns,
        embedded: bool,
    ) -> AttachRequest {
        AttachRequest {
            container: c.id.clone(),
            container_name: c.name.clone(),
            ns: Some(ns.to_path_buf()),
            aliases: {
                // On a user-defined network a container answers to its short ID too, as in
                // Docker (which lists it among the endpoint's aliases).
                let mut a = conn.aliases.clone();
                let short = c.id.get(..12).unwrap_or(&c.id);
                if embedded && !a.iter().any(|x| x == short) {
                    a.push(short.to_string());
                }
                a
            },
            links: c
                .options
                .links
                .iter()
                .chain(&conn.links)
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
            ipv4: conn.ip.as_deref().and_then(|i| i.parse().ok()),
            ipv6: conn.ip6.as_deref().and_then(|i| i.parse().ok()),
            mac: conn.mac.as_deref().and_then(|m| m.parse().ok()),
            link_local: conn
                .link_local_ips
                .iter()
                .filter_map(|i| i.parse().ok())
                .collect(),
            ports,
        }
    }
}

/// Container `c`'s `-p` specs, and with `-P` one for each exposed port no `-p` names.
pub(super) fn published_specs(c: &super::model::Container) -> Vec<PortSpec> {
    let mut ports = c.options.publish.clone();
    if c.options.publish_all {
        for e in &c.exposed_ports {
            let (port, proto) = e.split_once('/').unwrap_or((e, "tcp"));
            if let Ok(spec) = format!("{port}/{proto}").parse::<PortSpec>() {
                if !ports
                    .iter()
                    .any(|p| p.container_ports == spec.container_ports && p.proto == spec.proto)
                {
                    ports.push(spec);
                }
            }
        }
    }
    ports
}

/// The publications that serve `spec` of container `id` forwarding to `ip`: the spec itself
/// when it names every host port, else one per mapping the endpoint `recorded` for it (the
/// host ports the kernel chose for `-p 80`, `-P`).
pub(super) fn wanted_of(
    id: &str,
    spec: &PortSpec,
    ip: IpAddr,
    recorded: &[Mapping],
) -> Vec<Wanted> {
    let cports: Vec<u16> = spec.container_ports.iter().collect();
    match spec.host_ports {
        Some(h) if h.len() as usize == cports.len() => {
            let host = spec
                .host_ip
                .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
            let pairs: Vec<(u16, u16)> = h.iter().zip(cports).collect();
            let mut keys: Vec<_> = pairs
                .iter()
                .map(|(hp, cp)| {
                    (
                        spec.proto,
                        SocketAddr::new(host, *hp),
                        SocketAddr::new(ip, *cp),
                    )
                })
                .collect();
            if spec.host_ip.is_none() {
                let any6 = IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED);
                keys.extend(pairs.iter().map(|(hp, cp)| {
                    (
                        spec.proto,
                        SocketAddr::new(any6, *hp),
                        SocketAddr::new(ip, *cp),
                    )
                }));
            }
            vec![Wanted {
                container: id.to_string(),
                spec: spec.to_string(),
                container_ip: ip,
                keys,
            }]
        }
        _ => {
            let host = spec
                .host_ip
                .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
            recorded
                .iter()
                .filter(|m| {
                    m.proto == spec.proto
                        && m.host.port() != 0
                        && m.host.ip() == host
                        && m.container.ip() == ip
                        && spec.container_ports.iter().any(|p| p == m.container.port())
                        && spec
                            .host_ports
                            .is_none_or(|h| h.iter().any(|p| p == m.host.port()))
                })
                .map(|m| Wanted::recorded(id, m, spec.host_ip.is_none()))
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portproxy::Protocol;

    fn spec(s: &str) -> PortSpec {
        s.parse().unwrap()
    }

    fn m(host: &str, container: &str) -> Mapping {
        Mapping {
            proto: Protocol::Tcp,
            host: host.parse().unwrap(),
            container: container.parse().unwrap(),
        }
    }

    #[test]
    fn a_spec_with_every_host_port_is_wanted_as_it_was_given() {
        let ip: IpAddr = "172.17.0.2".parse().unwrap();
        let w = wanted_of("a", &spec("8080-8081:80-81"), ip, &[]);
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].spec, "8080-8081:80-81/tcp");
        // Both families, IPv4 first: what a kept publication must have.
        assert_eq!(w[0].keys.len(), 4);
        assert_eq!(w[0].keys[0].1, "0.0.0.0:8080".parse().unwrap());
        let w = wanted_of("a", &spec("[::1]:9000:90"), ip, &[]);
        assert_eq!(w[0].spec, "[::1]:9000:90/tcp");
        assert_eq!(
            w[0].keys,
            vec![(
                Protocol::Tcp,
                "[::1]:9000".parse().unwrap(),
                "172.17.0.2:90".parse().unwrap()
            )]
        );
    }

    #[test]
    fn kernel_chosen_ports_come_from_the_endpoint() {
        let ip: IpAddr = "172.17.0.2".parse().unwrap();
        let recorded = [
            m("0.0.0.0:32768", "172.17.0.2:80"),
            m("127.0.0.1:32769", "172.17.0.2:81"),
            m("0.0.0.0:0", "172.17.0.2:82"),
        ];
        let w = wanted_of("a", &spec("80"), ip, &recorded);
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].spec, "32768:80/tcp");
        let w = wanted_of("a", &spec("127.0.0.1::81"), ip, &recorded);
        assert_eq!(w[0].spec, "127.0.0.1:32769:81/tcp");
        // Not chosen yet (port 0): nothing to publish again.
        assert!(wanted_of("a", &spec("82"), ip, &recorded).is_empty());
        // Another spec's port is not this one's.
        assert!(wanted_of("a", &spec("83"), ip, &recorded).is_empty());
    }
}
