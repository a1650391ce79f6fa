//! A container's network, wired through netcore before its process starts: its namespace
//! file, the endpoint on its network (address, veth, routes, firewall DNAT), the host-local
//! path of its published ports through portproxy, the embedded resolver's listener, and the
//! /etc files it sees. [`Engine::teardown_network`] undoes all of it and is idempotent.

use std::fs;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use netcore::dns::{ContainerDns, container_resolv_conf};
use netcore::network::{AttachRequest, ContainerLink};
use portproxy::PortSpec;
use portproxy::control::Request;

use super::engine::Engine;
use super::model::NetworkMode;
use super::proxy::{Reached, Wanted, reconcile};
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

impl Engine {
    /// Sets up `id`'s network and writes its /etc files; returns how its spec joins the
    /// namespace and the directory of its /etc files. On error the caller runs
    /// [`Engine::teardown_network`].
    pub(super) async fn setup_network(
        &mut self,
        id: &str,
    ) -> Result<(SpecNet, PathBuf), ContainerError> {
        let c = self.containers[id].clone();
        let dir = self.dir(id);
        let dns = container_dns(&c);
        let write = |name: &str, text: &str| {
            let p = dir.join(name);
            fs::write(&p, text).map_err(io_err(format!("writing {}", p.display())))
        };
        match &c.network_mode {
            NetworkMode::Host => {
                let host_name = nix::unistd::gethostname()
                    .map(|h| h.to_string_lossy().into_owned())
                    .unwrap_or_else(|_| c.hostname.clone());
                write("hostname", &format!("{host_name}\n"))?;
                write(
                    "hosts",
                    &fs::read_to_string("/etc/hosts").unwrap_or_default(),
                )?;
                write(
                    "resolv.conf",
                    &fs::read_to_string(&self.cfg.resolv_conf).unwrap_or_default(),
                )?;
                Ok((SpecNet::Host, dir))
            }
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
                Ok((SpecNet::Path(ns), self.dir(other)))
            }
            NetworkMode::None | NetworkMode::Network(_) => {
                let path = self.netns_path(id);
                netns::remove(&path)
                    .map_err(io_err(format!("container {}: stale namespace", c.name)))?;
                netns::create(&path).map_err(io_err(format!("container {}", c.name)))?;
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
                let embedded = network != "bridge" && network != "none";
                let mut own: Vec<IpAddr> = Vec::new();
                if !c.primary_disconnected {
                    let req = self.attach_request(
                        &c,
                        &path,
                        &c.options.network_aliases,
                        c.options.ip.as_deref(),
                        ports.clone(),
                        &dns,
                        embedded,
                    );
                    let ep = self.net.attach(&network, req).await?;
                    own.extend([ep.ipv4, ep.ipv6].into_iter().flatten().map(|a| a.addr()));
                    if let Some(ip) = own.first().copied() {
                        self.publish_ports(id, &ep.id, ip, &ports).await?;
                    }
                }
                // Networks joined with `docker network connect` are joined again.
                for (n, conn) in &c.connections {
                    let req = self.attach_request(
                        &c,
                        &path,
                        &conn.aliases,
                        conn.ip.as_deref(),
                        Vec::new(),
                        &dns,
                        n != "bridge",
                    );
                    let ep = self.net.attach(n, req).await?;
                    own.extend([ep.ipv4, ep.ipv6].into_iter().flatten().map(|a| a.addr()));
                }
                if embedded || c.connections.keys().any(|n| n != "bridge") {
                    for e in self.resolver.update(self.net.state()).await {
                        tracing::warn!(container = %c.name, error = %e, "embedded DNS listener");
                    }
                }
                let gateway = self
                    .net
                    .state()
                    .ipam
                    .network(&network)
                    .and_then(|i| i.subnets.first().map(|s| s.gateway));
                let mut extra = Vec::new();
                for h in &c.options.add_hosts {
                    extra.push(etc::parse_add_host(h, gateway)?);
                }
                let mut link_lines = Vec::new();
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
                        if let Some(ip) = self
                            .net
                            .state()
                            .endpoints
                            .values()
                            .find(|e| e.container == oid && e.network == "bridge")
                            .and_then(|e| e.ipv4)
                        {
                            let mut names = vec![l.alias.clone()];
                            if l.alias != oname {
                                names.push(oname);
                            }
                            link_lines.push((ip.addr(), names));
                        }
                    }
                }
                write("hostname", &format!("{}\n", c.hostname))?;
                write("hosts", &etc::hosts(&c.hostname, &own, &extra, &link_lines))?;
                write(
                    "resolv.conf",
                    &container_resolv_conf(&self.host_dns, &dns, embedded),
                )?;
                Ok((SpecNet::Path(path.display().to_string()), dir))
            }
        }
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
            let info = self.proxy_call(&req, Some(id)).await?;
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
    /// nothing: every live container's ports (but `busy`'s, which its caller is publishing) are
    /// published on it again first.
    pub(super) async fn proxy_call(
        &mut self,
        req: &Request,
        busy: Option<&str>,
    ) -> Result<Vec<portproxy::PublishedInfo>, ContainerError> {
        let (resp, reached) = self.proxy.call(req).await?;
        if reached == Reached::Started {
            self.published.retain(|c, _| Some(c.as_str()) == busy);
            self.restore_publications(Vec::new(), busy).await;
        }
        Ok(resp.published)
    }

    /// What the proxy should serve for every live container but `busy`: the mappings recorded
    /// in its endpoints (real host ports, also those the kernel chose).
    fn wanted_publications(&self, busy: Option<&str>) -> Vec<Wanted> {
        let mut out = Vec::new();
        for ep in self.net.state().endpoints.values() {
            let Some(c) = self.containers.get(&ep.container) else {
                continue;
            };
            if !c.state.status.is_live() || Some(c.id.as_str()) == busy {
                continue;
            }
            // Specs published on every address of both families (`-p 8080:80`, `-p 80`, `-P`),
            // as opposed to `-p 0.0.0.0:8080:80` (IPv4 only): (protocol, container port).
            let wildcard =
                wildcard_ports(&c.options.publish, c.options.publish_all, &c.exposed_ports);
            for m in &ep.published {
                if !m.host.is_ipv4() || m.host.port() == 0 {
                    continue;
                }
                out.push(Wanted {
                    container: c.id.clone(),
                    mapping: *m,
                    both_families: m.host.ip().is_unspecified()
                        && wildcard.contains(&(m.proto, m.container.port())),
                });
            }
        }
        out
    }

    /// Brings the proxy's publications in line with the live containers (after an engine
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

    /// Removes everything [`Engine::setup_network`] made for `id`; keeps going past errors and
    /// treats "already gone" as done.
    pub(super) async fn teardown_network(&mut self, id: &str) {
        for pid in self.published.remove(id).unwrap_or_default() {
            let _ = self
                .proxy_call(&Request::Unpublish { id: pid }, Some(id))
                .await;
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
        if let Err(e) = netns::remove(&self.netns_path(id)) {
            tracing::warn!(container = id, error = %e, "removing the network namespace");
        }
        self.reindex(id);
    }
}

/// The (protocol, container port) pairs of `publish` specs without a host address, and of
/// every exposed port with `-P`: those a first publication bound on both address families.
fn wildcard_ports(
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
